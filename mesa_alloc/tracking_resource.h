// tracking_resource — memory accounting: bytes and blocks in use, peaks, totals, failures,
// split by mesa_alloc_scope, named and hierarchical, with an optional budget.
//
// What it is for: knowing where host memory goes (a "driver" tracker with "compiler", "winsys"
// and "cache" children; children roll up into their parents), and enforcing a hard budget on
// embedded systems: an allocation that would take a tracker (or any ancestor) over its limit
// fails (std::bad_alloc; NULL from C) and is counted as a failed allocation — unless its caller
// had a fallback (the arena's and pools' next block at half the size, the debug layer keeping a
// shrinking block in place: internal/tentative_request.h), so the count is of failures the
// program saw.
//
// What it costs: cheap enough for release builds. Each thread owns one counter shard per
// tracker (plain loads and stores, no lock, no atomic read-modify-write), so threads never
// contend; stats() folds the shards. Per allocate or deallocate: one thread-local load and two
// counter updates (four outside MESA_ALLOC_SCOPE_OBJECT), for the tracker and each ancestor; a
// root tracker with no limit does it inline, about 70 instructions to allocate and 35 to free
// besides its upstream's (cachegrind at -O2; about 76 and 41 in an -O3 release build) (a child
// walks its ancestors out of line; more than 63 live threads share one shard with atomic updates).
// A limit adds one shared atomic compare-and-swap per operation on each limited tracker (exactness
// costs contention); trackers with no limit on themselves or an ancestor skip it (a budget on
// "cache" costs "compiler" nothing). Memory: 64 shards of 256 bytes (16 KiB) per tracker.
// peak_bytes/peak_blocks are exact while one thread uses the tracker. With more threads they are
// sampled, without a lock, when a thread's own usage (its shard's allocated minus freed) reaches a
// new high of its own, even if the threads take turns: a peak reached while one thread is back
// under its own earlier high and others hold memory is missed (thread A peaks at 1000 bytes and
// frees them, B holds 500, A takes 800 again: 1300 live, 1000 reported), and a thread whose frees
// of other threads' blocks took its own usage below zero samples only once it is above its old high
// again. A sample can also count a block freed on another thread while it reads the counters. So
// with several threads the peaks are an estimate, usually low (and, by a block freed meanwhile,
// sometimes high); bytes and blocks in use, the totals and a limit are exact. While a tracker has a
// limit, its peak bytes come from its charge instead (one exact counter), so what it reaches under
// the limit never reads above it (a peak from before the limit was set stays). (An exact peak
// without a limit would need every allocation to read the other threads' counters, the
// contention the shards are there to avoid.)
//
// Example:
//   mesa::tracking_resource driver(std::pmr::new_delete_resource(), "driver");
//   // The parent gets the child's counts; the upstream is where memory comes from. Making the
//   // parent the upstream too would count every byte in it twice.
//   mesa::tracking_resource compiler(std::pmr::new_delete_resource(), "compiler", &driver);
//   compiler.set_limit(64 << 20);
//   std::pmr::vector<int> v(&compiler);
//   v.resize(1000);
//   driver.print_report(stderr);       // aligned text table; print_json() for machines
//
// A parent must outlive its children (destroying it first cuts them loose, with a line naming
// both; the destroyed tracker's ancestors stop counting what the children hold). Cutting loose
// is not synchronised with the children's calls: a parent destroyed while another thread
// allocates or frees through one of its children is a use after free, as with any object
// destroyed while in use. The pmr
// interface accounts under MESA_ALLOC_SCOPE_OBJECT; allocate_in_scope() and the C table
// (mesa_tracking_create in debug_resources.h) account under the caller's scope.
//
// Through the pmr interface the tracker counts the size deallocate() is given, as it has no
// header to check it against: a wrong size leaves bytes in use (and the peaks after it) off
// by the difference for the tracker's lifetime; only a limited tracker notices, when its
// charge would go below 0 (one line). A debug_resource above it catches the wrong size
// itself; the C table keeps each block's size in a header and cannot be misled.
#ifndef MESA_ALLOC_TRACKING_RESOURCE_H_
#define MESA_ALLOC_TRACKING_RESOURCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory_resource>
#include <mutex>
#include <string_view>

