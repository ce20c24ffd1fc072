#include "mesa_alloc/tracking_resource.h"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/known_scope.h"
#include "mesa_alloc/internal/tentative_request.h"

namespace mesa {
namespace internal {

constexpr int kUnassigned = -1;
constexpr int kSharedThread = -2;  // the thread counts in the shared shard

// The calling thread's exclusive shard index, or one of the two negative values above (so the
// hot paths test one sign for "not the plain exclusive case"). initial-exec: one instruction to
// read, no __tls_get_addr call from a shared library. External linkage on purpose: for a file-local
// initial-exec variable in a shared library, gold (Bazel's linker here) writes a TPOFF64 relocation
// without the variable's offset, so it reads whatever sits at the start of the library's TLS block;
// with a named symbol the relocation is right (tests/thread_locals_test.cc).
__attribute__((tls_model("initial-exec"))) thread_local int tracking_thread_shard = kUnassigned;

namespace {

// An upstream block with the C API caller set aside for the call (internal/api_caller.h): out of
// line, as only a C API call into a table over another's, once a layer records stacks, needs it.
[[gnu::noinline]] void *allocate_upstream_aside(internal::direct_upstream &upstream,
                                                std::size_t bytes, std::size_t alignment) {
  const internal::foreign_call call(upstream.table());
  return upstream.allocate(bytes, alignment);
}

inline void *allocate_upstream(internal::direct_upstream &upstream, std::size_t bytes,
                               std::size_t alignment) {
  if (__builtin_expect(upstream.table() == nullptr || !internal::caller_recorded(), 1))
    return upstream.allocate(bytes, alignment);
  return allocate_upstream_aside(upstream, bytes, alignment);
}

constexpr int kSharedShard = kTrackingShards;
constexpr std::uint64_t kAllExclusive = (std::uint64_t{1} << kTrackingShards) - 1;

// Bit i set: exclusive shard i is free. Shared by every tracker: a thread's index is the same in
// all of them.
std::atomic<std::uint64_t> g_free_shards{kAllExclusive};

// A thread's exclusive shard goes back to the free set when the thread exits, through a
// pthread key's destructor rather than a thread_local object's: glibc makes a library with a
// thread_local destructor impossible to unload while the thread lives (the Vulkan loader
// dlcloses a driver at vkDestroyInstance), and registers each such destructor with a calloc
// behind the application's allocator. The key is deleted when this copy is unloaded, so no
// thread exit calls into an unmapped library.
void release_shard(void *value) {
  const auto index = static_cast<int>(reinterpret_cast<std::intptr_t>(value)) - 1;
  tracking_thread_shard = kSharedThread;  // frees made during thread exit go to the shared shard
  if (index >= 0 && index < kTrackingShards)
    g_free_shards.fetch_or(std::uint64_t{1} << index, std::memory_order_release);
}

class shard_key {
 public:
  shard_key() noexcept : made_(pthread_key_create(&key_, &release_shard) == 0) {}
  shard_key(const shard_key &) = delete;
  shard_key &operator=(const shard_key &) = delete;
  ~shard_key() {
    if (made_) pthread_key_delete(key_);
  }
  // False if no key could be made: the thread then keeps its shard when it exits.
  bool remember(int index) const noexcept {
    return made_ &&
           pthread_setspecific(key_, reinterpret_cast<void *>(std::intptr_t{index} + 1)) == 0;
  }

