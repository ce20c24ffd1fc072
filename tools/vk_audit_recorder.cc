#include "tools/vk_audit_recorder.h"

#include <algorithm>
#include <cstring>

#include "mesa_alloc/internal/frame_names.h"
#include "tools/vk_audit_caller.h"

namespace vk_audit {
namespace {

recorder *self_of(void *user_data) { return static_cast<recorder *>(user_data); }
bool scope_valid(int scope) { return scope >= 0 && scope < MESA_ALLOC_SCOPE_COUNT; }

// The file name of the module holding `pc` ("(unknown)" if none does).
std::string module_of(const void *pc) {
  char where[640];
  mesa::internal::frame_location(pc, where, sizeof where);  // " (file+0xoffset)"
  const char *open = std::strchr(where, '(');
  const char *plus = open != nullptr ? std::strstr(open, "+0x") : nullptr;
  return plus != nullptr ? std::string(open + 1, plus) : std::string("(unknown)");
}

// alloc and realloc name the module that called the application's callback: the address
// caller_entry noted (vk_alloc_audit puts it in front of the validator, which calls this
// recorder), or this function's own return address when the driver calls the recorder's table
// directly. No frame pointer is followed: a driver built without them keeps data in %rbp.
const void *caller_of_this_call(const void *own_return_address) {
  const void *noted = entry_caller();
  return noted != nullptr ? noted : own_return_address;
}

}  // namespace

recorder::recorder(const mesa_allocator *upstream)
    : upstream_(upstream),
      table_{this,
             &recorder::alloc,
             &recorder::realloc,
             &recorder::free,
             &recorder::internal_alloc,
             &recorder::internal_free} {
  calls_.push_back(call_counts{"(outside any call)", "", {}});
}

void recorder::set_call(const char *call, const char *phase) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (std::uint32_t i = 0; i < calls_.size(); ++i) {
    if (calls_[i].call == call && calls_[i].phase == phase) {
      call_ = i;
      return;
    }
  }
  calls_.push_back(call_counts{call, phase, {}});
  call_ = static_cast<std::uint32_t>(calls_.size() - 1);
}

void recorder::snapshot() {
  std::lock_guard<std::mutex> lock(mutex_);
  destroy_snapshot s{calls_[call_].call, {}, static_cast<std::int64_t>(live_.size())};
  std::memcpy(s.live_bytes, live_bytes_, sizeof live_bytes_);
  snapshots_.push_back(std::move(s));
}

void recorder::on_failure(void (*hook)(void *, const injection &), void *context) {
  std::lock_guard<std::mutex> lock(mutex_);
  failure_hook_ = hook;
  failure_context_ = context;
}

void recorder::fail_attempt(std::uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  fail_at_ = n;
}

std::uint64_t recorder::count_attempt(std::size_t alignment) {
  if (alignment != 0 && alignment < (std::size_t{1} << 63))
    ++alignment_counts_[63 - __builtin_clzll(alignment)];
  return attempts_++;
}

void recorder::failed(std::uint64_t attempt, std::size_t size, std::size_t alignment, int scope,
                      bool realloc, bool injected) {
  ++current(scope).failed;
  ++totals_[scope].failed;
  if (failure_hook_ != nullptr)
    failure_hook_(failure_context_, injection{attempt, calls_[call_].call, calls_[call_].phase,
                                              size, alignment, scope, realloc, injected});
}

void recorder::sample() {
  timeline_sample s{call_, {}};
  std::memcpy(s.live, live_bytes_, sizeof live_bytes_);
  timeline_.push_back(s);
}

void recorder::added(void *p, std::size_t size, int scope, bool realloc, const void *caller) {
  live_[p] = block{size, scope};
  // /proc/self/maps is read once per call site, not once per allocation.
  auto [site, fresh] = module_of_caller_.try_emplace(caller, 0);
  if (fresh) {
    const std::string module = module_of(caller);
    auto m = std::find_if(modules_.begin(), modules_.end(),
                          [&](const module_counts &c) { return c.module == module; });
    if (m == modules_.end()) m = modules_.insert(modules_.end(), module_counts{module});
    site->second = static_cast<std::size_t>(m - modules_.begin());
  }
  module_counts &m = modules_[site->second];
  (realloc ? m.reallocations : m.allocations)++;
  m.bytes += size;
  scope_counts &c = current(scope);
  (realloc ? c.reallocations : c.allocations)++;
  (realloc ? totals_[scope].reallocations : totals_[scope].allocations)++;
  c.bytes += size;
  totals_[scope].bytes += size;
  live_bytes_[scope] += static_cast<std::int64_t>(size);
  if (live_bytes_[scope] > peak_bytes_[scope]) peak_bytes_[scope] = live_bytes_[scope];
  sample();
}

