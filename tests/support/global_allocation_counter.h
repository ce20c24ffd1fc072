// global_allocation_counter — counts calls to global operator new/delete and malloc/free made
// while armed, for the run-time "no global allocation" proof tests.
//
// What it is for: linking this library (alwayslink) into a test binary replaces the global
// operator new/delete (every form) and, outside ASan/TSan builds, malloc/calloc/realloc/
// reallocarray/free/aligned_alloc/posix_memalign/memalign/valloc/pvalloc (forwarding to glibc's
// __libc_* entry points). While a global_allocation_counter is alive ("armed"), every such call
// that returns or releases a block is counted, except calls made inside a test::upstream_exempt
// scope (a counting table's own libc upstream). Sanitizer runtimes own malloc, so under
// ASan/TSan only operator new/delete are replaced (kReplacesMalloc is false).
//
// What it costs: an atomic load and a thread_local read per global allocation in the whole
// binary. Tests only; link it into a binary of its own. One counter armed at a time.
//
// Example:
//   test::global_allocation_counter counter;
//   run_workload(&resource);
//   const test::global_allocation_counts counts = counter.close();
//   EXPECT_EQ(counts.news, 0);
//   if (test::kReplacesMalloc) EXPECT_EQ(counts.mallocs, 0);
#ifndef MESA_ALLOC_TESTS_SUPPORT_GLOBAL_ALLOCATION_COUNTER_H_
#define MESA_ALLOC_TESTS_SUPPORT_GLOBAL_ALLOCATION_COUNTER_H_

#include "tests/support/upstream_exempt.h"

namespace test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kReplacesMalloc = false;
#else
inline constexpr bool kReplacesMalloc = true;
#endif

struct global_allocation_counts {
  long news = 0, deletes = 0, mallocs = 0, frees = 0;
  long total() const noexcept { return news + deletes + mallocs + frees; }
};

// Arms the counters (from zero) on construction, disarms on close() or destruction.
class global_allocation_counter {
 public:
  global_allocation_counter() noexcept;
  ~global_allocation_counter();
  global_allocation_counter(const global_allocation_counter &) = delete;
  global_allocation_counter &operator=(const global_allocation_counter &) = delete;

  // The counts so far (still armed).
  global_allocation_counts counts() const noexcept;
  // Disarms; the final counts.
  global_allocation_counts close() noexcept;
};

}  // namespace test

#endif  // MESA_ALLOC_TESTS_SUPPORT_GLOBAL_ALLOCATION_COUNTER_H_
