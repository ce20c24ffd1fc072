// Internal: a size rounded up to a power-of-two alignment. Not part of the public API.
//
// What it is for: the offsets and sizes of the resources' block headers, slots and pages (a
// header padded so that the block after it keeps its alignment, a slot size a multiple of the
// alignment). One add and one mask; `alignment` must be a power of two (unchecked).
//
// Example:
//   const std::size_t offset = internal::align_up(sizeof(header), alignment);
#ifndef MESA_ALLOC_INTERNAL_ALIGN_UP_H_
#define MESA_ALLOC_INTERNAL_ALIGN_UP_H_

#include <cstddef>

namespace mesa::internal {

constexpr std::size_t align_up(std::size_t n, std::size_t alignment) noexcept {
  return (n + alignment - 1) & ~(alignment - 1);
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_ALIGN_UP_H_
