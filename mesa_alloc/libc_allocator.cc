// The libc-backed table. This is the only file of the core library allowed to call libc's
// allocation functions (it is on the allow list of the link-level audit).
#define MESA_ALLOC_ALLOW_LIBC 1

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/libc_table.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/mesa_alloc.h"

namespace {

// glibc's malloc already returns blocks aligned for max_align_t. glibc's malloc(0) and
// posix_memalign(.., 0) return a unique block, which is the documented zero-size behaviour.
constexpr size_t kMallocAlignment = MESA_ALLOC_DEFAULT_ALIGNMENT;

// NULL with errno set, as malloc fails: posix_memalign returns its error instead of setting
// errno, and the size checks below fail before libc is asked.
void *fail_with(int error) {
  errno = error;
  return nullptr;
}

void *libc_aligned(size_t size, size_t alignment) {
  if (alignment > mesa::internal::kMaxRequestBytes) return fail_with(ENOMEM);  // no block has it
  void *p = nullptr;
  if (alignment < sizeof(void *)) alignment = sizeof(void *);
  if (const int error = posix_memalign(&p, alignment, size)) return fail_with(error);
  return p;
}

// A size over PTRDIFF_MAX fails here rather than in malloc: glibc fails it too, but
// AddressSanitizer's malloc aborts the process on it (allocation-size-too-big).
void *libc_alloc(void *, size_t size, size_t alignment, mesa_alloc_scope) {
  if (!mesa_alloc_alignment_valid(alignment)) {
    mesa::internal::report_invalid_alignment("mesa_libc_allocator alloc", alignment);
    return fail_with(EINVAL);
  }
  if (size > mesa::internal::kMaxRequestBytes) return fail_with(ENOMEM);
  if (alignment <= kMallocAlignment) return malloc(size);
  return libc_aligned(size, alignment);
}

void *libc_realloc(void *, void *ptr, size_t size, size_t alignment, mesa_alloc_scope scope) {
  if (!mesa_alloc_alignment_valid(alignment)) {
    mesa::internal::report_invalid_alignment("mesa_libc_allocator realloc", alignment);
    return fail_with(EINVAL);
  }
  if (ptr == nullptr) return libc_alloc(nullptr, size, alignment, scope);
  if (size == 0) {
    free(ptr);
    return nullptr;
  }
  if (size > mesa::internal::kMaxRequestBytes) return fail_with(ENOMEM);
  if (alignment <= kMallocAlignment) return realloc(ptr, size);
  // realloc() may move the block to a place with only malloc's alignment, and a second copy
  // after it could fail after the original is gone; so allocate aligned first, then copy.
  const size_t old_size = malloc_usable_size(ptr);
  const bool aligned = (reinterpret_cast<uintptr_t>(ptr) & (alignment - 1)) == 0;
  if (aligned && size <= old_size && old_size - size < 4096) return ptr;
  void *fresh = libc_aligned(size, alignment);
  if (fresh == nullptr) return nullptr;
  memcpy(fresh, ptr, old_size < size ? old_size : size);
  free(ptr);
  return fresh;
}

void libc_free(void *, void *ptr) { free(ptr); }

}  // namespace

namespace mesa::internal {
extern const mesa_allocator libc_table = {
    nullptr, libc_alloc, libc_realloc, libc_free, nullptr, nullptr,
};
}  // namespace mesa::internal

extern "C" const mesa_allocator *mesa_libc_allocator(void) { return &mesa::internal::libc_table; }
