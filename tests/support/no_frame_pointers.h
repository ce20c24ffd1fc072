// no_frame_pointers — a call chain built the way most distributions build Mesa (-O2, without
// frame pointers), for tests of how allocation stacks are walked.
//
// outer_without_frame_pointers calls middle_without_frame_pointers, which calls
// leaf_without_frame_pointers, which allocates `bytes` from `resource`; none is inlined or a
// tail call, so each has its own frame, and none keeps a frame pointer.
//
// Example:
//   void *p = test::outer_without_frame_pointers(&debug, 24);  // a stack of three frames
#ifndef MESA_ALLOC_TESTS_SUPPORT_NO_FRAME_POINTERS_H_
#define MESA_ALLOC_TESTS_SUPPORT_NO_FRAME_POINTERS_H_

#include <cstddef>
#include <memory_resource>

#include "mesa_alloc/mesa_alloc.h"

namespace test {

void *outer_without_frame_pointers(std::pmr::memory_resource *resource, std::size_t bytes);
// The same chain, allocating from a C table.
void *outer_without_frame_pointers_c(const mesa_allocator *table, std::size_t bytes);

}  // namespace test

#endif  // MESA_ALLOC_TESTS_SUPPORT_NO_FRAME_POINTERS_H_
