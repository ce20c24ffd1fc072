#include "mesa_alloc/internal/direct_upstream.h"

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/internal/resource_cast.h"

namespace mesa::internal {

direct_upstream::direct_upstream(std::pmr::memory_resource *resource, const char *owner) noexcept
    : resource_(resource), table_(nullptr), scope_(MESA_ALLOC_SCOPE_OBJECT), owner_(owner) {
  // callback_resource is final: its allocate is exactly a call through its table.
  if (const auto *callbacks =
          resource != nullptr ? resource_cast<callback_resource>(*resource) : nullptr) {
    table_ = callbacks->table();
    scope_ = callbacks->scope();
  }
}

}  // namespace mesa::internal
