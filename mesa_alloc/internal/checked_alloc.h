// Internal: a block from a table this library did not make (an application's, usually), refused
// unless it is aligned as asked. Not part of the public API.
//
// What it is for: the bridges check what the other side hands back (README, "A block misaligned
// by the other side"). Every place that takes a block from a parent table calls alloc_fn
// through checked_alloc: callback_resource, the layers that call its table directly
// (direct_upstream.h), the tracking C table, and the *_create functions that place their
// handle in the parent's memory. A table that ignores the alignment is then caught wherever
// it sits in a stack, with one line naming the layer, and the block goes back to the table.
//
// What it costs: an AND and a well-predicted branch per allocation; the refusal is out of line.
//
// Example (`alignment` must already be a power of two):
//   void *p = internal::checked_alloc(parent, size, 64, scope, "mesa_tracking alloc");
//   if (p == nullptr) return nullptr;  // the table failed, or misaligned (reported, given back)
#ifndef MESA_ALLOC_INTERNAL_CHECKED_ALLOC_H_
#define MESA_ALLOC_INTERNAL_CHECKED_ALLOC_H_

#include <cstddef>
#include <cstdint>

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

// Reports `p` as misaligned for `alignment`, naming `who` and what returned it (`source`: "the
// table", "the callbacks"), gives it back to `table`, and returns nullptr.
[[gnu::cold, gnu::noinline]] void *refuse_misaligned(const mesa_allocator *table, void *p,
                                                     std::size_t alignment, const char *who,
                                                     const char *source) noexcept;

inline void *checked_alloc(const mesa_allocator *table, std::size_t size, std::size_t alignment,
                           mesa_alloc_scope scope, const char *who) noexcept {
  void *p = table->alloc_fn(table->user_data, size, alignment, scope);
  if (__builtin_expect((reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) != 0, 0))
    return refuse_misaligned(table, p, alignment, who, "table");
  return p;
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_CHECKED_ALLOC_H_
