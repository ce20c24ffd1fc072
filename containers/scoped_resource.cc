#include "containers/scoped_resource.h"

#include <cstdio>
#include <cstdlib>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa {
namespace {

// initial-exec, as the core library's hot thread-locals: current_resource() in a driver that
// loads the library with dlopen costs a load, not a __tls_get_addr call.
[[gnu::tls_model("initial-exec")]] thread_local const scoped_resource *innermost = nullptr;

[[gnu::noinline, noreturn]] void out_of_order(const scoped_resource *guard) noexcept {
  std::fprintf(stderr,
               "mesa_alloc: scoped_resource destroyed out of order (guard %p for resource %p is "
               "not the innermost scope of this thread)\n",
               static_cast<const void *>(guard), static_cast<void *>(guard->resource()));
  std::abort();
}

}  // namespace

std::pmr::memory_resource *default_resource() noexcept {
  // Never destroyed: blocks may still be freed through it during static destruction.
  union immortal {
    immortal() : resource(mesa_default_allocator()) {}
    ~immortal() {}
    callback_resource resource;
  };
  static immortal holder;
  return &holder.resource;
}

std::pmr::memory_resource *current_resource() noexcept {
  return innermost != nullptr ? innermost->resource() : default_resource();
}

scoped_resource::scoped_resource(std::pmr::memory_resource *resource) noexcept
    : resource_(resource != nullptr ? resource : default_resource()), previous_(innermost) {
  innermost = this;
}

scoped_resource::~scoped_resource() {
  if (innermost != this) out_of_order(this);
  innermost = previous_;
}

}  // namespace mesa
