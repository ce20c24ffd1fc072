// internal::spin_lock: it excludes; a waiter that has waited long gets the lock before a thread
// that releases it and asks again, so busy threads cannot keep another out for ever; and a
// fork() child can use a lock whose starving waiters stayed behind in the parent.
#include "mesa_alloc/internal/spin_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using mesa::internal::spin_lock;

// True once `count` waiters have said they are starving (false after 10 s without).
bool wait_until_starving(const spin_lock &lock, unsigned count) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (lock.starving() < count) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(SpinLock, ThreadsCountExactly) {
  spin_lock lock;
  long counter = 0;  // not atomic: only the lock protects it
  constexpr int kThreads = 4;
  constexpr int kRounds = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        lock.lock();
        ++counter;
        lock.unlock();
      }
    });
  }
  for (std::thread &t : threads) t.join();
  EXPECT_EQ(counter, long{kThreads} * kRounds);
  EXPECT_EQ(lock.starving(), 0u);
}

TEST(SpinLock, AStarvingWaiterGoesBeforeTheThreadThatReleasesAndAsksAgain) {
  spin_lock lock;
  std::atomic<bool> waiter_had_it{false};
  lock.lock();
  std::thread waiter([&] {
    lock.lock();
    waiter_had_it.store(true, std::memory_order_relaxed);
    lock.unlock();
  });
  EXPECT_TRUE(wait_until_starving(lock, 1));
  lock.unlock();
  lock.lock();  // stands back for the starving waiter
  EXPECT_TRUE(waiter_had_it.load(std::memory_order_relaxed));
  EXPECT_EQ(lock.starving(), 0u);
  lock.unlock();
  waiter.join();
}

TEST(SpinLock, AWaiterGetsInWhileOtherThreadsTakeItInALoop) {
  spin_lock lock;
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int t = 0; t < 3; ++t) {
    busy.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        lock.lock();
        lock.unlock();
      }
    });
  }
  for (int round = 0; round < 100; ++round) {
    lock.lock();
    lock.unlock();
  }
  stop.store(true, std::memory_order_relaxed);
  for (std::thread &t : busy) t.join();
  EXPECT_EQ(lock.starving(), 0u);
}

TEST(SpinLock, TryLockTakesOnlyAFreeLock) {
  spin_lock lock;
  ASSERT_TRUE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
  EXPECT_EQ(lock.starving(), 0u);
}

TEST(SpinLock, AForkChildDoesNotStandBackForTheParentsWaiters) {
  spin_lock lock;
  lock.lock();
  std::thread waiter([&] {
    lock.lock();
    lock.unlock();
  });
  if (!wait_until_starving(lock, 1)) {
    lock.unlock();
    waiter.join();
    FAIL() << "the waiter never said it was starving";
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The waiter is not in this process. With a plain unlock, it would still count as
    // starving here, and every lock() of the child would stand back for it first.
    alarm(10);
    lock.unlock_in_fork_child();
    const bool nobody_starving = lock.starving() == 0;
    lock.lock();
    const bool exclusive = !lock.try_lock();
    lock.unlock();
    _exit(nobody_starving && exclusive && lock.try_lock() ? 0 : 1);
  }
  lock.unlock();
  waiter.join();
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << WTERMSIG(status)
                                 << " (SIGALRM: it waited for the lock for ever)";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
