// Internal: the C tables behind debug_resources.h (and the MESA_ALLOC_DEBUG default), each a
// layer over a parent table that C code allocates through. Not part of the public API.
//
// tracking_table: accounts exact user sizes per scope (a 16-byte header keeps the size for
//   unsized frees) and allocates straight from the parent table.
// debug_table: a debug_resource over the parent; its own table() is the handle (no extra header).
// logging_table: logs each call and forwards it unchanged to the parent (no header).
// fault_gate_table: MESA_ALLOC_DEBUG's fail=N, on top of the stack: decides each of the
//   program's calls and forwards the others unchanged to the parent (no header).
// The first three forward the internal-allocation notifications to the parent's, unlogged and
// uncounted, once their create function has called forward_notifications
// (forwarded_notifications.h); the fault gate sits on MESA_ALLOC_DEBUG's stack over libc, which
// has none.
#ifndef MESA_ALLOC_INTERNAL_C_TABLES_H_
#define MESA_ALLOC_INTERNAL_C_TABLES_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string_view>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/forwarded_notifications.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/known_scope.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/resource_cast.h"
#include "mesa_alloc/internal/tagged_header.h"
#include "mesa_alloc/logging_resource.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/tracking_resource.h"

namespace mesa::internal {

// The tracking table allocates straight from the parent table and accounts the user size and
// scope, so C counts are exact and per scope. A header before each block keeps the size, and
// the tag of the table that made it (odd; even once freed): a block freed or reallocated
// through another table, one never allocated by a tracking table, or one freed already is
// reported and left alone, instead of being uncharged from a budget a second time or from the
// wrong one, and handed to the wrong parent; while the header is mapped (README: "Header checks
// need the header mapped").
struct tracking_table {
  using header = tagged_header;

  tracking_table(const mesa_allocator *parent_table, std::string_view name,
                 tracking_resource *parent_tracker) noexcept
      : table{this, &alloc, &realloc, &free, nullptr, nullptr},
        parent(parent_table),
        upstream(parent_table),
        tracker(&upstream, name, parent_tracker),
        owner_tag(header_tag(this)) {}

  // Gives the table the parent's notifications, forwarded (`where`: the create function).
  void forward_notifications(const char *where) noexcept {
    const notifications n = forwarded_notifications<&parent_of>(parent, where);
    table.internal_alloc_fn = n.internal_alloc;
    table.internal_free_fn = n.internal_free;
  }
  static const mesa_allocator *parent_of(void *user_data) noexcept {
    return static_cast<tracking_table *>(user_data)->parent;
  }

  header make_header(std::size_t size, std::size_t alignment, mesa_alloc_scope scope) const {
    return header{size, owner_tag, static_cast<std::uint8_t>(__builtin_ctzll(alignment)),
                  static_cast<std::uint8_t>(scope), 0};
  }
  // Claims the block for a free or a realloc if this table made it and has not freed it
  // (tagged_header.h: of two threads freeing the block at once exactly one gets it; a read, a
  // check and a write let both through to the parent, and a threads probe saw glibc abort on
  // the second free). `out` is then the block's header. Otherwise reports `what` and returns
  // false.
  bool claim(void *ptr, const char *what, header *out) const noexcept {
    const tag_claim claim = claim_tagged(ptr, owner_tag, out);
    if (claim == tag_claim::claimed) return true;
    if (claim == tag_claim::freed_already) {
      std::fprintf(stderr,
                   "mesa_alloc: double free at %p: %s through tracking table '%s', which freed it "
                   "already; the block is left alone\n",
                   ptr, what, tracker.name().data());
    } else {
      std::fprintf(
          stderr,
          "mesa_alloc: allocator mismatch at %p: %s through tracking table '%s', which did "
          "not allocate it (or freed it already); the block is left alone\n",
          ptr, what, tracker.name().data());
    }
    return false;
  }

  static tracking_table *from(const mesa_allocator *t) noexcept {
    if (t == nullptr || t->alloc_fn != &alloc) return nullptr;
    return static_cast<tracking_table *>(t->user_data);
  }

  // Scopes out of range are counted as OBJECT.
  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope) {
    return allocate(static_cast<tracking_table *>(user_data), size, alignment, scope, 0);
  }

