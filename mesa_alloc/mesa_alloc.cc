// The C API: the process-wide default table and the functions that allocate through it.
//
// Devirtualised fast path: mesa_malloc and mesa_free jump through one function pointer each,
// which is libc's malloc/free itself while the default table is the libc table, and a function
// that goes through the table otherwise. The dispatch is then one direct call plus one
// predicted indirect jump: no compare, no branch (//benchmarks:dispatch_benchmark).
// mesa_realloc/mesa_alloc2/mesa_free2 compare against the libc table and call libc directly.
// Any other default (MESA_ALLOC_DEBUG layers, a tracking stack, the application's callbacks)
// takes the table path. That is why this file, with libc_allocator.cc, is on the link-level
// audit's allow list.
//
// Every allocating or freeing function that goes through a table makes an api_call there
// (alloc_through, realloc_through, free_through), so that the debug and logging layers' stacks
// (an allocation's, a bad free's) start in its caller's code (internal/api_caller.h).
#define MESA_ALLOC_ALLOW_LIBC 1

#include "mesa_alloc/mesa_alloc.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/default_from_environment.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/libc_table.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/spin_lock.h"

namespace {

using mesa::internal::api_call;
using malloc_entry = void *(*)(size_t);
using free_entry = void (*)(void *);

void *malloc_through_table(size_t size) noexcept;
void free_through_table(void *ptr) noexcept;

std::atomic<const mesa_allocator *> g_default{nullptr};
// What mesa_malloc/mesa_free jump to; the table path until the default is known.
std::atomic<malloc_entry> g_malloc{&malloc_through_table};
std::atomic<free_entry> g_free{&free_through_table};
// Keeps g_default and the two entries consistent when the default changes.
mesa::internal::spin_lock g_default_lock;

void publish_default(const mesa_allocator *a) noexcept {
  const bool libc = a == &mesa::internal::libc_table;
  g_default.store(a, std::memory_order_release);
  g_malloc.store(libc ? &std::malloc : &malloc_through_table, std::memory_order_release);
  g_free.store(libc ? &std::free : &free_through_table, std::memory_order_release);
}

// The default MESA_ALLOC_DEBUG chose: libc, or the layers it names over libc. A function-local
// static runs default_from_environment() exactly once, even when several threads make their
// first allocation at the same time.
const mesa_allocator *environment_default() noexcept {
  static const mesa_allocator *const from_environment = mesa::internal::default_from_environment();
  return from_environment;
}

[[gnu::noinline]] const mesa_allocator *initialize_default() noexcept {
  const mesa_allocator *from_environment = environment_default();
  std::lock_guard<mesa::internal::spin_lock> lock(g_default_lock);
  const mesa_allocator *a = g_default.load(std::memory_order_acquire);
  if (a != nullptr) return a;  // set by mesa_set_default_allocator meanwhile
  publish_default(from_environment);
  return from_environment;
}

inline const mesa_allocator *current() noexcept {
  const mesa_allocator *a = g_default.load(std::memory_order_acquire);
  if (__builtin_expect(a != nullptr, 1)) return a;
  return initialize_default();
}

// NULL with errno set to `error`, as libc fails: every failure of the C API's allocating
// functions says why the way malloc does, whichever table refused (a size or a count × size no
// block can have, a budget, an injected fault, the application's callbacks: ENOMEM; an invalid
// alignment or scope: EINVAL).
inline void *fail_with(int error) noexcept {
  errno = error;
  return nullptr;
}

// The table calls of the allocating functions, out of line so that the functions' libc paths
// keep no frame and no thread-local access. `caller`: the public function's return address,
// recorded for the call only once a layer wants it (internal/api_caller.h).
[[gnu::noinline]] void *alloc_through(const mesa_allocator *a, size_t size, size_t alignment,
                                      mesa_alloc_scope scope, const void *caller) noexcept {
  void *p;
  if (!mesa::internal::records_caller(a)) {
    p = a->alloc_fn(a->user_data, size, alignment, scope);
  } else {
    const api_call call(caller);
    p = a->alloc_fn(a->user_data, size, alignment, scope);
  }
  return p != nullptr ? p : fail_with(ENOMEM);
}

// A realloc to size 0 frees, and its NULL is no failure.
[[gnu::noinline]] void *realloc_through(const mesa_allocator *a, void *ptr, size_t size,
                                        size_t alignment, mesa_alloc_scope scope,
                                        const void *caller) noexcept {
  void *p;
  if (!mesa::internal::records_caller(a)) {
    p = a->realloc_fn(a->user_data, ptr, size, alignment, scope);
  } else {
    const api_call call(caller);
    p = a->realloc_fn(a->user_data, ptr, size, alignment, scope);
  }
  // Only a realloc to 0 of a block returns NULL on success (it frees); of NULL it allocates.
  return p != nullptr || (size == 0 && ptr != nullptr) ? p : fail_with(ENOMEM);
}

// mesa_malloc jumps here (a tail call when optimizing): the return address is into its caller.
void *malloc_through_table(size_t size) noexcept {
  return alloc_through(current(), size, MESA_ALLOC_DEFAULT_ALIGNMENT, MESA_ALLOC_SCOPE_OBJECT,
                       __builtin_return_address(0));
}

inline bool default_is_libc() noexcept {
  return g_malloc.load(std::memory_order_acquire) == &std::malloc;
}

// mesa_malloc for the functions built on it, with their own caller.
inline void *malloc_from(size_t size, const void *caller) noexcept {
  if (default_is_libc()) {
    return size <= mesa::internal::kMaxRequestBytes ? std::malloc(size) : fail_with(ENOMEM);
  }
  return alloc_through(current(), size, MESA_ALLOC_DEFAULT_ALIGNMENT, MESA_ALLOC_SCOPE_OBJECT,
                       caller);
}

// The table call of the freeing functions: a debug layer's report of a bad free starts its stack
// at `caller`, as an allocation's does.
inline void free_through(const mesa_allocator *a, void *ptr, const void *caller) noexcept {
  if (!mesa::internal::records_caller(a)) return a->free_fn(a->user_data, ptr);
  const api_call call(caller);
  a->free_fn(a->user_data, ptr);
}

// mesa_free jumps here (a tail call when optimizing): the return address is into its caller.
void free_through_table(void *ptr) noexcept {
  free_through(current(), ptr, __builtin_return_address(0));
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
  errno = EINVAL;
  return false;
}

// The scope a *2 function hands the table: an application indexes its per-scope counters by it.
inline bool check_request(const char *where, size_t alignment, mesa_alloc_scope scope) noexcept {
  if (!check_alignment(where, alignment)) return false;
  if (static_cast<unsigned>(scope) < MESA_ALLOC_SCOPE_COUNT) return true;
  mesa::internal::report_invalid_scope(where, static_cast<int>(scope));
  errno = EINVAL;
  return false;
}

char *strndup_from(const char *str, size_t max_length, const void *caller) noexcept {
  const size_t length = strnlen(str, max_length);
  char *copy = static_cast<char *>(malloc_from(length + 1, caller));
  if (copy == nullptr) return nullptr;
  std::memcpy(copy, str, length);
  copy[length] = '\0';
  return copy;
}

// mesa_alloc2, or mesa_zalloc2 when `zeroed` (as its messages say). On libc, a zeroed block is
// libc's calloc, as in mesa_calloc.
inline void *alloc2_from(bool zeroed, const mesa_allocator *parent, const mesa_allocator *alloc,
                         size_t size, size_t alignment, mesa_alloc_scope scope,
                         const void *caller) noexcept {
  const char *where = zeroed ? "mesa_zalloc2" : "mesa_alloc2";
  if (!check_request(where, alignment, scope)) return nullptr;
  const mesa_allocator *a = choose(parent, alloc);
  if (a == &mesa::internal::libc_table && alignment <= MESA_ALLOC_DEFAULT_ALIGNMENT &&
      size <= mesa::internal::kMaxRequestBytes)
    return zeroed ? std::calloc(1, size) : std::malloc(size);
  if (__builtin_expect(a->alloc_fn == nullptr, 0)) {
    mesa::internal::report_incomplete_table(where, "alloc_fn");
    return fail_with(EINVAL);
  }
  void *p = alloc_through(a, size, alignment, scope, caller);
  if (zeroed && p != nullptr) std::memset(p, 0, size);
  return p;
}

}  // namespace

