#include "mesa_alloc/callback_validator.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <new>
#include <tuple>
#include <utility>
#include <vector>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"

namespace mesa {
namespace {

constexpr const char *kRuleNames[kValidatorRuleCount] = {
    "scope_out_of_range",      "alignment_not_power_of_two", "realloc_alignment_changed",
    "realloc_unknown_pointer", "realloc_freed_pointer",      "free_unknown_pointer",
    "free_freed_pointer",      "internal_type_out_of_range", "internal_total_negative",
    "live_at_checkpoint",      "misaligned_result",          "realloc_zero_returned_block",
    "result_already_live",
};

constexpr const char *kOpNames[] = {"alloc",          "realloc",       "free",
                                    "internal_alloc", "internal_free", "checkpoint"};

bool scope_valid(int scope) noexcept { return scope >= 0 && scope < MESA_ALLOC_SCOPE_COUNT; }

callback_validator *self_of(void *user_data) noexcept {
  return static_cast<callback_validator *>(user_data);
}

}  // namespace

const char *validator_rule_name(validator_rule rule) noexcept {
  const int i = static_cast<int>(rule);
  return i >= 0 && i < kValidatorRuleCount ? kRuleNames[i] : "unknown_rule";
}

const char *validator_op_name(validator_op op) noexcept {
  const unsigned i = static_cast<unsigned>(op);
  return i < sizeof(kOpNames) / sizeof(kOpNames[0]) ? kOpNames[i] : "unknown_op";
}

int validator_violation::format(char *buffer, std::size_t buffer_size) const noexcept {
  // What `expected` is, for the rules that have one.
  const char *what = nullptr;
  switch (rule) {
    case validator_rule::realloc_alignment_changed:
    case validator_rule::misaligned_result:
      what = " expected alignment ";
      break;
    case validator_rule::free_freed_pointer:
    case validator_rule::realloc_freed_pointer:
      what = " freed by #";
      break;
    case validator_rule::result_already_live:
      what = " live since #";
      break;
    case validator_rule::live_at_checkpoint:
      what = " allocated by #";
      break;
    case validator_rule::internal_total_negative:
      what = " total now -";
      break;
    default:
      break;
  }
  const int n =
      std::snprintf(buffer, buffer_size,
                    "%s in %s: %s(ptr=%p, size=%zu, alignment=%zu, scope=%d, type=%d) #%" PRIu64,
                    validator_rule_name(rule), call.context[0] ? call.context : "(no call)",
                    validator_op_name(call.op), call.ptr, call.size, call.alignment, call.scope,
                    call.type, call.sequence);
  if (n < 0) return n;
  int total = n;
  // Appends to what is written so far, as snprintf would (counting what does not fit).
  const auto append = [&](const char *format, auto... values) {
    const std::size_t used = static_cast<std::size_t>(total) < buffer_size
                                 ? static_cast<std::size_t>(total)
                                 : buffer_size;
    const int m = std::snprintf(buffer == nullptr ? nullptr : buffer + used, buffer_size - used,
                                format, values...);
    total = m < 0 ? m : total + m;
  };
  if (result != nullptr) append(" returned %p", result);
  if (what != nullptr && total >= 0) append("%s%zu", what, expected);
  return total;
}

callback_validator::callback_validator(const mesa_allocator *upstream,
                                       std::pmr::memory_resource *bookkeeping)
    : upstream_(upstream != nullptr ? upstream : mesa_default_allocator()),
      libc_(mesa_libc_allocator()),
      bookkeeping_(bookkeeping != nullptr ? bookkeeping : &libc_),
      table_{this,
             &callback_validator::alloc,
             &callback_validator::realloc,
             &callback_validator::free,
             &callback_validator::internal_alloc,
             &callback_validator::internal_free},
      live_(bookkeeping_),
      freed_(bookkeeping_),
      taken_(bookkeeping_),
      violations_(bookkeeping_) {
  // As every wrapper of a table: refused at construction, not a call to address 0 later.
  if (const char *missing = internal::missing_table_function(upstream_)) {
    internal::report_incomplete_table("callback_validator", missing);
    std::abort();
  }
}

void callback_validator::set_call(const char *label) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  context_ = label != nullptr ? label : "";
}

validator_call callback_validator::make_call(validator_op op, int scope, int type, const void *ptr,
                                             std::size_t size, std::size_t alignment) noexcept {
  return validator_call{op, scope, type, ptr, size, alignment, sequence_++, context_};
}