 private:
  pthread_key_t key_;
  bool made_;
};

shard_key g_shard_key;

[[gnu::noinline]] int assign_shard() noexcept {
  std::uint64_t free = g_free_shards.load(std::memory_order_relaxed);
  int index = kSharedShard;
  while (free != 0) {
    const int candidate = __builtin_ctzll(free);
    if (g_free_shards.compare_exchange_weak(free, free & ~(std::uint64_t{1} << candidate),
                                            std::memory_order_acquire)) {
      index = candidate;
      break;
    }
  }
  tracking_thread_shard = index == kSharedShard ? kSharedThread : index;
  if (index != kSharedShard) (void)g_shard_key.remember(index);
  return index;
}

}  // namespace

int tracking_shard_index() noexcept {
  const int index = tracking_thread_shard;
  if (__builtin_expect(index >= 0, 1)) return index;
  return index == kSharedThread ? kSharedShard : assign_shard();
}

}  // namespace internal

namespace {

constexpr int kShared = internal::kTrackingShards;

// An exclusive shard is written by its owner thread only: a plain load and store. The shared
// shard takes an atomic read-modify-write.
template <class T>
inline T bump(std::atomic<T> &counter, T delta, bool shared) noexcept {
  if (shared) return counter.fetch_add(delta, std::memory_order_relaxed) + delta;
  const T value = counter.load(std::memory_order_relaxed) + delta;
  counter.store(value, std::memory_order_relaxed);
  return value;
}

template <class T>
void store_max(std::atomic<T> &target, T value) noexcept {
  T current = target.load(std::memory_order_relaxed);
  while (current < value &&
         !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

std::size_t non_negative(std::int64_t v) { return v < 0 ? 0 : static_cast<std::size_t>(v); }

}  // namespace

tracking_resource::tracking_resource(std::pmr::memory_resource *upstream, std::string_view name,
                                     tracking_resource *parent) noexcept
    : direct_(upstream, "tracking_resource::allocate"), parent_(parent) {
  if (upstream == nullptr) internal::report_null_resource("tracking_resource", "upstream resource");
  std::size_t length = std::min(name.size(), kMaxName);
  // A cut falls between characters: a UTF-8 name stays UTF-8 (the JSON report needs it).
  while (length > 0 && length < name.size() && (name[length] & 0xC0) == 0x80) --length;
  if (length != 0) std::memcpy(name_storage_, name.data(), length);
  name_storage_[length] = '\0';
  name_ = std::string_view(name_storage_, length);
  if (parent_ != nullptr) {
    std::lock_guard<std::mutex> lock(parent_->children_mutex_);
    // The parent's limits and one for having a parent.
    chain_.store(parent_->limits_in_chain() + 1, std::memory_order_relaxed);
    next_sibling_ = parent_->first_child_;
    parent_->first_child_ = this;
  }
}

tracking_resource::~tracking_resource() {
  {
    // A child would go on charging this tracker's freed counters and limit: it is cut loose
    // (it and its descendants stop counting this tracker and its ancestors), and a line says so.
    std::lock_guard<std::mutex> lock(children_mutex_);
    const int limits = limits_in_chain();  // ours and our ancestors', in each descendant's chain
    while (tracking_resource *child = first_child_) {
      // What the child holds now was counted (and charged) up the whole chain; its frees will
      // no longer reach this tracker's ancestors, so they let go of it now.
      const tracking_stats held = child->stats();
      if (parent_ != nullptr) parent_->forget_in_use(held);
      // write(2), not stdio: a report being printed holds the stream's lock and may wait for
      // this tracker's lock.
      char line[320];
      const int n = std::snprintf(
          line, sizeof line,
          "mesa_alloc: tracking_resource '%s' destroyed while its child '%s' is alive; the child "
          "no longer rolls up into it (destroy the children first)%s\n",
          name_storage_, child->name_storage_,
          parent_ != nullptr && held.blocks_in_use != 0
              ? "; its ancestors no longer count the blocks the child holds"
              : "");
      internal::write_line(line, n, sizeof line);
      first_child_ = child->next_sibling_;
      child->next_sibling_ = nullptr;
      child->parent_ = nullptr;
      child->add_chain_limits(-limits);
      child->chain_.fetch_sub(1, std::memory_order_relaxed);  // the child has no parent now
    }
  }
  if (parent_ == nullptr) return;
  std::lock_guard<std::mutex> lock(parent_->children_mutex_);
  for (tracking_resource **link = &parent_->first_child_; *link != nullptr;
       link = &(*link)->next_sibling_) {
    if (*link == this) {
      *link = next_sibling_;
      break;
    }
  }
}

void tracking_resource::forget_in_use(const tracking_stats &held) noexcept {
  uncharge_limits(held.bytes_in_use);
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    shard &s = t->shards_[kShared];
    t->used_shards_.fetch_or(std::uint64_t{1} << kShared, std::memory_order_relaxed);
    s.deallocations.fetch_add(held.blocks_in_use, std::memory_order_relaxed);
    s.freed_bytes.fetch_add(held.bytes_in_use, std::memory_order_relaxed);
    for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
      if (i == MESA_ALLOC_SCOPE_OBJECT) continue;
      s.scope_deallocations[i].fetch_add(held.scopes[i].blocks_in_use, std::memory_order_relaxed);
      s.scope_freed_bytes[i].fetch_add(held.scopes[i].bytes_in_use, std::memory_order_relaxed);
    }
  }
}

void tracking_resource::set_limit(std::size_t bytes) noexcept {
  if (bytes != kNoLimit) charged_.store(stats().bytes_in_use, std::memory_order_relaxed);
  const std::size_t previous = limit_.exchange(bytes, std::memory_order_relaxed);
  if (previous == kNoLimit && bytes != kNoLimit) add_chain_limits(1);
  if (previous != kNoLimit && bytes == kNoLimit) add_chain_limits(-1);
}

// Under the children lock, so that a child being constructed (which reads chain_ under the same
// lock) either sees the old count and is then in the list below, or sees the new one and is not.
void tracking_resource::add_chain_limits(int delta) noexcept {
  std::lock_guard<std::mutex> lock(children_mutex_);
  chain_.fetch_add(delta, std::memory_order_relaxed);
  for (tracking_resource *c = first_child_; c != nullptr; c = c->next_sibling_)
    c->add_chain_limits(delta);
}

bool tracking_resource::try_charge_limits(std::size_t bytes) noexcept {
  if (limits_in_chain() == 0) return true;
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    const std::size_t limit = t->limit_.load(std::memory_order_relaxed);
    if (limit == kNoLimit) continue;
    std::size_t charged = t->charged_.load(std::memory_order_relaxed);
    bool fits;
    do {
      fits = charged <= limit && bytes <= limit - charged;
    } while (fits && !t->charged_.compare_exchange_weak(charged, charged + bytes,
                                                        std::memory_order_relaxed));
    if (!fits) {
      // Undo the charges already made on the descendants of `t`.
      for (tracking_resource *u = this; u != t; u = u->parent_)
        if (u->limit_.load(std::memory_order_relaxed) != kNoLimit)
          u->charged_.fetch_sub(bytes, std::memory_order_relaxed);
      return false;
    }
  }
  return true;
}

