// Internal: one-line diagnostics for misuse of the C API that is not a crash (a bad alignment,
// an overflowing count × size, an incomplete table). Not part of the public API.
#ifndef MESA_ALLOC_INTERNAL_DIAGNOSTICS_H_
#define MESA_ALLOC_INTERNAL_DIAGNOSTICS_H_

#include <cstddef>

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

// Prints "mesa_alloc: invalid alignment <n> in <where> (must be a power of two)" on stderr in
// debug builds (NDEBUG not defined); silent in release builds. Never aborts: the caller
// returns NULL.
void report_invalid_alignment(const char *where, std::size_t alignment) noexcept;
// The same for a scope outside mesa_alloc_scope: "mesa_alloc: invalid scope <n> in <where>
// (must be 0 to 4)".
void report_invalid_scope(const char *where, int scope) noexcept;

// For a layer given a request request_refused() flags (request_limit.h): the invalid alignment
// line when the alignment is the reason; refuse_request then throws std::bad_alloc, as for
// any failure.
[[gnu::cold]] void report_refused_request(const char *where, std::size_t alignment) noexcept;
[[noreturn, gnu::cold]] void refuse_request(const char *where, std::size_t alignment);

// Same, for count * size overflowing size_t.
void report_size_overflow(const char *where, std::size_t count, std::size_t size) noexcept;

// The first of alloc_fn, realloc_fn and free_fn that `table` lacks ("realloc_fn"), or NULL.
const char *missing_table_function(const mesa_allocator *table) noexcept;
// Prints "mesa_alloc: <where>: the table has no <missing> (alloc_fn, realloc_fn and free_fn are
// required)" on stderr, in every build: a table handed over at set-up that would crash at its
// first call.
void report_incomplete_table(const char *where, const char *missing) noexcept;
// Prints "mesa_alloc: <what> at <p> <where>: <why>; the block is left alone" on stderr, in
// every build: a free that the resource would otherwise have turned into corruption (a block
// freed twice, or not one of its own), refused instead.
void report_refused_free(const char *what, const void *p, const char *where,
                         const char *why) noexcept;
// Writes `length` bytes to stderr with write(2): safe in a signal handler, unlike stdio, and
// takes no stream lock (a report printing under one may wait for a lock held by the caller).
void write_to_stderr(const char *text, std::size_t length) noexcept;
// The same for a line snprintf formatted into a `capacity`-byte buffer (`n`, its result, cut to
// the buffer).
void write_line(const char *line, int n, std::size_t capacity) noexcept;
// Prints "mesa_alloc: <where>: <what> is NULL" on stderr, in every build: a C function that
// writes through a pointer argument was given none, and does nothing instead of crashing.
void report_null_argument(const char *where, const char *what) noexcept;
// "mesa_alloc: <who>: the <source> returned <p> for alignment <n> (misaligned); refused".
void report_misaligned_result(const char *who, const char *source, const void *p,
                              std::size_t alignment) noexcept;
// Prints "mesa_alloc: <who>: scope <n> is not an allocation scope (0 to 4)" on stderr and
// aborts: a bridge made with it would hand every request's scope to the application, whose
// per-scope counters it would index out of bounds.
[[noreturn, gnu::cold]] void report_bad_scope(const char *who, int scope) noexcept;
// Prints "mesa_alloc: <who>: no <what> (null)" on stderr and aborts: an object made over a
// null resource would crash without a word at its first call through it.
[[noreturn, gnu::cold]] void report_null_resource(const char *who, const char *what) noexcept;
// Called by the debug layer's default handler before it prints a report, `ending` when the
// report ends the process (all but a leak report), and before MESA_ALLOC_DEBUG's one-off lines
// (a limit's first refusal, an alignment over the debug layer's limit): MESA_ALLOC_DEBUG sets the
// line that names the shared library this copy of mesa_alloc is part of and writes out its trace.
// Null: nothing.
void set_before_debug_report(void (*hook)(bool ending)) noexcept;
void before_debug_report(bool ending) noexcept;
// For the functions that take a parent table: NULL means the default table; an incomplete table
// is reported and gives NULL (the caller then fails).
const mesa_allocator *parent_or_default(const mesa_allocator *parent, const char *where) noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_DIAGNOSTICS_H_
