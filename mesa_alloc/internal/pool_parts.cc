#include "mesa_alloc/internal/pool_parts.h"

#include <new>

#include "mesa_alloc/internal/allocate_or_smaller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"

namespace mesa::internal {

static_assert(kSizeClasses.size[kPoolClasses - 1] == kPoolMaxSmall, "classes must reach max");
static_assert(kSizeClasses.index[kPoolMaxSmall / 16] == kPoolClasses - 1, "index table");

static_assert(sizeof(pool_chunks) > 0 && 2 * sizeof(void *) <= kPoolAlignment,
              "a chunk header fits in kPoolAlignment bytes");

void *pool_chunks::carve(std::pmr::memory_resource *upstream, std::size_t size,
                         std::size_t max_count, free_node **free_list, std::size_t *linked) {
  if (static_cast<std::size_t>(end_ - cur_) < size) {
    // Under a budget the next chunk may not fit where one holding this block does: a smaller
    // chunk then, and the next one does not grow.
    std::size_t chunk_size = next_size_;
    auto *fresh = static_cast<chunk *>(
        allocate_or_smaller(upstream, &chunk_size, kPoolAlignment + size, kPoolAlignment));
    fresh->next = chunks_;
    fresh->size = chunk_size;
    chunks_ = fresh;
    reserved_ += chunk_size;
    if (chunk_size == next_size_ && next_size_ < kMaxChunk) next_size_ *= 2;
    cur_ = reinterpret_cast<char *>(fresh) + kPoolAlignment;
    end_ = reinterpret_cast<char *>(fresh) + chunk_size;
  }
  std::size_t count = static_cast<std::size_t>(end_ - cur_) / size;
  if (count > max_count) count = max_count;
  auto *first = reinterpret_cast<free_node *>(cur_);
  first->key = 0;  // the chunk may be memory this pool freed before, keys and all
  for (std::size_t k = 1; k < count; ++k) {
    auto *node = reinterpret_cast<free_node *>(cur_ + k * size);
    node->next = *free_list;
    *free_list = node;
  }
  cur_ += count * size;
  if (linked != nullptr) *linked += count - 1;
  return first;
}

void pool_chunks::release(std::pmr::memory_resource *upstream) noexcept {
  while (chunks_ != nullptr) {
    chunk *next = chunks_->next;
    upstream->deallocate(chunks_, chunks_->size, kPoolAlignment);
    chunks_ = next;
  }
  cur_ = end_ = nullptr;
  next_size_ = kFirstChunk;
  reserved_ = 0;
}

void *pool_large_blocks::allocate(std::pmr::memory_resource *upstream, std::size_t bytes,
                                  std::size_t alignment, const char *where) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) refuse_request(where, alignment);
  const std::size_t block_alignment = alignment > alignof(header) ? alignment : alignof(header);
  const std::size_t offset = offset_for(block_alignment);
  if (offset > kMaxRequestBytes || bytes > kMaxRequestBytes - offset) throw std::bad_alloc();
  const std::size_t total = offset + bytes;
  void *base = upstream->allocate(total, block_alignment);
  void *user = static_cast<char *>(base) + offset;
  header *h = static_cast<header *>(user) - 1;
  h->total = total;
  h->alignment_log2 = static_cast<std::uint32_t>(__builtin_ctzll(block_alignment));
  h->tag = tag_;
  h->prev = &head_;
  h->next = head_.next;
  head_.next->prev = h;
  head_.next = h;
  reserved_ += total;
  return user;
}

void pool_large_blocks::deallocate(std::pmr::memory_resource *upstream, void *p,
                                   const char *pool) noexcept {
  header *h = static_cast<header *>(p) - 1;
  if (h->tag != tag_) {
    report_refused_free("invalid free", p, pool,
                        "not a live large block of this pool (freed already, or not allocated "
                        "by it, or freed with a size or alignment it was not allocated with)");
    return;
  }
  unlink_and_free(upstream, h);
}

void pool_large_blocks::unlink_and_free(std::pmr::memory_resource *upstream, header *h) noexcept {
  h->tag = 0;
  h->prev->next = h->next;
  h->next->prev = h->prev;
  reserved_ -= h->total;
  const std::size_t alignment = h->alignment();
  upstream->deallocate(reinterpret_cast<char *>(h + 1) - offset_for(alignment), h->total,
                       alignment);
}

// The list itself says which blocks are live: a tag damaged by an underrun does not keep one.
void pool_large_blocks::release(std::pmr::memory_resource *upstream) noexcept {
  while (head_.next != &head_) unlink_and_free(upstream, head_.next);
}

}  // namespace mesa::internal
