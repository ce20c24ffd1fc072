/*
 * debug_resources.h — the debugging, accounting, fault-injection and logging layers from C.
 *
 * What it is for: C drivers stack the same layers as C++ code (tracking_resource.h,
 * fault_resource.h, debug_resource.h, logging_resource.h) on any parent table: each create
 * function returns a `const mesa_allocator *` to allocate through (pass it to mesa_alloc2,
 * hand it to other code, or make it the default), and the matching destroy function frees it.
 * NULL as parent means the default allocator. Every table is thread-safe (a debug table unless
 * made with options->thread_safe = 0; mesa_tracking_set_limit has a rule of its own, below).
 * Every table passes its parent's internal-allocation notifications (internal_alloc_fn and
 * internal_free_fn: Vulkan's pfnInternalAllocation and pfnInternalFree) on unchanged, neither
 * counted, checked, logged nor failed, so wrapping an application's callbacks keeps them. Fixed
 * when the table is made: over a parent with both it has both; over one with neither, neither
 * (NULL); over one with only one of them, neither, said in one line on stderr.
 *
 * What it costs: as the C++ layer, plus for tracking and fault a small header per block (16
 * bytes, more for larger alignments) because C frees are unsized; debug and logging tables
 * need none (debug keeps the size in its own header; logging forwards unsized frees).
 *
 * Example:
 *   const mesa_allocator *driver = mesa_tracking_create(NULL, "driver", NULL);
 *   const mesa_allocator *compiler = mesa_tracking_create(NULL, "compiler", driver);
 *   void *p = mesa_alloc2(NULL, compiler, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
 *   mesa_free2(NULL, compiler, p);
 *   mesa_tracking_print_report(driver, stderr);
 *   mesa_tracking_destroy(compiler);
 *   mesa_tracking_destroy(driver);
 */
#ifndef MESA_ALLOC_DEBUG_RESOURCES_H
#define MESA_ALLOC_DEBUG_RESOURCES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mesa_alloc/mesa_alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tracking: accounting and budgets ------------------------------------------------------ */

typedef struct mesa_tracking_stats {
  size_t bytes_in_use, peak_bytes;
  uint64_t total_bytes;
  size_t blocks_in_use, peak_blocks;
  uint64_t total_allocations, total_deallocations, failed_allocations;
  size_t scope_bytes_in_use[MESA_ALLOC_SCOPE_COUNT];
  size_t scope_blocks_in_use[MESA_ALLOC_SCOPE_COUNT];
  uint64_t scope_allocations[MESA_ALLOC_SCOPE_COUNT];
  uint64_t scope_total_bytes[MESA_ALLOC_SCOPE_COUNT];
  uint64_t scope_deallocations[MESA_ALLOC_SCOPE_COUNT];
  uint64_t scope_failed_allocations[MESA_ALLOC_SCOPE_COUNT];
} mesa_tracking_stats;

/* A tracker named `name` allocating from `parent` (NULL: the default). `parent_tracker` is NULL
 * or another table from mesa_tracking_create: this tracker's counts roll up into it, and it
 * must be destroyed after this one (destroying it first cuts this one loose, with a line naming
 * both; only while no thread allocates or frees through this one). Counts exact user sizes, per
 * scope. NULL on failure or if parent_tracker is not a
 * tracking table. */
const mesa_allocator *mesa_tracking_create(const mesa_allocator *parent, const char *name,
                                           const mesa_allocator *parent_tracker);
void mesa_tracking_destroy(const mesa_allocator *tracker);
/* Returns 0 (and zeroes *stats) if `tracker` is not a tracking table; a NULL `stats` is reported
 * on stderr and gives 0. */
