// callback_resource — a std::pmr::memory_resource over a C callback table.
//
// What it is for: the bridge from the C world (a `const mesa_allocator *`: libc, the default,
// the application's VkAllocationCallbacks) into C++ containers and resources.
//
// What it costs: one indirect call per allocate/deallocate on top of the table's own cost; no
// per-block header. The size passed to deallocate is not forwarded (C frees are unsized).
//
// Example:
//   mesa::callback_resource resource(device_allocator, MESA_ALLOC_SCOPE_DEVICE);
//   std::pmr::vector<int> v(&resource);   // every allocation goes through device_allocator
//
// A NULL from the table becomes std::bad_alloc. Two callback_resources compare equal when they
// use the same table (memory from one can be freed through the other); the scope is only a
// hint passed to alloc_fn.
#ifndef MESA_ALLOC_CALLBACK_RESOURCE_H_
#define MESA_ALLOC_CALLBACK_RESOURCE_H_

#include <cstddef>
#include <memory_resource>

#include "mesa_alloc/mesa_alloc.h"

namespace mesa {

class callback_resource final : public std::pmr::memory_resource {
 public:
  // `table` NULL means the default allocator, resolved now. A table without alloc_fn,
  // realloc_fn or free_fn is refused: one line on stderr naming the missing function, then
  // abort (it would otherwise be called through address 0).
  explicit callback_resource(const mesa_allocator *table,
                             mesa_alloc_scope scope = MESA_ALLOC_SCOPE_OBJECT) noexcept;

  const mesa_allocator *table() const noexcept { return table_; }
  mesa_alloc_scope scope() const noexcept { return scope_; }

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override;

  const mesa_allocator *table_;
  mesa_alloc_scope scope_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_CALLBACK_RESOURCE_H_
