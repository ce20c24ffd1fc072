// The C API: the process-wide default table and the functions that allocate through it.
//
// Devirtualised fast path: when the table in use is the libc table, mesa_malloc/mesa_free/
// mesa_realloc/mesa_alloc2/mesa_free2 call malloc/free/realloc directly instead of through the
// table — exactly what the table would do, minus an indirect call, so the dispatch costs one load
// and one compare
// (//benchmarks:dispatch_benchmark). Any other default (MESA_ALLOC_DEBUG layers, a tracking
// stack, the application's callbacks) takes the table path. That is why this file, with
// libc_allocator.cc, is on the link-level audit's allow list.
#define MESA_ALLOC_ALLOW_LIBC 1

#include "mesa_alloc/mesa_alloc.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "mesa_alloc/internal/default_from_environment.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/libc_table.h"

namespace {

std::atomic<const mesa_allocator *> g_default{nullptr};

[[gnu::noinline]] const mesa_allocator *initialize_default() noexcept {
  // A function-local static runs default_from_environment() exactly once, even when several
  // threads make their first allocation at the same time.
  static const mesa_allocator *const from_environment = mesa::internal::default_from_environment();
  const mesa_allocator *expected = nullptr;
  if (g_default.compare_exchange_strong(expected, from_environment, std::memory_order_acq_rel))
    return from_environment;
  return expected;
}

inline const mesa_allocator *current() noexcept {
  const mesa_allocator *a = g_default.load(std::memory_order_acquire);
  if (__builtin_expect(a != nullptr, 1)) return a;
  return initialize_default();
}

// The fast path's test: nothing but a load and a compare, so mesa_malloc/mesa_free need no
// stack frame and tail-call libc.
inline bool is_libc_default() noexcept {
  return g_default.load(std::memory_order_acquire) == &mesa::internal::libc_table;
}

[[gnu::noinline]] void *malloc_through_table(size_t size) noexcept {
  const mesa_allocator *a = current();
  return a->alloc_fn(a->user_data, size, MESA_ALLOC_DEFAULT_ALIGNMENT, MESA_ALLOC_SCOPE_OBJECT);
}

[[gnu::noinline]] void free_through_table(void *ptr) noexcept {
  const mesa_allocator *a = current();
  a->free_fn(a->user_data, ptr);
}

inline const mesa_allocator *choose(const mesa_allocator *parent,
                                    const mesa_allocator *alloc) noexcept {
  if (alloc != nullptr) return alloc;
  if (parent != nullptr) return parent;
  return current();
}

inline bool check_alignment(const char *where, size_t alignment) noexcept {
  if (mesa_alloc_alignment_valid(alignment)) return true;
  mesa::internal::report_invalid_alignment(where, alignment);
  return false;
}

}  // namespace

extern "C" {

const mesa_allocator *mesa_default_allocator(void) { return current(); }

const mesa_allocator *mesa_set_default_allocator(const mesa_allocator *allocator) {
  const mesa_allocator *previous = current();
  g_default.store(allocator != nullptr ? allocator : mesa_libc_allocator(),
                  std::memory_order_release);
  return previous;
}

void *mesa_malloc(size_t size) {
  if (is_libc_default()) return std::malloc(size);
  return malloc_through_table(size);
}

void *mesa_calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    mesa::internal::report_size_overflow("mesa_calloc", count, size);
    return nullptr;
  }
  void *p = mesa_malloc(bytes);
  if (p != nullptr) std::memset(p, 0, bytes);
  return p;
}

void *mesa_realloc(void *ptr, size_t size) {
  const mesa_allocator *a = current();
  if (a == &mesa::internal::libc_table && size != 0) return std::realloc(ptr, size);
  return a->realloc_fn(a->user_data, ptr, size, MESA_ALLOC_DEFAULT_ALIGNMENT,
                       MESA_ALLOC_SCOPE_OBJECT);
}

void mesa_free(void *ptr) {
  if (is_libc_default()) return std::free(ptr);
  free_through_table(ptr);
}

void *mesa_aligned_alloc(size_t alignment, size_t size) {
  if (!check_alignment("mesa_aligned_alloc", alignment)) return nullptr;
  const mesa_allocator *a = current();
  return a->alloc_fn(a->user_data, size, alignment, MESA_ALLOC_SCOPE_OBJECT);
}

void *mesa_aligned_realloc(void *ptr, size_t size, size_t alignment) {
  if (!check_alignment("mesa_aligned_realloc", alignment)) return nullptr;
  const mesa_allocator *a = current();
  return a->realloc_fn(a->user_data, ptr, size, alignment, MESA_ALLOC_SCOPE_OBJECT);
}

char *mesa_strdup(const char *str) {
  if (str == nullptr) return nullptr;
  return mesa_strndup(str, std::strlen(str));
}

char *mesa_strndup(const char *str, size_t max_length) {
  if (str == nullptr) return nullptr;
  const size_t length = strnlen(str, max_length);
  char *copy = static_cast<char *>(mesa_malloc(length + 1));
  if (copy == nullptr) return nullptr;
  std::memcpy(copy, str, length);
  copy[length] = '\0';
  return copy;
}

void *mesa_alloc2(const mesa_allocator *parent, const mesa_allocator *alloc, size_t size,
                  size_t alignment, mesa_alloc_scope scope) {
  if (!check_alignment("mesa_alloc2", alignment)) return nullptr;
  const mesa_allocator *a = choose(parent, alloc);
  if (a == &mesa::internal::libc_table && alignment <= MESA_ALLOC_DEFAULT_ALIGNMENT)
    return std::malloc(size);
  return a->alloc_fn(a->user_data, size, alignment, scope);
}

void *mesa_zalloc2(const mesa_allocator *parent, const mesa_allocator *alloc, size_t size,
                   size_t alignment, mesa_alloc_scope scope) {
  void *p = mesa_alloc2(parent, alloc, size, alignment, scope);
  if (p != nullptr) std::memset(p, 0, size);
  return p;
}

void *mesa_realloc2(const mesa_allocator *parent, const mesa_allocator *alloc, void *ptr,
                    size_t size, size_t alignment, mesa_alloc_scope scope) {
  if (!check_alignment("mesa_realloc2", alignment)) return nullptr;
  const mesa_allocator *a = choose(parent, alloc);
  return a->realloc_fn(a->user_data, ptr, size, alignment, scope);
}

void mesa_free2(const mesa_allocator *parent, const mesa_allocator *alloc, void *ptr) {
  const mesa_allocator *a = choose(parent, alloc);
  if (a == &mesa::internal::libc_table) return std::free(ptr);
  a->free_fn(a->user_data, ptr);
}

}  // extern "C"