int mesa_tracking_get_stats(const mesa_allocator *tracker, mesa_tracking_stats *stats);
/* A budget in bytes; SIZE_MAX removes it. Allocations beyond it return NULL; a growing realloc
 * needs room for the old block and the new one at once (it holds both until the copy is made), a
 * shrinking one at the same alignment is never refused. Setting one takes what is in use as its
 * starting charge: call it while no other thread allocates or frees through this tracker or its
 * children (at set-up, or with them stopped), or the charge is off by what they did meanwhile for
 * as long as the budget stays (a too-high charge refuses early; a too-low one is caught at 0 with
 * a line). The tables' other calls are thread-safe. */
void mesa_tracking_set_limit(const mesa_allocator *tracker, size_t bytes);
/* Aligned text table of the tracker and its children; JSON with mesa_tracking_print_json. A NULL
 * `out` prints to stderr. */
void mesa_tracking_print_report(const mesa_allocator *tracker, FILE *out);
void mesa_tracking_print_json(const mesa_allocator *tracker, FILE *out);

/* ---- fault injection --------------------------------------------------------------------- */

/* As fault_resource's members (fault_resource.h). The functions below do nothing
 * (mesa_fault_attempts and mesa_fault_failures: 0) for NULL or a table of another kind. */
const mesa_allocator *mesa_fault_create(const mesa_allocator *parent);
void mesa_fault_destroy(const mesa_allocator *fault);
void mesa_fault_fail_nth(const mesa_allocator *fault, uint64_t n); /* 0-based, from now, once */
/* Attempt n from now and every later one fail: memory runs out for good, so code that retries
 * smaller (the arena, slab and pool tables) cannot get round the failure. */
void mesa_fault_fail_from(const mesa_allocator *fault, uint64_t n);
void mesa_fault_fail_every(const mesa_allocator *fault, uint64_t n); /* 0 stops */
void mesa_fault_fail_random(const mesa_allocator *fault, double probability, uint64_t seed);
void mesa_fault_fail_none(const mesa_allocator *fault);    /* no more failures */
uint64_t mesa_fault_attempts(const mesa_allocator *fault); /* since the table was made */
uint64_t mesa_fault_failures(const mesa_allocator *fault); /* injected, since it was made */

/* leak_at when the leaking run was the one with no failure (the body leaks on success). */
#define MESA_FAULT_LOOP_NO_FAILURE UINT64_MAX

typedef struct mesa_fault_loop_result {
  int completed;       /* a run finished with no injected failure */
  int leaked;          /* a run left memory allocated */
  uint64_t runs;       /* runs made */
  uint64_t leak_at;    /* the failing allocation index of the leaking run, or
                          MESA_FAULT_LOOP_NO_FAILURE: the run with no failure leaked */
  size_t leaked_bytes; /* user bytes plus a header of max(16, alignment) bytes per block */
  size_t leaked_blocks;
} mesa_fault_loop_result;

/* Calls body(allocator, context) with allocation 0, 1, 2, ... and every later one in that run
 * failing (NULL),
 * until a run completes with no failure injected or a run leaks (memory still allocated through
 * `allocator` when body returns). Returns 1 when it completed with no leak. A NULL body, or a
 * parent table that lacks a function, is reported on stderr and returns 0 with *result zeroed. */
int mesa_fault_loop(const mesa_allocator *parent,
                    void (*body)(const mesa_allocator *allocator, void *context), void *context,
                    mesa_fault_loop_result *result);

/* ---- debug: cookies, canaries, fills, guard pages, quarantine, leak reports --------------- */

typedef enum mesa_debug_guard {
  MESA_DEBUG_GUARD_NONE = 0,
  MESA_DEBUG_GUARD_AFTER = 1,  /* an inaccessible page right after each block: overruns fault */
  MESA_DEBUG_GUARD_BEFORE = 2, /* ... right before it: underruns fault */
} mesa_debug_guard;

/* What a debug table found (the C view of mesa::debug_error_kind, same values). */
typedef enum mesa_debug_error_kind {
  MESA_DEBUG_DOUBLE_FREE = 0,
  MESA_DEBUG_INVALID_FREE = 1,
  MESA_DEBUG_ALLOCATOR_MISMATCH = 2,
  MESA_DEBUG_SIZE_MISMATCH = 3,
  MESA_DEBUG_BUFFER_OVERRUN = 4,
  MESA_DEBUG_BUFFER_UNDERRUN = 5,
  MESA_DEBUG_WRITE_AFTER_FREE = 6,
  MESA_DEBUG_LEAK = 7,
} mesa_debug_error_kind;

