#include "mesa_alloc/internal/diagnostics.h"

#include <cstdio>

namespace mesa::internal {

void report_invalid_alignment(const char *where, std::size_t alignment) noexcept {
#ifndef NDEBUG
  std::fprintf(stderr, "mesa_alloc: invalid alignment %zu in %s (must be a power of two)\n",
               alignment, where);
#else
  (void)where;
  (void)alignment;
#endif
}

void report_size_overflow(const char *where, std::size_t count, std::size_t size) noexcept {
#ifndef NDEBUG
  std::fprintf(stderr, "mesa_alloc: size overflow in %s (%zu x %zu does not fit in size_t)\n",
               where, count, size);
#else
  (void)where;
  (void)count;
  (void)size;
#endif
}

}  // namespace mesa::internal