void callback_validator::set_listener(listener fn, void *context) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  listener_ = fn;
  listener_context_ = context;
}

void callback_validator::set_line_listener(void (*fn)(void *context, const char *line),
                                           void *context) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  line_listener_ = fn;
  line_listener_context_ = context;
  listener_ = fn != nullptr ? &callback_validator::forward_line : nullptr;
  listener_context_ = this;
}

// set_line_listener's listener: the line to the function given, whole (a long set_call label
// makes it longer than the buffer on the stack: then it is formatted again into one from the
// bookkeeping, and only if that has no memory is it cut).
void callback_validator::forward_line(void *self, const validator_violation &violation) {
  auto *v = static_cast<callback_validator *>(self);
  char line[512];
  const int length = violation.format(line, sizeof line);
  if (length >= static_cast<int>(sizeof line)) {
    try {
      std::pmr::vector<char> whole(static_cast<std::size_t>(length) + 1, v->bookkeeping_);
      violation.format(whole.data(), whole.size());
      v->line_listener_(v->line_listener_context_, whole.data());
      return;
    } catch (...) {
    }
  }
  v->line_listener_(v->line_listener_context_, line);
}

// The listener first: it hears of the violation even when the bookkeeping cannot store it.
void callback_validator::record(validator_rule rule, const validator_call &call,
                                std::size_t expected, const void *result) {
  const validator_violation v{rule, call, expected, result};
  if (listener_ != nullptr) listener_(listener_context_, v);
  // Called from the table's C functions: an exception must not leave through them.
  try {
    violations_.push_back(v);
  } catch (...) {
    static const char line[] =
        "mesa_alloc: callback_validator: no memory to keep a violation; it is not in the list\n";
    internal::write_to_stderr(line, sizeof line - 1);
  }
}

// Scope and alignment of an allocating request; false when it must not reach upstream.
bool callback_validator::check_request(const validator_call &call) {
  bool ok = true;
  if (!scope_valid(call.scope)) {
    record(validator_rule::scope_out_of_range, call, 0);
    ok = false;
  }
  if (!mesa_alloc_alignment_valid(call.alignment)) {
    record(validator_rule::alignment_not_power_of_two, call, 0);
    ok = false;
  }
  return ok;
}

// Records a block the table returned; checks it against `alignment` (what the table was asked
// for: a realloc forwards the block's own) and against the live blocks, and remembers
// `alignment` as the block's own (what later reallocs must repeat). A block handed out twice is
// recorded once, as its latest owner has it. `reuse`, if not empty, is the entry of the block a
// realloc moved (no allocation then). False when the bookkeeping has no memory for the entry
// (reported): the validator cannot check the block, and a fresh one goes back upstream.
bool callback_validator::note_result(const validator_call &call, void *result,
                                     std::size_t alignment, int scope, live_map::node_type reuse) {
  if ((reinterpret_cast<std::uintptr_t>(result) & (alignment - 1)) != 0)
    record(validator_rule::misaligned_result, call, alignment, result);
  freed_.erase(result);
  const block b{call.size, alignment, scope, call.sequence, std::thread::id()};
  live_map::iterator it;
  bool fresh;
  try {
    if (reuse.empty()) {
      std::tie(it, fresh) = live_.try_emplace(result, b);
    } else {
      reuse.key() = result;
      reuse.mapped() = b;
      auto inserted = live_.insert(std::move(reuse));
      it = inserted.position;
      fresh = inserted.inserted;
    }
  } catch (...) {
    report_unrecorded();
    return false;
  }
  if (!fresh) {
    if (it->second.reallocating != std::thread::id()) {
      // A realloc of it is with upstream, which may have let it go already: another thread's,
      // or this thread's own when upstream allocates through this table while it serves it
      // (and gets back the block it has just moved from). The realloc decides when it returns.
      try {
        taken_.insert_or_assign(result, taken_block{call, it->second.sequence});
      } catch (...) {
        record(validator_rule::result_already_live, call, it->second.sequence, result);
      }
    } else {
      record(validator_rule::result_already_live, call, it->second.sequence, result);
    }
    live_bytes_[it->second.scope] -= it->second.size;
    it->second = b;
  }
  live_bytes_[scope] += call.size;
  return true;
}

