// Internal: the scope a layer records for the scope a caller passed. Not part of the public API.
//
// What it is for: mesa_alloc_scope comes from C callers and Vulkan applications as a plain
// integer. A layer that indexes per-scope counters by it (tracking) or packs it into a byte
// (the debug header) takes an unknown value as MESA_ALLOC_SCOPE_OBJECT, the scope of everything
// that has none, rather than index out of bounds or look like header damage later.
//
// What it costs: a compare, folded away where the scope is a constant.
//
// Example:
//   scope = internal::known_scope(scope);
//   ++allocations[scope];
#ifndef MESA_ALLOC_INTERNAL_KNOWN_SCOPE_H_
#define MESA_ALLOC_INTERNAL_KNOWN_SCOPE_H_

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

inline mesa_alloc_scope known_scope(mesa_alloc_scope scope) noexcept {
  return static_cast<unsigned>(scope) < MESA_ALLOC_SCOPE_COUNT ? scope : MESA_ALLOC_SCOPE_OBJECT;
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_KNOWN_SCOPE_H_
