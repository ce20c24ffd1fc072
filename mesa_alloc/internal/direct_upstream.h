// Internal: an upstream std::pmr::memory_resource, called through its C table when it is a
// callback_resource. The accounting and debugging layers usually sit on one (the C-level
// tables of debug_resources.h wrap their parent table that way), and going straight to the
// table saves one virtual call per operation: a measurable share of a 64-byte alloc+free.
//
// What it costs: one well-predicted branch per call; the behaviour is the resource's own
// (a NULL from the table is std::bad_alloc from allocate(), nullptr from try_allocate(); a
// misaligned block is refused with callback_resource's line, checked_alloc.h), except that a
// size or alignment over kMaxRequestBytes never reaches a pmr resource (request_limit.h).
//
// Example:
//   internal::direct_upstream up(upstream, "my_layer::allocate");  // named in its error lines
//   void *p = up.allocate(64, 16);
//   up.deallocate(p, 64, 16);
#ifndef MESA_ALLOC_INTERNAL_DIRECT_UPSTREAM_H_
#define MESA_ALLOC_INTERNAL_DIRECT_UPSTREAM_H_

#include <cstddef>
#include <memory_resource>
#include <new>

#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

class direct_upstream {
 public:
  // `owner` names the layer in the invalid-alignment line ("tracking_resource::allocate").
  direct_upstream(std::pmr::memory_resource *resource, const char *owner) noexcept;

  std::pmr::memory_resource *resource() const noexcept { return resource_; }
  // The upstream's C table when it is a callback_resource, else null.
  const mesa_allocator *table() const noexcept { return table_; }

  // A request request_refused() flags (an alignment that is not a power of two, a size or
  // alignment no block can have) fails here, upstream untouched, whatever the upstream is.
  void *allocate(std::size_t bytes, std::size_t alignment) {
    if (__builtin_expect(request_refused(bytes, alignment), 0)) refuse_request(owner_, alignment);
    if (table_ == nullptr) return resource_->allocate(bytes, alignment);
    void *p = checked_alloc(table_, bytes, alignment, scope_, "callback_resource");
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  // nullptr instead of an exception.
  void *try_allocate(std::size_t bytes, std::size_t alignment) noexcept {
    if (__builtin_expect(request_refused(bytes, alignment), 0)) {
      report_refused_request(owner_, alignment);
      return nullptr;
    }
    if (table_ != nullptr)
      return checked_alloc(table_, bytes, alignment, scope_, "callback_resource");
    try {
      return resource_->allocate(bytes, alignment);
    } catch (...) {
      return nullptr;
    }
  }
  void deallocate(void *p, std::size_t bytes, std::size_t alignment) noexcept {
    if (table_ != nullptr) return table_->free_fn(table_->user_data, p);
    resource_->deallocate(p, bytes, alignment);
  }

 private:
  std::pmr::memory_resource *resource_;
  const mesa_allocator *table_;  // resource_'s table when it is a callback_resource
  mesa_alloc_scope scope_;
  const char *owner_;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_DIRECT_UPSTREAM_H_
