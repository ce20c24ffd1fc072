#include "mesa_alloc/internal/default_from_environment.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mesa::internal {

const mesa_allocator *default_from_environment() noexcept {
  const char *words = std::getenv("MESA_ALLOC_DEBUG");
  if (words != nullptr && words[0] != '\0')
    std::fprintf(stderr, "mesa_alloc: MESA_ALLOC_DEBUG=%s ignored (no debug layers built in)\n",
                 words);
  return mesa_libc_allocator();
}

}  // namespace mesa::internal
