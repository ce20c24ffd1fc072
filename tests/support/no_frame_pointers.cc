// Compiled with -O2 -fomit-frame-pointer (tests/support/BUILD, tests/meson.build).
#include "tests/support/no_frame_pointers.h"

namespace test {
namespace {

// The empty asm after each call keeps it from being a tail call (the caller's frame would go).
[[gnu::noinline]] void *leaf_without_frame_pointers(std::pmr::memory_resource *resource,
                                                    const mesa_allocator *table,
                                                    std::size_t bytes) {
  void *p = resource != nullptr
                ? resource->allocate(bytes)
                : table->alloc_fn(table->user_data, bytes, 16, MESA_ALLOC_SCOPE_OBJECT);
  __asm__ volatile("" ::: "memory");
  return p;
}

[[gnu::noinline]] void *middle_without_frame_pointers(std::pmr::memory_resource *resource,
                                                      const mesa_allocator *table,
                                                      std::size_t bytes) {
  void *p = leaf_without_frame_pointers(resource, table, bytes);
  __asm__ volatile("" ::: "memory");
  return p;
}

}  // namespace

void *outer_without_frame_pointers(std::pmr::memory_resource *resource, std::size_t bytes) {
  void *p = middle_without_frame_pointers(resource, nullptr, bytes);
  __asm__ volatile("" ::: "memory");
  return p;
}

void *outer_without_frame_pointers_c(const mesa_allocator *table, std::size_t bytes) {
  void *p = middle_without_frame_pointers(nullptr, table, bytes);
  __asm__ volatile("" ::: "memory");
  return p;
}

}  // namespace test
