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

// True if `h`, the header before `ptr`, carries `tag` (a live block of the table); otherwise
// reports `what` and returns false.
bool live_block(const block_header &h, std::uint32_t tag, void *ptr, const char *what) {
  if (h.tag == tag) return true;
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
  const block_header old = *header_of(ptr);
  if (!live_block(old, static_cast<resource_callbacks *>(user_data)->tag_, ptr, "invalid realloc"))
    return nullptr;
  // Vulkan requires the original alignment on realloc; keep the larger one to stay safe.
  const std::size_t keep_alignment = old.alignment() > alignment ? old.alignment() : alignment;
  void *fresh = alloc(user_data, size, keep_alignment, scope);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, ptr, old.size < size ? old.size : size);
  const internal::caller_set_aside aside;
  free(user_data, ptr);
  return fresh;
}

void resource_callbacks::free(void *user_data, void *ptr) {
  if (ptr == nullptr) return;
  auto *self = static_cast<resource_callbacks *>(user_data);
  const block_header h = *header_of(ptr);
  if (!live_block(h, self->tag_, ptr, "invalid free")) return;
  header_of(ptr)->tag = 0;
  const std::size_t header = header_bytes(h.alignment());
  const std::size_t block_alignment =
      h.alignment() > kHeaderAlignment ? h.alignment() : kHeaderAlignment;
  self->resource_->deallocate(static_cast<unsigned char *>(ptr) - header, header + h.size,
                              block_alignment);
}

}  // namespace mesa
