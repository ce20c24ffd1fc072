// counting_allocator — a test mesa_allocator that counts every call, checks ownership and fails
// on demand.
//
// What it is for: tests that must prove where memory went. Every alloc/realloc/free through
// table() is counted; the table remembers its live blocks and their sizes, so it reports bytes
// handed out, live and at peak, and a free of a block it did not hand out (a cross-table free)
// is counted as foreign and not passed on. fail_next(n) makes the next n alloc/realloc calls
// return NULL (callback_resource turns that into std::bad_alloc). Calls to its upstream (libc
// by default, the root of the stack) are made inside a test::upstream_exempt scope, so a
// global_allocation_counter does not count them.
//
// What it costs: one mutex and a fixed open-addressing set made at construction (16 bytes per
// slot, 2 * max_live slots), so the alloc/free path itself never allocates. Thread-safe.
//
// Example:
//   test::counting_allocator counting;
//   void *p = mesa_alloc2(nullptr, counting.table(), 64, 16, MESA_ALLOC_SCOPE_OBJECT);
//   EXPECT_EQ(counting.allocations(), 1);
//   mesa_free2(nullptr, counting.table(), p);
//   EXPECT_EQ(counting.live(), 0);
#ifndef MESA_ALLOC_TESTS_SUPPORT_COUNTING_ALLOCATOR_H_
#define MESA_ALLOC_TESTS_SUPPORT_COUNTING_ALLOCATOR_H_

#include <cstddef>
#include <memory>
#include <mutex>

#include "mesa_alloc/mesa_alloc.h"

namespace test {

class counting_allocator {
 public:
  explicit counting_allocator(const mesa_allocator *upstream = mesa_libc_allocator(),
                              std::size_t max_live = 1 << 16);
  counting_allocator(const counting_allocator &) = delete;
  counting_allocator &operator=(const counting_allocator &) = delete;

  const mesa_allocator *table() const noexcept { return &table_; }

  long allocations() const { return locked(allocations_); }
  long reallocations() const { return locked(reallocations_); }
  long frees() const { return locked(frees_); }  // of own blocks, incl. realloc(p, 0)
  long foreign_frees() const { return locked(foreign_frees_); }        // frees of others' blocks
  long failures() const { return locked(failures_); }                  // injected by fail_next
  long live() const { return locked(allocations_) - locked(frees_); }  // blocks not yet freed
  // Bytes handed out by alloc and realloc, ever; of live blocks now; of live blocks at most.
  std::size_t bytes_total() const { return locked(bytes_total_); }
  std::size_t bytes_live() const { return locked(bytes_live_); }
  std::size_t peak_bytes() const { return locked(peak_bytes_); }
  std::size_t last_alignment() const { return locked(last_alignment_); }
  mesa_alloc_scope last_scope() const { return locked(last_scope_); }

  // The next `n` alloc/realloc calls fail (return NULL) without touching the upstream.
  void fail_next(long n) {
    std::lock_guard<std::mutex> lock(mutex_);
    fail_next_ = n;
  }

 private:
  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope);
  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope);
  static void free(void *user_data, void *ptr);

  template <class T>
  T locked(const T &value) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return value;
  }
  // All below with mutex_ held.
  bool should_fail(std::size_t alignment, mesa_alloc_scope scope) noexcept;
  std::size_t find(const void *p) const noexcept;
  void insert(const void *p, std::size_t size) noexcept;
  void erase(std::size_t slot) noexcept;

  mesa_allocator table_{};
  const mesa_allocator *upstream_;
  std::size_t capacity_;
  std::unique_ptr<const void *[]> slots_;
  std::unique_ptr<std::size_t[]> sizes_;
  mutable std::mutex mutex_;
  long allocations_ = 0, reallocations_ = 0, frees_ = 0, foreign_frees_ = 0, failures_ = 0;
  long fail_next_ = 0;
  std::size_t bytes_total_ = 0, bytes_live_ = 0, peak_bytes_ = 0;
  std::size_t last_alignment_ = 0;
  mesa_alloc_scope last_scope_ = MESA_ALLOC_SCOPE_COMMAND;
};

}  // namespace test

#endif  // MESA_ALLOC_TESTS_SUPPORT_COUNTING_ALLOCATOR_H_
