// Two threads allocate, free and hand blocks to each other through one debug resource (with a
// quarantine): no false reports, nothing left live.
#include <gtest/gtest.h>

#include <atomic>
#include <memory_resource>
#include <thread>

#include "mesa_alloc/debug_resource.h"

namespace {

std::atomic<int> g_errors{0};

void count_error(const mesa::debug_error &, void *) { g_errors.fetch_add(1); }

TEST(DebugStress, TwoThreadsShareOneResource) {
  mesa::debug_options o;
  o.quarantine_bytes = 1 << 16;
  o.handler = count_error;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  std::atomic<void *> handoff{nullptr};
  auto work = [&] {
    for (int i = 0; i < 5000; ++i) {
      void *p = d.allocate(16 + i % 100);
      d.deallocate(p, 16 + i % 100);
      void *mine = d.allocate(32);
      if (void *theirs = handoff.exchange(mine)) d.deallocate(theirs, 32);
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  if (void *last = handoff.exchange(nullptr)) d.deallocate(last, 32);
  EXPECT_EQ(d.live_blocks(), 0u);
  EXPECT_EQ(g_errors.load(), 0);
}

}  // namespace
