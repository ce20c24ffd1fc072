#include "mesa_alloc/slab_parent.h"

#include <cstdio>
#include <cstdlib>
#include <new>

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/slab_geometry.h"

namespace mesa {

slab_parent::slab_parent(std::pmr::memory_resource *upstream, std::size_t object_size,
                         std::size_t alignment, std::size_t page_size)
    : upstream_(upstream) {
  if (upstream == nullptr) internal::report_null_resource("slab_parent", "upstream resource");
  const internal::slab_geometry g = internal::slab_geometry::make(
      object_size, alignment, page_size, sizeof(page), /*power_of_two_pages=*/true);
  object_size_ = g.object_size;
  alignment_ = g.alignment;
  page_size_ = g.page_size;
  first_offset_ = g.first_offset;
  slots_bytes_ = (page_size_ - first_offset_) / object_size_ * object_size_;
  slot_multiple_ = internal::multiple_test(object_size_);
}

slab_parent::~slab_parent() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (children_ != 0) {
    std::fprintf(stderr, "mesa_alloc: slab_parent destroyed with live children (%zu)\n", children_);
    std::abort();
  }
  while (all_pages_ != nullptr) {
    page *next = all_pages_->next_all;
    all_pages_->~page();
    upstream_->deallocate(all_pages_, page_size_, page_size_);
    all_pages_ = next;
  }
}

std::size_t slab_parent::pages() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pages_count_;
}

void slab_parent::deallocate_object(void *p) noexcept {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  free_checked(p, "in mesa::slab_parent");
}

void slab_parent::free_checked(void *p, const char *where) noexcept {
  if (const char *why = not_a_block(p)) {
    internal::report_refused_free("invalid free", p, where, why);
    return;
  }
  page *pg = page_of(p);
  auto *node = static_cast<free_node *>(p);
  switch (freed_locked(pg, node)) {
    case freed::no:
      push_foreign(pg, node);
      return;
    case freed::listed:
      internal::report_freed_block("double free", node, object_size_, where);
      return;
    case freed::marked:
      internal::report_freed_block("double free", node, object_size_, where,
                                   " (it holds the slab's free mark, on the list of the child that "
                                   "owns its page, which only that child's thread reads)");
      return;
  }
}

slab_parent::freed slab_parent::freed_locked(const page *pg, const free_node *node) const noexcept {
  if (node->key != key_) return freed::no;
  const slab_child *owner = pg->owner.load(std::memory_order_relaxed);
  if (internal::on_free_list(owner != nullptr ? owner->migrated_ : pg->orphan_free, node))
    return freed::listed;
  return owner != nullptr && internal::kKeyAloneDecides ? freed::marked : freed::no;
}

void slab_parent::push_foreign(page *pg, free_node *node) noexcept {
  if (slab_child *owner = pg->owner.load(std::memory_order_relaxed)) {
    internal::push_free(owner->migrated_, node, key_);
    return;
  }
  if (pg->orphan_free == nullptr) {
    pg->next_owned = orphans_;
    orphans_ = pg;
  }
  internal::push_free(pg->orphan_free, node, key_);
}

void *slab_parent::upstream_allocate(std::size_t bytes, std::size_t alignment) {
  if (internal::request_refused(bytes, alignment))
    internal::refuse_request("slab_child::allocate", alignment);
  std::lock_guard<std::mutex> lock(mutex_);
  return upstream_->allocate(bytes, alignment);
}

void slab_parent::upstream_deallocate(void *p, std::size_t bytes, std::size_t alignment) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  upstream_->deallocate(p, bytes, alignment);
}

slab_child::slab_child(slab_parent *parent)
    : key_(parent != nullptr ? parent->key_ : 0), parent_(parent) {
  if (parent == nullptr) internal::report_null_resource("slab_child", "parent");
  std::lock_guard<std::mutex> lock(parent_->mutex_);
  ++parent_->children_;
}

slab_child::~slab_child() {
  std::lock_guard<std::mutex> lock(parent_->mutex_);
  --parent_->children_;
  for (slab_parent::page *pg = pages_; pg != nullptr; pg = pg->next_owned) {
    pg->owner.store(nullptr, std::memory_order_relaxed);
  }
  pages_ = nullptr;
  // Free and migrated blocks all belong to the pages just orphaned: each goes to its page's
  // list, and a page with a free block joins the orphans a refill adopts.
  for (free_node *list : {free_, migrated_}) {
    while (list != nullptr) {
      free_node *next = list->next;
      parent_->push_foreign(parent_->page_of(list), list);
      list = next;
    }
  }
  free_ = migrated_ = nullptr;
}

void *slab_child::allocate_slow() {
  slab_parent &parent = *parent_;
  slab_parent::page *fresh;
  {
    std::lock_guard<std::mutex> lock(parent.mutex_);
    if (migrated_ == nullptr && parent.orphans_ != nullptr) {
      // Adopt one orphaned page with its free blocks (it has some): the others stay for the
      // other children, so none of them takes a new page while an orphan could serve it.
      slab_parent::page *pg = parent.orphans_;
      parent.orphans_ = pg->next_owned;
      pg->owner.store(this, std::memory_order_relaxed);
      pg->next_owned = pages_;
      pages_ = pg;
      migrated_ = pg->orphan_free;
      pg->orphan_free = nullptr;
    }
    if (migrated_ != nullptr) {
      free_node *node = migrated_;
      free_ = node->next;
      migrated_ = nullptr;
      node->key = 0;
      return node;
    }
    void *memory = parent.upstream_->allocate(parent.page_size_, parent.page_size_);
    fresh = new (memory) slab_parent::page{{this}, parent.all_pages_, pages_, parent.key_, nullptr};
    parent.all_pages_ = fresh;
    pages_ = fresh;
    ++parent.pages_count_;
  }
  // Carve the new page into the free list; nobody else can see its blocks yet.
  char *first = reinterpret_cast<char *>(fresh) + parent.first_offset_;
  for (std::size_t offset = parent.slots_bytes_ - parent.object_size_; offset > 0;
       offset -= parent.object_size_) {
    auto *node = reinterpret_cast<free_node *>(first + offset);
    node->next = free_;
    free_ = node;
  }
  reinterpret_cast<free_node *>(first)->key = 0;
  return first;
}

bool slab_child::is_freed_keyed(const void *p) const noexcept {
  const auto *node = static_cast<const free_node *>(p);
  const slab_parent::page *pg = parent_->page_of(p);
  if (pg->owner.load(std::memory_order_relaxed) == this) return on_own_lists(node);
  std::lock_guard<std::mutex> lock(parent_->mutex_);
  return parent_->not_a_block(p) == nullptr &&
         parent_->freed_locked(pg, node) != slab_parent::freed::no;
}

void slab_child::deallocate_foreign(void *p) noexcept {
  std::lock_guard<std::mutex> lock(parent_->mutex_);
  parent_->free_checked(p, "in mesa::slab_child");
}

void slab_child::deallocate_keyed(free_node *node) noexcept {
  if (on_own_lists(node))
    return internal::report_freed_block("double free", node, parent_->object_size_,
                                        "in mesa::slab_child");
  internal::push_free(free_, node, key_);
}

bool slab_child::on_own_lists(const free_node *node) const noexcept {
  if (internal::on_free_list(free_, node)) return true;
  std::lock_guard<std::mutex> lock(parent_->mutex_);
  return internal::on_free_list(migrated_, node);
}

}  // namespace mesa
