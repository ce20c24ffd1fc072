// Internal: the parts pool_resource and synchronized_pool_resource share: the size-class table,
// the chunk carver that feeds the classes, and the list of large blocks. Not thread-safe; the
// synchronized pool guards each with its own mutex.
#ifndef MESA_ALLOC_INTERNAL_POOL_PARTS_H_
#define MESA_ALLOC_INTERNAL_POOL_PARTS_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "mesa_alloc/internal/align_up.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/per_copy.h"

namespace mesa::internal {

// Small requests: at most kPoolMaxSmall bytes and alignment a power of two up to kPoolAlignment
// (kPoolSmallAlignments, a bit per alignment). Anything else takes the large path, which
// refuses an alignment that is not a power of two.
inline constexpr std::size_t kPoolMaxSmall = 4096;
inline constexpr std::size_t kPoolAlignment = 16;
inline constexpr std::uint32_t kPoolSmallAlignments =
    1u << 1 | 1u << 2 | 1u << 4 | 1u << 8 | 1u << 16;
// 16..128 by 16 (at most 15 bytes of rounding waste: 47% of a 32-byte slot for a 17-byte request),
// then four classes per doubling up to 4096 (at most 25% of the request).
inline constexpr std::size_t kPoolClasses = 28;

struct size_class_table {
  std::uint16_t size[kPoolClasses];
  // Blocks a thread cache of the synchronized pool keeps per class: 32 KiB, 8 to 256 blocks.
  std::uint16_t cache_limit[kPoolClasses];
  std::uint8_t index[kPoolMaxSmall / 16 + 1];  // by (bytes + 15) / 16
};

constexpr size_class_table make_size_class_table() {
  size_class_table t{};
  std::size_t n = 0;
  for (std::size_t s = 16; s <= 128; s += 16) t.size[n++] = static_cast<std::uint16_t>(s);
  for (std::size_t base = 128; base < kPoolMaxSmall; base *= 2) {
    for (std::size_t q = 1; q <= 4; ++q) {
      t.size[n++] = static_cast<std::uint16_t>(base + q * base / 4);
    }
  }
  for (std::size_t k = 0; k < kPoolClasses; ++k) {
    const std::size_t limit = 32768 / t.size[k];
    t.cache_limit[k] = static_cast<std::uint16_t>(limit < 8 ? 8 : limit > 256 ? 256 : limit);
  }
  std::size_t c = 0;
  for (std::size_t i = 0; i <= kPoolMaxSmall / 16; ++i) {
    while (t.size[c] < i * 16) ++c;
    t.index[i] = static_cast<std::uint8_t>(c);
  }
  return t;
}

MESA_ALLOC_PER_COPY inline constexpr size_class_table kSizeClasses = make_size_class_table();

inline bool pool_is_small(std::size_t bytes, std::size_t alignment) noexcept {
  return bytes <= kPoolMaxSmall && alignment <= kPoolAlignment &&
         ((kPoolSmallAlignments >> alignment) & 1) != 0;
}
inline std::size_t pool_class_of(std::size_t bytes) noexcept {
  return kSizeClasses.index[(bytes + 15) >> 4];
}

// Bump allocation of class blocks out of chunks from upstream (growing geometrically, capped);
// chunks go back only on release().
class pool_chunks {
 public:
  // Carves up to `max_count` blocks of `size` bytes (at least one; more only from the current
  // chunk) and links all but the first onto `*free_list` (adding their number to `*linked` if
  // given); returns the first. Throws what upstream throws.
  void *carve(std::pmr::memory_resource *upstream, std::size_t size, std::size_t max_count,
              free_node **free_list, std::size_t *linked = nullptr);
  void release(std::pmr::memory_resource *upstream) noexcept;
  std::size_t bytes_reserved() const noexcept { return reserved_; }

 private:
  struct chunk {
    chunk *next;
    std::size_t size;
  };
  static constexpr std::size_t kFirstChunk = 16 * 1024;
  static constexpr std::size_t kMaxChunk = 1024 * 1024;

  char *cur_ = nullptr;
  char *end_ = nullptr;
  chunk *chunks_ = nullptr;
  std::size_t next_size_ = kFirstChunk;
  std::size_t reserved_ = 0;
};

// Blocks too large or too aligned for the classes: one upstream block each, with a header
// that links it into a list so release() can return it. The header carries this list's tag
// while the block is live: a block freed twice, or not one of this list's, is reported (naming
// `pool`) and left alone.
class pool_large_blocks {
 public:
  pool_large_blocks() noexcept : tag_(header_tag(this)) { head_.prev = head_.next = &head_; }
  pool_large_blocks(const pool_large_blocks &) = delete;
  pool_large_blocks &operator=(const pool_large_blocks &) = delete;

  // `where`: the pool's allocate, as a refused request's line names it.
  void *allocate(std::pmr::memory_resource *upstream, std::size_t bytes, std::size_t alignment,
                 const char *where);
  void deallocate(std::pmr::memory_resource *upstream, void *p, const char *pool) noexcept;
  // Returns every block upstream, whatever its header's tag says.
  void release(std::pmr::memory_resource *upstream) noexcept;
  std::size_t bytes_reserved() const noexcept { return reserved_; }

 private:
  struct header {
    header *prev;
    header *next;
    std::size_t total;             // bytes taken from upstream
    std::uint32_t alignment_log2;  // of the alignment asked of upstream
    std::uint32_t tag;             // tag_ while live, 0 once freed
    std::size_t alignment() const noexcept { return std::size_t{1} << alignment_log2; }
  };
  // The header rounded up to the alignment, so the block after it keeps the alignment (the
  // header is 32 bytes on 64-bit targets but 20 on 32-bit ones).
  static std::size_t offset_for(std::size_t alignment) noexcept {
    return align_up(sizeof(header), alignment);
  }
  void unlink_and_free(std::pmr::memory_resource *upstream, header *h) noexcept;

  header head_;
  std::size_t reserved_ = 0;
  std::uint32_t tag_;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_POOL_PARTS_H_
