// vk_audit_caller — the table vk_alloc_audit hands the driver: notes who called.
//
// What it is for: the recorder names the module (the Vulkan loader, the driver, a layer) whose
// code asked for each block, from the return address of the callback the driver called. Only
// the function the driver called can take that address soundly (__builtin_return_address(0));
// a layer further down would have to walk a frame pointer through code it did not build, and
// a driver built without frame pointers keeps data in that register. caller_entry sits in front
// of the stack (callback_validator → recorder → ...), takes the address, and keeps it for the
// calling thread while the call runs; the recorder reads it with entry_caller().
//
// What it costs: a thread-local store and clear around each allocating call. A tool layer.
//
// Example:
//   mesa::callback_validator validator(rec.table());
//   vk_audit::caller_entry entry(validator.table());
//   vkCreateInstance(&info, mesa::to_vk(entry.table()), &instance);
#ifndef TOOLS_VK_AUDIT_CALLER_H_
#define TOOLS_VK_AUDIT_CALLER_H_

#include <cstddef>

#include "mesa_alloc/mesa_alloc.h"

namespace vk_audit {

// The return address into the code that called a caller_entry's alloc or realloc on this
// thread, while that call runs; null otherwise.
const void *entry_caller() noexcept;

class caller_entry {
 public:
  // Forwards every call to `inner` (its notifications too, if it has them).
  explicit caller_entry(const mesa_allocator *inner) noexcept;
  caller_entry(const caller_entry &) = delete;
  caller_entry &operator=(const caller_entry &) = delete;

  const mesa_allocator *table() const noexcept { return &table_; }

 private:
  static void *alloc(void *self, std::size_t size, std::size_t alignment, mesa_alloc_scope scope);
  static void *realloc(void *self, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope);
  static void free(void *self, void *ptr);
  static void internal_alloc(void *self, std::size_t size, int type, mesa_alloc_scope scope);
  static void internal_free(void *self, std::size_t size, int type, mesa_alloc_scope scope);

  mesa_allocator table_;
};

}  // namespace vk_audit

#endif  // TOOLS_VK_AUDIT_CALLER_H_
