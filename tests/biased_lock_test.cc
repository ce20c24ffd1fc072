// internal::biased_lock: the first thread locks without atomic read-modify-writes; a second
// thread revokes the bias, waits for the owner's critical section, and from then on both
// exclude each other through the shared lock.
#include "mesa_alloc/internal/biased_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using mesa::internal::biased_lock;

TEST(BiasedLock, OneThreadKeepsTheBias) {
  biased_lock lock;
  const bool first = lock.lock();
  lock.unlock(first);
  if (!first) GTEST_SKIP() << "no membarrier(2) here: biased locks start shared";
  for (int i = 0; i < 1000; ++i) {
    const bool biased = lock.lock();
    EXPECT_TRUE(biased);
    lock.unlock(biased);
  }
  EXPECT_TRUE(lock.biased());
}

TEST(BiasedLock, ASecondThreadRevokesItAndIsExcluded) {
  biased_lock lock;
  long counter = 0;  // not atomic: only the lock protects it
  const bool owner_biased = lock.lock();
  std::atomic<bool> second_inside{false};
  std::thread second([&] {
    const bool biased = lock.lock();
    second_inside.store(true);
    ++counter;
    lock.unlock(biased);
    EXPECT_FALSE(biased);
  });
  // The second thread must wait for the owner's critical section to end.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(second_inside.load());
  ++counter;
  lock.unlock(owner_biased);
  second.join();
  EXPECT_TRUE(second_inside.load());
  EXPECT_EQ(counter, 2);
  EXPECT_FALSE(lock.biased());
}

TEST(BiasedLock, TwoThreadsCountExactlyAfterRevocation) {
  biased_lock lock;
  long counter = 0;
  constexpr int kRounds = 200000;
  auto work = [&] {
    for (int i = 0; i < kRounds; ++i) {
      const bool biased = lock.lock();
      ++counter;
      lock.unlock(biased);
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(counter, 2L * kRounds);
  EXPECT_FALSE(lock.biased());
}

}  // namespace