// A limited tracker's charge is its bytes in use (a single exact counter), so its peak bytes
// come from the charge, read once the allocation has succeeded, instead of from the sampled
// shards (sample_peak leaves them alone): never above the limit, exact with one thread.
void tracking_resource::note_charged_peaks() noexcept {
  if (limits_in_chain() == 0) return;
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    if (t->limit_.load(std::memory_order_relaxed) == kNoLimit) continue;
    store_max(t->peak_bytes_, t->charged_.load(std::memory_order_relaxed));
  }
}

void tracking_resource::uncharge_limits(std::size_t bytes) noexcept {
  if (limits_in_chain() == 0) return;
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    if (t->limit_.load(std::memory_order_relaxed) == kNoLimit) continue;
    // More back than is charged comes of a block freed twice or with a larger size than it was
    // allocated with (or of a limit set while other threads allocated): the charge stops at 0
    // (wrapped, it would refuse everything from then on) and the misuse is said.
    std::size_t charged = t->charged_.load(std::memory_order_relaxed);
    while (!t->charged_.compare_exchange_weak(charged, charged >= bytes ? charged - bytes : 0,
                                              std::memory_order_relaxed)) {
    }
    if (charged < bytes) t->report_overdrawn(bytes, charged);
  }
}

void tracking_resource::report_overdrawn(std::size_t bytes, std::size_t charged) const noexcept {
  // write(2), not stdio: this can run under a children lock (a child cut loose gives back its
  // charge), and a report being printed holds the stream's lock and may wait for that one.
  char line[400];
  const int n = std::snprintf(
      line, sizeof line,
      "mesa_alloc: tracking resource '%.*s': %zu bytes given back with %zu charged to its limit "
      "(a block freed twice or with a larger size than it was allocated with, or a limit set "
      "while other threads allocated); the charge is now 0\n",
      static_cast<int>(name_.size()), name_.data(), bytes, charged);
  internal::write_line(line, n, sizeof line);
}

