#include "mesa_alloc/synchronized_pool_resource.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/free_list.h"
#include "tests/test_resources.h"

namespace {

using mesa_test::counting_resource;
using mesa_test::is_aligned;

// A block freed by a thread that never used the pool, while upstream refuses everything: the
// free cannot take a thread cache (that needs upstream), so the block goes to the central list
// instead of terminating the process, and the next thread to need that size gets it back.
TEST(SynchronizedPool, FirstFreeOnAThreadSurvivesAFailingUpstream) {
  counting_resource counting;
  mesa::fault_resource upstream(&counting);
  mesa::synchronized_pool_resource pool(&upstream);
  void *p = pool.allocate(32);
  upstream.fail_every(1);
  std::thread([&] { pool.deallocate(p, 32); }).join();
  EXPECT_THROW((void)pool.allocate(100000), std::bad_alloc);  // upstream really refuses
  upstream.fail_none();
  void *again = nullptr;
  std::thread([&] {
    again = pool.allocate(32);
    pool.deallocate(again, 32);
  }).join();
  EXPECT_EQ(again, p);
}

// A block freed into another thread's cache, which only that thread reads, and freed again:
// the free key it holds says it is free, and the second free is refused (it was pushed onto
// this thread's cache too, so two caches held it and it was handed out twice).
TEST(SynchronizedPool, ADoubleFreeOfABlockInAnotherThreadsCacheIsRefused) {
  if (!mesa::internal::kKeyAloneDecides) GTEST_SKIP() << "the key alone decides on 64-bit targets";
  counting_resource upstream;
  mesa::synchronized_pool_resource pool(&upstream);
  void *keep = pool.allocate(48);  // this thread has a cache
  void *p = pool.allocate(48);
  std::thread([&] { pool.deallocate(p, 48); }).join();  // into that thread's cache, kept
  EXPECT_EQ(mesa_test::stderr_of([&] { pool.deallocate(p, 48); }),
            mesa_test::refused_line(
                "double free", p, "in mesa::synchronized_pool_resource",
                "a block freed as 48 bytes holds the pool's free mark and is not in this thread's "
                "cache or on the central list for that size: it is free in another thread's "
                "cache, which only that thread reads, or was freed before with another size"));
  std::vector<void *> blocks;
  for (int i = 0; i < 100; ++i) {
    blocks.push_back(pool.allocate(48));
    EXPECT_NE(blocks.back(), p) << "handed out while another thread's cache holds it";
  }
  for (void *b : blocks) pool.deallocate(b, 48);
  pool.deallocate(keep, 48);
}

TEST(SynchronizedPool, SingleThreadBasics) {
  counting_resource upstream;
  mesa::synchronized_pool_resource pool(&upstream);
  for (std::size_t alignment = 1; alignment <= 4096; alignment *= 2) {
    void *p = pool.allocate(100, alignment);
    EXPECT_TRUE(is_aligned(p, alignment));
    pool.deallocate(p, 100, alignment);
  }
  void *p = pool.allocate(64);
  pool.deallocate(p, 64);
  EXPECT_EQ(pool.allocate(64), p) << "reuse from the thread cache";
  mesa_test::shadow_map shadow;
  for (int i = 0; i < 5000; ++i) {
    std::size_t size = 1 + i % 700;
    void *q = pool.allocate(size);
    shadow.insert(q, size);
    if (HasFatalFailure()) return;
  }
  pool.release();
  EXPECT_EQ(upstream.bytes_in_use(), 0u);
  EXPECT_NE(pool.allocate(64), nullptr) << "usable after release";
}

TEST(SynchronizedPool, BadAlignmentThroughPmrIsRefused) {
  counting_resource upstream;
  mesa::synchronized_pool_resource pool(&upstream);
  mesa_test::expect_pmr_refuses_bad_alignment(pool, upstream);
}

TEST(SynchronizedPool, UpstreamFailureThrowsAndPoolStaysUsable) {
  counting_resource upstream;
  mesa::synchronized_pool_resource pool(&upstream);
  void *warm = pool.allocate(16);  // the thread cache exists now
  upstream.fail_after(0);
  EXPECT_THROW(
      {
        for (int i = 0; i < 10; ++i) (void)pool.allocate(4000);  // past the current chunk
      },
      std::bad_alloc);
  EXPECT_THROW((void)pool.allocate(100000), std::bad_alloc);
  upstream.fail_after(-1);
  EXPECT_NE(pool.allocate(4000), nullptr);
  pool.deallocate(warm, 16);
}

// Producer/consumer across threads plus private churn: blocks freed on another thread are
// reused (memory stays bounded) and no block is handed out twice while live.
TEST(SynchronizedPool, CrossThreadFreeAndNoDoubleHandOut) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  constexpr int kBatch = 100;
  counting_resource upstream;
  mesa::synchronized_pool_resource pool(&upstream);
  std::mutex mailbox_mutex;
  std::vector<std::vector<std::pair<void *, std::size_t>>> mailbox(kThreads);
  std::mutex live_mutex;
  std::set<void *> live;
  auto worker = [&](int id) {
    std::mt19937 rng(id);
    for (int round = 0; round < kRounds; ++round) {
      std::vector<std::pair<void *, std::size_t>> mine;
      for (int i = 0; i < kBatch; ++i) {
        const std::size_t size = rng() % 16 == 0 ? 5000 + rng() % 5000 : 1 + rng() % 200;
        auto *p = static_cast<unsigned char *>(pool.allocate(size));
        std::memset(p, id, size);
        {
          std::lock_guard<std::mutex> lock(live_mutex);
          ASSERT_TRUE(live.insert(p).second) << "block handed out twice";
        }
        mine.emplace_back(p, size);
      }
      std::vector<std::pair<void *, std::size_t>> theirs;
      {
        std::lock_guard<std::mutex> lock(mailbox_mutex);
        auto &next = mailbox[(id + 1) % kThreads];
        next.insert(next.end(), mine.begin(), mine.end());
        theirs.swap(mailbox[id]);
      }
      for (auto [p, size] : theirs) {
        {
          std::lock_guard<std::mutex> lock(live_mutex);
          live.erase(p);
        }
        pool.deallocate(p, size);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto &t : threads) t.join();
  for (auto &box : mailbox) {
    for (auto [p, size] : box) pool.deallocate(p, size);
  }
  // At most 2 batches of 100 blocks of <= 10 KiB per thread are live at once; without reuse of
  // cross-thread frees the pool would have taken 4 * 300 * 100 blocks (tens of MiB).
  EXPECT_LT(pool.bytes_reserved(), 8u << 20);
  pool.release();
  EXPECT_EQ(upstream.bytes_in_use(), 0u);
}

}  // namespace
