// slab_parent / slab_child — the thread-safe slab: per-thread children of one shared parent,
// in the spirit of Mesa's util/slab (slab_parent_pool / slab_child_pool).
//
// What it is for: fixed-size objects allocated on one thread (a context) and freed on any
// other (a driver thread, a fence callback). Each thread or context owns a slab_child and
// allocates from it with no lock; a block may be freed on any thread, through that thread's own
// child or through the parent; a block freed on a thread that does not own it migrates back to
// the child that owns its page. A child may be destroyed while its blocks are still live elsewhere:
// its pages are orphaned, later frees of their blocks still work, and a child that runs out of
// memory adopts one orphaned page that has free blocks per refill. A child takes a new page only
// when it has no free or migrated block and no orphaned page has a free one, so children that
// come and go, overlapping or not, reuse the same pages instead of growing the parent.
//
// What it costs: zero bytes per object (slots are at least two words; a free slot holds the
// link and a free key that makes a double free detectable, see internal/free_list.h). Pages are
// `page_size` bytes (a power of two) aligned to their size, so the owner of a block is found from
// its address (one mask, one load). allocate_object() is an inline pop from the child's free list;
// deallocate_object() on the owning child is an inline push. A free on a foreign child, the refill
// from migrated blocks, new pages and orphan adoption take the parent's mutex (util/slab does the
// same). Pages go back upstream only when the parent is destroyed. The upstream is only used under
// the parent's mutex, so it need not be thread-safe.
//
// Example:
//   mesa::slab_parent parent(upstream, sizeof(transfer));   // shared by every context
//   mesa::slab_child ctx0(&parent), ctx1(&parent);           // one per thread/context
//   void *t = ctx0.allocate_object();                        // thread 0, no lock
//   ctx1.deallocate_object(t);                               // thread 1: migrates to ctx0
//
// A slab_child is used by one thread at a time; the parent is thread-safe. Destroy every child
// before the parent (a parent destroyed with live children prints "mesa_alloc: slab_parent
// destroyed with live children" and aborts). A block of another slab_parent with the same page
// size is refused with one line; the check reads the page header where this parent's page
// would be, so a block of a slab with smaller pages, or a pointer from elsewhere, is only
// checked if that address is mapped (debug_resource in front checks any pointer). So is a
// pointer that does not start a slot (an interior pointer, a page's header) freed through the
// parent or a child that does not own its page; the owner's inline deallocate_object() does not
// look (a slab child's C table checks every free).
#ifndef MESA_ALLOC_SLAB_PARENT_H_
#define MESA_ALLOC_SLAB_PARENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>

#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/resource_cast.h"
#include "mesa_alloc/internal/slab_geometry.h"

namespace mesa {

class slab_child;

class slab_parent {
 public:
  // Objects of at most `object_size` bytes and `alignment` (0: natural, as slab_resource);
  // pages of `page_size` bytes rounded up to a power of two (0: room for 64 objects, at least
  // 4 KiB). Throws std::invalid_argument for an alignment that is not a power of two or is over
  // 1 MiB, an object over 1 GiB or one that does not fit a page, or a page over 1 TiB (2 GiB on
  // i386).
  slab_parent(std::pmr::memory_resource *upstream, std::size_t object_size,
              std::size_t alignment = 0, std::size_t page_size = 0);
  slab_parent(const slab_parent &) = delete;
  slab_parent &operator=(const slab_parent &) = delete;
  ~slab_parent();

