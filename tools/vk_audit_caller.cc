#include "tools/vk_audit_caller.h"

namespace vk_audit {
namespace {

thread_local const void *t_caller = nullptr;

const mesa_allocator *inner_of(void *self) { return static_cast<const mesa_allocator *>(self); }

// Keeps `caller` for the thread while a call runs; the outermost call's, if they nest.
class noted_caller {
 public:
  explicit noted_caller(const void *caller) noexcept : outermost_(t_caller == nullptr) {
    if (outermost_) t_caller = caller;
  }
  noted_caller(const noted_caller &) = delete;
  noted_caller &operator=(const noted_caller &) = delete;
  ~noted_caller() {
    if (outermost_) t_caller = nullptr;
  }

 private:
  bool outermost_;
};

}  // namespace

const void *entry_caller() noexcept { return t_caller; }

caller_entry::caller_entry(const mesa_allocator *inner) noexcept
    : table_{const_cast<mesa_allocator *>(inner),
             &caller_entry::alloc,
             &caller_entry::realloc,
             &caller_entry::free,
             inner->internal_alloc_fn != nullptr ? &caller_entry::internal_alloc : nullptr,
             inner->internal_free_fn != nullptr ? &caller_entry::internal_free : nullptr} {}

void *caller_entry::alloc(void *self, std::size_t size, std::size_t alignment,
                          mesa_alloc_scope scope) {
  const noted_caller note(__builtin_return_address(0));
  const mesa_allocator *in = inner_of(self);
  return in->alloc_fn(in->user_data, size, alignment, scope);
}

void *caller_entry::realloc(void *self, void *ptr, std::size_t size, std::size_t alignment,
                            mesa_alloc_scope scope) {
  const noted_caller note(__builtin_return_address(0));
  const mesa_allocator *in = inner_of(self);
  return in->realloc_fn(in->user_data, ptr, size, alignment, scope);
}

void caller_entry::free(void *self, void *ptr) {
  const mesa_allocator *in = inner_of(self);
  in->free_fn(in->user_data, ptr);
}

void caller_entry::internal_alloc(void *self, std::size_t size, int type, mesa_alloc_scope scope) {
  const mesa_allocator *in = inner_of(self);
  in->internal_alloc_fn(in->user_data, size, type, scope);
}

void caller_entry::internal_free(void *self, std::size_t size, int type, mesa_alloc_scope scope) {
  const mesa_allocator *in = inner_of(self);
  in->internal_free_fn(in->user_data, size, type, scope);
}

}  // namespace vk_audit
