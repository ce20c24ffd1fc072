// Internal: the largest request a mesa_alloc layer passes on to a std::pmr upstream it does not
// know. Not part of the public API.
//
// Why: glibc's malloc and every mesa resource refuse more than PTRDIFF_MAX bytes, but
// libstdc++ 12's std::pmr::new_delete_resource() goes through the aligned operator new, which
// rounds a size within `alignment` of SIZE_MAX up to 0 and returns a tiny block: a wrapped
// size (`a - b` with b > a) would "succeed" and the caller would write past it. The layers that
// forward a caller's size (tracking, debug, logging, fault, the C and Vulkan tables over a pmr
// resource) refuse anything larger instead, as an allocation failure.
//
// What it costs: one compare on paths that already make a virtual call.
#ifndef MESA_ALLOC_INTERNAL_REQUEST_LIMIT_H_
#define MESA_ALLOC_INTERNAL_REQUEST_LIMIT_H_

#include <cstddef>
#include <cstdint>

namespace mesa::internal {

inline constexpr std::size_t kMaxRequestBytes = PTRDIFF_MAX;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_REQUEST_LIMIT_H_
