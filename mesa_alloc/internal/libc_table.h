// Internal: the libc table as a link-time constant, so the C API can recognise it with one
// compare and call libc directly (the devirtualised fast path in mesa_alloc.cc).
#ifndef MESA_ALLOC_INTERNAL_LIBC_TABLE_H_
#define MESA_ALLOC_INTERNAL_LIBC_TABLE_H_

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

extern const mesa_allocator libc_table;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_LIBC_TABLE_H_