void callback_validator::report_unrecorded() noexcept {
  static const char line[] =
      "mesa_alloc: callback_validator: no memory to record a block; it is not checked\n";
  internal::write_to_stderr(line, sizeof line - 1);
}

// Remembers that `ptr` was freed by call `sequence` (for the double-free rules) unless a later
// call already has it live. Without memory for the entry, a second free of it is reported as a
// free of an unknown pointer instead.
void callback_validator::remember_freed(const void *ptr, std::uint64_t sequence) noexcept {
  if (live_.count(ptr) != 0) return;
  try {
    freed_[ptr] = sequence;
  } catch (...) {
    freed_.erase(ptr);
  }
}

// The live entry of `ptr`. Without one, records `freed_rule` (an earlier call freed it) or
// `unknown_rule` (it was never handed out) and returns live_.end(). A block another thread is
// reallocating is not this caller's to touch (a race in the driver): recorded as unknown. A mark
// of the calling thread's own is left from a realloc that upstream left by an exception or a
// longjmp, with the block still live: it is dropped.
callback_validator::live_map::iterator callback_validator::find_live(const validator_call &call,
                                                                     const void *ptr,
                                                                     validator_rule freed_rule,
                                                                     validator_rule unknown_rule) {
  const auto it = live_.find(ptr);
  if (it != live_.end()) {
    const std::thread::id reallocating = it->second.reallocating;
    if (reallocating == std::thread::id() || reallocating == std::this_thread::get_id()) {
      it->second.reallocating = std::thread::id();
      return it;
    }
    record(unknown_rule, call, 0);
    return live_.end();
  }
  const auto freed = freed_.find(ptr);
  if (freed != freed_.end()) {
    record(freed_rule, call, freed->second);
  } else {
    record(unknown_rule, call, 0);
  }
  return it;
}

// The live entry of `ptr` if this thread's realloc marked it, else live_.end().
callback_validator::live_map::iterator callback_validator::marked_by_this_thread(const void *ptr) {
  const auto it = live_.find(ptr);
  if (it == live_.end() || it->second.reallocating != std::this_thread::get_id())
    return live_.end();
  return it;
}

// The table's functions check and record under the lock and call upstream without it, so an
// upstream that allocates through this validator's table (an application's allocator that
// keeps its own records through the driver's default table, say) does not wait for itself.
// A block being reallocated stays in the live table for the length of the call, marked with the
// calling thread (see find_live), so a realloc that upstream leaves by an exception or a longjmp
// leaves the block live and the driver's later free of it is a correct one: from any thread
// after an exception (the mark is dropped on the way out), from the same thread after a longjmp
// (nothing runs on the way out; another thread's free is then reported as a race).

void *callback_validator::alloc(void *user_data, std::size_t size, std::size_t alignment,
                                mesa_alloc_scope scope) {
  callback_validator *self = self_of(user_data);
  validator_call call{};
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    call = self->make_call(validator_op::alloc, scope, -1, nullptr, size, alignment);
    if (!self->check_request(call)) return nullptr;
  }
  const mesa_allocator *up = self->upstream_;
  void *p;
  {
    const internal::foreign_call upstream_call(up);
    p = up->alloc_fn(up->user_data, size, alignment, scope);
  }
  return self->keep(call, p, alignment, scope);
}

// A fresh block from upstream, recorded; given back if the bookkeeping cannot record it.
void *callback_validator::keep(const validator_call &call, void *result, std::size_t alignment,
                               int scope) {
  if (result == nullptr) return nullptr;
  bool kept;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    kept = note_result(call, result, alignment, scope);
  }
  if (kept) return result;
  const internal::caller_set_aside aside;  // inside the C API call that allocated it
  upstream_->free_fn(upstream_->user_data, result);
  return nullptr;
}