void tracking_resource::count_allocation_up(int index, std::size_t bytes,
                                            mesa_alloc_scope scope) noexcept {
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    if (index == kShared)
      t->count_allocation_here<true>(index, bytes, scope);
    else
      t->count_allocation_here<false>(index, bytes, scope);
  }
}

template <bool shared>
void tracking_resource::count_allocation_here(int index, std::size_t bytes,
                                              mesa_alloc_scope scope) noexcept {
  shard &s = shards_[index];
  const std::uint64_t allocations = s.allocations.load(std::memory_order_relaxed);
  bump<std::uint64_t>(s.allocations, 1, shared);
  const std::uint64_t allocated = bump<std::uint64_t>(s.allocated_bytes, bytes, shared);
  if (scope != MESA_ALLOC_SCOPE_OBJECT) {
    bump<std::uint64_t>(s.scope_allocations[scope], 1, shared);
    bump<std::uint64_t>(s.scope_allocated_bytes[scope], bytes, shared);
  }
  const auto now_bytes =
      static_cast<std::int64_t>(allocated - s.freed_bytes.load(std::memory_order_relaxed));
  const auto now_blocks =
      static_cast<std::int64_t>(allocations + 1 - s.deallocations.load(std::memory_order_relaxed));
  if (__builtin_expect(now_bytes > s.high_bytes.load(std::memory_order_relaxed) ||
                           now_blocks > s.high_blocks.load(std::memory_order_relaxed),
                       0)) {
    // A shard's first allocation always lands here (its blocks go from at most 0 to 1) unless
    // the shard freed first, which marked it used already.
    const std::uint64_t bit = std::uint64_t{1} << index;
    if ((used_shards_.load(std::memory_order_relaxed) & bit) == 0)
      used_shards_.fetch_or(bit, std::memory_order_relaxed);
    store_max(s.high_bytes, now_bytes);
    store_max(s.high_blocks, now_blocks);
    sample_peak();
  }
}

void tracking_resource::count_deallocation_up(int index, std::size_t bytes,
                                              mesa_alloc_scope scope) noexcept {
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    if (index == kShared)
      t->count_deallocation_here<true>(index, bytes, scope);
    else
      t->count_deallocation_here<false>(index, bytes, scope);
  }
}

template <bool shared>
void tracking_resource::count_deallocation_here(int index, std::size_t bytes,
                                                mesa_alloc_scope scope) noexcept {
  shard &s = shards_[index];
  if (__builtin_expect(s.deallocations.load(std::memory_order_relaxed) == 0, 0))
    used_shards_.fetch_or(std::uint64_t{1} << index, std::memory_order_relaxed);
  bump<std::uint64_t>(s.deallocations, 1, shared);
  bump<std::uint64_t>(s.freed_bytes, bytes, shared);
  if (scope != MESA_ALLOC_SCOPE_OBJECT) {
    bump<std::uint64_t>(s.scope_deallocations[scope], 1, shared);
    bump<std::uint64_t>(s.scope_freed_bytes[scope], bytes, shared);
  }
}

