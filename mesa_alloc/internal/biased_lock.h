// Internal: a lock biased towards the first thread that takes it. Until a second thread takes
// it, locking is a few plain loads and stores (no atomic read-modify-write, no fence); the first
// time another thread arrives it revokes the bias — one membarrier(2) system call that makes
// the owner's pending critical section visible — and from then on every thread, the owner too,
// takes an ordinary spin lock.
//
// What it is for: the debug layers' live-block table. Most debug resources are used by one
// thread (a compiler, a test, one context), and their lock was half the cost of cookie mode.
//
// What it costs: fast path, a thread-pointer load and compare, two stores and one load;
// revoking, one membarrier call (~0.1-1 us) per lock, once. Where membarrier(2) is missing
// (pre-4.14 kernels, seccomp), the lock starts shared. Correct under ThreadSanitizer: every
// hand-over is an acquire/release pair on `in_critical_` or the spin lock; membarrier only
// rules out the one interleaving in which both sides would miss each other.
//
// Example:
//   internal::biased_lock lock;
//   const bool biased = lock.lock();
//   ...                         // the critical section
//   lock.unlock(biased);
#ifndef MESA_ALLOC_INTERNAL_BIASED_LOCK_H_
#define MESA_ALLOC_INTERNAL_BIASED_LOCK_H_

#include <atomic>
#include <cstdint>

#include "mesa_alloc/internal/spin_lock.h"

namespace mesa::internal {

class biased_lock {
 public:
  // Returns what unlock() must be given: true when taken on the owner's fast path.
  bool lock() noexcept {
    if (__builtin_expect(owner_.load(std::memory_order_relaxed) == thread_identity(), 1) &&
        enter_biased())
      return true;
    return lock_slow();
  }
  void unlock(bool biased) noexcept {
    if (biased) {
      in_critical_.store(false, std::memory_order_release);
    } else {
      shared_.unlock();
    }
  }
  // Around fork() (internal/fork_locks.h): the bias is revoked for good, then the shared lock
  // is taken, so that the child finds it in a state its one thread can unlock and use (a bias
  // held, or a revocation begun, by a thread the child does not have would block it for ever).
  void lock_for_fork() noexcept;
  void unlock_after_fork() noexcept { shared_.unlock_after_fork(); }
  // True while the first thread still holds the bias (for tests).
  bool biased() const noexcept { return state_.load(std::memory_order_acquire) == kBiased; }

 private:
  enum : std::uint8_t { kBiased, kRevoking, kShared };

  static std::uintptr_t thread_identity() noexcept {
#if defined(__x86_64__) || defined(__aarch64__)
    return reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer());
#else
    return thread_identity_slow();
#endif
  }
  static std::uintptr_t thread_identity_slow() noexcept;

  // The owner's entry: announce, then look. A revoker does the opposite (sets state_, then
  // membarrier, then looks at in_critical_), so at least one of the two sees the other.
  bool enter_biased() noexcept {
    in_critical_.store(true, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (__builtin_expect(state_.load(std::memory_order_relaxed) == kBiased, 1)) return true;
    in_critical_.store(false, std::memory_order_release);
    return false;
  }
  [[gnu::noinline]] bool lock_slow() noexcept;
  void revoke() noexcept;

  std::atomic<std::uintptr_t> owner_{0};  // 0: not claimed yet
  std::atomic<bool> in_critical_{false};  // the owner is inside, on the fast path
  std::atomic<std::uint8_t> state_{kBiased};
  spin_lock shared_;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_BIASED_LOCK_H_