#include "mesa_alloc/internal/direct_upstream.h"
#include "mesa_alloc/internal/per_copy.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa {

// Counters of one scope.
struct tracking_scope_stats {
  std::size_t bytes_in_use = 0;
  std::size_t blocks_in_use = 0;
  std::uint64_t total_bytes = 0;  // bytes ever allocated in this scope
  std::uint64_t total_allocations = 0;
  std::uint64_t total_deallocations = 0;
  std::uint64_t failed_allocations = 0;
};

struct tracking_stats {
  std::size_t bytes_in_use = 0;
  std::size_t peak_bytes = 0;
  std::uint64_t total_bytes = 0;  // bytes ever allocated
  std::size_t blocks_in_use = 0;
  std::size_t peak_blocks = 0;
  std::uint64_t total_allocations = 0;
  std::uint64_t total_deallocations = 0;
  std::uint64_t failed_allocations = 0;  // over a limit (not a request with a fallback), or the
                                         // upstream failed
  tracking_scope_stats scopes[MESA_ALLOC_SCOPE_COUNT];
};

namespace internal {
struct tracking_table;
// Exclusive shards; index kTrackingShards is the shared one.
MESA_ALLOC_PER_COPY inline constexpr int kTrackingShards = 63;
// The shard index of the calling thread, the same in every tracker; kTrackingShards (the shared
// atomic shard) once all exclusive shards are taken or the thread is exiting.
int tracking_shard_index() noexcept;
}  // namespace internal

class tracking_resource final : public std::pmr::memory_resource {
 public:
  static constexpr std::size_t kNoLimit = SIZE_MAX;
  MESA_ALLOC_PER_COPY static constexpr std::size_t kMaxName = 47;  // longer names are truncated

  tracking_resource(std::pmr::memory_resource *upstream, std::string_view name,
                    tracking_resource *parent = nullptr) noexcept;
  ~tracking_resource() override;
  tracking_resource(const tracking_resource &) = delete;
  tracking_resource &operator=(const tracking_resource &) = delete;

  std::pmr::memory_resource *upstream() const noexcept { return direct_.resource(); }
  tracking_resource *parent() const noexcept { return parent_; }
  std::string_view name() const noexcept { return name_; }

  // Folds the shards. Exact when no other thread is allocating through this tracker.
  tracking_stats stats() const noexcept;

