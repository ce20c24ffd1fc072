#include "containers/resource_allocated.h"

#include <cstdint>

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"

namespace mesa {
namespace {

// Stored in the 16 bytes just before the object.
struct header {
  std::pmr::memory_resource *resource;
  std::size_t bytes;
};
static_assert(sizeof(header) <= resource_allocated::header_bytes(1));

header *header_of(const void *p) {
  return const_cast<header *>(static_cast<const header *>(p)) - 1;
}

void *allocate(std::size_t size, std::size_t alignment, std::pmr::memory_resource *resource) {
  if (resource == nullptr)
    internal::report_null_resource("resource_allocated::operator new", "resource");
  const std::size_t offset = resource_allocated::header_bytes(alignment);
  // No request over PTRDIFF_MAX reaches the resource: libstdc++'s new_delete_resource would
  // round one within the alignment of SIZE_MAX up to a tiny block (internal/request_limit.h).
  if (size > internal::kMaxRequestBytes - offset) throw std::bad_array_new_length();
  const std::size_t bytes = offset + size;
  char *object = static_cast<char *>(resource->allocate(bytes, offset)) + offset;
  new (header_of(object)) header{resource, bytes};
  return object;
}

void deallocate(void *p, std::size_t alignment) noexcept {
  if (p == nullptr) return;
  const header h = *header_of(p);
  const std::size_t offset = resource_allocated::header_bytes(alignment);
  h.resource->deallocate(static_cast<char *>(p) - offset, h.bytes, offset);
}

constexpr std::size_t kDefault = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

void *resource_allocated::operator new(std::size_t size, std::pmr::memory_resource *resource) {
  return allocate(size, kDefault, resource);
}
void *resource_allocated::operator new(std::size_t size, std::align_val_t alignment,
                                       std::pmr::memory_resource *resource) {
  return allocate(size, static_cast<std::size_t>(alignment), resource);
}
void *resource_allocated::operator new[](std::size_t size, std::pmr::memory_resource *resource) {
  return allocate(size, kDefault, resource);
}
void *resource_allocated::operator new[](std::size_t size, std::align_val_t alignment,
                                         std::pmr::memory_resource *resource) {
  return allocate(size, static_cast<std::size_t>(alignment), resource);
}

void resource_allocated::operator delete(void *p) noexcept { deallocate(p, kDefault); }
void resource_allocated::operator delete(void *p, std::align_val_t alignment) noexcept {
  deallocate(p, static_cast<std::size_t>(alignment));
}
void resource_allocated::operator delete[](void *p) noexcept { deallocate(p, kDefault); }
void resource_allocated::operator delete[](void *p, std::align_val_t alignment) noexcept {
  deallocate(p, static_cast<std::size_t>(alignment));
}

void resource_allocated::operator delete(void *p, std::pmr::memory_resource *) noexcept {
  deallocate(p, kDefault);
}
void resource_allocated::operator delete(void *p, std::align_val_t alignment,
                                         std::pmr::memory_resource *) noexcept {
  deallocate(p, static_cast<std::size_t>(alignment));
}
void resource_allocated::operator delete[](void *p, std::pmr::memory_resource *) noexcept {
  deallocate(p, kDefault);
}
void resource_allocated::operator delete[](void *p, std::align_val_t alignment,
                                           std::pmr::memory_resource *) noexcept {
  deallocate(p, static_cast<std::size_t>(alignment));
}

std::pmr::memory_resource *resource_allocated::resource_of(const void *p) noexcept {
  return header_of(p)->resource;
}

}  // namespace mesa