typedef struct mesa_debug_error {
  mesa_debug_error_kind kind;
  const void *address; /* the block as the program saw it */
  size_t size;         /* requested size; 0 when unknown (invalid free) */
  uint64_t allocation; /* allocation number (from 1); 0 when unknown */
  ptrdiff_t offset;    /* first bad byte from the block start (overrun, underrun, write after
                          free); 0 otherwise */
  const char *detail;  /* a short explanation, never NULL; valid during the call only */
} mesa_debug_error;

/* Called for every error instead of printing and aborting. It may return: the operation is
 * then skipped (a damaged or foreign block is not released) or completed safely. */
typedef void (*mesa_debug_handler)(const mesa_debug_error *error, void *context);

/* record_stacks: off, walked through frame pointers (fast; frames are missing or wrong above
 * the first caller built without them), or through the unwind tables (complete without frame
 * pointers; microseconds per allocation). Any other value is refused (see mesa_debug_create). */
enum {
  MESA_DEBUG_STACKS_OFF = 0,
  MESA_DEBUG_STACKS_FRAME_POINTERS = 1,
  MESA_DEBUG_STACKS_UNWIND_TABLES = 2
};

typedef struct mesa_debug_options {
  int cookie;                  /* check magic and canaries on free (default 1) */
  int fill;                    /* 0xCD on allocate, 0xDD on free (default 1) */
  mesa_debug_guard guard;      /* default NONE */
  size_t quarantine_bytes;     /* freed bytes held back and checked (default 0) */
  int record_stacks;           /* allocation stacks in reports: MESA_DEBUG_STACKS_* (default 0) */
  int report_leaks_on_destroy; /* default 1 */
  int thread_safe;             /* 0: one thread at a time, no locking (default 1) */
  mesa_debug_handler handler;  /* NULL: print on stderr and abort (leaks only print) */
  void *handler_context;       /* passed to handler */
} mesa_debug_options;

/* Fills *options with the defaults above (a NULL `options` is reported on stderr). */
void mesa_debug_options_init(mesa_debug_options *options);
/* A debug table over `parent` (NULL: the default); NULL options means the defaults. Errors go
 * to options->handler, or are printed on stderr (see debug_resource.h for the format) and
 * abort, except leaks. A guard or record_stacks value outside its enum gives NULL and a line. */
const mesa_allocator *mesa_debug_create(const mesa_allocator *parent,
                                        const mesa_debug_options *options);
void mesa_debug_destroy(const mesa_allocator *debug);
/* Reports every live block as a leak; returns how many (0 if `debug` is not a debug table). */
size_t mesa_debug_report_leaks(const mesa_allocator *debug);

/* ---- logging: a trace of every call for //tools:alloc_trace ---------------------------------- */

/* Logs every call (op, pointer, size, alignment, scope, thread, time and, with record_stacks,
 * the call site) to the trace file `path` and forwards it unchanged to `parent` (NULL: the
 * default); internal-allocation notifications are forwarded but not logged (the trace format
 * has no record for them). NULL if the file cannot be created or its header cannot be written (a
 * full disk), or for a NULL path: said on stderr. Format: logging_resource.h. */
const mesa_allocator *mesa_logging_create(const mesa_allocator *parent, const char *path,
                                          int record_stacks);
/* Writes what the trace holds so far. */
void mesa_logging_flush(const mesa_allocator *logging);
/* Finishes the trace (its end record: alloc_trace reads it as whole), closes the file and frees
 * the table (blocks stay with the parent). */
void mesa_logging_destroy(const mesa_allocator *logging);

#ifdef __cplusplus
}
#endif

#endif /* MESA_ALLOC_DEBUG_RESOURCES_H */
