// counting_allocator — a mesa_allocator table over libc that counts every call, for tests.
//
// What it is for: asserting exactly how many allocations, reallocations and frees went
// through a table, and that nothing is live at the end. Can be told to fail the next
// allocations (fail_next) to exercise out-of-memory paths. Thread-safe (atomic counters).
//
//   test::counting_allocator counting;
//   void *p = mesa_alloc2(nullptr, counting.table(), 64, 16, MESA_ALLOC_SCOPE_OBJECT);
//   EXPECT_EQ(counting.allocations(), 1);
//   mesa_free2(nullptr, counting.table(), p);
//   EXPECT_EQ(counting.live(), 0);
#ifndef MESA_ALLOC_TESTS_SUPPORT_COUNTING_ALLOCATOR_H_
#define MESA_ALLOC_TESTS_SUPPORT_COUNTING_ALLOCATOR_H_

#include <atomic>
#include <cstddef>

#include "mesa_alloc/mesa_alloc.h"

namespace test {

class counting_allocator {
 public:
  counting_allocator() noexcept
      : table_{this,
               &counting_allocator::alloc,
               &counting_allocator::realloc,
               &counting_allocator::free,
               nullptr,
               nullptr} {}
  counting_allocator(const counting_allocator &) = delete;
  counting_allocator &operator=(const counting_allocator &) = delete;

  const mesa_allocator *table() const noexcept { return &table_; }

  long allocations() const noexcept { return allocations_.load(); }
  long reallocations() const noexcept { return reallocations_.load(); }
  long frees() const noexcept { return frees_.load(); }  // non-NULL frees, incl. realloc(p, 0)
  long failures() const noexcept { return failures_.load(); }
  // Blocks handed out and not yet freed.
  long live() const noexcept { return live_.load(); }
  std::size_t last_alignment() const noexcept { return last_alignment_.load(); }
  mesa_alloc_scope last_scope() const noexcept { return last_scope_.load(); }

  // The next `n` alloc/realloc calls fail (return NULL) without touching libc.
  void fail_next(long n) noexcept { fail_next_.store(n); }

 private:
  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope);
  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope);
  static void free(void *user_data, void *ptr);
  bool should_fail() noexcept;

  mesa_allocator table_;
  std::atomic<long> allocations_{0}, reallocations_{0}, frees_{0}, failures_{0}, live_{0};
  std::atomic<long> fail_next_{0};
  std::atomic<std::size_t> last_alignment_{0};
  std::atomic<mesa_alloc_scope> last_scope_{MESA_ALLOC_SCOPE_COMMAND};
};

}  // namespace test

#endif  // MESA_ALLOC_TESTS_SUPPORT_COUNTING_ALLOCATOR_H_
