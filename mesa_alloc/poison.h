/*
 * poison.h — make direct libc allocation a compile error.
 *
 * What it is for: after this header, a call to malloc, calloc, realloc, free, strdup, strndup,
 * aligned_alloc or posix_memalign does not compile, so nothing in a component can allocate
 * behind mesa_alloc's back. Force-include it for a whole Bazel target with mesa_cc_library
 * (mesa_alloc/defs.bzl) or `-include mesa_alloc/poison.h`.
 *
 * What it costs: nothing at run time. Each poisoned name becomes a function-like macro:
 *   - GCC and Clang: a call to `mesa_alloc_poisoned__malloc__use_mesa_malloc_or_...`, declared
 *     with __attribute__((error)), so the build fails with
 *       error: call to 'mesa_alloc_poisoned__malloc__...' declared with attribute error:
 *       malloc() is poisoned by mesa_alloc/poison.h: use mesa_malloc() ...
 *     for every call that is compiled into code. Inline functions of system headers that call
 *     malloc (mm_malloc.h, Abseil's debug helpers) but are never used emit no code and so do
 *     not break the build; `std::malloc(n)` is caught too.
 *   - MSVC: an undeclared identifier of the same name, which is a hard error in C and C++.
 * Declarations such as `using ::malloc;` in <cstdlib> are not calls and stay valid; the C
 * library headers are included first so their own declarations are not touched.
 *
 * Opt-out: a file that must call libc (the libc allocator itself, third-party interop) defines
 * MESA_ALLOC_ALLOW_LIBC before any include.
 *
 * The #define cannot see allocation inside already-compiled code or inline STL templates using
 * std::allocator, nor a name used without a call (`&free`, or `free` handed over as a destroy
 * callback: function-like macros expand only before a parenthesis): the link-level audit
 * (alloc_audit_test) catches those, as a reference to the libc symbol.
 */
#ifndef MESA_ALLOC_POISON_H
#define MESA_ALLOC_POISON_H

#ifndef MESA_ALLOC_ALLOW_LIBC

#include <stdlib.h>
#include <string.h>
#ifdef __cplusplus
#include <cstdlib>
#include <cstring>
#endif
/* The compilers' mm_malloc.h (pulled in by SIMD intrinsics headers) declares posix_memalign
 * itself; let it do so before the macros exist. */
#if defined(__has_include)
#if __has_include(<mm_malloc.h>)
#include <mm_malloc.h>
#endif
#endif

#include "mesa_alloc/mesa_alloc.h"

#undef malloc
#undef calloc
#undef realloc
#undef free
#undef strdup
#undef strndup
#undef aligned_alloc
#undef posix_memalign

#if defined(__GNUC__) || defined(__clang__)

/* glibc declares these non-throwing; a header redeclaring one after us (mm_malloc.h declares
 * posix_memalign) must match. */
#ifdef __cplusplus
#define MESA_ALLOC_POISON_NOTHROW_ noexcept
#else
#define MESA_ALLOC_POISON_NOTHROW_
#endif

#define MESA_ALLOC_POISONED_(fn, use)                                         \
  MESA_ALLOC_POISON_NOTHROW_                                                  \
  __attribute__((error(#fn "() is poisoned by mesa_alloc/poison.h: use " #use \
                           "() (or define MESA_ALLOC_ALLOW_LIBC for this file)")))