extern "C" {

const mesa_allocator *mesa_default_allocator(void) { return current(); }

const mesa_allocator *mesa_set_default_allocator(const mesa_allocator *allocator) {
  if (const char *missing =
          allocator != nullptr ? mesa::internal::missing_table_function(allocator) : nullptr) {
    mesa::internal::report_incomplete_table("mesa_set_default_allocator", missing);
    return current();  // refused: the default stays
  }
  const mesa_allocator *chosen = allocator != nullptr ? allocator : mesa_libc_allocator();
  current();  // the environment's choice is made first, so that it cannot override this one
  const mesa_allocator *previous;
  {
    std::lock_guard<mesa::internal::spin_lock> lock(g_default_lock);
    previous = g_default.load(std::memory_order_acquire);
    publish_default(chosen);
  }
  // MESA_ALLOC_DEBUG's layers stay over libc: over the application's table they would hold its
  // memory past vkDestroyInstance (their bookkeeping, the quarantine). Replacing them is said.
  const mesa_allocator *layers = environment_default();
  if (layers != mesa_libc_allocator() && previous == layers && chosen != layers) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      std::fprintf(stderr,
                   "mesa_alloc: mesa_set_default_allocator: MESA_ALLOC_DEBUG's layers are no "
                   "longer the default; the new default goes through them only if it was made "
                   "over them\n");
    }
  }
  return previous;
}

