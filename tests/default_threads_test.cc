// The default allocator read from several threads while they allocate through it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "mesa_alloc/mesa_alloc.h"
#include "tests/support/counting_allocator.h"

namespace {

void churn(int seed, std::atomic<int> *errors) {
  void *blocks[64] = {};
  for (int round = 0; round < 2000; round++) {
    const int i = (round * 7 + seed) % 64;
    if (blocks[i] != nullptr) {
      if (static_cast<unsigned char *>(blocks[i])[0] != (seed & 0xff)) (*errors)++;
      mesa_free(blocks[i]);
      blocks[i] = nullptr;
    } else {
      const std::size_t size = 16 + static_cast<std::size_t>((round * 31) % 500);
      blocks[i] = (round % 3 == 0) ? mesa_aligned_alloc(64, size) : mesa_malloc(size);
      if (blocks[i] == nullptr) {
        (*errors)++;
        continue;
      }
      std::memset(blocks[i], seed & 0xff, size);
    }
  }
  for (void *b : blocks) mesa_free(b);
}

TEST(DefaultAllocator, TwoThreadsAllocateConcurrentlyThroughACustomDefault) {
  test::counting_allocator counting;
  const mesa_allocator *previous = mesa_set_default_allocator(counting.table());
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++) threads.emplace_back(churn, t + 1, &errors);
  for (auto &t : threads) t.join();
  mesa_set_default_allocator(previous);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(counting.allocations(), 1000);
  EXPECT_EQ(counting.live(), 0);
}

TEST(DefaultAllocator, FirstUseFromManyThreadsAtOnceAgrees) {
  std::atomic<const mesa_allocator *> seen[4] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&seen, t] { seen[t] = mesa_default_allocator(); });
  for (auto &t : threads) t.join();
  for (auto &s : seen) EXPECT_EQ(s.load(), mesa_libc_allocator());
}

}  // namespace