void *callback_validator::realloc(void *user_data, void *ptr, std::size_t size,
                                  std::size_t alignment, mesa_alloc_scope scope) {
  callback_validator *self = self_of(user_data);
  const mesa_allocator *up = self->upstream_;
  validator_call call{};
  std::size_t old_alignment = 0;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    call = self->make_call(validator_op::realloc, scope, -1, ptr, size, alignment);
    if (!self->check_request(call)) return nullptr;
    if (ptr != nullptr) {
      auto it = self->find_live(call, ptr, validator_rule::realloc_freed_pointer,
                                validator_rule::realloc_unknown_pointer);
      if (it == self->live_.end()) return nullptr;  // never hand a foreign pointer to upstream
      old_alignment = it->second.alignment;
      if (alignment != old_alignment)
        self->record(validator_rule::realloc_alignment_changed, call, old_alignment);
      it->second.reallocating = std::this_thread::get_id();
      self->taken_.erase(ptr);  // one left by a realloc that upstream left by a longjmp
    }
  }
  const internal::foreign_call upstream_call(up);
  if (ptr == nullptr) {
    return self->keep(call, up->realloc_fn(up->user_data, nullptr, size, alignment, scope),
                      alignment, scope);
  }
  // Upstream gets the block's own alignment, which the result must keep. An exception out of it
  // leaves the block as it was: the mark goes (a longjmp leaves it, for find_live to drop).
  void *result;
  try {
    result = up->realloc_fn(up->user_data, ptr, size, old_alignment, scope);
  } catch (...) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    const auto it = self->marked_by_this_thread(ptr);
    if (it != self->live_.end()) it->second.reallocating = std::thread::id();
    throw;
  }
  std::lock_guard<std::mutex> lock(self->mutex_);
  // The entry is still ours unless upstream handed ptr to another call meanwhile: correct if it
  // moved the block (it freed ptr first), a block handed out twice if it kept it or failed.
  // Handed to another call, the block is that call's now, and a free of it since is later than
  // this realloc's: the double-free rules keep naming that one.
  bool taken_meanwhile = false;
  if (const auto taken = self->taken_.find(ptr); taken != self->taken_.end()) {
    const taken_block t = taken->second;
    self->taken_.erase(taken);
    taken_meanwhile = true;
    if (result == ptr || (size != 0 && result == nullptr))
      self->record(validator_rule::result_already_live, t.by, t.live_since, ptr);
  }
  live_map::node_type entry;
  const auto it = self->marked_by_this_thread(ptr);
  const bool ours = it != self->live_.end();
  if (size != 0 && result == nullptr) {  // the original is untouched and stays live
    if (ours) it->second.reallocating = std::thread::id();
    return nullptr;
  }
  if (ours) {
    self->live_bytes_[it->second.scope] -= it->second.size;
    entry = self->live_.extract(it);
  }
  if (size == 0) {  // frees ptr; must return NULL
    if (!taken_meanwhile) self->remember_freed(ptr, call.sequence);
    if (result != nullptr) {
      self->record(validator_rule::realloc_zero_returned_block, call, 0, result);
      self->note_result(call, result, old_alignment, scope, std::move(entry));
    }
    return result;
  }
  if (result != ptr && !taken_meanwhile) self->remember_freed(ptr, call.sequence);
  // The block keeps its alignment. If it cannot be recorded it stays the driver's, unchecked.
  self->note_result(call, result, old_alignment, scope, std::move(entry));
  return result;
}

void callback_validator::free(void *user_data, void *ptr) {
  if (ptr == nullptr) return;
  callback_validator *self = self_of(user_data);
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    const validator_call call = self->make_call(validator_op::free, -1, -1, ptr, 0, 0);
    auto it = self->find_live(call, ptr, validator_rule::free_freed_pointer,
                              validator_rule::free_unknown_pointer);
    if (it == self->live_.end()) return;
    self->live_bytes_[it->second.scope] -= it->second.size;
    self->live_.erase(it);
    self->remember_freed(ptr, call.sequence);
  }
  const mesa_allocator *up = self->upstream_;
  up->free_fn(up->user_data, ptr);
}

bool callback_validator::note_internal(const validator_call &call, std::int64_t delta) {
  bool ok = true;
  if (!scope_valid(call.scope)) {
    record(validator_rule::scope_out_of_range, call, 0);
    ok = false;
  }
  if (call.type < 0 || call.type >= kInternalTypes) {
    record(validator_rule::internal_type_out_of_range, call, 0);
    ok = false;
  }
  if (!ok) return false;
  std::int64_t &total = internal_[call.type][call.scope];
  total += delta;
  if (total < 0)
    record(validator_rule::internal_total_negative, call, static_cast<std::size_t>(-total));
  return true;
}

void callback_validator::internal_alloc(void *user_data, std::size_t size, int type,
                                        mesa_alloc_scope scope) {
  callback_validator *self = self_of(user_data);
  bool valid;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    const validator_call call =
        self->make_call(validator_op::internal_alloc, scope, type, nullptr, size, 0);
    valid = self->note_internal(call, static_cast<std::int64_t>(size));
  }
  const mesa_allocator *up = self->upstream_;
  if (valid && up->internal_alloc_fn != nullptr) {
    up->internal_alloc_fn(up->user_data, size, type, scope);
  }
}

