#include "mesa_alloc/resource_callbacks.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/tagged_header.h"

namespace mesa {
namespace {

using internal::tagged_header;

// Gives a claimed block back to the resource. (Its header and the block's alignment are the same
// number: the alignment asked for, at least kHeaderAlignment.)
void release_block(std::pmr::memory_resource *resource, void *ptr, const tagged_header &h) {
  const std::size_t header = resource_callbacks::header_bytes(h.alignment());
  resource->deallocate(static_cast<unsigned char *>(ptr) - header, header + h.size, header);
}

// Claims the block before `ptr` for a free or a realloc (`in_realloc`) if it is a live block
// of the table whose tag is `tag` (internal/tagged_header.h: of two threads freeing it at once
// exactly one gets it); `out` is then its header. Otherwise reports it, naming the table
// (`name`), and returns false: a block freed twice, freed through another table, or never
// allocated through one is left alone instead of being handed to the resource with a made-up
// size.
bool claim_block(void *ptr, std::uint32_t tag, const char *name, bool in_realloc,
                 tagged_header *out) {
  const internal::tag_claim claim = internal::claim_tagged(ptr, tag, out);
  if (claim == internal::tag_claim::claimed) return true;
  char where[96];
  std::snprintf(where, sizeof where, "through a %s table", name);
  if (claim == internal::tag_claim::freed_already) {
    internal::report_refused_free(in_realloc ? "realloc of a freed block" : "double free", ptr,
                                  where, "this table freed it already");
  } else {
    internal::report_refused_free(in_realloc ? "invalid realloc" : "invalid free", ptr, where,
                                  "not a live block of this table (allocated through another "
                                  "table, freed and its memory reused, freed by a release of the "
                                  "whole table, or not a block's start)");
  }
  return false;
}

static_assert(resource_callbacks::header_bytes(1) == internal::tagged_header_bytes(1) &&
                  resource_callbacks::header_bytes(256) == internal::tagged_header_bytes(256),
              "the documented header is the tagged header");

}  // namespace

resource_callbacks::resource_callbacks(std::pmr::memory_resource *resource) noexcept
    : resource_callbacks(resource, nullptr, "resource_callbacks") {}

resource_callbacks::resource_callbacks(std::pmr::memory_resource *resource, const void *kind,
                                       const char *name) noexcept
    : resource_(resource != nullptr ? resource : std::pmr::get_default_resource()),
      kind_(kind),
      name_(name),
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
  auto *self = static_cast<resource_callbacks *>(user_data);
  if (!mesa_alloc_alignment_valid(alignment)) {
    self->report_invalid_alignment("alloc", alignment);
    return nullptr;
  }
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
    internal::report_misaligned_result(self->name_, "resource", base, block_alignment);
    self->resource_->deallocate(base, header + size, block_alignment);
    return nullptr;
  }
  void *user = static_cast<unsigned char *>(base) + header;
  *internal::tagged_header_of(user) =
      tagged_header{size, self->tag_, static_cast<std::uint8_t>(__builtin_ctzll(alignment)), 0, 0};
  return user;
}

void *resource_callbacks::realloc(void *user_data, void *ptr, std::size_t size,
                                  std::size_t alignment, mesa_alloc_scope scope) {
  auto *self = static_cast<resource_callbacks *>(user_data);
  if (!mesa_alloc_alignment_valid(alignment)) {
    self->report_invalid_alignment("realloc", alignment);
    return nullptr;
  }
  if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
  if (size == 0) {
    const internal::caller_set_aside aside;
    free(user_data, ptr);
    return nullptr;
  }
  tagged_header old;
  if (!claim_block(ptr, self->tag_, self->name_, true, &old)) return nullptr;
  // Vulkan requires the original alignment on realloc; keep the larger one to stay safe.
  const std::size_t keep_alignment = old.alignment() > alignment ? old.alignment() : alignment;
  void *fresh = alloc(user_data, size, keep_alignment, scope);
  if (fresh == nullptr) {
    internal::unclaim_tagged(ptr, old);  // left as it was
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
  tagged_header h;
  if (claim_block(ptr, self->tag_, self->name_, false, &h)) release_block(self->resource_, ptr, h);
}

void resource_callbacks::report_invalid_alignment(const char *call, std::size_t alignment) const {
  char where[96];
  std::snprintf(where, sizeof where, "%s %s", name_, call);
  internal::report_invalid_alignment(where, alignment);
}

}  // namespace mesa
