// Internal: a block of a preferred size from an upstream resource, or a smaller one when the
// upstream refuses it. Not part of the public API.
//
// What it is for: the pools' chunks and the arena's blocks grow geometrically (to 1 MiB), so
// under a budget (tracking_resource::set_limit) the next step may not fit where a block that
// serves the request does. Asking for half as much, and so on down to the least that serves the
// request, finds such a block; the request is refused only when the least is refused too.
//
// What it costs: nothing more when upstream gives the preferred size (the grow paths are cold);
// on a refusal, at most log2(preferred / least) more upstream calls.
//
// Example:
//   std::size_t size = next_size_;
//   void *chunk = internal::allocate_or_smaller(upstream, &size, header + block, alignment);
//   if (size == next_size_) next_size_ *= 2;   // grow only after a full-size chunk
#ifndef MESA_ALLOC_INTERNAL_ALLOCATE_OR_SMALLER_H_
#define MESA_ALLOC_INTERNAL_ALLOCATE_OR_SMALLER_H_

#include <cstddef>
#include <memory_resource>

namespace mesa::internal {

// A block of `*size` bytes from `upstream`; if upstream throws std::bad_alloc, of half as many,
// and so on, the last attempt being `least` bytes (`least` <= `*size`). Sets `*size` to the size
// of the block returned. Throws upstream's std::bad_alloc when the `least` bytes are refused.
void *allocate_or_smaller(std::pmr::memory_resource *upstream, std::size_t *size, std::size_t least,
                          std::size_t alignment);

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_ALLOCATE_OR_SMALLER_H_
