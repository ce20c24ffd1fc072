// fault_resource — fails allocations on purpose, to test out-of-memory paths.
//
// What it is for: proving that code survives allocation failure (pmr: std::bad_alloc; C: NULL)
// without leaking or crashing — the Vulkan CTS `alloc_callback_fail` idea and BDE's
// exception-test loop. Fail the n-th attempt, every one from the n-th, every n-th, or at random
// with a seed (the same attempt numbers fail on every run). fail_each_allocation() runs a piece
// of code again and again, every allocation from the 0th on failing in the first run, from the
// 1st on in the second, and so on, until a run completes; after each run it checks that nothing
// leaked.
//
// What it costs: one atomic increment of the attempt counter per allocation and a seqlock read
// of the setting (plus a hash of the attempt number in random mode); deallocation forwards
// untouched. The resource keeps its last 8 settings, 40 bytes each. A test tool, not for
// production paths.
//
// Example:
//   mesa::fault_resource faults(&upstream);
//   faults.fail_nth(3);                          // the 4th allocation from now fails
//   mesa::fault_loop_result r = mesa::fail_each_allocation(&upstream,
//       [](std::pmr::memory_resource *r) {
//         std::pmr::map<std::pmr::string, int> m(r);
//         m.emplace("a fairly long key that allocates", 1);
//       });
//   assert(r.completed && !r.leaked);
#ifndef MESA_ALLOC_FAULT_RESOURCE_H_
#define MESA_ALLOC_FAULT_RESOURCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/tracking_resource.h"

namespace mesa {

class fault_resource final : public std::pmr::memory_resource {
 public:
  explicit fault_resource(std::pmr::memory_resource *upstream) noexcept : upstream_(upstream) {
    if (upstream == nullptr) internal::report_null_resource("fault_resource", "upstream resource");
  }

  std::pmr::memory_resource *upstream() const noexcept { return upstream_; }

  // The n-th attempt from now (0-based) fails, once; the others succeed.
  void fail_nth(std::uint64_t n) noexcept;
  // The n-th attempt from now and every one after it fail: memory runs out for good, so code
  // that retries smaller (the arena, the pools) cannot get round the failure.
  void fail_from(std::uint64_t n) noexcept;
  // Attempts n-1, 2n-1, ... from now fail (every n-th); n == 0 stops.
  void fail_every(std::uint64_t n) noexcept;
  // Each attempt fails with `probability` (0..1), decided by a hash of (seed, attempt number from
  // now). Below 0 is 0 and above 1 is 1; NaN is reported on stderr and means no failures.
  void fail_random(double probability, std::uint64_t seed) noexcept;
  // No more failures.
  void fail_none() noexcept;
  // The fail_* calls may be made while other threads allocate. Each attempt is numbered as it
  // begins, and a setting takes effect at a number, its origin (attempts() when it is made): the
  // attempts numbered from the origin on are judged by it, whole, and those numbered before it
  // by the setting they were numbered under, however numbering and change interleave. So
  // fail_nth(n) fails exactly the attempt numbered origin + n, and fail_nth(0) made while threads
  // allocate fails one of their attempts. The last kKeptSettings settings that took effect for
  // at least one number are kept: an attempt stalled between its numbering and its judgement (a
  // few instructions) while that many later ones take effect, each for attempts of other
  // threads, is judged by none and succeeds. Concurrent fail_* calls take effect one after the
  // other.
  static constexpr std::uint64_t kKeptSettings = 8;

  // Allocation attempts and injected failures since construction. A request no block can
  // satisfy (an alignment that is not a power of two, a size past PTRDIFF_MAX) is refused
  // before it counts: it is not an attempt, and fail_nth/fail_every do not count it.
  std::uint64_t attempts() const noexcept { return attempts_.load(std::memory_order_relaxed); }
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

  // Counts an attempt and returns true if it must fail (used by the C table too).
  bool should_fail() noexcept;

  // Failures that fault_resources (of this copy of the library) injected on the calling thread
  // so far. A layer with a fallback for a refused request compares it before and after the
  // request: a failure that was injected is passed on, never absorbed by the fallback
  // (debug_resource shrinks a block in place when a full budget has no room to move it, but an
  // injected failure of that move fails the realloc).
  static std::uint64_t injected_on_this_thread() noexcept;

