// fork_locks — the locks of the MESA_ALLOC_DEBUG layers, held across fork().
//
// What it is for: a lock another thread holds at the moment of fork() is copied into the child
// held, by a thread that does not exist there, and the child's next allocation through that
// layer waits for ever. One set of pthread_atfork handlers, registered when the library is
// loaded (so that handlers a program registers later, which may allocate, run around them; the
// first debug resource and MESA_ALLOC_DEBUG's trace layer register them too, which links them
// into a static program that uses only those), takes these locks before fork() and releases them
// after, in both processes: every debug resource's table lock (after the registry's), then
// MESA_ALLOC_DEBUG's trace's (its reuse lock, its call-site table, its file buffer), the order in
// which the layers nest (a debug table may grow through a trace under its lock, never the
// reverse).
//
// What it costs: nothing until a fork; at a fork, waiting for calls in progress to leave their
// locks. A debug resource's biased lock, once taken by the forking thread, stays shared.
#ifndef MESA_ALLOC_INTERNAL_FORK_LOCKS_H_
#define MESA_ALLOC_INTERNAL_FORK_LOCKS_H_

namespace mesa::internal {

struct logging_table;

// Registers the handlers, once per copy of the library (later calls do nothing): at load, and
// from the layers that need them.
void register_fork_handlers() noexcept;

struct fork_locks {
  // debug_resource.cc: the registry, then each thread-safe resource's table, in registry order.
  static void lock_debug_resources() noexcept;
  static void unlock_debug_resources() noexcept;
  // default_from_environment.cc: the trace layer's locks, outermost first. In the child the
  // reader-writer lock is made anew instead (glibc's may still count the parent's waiting
  // threads, and a reader in the child would wait for them for ever).
  static void lock_trace(logging_table &trace) noexcept;
  static void unlock_trace(logging_table &trace, bool in_child) noexcept;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_FORK_LOCKS_H_