  // `growing_from`: the size of the block a growing realloc moves from (0 for an allocation),
  // which stays charged until the copy is made; the refusal line says so.
  static void *allocate(tracking_table *self, std::size_t size, std::size_t alignment,
                        mesa_alloc_scope scope, std::size_t growing_from) {
    if (!mesa_alloc_alignment_valid(alignment)) {
      report_invalid_alignment("mesa_tracking alloc", alignment);
      return nullptr;
    }
    scope = known_scope(scope);
    const std::size_t head = tagged_header_bytes(alignment);
    tracking_resource &t = self->tracker;
    const int index = tracking_shard_index();
    // An alignment over 4 GiB (a header that large) fails like an oversized request; no size
    // over PTRDIFF_MAX reaches the parent (as from the pmr layers, request_limit.h).
    if (alignment > UINT32_MAX || size > kMaxRequestBytes - head) {
      t.count_failure(index, scope);
      return nullptr;
    }
    if (!t.try_charge_limits(size)) {
      if (t.count_refusal(index, scope) &&
          self->announce_refusal.exchange(false, std::memory_order_relaxed))
        self->announce(size, growing_from);
      return nullptr;
    }
    void *base;
    {
      const foreign_call call(self->parent);
      base = checked_alloc(self->parent, head + size, head, scope, "mesa_tracking alloc");
    }
    if (base == nullptr) {
      t.uncharge_limits(size);
      t.count_failure(index, scope);
      return nullptr;
    }
    t.note_charged_peaks();
    t.count_allocation_up(index, size, scope);
    void *user = static_cast<unsigned char *>(base) + head;
    *tagged_header_of(user) = self->make_header(size, alignment, scope);
    return user;
  }

  static void free(void *user_data, void *ptr) {
    if (ptr == nullptr) return;
    auto *self = static_cast<tracking_table *>(user_data);
    header h;
    if (self->claim(ptr, "freed", &h)) self->release(ptr, h);
  }

  // Gives a claimed block to the parent and uncounts it.
  void release(void *ptr, const header &h) noexcept {
    parent->free_fn(parent->user_data,
                    static_cast<unsigned char *>(ptr) - tagged_header_bytes(h.alignment()));
    tracker.uncharge_limits(h.size);
    tracker.count_deallocation_up(tracking_shard_index(), h.size,
                                  static_cast<mesa_alloc_scope>(h.scope));
  }

  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    if (!mesa_alloc_alignment_valid(alignment)) {
      report_invalid_alignment("mesa_tracking realloc", alignment);
      return nullptr;
    }
    if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
    if (size == 0) {
      const caller_set_aside aside;
      free(user_data, ptr);
      return nullptr;
    }
    auto *self = static_cast<tracking_table *>(user_data);
    header h;
    if (!self->claim(ptr, "reallocated", &h)) return nullptr;
    if (size <= h.size && alignment <= h.alignment()) {
      // Shrinking keeps the block: no second block, so a full budget does not refuse it.
      // Counted as a free of the old size and an allocation of the new one, as a move is.
      scope = known_scope(scope);
      tracking_resource &t = self->tracker;
      const int index = tracking_shard_index();
      t.uncharge_limits(h.size - size);
      t.count_deallocation_up(index, h.size, static_cast<mesa_alloc_scope>(h.scope));
      t.count_allocation_up(index, size, scope);
      unclaim_tagged(ptr, self->make_header(size, h.alignment(), scope));
      return ptr;
    }
    // A growing realloc holds both blocks until the copy is made, and a budget counts both.
    void *fresh =
        allocate(self, size, h.alignment() > alignment ? h.alignment() : alignment, scope, h.size);
    if (fresh == nullptr) {
      unclaim_tagged(ptr, h);  // a failed realloc leaves the block as it was
      return nullptr;
    }
    std::memcpy(fresh, ptr, h.size < size ? h.size : size);
    const caller_set_aside aside;
    self->release(ptr, h);
    return fresh;
  }

  // One line on stderr for the first allocation the limit refuses (MESA_ALLOC_DEBUG=limit=N,
  // where nothing else would say why allocations fail), after the line naming the library whose
  // copy of mesa_alloc refused (before_debug_report: two drivers may each carry one). Under a
  // debug layer both sizes it gives are the layer's blocks, larger than what the program asked
  // for, and the line says so.
  [[gnu::noinline]] void announce(std::size_t size, std::size_t growing_from) const noexcept {
    before_debug_report(false);
    char what[96];
    if (growing_from == 0)
      std::snprintf(what, sizeof what, "an allocation of %zu bytes", size);
    else
      std::snprintf(what, sizeof what, "a realloc from %zu to %zu bytes", growing_from, size);
    std::fprintf(stderr,
                 "mesa_alloc: MESA_ALLOC_DEBUG: limit=%zu refused %s (%zu in use%s%s); later "
                 "refusals are only counted\n",
                 tracker.limit(), what, tracker.charged_.load(std::memory_order_relaxed),
                 growing_from != 0 ? ", the old block included: a realloc that "
                                     "moves the block holds both until the copy is made"
                                   : "",
                 debug_layer_above ? "; both sizes are the debug layer's blocks, its headers and "
                                     "padding included"
                                   : "");
  }

  mesa_allocator table;
  const mesa_allocator *parent;
  callback_resource upstream;
  tracking_resource tracker;
  const std::uint32_t owner_tag;              // from this table's address, odd (never 0)
  std::atomic<bool> announce_refusal{false};  // set by MESA_ALLOC_DEBUG; cleared when used
  bool debug_layer_above = false;             // MESA_ALLOC_DEBUG stacked a debug layer on it
};