void tracking_resource::count_failure(int index, mesa_alloc_scope scope) noexcept {
  for (tracking_resource *t = this; t != nullptr; t = t->parent_) {
    shard &s = t->shards_[index];
    if (s.failures.load(std::memory_order_relaxed) == 0)
      t->used_shards_.fetch_or(std::uint64_t{1} << index, std::memory_order_relaxed);
    bump<std::uint64_t>(s.failures, 1, index == kShared);
    if (scope != MESA_ALLOC_SCOPE_OBJECT)
      bump<std::uint64_t>(s.scope_failures[scope], 1, index == kShared);
  }
}

bool tracking_resource::count_refusal(int index, mesa_alloc_scope scope) noexcept {
  if (internal::tentative_request::active()) return false;
  count_failure(index, scope);
  return true;
}

void tracking_resource::sample_peak() noexcept {
  std::uint64_t bytes = 0, blocks = 0;  // modular sums: exact once every shard is added
  for (std::uint64_t used = used_shards_.load(std::memory_order_relaxed); used != 0;
       used &= used - 1) {
    const shard &s = shards_[__builtin_ctzll(used)];
    bytes += s.allocated_bytes.load(std::memory_order_relaxed) -
             s.freed_bytes.load(std::memory_order_relaxed);
    blocks += s.allocations.load(std::memory_order_relaxed) -
              s.deallocations.load(std::memory_order_relaxed);
  }
  if (limit_.load(std::memory_order_relaxed) == kNoLimit)
    store_max(peak_bytes_, non_negative(static_cast<std::int64_t>(bytes)));
  store_max(peak_blocks_, non_negative(static_cast<std::int64_t>(blocks)));
}

// The hot paths: a thread with its own shard, on a tracker with no parent and no limit above
// it. flatten: the counting is inlined, no calls but the upstream's; a deallocation counts
// before calling the upstream, so nothing needs to live across the call (no saved registers).
// Everything else (first use on a thread, the shared shard, parents, limits) takes the
// out-of-line paths below.
[[gnu::flatten]] void *tracking_resource::allocate_in_scope(std::size_t bytes,
                                                            std::size_t alignment,
                                                            mesa_alloc_scope scope) {
  scope = internal::known_scope(scope);
  const int index = internal::tracking_thread_shard;
  if (__builtin_expect(!straight_line(index), 0)) return allocate_slow(bytes, alignment, scope);
  void *p;
  try {
    p = internal::allocate_upstream(direct_, bytes, alignment);
  } catch (...) {
    count_failure(index, scope);
    throw;
  }
  count_allocation_here<false>(index, bytes, scope);
  return p;
}

[[gnu::flatten]] void tracking_resource::deallocate_in_scope(void *p, std::size_t bytes,
                                                             std::size_t alignment,
                                                             mesa_alloc_scope scope) noexcept {
  if (__builtin_expect(p == nullptr, 0)) return;  // no block: nothing to count or give back
  scope = internal::known_scope(scope);
  const int index = internal::tracking_thread_shard;
  if (__builtin_expect(!straight_line(index), 0))
    return deallocate_slow(p, bytes, alignment, scope);
  count_deallocation_here<false>(index, bytes, scope);
  direct_.deallocate(p, bytes, alignment);
}

void *tracking_resource::allocate_slow(std::size_t bytes, std::size_t alignment,
                                       mesa_alloc_scope scope) {
  const int index = internal::tracking_shard_index();
  if (!try_charge_limits(bytes)) {
    count_refusal(index, scope);
    throw std::bad_alloc();
  }
  void *p;
  try {
    p = internal::allocate_upstream(direct_, bytes, alignment);
  } catch (...) {
    uncharge_limits(bytes);
    count_failure(index, scope);
    throw;
  }
  note_charged_peaks();
  count_allocation_up(index, bytes, scope);
  return p;
}

