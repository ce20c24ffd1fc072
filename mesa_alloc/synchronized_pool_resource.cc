#include "mesa_alloc/synchronized_pool_resource.h"

#include <atomic>
#include <cstdio>
#include <new>

#include "mesa_alloc/internal/diagnostics.h"

namespace mesa {
namespace {

std::uint64_t next_pool_id() noexcept {
  static std::atomic<std::uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

synchronized_pool_resource::synchronized_pool_resource(std::pmr::memory_resource *upstream) noexcept
    : id_(next_pool_id()), upstream_(upstream) {
  if (upstream == nullptr) {
    internal::report_null_resource("synchronized_pool_resource", "upstream resource");
  }
}

synchronized_pool_resource::thread_cache *synchronized_pool_resource::this_thread_cache() {
  const std::thread::id self = std::this_thread::get_id();
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  for (thread_cache *c = caches_; c != nullptr; c = c->next) {
    if (c->owner == self) return c;
  }
  void *memory = upstream_->allocate(sizeof(thread_cache), alignof(thread_cache));
  auto *cache = new (memory) thread_cache{};
  cache->owner = self;
  cache->next = caches_;
  caches_ = cache;
  return cache;
}

bool synchronized_pool_resource::another_cache_than(const thread_cache *mine) const noexcept {
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  for (const thread_cache *c = caches_; c != nullptr; c = c->next)
    if (c != mine) return true;
  return false;
}

synchronized_pool_resource::thread_cache *synchronized_pool_resource::deallocate_slow(
    internal::free_node *node, std::size_t size_class, thread_cache *cache) noexcept {
  // Not in the table (evicted from it, or a table of another library that has not seen this
  // thread yet) does not mean this thread has no cache: find it before the double-free check.
  thread_cache *to_enter = nullptr;
  if (cache == nullptr) {
    try {
      cache = to_enter = this_thread_cache();
    } catch (...) {  // upstream refused a new cache: this thread has none, the block goes central
    }
  }
  central_list &central = central_[size_class];
  if (node->key == key_) {
    const std::size_t size = internal::kSizeClasses.size[size_class];
    if (cache != nullptr &&
        internal::refuse_double_free(cache->free[size_class], node, size, kName))
      return to_enter;
    {
      std::lock_guard<std::mutex> lock(central.mutex);
      if (internal::refuse_double_free(central.free, node, size, kName)) return to_enter;
    }
    if (internal::kKeyAloneDecides && another_cache_than(cache)) {
      char why[256];
      std::snprintf(why, sizeof why,
                    "a block freed as %zu bytes holds the pool's free mark and is not in this "
                    "thread's cache or on the central list for that size: it is free in another "
                    "thread's cache, which only that thread reads, or was freed before with "
                    "another size",
                    size);
      internal::report_refused_free("double free", node, kName, why);
      return to_enter;
    }
  }
  if (cache == nullptr) {
    std::lock_guard<std::mutex> lock(central.mutex);
    internal::push_free(central.free, node, key_);
    return nullptr;
  }
  push(cache, node, size_class);
  return to_enter;
}

void *synchronized_pool_resource::refill(thread_cache *cache, std::size_t size_class) {
  const std::size_t want = internal::kSizeClasses.cache_limit[size_class] / 2;
  {
    central_list &central = central_[size_class];
    std::lock_guard<std::mutex> lock(central.mutex);
    std::size_t taken = 0;
    while (central.free != nullptr && taken < want) {
      internal::free_node *node = central.free;
      central.free = node->next;
      node->next = cache->free[size_class];
      cache->free[size_class] = node;
      ++taken;
    }
    if (taken != 0) {
      cache->count[size_class] = static_cast<std::uint32_t>(taken - 1);
      return internal::pop_free(cache->free[size_class]);
    }
  }
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  std::size_t linked = 0;
  void *first = chunks_.carve(upstream_, internal::kSizeClasses.size[size_class], want,
                              &cache->free[size_class], &linked);
  cache->count[size_class] += static_cast<std::uint32_t>(linked);
  return first;
}

void synchronized_pool_resource::flush(thread_cache *cache, std::size_t size_class) noexcept {
  // Keep half the limit; hand the rest to the central list in one splice.
  const std::size_t keep = internal::kSizeClasses.cache_limit[size_class] / 2;
  internal::free_node *last_kept = cache->free[size_class];
  for (std::size_t i = 1; i < keep; ++i) last_kept = last_kept->next;
  internal::free_node *give = last_kept->next;
  internal::free_node *tail = give;
  while (tail->next != nullptr) tail = tail->next;
  last_kept->next = nullptr;
  cache->count[size_class] = static_cast<std::uint32_t>(keep);
  central_list &central = central_[size_class];
  std::lock_guard<std::mutex> lock(central.mutex);
  tail->next = central.free;
  central.free = give;
}

void *synchronized_pool_resource::allocate_large(std::size_t bytes, std::size_t alignment) {
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  return large_.allocate(upstream_, bytes, alignment, "synchronized_pool_resource::allocate");
}

void synchronized_pool_resource::deallocate_large(void *p) noexcept {
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  large_.deallocate(upstream_, p, kName);
}

std::size_t synchronized_pool_resource::bytes_reserved() const {
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  return chunks_.bytes_reserved() + large_.bytes_reserved();
}

void synchronized_pool_resource::release() noexcept {
  std::lock_guard<std::mutex> lock(upstream_mutex_);
  id_ = next_pool_id();
  chunks_.release(upstream_);
  large_.release(upstream_);
  while (caches_ != nullptr) {
    thread_cache *next = caches_->next;
    upstream_->deallocate(caches_, sizeof(thread_cache), alignof(thread_cache));
    caches_ = next;
  }
  for (central_list &central : central_) {
    std::lock_guard<std::mutex> central_lock(central.mutex);
    central.free = nullptr;
  }
}

}  // namespace mesa
