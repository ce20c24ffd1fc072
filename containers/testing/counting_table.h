// counting_table — a test mesa_allocator that counts, checks ownership and fails on demand.
//
// What it is for: tests that must prove where memory went. Every alloc/free through table() is
// counted; the table remembers its live blocks, so a free of a block it did not hand out (a
// cross-resource free) is counted as foreign and not passed on; fail_nth(n) makes the n-th
// allocation attempt from now return NULL (callback_resource turns that into std::bad_alloc).
// It also keeps each live block's size: bytes handed out, live and at peak. Calls to its
// upstream are made inside a test::upstream_exempt scope, so a global_allocation_counter does
// not count them.
//
// What it costs: its bookkeeping is a fixed open-addressing set made at construction, so the
// alloc/free path itself never allocates. Not thread-safe; tests only.
//
// Example:
//   mesa::testing::counting_table counts;
//   mesa::callback_resource resource(counts.table());
//   { mesa::vector<int> v(&resource); v.push_back(1); }
//   EXPECT_EQ(counts.allocations(), counts.frees());
#ifndef MESA_CONTAINERS_TESTING_COUNTING_TABLE_H_
#define MESA_CONTAINERS_TESTING_COUNTING_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "mesa_alloc/mesa_alloc.h"
#include "tests/support/upstream_exempt.h"

namespace mesa::testing {

class counting_table {
 public:
  explicit counting_table(const mesa_allocator *upstream = mesa_libc_allocator(),
                          std::size_t max_live = 1 << 16)
      : upstream_(upstream),
        capacity_(slots_for(max_live)),
        slots_(new const void *[capacity_]()),
        sizes_(new std::size_t[capacity_]()) {
    table_.user_data = this;
    table_.alloc_fn = &alloc;
    table_.realloc_fn = &realloc;
    table_.free_fn = &free;
  }
  counting_table(const counting_table &) = delete;
  counting_table &operator=(const counting_table &) = delete;

  const mesa_allocator *table() const noexcept { return &table_; }

  std::size_t allocations() const noexcept { return allocations_; }
  std::size_t frees() const noexcept { return frees_; }
  std::size_t live() const noexcept { return allocations_ - frees_; }
  std::size_t foreign_frees() const noexcept { return foreign_frees_; }
  std::size_t failed() const noexcept { return failed_; }
  std::size_t attempts() const noexcept { return attempts_; }
  bool owns(const void *p) const noexcept { return slots_[find(p)] == p; }
  // Bytes handed out by alloc and realloc, ever; of live blocks now; of live blocks at most.
  std::size_t bytes_total() const noexcept { return bytes_total_; }
  std::size_t bytes_live() const noexcept { return bytes_live_; }
  std::size_t peak_bytes() const noexcept { return peak_bytes_; }

  // The n-th allocation attempt from now (0-based) fails; -1 cancels.
  void fail_nth(long n) noexcept { fail_at_ = n < 0 ? -1 : static_cast<long>(attempts_) + n; }

 private:
  // Marks a freed slot (never a block address).
  static const void *tombstone() noexcept {
    static const char mark = 0;
    return &mark;
  }

  static std::size_t slots_for(std::size_t n) noexcept {
    std::size_t c = 16;
    while (c < 2 * n) c *= 2;
    return c;
  }
  std::size_t hash(const void *p) const noexcept {
    return (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull & (capacity_ - 1);
  }
  // The slot holding `p`; if absent, a slot that does not hold it.
  std::size_t find(const void *p) const noexcept {
    std::size_t i = hash(p);
    for (std::size_t n = 0; n < capacity_ && slots_[i] != nullptr && slots_[i] != p; ++n) {
      i = (i + 1) & (capacity_ - 1);
    }
    return i;
  }
  void insert(const void *p, std::size_t size) noexcept {
    std::size_t i = hash(p);
    for (std::size_t n = 0; slots_[i] != nullptr && slots_[i] != tombstone(); ++n) {
      if (n == capacity_) {
        std::fputs("counting_table: more live blocks than max_live\n", stderr);
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
  void erase(std::size_t i) noexcept {
    slots_[i] = tombstone();
    bytes_live_ -= sizes_[i];
  }

  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope) {
    auto *self = static_cast<counting_table *>(user_data);
    if (static_cast<long>(self->attempts_++) == self->fail_at_) {
      ++self->failed_;
      return nullptr;
    }
    void *p;
    {
      test::upstream_exempt exempt;  // not counted by a global_allocation_counter
      p = self->upstream_->alloc_fn(self->upstream_->user_data, size, alignment, scope);
    }
    if (p == nullptr) {
      ++self->failed_;
      return nullptr;
    }
    ++self->allocations_;
    self->insert(p, size);
    return p;
  }

  static void free(void *user_data, void *p) {
    if (p == nullptr) return;
    auto *self = static_cast<counting_table *>(user_data);
    const std::size_t i = self->find(p);
    if (self->slots_[i] != p) {
      ++self->foreign_frees_;
      return;
    }
    self->erase(i);
    ++self->frees_;
    {
      test::upstream_exempt exempt;  // not counted by a global_allocation_counter
      self->upstream_->free_fn(self->upstream_->user_data, p);
    }
  }

  // The upstream's realloc; the block moves in the live set. Counted as neither alloc nor free.
  static void *realloc(void *user_data, void *p, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    if (p == nullptr) return alloc(user_data, size, alignment, scope);
    if (size == 0) {
      free(user_data, p);
      return nullptr;
    }
    auto *self = static_cast<counting_table *>(user_data);
    const std::size_t i = self->find(p);
    if (self->slots_[i] != p) {
      ++self->foreign_frees_;
      return nullptr;
    }
    void *q;
    {
      test::upstream_exempt exempt;  // not counted by a global_allocation_counter
      q = self->upstream_->realloc_fn(self->upstream_->user_data, p, size, alignment, scope);
    }
    if (q != nullptr) {
      self->erase(i);
      self->insert(q, size);
    }
    return q;
  }

  mesa_allocator table_{};
  const mesa_allocator *upstream_;
  std::size_t capacity_;
  std::unique_ptr<const void *[]> slots_;
  std::unique_ptr<std::size_t[]> sizes_;
  std::size_t allocations_ = 0;
  std::size_t frees_ = 0;
  std::size_t foreign_frees_ = 0;
  std::size_t failed_ = 0;
  std::size_t attempts_ = 0;
  long fail_at_ = -1;
  std::size_t bytes_total_ = 0;
  std::size_t bytes_live_ = 0;
  std::size_t peak_bytes_ = 0;
};

}  // namespace mesa::testing

#endif  // MESA_CONTAINERS_TESTING_COUNTING_TABLE_H_
