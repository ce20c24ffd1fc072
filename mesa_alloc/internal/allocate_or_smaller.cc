#include "mesa_alloc/internal/allocate_or_smaller.h"

#include <new>

#include "mesa_alloc/internal/tentative_request.h"

namespace mesa::internal {

void *allocate_or_smaller(std::pmr::memory_resource *upstream, std::size_t *size, std::size_t least,
                          std::size_t alignment) {
  for (;;) {
    try {
      const tentative_request tentative(*size > least);  // a smaller block is asked for next
      return upstream->allocate(*size, alignment);
    } catch (const std::bad_alloc &) {
      if (*size <= least) throw;
      *size = *size / 2 > least ? *size / 2 : least;
    }
  }
}

}  // namespace mesa::internal
