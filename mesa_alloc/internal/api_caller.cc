#include "mesa_alloc/internal/api_caller.h"

namespace mesa::internal {

MESA_ALLOC_PER_COPY std::atomic<bool> callers_wanted_flag{false};

[[gnu::tls_model("initial-exec")]] MESA_ALLOC_PER_COPY __thread const void *api_caller = nullptr;

const void *set_aside_api_caller(const mesa_allocator *table) noexcept {
  const void *caller = api_caller;
  if (caller == nullptr || (table != nullptr && made_by_this_copy(table))) return nullptr;
  api_caller = nullptr;
  return caller;
}

void restore_api_caller(const void *saved) noexcept { api_caller = saved; }

const void *set_aside_api_caller_if_recorded(const mesa_allocator *table) noexcept {
  return caller_recorded() ? set_aside_api_caller(table) : nullptr;
}

resource_call::resource_call(const mesa_allocator *table, const void *caller) noexcept {
  if (api_caller != nullptr) {
    saved_ = set_aside_api_caller(table);
  } else if (made_by_this_copy(table)) {
    api_caller = caller;
    recorded_ = true;
  }
}

}  // namespace mesa::internal
