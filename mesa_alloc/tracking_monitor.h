// tracking_monitor — "did this code allocate, free or leak?" checks against a tracking_resource,
// in the style of BDE's bslma::TestAllocatorMonitor.
//
// What it is for: tests that assert how a piece of code uses memory: in use the same, up or
// down since a point; totals the same or up; peak the same or up.
//
// What it costs: one tracking_resource::stats() per construction, reset() and query.
//
// Example:
//   mesa::tracking_resource tracker(upstream, "test");
//   mesa::tracking_monitor monitor(&tracker);
//   { std::pmr::vector<int> v(&tracker); v.push_back(1); }
//   EXPECT_TRUE(monitor.in_use_same());
//   EXPECT_TRUE(monitor.total_up());
#ifndef MESA_ALLOC_TRACKING_MONITOR_H_
#define MESA_ALLOC_TRACKING_MONITOR_H_

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/tracking_resource.h"

namespace mesa {

class tracking_monitor {
 public:
  // A null tracker is refused as a null upstream is: one line on stderr, then abort.
  explicit tracking_monitor(const tracking_resource *tracker) noexcept
      : tracker_(tracker), start_(stats_of(tracker)) {}

  // Makes now the point of comparison.
  void reset() noexcept { start_ = tracker_->stats(); }

  // In use compares bytes, then blocks: a zero-byte block (unique, and must be freed) kept
  // is "up". Exactly one of the three is true.
  bool in_use_same() const noexcept { return compare_in_use() == 0; }
  bool in_use_up() const noexcept { return compare_in_use() > 0; }
  bool in_use_down() const noexcept { return compare_in_use() < 0; }
  bool total_same() const noexcept { return now().total_allocations == start_.total_allocations; }
  bool total_up() const noexcept { return now().total_allocations > start_.total_allocations; }
  bool peak_same() const noexcept { return now().peak_bytes == start_.peak_bytes; }
  bool peak_up() const noexcept { return now().peak_bytes > start_.peak_bytes; }

  const tracking_stats &start() const noexcept { return start_; }

 private:
  static tracking_stats stats_of(const tracking_resource *tracker) noexcept {
    if (tracker == nullptr) internal::report_null_resource("tracking_monitor", "tracker");
    return tracker->stats();
  }
  tracking_stats now() const noexcept { return tracker_->stats(); }
  int compare_in_use() const noexcept {
    const tracking_stats n = now();
    if (n.bytes_in_use != start_.bytes_in_use) return n.bytes_in_use > start_.bytes_in_use ? 1 : -1;
    if (n.blocks_in_use != start_.blocks_in_use)
      return n.blocks_in_use > start_.blocks_in_use ? 1 : -1;
    return 0;
  }

  const tracking_resource *tracker_;
  tracking_stats start_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_TRACKING_MONITOR_H_