// A debug resource over a parent table, in one block from that parent. The parent and its pmr
// view come first (a base), so they are built before the resource and outlive it.
struct debug_table_upstream {
  explicit debug_table_upstream(const mesa_allocator *parent_table) noexcept
      : parent(parent_table), parent_resource(parent_table) {}
  const mesa_allocator *parent;
  callback_resource parent_resource;
};

// The C handler of a debug table (mesa_debug_options::handler), called with the error in C
// form. A base too, so the resource can point its handler context at it.
struct debug_table_handler {
  mesa_debug_handler handler = nullptr;
  void *context = nullptr;

  static void forward(const debug_error &error, void *self) noexcept;
};

struct debug_table final : debug_table_upstream, debug_table_handler, debug_resource {
  debug_table(const mesa_allocator *parent_table, const debug_options &options,
              mesa_debug_handler c_handler = nullptr, void *c_context = nullptr) noexcept
      : debug_table_upstream(parent_table),
        debug_table_handler{c_handler, c_context},
        debug_resource(&parent_resource, with_handler(options, c_handler, this)) {}

  // NULL unless `table` is a debug_table's (a debug_resource a program built is not one).
  static debug_table *from(const mesa_allocator *table) noexcept {
    const debug_resource *r = debug_resource::from_table(table);
    return r != nullptr ? const_cast<debug_table *>(resource_cast<debug_table>(*r)) : nullptr;
  }

  // Gives the table the parent's notifications, forwarded (`where`: the create function).
  void forward_notifications(const char *where) noexcept {
    const notifications n = forwarded_notifications<&parent_of>(parent, where);
    set_notifications(n.internal_alloc, n.internal_free);
  }

 private:
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    if (answer_resource_query(other, this)) return false;
    return this == &other;
  }
  // The table's user_data is the debug_resource base; only a debug_table forwards.
  static const mesa_allocator *parent_of(void *user_data) noexcept {
    return static_cast<debug_table *>(static_cast<debug_resource *>(user_data))->parent;
  }
  static debug_options with_handler(debug_options options, mesa_debug_handler c_handler,
                                    debug_table_handler *self) noexcept {
    if (c_handler != nullptr) {
      options.handler = &debug_table_handler::forward;
      options.handler_context = self;
    }
    return options;
  }
};

struct logging_table {
  logging_table(const mesa_allocator *parent_table, const char *path, bool record_stacks) noexcept
      : table{this, &alloc, &realloc, &free, nullptr, nullptr},
        parent(parent_table),
        file(path),
        upstream(parent_table),
        logging(&upstream, &file, record_stacks) {}

  static logging_table *from(const mesa_allocator *t) noexcept {
    if (t == nullptr || t->alloc_fn != &alloc) return nullptr;
    return static_cast<logging_table *>(t->user_data);
  }

  // Gives the table the parent's notifications, forwarded and not logged (the trace has no
  // record for them); `where`: the create function.
  void forward_notifications(const char *where) noexcept {
    const notifications n = forwarded_notifications<&parent_of>(parent, where);
    table.internal_alloc_fn = n.internal_alloc;
    table.internal_free_fn = n.internal_free;
  }
  static const mesa_allocator *parent_of(void *user_data) noexcept {
    return static_cast<logging_table *>(user_data)->parent;
  }

