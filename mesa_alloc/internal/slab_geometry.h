// Internal: object size, alignment and page layout shared by slab_resource and slab_parent.
#ifndef MESA_ALLOC_INTERNAL_SLAB_GEOMETRY_H_
#define MESA_ALLOC_INTERNAL_SLAB_GEOMETRY_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "mesa_alloc/internal/align_up.h"
#include "mesa_alloc/internal/free_list.h"

namespace mesa::internal {

struct slab_geometry {
  std::size_t object_size;  // slot size: a multiple of alignment, at least a free_node
  std::size_t alignment;
  std::size_t page_size;
  std::size_t first_offset;  // offset of the first slot in a page (after the page header)

  // The largest page: 1 TiB, or on 32-bit targets the largest power of two a size_t holds.
  static constexpr std::size_t kMaxPageSize = static_cast<std::size_t>(
      std::min<std::uint64_t>(std::uint64_t{1} << 40, (SIZE_MAX >> 1) + 1));
  // The largest object: 1 GiB.
  static constexpr std::size_t kMaxObjectSize = std::size_t{1} << 30;

  // Throws std::invalid_argument for an alignment that is not a power of two or is over 1 MiB,
  // an object over kMaxObjectSize or one that does not fit a page, or a page over kMaxPageSize.
  // power_of_two_pages: round the page size up to a power of two (pages aligned to their size).
  static slab_geometry make(std::size_t object_size, std::size_t alignment, std::size_t page_size,
                            std::size_t header_size, bool power_of_two_pages) {
    if (alignment == 0) {
      std::size_t rounded = (object_size + 7) & ~std::size_t{7};
      alignment = rounded & (~rounded + 1);  // lowest set bit
      if (alignment == 0 || alignment > 16) alignment = 16;
    }
    if ((alignment & (alignment - 1)) != 0) {
      throw std::invalid_argument("mesa_alloc: slab alignment must be a power of two");
    }
    if (object_size > kMaxObjectSize || alignment > (std::size_t{1} << 20)) {
      throw std::invalid_argument("mesa_alloc: slab object over 1 GiB or alignment over 1 MiB");
    }
    if (alignment < alignof(void *)) alignment = alignof(void *);
    slab_geometry g;
    g.alignment = alignment;
    // A free slot holds the link and the free key (free_list.h).
    g.object_size = object_size < sizeof(free_node) ? sizeof(free_node) : object_size;
    g.object_size = align_up(g.object_size, alignment);
    g.first_offset = align_up(header_size, alignment);
    if (page_size == 0) {
      // Room for 64 objects; on 32-bit targets that product can pass SIZE_MAX.
      if (g.object_size > (kMaxPageSize - g.first_offset) / 64) {
        throw std::invalid_argument("mesa_alloc: slab page size too large");
      }
      const std::size_t min_page = g.first_offset + 64 * g.object_size;
      page_size = min_page < 4096 ? 4096 : min_page;
    }
    if (page_size < g.first_offset + g.object_size) {
      throw std::invalid_argument("mesa_alloc: slab page too small for one object");
    }
    if (page_size > kMaxPageSize) {  // also keeps the rounding below from overflowing
      throw std::invalid_argument("mesa_alloc: slab page size too large");
    }
    if (power_of_two_pages) {
      std::size_t p = 1;
      while (p < page_size) p *= 2;
      page_size = p;
    }
    g.page_size = page_size;
    return g;
  }
};

// Whether a number is a multiple of a fixed divisor, with a multiply in place of a division
// (for a slot check on a free path): the divisor's odd part has an inverse modulo 2^N, and x is a
// multiple of the odd part exactly when x * inverse <= max / odd part (Hacker's Delight, 10-17).
class multiple_test {
 public:
  explicit multiple_test(std::size_t divisor) noexcept
      : shift_(static_cast<unsigned>(__builtin_ctzll(divisor))),
        low_mask_((std::uintptr_t{1} << shift_) - 1),
        limit_(UINTPTR_MAX / (divisor >> shift_)) {
    const std::uintptr_t odd = divisor >> shift_;
    inverse_ = odd;  // right in the low 3 bits; each step doubles the right bits
    for (int step = 0; step < 5; ++step) inverse_ *= 2 - odd * inverse_;
  }
  bool operator()(std::uintptr_t x) const noexcept {
    return (x & low_mask_) == 0 && (x >> shift_) * inverse_ <= limit_;
  }

 private:
  unsigned shift_;
  std::uintptr_t low_mask_;
  std::uintptr_t limit_;
  std::uintptr_t inverse_;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_SLAB_GEOMETRY_H_
