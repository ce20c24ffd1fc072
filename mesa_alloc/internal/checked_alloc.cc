#include "mesa_alloc/internal/checked_alloc.h"

#include "mesa_alloc/internal/diagnostics.h"

namespace mesa::internal {

void *refuse_misaligned(const mesa_allocator *table, void *p, std::size_t alignment,
                        const char *who, const char *source) noexcept {
  report_misaligned_result(who, source, p, alignment);
  table->free_fn(table->user_data, p);
  return nullptr;
}

}  // namespace mesa::internal
