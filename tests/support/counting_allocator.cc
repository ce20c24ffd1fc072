#include "tests/support/counting_allocator.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tests/support/upstream_exempt.h"

namespace test {
namespace {

// Marks a freed slot (never a block address).
const void *tombstone() noexcept {
  static const char mark = 0;
  return &mark;
}

std::size_t slots_for(std::size_t n) noexcept {
  std::size_t c = 16;
  while (c < 2 * n) c *= 2;
  return c;
}

}  // namespace

counting_allocator::counting_allocator(const mesa_allocator *upstream, std::size_t max_live)
    : upstream_(upstream),
      capacity_(slots_for(max_live)),
      slots_(new const void *[capacity_]()),
      sizes_(new std::size_t[capacity_]()) {
  table_.user_data = this;
  table_.alloc_fn = &alloc;
  table_.realloc_fn = &realloc;
  table_.free_fn = &free;
}

bool counting_allocator::should_fail(std::size_t alignment, mesa_alloc_scope scope) noexcept {
  last_alignment_ = alignment;
  last_scope_ = scope;
  if (fail_next_ <= 0) return false;
  --fail_next_;
  ++failures_;
  return true;
}

// The slot holding `p`; if absent, a slot that does not hold it.
std::size_t counting_allocator::find(const void *p) const noexcept {
  std::size_t i =
      (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull & (capacity_ - 1);
  for (std::size_t n = 0; n < capacity_ && slots_[i] != nullptr && slots_[i] != p; ++n) {
    i = (i + 1) & (capacity_ - 1);
  }
  return i;
}

void counting_allocator::insert(const void *p, std::size_t size) noexcept {
  std::size_t i =
      (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull & (capacity_ - 1);
  for (std::size_t n = 0; slots_[i] != nullptr && slots_[i] != tombstone(); ++n) {
    if (n == capacity_) {
      std::fputs("counting_allocator: more live blocks than max_live\n", stderr);
      std::abort();
    }
    i = (i + 1) & (capacity_ - 1);
  }
  slots_[i] = p;
  sizes_[i] = size;
  bytes_total_ += size;
  bytes_live_ += size;
  if (bytes_live_ > peak_bytes_) peak_bytes_ = bytes_live_;
}

void counting_allocator::erase(std::size_t slot) noexcept {
  slots_[slot] = tombstone();
  bytes_live_ -= sizes_[slot];
}

void *counting_allocator::alloc(void *user_data, std::size_t size, std::size_t alignment,
                                mesa_alloc_scope scope) {
  auto *self = static_cast<counting_allocator *>(user_data);
  std::lock_guard<std::mutex> lock(self->mutex_);
  if (self->should_fail(alignment, scope)) return nullptr;
  void *p;
  {
    upstream_exempt exempt;  // not counted by a global_allocation_counter
    p = self->upstream_->alloc_fn(self->upstream_->user_data, size, alignment, scope);
  }
  if (p == nullptr) return nullptr;
  ++self->allocations_;
  self->insert(p, size);
  return p;
}

void counting_allocator::free(void *user_data, void *ptr) {
  if (ptr == nullptr) return;
  auto *self = static_cast<counting_allocator *>(user_data);
  std::lock_guard<std::mutex> lock(self->mutex_);
  const std::size_t i = self->find(ptr);
  if (self->slots_[i] != ptr) {
    ++self->foreign_frees_;
    return;
  }
  self->erase(i);
  ++self->frees_;
  upstream_exempt exempt;
  self->upstream_->free_fn(self->upstream_->user_data, ptr);
}

// The upstream's realloc; the block moves in the live set. Counted as a reallocation, neither
// an allocation nor a free (except realloc(NULL, n) and realloc(p, 0)).
void *counting_allocator::realloc(void *user_data, void *ptr, std::size_t size,
                                  std::size_t alignment, mesa_alloc_scope scope) {
  if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
  auto *self = static_cast<counting_allocator *>(user_data);
  if (size == 0) {
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->last_alignment_ = alignment;
      self->last_scope_ = scope;
    }
    free(user_data, ptr);
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(self->mutex_);
  if (self->should_fail(alignment, scope)) return nullptr;
  const std::size_t i = self->find(ptr);
  if (self->slots_[i] != ptr) {
    ++self->foreign_frees_;
    return nullptr;
  }
  void *q;
  {
    upstream_exempt exempt;  // not counted by a global_allocation_counter
    q = self->upstream_->realloc_fn(self->upstream_->user_data, ptr, size, alignment, scope);
  }
  if (q != nullptr) {
    ++self->reallocations_;
    self->erase(i);
    self->insert(q, size);
  }
  return q;
}

}  // namespace test
