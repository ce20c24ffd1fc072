// slab_resource — fixed-size objects from a free list carved out of upstream pages.
//
// What it is for: many objects of one size that are created and destroyed all the time (IR
// instructions, fences, queries, transfer objects: what Mesa's util/slab serves).
//
// What it costs: zero bytes per object (slots are at least two words); allocate_object()/
// deallocate_object() are an inline pop/push on an intrusive free list (the push compares one
// word first: a double free is refused, see internal/free_list.h), and allocate()/deallocate()
// called on a slab_resource (not through a memory_resource *) are the same plus a size check.
// Through std::pmr it is one virtual call more. Pages of `page_size` bytes come from upstream and
// go back only on release() or destruction. Requests larger than object_size() or more aligned than
// alignment() go straight to upstream, so the slab is safe as a general resource.
//
// Example:
//   mesa::slab_resource slab(upstream, sizeof(instr));
//   auto *i = static_cast<instr *>(slab.allocate_object());    // inline pop
//   slab.deallocate_object(i);                                 // inline push
//   std::pmr::list<int> l(&slab);                              // nodes of <= object_size
//
// Not thread-safe: see slab_parent.h for the thread-safe parent/child variant.
#ifndef MESA_ALLOC_SLAB_RESOURCE_H_
#define MESA_ALLOC_SLAB_RESOURCE_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "mesa_alloc/internal/free_list.h"

namespace mesa {

class slab_resource final : public std::pmr::memory_resource {
 public:
  // Objects of at most `object_size` bytes and `alignment` (a power of two; 0: the natural
  // alignment of object_size rounded up to 8, at most 16 — 8 for 24 bytes, 16 for 64), from
  // upstream pages of `page_size` bytes (0: room for 64 objects, at least 4 KiB). Throws
  // std::invalid_argument for an alignment that is not a power of two or is over 1 MiB, an
  // object over 1 GiB or one that does not fit a page, or a page over 1 TiB (2 GiB on i386).
  slab_resource(std::pmr::memory_resource *upstream, std::size_t object_size,
                std::size_t alignment = 0, std::size_t page_size = 0);
  slab_resource(const slab_resource &) = delete;
  slab_resource &operator=(const slab_resource &) = delete;
  ~slab_resource() override { release(); }

  // One object of object_size() bytes. Throws std::bad_alloc when upstream fails.
  [[nodiscard]] void *allocate_object() {
    if (free_ != nullptr) return internal::pop_free(free_);
    return allocate_slow();
  }
  // `p` came from allocate_object() (or allocate() of a size that fits) of this slab. A block
  // freed twice is refused with one line on stderr (free_list.h). A null `p` does nothing.
  void deallocate_object(void *p) noexcept {
    if (__builtin_expect(p == nullptr, 0)) return;
    auto *node = static_cast<free_node *>(p);
    if (node->key == key_) return deallocate_keyed(node);
    internal::push_free(free_, node, key_);
  }
  // True if `p`, a block of this slab, is on its free list (freed and not allocated since): the
  // check deallocate_object() makes before it refuses a double free, for a caller that keeps a
  // block instead of freeing it (the C table's realloc in place refuses a freed block).
  bool is_freed(const void *p) const noexcept {
    const auto *node = static_cast<const free_node *>(p);
    return node->key == key_ && internal::on_free_list(free_, node);
  }

  // The non-virtual general path (hides memory_resource::allocate/deallocate; same contract: an
  // alignment that is not a power of two throws std::bad_alloc).
  [[nodiscard]] void *allocate(std::size_t bytes,
                               std::size_t alignment = alignof(std::max_align_t)) {
    if (fits(bytes, alignment)) return allocate_object();
    return allocate_upstream(bytes, alignment);
  }
  void deallocate(void *p, std::size_t bytes, std::size_t alignment = alignof(std::max_align_t)) {
    if (fits(bytes, alignment)) return deallocate_object(p);
    upstream_->deallocate(p, bytes, alignment);
  }

  // Returns every page upstream; every object of the slab becomes invalid.
  void release() noexcept;

  std::size_t object_size() const noexcept { return object_size_; }
  std::size_t alignment() const noexcept { return alignment_; }
  std::size_t page_size() const noexcept { return page_size_; }
  std::size_t pages() const noexcept { return pages_count_; }
  std::pmr::memory_resource *upstream_resource() const noexcept { return upstream_; }

 private:
  using free_node = internal::free_node;
  struct page;

  // A power of two up to alignment_ (0 wraps past it); anything else goes to allocate_upstream.
  bool fits(std::size_t bytes, std::size_t alignment) const noexcept {
    return bytes <= object_size_ && alignment - 1 < alignment_ &&
           (alignment & (alignment - 1)) == 0;
  }
  [[gnu::noinline]] void *allocate_slow();
  // deallocate_object() of a block holding the free key: refused if it is on the free list.
  [[gnu::cold, gnu::noinline]] void deallocate_keyed(free_node *node) noexcept;
  [[gnu::noinline]] void *allocate_upstream(std::size_t bytes, std::size_t alignment);

  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    return allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  free_node *free_ = nullptr;
  const std::uintptr_t key_ = internal::free_list_key(this);
  char *carve_ = nullptr;  // the not yet carved part of the newest page
  char *carve_end_ = nullptr;
  page *pages_ = nullptr;
  std::size_t pages_count_ = 0;
  std::size_t object_size_;
  std::size_t alignment_;
  std::size_t page_size_;
  std::size_t first_offset_;  // offset of the first object in a page
  std::pmr::memory_resource *upstream_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_SLAB_RESOURCE_H_
