// pool_resource — size classes of free lists plus a large-block path: a faster drop-in for
// std::pmr::unsynchronized_pool_resource.
//
// What it is for: general allocation of many small objects of mixed sizes on one thread
// (containers of containers, node-based maps, strings) with memory given back all at once.
//
// What it costs: requests up to 4096 bytes with alignment up to 16 are rounded up to one of 28
// size classes (16..128 by 16: at most 15 bytes of waste; then four per doubling: at most 25%
// of the request) and served by an inline free-list pop; deallocate is an inline push, plus
// one compare: a free block holds the pool's key in its second word, so a double free is found
// on the free list and refused with one line on stderr. No per-block header. Class blocks are
// carved in batches out of chunks from upstream (16 KiB doubling to 1 MiB; when upstream refuses
// one, as a budget does, half that down to one block's worth) that go back only on release() or
// destruction. Larger or more aligned requests get their own upstream block with a 32-byte header
// (20 bytes on 32-bit targets; rounded up to the alignment), released with the pool.
// allocate()/deallocate() called on a pool_resource (not through a memory_resource *) are
// non-virtual. A block freed with the wrong size, or one the pool never made, is caught only by a
// debug_resource in front of it.
//
// Example:
//   mesa::pool_resource pool(upstream);
//   std::pmr::unordered_map<int, std::pmr::string> names(&pool);
//   void *p = pool.allocate(48);   // inline; pool.deallocate(p, 48) to reuse it
//
// Not thread-safe: see synchronized_pool_resource.h.
#ifndef MESA_ALLOC_POOL_RESOURCE_H_
#define MESA_ALLOC_POOL_RESOURCE_H_

#include <cstddef>
#include <memory_resource>

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/pool_parts.h"

namespace mesa {

class pool_resource final : public std::pmr::memory_resource {
 public:
  explicit pool_resource(std::pmr::memory_resource *upstream) noexcept : upstream_(upstream) {
    if (upstream == nullptr) internal::report_null_resource("pool_resource", "upstream resource");
  }
  pool_resource(const pool_resource &) = delete;
  pool_resource &operator=(const pool_resource &) = delete;
  ~pool_resource() override { release(); }

  // The non-virtual fast path (hides memory_resource::allocate; same contract: an alignment
  // that is not a power of two throws std::bad_alloc, at no cost to the small-block path).
  [[nodiscard]] void *allocate(std::size_t bytes,
                               std::size_t alignment = alignof(std::max_align_t)) {
    if (internal::pool_is_small(bytes, alignment)) {
      const std::size_t c = internal::pool_class_of(bytes);
      if (free_[c] != nullptr) return internal::pop_free(free_[c]);
      return allocate_small_slow(c);
    }
    return large_.allocate(upstream_, bytes, alignment, "pool_resource::allocate");
  }
  void deallocate(void *p, std::size_t bytes,
                  std::size_t alignment = alignof(std::max_align_t)) noexcept {
    if (__builtin_expect(p == nullptr, 0)) return;
    if (internal::pool_is_small(bytes, alignment)) {
      const std::size_t c = internal::pool_class_of(bytes);
      auto *node = static_cast<internal::free_node *>(p);
      if (node->key == key_) return deallocate_keyed(node, c);
      internal::push_free(free_[c], node, key_);
      return;
    }
    large_.deallocate(upstream_, p, kName);
  }

  // Returns every chunk and large block upstream; every block of the pool becomes invalid.
  void release() noexcept;

  // Bytes held from upstream (chunks and large blocks).
  std::size_t bytes_reserved() const noexcept {
    return chunks_.bytes_reserved() + large_.bytes_reserved();
  }
  std::pmr::memory_resource *upstream_resource() const noexcept { return upstream_; }

 private:
  [[gnu::noinline]] void *allocate_small_slow(std::size_t size_class);
  // deallocate() of a block that holds the free key: refused if it is on the free list (a
  // double free), pushed otherwise. Out of line, so deallocate() calls nothing on its way.
  [[gnu::cold, gnu::noinline]] void deallocate_keyed(internal::free_node *node,
                                                     std::size_t size_class) noexcept;

  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    return allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  static constexpr const char *kName = "in mesa::pool_resource";

  const std::uintptr_t key_ = internal::free_list_key(this);  // next to the lists it guards
  internal::free_node *free_[internal::kPoolClasses] = {};
  internal::pool_chunks chunks_;
  internal::pool_large_blocks large_;
  std::pmr::memory_resource *upstream_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_POOL_RESOURCE_H_
