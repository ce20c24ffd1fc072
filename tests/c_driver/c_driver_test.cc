// The C driver sample (examples/c_driver) under a tracking_resource budget: every allocation it
// makes reaches the table the process creates it with, every failure point unwinds cleanly,
// and the util/slab-like pool and the state cache behave as Mesa's do.
#include "examples/c_driver/c_driver.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/mesa_alloc.h"

namespace {

constexpr int kFrames = 3;

// A tracking table (on libc) installed as the default for the test's lifetime: what a loader
// does before drv_screen_create().
class DriverOnTracker : public ::testing::Test {
 protected:
  void SetUp() override {
    tracker_ = mesa_tracking_create(mesa_libc_allocator(), "c_driver", nullptr);
    ASSERT_NE(tracker_, nullptr);
    previous_ = mesa_set_default_allocator(tracker_);
  }
  void TearDown() override {
    mesa_set_default_allocator(previous_);
    mesa_tracking_destroy(tracker_);
  }
  mesa_tracking_stats stats() const {
    mesa_tracking_stats s;
    EXPECT_TRUE(mesa_tracking_get_stats(tracker_, &s));
    return s;
  }

  const mesa_allocator *tracker_ = nullptr;
  const mesa_allocator *previous_ = nullptr;
};

TEST_F(DriverOnTracker, EveryAllocationReachesTheTrackerAndIsReturned) {
  uint64_t checksum = 0;
  ASSERT_EQ(drv_run_workload(kFrames, &checksum), 0);
  const mesa_tracking_stats s = stats();
  // Screen, name, cache slots, contexts, command streams, resources and their storage, states,
  // slab pages: dozens of blocks, all through the tracker, all freed.
  EXPECT_GT(s.total_allocations, 30u);
  EXPECT_EQ(s.total_allocations, s.total_deallocations);
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.blocks_in_use, 0u);
  EXPECT_GT(s.peak_bytes, 8u * 4096u);  // the eight buffers alone are 144 KiB
  EXPECT_EQ(s.failed_allocations, 0u);

  // Deterministic: the same result on the same allocator stack.
  uint64_t again = 0;
  ASSERT_EQ(drv_run_workload(kFrames, &again), 0);
  EXPECT_EQ(again, checksum);
}

TEST_F(DriverOnTracker, EveryBudgetBelowThePeakFailsCleanly) {
  ASSERT_EQ(drv_run_workload(kFrames, nullptr), 0);
  const size_t peak = stats().peak_bytes;

  // From no budget at all up to one byte short of the peak, the workload must fail, free
  // everything it allocated, and report the failure; at the peak it must succeed.
  int budgets = 0;
  for (size_t limit = 0; limit < peak; limit += peak / 97 + 1, ++budgets) {
    mesa_tracking_set_limit(tracker_, limit);
    const uint64_t failed_before = stats().failed_allocations;
    EXPECT_EQ(drv_run_workload(kFrames, nullptr), -1) << "budget " << limit;
    const mesa_tracking_stats s = stats();
    EXPECT_EQ(s.bytes_in_use, 0u) << "budget " << limit;
    EXPECT_EQ(s.blocks_in_use, 0u) << "budget " << limit;
    EXPECT_GT(s.failed_allocations, failed_before) << "budget " << limit;
    EXPECT_LE(s.peak_bytes, peak);
  }
  EXPECT_GT(budgets, 90);
  mesa_tracking_set_limit(tracker_, peak);
  EXPECT_EQ(drv_run_workload(kFrames, nullptr), 0);
  mesa_tracking_set_limit(tracker_, SIZE_MAX);
}

TEST_F(DriverOnTracker, TransfersUnmappedByAnotherContextMigrateBackToTheirOwner) {
  struct drv_screen *screen = drv_screen_create("migrate");
  ASSERT_NE(screen, nullptr);
  struct drv_context *a = drv_context_create(screen);
  struct drv_context *b = drv_context_create(screen);
  struct drv_resource *buffer = drv_resource_create(screen, 4096);
  ASSERT_TRUE(a && b && buffer);

  constexpr int kPage = 64;  // transfers per slab page
  struct drv_transfer *t[kPage];
  for (int i = 0; i < kPage; ++i) ASSERT_NE(drv_transfer_map(a, buffer, 0, 16, &t[i]), nullptr);
  const uint64_t allocations = stats().total_allocations;
  // Unmapped by b: onto a's migrated list, not b's free list.
  for (int i = 0; i < kPage; ++i) drv_transfer_unmap(b, t[i]);
  for (int i = 0; i < kPage; ++i) ASSERT_NE(drv_transfer_map(a, buffer, 0, 16, &t[i]), nullptr);
  EXPECT_EQ(stats().total_allocations, allocations) << "a took its migrated elements back";
  for (int i = 0; i < kPage; ++i) drv_transfer_unmap(a, t[i]);

  // b has no page yet: its first map allocates one.
  struct drv_transfer *tb;
  ASSERT_NE(drv_transfer_map(b, buffer, 0, 16, &tb), nullptr);
  EXPECT_EQ(stats().total_allocations, allocations + 1);
  drv_transfer_unmap(b, tb);

  struct drv_transfer *out_of_range;
  EXPECT_EQ(drv_transfer_map(a, buffer, 4000, 200, &out_of_range), nullptr);
  EXPECT_EQ(out_of_range, nullptr);

  drv_resource_destroy(buffer);
  drv_context_destroy(b);
  drv_context_destroy(a);
  drv_screen_destroy(screen);
  EXPECT_EQ(stats().bytes_in_use, 0u);
}

