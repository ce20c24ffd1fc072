#include "mesa_alloc/resource_callbacks.h"

#include <cstdint>
#include <cstring>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/request_limit.h"

namespace mesa {
namespace {

// Stored in the last 16 bytes before the user pointer. `tag` is the table's while the block
// is live and 0 once freed: a block freed twice, freed through another table, or never
// allocated through one is reported and left alone instead of being handed to the resource
// with a made-up size.
struct block_header {
  std::size_t size;
  std::uint32_t tag;
  std::uint32_t alignment_log2;
  std::size_t alignment() const noexcept { return std::size_t{1} << alignment_log2; }
};
static_assert(sizeof(block_header) <= 16, "header must fit the minimum header space");

block_header *header_of(void *user) {
  return reinterpret_cast<block_header *>(static_cast<unsigned char *>(user) -
                                          sizeof(block_header));
}

// Gives a claimed block back to the resource. (Its header and the block's alignment are the same
// number: the alignment asked for, at least kHeaderAlignment.)
void release_block(std::pmr::memory_resource *resource, void *ptr, const block_header &h) {
  const std::size_t header = resource_callbacks::header_bytes(h.alignment());
  resource->deallocate(static_cast<unsigned char *>(ptr) - header, header + h.size, header);
}

// Claims the block before `ptr` for a free or a realloc if it carries `tag` (a live block of
// the table): the tag turns to 0 in one compare-and-swap, so of two threads freeing it at once
// exactly one gets it; `out` is then its header. Otherwise reports `what` and returns false.
// The tag is read first: a failed compare-and-swap still needs the page writable, and a pointer
// into read-only memory must be reported, not fault.
bool claim_block(void *ptr, std::uint32_t tag, const char *what, block_header *out) {
  std::uint32_t seen = __atomic_load_n(&header_of(ptr)->tag, __ATOMIC_ACQUIRE);
  if (seen == tag && __atomic_compare_exchange_n(&header_of(ptr)->tag, &seen, 0u, false,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    *out = block_header{header_of(ptr)->size, tag, header_of(ptr)->alignment_log2};
    return true;
  }
  internal::report_refused_free(what, ptr, "through a resource_callbacks table",
                                "not a live block of this table (freed already, or allocated "
                                "through another table)");
  return false;
}

}  // namespace

resource_callbacks::resource_callbacks(std::pmr::memory_resource *resource) noexcept
    : resource_callbacks(resource, nullptr) {}

resource_callbacks::resource_callbacks(std::pmr::memory_resource *resource,
                                       const void *kind) noexcept
    : resource_(resource != nullptr ? resource : std::pmr::get_default_resource()),
      kind_(kind),
      tag_(internal::header_tag(this)),
      table_{this,
             &resource_callbacks::alloc,
             &resource_callbacks::realloc,
             &resource_callbacks::free,
             nullptr,
             nullptr} {}

const resource_callbacks *resource_callbacks::from_table(const mesa_allocator *table) noexcept {
  if (table == nullptr || table->alloc_fn != &resource_callbacks::alloc) return nullptr;
  return static_cast<const resource_callbacks *>(table->user_data);
}

void *resource_callbacks::alloc(void *user_data, std::size_t size, std::size_t alignment,
                                mesa_alloc_scope) {
  if (!mesa_alloc_alignment_valid(alignment)) {
    internal::report_invalid_alignment("resource_callbacks alloc", alignment);
    return nullptr;
  }
  auto *self = static_cast<resource_callbacks *>(user_data);
  const std::size_t header = header_bytes(alignment);
  if (header > internal::kMaxRequestBytes || size > internal::kMaxRequestBytes - header)
    return nullptr;
  const std::size_t block_alignment = alignment > kHeaderAlignment ? alignment : kHeaderAlignment;
  void *base;
  try {
    base = self->resource_->allocate(header + size, block_alignment);
  } catch (...) {
    return nullptr;
  }
  if ((reinterpret_cast<std::uintptr_t>(base) & (block_alignment - 1)) != 0) {
    internal::report_misaligned_result("resource_callbacks", "resource", base, block_alignment);
    self->resource_->deallocate(base, header + size, block_alignment);
    return nullptr;
  }
  void *user = static_cast<unsigned char *>(base) + header;
  *header_of(user) =
      block_header{size, self->tag_, static_cast<std::uint32_t>(__builtin_ctzll(alignment))};
  return user;
}

void *resource_callbacks::realloc(void *user_data, void *ptr, std::size_t size,
                                  std::size_t alignment, mesa_alloc_scope scope) {
  if (!mesa_alloc_alignment_valid(alignment)) {
    internal::report_invalid_alignment("resource_callbacks realloc", alignment);
    return nullptr;
  }
  if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
  if (size == 0) {
    const internal::caller_set_aside aside;
    free(user_data, ptr);
    return nullptr;
  }
  auto *self = static_cast<resource_callbacks *>(user_data);
  block_header old;
  if (!claim_block(ptr, self->tag_, "invalid realloc", &old)) return nullptr;
  // Vulkan requires the original alignment on realloc; keep the larger one to stay safe.
  const std::size_t keep_alignment = old.alignment() > alignment ? old.alignment() : alignment;
  void *fresh = alloc(user_data, size, keep_alignment, scope);
  if (fresh == nullptr) {
    __atomic_store_n(&header_of(ptr)->tag, old.tag, __ATOMIC_RELEASE);  // left as it was
    return nullptr;
  }
  std::memcpy(fresh, ptr, old.size < size ? old.size : size);
  const internal::caller_set_aside aside;
  release_block(self->resource_, ptr, old);
  return fresh;
}

void resource_callbacks::free(void *user_data, void *ptr) {
  if (ptr == nullptr) return;
  auto *self = static_cast<resource_callbacks *>(user_data);
  block_header h;
  if (claim_block(ptr, self->tag_, "invalid free", &h)) release_block(self->resource_, ptr, h);
}

}  // namespace mesa