void callback_validator::internal_free(void *user_data, std::size_t size, int type,
                                       mesa_alloc_scope scope) {
  callback_validator *self = self_of(user_data);
  bool valid;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    const validator_call call =
        self->make_call(validator_op::internal_free, scope, type, nullptr, size, 0);
    valid = self->note_internal(call, -static_cast<std::int64_t>(size));
  }
  const mesa_allocator *up = self->upstream_;
  if (valid && up->internal_free_fn != nullptr) {
    up->internal_free_fn(up->user_data, size, type, scope);
  }
}

std::size_t callback_validator::checkpoint(unsigned scope_mask) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t found = 0;
  for (const auto &[ptr, b] : live_) {
    if ((scope_mask & (1u << b.scope)) == 0) continue;
    record(validator_rule::live_at_checkpoint,
           validator_call{validator_op::checkpoint, b.scope, -1, ptr, b.size, b.alignment,
                          sequence_, context_},
           static_cast<std::size_t>(b.sequence));
    ++found;
  }
  return found;
}

std::size_t callback_validator::violation_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return violations_.size();
}

validator_violation callback_validator::violation(std::size_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return violations_.at(index);
}

std::size_t callback_validator::live_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_.size();
}

std::size_t callback_validator::live_bytes(mesa_alloc_scope scope) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return scope_valid(scope) ? live_bytes_[scope] : 0;
}

std::int64_t callback_validator::internal_total(int type, mesa_alloc_scope scope) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (type < 0 || type >= kInternalTypes || !scope_valid(scope)) return 0;
  return internal_[type][scope];
}

}  // namespace mesa

namespace mesa {

callback_validator *callback_validator::from_table(const mesa_allocator *table) noexcept {
  if (table == nullptr || table->alloc_fn != &callback_validator::alloc) return nullptr;
  return static_cast<callback_validator *>(table->user_data);
}

}  // namespace mesa

using mesa::callback_validator;

extern "C" {

const mesa_allocator *mesa_validator_create(const mesa_allocator *upstream) {
  upstream = mesa::internal::parent_or_default(upstream, "mesa_validator_create");
  if (upstream == nullptr) return nullptr;
  const mesa_allocator *libc = mesa_libc_allocator();
  void *storage = libc->alloc_fn(libc->user_data, sizeof(callback_validator),
                                 alignof(callback_validator), MESA_ALLOC_SCOPE_OBJECT);
  if (storage == nullptr) return nullptr;
  try {
    return (new (storage) callback_validator(upstream))->table();
  } catch (...) {
    libc->free_fn(libc->user_data, storage);
    return nullptr;
  }
}

void mesa_validator_destroy(const mesa_allocator *validator) {
  callback_validator *v = callback_validator::from_table(validator);
  if (v == nullptr) return;
  v->~callback_validator();
  const mesa_allocator *libc = mesa_libc_allocator();
  libc->free_fn(libc->user_data, v);
}

void mesa_validator_set_call(const mesa_allocator *validator, const char *label) {
  if (callback_validator *v = callback_validator::from_table(validator)) v->set_call(label);
}

size_t mesa_validator_checkpoint(const mesa_allocator *validator, unsigned scope_mask) {
  callback_validator *v = callback_validator::from_table(validator);
  return v != nullptr ? v->checkpoint(scope_mask) : 0;
}

size_t mesa_validator_violation_count(const mesa_allocator *validator) {
  callback_validator *v = callback_validator::from_table(validator);
  return v != nullptr ? v->violation_count() : 0;
}

int mesa_validator_format(const mesa_allocator *validator, size_t index, char *buffer,
                          size_t buffer_size) {
  callback_validator *v = callback_validator::from_table(validator);
  if (v == nullptr || index >= v->violation_count()) return -1;
  return v->violation(index).format(buffer, buffer != nullptr ? buffer_size : 0);
}

void mesa_validator_set_listener(const mesa_allocator *validator,
                                 void (*fn)(void *context, const char *line), void *context) {
  callback_validator *v = callback_validator::from_table(validator);
  if (v != nullptr) v->set_line_listener(fn, context);
}

}  // extern "C"
