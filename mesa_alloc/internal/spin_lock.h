// Internal: a tiny test-and-test-and-set lock for short critical sections in the debug layers
// (a table insert or erase). Cheaper than std::mutex uncontended (one exchange and one store),
// visible to ThreadSanitizer (plain std::atomic), never allocates.
#ifndef MESA_ALLOC_INTERNAL_SPIN_LOCK_H_
#define MESA_ALLOC_INTERNAL_SPIN_LOCK_H_

#include <sched.h>

#include <atomic>

namespace mesa::internal {

class spin_lock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) sched_yield();
    }
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_SPIN_LOCK_H_
