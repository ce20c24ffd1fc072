#include "mesa_alloc/internal/api_caller.h"

namespace mesa::internal {

MESA_ALLOC_PER_COPY std::atomic<bool> callers_wanted_flag{false};

[[gnu::tls_model("initial-exec")]] MESA_ALLOC_PER_COPY __thread const void *api_caller = nullptr;

}  // namespace mesa::internal