void recorder::removed(std::unordered_map<void *, block>::iterator it, bool count_free) {
  const block b = it->second;
  live_.erase(it);
  live_bytes_[b.scope] -= static_cast<std::int64_t>(b.size);
  if (count_free) {
    ++current(b.scope).frees;
    ++totals_[b.scope].frees;
    sample();
  }
}

void *recorder::alloc(void *user_data, std::size_t size, std::size_t alignment,
                      mesa_alloc_scope scope) {
  return self_of(user_data)->alloc_from(caller_of_this_call(__builtin_return_address(0)), size,
                                        alignment, scope);
}

void *recorder::alloc_from(const void *caller, std::size_t size, std::size_t alignment,
                           mesa_alloc_scope scope) {
  recorder *self = this;
  std::lock_guard<std::mutex> lock(self->mutex_);
  if (!scope_valid(scope)) return nullptr;
  const std::uint64_t attempt = self->count_attempt(alignment);
  const bool inject = attempt == self->fail_at_;
  const mesa_allocator *up = self->upstream_;
  void *p = inject ? nullptr : up->alloc_fn(up->user_data, size, alignment, scope);
  if (p == nullptr) {
    self->failed(attempt, size, alignment, scope, false, inject);
    return nullptr;
  }
  self->added(p, size, scope, false, caller);
  return p;
}

void *recorder::realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                        mesa_alloc_scope scope) {
  const void *caller = caller_of_this_call(__builtin_return_address(0));
  if (ptr == nullptr) return self_of(user_data)->alloc_from(caller, size, alignment, scope);
  recorder *self = self_of(user_data);
  std::lock_guard<std::mutex> lock(self->mutex_);
  if (!scope_valid(scope)) return nullptr;
  auto it = self->live_.find(ptr);
  if (it == self->live_.end()) return nullptr;  // the validator above reports it
  const mesa_allocator *up = self->upstream_;
  if (size == 0) {
    self->removed(it, true);
    up->realloc_fn(up->user_data, ptr, 0, alignment, scope);
    return nullptr;
  }
  const std::uint64_t attempt = self->count_attempt(alignment);
  const bool inject = attempt == self->fail_at_;
  void *p = inject ? nullptr : up->realloc_fn(up->user_data, ptr, size, alignment, scope);
  if (p == nullptr) {
    self->failed(attempt, size, alignment, scope, true, inject);
    return nullptr;
  }
  self->removed(it, false);
  self->added(p, size, scope, true, caller);
  return p;
}

void recorder::free(void *user_data, void *ptr) {
  if (ptr == nullptr) return;
  recorder *self = self_of(user_data);
  std::lock_guard<std::mutex> lock(self->mutex_);
  auto it = self->live_.find(ptr);
  if (it == self->live_.end()) return;  // the validator above reports it
  self->removed(it, true);
  const mesa_allocator *up = self->upstream_;
  up->free_fn(up->user_data, ptr);
}

void recorder::internal_alloc(void *user_data, std::size_t size, int, mesa_alloc_scope scope) {
  recorder *self = self_of(user_data);
  std::lock_guard<std::mutex> lock(self->mutex_);
  if (!scope_valid(scope)) return;
  ++self->internal_[scope].allocations;
  self->internal_[scope].bytes += static_cast<std::int64_t>(size);
}

void recorder::internal_free(void *user_data, std::size_t size, int, mesa_alloc_scope scope) {
  recorder *self = self_of(user_data);
  std::lock_guard<std::mutex> lock(self->mutex_);
  if (!scope_valid(scope)) return;
  ++self->internal_[scope].frees;
  self->internal_[scope].bytes -= static_cast<std::int64_t>(size);
}

std::uint64_t recorder::attempts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return attempts_;
}

scope_counts recorder::total(int scope) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return scope_valid(scope) ? totals_[scope] : scope_counts{};
}

std::int64_t recorder::peak_bytes(int scope) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return scope_valid(scope) ? peak_bytes_[scope] : 0;
}

std::vector<call_counts> recorder::calls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return calls_;
}

std::vector<module_counts> recorder::modules() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<module_counts> out = modules_;
  std::stable_sort(out.begin(), out.end(), [](const module_counts &a, const module_counts &b) {
    return a.allocations + a.reallocations > b.allocations + b.reallocations;
  });
  return out;
}

std::vector<timeline_sample> recorder::timeline() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return timeline_;
}

std::vector<destroy_snapshot> recorder::snapshots() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return snapshots_;
}

std::vector<std::pair<std::size_t, std::uint64_t>> recorder::alignments() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<std::size_t, std::uint64_t>> out;
  for (int i = 0; i < 64; ++i) {
    if (alignment_counts_[i] != 0) out.emplace_back(std::size_t{1} << i, alignment_counts_[i]);
  }
  return out;
}

recorder::internal_counts recorder::internal(int scope) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return scope_valid(scope) ? internal_[scope] : internal_counts{};
}

}  // namespace vk_audit
