// synchronized_pool_resource — the thread-safe pool_resource: a faster drop-in for
// std::pmr::synchronized_pool_resource.
//
// What it is for: small mixed-size allocations shared between threads (a driver's objects
// created on one thread and destroyed on another), with memory given back all at once.
//
// What it costs: the same size classes as pool_resource. Each thread has its own cache of free
// blocks per class, found through a 4-entry thread-local table (a load and a compare), so the
// common allocate/deallocate takes no lock. A cache that runs empty refills, and one that
// grows past its limit (32 KiB per class, 8 to 256 blocks) gives half back, through a
// per-class central list with its own mutex; new chunks, large blocks and new thread caches
// take one more mutex, which also serialises every use of the upstream (it need not be
// thread-safe). There is no global lock on the common path. A block freed on another thread
// goes to that thread's cache and flows back through the central lists. A thread's cache (at
// most its limits) stays with the pool after the thread exits, is reused by a later thread
// with the same std::thread::id, and goes back upstream with release(). The table holds a
// thread's four most recent pools: a thread that takes turns among five or more misses it on
// every call and finds its cache under the pool's upstream mutex (measured by a probe: one
// thread 5.7 → 19.8 ns per allocate/deallocate pair, two threads sharing the pools 12.9 → 48
// ns). Four entries keep the table at 64 bytes of static TLS; give a thread that works on many
// objects one pool, not one per object.
//
// Example:
//   mesa::synchronized_pool_resource pool(upstream);
//   // any thread:
//   std::pmr::vector<int> v(&pool);
//
// allocate/deallocate are thread-safe; release() and destruction need every other thread to
// have stopped using the pool.
#ifndef MESA_ALLOC_SYNCHRONIZED_POOL_RESOURCE_H_
#define MESA_ALLOC_SYNCHRONIZED_POOL_RESOURCE_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>
#include <thread>

#include "mesa_alloc/internal/per_copy.h"
#include "mesa_alloc/internal/pool_parts.h"

namespace mesa {

class synchronized_pool_resource final : public std::pmr::memory_resource {
 public:
  explicit synchronized_pool_resource(std::pmr::memory_resource *upstream) noexcept;
  synchronized_pool_resource(const synchronized_pool_resource &) = delete;
  synchronized_pool_resource &operator=(const synchronized_pool_resource &) = delete;
  ~synchronized_pool_resource() override { release(); }

  // The non-virtual fast path (hides memory_resource::allocate; same contract: an alignment
  // that is not a power of two throws std::bad_alloc, at no cost to the small-block path).
  [[nodiscard]] void *allocate(std::size_t bytes,
                               std::size_t alignment = alignof(std::max_align_t)) {
    if (internal::pool_is_small(bytes, alignment)) {
      thread_cache *cache = local_cache();
      const std::size_t c = internal::pool_class_of(bytes);
      if (cache->free[c] != nullptr) {
        --cache->count[c];
        return internal::pop_free(cache->free[c]);
      }
      return refill(cache, c);
    }
    return allocate_large(bytes, alignment);
  }
  void deallocate(void *p, std::size_t bytes,
                  std::size_t alignment = alignof(std::max_align_t)) noexcept {
    if (__builtin_expect(p == nullptr, 0)) return;
    if (internal::pool_is_small(bytes, alignment)) {
      const std::size_t c = internal::pool_class_of(bytes);
      auto *node = static_cast<internal::free_node *>(p);
      thread_cache *cache = attached_cache();
      if (cache == nullptr || node->key == key_) return deallocate_and_enter(node, c, cache);
      push(cache, node, c);
      return;
    }
    deallocate_large(p);
  }

  // Returns every chunk, large block and thread cache upstream. No other thread may use the
  // pool meanwhile; every block of the pool becomes invalid.
  void release() noexcept;

  // Bytes held from upstream (chunks and large blocks).
  std::size_t bytes_reserved() const;
  std::pmr::memory_resource *upstream_resource() const noexcept { return upstream_; }