void tracking_resource::deallocate_slow(void *p, std::size_t bytes, std::size_t alignment,
                                        mesa_alloc_scope scope) noexcept {
  direct_.deallocate(p, bytes, alignment);
  uncharge_limits(bytes);
  count_deallocation_up(internal::tracking_shard_index(), bytes, scope);
}

[[gnu::flatten]] void *tracking_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  return allocate_in_scope(bytes, alignment, MESA_ALLOC_SCOPE_OBJECT);
}

[[gnu::flatten]] void tracking_resource::do_deallocate(void *p, std::size_t bytes,
                                                       std::size_t alignment) {
  deallocate_in_scope(p, bytes, alignment, MESA_ALLOC_SCOPE_OBJECT);
}

bool tracking_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
  return this == &other;
}

tracking_stats tracking_resource::stats() const noexcept {
  tracking_stats out;
  std::uint64_t freed = 0;
  std::uint64_t scope_bytes[MESA_ALLOC_SCOPE_COUNT] = {}, scope_freed[MESA_ALLOC_SCOPE_COUNT] = {};
  std::uint64_t scope_deallocations[MESA_ALLOC_SCOPE_COUNT] = {};
  for (std::uint64_t used = used_shards_.load(std::memory_order_acquire); used != 0;
       used &= used - 1) {
    const shard &s = shards_[__builtin_ctzll(used)];
    out.total_bytes += s.allocated_bytes.load(std::memory_order_relaxed);
    freed += s.freed_bytes.load(std::memory_order_relaxed);
    out.total_allocations += s.allocations.load(std::memory_order_relaxed);
    out.total_deallocations += s.deallocations.load(std::memory_order_relaxed);
    out.failed_allocations += s.failures.load(std::memory_order_relaxed);
    for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
      if (i == MESA_ALLOC_SCOPE_OBJECT) continue;
      scope_bytes[i] += s.scope_allocated_bytes[i].load(std::memory_order_relaxed);
      scope_freed[i] += s.scope_freed_bytes[i].load(std::memory_order_relaxed);
      out.scopes[i].total_allocations += s.scope_allocations[i].load(std::memory_order_relaxed);
      scope_deallocations[i] += s.scope_deallocations[i].load(std::memory_order_relaxed);
      out.scopes[i].failed_allocations += s.scope_failures[i].load(std::memory_order_relaxed);
    }
  }
  // The OBJECT scope is what the other scopes leave. Read while other threads count, a shard's
  // scope counter may be ahead of the total read before it (a writer bumps the total first): the
  // difference stops at 0 rather than wrapping round to nearly 2^64 (a threads probe).
  std::uint64_t others_bytes = 0, others_freed = 0, others_allocations = 0;
  std::uint64_t others_deallocations = 0, others_failed = 0;
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    if (i == MESA_ALLOC_SCOPE_OBJECT) continue;
    others_bytes += scope_bytes[i];
    others_freed += scope_freed[i];
    others_allocations += out.scopes[i].total_allocations;
    others_deallocations += scope_deallocations[i];
    others_failed += out.scopes[i].failed_allocations;
  }
  const auto left = [](std::uint64_t all, std::uint64_t others) {
    return all > others ? all - others : 0;
  };
  scope_bytes[MESA_ALLOC_SCOPE_OBJECT] = left(out.total_bytes, others_bytes);
  scope_freed[MESA_ALLOC_SCOPE_OBJECT] = left(freed, others_freed);
  out.scopes[MESA_ALLOC_SCOPE_OBJECT].total_allocations =
      left(out.total_allocations, others_allocations);
  scope_deallocations[MESA_ALLOC_SCOPE_OBJECT] =
      left(out.total_deallocations, others_deallocations);
  out.scopes[MESA_ALLOC_SCOPE_OBJECT].failed_allocations =
      left(out.failed_allocations, others_failed);
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    out.scopes[i].bytes_in_use =
        non_negative(static_cast<std::int64_t>(scope_bytes[i] - scope_freed[i]));
    out.scopes[i].blocks_in_use = non_negative(
        static_cast<std::int64_t>(out.scopes[i].total_allocations - scope_deallocations[i]));
    out.scopes[i].total_bytes = scope_bytes[i];
    out.scopes[i].total_deallocations = scope_deallocations[i];
  }
  out.bytes_in_use = non_negative(static_cast<std::int64_t>(out.total_bytes - freed));
  out.blocks_in_use =
      non_negative(static_cast<std::int64_t>(out.total_allocations - out.total_deallocations));
  // The fold above is exact at rest only: while blocks move between threads it can count an
  // allocation without a free made in a shard read earlier, and read high. Under a limit the
  // charge is exact at every moment, and the peak takes no more than it.
  std::size_t in_use_for_peak = out.bytes_in_use;
  if (limit_.load(std::memory_order_relaxed) != kNoLimit)
    in_use_for_peak = std::min(in_use_for_peak, charged_.load(std::memory_order_relaxed));
  out.peak_bytes = std::max(peak_bytes_.load(std::memory_order_relaxed), in_use_for_peak);
  out.peak_blocks = std::max(peak_blocks_.load(std::memory_order_relaxed), out.blocks_in_use);
  return out;
}

