#include "containers/hash_table_allocator.h"

#include <cstdio>
#include <cstdlib>

namespace mesa::internal {

void hash_table_out_of_memory(std::size_t count, std::size_t size) noexcept {
  std::fprintf(stderr,
               "mesa_alloc: out of memory in an Abseil hash table (%zu objects of %zu bytes); "
               "Abseil's tables are not exception-safe, aborting\n",
               count, size);
  std::abort();
}

void hash_table_construct_failed() noexcept {
  std::fputs(
      "mesa_alloc: exception while constructing an element of an Abseil hash table; Abseil's "
      "tables are not exception-safe, aborting\n",
      stderr);
  std::abort();
}

}  // namespace mesa::internal
