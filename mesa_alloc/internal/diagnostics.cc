#include "mesa_alloc/internal/diagnostics.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace mesa::internal {

void report_invalid_alignment(const char *where, std::size_t alignment) noexcept {
#ifndef NDEBUG
  std::fprintf(stderr, "mesa_alloc: invalid alignment %zu in %s (must be a power of two)\n",
               alignment, where);
#else
  (void)where;
  (void)alignment;
#endif
}

void report_invalid_scope(const char *where, int scope) noexcept {
#ifndef NDEBUG
  std::fprintf(stderr, "mesa_alloc: invalid scope %d in %s (must be 0 to %d)\n", scope, where,
               MESA_ALLOC_SCOPE_COUNT - 1);
#else
  (void)where;
  (void)scope;
#endif
}

void report_refused_request(const char *where, std::size_t alignment) noexcept {
  if (!mesa_alloc_alignment_valid(alignment)) report_invalid_alignment(where, alignment);
}

void refuse_request(const char *where, std::size_t alignment) {
  report_refused_request(where, alignment);
  throw std::bad_alloc();
}

void report_size_overflow(const char *where, std::size_t count, std::size_t size) noexcept {
#ifndef NDEBUG
  std::fprintf(stderr, "mesa_alloc: size overflow in %s (%zu x %zu does not fit in size_t)\n",
               where, count, size);
#else
  (void)where;
  (void)count;
  (void)size;
#endif
}

const char *missing_table_function(const mesa_allocator *table) noexcept {
  if (table->alloc_fn == nullptr) return "alloc_fn";
  if (table->realloc_fn == nullptr) return "realloc_fn";
  if (table->free_fn == nullptr) return "free_fn";
  return nullptr;
}

void report_incomplete_table(const char *where, const char *missing) noexcept {
  std::fprintf(stderr,
               "mesa_alloc: %s: the table has no %s (alloc_fn, realloc_fn and free_fn are "
               "required)\n",
               where, missing);
}

namespace {
std::atomic<void (*)(bool)> g_before_debug_report{nullptr};
}  // namespace

void set_before_debug_report(void (*hook)(bool ending)) noexcept {
  g_before_debug_report.store(hook, std::memory_order_release);
}

void before_debug_report(bool ending) noexcept {
  if (void (*hook)(bool) = g_before_debug_report.load(std::memory_order_acquire)) hook(ending);
}

void write_to_stderr(const char *text, std::size_t length) noexcept {
  while (length > 0) {
    const ssize_t n = write(STDERR_FILENO, text, length);
    if (n < 0 && errno == EINTR) continue;  // a signal came first: the line is still to write
    if (n <= 0) return;
    text += n;
    length -= static_cast<std::size_t>(n);
  }
}

void write_line(const char *line, int n, std::size_t capacity) noexcept {
  if (n > 0) write_to_stderr(line, std::min(static_cast<std::size_t>(n), capacity - 1));
}

void report_null_argument(const char *where, const char *what) noexcept {
  std::fprintf(stderr, "mesa_alloc: %s: %s is NULL\n", where, what);
}

void report_misaligned_result(const char *who, const char *source, const void *p,
                              std::size_t alignment) noexcept {
  std::fprintf(stderr,
               "mesa_alloc: %s: the %s returned %p for alignment %zu (misaligned); refused\n", who,
               source, p, alignment);
}

void report_bad_scope(const char *who, int scope) noexcept {
  std::fprintf(stderr, "mesa_alloc: %s: scope %d is not an allocation scope (0 to %d)\n", who,
               scope, MESA_ALLOC_SCOPE_COUNT - 1);
  std::abort();
}

void report_null_resource(const char *who, const char *what) noexcept {
  std::fprintf(stderr, "mesa_alloc: %s: no %s (null)\n", who, what);
  std::abort();
}

void report_refused_free(const char *what, const void *p, const char *where,
                         const char *why) noexcept {
  std::fprintf(stderr, "mesa_alloc: %s at %p %s: %s; the block is left alone\n", what, p, where,
               why);
}

const mesa_allocator *parent_or_default(const mesa_allocator *parent, const char *where) noexcept {
  if (parent == nullptr) return mesa_default_allocator();
  if (const char *missing = missing_table_function(parent)) {
    report_incomplete_table(where, missing);
    return nullptr;
  }
  return parent;
}

}  // namespace mesa::internal