  // Frees a block of any child, from any thread (also one without a child).
  void deallocate_object(void *p) noexcept;
  // Why `p` is not a block of this parent ("not a block of this slab (its page is not one of the
  // parent's)", or "(not the start of one of its slots: ...)" for an interior pointer), or NULL
  // if it is: the check a free through the parent or a foreign child makes, and a slab child's C
  // table on every free and realloc, before taking a block (with the caveat above: the address
  // where the page would start must be mapped). No lock: a page's tag is written before any of
  // its blocks is handed out. A load, a compare and a multiply: no division.
  const char *not_a_block(const void *p) const noexcept {
    if (page_of(p)->tag != key_) {
      return "not a block of this slab (its page is not one of the parent's)";
    }
    // Below the first slot the subtraction wraps past the span.
    const std::uintptr_t offset =
        (reinterpret_cast<std::uintptr_t>(p) & (page_size_ - 1)) - first_offset_;
    if (offset >= slots_bytes_ || !slot_multiple_(offset)) {
      return "not a block of this slab (not the start of one of its slots: an interior pointer, "
             "or a page's header)";
    }
    return nullptr;
  }

  std::size_t object_size() const noexcept { return object_size_; }
  std::size_t alignment() const noexcept { return alignment_; }
  std::size_t page_size() const noexcept { return page_size_; }
  std::size_t pages() const;
  std::pmr::memory_resource *upstream_resource() const noexcept { return upstream_; }

 private:
  friend class slab_child;
  using free_node = internal::free_node;
  struct page {
    std::atomic<slab_child *> owner;  // nullptr: orphaned
    page *next_all;                   // every page of the parent
    page *next_owned;                 // the owner's pages, or orphans_
    std::uintptr_t tag;               // the parent's key_: a block's page is one of its pages
    free_node *orphan_free;           // under mutex_: an orphaned page's free blocks
  };

  page *page_of(const void *p) const noexcept {
    return reinterpret_cast<page *>(reinterpret_cast<std::uintptr_t>(p) & ~(page_size_ - 1));
  }
  // Under mutex_: whether `node`, a block of this parent's page `pg`, is free. One holding the
  // free key is looked for on its owner's migrated list or its orphaned page's list (`listed`);
  // on a page a child owns and on neither, it is on that child's own free list, which only the
  // child's thread reads: a live block holds no key, so on 64-bit targets the key says it is
  // free (`marked`; internal::kKeyAloneDecides).
  enum class freed { no, listed, marked };
  freed freed_locked(const page *pg, const free_node *node) const noexcept;
  // Under mutex_: a block of `pg` freed by a thread that does not own it: onto the owner's
  // migrated list, or for an orphaned page onto its own free list (the page joins orphans_ with
  // its first free block).
  void push_foreign(page *pg, free_node *node) noexcept;
  // Under mutex_: frees `p` as push_foreign does, unless its page is not one of this parent's
  // or it is free already (freed_locked: a double free): then one line on stderr, naming
  // `where`, and the block is left alone.
  void free_checked(void *p, const char *where) noexcept;
  void *upstream_allocate(std::size_t bytes, std::size_t alignment);
  void upstream_deallocate(void *p, std::size_t bytes, std::size_t alignment) noexcept;

  mutable std::mutex mutex_;
  page *all_pages_ = nullptr;    // under mutex_
  page *orphans_ = nullptr;      // under mutex_: the orphaned pages that have free blocks
  std::size_t pages_count_ = 0;  // under mutex_
  std::size_t children_ = 0;     // under mutex_
  std::size_t object_size_;
  std::size_t alignment_;
  std::size_t page_size_;
  std::size_t first_offset_;
  std::size_t slots_bytes_;  // from the first slot to the end of the last one of a page
  internal::multiple_test slot_multiple_{1};  // of object_size_
  std::pmr::memory_resource *upstream_;
  const std::uintptr_t key_ = internal::free_list_key(this);  // free key and page tag
};

class slab_child final : public std::pmr::memory_resource {
 public:
  // A null parent is refused with one line (abort); a literal nullptr does not compile.
  explicit slab_child(slab_parent *parent);
  slab_child(std::nullptr_t) = delete;
  slab_child(const slab_child &) = delete;
  slab_child &operator=(const slab_child &) = delete;
  // Safe while blocks of this child are live elsewhere: its pages are orphaned to the parent.
  ~slab_child() override;

