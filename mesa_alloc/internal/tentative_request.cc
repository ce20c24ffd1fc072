#include "mesa_alloc/internal/tentative_request.h"

namespace mesa::internal {
namespace {

thread_local bool tentative_here = false;

}  // namespace

tentative_request::tentative_request(bool tentative) noexcept : was_active_(tentative_here) {
  tentative_here = was_active_ || tentative;
}

tentative_request::~tentative_request() { tentative_here = was_active_; }

bool tentative_request::active() noexcept { return tentative_here; }

}  // namespace mesa::internal
