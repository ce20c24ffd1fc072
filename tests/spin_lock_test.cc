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

// True once a waiter has said it is starving (false after 10 s without).
bool wait_until_starving(const spin_lock &lock) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!lock.starving()) {
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
  EXPECT_FALSE(lock.starving());
}

// The releasing thread stands back for up to kPatience waits; a waiter the scheduler leaves
// off the CPU that long (a loaded machine) can still lose a round, so the test wants most
// rounds. A test-and-set lock loses every one: the releasing thread takes it straight back.
TEST(SpinLock, AStarvingWaiterGoesBeforeTheThreadThatReleasesAndAsksAgain) {
  constexpr int kRounds = 10;
  int waiter_first = 0;
  for (int round = 0; round < kRounds; ++round) {
    spin_lock lock;
    std::atomic<bool> waiter_had_it{false};
    lock.lock();
    std::thread waiter([&] {
      lock.lock();
      waiter_had_it.store(true, std::memory_order_relaxed);
      lock.unlock();
    });
    const bool starving = wait_until_starving(lock);
    lock.unlock();
    lock.lock();  // stands back for the starving waiter
    waiter_first += starving && waiter_had_it.load(std::memory_order_relaxed);
    lock.unlock();
    waiter.join();
    EXPECT_FALSE(lock.starving());
  }
  EXPECT_GT(waiter_first, kRounds / 2);
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
  EXPECT_FALSE(lock.starving());
}

TEST(SpinLock, TryLockTakesOnlyAFreeLock) {
  spin_lock lock;
  ASSERT_TRUE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
  EXPECT_FALSE(lock.starving());
}

// Forks while the parent holds `lock` and another thread starves for it, runs `in_child` in
// the child (its exit status: 0 for success) and returns the child's wait status.
template <class InChild>
int fork_with_a_starving_waiter(spin_lock &lock, InChild in_child) {
  lock.lock();
  std::thread waiter([&] {
    lock.lock();
    lock.unlock();
  });
  if (!wait_until_starving(lock)) {
    lock.unlock();
    waiter.join();
    ADD_FAILURE() << "the waiter never said it was starving";
    return -1;
  }
  const pid_t child = fork();
  if (child == 0) {
    alarm(10);  // SIGALRM: the child waited for the lock for ever
    _exit(in_child(lock));
  }
  lock.unlock();
  waiter.join();
  int status = -1;
  if (child < 0 || waitpid(child, &status, 0) != child) ADD_FAILURE() << "fork or waitpid failed";
  return status;
}

TEST(SpinLock, AForkChildDoesNotStandBackForTheParentsWaiters) {
  spin_lock lock;
  // The waiter is not in the child. With a plain unlock it would still count as starving
  // there, and the child's first lock() would stand back for it.
  const int status = fork_with_a_starving_waiter(lock, [](spin_lock &l) {
    l.unlock_after_fork();
    const bool nobody_starving = !l.starving();
    l.lock();
    const bool exclusive = !l.try_lock();
    l.unlock();
    return nobody_starving && exclusive && l.try_lock() ? 0 : 1;
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

TEST(SpinLock, AStarvingFlagNobodyClearsCostsOneSlowLock) {
  spin_lock lock;
  // Unlocked the plain way, the vanished waiter's flag stays: the child's first lock() waits
  // kPatience times, finds the lock free for itself and clears the flag.
  const int status = fork_with_a_starving_waiter(lock, [](spin_lock &l) {
    l.unlock();
    const bool stale = l.starving();
    l.lock();
    l.unlock();
    return stale && !l.starving() ? 0 : 1;
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

}  // namespace
