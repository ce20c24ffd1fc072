// The C API of debug_resources.h: tracking, fault, debug and logging tables on a parent table.
#include "mesa_alloc/debug_resources.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/callback_validator.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/c_handle.h"
#include "mesa_alloc/internal/c_tables.h"
#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/tracking_resource.h"

using mesa::internal::debug_table;
using mesa::internal::debug_table_handler;
using mesa::internal::logging_table;
using mesa::internal::tracking_table;

namespace {

mesa::fault_resource *fault_of(const mesa_allocator *table) {
  return mesa::internal::c_handle_resource<mesa::fault_resource>(table);
}

// Destroys a table made by one of the create functions below (it lives in storage from its
// parent table) and returns that storage to the parent. NULL, or a table of another kind: no-op.
template <class Table>
void destroy_table(const mesa_allocator *table) noexcept {
  Table *t = Table::from(table);
  if (t == nullptr) return;
  const mesa_allocator *parent = t->parent;
  t->~Table();
  parent->free_fn(parent->user_data, t);
}

}  // namespace

namespace mesa::internal {

bool made_by_this_copy(const mesa_allocator *table) noexcept {
  return debug_resource::from_table(table) != nullptr || logging_table::from(table) != nullptr ||
         tracking_table::from(table) != nullptr ||
         resource_callbacks::from_table(table) != nullptr ||
         callback_validator::from_table(table) != nullptr ||
         fault_gate_table::from(table) != nullptr || is_slab_table(table);
}

}  // namespace mesa::internal

extern "C" {

const mesa_allocator *mesa_tracking_create(const mesa_allocator *parent, const char *name,
                                           const mesa_allocator *parent_tracker) {
  tracking_table *up = nullptr;
  if (parent_tracker != nullptr && (up = tracking_table::from(parent_tracker)) == nullptr) {
    std::fprintf(stderr,
                 "mesa_alloc: mesa_tracking_create: parent_tracker %p is not a tracking table "
                 "(mesa_tracking_create makes one); no table made\n",
                 static_cast<const void *>(parent_tracker));
    return nullptr;
  }
  parent = mesa::internal::parent_or_default(parent, "mesa_tracking_create");
  if (parent == nullptr) return nullptr;
  void *storage =
      mesa::internal::checked_alloc(parent, sizeof(tracking_table), alignof(tracking_table),
                                    MESA_ALLOC_SCOPE_OBJECT, "mesa_tracking_create");
  if (storage == nullptr) return nullptr;
  auto *t = new (storage)
      tracking_table(parent, name != nullptr ? name : "", up != nullptr ? &up->tracker : nullptr);
  t->forward_notifications("mesa_tracking_create");
  return &t->table;
}

void mesa_tracking_destroy(const mesa_allocator *tracker) {
  destroy_table<tracking_table>(tracker);
}

int mesa_tracking_get_stats(const mesa_allocator *tracker, mesa_tracking_stats *out) {
  if (out == nullptr) {
    mesa::internal::report_null_argument("mesa_tracking_get_stats", "stats");
    return 0;
  }
  std::memset(out, 0, sizeof *out);
  tracking_table *t = tracking_table::from(tracker);
  if (t == nullptr) return 0;
  const mesa::tracking_stats s = t->tracker.stats();
  out->bytes_in_use = s.bytes_in_use;
  out->peak_bytes = s.peak_bytes;
  out->total_bytes = s.total_bytes;
  out->blocks_in_use = s.blocks_in_use;
  out->peak_blocks = s.peak_blocks;
  out->total_allocations = s.total_allocations;
  out->total_deallocations = s.total_deallocations;
  out->failed_allocations = s.failed_allocations;
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    out->scope_bytes_in_use[i] = s.scopes[i].bytes_in_use;
    out->scope_blocks_in_use[i] = s.scopes[i].blocks_in_use;
    out->scope_allocations[i] = s.scopes[i].total_allocations;
    out->scope_total_bytes[i] = s.scopes[i].total_bytes;
    out->scope_deallocations[i] = s.scopes[i].total_deallocations;
    out->scope_failed_allocations[i] = s.scopes[i].failed_allocations;
  }
  return 1;
}

void mesa_tracking_set_limit(const mesa_allocator *tracker, size_t bytes) {
  if (tracking_table *t = tracking_table::from(tracker)) t->tracker.set_limit(bytes);
}

