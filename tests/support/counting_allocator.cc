#include "tests/support/counting_allocator.h"

namespace test {

bool counting_allocator::should_fail() noexcept {
  long n = fail_next_.load();
  while (n > 0) {
    if (fail_next_.compare_exchange_weak(n, n - 1)) {
      failures_++;
      return true;
    }
  }
  return false;
}

void *counting_allocator::alloc(void *user_data, std::size_t size, std::size_t alignment,
                                mesa_alloc_scope scope) {
  auto *self = static_cast<counting_allocator *>(user_data);
  self->last_alignment_ = alignment;
  self->last_scope_ = scope;
  if (self->should_fail()) return nullptr;
  const mesa_allocator *libc = mesa_libc_allocator();
  void *p = libc->alloc_fn(libc->user_data, size, alignment, scope);
  if (p != nullptr) {
    self->allocations_++;
    self->live_++;
  }
  return p;
}

void *counting_allocator::realloc(void *user_data, void *ptr, std::size_t size,
                                  std::size_t alignment, mesa_alloc_scope scope) {
  auto *self = static_cast<counting_allocator *>(user_data);
  if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
  self->last_alignment_ = alignment;
  self->last_scope_ = scope;
  const mesa_allocator *libc = mesa_libc_allocator();
  if (size == 0) {
    self->frees_++;
    self->live_--;
    return libc->realloc_fn(libc->user_data, ptr, 0, alignment, scope);
  }
  if (self->should_fail()) return nullptr;
  void *p = libc->realloc_fn(libc->user_data, ptr, size, alignment, scope);
  if (p != nullptr) self->reallocations_++;
  return p;
}

void counting_allocator::free(void *user_data, void *ptr) {
  if (ptr == nullptr) return;
  auto *self = static_cast<counting_allocator *>(user_data);
  self->frees_++;
  self->live_--;
  const mesa_allocator *libc = mesa_libc_allocator();
  libc->free_fn(libc->user_data, ptr);
}

}  // namespace test