  // The budget of this tracker (children count against it). kNoLimit removes it. Call while no
  // other thread allocates through this tracker or its children.
  void set_limit(std::size_t bytes) noexcept;
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }

  // Allocation with an explicit scope; throws std::bad_alloc over a limit or when the upstream
  // fails (counted in failed_allocations). deallocate_in_scope must get the same scope; a null
  // `p` does nothing there. A scope outside the MESA_ALLOC_SCOPE_* values is counted as
  // MESA_ALLOC_SCOPE_OBJECT.
  void *allocate_in_scope(std::size_t bytes, std::size_t alignment, mesa_alloc_scope scope);
  void deallocate_in_scope(void *p, std::size_t bytes, std::size_t alignment,
                           mesa_alloc_scope scope) noexcept;

  // Aligned text table of this tracker and its descendants (indented), one row per tracker.
  void print_report(std::FILE *out) const noexcept;
  // The same as JSON: {"name":..., "bytes_in_use":..., ..., "scopes":{...}, "children":[...]}.
  void print_json(std::FILE *out) const noexcept;

 private:
  friend struct internal::tracking_table;  // the C table (mesa_tracking_create)

  // Monotonic counters; in use = allocated - freed. The OBJECT scope is derived (totals minus
  // the other scopes), so the pmr path (always OBJECT) updates two counters per operation.
  struct alignas(64) shard {
    std::atomic<std::uint64_t> allocated_bytes{0};
    std::atomic<std::uint64_t> freed_bytes{0};
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> deallocations{0};
    std::atomic<std::int64_t> high_bytes{0};   // highest allocated - freed seen in this shard
    std::atomic<std::int64_t> high_blocks{0};  // highest allocations - deallocations
    std::atomic<std::uint64_t> failures{0};
    std::atomic<std::uint64_t> scope_allocated_bytes[MESA_ALLOC_SCOPE_COUNT] = {};
    std::atomic<std::uint64_t> scope_freed_bytes[MESA_ALLOC_SCOPE_COUNT] = {};
    std::atomic<std::uint64_t> scope_allocations[MESA_ALLOC_SCOPE_COUNT] = {};
    std::atomic<std::uint64_t> scope_deallocations[MESA_ALLOC_SCOPE_COUNT] = {};
    std::atomic<std::uint64_t> scope_failures[MESA_ALLOC_SCOPE_COUNT] = {};
  };
  static_assert(sizeof(shard) == 256, "the documented shard size");

  void *do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override;

  bool try_charge_limits(std::size_t bytes) noexcept;
  void uncharge_limits(std::size_t bytes) noexcept;
  void note_charged_peaks() noexcept;
  [[gnu::cold, gnu::noinline]] void report_overdrawn(std::size_t bytes,
                                                     std::size_t charged) const noexcept;
  // A child cut loose holds `held`: this tracker and its ancestors count it as freed and give
  // back its charge.
  void forget_in_use(const tracking_stats &held) noexcept;
  // Adds `delta` to the limits counted in chain_ of this tracker and all its descendants.
  void add_chain_limits(int delta) noexcept;
  int limits_in_chain() const noexcept {
    return chain_.load(std::memory_order_relaxed) - (parent_ != nullptr);
  }
  // The hot-path case: the calling thread has its own shard (a thread-local value >= 0) and this
  // is a root tracker with no limit above it.
  bool straight_line(int thread_shard) const noexcept {
    return thread_shard >= 0 && chain_.load(std::memory_order_relaxed) == 0;
  }
  // Every case but the hot one: first use on a thread, the shared shard, a parent, a limit.
  [[gnu::noinline]] void *allocate_slow(std::size_t bytes, std::size_t alignment,
                                        mesa_alloc_scope scope);
  [[gnu::noinline]] void deallocate_slow(void *p, std::size_t bytes, std::size_t alignment,
                                         mesa_alloc_scope scope) noexcept;
  // Counts in this resource only; `shared`: shard_index is the shared shard (atomic updates).
  template <bool shared>
  void count_allocation_here(int shard_index, std::size_t bytes, mesa_alloc_scope scope) noexcept;
  template <bool shared>
  void count_deallocation_here(int shard_index, std::size_t bytes, mesa_alloc_scope scope) noexcept;
  // Counts in this resource and its parents.
  [[gnu::noinline]] void count_allocation_up(int shard_index, std::size_t bytes,
                                             mesa_alloc_scope scope) noexcept;
  [[gnu::noinline]] void count_deallocation_up(int shard_index, std::size_t bytes,
                                               mesa_alloc_scope scope) noexcept;
  void count_failure(int shard_index, mesa_alloc_scope scope) noexcept;
  // A budget's refusal, counted as a failure unless the request has a fallback
  // (internal/tentative_request.h). True when counted: the program is refused.
  bool count_refusal(int shard_index, mesa_alloc_scope scope) noexcept;
  [[gnu::noinline]] void sample_peak() noexcept;
  void print_rows(std::FILE *out, int depth) const noexcept;
  void print_json_object(std::FILE *out) const noexcept;

  internal::direct_upstream direct_;  // the upstream, called through its table when it has one
  tracking_resource *parent_;
  // Trackers with a limit among this one and its ancestors, plus 1 if it has a parent: 0 (a
  // root with no limit) is the straight-line path, one load to decide.
  std::atomic<int> chain_{0};
  char name_storage_[kMaxName + 1];
  std::string_view name_;
  std::atomic<std::size_t> limit_{kNoLimit};
  std::atomic<std::size_t> charged_{0};  // bytes in use, maintained only while limited
  std::atomic<std::size_t> peak_bytes_{0};
  std::atomic<std::size_t> peak_blocks_{0};
  std::atomic<std::uint64_t> used_shards_{0};  // bit i: shard i has counted something
  // Children, for reports: an intrusive list guarded by children_mutex_.
  mutable std::mutex children_mutex_;
  tracking_resource *first_child_ = nullptr;
  tracking_resource *next_sibling_ = nullptr;
  shard shards_[internal::kTrackingShards + 1];  // the last one is shared (atomic updates)
};

}  // namespace mesa

#endif  // MESA_ALLOC_TRACKING_RESOURCE_H_