void mesa_tracking_print_report(const mesa_allocator *tracker, FILE *out) {
  if (tracking_table *t = tracking_table::from(tracker))
    t->tracker.print_report(out != nullptr ? out : stderr);
}

void mesa_tracking_print_json(const mesa_allocator *tracker, FILE *out) {
  if (tracking_table *t = tracking_table::from(tracker))
    t->tracker.print_json(out != nullptr ? out : stderr);
}

const mesa_allocator *mesa_fault_create(const mesa_allocator *parent) {
  return mesa::internal::c_handle_create<mesa::fault_resource>("mesa_fault", parent);
}

void mesa_fault_destroy(const mesa_allocator *fault) {
  mesa::internal::c_handle_destroy<mesa::fault_resource>(fault);
}

void mesa_fault_fail_nth(const mesa_allocator *fault, uint64_t n) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_nth(n);
}

void mesa_fault_fail_from(const mesa_allocator *fault, uint64_t n) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_from(n);
}

void mesa_fault_fail_every(const mesa_allocator *fault, uint64_t n) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_every(n);
}

void mesa_fault_fail_random(const mesa_allocator *fault, double probability, uint64_t seed) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_random(probability, seed);
}

void mesa_fault_fail_none(const mesa_allocator *fault) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_none();
}

uint64_t mesa_fault_attempts(const mesa_allocator *fault) {
  mesa::fault_resource *f = fault_of(fault);
  return f != nullptr ? f->attempts() : 0;
}

uint64_t mesa_fault_failures(const mesa_allocator *fault) {
  mesa::fault_resource *f = fault_of(fault);
  return f != nullptr ? f->failures() : 0;
}

static_assert(
    static_cast<int>(mesa::debug_error_kind::double_free) == MESA_DEBUG_DOUBLE_FREE &&
        static_cast<int>(mesa::debug_error_kind::invalid_free) == MESA_DEBUG_INVALID_FREE &&
        static_cast<int>(mesa::debug_error_kind::allocator_mismatch) ==
            MESA_DEBUG_ALLOCATOR_MISMATCH &&
        static_cast<int>(mesa::debug_error_kind::size_mismatch) == MESA_DEBUG_SIZE_MISMATCH &&
        static_cast<int>(mesa::debug_error_kind::buffer_overrun) == MESA_DEBUG_BUFFER_OVERRUN &&
        static_cast<int>(mesa::debug_error_kind::buffer_underrun) == MESA_DEBUG_BUFFER_UNDERRUN &&
        static_cast<int>(mesa::debug_error_kind::write_after_free) == MESA_DEBUG_WRITE_AFTER_FREE &&
        static_cast<int>(mesa::debug_error_kind::leak) == MESA_DEBUG_LEAK,
    "the C error kinds must have the C++ values");

void debug_table_handler::forward(const mesa::debug_error &error, void *self) noexcept {
  const auto *h = static_cast<const debug_table_handler *>(self);
  const mesa_debug_error e{static_cast<mesa_debug_error_kind>(error.kind),
                           error.address,
                           error.size,
                           error.allocation,
                           error.offset,
                           error.detail};
  h->handler(&e, h->context);
}

void mesa_debug_options_init(mesa_debug_options *options) {
  if (options == nullptr) {
    mesa::internal::report_null_argument("mesa_debug_options_init", "options");
    return;
  }
  const mesa::debug_options d;
  options->cookie = d.cookie;
  options->fill = d.fill;
  options->guard = static_cast<mesa_debug_guard>(d.guard);
  options->quarantine_bytes = d.quarantine_bytes;
  options->record_stacks =
      d.record_stacks ? MESA_DEBUG_STACKS_FRAME_POINTERS : MESA_DEBUG_STACKS_OFF;
  options->report_leaks_on_destroy = d.report_leaks_on_destroy;
  options->thread_safe = d.thread_safe;
  options->handler = nullptr;
  options->handler_context = nullptr;
}