// Optimised, mesa_malloc and mesa_free jump (a tail call) to the table path, which records the
// return address into their caller. Where the jump is a call (no optimisation, or -O1 as the
// sanitizer builds here use: GCC makes tail calls from -O2), the layers' stacks would start in
// mesa_malloc or mesa_free: there they give the table path their own caller instead, at the
// cost of a compare on the libc path. A plain -O1 build cannot be told apart, and keeps the frame.
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define MESA_ALLOC_JUMPS_TO_TABLE_PATH 1
#endif

void *mesa_malloc(size_t size) {
#ifdef MESA_ALLOC_JUMPS_TO_TABLE_PATH
  return g_malloc.load(std::memory_order_acquire)(size);
#else
  const malloc_entry entry = g_malloc.load(std::memory_order_acquire);
  if (entry != &malloc_through_table) return entry(size);
  return alloc_through(current(), size, MESA_ALLOC_DEFAULT_ALIGNMENT, MESA_ALLOC_SCOPE_OBJECT,
                       __builtin_return_address(0));
#endif
}

void *mesa_calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    mesa::internal::report_size_overflow("mesa_calloc", count, size);
    return fail_with(ENOMEM);
  }
  // libc's calloc, not malloc and memset: a large block comes zeroed from fresh pages, which
  // it need not touch (256 MiB resident at once otherwise, and a fault per page).
  if (default_is_libc())
    return bytes <= mesa::internal::kMaxRequestBytes ? std::calloc(count, size) : fail_with(ENOMEM);
  void *p = malloc_from(bytes, __builtin_return_address(0));
  if (p != nullptr) std::memset(p, 0, bytes);
  return p;
}

void *mesa_realloc(void *ptr, size_t size) {
  const mesa_allocator *a = current();
  if (a == &mesa::internal::libc_table && size != 0 && size <= mesa::internal::kMaxRequestBytes)
    return std::realloc(ptr, size);
  return realloc_through(a, ptr, size, MESA_ALLOC_DEFAULT_ALIGNMENT, MESA_ALLOC_SCOPE_OBJECT,
                         __builtin_return_address(0));
}

void mesa_free(void *ptr) {
#ifdef MESA_ALLOC_JUMPS_TO_TABLE_PATH
  g_free.load(std::memory_order_acquire)(ptr);
#else
  const free_entry entry = g_free.load(std::memory_order_acquire);
  if (entry != &free_through_table) return entry(ptr);
  free_through(current(), ptr, __builtin_return_address(0));
#endif
}

void *mesa_aligned_alloc(size_t alignment, size_t size) {
  if (!check_alignment("mesa_aligned_alloc", alignment)) return nullptr;
  return alloc_through(current(), size, alignment, MESA_ALLOC_SCOPE_OBJECT,
                       __builtin_return_address(0));
}

void *mesa_aligned_realloc(void *ptr, size_t size, size_t alignment) {
  if (!check_alignment("mesa_aligned_realloc", alignment)) return nullptr;
  return realloc_through(current(), ptr, size, alignment, MESA_ALLOC_SCOPE_OBJECT,
                         __builtin_return_address(0));
}

char *mesa_strdup(const char *str) {
  if (str == nullptr) return nullptr;
  return strndup_from(str, std::strlen(str), __builtin_return_address(0));
}

char *mesa_strndup(const char *str, size_t max_length) {
  if (str == nullptr) return nullptr;
  return strndup_from(str, max_length, __builtin_return_address(0));
}

void *mesa_alloc2(const mesa_allocator *parent, const mesa_allocator *alloc, size_t size,
                  size_t alignment, mesa_alloc_scope scope) {
  return alloc2_from(false, parent, alloc, size, alignment, scope, __builtin_return_address(0));
}

void *mesa_zalloc2(const mesa_allocator *parent, const mesa_allocator *alloc, size_t size,
                   size_t alignment, mesa_alloc_scope scope) {
  return alloc2_from(true, parent, alloc, size, alignment, scope, __builtin_return_address(0));
}

void *mesa_realloc2(const mesa_allocator *parent, const mesa_allocator *alloc, void *ptr,
                    size_t size, size_t alignment, mesa_alloc_scope scope) {
  if (!check_request("mesa_realloc2", alignment, scope)) return nullptr;
  const mesa_allocator *a = choose(parent, alloc);
  if (__builtin_expect(a->realloc_fn == nullptr, 0)) {
    mesa::internal::report_incomplete_table("mesa_realloc2", "realloc_fn");
    return fail_with(EINVAL);
  }
  return realloc_through(a, ptr, size, alignment, scope, __builtin_return_address(0));
}

void mesa_free2(const mesa_allocator *parent, const mesa_allocator *alloc, void *ptr) {
  const mesa_allocator *a = choose(parent, alloc);
  if (a == &mesa::internal::libc_table) return std::free(ptr);
  if (__builtin_expect(a->free_fn == nullptr, 0)) {
    if (ptr != nullptr) mesa::internal::report_incomplete_table("mesa_free2", "free_fn");
    return;
  }
  free_through(a, ptr, __builtin_return_address(0));
}

}  // extern "C"
