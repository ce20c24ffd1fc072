// The C API of debug_resources.h: tracking, fault, debug and logging tables on a parent table.
#include "mesa_alloc/debug_resources.h"

#include <cstring>
#include <new>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/c_handle.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/tracking_resource.h"

namespace mesa::internal {

// The tracking table allocates straight from the parent table and accounts the user size and
// scope, so C counts are exact and per scope. A header before each block keeps the size.
struct tracking_table {
  struct header {
    std::size_t size;
    std::uint32_t alignment;
    std::uint32_t scope;
  };
  static constexpr std::size_t kMinHeader = 16;
  static_assert(sizeof(header) <= kMinHeader, "header must fit");

  tracking_table(const mesa_allocator *parent_table, std::string_view name,
                 tracking_resource *parent_tracker) noexcept
      : table{this, &alloc, &realloc, &free, nullptr, nullptr},
        parent(parent_table),
        upstream(parent_table),
        tracker(&upstream, name, parent_tracker) {}

  static tracking_table *from(const mesa_allocator *t) noexcept {
    if (t == nullptr || t->alloc_fn != &alloc) return nullptr;
    return static_cast<tracking_table *>(t->user_data);
  }
  static std::size_t header_bytes(std::size_t alignment) noexcept {
    return alignment > kMinHeader ? alignment : kMinHeader;
  }
  static header *header_of(void *user) noexcept {
    return reinterpret_cast<header *>(static_cast<unsigned char *>(user) - sizeof(header));
  }

  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope) {
    auto *self = static_cast<tracking_table *>(user_data);
    if (!mesa_alloc_alignment_valid(alignment) || alignment > UINT32_MAX) return nullptr;
    if (static_cast<unsigned>(scope) >= MESA_ALLOC_SCOPE_COUNT) scope = MESA_ALLOC_SCOPE_OBJECT;
    const std::size_t head = header_bytes(alignment);
    tracking_resource &t = self->tracker;
    const int index = tracking_shard_index();
    if (size > SIZE_MAX - head || !t.try_charge_limits(size)) {
      t.count_failure(index);
      return nullptr;
    }
    void *base = self->parent->alloc_fn(self->parent->user_data, head + size, head, scope);
    if (base == nullptr) {
      t.uncharge_limits(size);
      t.count_failure(index);
      return nullptr;
    }
    t.count_allocation(index, size, scope);
    void *user = static_cast<unsigned char *>(base) + head;
    *header_of(user) =
        header{size, static_cast<std::uint32_t>(alignment), static_cast<std::uint32_t>(scope)};
    return user;
  }

  static void free(void *user_data, void *ptr) {
    if (ptr == nullptr) return;
    auto *self = static_cast<tracking_table *>(user_data);
    const header h = *header_of(ptr);
    self->parent->free_fn(self->parent->user_data,
                          static_cast<unsigned char *>(ptr) - header_bytes(h.alignment));
    self->tracker.uncharge_limits(h.size);
    self->tracker.count_deallocation(tracking_shard_index(), h.size,
                                     static_cast<mesa_alloc_scope>(h.scope));
  }

  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
    if (size == 0) {
      free(user_data, ptr);
      return nullptr;
    }
    if (!mesa_alloc_alignment_valid(alignment)) return nullptr;
    const header h = *header_of(ptr);
    void *fresh = alloc(user_data, size, h.alignment > alignment ? h.alignment : alignment, scope);
    if (fresh == nullptr) return nullptr;
    std::memcpy(fresh, ptr, h.size < size ? h.size : size);
    free(user_data, ptr);
    return fresh;
  }

  mesa_allocator table;
  const mesa_allocator *parent;
  callback_resource upstream;
  tracking_resource tracker;
};

}  // namespace mesa::internal

using mesa::internal::tracking_table;

namespace {

mesa::fault_resource *fault_of(const mesa_allocator *table) {
  return mesa::internal::c_handle_resource<mesa::fault_resource>(table);
}

}  // namespace

extern "C" {

const mesa_allocator *mesa_tracking_create(const mesa_allocator *parent, const char *name,
                                           const mesa_allocator *parent_tracker) {
  tracking_table *up = nullptr;
  if (parent_tracker != nullptr && (up = tracking_table::from(parent_tracker)) == nullptr)
    return nullptr;
  if (parent == nullptr) parent = mesa_default_allocator();
  void *storage = parent->alloc_fn(parent->user_data, sizeof(tracking_table),
                                   alignof(tracking_table), MESA_ALLOC_SCOPE_OBJECT);
  if (storage == nullptr) return nullptr;
  auto *t = new (storage)
      tracking_table(parent, name != nullptr ? name : "", up != nullptr ? &up->tracker : nullptr);
  return &t->table;
}

void mesa_tracking_destroy(const mesa_allocator *tracker) {
  tracking_table *t = tracking_table::from(tracker);
  if (t == nullptr) return;
  const mesa_allocator *parent = t->parent;
  t->~tracking_table();
  parent->free_fn(parent->user_data, t);
}

int mesa_tracking_get_stats(const mesa_allocator *tracker, mesa_tracking_stats *out) {
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
  }
  return 1;
}

void mesa_tracking_set_limit(const mesa_allocator *tracker, size_t bytes) {
  if (tracking_table *t = tracking_table::from(tracker)) t->tracker.set_limit(bytes);
}

void mesa_tracking_print_report(const mesa_allocator *tracker, FILE *out) {
  if (tracking_table *t = tracking_table::from(tracker)) t->tracker.print_report(out);
}

void mesa_tracking_print_json(const mesa_allocator *tracker, FILE *out) {
  if (tracking_table *t = tracking_table::from(tracker)) t->tracker.print_json(out);
}

const mesa_allocator *mesa_fault_create(const mesa_allocator *parent) {
  return mesa::internal::c_handle_create<mesa::fault_resource>(parent);
}

void mesa_fault_destroy(const mesa_allocator *fault) {
  mesa::internal::c_handle_destroy<mesa::fault_resource>(fault);
}

void mesa_fault_fail_nth(const mesa_allocator *fault, uint64_t n) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_nth(n);
}

void mesa_fault_fail_every(const mesa_allocator *fault, uint64_t n) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_every(n);
}

void mesa_fault_fail_random(const mesa_allocator *fault, double probability, uint64_t seed) {
  if (mesa::fault_resource *f = fault_of(fault)) f->fail_random(probability, seed);
}

uint64_t mesa_fault_attempts(const mesa_allocator *fault) {
  mesa::fault_resource *f = fault_of(fault);
  return f != nullptr ? f->attempts() : 0;
}

int mesa_fault_loop(const mesa_allocator *parent,
                    void (*body)(const mesa_allocator *allocator, void *context), void *context,
                    mesa_fault_loop_result *result) {
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
