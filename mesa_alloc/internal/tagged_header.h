// Internal: the header a C table over something that frees by size (a pmr resource, a tracked
// parent) puts before each block, and the claim of a block for a free or a realloc. Not part of
// the public API.
//
// What it is for: C frees are unsized, so the size and alignment live in a header of
// max(16, alignment) bytes right before the block, with the 32-bit tag of the table that made
// it (header_tag(), odd) while the block is live and that tag with its low bit cleared once it
// is freed. A free claims the block by turning the tag from live to freed in one
// compare-and-swap, so of two threads freeing one block exactly one gets it; a block freed
// already, made by another table, or an interior pointer is told apart and left alone instead of
// being handed on with a size read from wherever the pointer points. Used by the tracking table
// (c_tables.h) and resource_callbacks.
//
// What it costs: 16 bytes a block (the alignment, when larger); a load and a compare-and-swap
// per free or realloc.
//
// Example:
//   tagged_header h;
//   switch (claim_tagged(ptr, tag_, &h)) {
//     case tag_claim::claimed: release(ptr, h); break;                      // ours, now freed
//     case tag_claim::freed_already: report_double_free(ptr); break;
//     case tag_claim::not_this_tables: report_mismatch(ptr); break;
//   }
#ifndef MESA_ALLOC_INTERNAL_TAGGED_HEADER_H_
#define MESA_ALLOC_INTERNAL_TAGGED_HEADER_H_

#include <cstddef>
#include <cstdint>

namespace mesa::internal {

struct tagged_header {
  std::size_t size;             // the user size
  std::uint32_t tag;            // the owner's tag while live; freed_tag() of it once freed
  std::uint8_t alignment_log2;  // the block's alignment (the header's size depends on it)
  std::uint8_t scope;           // for a table that counts per scope
  std::uint16_t unused;
  std::size_t alignment() const noexcept { return std::size_t{1} << alignment_log2; }
};
constexpr std::size_t kMinTaggedHeaderBytes = 16;
static_assert(sizeof(tagged_header) <= kMinTaggedHeaderBytes, "the header must fit");

// The bytes before a block of `alignment`: the header, padded so the block keeps its alignment.
constexpr std::size_t tagged_header_bytes(std::size_t alignment) noexcept {
  return alignment > kMinTaggedHeaderBytes ? alignment : kMinTaggedHeaderBytes;
}

inline tagged_header *tagged_header_of(void *user) noexcept {
  return reinterpret_cast<tagged_header *>(static_cast<unsigned char *>(user) -
                                           sizeof(tagged_header));
}

// What a live block of `tag`'s owner carries once freed (even: never a live tag).
constexpr std::uint32_t freed_tag(std::uint32_t tag) noexcept { return tag & ~1u; }

enum class tag_claim {
  claimed,          // the owner's live block, now marked freed; `out` is its header
  freed_already,    // the owner's block, freed before (while the header is intact)
  not_this_tables,  // another table's block, or no block at all
};

// Claims the block before `ptr` for `tag`'s owner. Every block starts on a multiple of
// kMinTaggedHeaderBytes (its header is allocated at that alignment or more), so a pointer that
// does not is no block and its "header" is not read: a pointer into a block (p + 3) would make
// the tag's load misaligned. The tag is read before the swap is tried: a compare-and-swap needs
// the page writable even when it fails, and a pointer into read-only memory (a string literal
// freed by mistake) must be reported, not fault.
inline tag_claim claim_tagged(void *ptr, std::uint32_t tag, tagged_header *out) noexcept {
  if (reinterpret_cast<std::uintptr_t>(ptr) % kMinTaggedHeaderBytes != 0)
    return tag_claim::not_this_tables;
  tagged_header *h = tagged_header_of(ptr);
  std::uint32_t seen = __atomic_load_n(&h->tag, __ATOMIC_ACQUIRE);
  if (seen == tag && __atomic_compare_exchange_n(&h->tag, &seen, freed_tag(tag), false,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    *out = tagged_header{h->size, tag, h->alignment_log2, h->scope, 0};
    return tag_claim::claimed;
  }
  return seen == freed_tag(tag) ? tag_claim::freed_already : tag_claim::not_this_tables;
}

// Gives a claimed block back to its owner with `h` as its header (a realloc that keeps it, or
// could not move it); the tag last, so that a racing free sees the block claimed until then.
inline void unclaim_tagged(void *ptr, const tagged_header &h) noexcept {
  tagged_header *in_place = tagged_header_of(ptr);
  in_place->size = h.size;
  in_place->alignment_log2 = h.alignment_log2;
  in_place->scope = h.scope;
  __atomic_store_n(&in_place->tag, h.tag, __ATOMIC_RELEASE);
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_TAGGED_HEADER_H_