  // Trace order is event order for every address: a free is logged before the parent frees;
  // a new block is logged after the parent returns it, under a shared hold of reuse_lock; and a
  // realloc, whose parent call may free the old block before the event is logged, holds
  // reuse_lock exclusively across both, so no other thread can be handed (and log) the old
  // address in between.
  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope) {
    auto *self = static_cast<logging_table *>(user_data);
    const void *caller = api_call::caller_or(__builtin_return_address(0));
    if (!self->alignment_valid("mesa_logging alloc", size, alignment, scope, caller))
      return nullptr;
    return self->logged_alloc(size, alignment, scope, caller);
  }

  // A bad alignment is refused here, as every table of the library refuses it, rather than
  // handed to the parent (an application's table might not check); it is logged as a failure.
  bool alignment_valid(const char *where, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope, const void *caller) noexcept {
    if (mesa_alloc_alignment_valid(alignment)) return true;
    report_invalid_alignment(where, alignment);
    logging.record(trace_op::failed, nullptr, nullptr, size, alignment, scope, caller);
    return false;
  }

  // `caller`: the entry point's return address, where the call site starts.
  void *logged_alloc(std::size_t size, std::size_t alignment, mesa_alloc_scope scope,
                     const void *caller) {
    std::shared_lock<std::shared_mutex> hold(reuse_lock);
    void *p;
    {
      const foreign_call call(parent);
      p = parent->alloc_fn(parent->user_data, size, alignment, scope);
    }
    logging.record(p != nullptr ? trace_op::alloc : trace_op::failed, p, nullptr, size, alignment,
                   scope, caller);
    return p;
  }

  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    auto *self = static_cast<logging_table *>(user_data);
    const void *caller = api_call::caller_or(__builtin_return_address(0));
    if (!self->alignment_valid("mesa_logging realloc", size, alignment, scope, caller))
      return nullptr;
    if (ptr == nullptr) return self->logged_alloc(size, alignment, scope, caller);
    if (size == 0) {  // a free: logged first, as free() does
      self->logging.record(trace_op::free, ptr, nullptr, 0, 0, scope);
      const foreign_call call(self->parent);
      return self->parent->realloc_fn(self->parent->user_data, ptr, 0, alignment, scope);
    }
    std::unique_lock<std::shared_mutex> hold(self->reuse_lock);
    void *p;
    {
      const foreign_call call(self->parent);
      p = self->parent->realloc_fn(self->parent->user_data, ptr, size, alignment, scope);
    }
    self->logging.record(p != nullptr ? trace_op::realloc : trace_op::failed, p, ptr, size,
                         alignment, scope, caller);
    return p;
  }

  static void free(void *user_data, void *ptr) {
    if (ptr == nullptr) return;
    auto *self = static_cast<logging_table *>(user_data);
    // Logged first: once freed, another thread may get the same address.
    self->logging.record(trace_op::free, ptr, nullptr, 0, 0, MESA_ALLOC_SCOPE_OBJECT);
    self->parent->free_fn(self->parent->user_data, ptr);
  }

  mesa_allocator table;
  const mesa_allocator *parent;
  trace_file file;
  callback_resource upstream;
  logging_resource logging;
  std::shared_mutex reuse_lock;
};

// Fault injection where the program's calls enter (MESA_ALLOC_DEBUG's fail=N sits on top of
// the stack): each alloc, and each realloc to a non-zero size (a shrinking one included, as
// libc's may move the block too), is one attempt of `faults`, whatever the layers below do with
// it (the debug layer moves a block, the tracking layer shrinks one in place, a budget refuses),
// and a failed attempt returns NULL before any layer sees the call, so a reallocated block is
// left untouched. A request no block can satisfy is not an attempt (as for fault_resource): the
// layers below refuse it with their line.
struct fault_gate_table {
  explicit fault_gate_table(const mesa_allocator *parent_table) noexcept
      : table{this, &alloc, &realloc, &free, nullptr, nullptr},
        parent(parent_table),
        upstream(parent_table),
        faults(&upstream) {}

  // The gate behind `t`; null for null or a table of another kind.
  static fault_gate_table *from(const mesa_allocator *t) noexcept {
    if (t == nullptr || t->alloc_fn != &alloc) return nullptr;
    return static_cast<fault_gate_table *>(t->user_data);
  }

  bool fails(std::size_t size, std::size_t alignment) noexcept {
    return mesa_alloc_alignment_valid(alignment) && size <= kMaxRequestBytes &&
           faults.should_fail();
  }

  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope) {
    auto *self = static_cast<fault_gate_table *>(user_data);
    if (self->fails(size, alignment)) return nullptr;
    const foreign_call call(self->parent);
    return self->parent->alloc_fn(self->parent->user_data, size, alignment, scope);
  }

  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    auto *self = static_cast<fault_gate_table *>(user_data);
    if ((ptr == nullptr || size != 0) && self->fails(size, alignment)) return nullptr;
    const foreign_call call(self->parent);
    return self->parent->realloc_fn(self->parent->user_data, ptr, size, alignment, scope);
  }

  static void free(void *user_data, void *ptr) {
    auto *self = static_cast<fault_gate_table *>(user_data);
    self->parent->free_fn(self->parent->user_data, ptr);
  }

  mesa_allocator table;
  const mesa_allocator *parent;
  callback_resource upstream;  // never allocated from: the calls go to `parent` unchanged
  fault_resource faults;       // numbers the attempts and decides them
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_C_TABLES_H_
