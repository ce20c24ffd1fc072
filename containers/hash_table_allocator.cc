#include "containers/hash_table_allocator.h"

#include <cstdio>
#include <cstdlib>

#include "containers/nothrow_functors.h"

namespace mesa::internal {

// In bytes: a flat table allocates its backing array in units of its slots' alignment, so
// the count of units says nothing of the table's size.
void hash_table_out_of_memory(std::size_t count, std::size_t size) noexcept {
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    std::fprintf(stderr,
                 "mesa_alloc: out of memory in an Abseil hash table (%zu units of %zu bytes, "
                 "more than a size_t holds); Abseil's tables are not exception-safe, aborting\n",
                 count, size);
  } else {
    std::fprintf(stderr,
                 "mesa_alloc: out of memory in an Abseil hash table (a block of %zu bytes); "
                 "Abseil's tables are not exception-safe, aborting\n",
                 bytes);
  }
  std::abort();
}

void hash_table_construct_failed() noexcept {
  std::fputs(
      "mesa_alloc: exception while constructing an element of an Abseil hash table; Abseil's "
      "tables are not exception-safe, aborting\n",
      stderr);
  std::abort();
}

void hash_table_functor_failed(const char *which) noexcept {
  std::fprintf(stderr,
               "mesa_alloc: exception from the %s of an Abseil hash table; Abseil's tables are "
               "not exception-safe (a throw while rehashing leaves one half moved), aborting\n",
               which);
  std::abort();
}

}  // namespace mesa::internal