TEST_F(DriverOnTracker, StateCacheSharesEqualStates) {
  struct drv_screen *screen = drv_screen_create("cache");
  ASSERT_NE(screen, nullptr);
  struct drv_context *ctx = drv_context_create(screen);
  ASSERT_NE(ctx, nullptr);
  const drv_blend_desc add = {1, 0, 1, 0, 0xf};
  const drv_blend_desc sub = {1, 1, 1, 0, 0xf};
  const drv_blend_state *first = drv_create_blend_state(ctx, &add);
  const drv_blend_state *second = drv_create_blend_state(ctx, &add);
  const drv_blend_state *other = drv_create_blend_state(ctx, &sub);
  ASSERT_TRUE(first && other);
  EXPECT_EQ(first, second);
  EXPECT_NE(first, other);
  // Enough distinct states to grow the table several times.
  for (uint32_t mask = 0; mask < 100; ++mask) {
    const drv_blend_desc desc = {0, 2, 3, 4, mask};
    const drv_blend_state *state = drv_create_blend_state(ctx, &desc);
    ASSERT_NE(state, nullptr);
    EXPECT_EQ(drv_create_blend_state(ctx, &desc), state);
  }
  EXPECT_EQ(drv_state_cache_count(screen), 102u);
  EXPECT_EQ(drv_create_blend_state(ctx, &add), first) << "still found after growing";
  drv_context_destroy(ctx);
  drv_screen_destroy(screen);
  EXPECT_EQ(stats().bytes_in_use, 0u);
}

// util/slab's reason to exist: a context on one thread maps transfers that a context on another
// thread unmaps; they migrate back to the owner, which reuses them, with no lock on either
// context's own path. Run under --config=tsan too.
TEST_F(DriverOnTracker, ContextsOnTwoThreadsUnmapEachOthersTransfers) {
  struct drv_screen *screen = drv_screen_create("threads");
  ASSERT_NE(screen, nullptr);
  struct drv_context *producer_ctx = drv_context_create(screen);
  struct drv_context *consumer_ctx = drv_context_create(screen);
  struct drv_resource *buffer = drv_resource_create(screen, 4096);
  ASSERT_TRUE(producer_ctx && consumer_ctx && buffer);

  constexpr int kTransfers = 20000;
  constexpr size_t kInFlight = 256;  // the queue's bound: at most this many mapped at once
  std::mutex lock;
  std::condition_variable ready, space;
  std::deque<drv_transfer *> queue;
  bool done = false;
  int unmapped = 0;

  std::thread consumer([&] {
    for (;;) {
      std::unique_lock<std::mutex> guard(lock);
      ready.wait(guard, [&] { return !queue.empty() || done; });
      if (queue.empty()) return;
      drv_transfer *t = queue.front();
      queue.pop_front();
      guard.unlock();
      space.notify_one();
      drv_transfer_unmap(consumer_ctx, t);  // not its owner: migrates to producer_ctx
      ++unmapped;
    }
  });
  int mapped = 0;
  for (int i = 0; i < kTransfers; ++i) {
    drv_transfer *t;
    if (drv_transfer_map(producer_ctx, buffer, 0, 64, &t) == nullptr) break;
    ++mapped;
    {
      std::unique_lock<std::mutex> guard(lock);
      space.wait(guard, [&] { return queue.size() < kInFlight; });
      queue.push_back(t);
    }
    ready.notify_one();
  }
  {
    std::lock_guard<std::mutex> guard(lock);
    done = true;
  }
  ready.notify_one();
  consumer.join();

  EXPECT_EQ(mapped, kTransfers);
  EXPECT_EQ(unmapped, kTransfers);
  // A new page is made only when every element is mapped (none free, none migrated), and at
  // most kInFlight + 2 are: so at most 5 pages of 64, whatever the scheduling. Without
  // migration it would be 313 pages. Plus 9 blocks for the screen, contexts and buffer.
  EXPECT_LE(stats().total_allocations, 9u + 5u);
  drv_resource_destroy(buffer);
  drv_context_destroy(consumer_ctx);
  drv_context_destroy(producer_ctx);  // asserts every transfer came back
  drv_screen_destroy(screen);
  EXPECT_EQ(stats().bytes_in_use, 0u);
}

// mesa_fault_loop fails allocation 0, 1, 2, ... one per run: at every single failure point the
// driver returns an error and leaks nothing.
void run_driver_on(const mesa_allocator *allocator, void *result) {
  const mesa_allocator *previous = mesa_set_default_allocator(allocator);
  *static_cast<int *>(result) = drv_run_workload(1, nullptr);
  mesa_set_default_allocator(previous);
}

TEST(CDriver, EveryFailurePointUnwindsWithoutALeak) {
  int last_result = 1;
  mesa_fault_loop_result result;
  EXPECT_EQ(mesa_fault_loop(mesa_libc_allocator(), run_driver_on, &last_result, &result), 1)
      << "leaked " << result.leaked_blocks << " blocks when allocation #" << result.leak_at
      << " failed";
  EXPECT_TRUE(result.completed);
  EXPECT_FALSE(result.leaked);
  EXPECT_GT(result.runs, 30u);
  EXPECT_EQ(last_result, 0) << "the run with no failure injected succeeds";
}

}  // namespace