namespace {

// The length of the well-formed UTF-8 character at the start of `s` (RFC 3629: no overlong
// forms, no surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  std::size_t length;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if ((byte(i) & 0xC0) != 0x80) return 0;
  return length;
}

// A name in the text report's first column, `width` characters wide: control characters (C0
// and C1) as '?', a malformed byte as '?', characters (not bytes, nor display columns: a wide
// character takes two) counted for the padding.
void print_name_cell(std::FILE *out, std::string_view name, int width) {
  int shown = 0;
  for (std::size_t i = 0; i < name.size(); ++shown) {
    const std::size_t length = utf8_length(name.substr(i));
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(name[i + k]); };
    if (length <= 1) {
      std::fputc(length == 0 || byte(0) < 0x20 || byte(0) == 0x7F ? '?' : byte(0), out);
      ++i;
    } else if (length == 2 && byte(0) == 0xC2 && byte(1) < 0xA0) {
      std::fputc('?', out);  // a C1 control character (U+0080..U+009F)
      i += 2;
    } else {
      std::fwrite(name.data() + i, 1, length, out);
      i += length;
    }
  }
  for (; shown < width; ++shown) std::fputc(' ', out);
}

}  // namespace

void tracking_resource::print_rows(std::FILE *out, int depth) const noexcept {
  const tracking_stats s = stats();
  const std::size_t limit = this->limit();
  char limit_text[32];
  if (limit == kNoLimit)
    std::snprintf(limit_text, sizeof limit_text, "-");
  else
    std::snprintf(limit_text, sizeof limit_text, "%zu", limit);
  std::fprintf(out, "%*s", depth * 2, "");
  print_name_cell(out, name_, 24 - depth * 2 > 1 ? 24 - depth * 2 : 1);
  std::fprintf(out, " %14zu %14zu %16llu %10zu %11zu %12llu %13llu %8llu %14s\n", s.bytes_in_use,
               s.peak_bytes, static_cast<unsigned long long>(s.total_bytes), s.blocks_in_use,
               s.peak_blocks, static_cast<unsigned long long>(s.total_allocations),
               static_cast<unsigned long long>(s.total_deallocations),
               static_cast<unsigned long long>(s.failed_allocations), limit_text);
  std::lock_guard<std::mutex> lock(children_mutex_);
  for (const tracking_resource *c = first_child_; c != nullptr; c = c->next_sibling_)
    c->print_rows(out, depth + 1);
}

