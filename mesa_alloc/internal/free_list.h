// Internal: the intrusive free list of the pools and slabs, with double-free detection. Not part
// of the public API.
//
// A free block holds the link in its first word and its owner's free key in its second, so
// every block is at least two words. Allocation clears the key. A free of a block that already
// holds the key is looked for on the free lists it could be on (refuse_double_free); found, it
// is a double free, reported and left alone, where a bare push would make the list a cycle and
// hand the block out twice. Data that happens to equal the key costs that search, nothing more,
// where the freeing thread can search every list the block could be on; where one is another
// thread's (a slab child's own list, a synchronized pool's thread cache), the key alone refuses
// the free on 64-bit targets (kKeyAloneDecides).
// The compare is on the inline free path; the search goes out of line.
#ifndef MESA_ALLOC_INTERNAL_FREE_LIST_H_
#define MESA_ALLOC_INTERNAL_FREE_LIST_H_

#include <cstddef>
#include <cstdint>

namespace mesa::internal {

struct free_node {
  free_node *next;
  std::uintptr_t key;  // the owner's free key while the block is free
};

// An owner's address mixed (a 64-bit golden-ratio product, also on 32-bit targets): the keys
// and tags below are parts of it.
inline std::uint64_t mixed_address(const void *owner) noexcept {
  return std::uint64_t{reinterpret_cast<std::uintptr_t>(owner)} * 0x9e3779b97f4a7c15ull;
}

// An owner's free key: its address mixed so that no pointer or small number a program stores in
// a block is likely to equal it; odd, so never 0. On a 32-bit target the product's low half.
inline std::uintptr_t free_list_key(const void *owner) noexcept {
  return static_cast<std::uintptr_t>(mixed_address(owner)) | 1;
}

// Whether a block that holds the key, on no list the freeing thread can read, is taken as free
// (and its free refused). Only where the key is 64 bits: a 32-bit one is a number that live data
// (a hash, a float, a colour) holds once in 2^32 words, and a real free would then be refused
// and the block leaked. On 32-bit targets such a free goes on, and a double free there is not
// seen.
inline constexpr bool kKeyAloneDecides = sizeof(std::uintptr_t) >= 8;

// Pushes `node` onto `list`, marked free with its owner's `key`.
inline void push_free(free_node *&list, free_node *node, std::uintptr_t key) noexcept {
  node->next = list;
  node->key = key;
  list = node;
}

// Takes the first block off a non-empty `list`, its key cleared (a live block holds no key).
inline free_node *pop_free(free_node *&list) noexcept {
  free_node *node = list;
  list = node->next;
  node->key = 0;
  return node;
}

// The 32-bit tag an owner writes into the headers of its live blocks (the pools' large blocks,
// the C tables over a resource, the tracking table): the mixed address's high half; odd, so
// never 0 and never a tracking table's freed tag (even).
inline std::uint32_t header_tag(const void *owner) noexcept {
  return static_cast<std::uint32_t>(mixed_address(owner) >> 32) | 1u;
}

// True if `node` is on `list`.
[[gnu::cold, gnu::noinline]] bool on_free_list(const free_node *list,
                                               const free_node *node) noexcept;

// One line on stderr: "<what> at <node> <where>: the <size>-byte block is already free<how>;
// the block is left alone" (`what`: "double free", or "realloc of a freed block").
[[gnu::cold, gnu::noinline]] void report_freed_block(const char *what, const void *node,
                                                     std::size_t size, const char *where,
                                                     const char *how = "") noexcept;

// True, after report_freed_block's "double free" line, if `node` is on `list`.
[[gnu::cold, gnu::noinline]] bool refuse_double_free(const free_node *list, const free_node *node,
                                                     std::size_t size, const char *where) noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_FREE_LIST_H_