 private:
  struct thread_cache {
    internal::free_node *free[internal::kPoolClasses];
    std::uint32_t count[internal::kPoolClasses];
    thread_cache *next;  // in the pool's registry
    std::thread::id owner;
  };
  struct alignas(64) central_list {
    std::mutex mutex;
    internal::free_node *free = nullptr;
  };
  struct tls_entry {
    std::uint64_t pool_id;
    thread_cache *cache;
  };
  static constexpr int kTlsEntries = 4;
  // Defined here with a constant initializer: no TLS init-function call on the fast path.
  // initial-exec: in a shared library (the Meson build; Mesa's drivers) the default model
  // would call __tls_get_addr on every allocation and free. 64 bytes of static TLS, as Mesa's
  // own initial-exec thread-locals take. Per copy (internal/per_copy.h), and so per library:
  // a program built with -fvisibility=hidden has its own table, apart from libmesa_alloc.so's.
  // Only code in this header writes it (`enter`), so each table is filled by the code that
  // reads it; pool ids come from one counter per copy of the library.
  [[gnu::tls_model("initial-exec")]] MESA_ALLOC_PER_COPY static inline thread_local tls_entry
      tls_[kTlsEntries] = {};

  // This thread's cache for this pool, if this library's table has it.
  thread_cache *attached_cache() const noexcept {
    for (const tls_entry &e : tls_) {
      if (e.pool_id == id_) return e.cache;
    }
    return nullptr;
  }
  thread_cache *local_cache() {
    thread_cache *cache = attached_cache();
    return cache != nullptr ? cache : attach_this_thread();
  }
  // Puts `cache` first in this thread's table (the oldest entry drops out).
  void enter(thread_cache *cache) noexcept {
    for (int i = kTlsEntries - 1; i > 0; --i) tls_[i] = tls_[i - 1];
    tls_[0] = tls_entry{id_, cache};
  }
  // The slow paths that write the table: out of line, and per copy like the table itself.
  MESA_ALLOC_PER_COPY [[gnu::noinline]] thread_cache *attach_this_thread() {
    thread_cache *cache = this_thread_cache();
    enter(cache);
    return cache;
  }
  MESA_ALLOC_PER_COPY [[gnu::noinline]] void deallocate_and_enter(internal::free_node *node,
                                                                  std::size_t size_class,
                                                                  thread_cache *cache) noexcept {
    if (thread_cache *attached = deallocate_slow(node, size_class, cache)) enter(attached);
  }
  void push(thread_cache *cache, internal::free_node *node, std::size_t c) noexcept {
    internal::push_free(cache->free[c], node, key_);
    if (++cache->count[c] > internal::kSizeClasses.cache_limit[c]) flush(cache, c);
  }
  // This thread's cache, found in the pool's registry or made (from upstream; may throw).
  [[gnu::noinline]] thread_cache *this_thread_cache();
  // True if the pool has a thread cache other than `mine` (null: any cache).
  bool another_cache_than(const thread_cache *mine) const noexcept;
  // deallocate() of a block that holds the free key, or on a thread whose cache is not in the
  // table (`cache` null: it is then found, or made). A keyed block is refused as a double free
  // if it is on this thread's cache or the central list of its class, or else, on 64-bit
  // targets, if another thread has a cache: only that thread reads it, and a live block holds
  // no key, so the key says the block is free there (or was freed with another size).
  // Otherwise the block goes to this thread's cache, or to the central list if upstream refuses
  // a new cache (a free does not fail). Returns the cache to enter in the table, or nullptr if
  // there is none to enter.
  [[gnu::noinline]] thread_cache *deallocate_slow(internal::free_node *node, std::size_t size_class,
                                                  thread_cache *cache) noexcept;
  [[gnu::noinline]] void *refill(thread_cache *cache, std::size_t size_class);
  [[gnu::noinline]] void flush(thread_cache *cache, std::size_t size_class) noexcept;
  [[gnu::noinline]] void *allocate_large(std::size_t bytes, std::size_t alignment);
  [[gnu::noinline]] void deallocate_large(void *p) noexcept;

  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    return allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  static constexpr const char *kName = "in mesa::synchronized_pool_resource";

  std::uint64_t id_;  // unique per pool and per release(): stale thread-local entries miss
  const std::uintptr_t key_ = internal::free_list_key(this);
  central_list central_[internal::kPoolClasses];
  mutable std::mutex upstream_mutex_;  // chunks_, large_, caches_ and every upstream call
  internal::pool_chunks chunks_;
  internal::pool_large_blocks large_;
  thread_cache *caches_ = nullptr;
  std::pmr::memory_resource *upstream_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_SYNCHRONIZED_POOL_RESOURCE_H_