  // One object of parent->object_size() bytes. Throws std::bad_alloc when upstream fails.
  [[nodiscard]] void *allocate_object() {
    if (free_ != nullptr) return internal::pop_free(free_);
    return allocate_slow();
  }
  // Frees a block of any child of the same parent. A double free is refused with one line on
  // stderr: a block of this child's is looked for on its lists; another child's, on its
  // owner's migrated list or its orphaned page's, and on 64-bit targets one on its owner's own
  // list (which only the owner's thread reads) is known by the free key it holds. A null `p`
  // does nothing, as on the parent and through the C tables.
  void deallocate_object(void *p) noexcept {
    if (__builtin_expect(p == nullptr, 0)) return;
    slab_parent::page *pg = parent_->page_of(p);
    if (pg->owner.load(std::memory_order_relaxed) == this) {
      auto *node = static_cast<free_node *>(p);
      if (node->key == key_) return deallocate_keyed(node);
      internal::push_free(free_, node, key_);
      return;
    }
    deallocate_foreign(p);
  }

  // The non-virtual general path (hides memory_resource::allocate/deallocate; same contract: an
  // alignment that is not a power of two throws std::bad_alloc).
  // Requests that do not fit the slab go to the parent's upstream under its mutex.
  [[nodiscard]] void *allocate(std::size_t bytes,
                               std::size_t alignment = alignof(std::max_align_t)) {
    if (fits(bytes, alignment)) return allocate_object();
    return parent_->upstream_allocate(bytes, alignment);
  }
  void deallocate(void *p, std::size_t bytes, std::size_t alignment = alignof(std::max_align_t)) {
    if (fits(bytes, alignment)) return deallocate_object(p);
    parent_->upstream_deallocate(p, bytes, alignment);
  }

  slab_parent *parent() const noexcept { return parent_; }

  // True if `p`, a block of this child's parent, is free (freed and not allocated since), as
  // deallocate_object() decides before it refuses a double free: for a caller that keeps a
  // block instead of freeing it (the C table's realloc in place refuses a freed block). A live
  // block holds no free key: one compare, no lock.
  bool is_freed(const void *p) const noexcept {
    return static_cast<const free_node *>(p)->key == key_ && is_freed_keyed(p);
  }

 private:
  friend class slab_parent;
  using free_node = slab_parent::free_node;

  // is_freed() of a block holding the free key: the lists it could be on are searched.
  [[gnu::cold, gnu::noinline]] bool is_freed_keyed(const void *p) const noexcept;

  // A power of two up to the parent's alignment (0 wraps past it); anything else goes upstream.
  bool fits(std::size_t bytes, std::size_t alignment) const noexcept {
    return bytes <= parent_->object_size_ && alignment - 1 < parent_->alignment_ &&
           (alignment & (alignment - 1)) == 0;
  }
  [[gnu::noinline]] void *allocate_slow();
  [[gnu::noinline]] void deallocate_foreign(void *p) noexcept;
  // deallocate_object() of an own block holding the free key: refused if it is on free_ or
  // migrated_, pushed otherwise.
  [[gnu::cold, gnu::noinline]] void deallocate_keyed(free_node *node) noexcept;
  // True if `node`, a block of one of this child's pages, is on free_ or migrated_.
  bool on_own_lists(const free_node *node) const noexcept;

  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    return allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    deallocate(p, bytes, alignment);
  }
  // Blocks of one child may be freed through any child of the same parent.
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    if (internal::answer_resource_query(other, this)) return false;
    const auto *child = internal::resource_cast<slab_child>(other);
    return child != nullptr && child->parent_ == parent_;
  }

  free_node *free_ = nullptr;
  const std::uintptr_t key_;            // the parent's
  free_node *migrated_ = nullptr;       // under parent_->mutex_
  slab_parent::page *pages_ = nullptr;  // under parent_->mutex_
  slab_parent *parent_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_SLAB_PARENT_H_
