#include "mesa_alloc/internal/checked_alloc.h"

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"

namespace mesa::internal {

void *refuse_misaligned(const mesa_allocator *table, void *p, std::size_t alignment,
                        const char *who, const char *source) noexcept {
  report_misaligned_result(who, source, p, alignment);
  table->free_fn(table->user_data, p);
  return nullptr;
}

void *checked_alloc_outside(const mesa_allocator *table, std::size_t size, std::size_t alignment,
                            mesa_alloc_scope scope, const char *who) noexcept {
  const foreign_call call(table);
  return checked_alloc(table, size, alignment, scope, who, "callbacks");
}

}  // namespace mesa::internal