#ifdef __cplusplus
extern "C" {
#endif
void *mesa_alloc_poisoned__malloc__use_mesa_malloc_or_MESA_ALLOC_ALLOW_LIBC(size_t)
    MESA_ALLOC_POISONED_(malloc, mesa_malloc);
void *mesa_alloc_poisoned__calloc__use_mesa_calloc_or_MESA_ALLOC_ALLOW_LIBC(size_t, size_t)
    MESA_ALLOC_POISONED_(calloc, mesa_calloc);
void *mesa_alloc_poisoned__realloc__use_mesa_realloc_or_MESA_ALLOC_ALLOW_LIBC(void *, size_t)
    MESA_ALLOC_POISONED_(realloc, mesa_realloc);
void mesa_alloc_poisoned__free__use_mesa_free_or_MESA_ALLOC_ALLOW_LIBC(void *)
    MESA_ALLOC_POISONED_(free, mesa_free);
char *mesa_alloc_poisoned__strdup__use_mesa_strdup_or_MESA_ALLOC_ALLOW_LIBC(const char *)
    MESA_ALLOC_POISONED_(strdup, mesa_strdup);
char *mesa_alloc_poisoned__strndup__use_mesa_strndup_or_MESA_ALLOC_ALLOW_LIBC(const char *, size_t)
    MESA_ALLOC_POISONED_(strndup, mesa_strndup);
void *mesa_alloc_poisoned__aligned_alloc__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC(size_t,
                                                                                          size_t)
    MESA_ALLOC_POISONED_(aligned_alloc, mesa_aligned_alloc);
int mesa_alloc_poisoned__posix_memalign__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC(void **,
                                                                                         size_t,
                                                                                         size_t)
    MESA_ALLOC_POISONED_(posix_memalign, mesa_aligned_alloc);
#ifdef __cplusplus
}

/* So that `std::malloc(n)` (which the macro turns into `std::mesa_alloc_poisoned__...`) is
 * found and reported like a plain call. */
namespace std {
using ::mesa_alloc_poisoned__aligned_alloc__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC;
using ::mesa_alloc_poisoned__calloc__use_mesa_calloc_or_MESA_ALLOC_ALLOW_LIBC;
using ::mesa_alloc_poisoned__free__use_mesa_free_or_MESA_ALLOC_ALLOW_LIBC;
using ::mesa_alloc_poisoned__malloc__use_mesa_malloc_or_MESA_ALLOC_ALLOW_LIBC;
using ::mesa_alloc_poisoned__realloc__use_mesa_realloc_or_MESA_ALLOC_ALLOW_LIBC;
}  // namespace std
#endif

#undef MESA_ALLOC_POISONED_
#undef MESA_ALLOC_POISON_NOTHROW_
#define MESA_ALLOC_POISON_CALL_(name) name

#else /* MSVC and others: an undeclared identifier is a hard error everywhere. */

#define MESA_ALLOC_POISON_CALL_(name) name MESA_ALLOC_POISON_DISCARD_
#define MESA_ALLOC_POISON_DISCARD_(...)

#endif

#define malloc(...)                                                                              \
  MESA_ALLOC_POISON_CALL_(mesa_alloc_poisoned__malloc__use_mesa_malloc_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define calloc(...)                                                                              \
  MESA_ALLOC_POISON_CALL_(mesa_alloc_poisoned__calloc__use_mesa_calloc_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define realloc(...)                                                                               \
  MESA_ALLOC_POISON_CALL_(mesa_alloc_poisoned__realloc__use_mesa_realloc_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define free(...)                                                                            \
  MESA_ALLOC_POISON_CALL_(mesa_alloc_poisoned__free__use_mesa_free_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define strdup(...)                                                                              \
  MESA_ALLOC_POISON_CALL_(mesa_alloc_poisoned__strdup__use_mesa_strdup_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define strndup(...)                                                                               \
  MESA_ALLOC_POISON_CALL_(mesa_alloc_poisoned__strndup__use_mesa_strndup_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define aligned_alloc(...)                                                                 \
  MESA_ALLOC_POISON_CALL_(                                                                 \
      mesa_alloc_poisoned__aligned_alloc__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)
#define posix_memalign(...)                                                                 \
  MESA_ALLOC_POISON_CALL_(                                                                  \
      mesa_alloc_poisoned__posix_memalign__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC) \
  (__VA_ARGS__)

#endif /* MESA_ALLOC_ALLOW_LIBC */

#endif /* MESA_ALLOC_POISON_H */
