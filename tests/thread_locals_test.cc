// The library's thread-locals each keep their own value, also in the shared library that
// fastbuild tests link against. tracking_resource.cc explains the trap this guards: with gold, a
// file-local initial-exec variable in a shared library reads the start of the library's TLS
// block instead of its own slot.
#include <gtest/gtest.h>

#include <memory_resource>
#include <thread>
#include <vector>

#include "mesa_alloc/logging_resource.h"
#include "mesa_alloc/synchronized_pool_resource.h"
#include "mesa_alloc/tracking_resource.h"

namespace {

using mesa::internal::kTrackingShards;
using mesa::internal::tracking_shard_index;

struct thread_ids : mesa::trace_sink {
  std::vector<std::uint32_t> threads;
  void write_event(const mesa::trace_event &e) noexcept override { threads.push_back(e.thread); }
  void write_site(std::uint32_t, const char *, std::size_t) noexcept override {}
};

TEST(ThreadLocals, TrackingShardIsPerThreadAndStable) {
  const int mine = tracking_shard_index();
  EXPECT_GE(mine, 0);
  EXPECT_LE(mine, kTrackingShards);
  int theirs = -2, theirs_again = -2;
  std::thread other([&] {
    theirs = tracking_shard_index();
    theirs_again = tracking_shard_index();
  });
  other.join();
  EXPECT_GE(theirs, 0);
  EXPECT_LE(theirs, kTrackingShards);
  EXPECT_EQ(theirs, theirs_again);
  EXPECT_NE(theirs, mine);  // both threads were alive: exclusive shards are not shared
  EXPECT_EQ(tracking_shard_index(), mine);
}

TEST(ThreadLocals, PoolCachesAndLoggingIdsLeaveTheShardAlone) {
  const int mine = tracking_shard_index();
  mesa::synchronized_pool_resource pool(std::pmr::new_delete_resource());
  for (int i = 0; i < 100; ++i) pool.deallocate(pool.allocate(64), 64);
  thread_ids sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink);
  logged.deallocate(logged.allocate(8), 8);
  std::thread other([&] { logged.deallocate(logged.allocate(8), 8); });
  other.join();
  ASSERT_EQ(sink.threads.size(), 4u);
  EXPECT_EQ(sink.threads[0], sink.threads[1]);
  EXPECT_NE(sink.threads[0], sink.threads[2]);
  EXPECT_EQ(tracking_shard_index(), mine);
}

}  // namespace
