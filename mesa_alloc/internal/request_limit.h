// Internal: the largest request (size or alignment) a mesa_alloc layer passes on to a std::pmr
// upstream it does not know. Not part of the public API.
//
// Why: glibc's malloc and every mesa resource refuse more than PTRDIFF_MAX bytes, but
// libstdc++ 12's std::pmr::new_delete_resource() goes through the aligned operator new, which
// rounds a size within `alignment` of SIZE_MAX up to 0 and returns a tiny block: a wrapped
// size (`a - b` with b > a) would "succeed" and the caller would write past it. The layers that
// forward a caller's size (tracking, debug, logging, fault, the C and Vulkan tables over a pmr
// resource) refuse anything larger instead, as an allocation failure. An alignment of 2^63 is
// refused the same way: glibc fails it, but ASan's allocator aborts on a failed CHECK.
//
// What it costs: one compare on paths that already make a virtual call.
#ifndef MESA_ALLOC_INTERNAL_REQUEST_LIMIT_H_
#define MESA_ALLOC_INTERNAL_REQUEST_LIMIT_H_

#include <cstddef>
#include <cstdint>

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

inline constexpr std::size_t kMaxRequestBytes = PTRDIFF_MAX;

// A size or an alignment above kMaxRequestBytes (no block can have either); one compare, as
// kMaxRequestBytes is all ones but the top bit.
inline bool request_too_large(std::size_t bytes, std::size_t alignment) noexcept {
  static_assert(kMaxRequestBytes == SIZE_MAX >> 1, "the top bit alone is over the limit");
  return (bytes | alignment) > kMaxRequestBytes;
}

// What a resource must refuse before passing a request on: too large, or an alignment that is
// not a power of two.
inline bool request_refused(std::size_t bytes, std::size_t alignment) noexcept {
  return !mesa_alloc_alignment_valid(alignment) || request_too_large(bytes, alignment);
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_REQUEST_LIMIT_H_
