// Internal: one-line diagnostics for misuse of the C API that is not a crash (a bad alignment,
// an overflowing count × size). Not part of the public API.
#ifndef MESA_ALLOC_INTERNAL_DIAGNOSTICS_H_
#define MESA_ALLOC_INTERNAL_DIAGNOSTICS_H_

#include <cstddef>

namespace mesa::internal {

// Prints "mesa_alloc: invalid alignment <n> in <where> (must be a power of two)" on stderr in
// debug builds (NDEBUG not defined); silent in release builds. Never aborts: the caller
// returns NULL.
void report_invalid_alignment(const char *where, std::size_t alignment) noexcept;

// Same, for count * size overflowing size_t.
void report_size_overflow(const char *where, std::size_t count, std::size_t size) noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_DIAGNOSTICS_H_
