/*
 * poison.h — make direct libc allocation a compile error.
 *
 * What it is for: after this header, a call to malloc, calloc, realloc, free, strdup, strndup,
 * aligned_alloc or posix_memalign does not compile, so nothing in a component can allocate
 * behind mesa_alloc's back. Force-include it for a whole Bazel target with mesa_cc_library
 * (mesa_alloc/defs.bzl) or `-include mesa_alloc/poison.h`.
 *
 * What it costs: nothing at run time. Each poisoned name becomes a function-like macro that
 * expands to an undeclared identifier naming the problem, e.g.
 *     error: 'mesa_alloc_poisoned__malloc__use_mesa_malloc_or_MESA_ALLOC_ALLOW_LIBC'
 *     undeclared
 * which is a hard error in C and C++ on GCC, Clang and MSVC alike. Declarations such as
 * `using ::malloc;` in <cstdlib> are not calls and stay valid; the C library headers are
 * included first so their own declarations are not touched.
 *
 * Opt-out: a file that must call libc (the libc allocator itself, third-party interop) defines
 * MESA_ALLOC_ALLOW_LIBC before any include.
 *
 * The #define cannot see allocation inside already-compiled code or inline STL templates using
 * std::allocator: the link-level audit (alloc_audit_test) catches those.
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

#include "mesa_alloc/mesa_alloc.h"

#undef malloc
#undef calloc
#undef realloc
#undef free
#undef strdup
#undef strndup
#undef aligned_alloc
#undef posix_memalign

#define malloc(...) mesa_alloc_poisoned__malloc__use_mesa_malloc_or_MESA_ALLOC_ALLOW_LIBC
#define calloc(...) mesa_alloc_poisoned__calloc__use_mesa_calloc_or_MESA_ALLOC_ALLOW_LIBC
#define realloc(...) mesa_alloc_poisoned__realloc__use_mesa_realloc_or_MESA_ALLOC_ALLOW_LIBC
#define free(...) mesa_alloc_poisoned__free__use_mesa_free_or_MESA_ALLOC_ALLOW_LIBC
#define strdup(...) mesa_alloc_poisoned__strdup__use_mesa_strdup_or_MESA_ALLOC_ALLOW_LIBC
#define strndup(...) mesa_alloc_poisoned__strndup__use_mesa_strndup_or_MESA_ALLOC_ALLOW_LIBC
#define aligned_alloc(...) \
   mesa_alloc_poisoned__aligned_alloc__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC
#define posix_memalign(...) \
   mesa_alloc_poisoned__posix_memalign__use_mesa_aligned_alloc_or_MESA_ALLOC_ALLOW_LIBC

#endif /* MESA_ALLOC_ALLOW_LIBC */

#endif /* MESA_ALLOC_POISON_H */