// One report is one piece of the stream: the stream is locked across it (stdio's lock is
// recursive), so another thread's line cannot land inside. Lock order: the stream, then the
// trackers' children locks, top down.
void tracking_resource::print_report(std::FILE *out) const noexcept {
  flockfile(out);
  std::fprintf(out, "%-24s %14s %14s %16s %10s %11s %12s %13s %8s %14s\n", "tracker",
               "bytes_in_use", "peak_bytes", "total_bytes", "blocks", "peak_blocks", "allocations",
               "deallocations", "failed", "limit");
  print_rows(out, 0);
  funlockfile(out);
}

namespace {

// A JSON string (RFC 8259): quotes, backslashes and control characters escaped, well-formed
// UTF-8 kept, a malformed byte written as U+FFFD (JSON text must be UTF-8).
void print_json_string(std::FILE *out, std::string_view s) {
  std::fputc('"', out);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t length = utf8_length(s.substr(i));
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (length == 0) {
      std::fputs("\\ufffd", out);
      ++i;
      continue;
    }
    if (c == '"' || c == '\\')
      std::fprintf(out, "\\%c", c);
    else if (c < 0x20)
      std::fprintf(out, "\\u%04x", c);
    else
      std::fwrite(s.data() + i, 1, length, out);
    i += length;
  }
  std::fputc('"', out);
}

const char *const kScopeNames[MESA_ALLOC_SCOPE_COUNT] = {"command", "object", "cache", "device",
                                                         "instance"};

}  // namespace

void tracking_resource::print_json_object(std::FILE *out) const noexcept {
  const tracking_stats s = stats();
  std::fputs("{\"name\":", out);
  print_json_string(out, name_);
  std::fprintf(out,
               ",\"bytes_in_use\":%zu,\"peak_bytes\":%zu,\"total_bytes\":%llu,"
               "\"blocks_in_use\":%zu,\"peak_blocks\":%zu,\"total_allocations\":%llu,"
               "\"total_deallocations\":%llu,\"failed_allocations\":%llu,",
               s.bytes_in_use, s.peak_bytes, static_cast<unsigned long long>(s.total_bytes),
               s.blocks_in_use, s.peak_blocks, static_cast<unsigned long long>(s.total_allocations),
               static_cast<unsigned long long>(s.total_deallocations),
               static_cast<unsigned long long>(s.failed_allocations));
  if (limit() == kNoLimit)
    std::fputs("\"limit\":null,\"scopes\":{", out);
  else
    std::fprintf(out, "\"limit\":%zu,\"scopes\":{", limit());
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i)
    std::fprintf(
        out,
        "%s\"%s\":{\"bytes_in_use\":%zu,\"blocks_in_use\":%zu,\"total_bytes\":%llu,"
        "\"total_allocations\":%llu,\"total_deallocations\":%llu,\"failed_allocations\":%llu}",
        i == 0 ? "" : ",", kScopeNames[i], s.scopes[i].bytes_in_use, s.scopes[i].blocks_in_use,
        static_cast<unsigned long long>(s.scopes[i].total_bytes),
        static_cast<unsigned long long>(s.scopes[i].total_allocations),
        static_cast<unsigned long long>(s.scopes[i].total_deallocations),
        static_cast<unsigned long long>(s.scopes[i].failed_allocations));
  std::fputs("},\"children\":[", out);
  std::lock_guard<std::mutex> lock(children_mutex_);
  for (const tracking_resource *c = first_child_; c != nullptr; c = c->next_sibling_) {
    if (c != first_child_) std::fputc(',', out);
    c->print_json_object(out);
  }
  std::fputs("]}", out);
}

void tracking_resource::print_json(std::FILE *out) const noexcept {
  flockfile(out);
  print_json_object(out);
  std::fputc('\n', out);
  funlockfile(out);
}

}  // namespace mesa