 private:
  enum class mode : int { none, nth, from, every, random };

  void *do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override;
  void set(mode m, std::uint64_t n, std::uint64_t seed, std::uint64_t threshold) noexcept;

  std::pmr::memory_resource *upstream_;
  std::atomic<std::uint64_t> attempts_{0};
  std::atomic<std::uint64_t> failures_{0};
  // One setting. A slot is rewritten only while generation_ is odd.
  struct setting {
    std::atomic<int> kind{static_cast<int>(mode::none)};  // a mode
    std::atomic<std::uint64_t> origin{0};                 // attempts_ when the setting was made
    std::atomic<std::uint64_t> n{0};
    std::atomic<std::uint64_t> seed{0};
    std::atomic<std::uint64_t> threshold{0};  // random mode: fail when hash < threshold
  };
  // The settings are published whole: set() makes generation_ odd while it writes and even after
  // (a seqlock). Setting number newest_ lives in settings_[newest_ % kKeptSettings], the older
  // ones before it; a setting made at the newest one's origin replaces it, as no attempt was
  // numbered under it. should_fail() numbers the attempt, then reads generation g (waiting while
  // it is odd), walks back from the newest setting to the first whose origin is at or below the
  // attempt's number, and rereads until it saw the same even generation before and after.
  // Numbering and the generation reads are sequentially consistent with set()'s taking of the
  // odd generation and of the origin, so a setting whose origin is at or below the number is
  // never missed.
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> newest_{0};
  setting settings_[kKeptSettings];  // all none, origin 0: the state before any fail_* call
};

// What fail_each_allocation() saw.
struct fault_loop_result {
  // leak_at of a leak in the run that had no failure: the body leaks on its success path.
  static constexpr std::uint64_t kNoFailure = UINT64_MAX;

  bool completed = false;            // a run finished with no injected failure
  bool leaked = false;               // some run left memory allocated (see leak_*)
  std::uint64_t runs = 0;            // runs made, the last one included
  std::uint64_t failure_points = 0;  // runs whose allocations failed from their n-th on
  std::uint64_t leak_at = 0;  // the failing allocation index of the leaking run, or kNoFailure
  std::size_t leaked_bytes = 0;
  std::size_t leaked_blocks = 0;
};

// Runs `body(resource)` with allocation n = 0, 1, 2, ... and every later one in that run failing
// (fail_from: like an allocation limit, so code that retries a refused request smaller, as the
// arena and pools do, cannot absorb the failure and leave its error path untested), until a run
// completes with no failure injected, a run leaks (stops at once; a leak in the run with no
// failure is completed and leaked, leak_at kNoFailure), or `max_runs` runs. `body`
// may throw std::bad_alloc (caught) or handle the failure itself. A run leaks when bytes are
// still allocated through `resource` after `body` returns. The resource is a fault_resource over
// a tracking_resource over `upstream`; only single-threaded bodies give meaningful numbers.
template <class Body>
fault_loop_result fail_each_allocation(std::pmr::memory_resource *upstream, Body &&body,
                                       std::uint64_t max_runs = 1000000) {
  fault_loop_result result;
  tracking_resource tracker(upstream, "fail_each_allocation");
  fault_resource faults(&tracker);
  for (std::uint64_t n = 0; n < max_runs; ++n) {
    faults.fail_from(n);
    const std::uint64_t failures_before = faults.failures();
    try {
      body(static_cast<std::pmr::memory_resource *>(&faults));
    } catch (const std::bad_alloc &) {
    }
    ++result.runs;
    const bool injected = faults.failures() != failures_before;
    const tracking_stats s = tracker.stats();
    if (s.bytes_in_use != 0 || s.blocks_in_use != 0) {
      result.completed = !injected;
      result.leaked = true;
      result.leak_at = injected ? n : fault_loop_result::kNoFailure;
      result.leaked_bytes = s.bytes_in_use;
      result.leaked_blocks = s.blocks_in_use;
      break;
    }
    if (!injected) {
      result.completed = true;
      break;
    }
    ++result.failure_points;
  }
  faults.fail_none();
  return result;
}

}  // namespace mesa

#endif  // MESA_ALLOC_FAULT_RESOURCE_H_
