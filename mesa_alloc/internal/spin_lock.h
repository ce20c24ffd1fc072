// Internal: a tiny lock for short critical sections in the debug layers (a table insert or
// erase). Cheaper than std::mutex uncontended (one load, one exchange, one store), visible to
// ThreadSanitizer (plain std::atomic), never allocates.
//
// Fairer than test-and-set: such a lock lets the thread that releases it take it straight back,
// which is what makes it fast (the table stays in that core's cache) but lets busy threads keep
// another out for ever: three threads allocating in a loop kept the exit handler's quarantine
// flush waiting. So a waiter that has waited long (kPatience) says so, and while one does,
// the others stand back for up to kPatience waits of their own, leaving the lock to it; a
// waiter the scheduler keeps off the CPU longer than that can still lose a round. Costs
// nothing more uncontended than a load of a flag on the lock's own cache line.
//
// Example:
//   internal::spin_lock lock;
//   std::lock_guard<internal::spin_lock> hold(lock);
#ifndef MESA_ALLOC_INTERNAL_SPIN_LOCK_H_
#define MESA_ALLOC_INTERNAL_SPIN_LOCK_H_

#include <sched.h>

#include <atomic>

namespace mesa::internal {

class spin_lock {
 public:
  void lock() noexcept {
    if (__builtin_expect(!starving_.load(std::memory_order_relaxed), 1) &&
        !locked_.exchange(true, std::memory_order_acquire))
      return;
    lock_slow();
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }
  // For a lock the forking thread held across fork(), in both processes: the starving mark is
  // cleared, as in the child the thread that set it may not exist (without this, the child's
  // first lock() would wait kPatience times to find that out); in the parent a starving waiter
  // sets it again at its next wait.
  void unlock_after_fork() noexcept {
    starving_.store(false, std::memory_order_relaxed);
    unlock();
  }
  // True while some waiter says it is starving (for tests).
  bool starving() const noexcept { return starving_.load(std::memory_order_relaxed); }

  static constexpr int kPatience = 64;  // waits before a waiter says it is starving

 private:
  // Starving waiters keep the flag set while they wait (another starving waiter's success
  // clears it); the one that gets the lock clears it. A flag nobody clears (its thread is
  // gone) costs the next waiter kPatience waits, then that waiter clears it.
  [[gnu::noinline]] void lock_slow() noexcept {
    bool starving = false;
    int waits = 0;  // counts up to kPatience only: a lock held for hours cannot overflow it
    for (;;) {
      if ((starving || !starving_.load(std::memory_order_relaxed)) &&
          !locked_.load(std::memory_order_relaxed) &&
          !locked_.exchange(true, std::memory_order_acquire)) {
        if (starving) starving_.store(false, std::memory_order_relaxed);
        return;
      }
      if (!starving && ++waits >= kPatience) starving = true;
      if (starving && !starving_.load(std::memory_order_relaxed))
        starving_.store(true, std::memory_order_relaxed);
      sched_yield();
    }
  }

  std::atomic<bool> locked_{false};
  std::atomic<bool> starving_{false};
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_SPIN_LOCK_H_
