#include "mesa_alloc/internal/biased_lock.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mesa::internal {
namespace {

// Registers this process for expedited private membarriers, once. False when the kernel cannot
// do them: locks then never become biased.
bool membarrier_ready() noexcept {
  static const bool ready = [] {
    const long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (commands < 0 || (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ready;
}

}  // namespace

std::uintptr_t biased_lock::thread_identity_slow() noexcept {
  return static_cast<std::uintptr_t>(pthread_self());
}

bool biased_lock::lock_slow() noexcept {
  std::uint8_t state = state_.load(std::memory_order_acquire);
  if (state == kBiased) {
    const std::uintptr_t self = thread_identity();
    std::uintptr_t owner = owner_.load(std::memory_order_relaxed);
    if (owner == 0 && membarrier_ready() &&
        owner_.compare_exchange_strong(owner, self, std::memory_order_acq_rel)) {
      owner = self;
    }
    if (owner == self && enter_biased()) return true;
    if (owner != self) revoke();
  }
  while (state_.load(std::memory_order_acquire) != kShared) sched_yield();
  shared_.lock();
  return false;
}

void biased_lock::lock_for_fork() noexcept {
  revoke();
  while (state_.load(std::memory_order_acquire) != kShared) sched_yield();
  shared_.lock();
}

void biased_lock::revoke() noexcept {
  std::uint8_t expected = kBiased;
  if (!state_.compare_exchange_strong(expected, kRevoking, std::memory_order_seq_cst))
    return;  // another thread is revoking (lock_slow waits for it) or has revoked
  // Every running thread of the process executes a full barrier: an owner that had announced
  // itself is now visible, and one that had not will see kRevoking.
  if (membarrier_ready()) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  while (in_critical_.load(std::memory_order_acquire)) sched_yield();
  state_.store(kShared, std::memory_order_release);
}

}  // namespace mesa::internal