const mesa_allocator *mesa_debug_create(const mesa_allocator *parent,
                                        const mesa_debug_options *options) {
  mesa::debug_options d;
  mesa_debug_handler handler = nullptr;
  void *handler_context = nullptr;
  if (options != nullptr) {
    int guard;  // read as an int: C may pass any value
    std::memcpy(&guard, &options->guard, sizeof guard);
    if (guard < MESA_DEBUG_GUARD_NONE || guard > MESA_DEBUG_GUARD_BEFORE) {
      std::fprintf(stderr, "mesa_alloc: mesa_debug_create: guard %d is not a mesa_debug_guard\n",
                   guard);
      return nullptr;
    }
    if (options->record_stacks < MESA_DEBUG_STACKS_OFF ||
        options->record_stacks > MESA_DEBUG_STACKS_UNWIND_TABLES) {
      std::fprintf(stderr,
                   "mesa_alloc: mesa_debug_create: record_stacks %d is not a MESA_DEBUG_STACKS_ "
                   "value\n",
                   options->record_stacks);
      return nullptr;
    }
    d.cookie = options->cookie != 0;
    d.fill = options->fill != 0;
    d.guard = static_cast<mesa::guard_mode>(options->guard);
    d.quarantine_bytes = options->quarantine_bytes;
    d.record_stacks = options->record_stacks != MESA_DEBUG_STACKS_OFF;
    if (options->record_stacks == MESA_DEBUG_STACKS_UNWIND_TABLES)
      d.unwinder = mesa::stack_unwinder::unwind_tables;
    d.report_leaks_on_destroy = options->report_leaks_on_destroy != 0;
    d.thread_safe = options->thread_safe != 0;
    handler = options->handler;
    handler_context = options->handler_context;
  }
  parent = mesa::internal::parent_or_default(parent, "mesa_debug_create");
  if (parent == nullptr) return nullptr;
  void *storage = mesa::internal::checked_alloc(parent, sizeof(debug_table), alignof(debug_table),
                                                MESA_ALLOC_SCOPE_OBJECT, "mesa_debug_create");
  if (storage == nullptr) return nullptr;
  auto *t = new (storage) debug_table(parent, d, handler, handler_context);
  t->forward_notifications("mesa_debug_create");
  return t->table();
}

// With the caller recorded: a block damaged in the quarantine, found as the destructor empties it,
// is reported from the program's call of mesa_debug_destroy.
void mesa_debug_destroy(const mesa_allocator *debug) {
  const mesa::internal::api_call call(__builtin_return_address(0));
  destroy_table<debug_table>(debug);
}

size_t mesa_debug_report_leaks(const mesa_allocator *debug) {
  mesa::debug_resource *d = mesa::debug_resource::from_table(debug);
  return d != nullptr ? d->report_leaks() : 0;
}

const mesa_allocator *mesa_logging_create(const mesa_allocator *parent, const char *path,
                                          int record_stacks) {
  if (path == nullptr) {
    mesa::internal::report_null_argument("mesa_logging_create", "path");
    return nullptr;
  }
  parent = mesa::internal::parent_or_default(parent, "mesa_logging_create");
  if (parent == nullptr) return nullptr;
  void *storage =
      mesa::internal::checked_alloc(parent, sizeof(logging_table), alignof(logging_table),
                                    MESA_ALLOC_SCOPE_OBJECT, "mesa_logging_create");
  if (storage == nullptr) return nullptr;
  auto *t = new (storage) logging_table(parent, path, record_stacks != 0);
  if (!t->file.ok()) {
    t->~logging_table();
    parent->free_fn(parent->user_data, storage);
    return nullptr;
  }
  t->forward_notifications("mesa_logging_create");
  return &t->table;
}

void mesa_logging_flush(const mesa_allocator *logging) {
  if (logging_table *t = logging_table::from(logging)) t->file.flush();
}

void mesa_logging_destroy(const mesa_allocator *logging) { destroy_table<logging_table>(logging); }

int mesa_fault_loop(const mesa_allocator *parent,
                    void (*body)(const mesa_allocator *allocator, void *context), void *context,
                    mesa_fault_loop_result *result) {
  if (result != nullptr) *result = mesa_fault_loop_result{};
  parent = mesa::internal::parent_or_default(parent, "mesa_fault_loop");
  if (body == nullptr) std::fputs("mesa_alloc: mesa_fault_loop: no body to run\n", stderr);
  if (parent == nullptr || body == nullptr) return 0;
  mesa::callback_resource upstream(parent);
  const mesa::fault_loop_result r =
      mesa::fail_each_allocation(&upstream, [&](std::pmr::memory_resource *resource) {
        mesa::resource_callbacks table(resource);
        body(table.table(), context);
      });
  if (result != nullptr) {
    result->completed = r.completed;
    result->leaked = r.leaked;
    result->runs = r.runs;
    result->leak_at = r.leak_at;
    result->leaked_bytes = r.leaked_bytes;
    result->leaked_blocks = r.leaked_blocks;
  }
  return r.completed && !r.leaked;
}

}  // extern "C"
