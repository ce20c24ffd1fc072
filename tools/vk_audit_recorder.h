// vk_audit_recorder — the per-call attribution layer of vk_alloc_audit's callbacks.
//
// What it is for: the middle of the application's callback stack that vk_alloc_audit hands to
// the driver (caller_entry → callback_validator → recorder → tracking → libc). It
// attributes every host allocation to the Vulkan call during which it happened (set_call) and to
// its scope, keeps live/peak bytes per scope, a timeline of live bytes for the SVG, the alignments
// asked for, internal-allocation notifications and what is live after each destroy, numbers
// allocation attempts (the points an out-of-memory sweep fails one by one), fails the one the sweep
// asks for itself (fail_attempt: the layers below keep a shrink in place or refuse a request
// without the point being theirs to number), and reports each failed attempt to a hook with the
// call it happened in.
//
// What it costs: a mutex, a hash-map update and one timeline sample per call, and a read of
// /proc/self/maps per new call site to name the module that asked. A tool layer.
//
// Example:
//   vk_audit::recorder rec(mesa_libc_allocator());
//   rec.set_call("vkCreateInstance", "instance");
//   vkCreateInstance(&info, mesa::to_vk(rec.table()), &instance);
#ifndef TOOLS_VK_AUDIT_RECORDER_H_
#define TOOLS_VK_AUDIT_RECORDER_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "mesa_alloc/mesa_alloc.h"

namespace vk_audit {

struct scope_counts {
  std::uint64_t allocations = 0;    // successful alloc_fn (and realloc_fn of NULL)
  std::uint64_t reallocations = 0;  // successful realloc_fn of a live block to a non-zero size
  std::uint64_t frees = 0;          // free_fn of a live block, realloc_fn to size 0
  std::uint64_t failed = 0;         // attempts that returned NULL (injected or real)
  std::uint64_t bytes = 0;          // bytes handed out (allocations + reallocation sizes)
};

// What the code of one loaded file (the Vulkan loader, the driver, a layer) allocated: found
// from the return address of the callback the driver called.
struct module_counts {
  std::string module;  // file name, e.g. libvulkan.so.1 or libvulkan_lvp.so
  std::uint64_t allocations = 0;
  std::uint64_t reallocations = 0;
  std::uint64_t bytes = 0;
};

// What one Vulkan call allocated, per scope.
struct call_counts {
  std::string call;
  std::string phase;
  scope_counts scope[MESA_ALLOC_SCOPE_COUNT];
};

// Live bytes per scope after one event (for the SVG).
struct timeline_sample {
  std::uint32_t call;  // index into calls()
  std::int64_t live[MESA_ALLOC_SCOPE_COUNT];
};

// What was live right after a vkDestroy* call returned.
struct destroy_snapshot {
  std::string call;
  std::int64_t live_bytes[MESA_ALLOC_SCOPE_COUNT];
  std::int64_t live_blocks;
};

// A failed allocation attempt.
struct injection {
  std::uint64_t attempt;
  std::string call;
  std::string phase;
  std::size_t size;
  std::size_t alignment;
  int scope;
  bool realloc;
  bool injected;  // failed by fail_attempt(), not by the layers below
};

class recorder {
 public:
  explicit recorder(const mesa_allocator *upstream);
  recorder(const recorder &) = delete;
  recorder &operator=(const recorder &) = delete;

  const mesa_allocator *table() const { return &table_; }

  // Attributes what follows to `call` (a Vulkan entry point) in `phase`.
  void set_call(const char *call, const char *phase);
  // Records what is live now under the current call's name.
  void snapshot();

  // `hook(context, attempt)` is called for every failed attempt (injected, or failed by the
  // layers below), from the allocating thread, before the driver sees the NULL.
  void on_failure(void (*hook)(void *, const injection &), void *context);
  // Attempt `n` (numbered as attempts() counts, from construction) fails here: NULL without a
  // call to the layers below, a reallocated block left as it was. A shrinking realloc is an
  // attempt like any other. UINT64_MAX (the default): none.
  void fail_attempt(std::uint64_t n);

  // Allocation attempts so far (alloc_fn calls and realloc_fn calls to a non-zero size), that
  // is, the index the next attempt will have.
  std::uint64_t attempts() const;
  scope_counts total(int scope) const;
  std::int64_t peak_bytes(int scope) const;  // peak of that scope alone
  std::vector<call_counts> calls() const;
  std::vector<module_counts> modules() const;  // by allocations, most first
  std::vector<timeline_sample> timeline() const;
  std::vector<destroy_snapshot> snapshots() const;
  // alignment -> number of requests
  std::vector<std::pair<std::size_t, std::uint64_t>> alignments() const;
  // internal-allocation notifications per scope: count of allocs, frees, net bytes
  struct internal_counts {
    std::uint64_t allocations = 0, frees = 0;
    std::int64_t bytes = 0;
  };
  internal_counts internal(int scope) const;

 private:
  struct block {
    std::size_t size;
    int scope;
  };

  static void *alloc(void *self, std::size_t size, std::size_t alignment, mesa_alloc_scope scope);
  void *alloc_from(const void *caller, std::size_t size, std::size_t alignment,
                   mesa_alloc_scope scope);
  static void *realloc(void *self, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope);
  static void free(void *self, void *ptr);
  static void internal_alloc(void *self, std::size_t size, int type, mesa_alloc_scope scope);
  static void internal_free(void *self, std::size_t size, int type, mesa_alloc_scope scope);

  std::uint64_t count_attempt(std::size_t alignment);
  void failed(std::uint64_t attempt, std::size_t size, std::size_t alignment, int scope,
              bool realloc, bool injected);
  void added(void *p, std::size_t size, int scope, bool realloc, const void *caller);
  void removed(std::unordered_map<void *, block>::iterator it, bool count_free);
  void sample();
  scope_counts &current(int scope) { return calls_[call_].scope[scope]; }

  const mesa_allocator *upstream_;
  mesa_allocator table_;

  mutable std::mutex mutex_;
  std::uint32_t call_ = 0;
  std::vector<call_counts> calls_;
  std::vector<module_counts> modules_;
  std::unordered_map<const void *, std::size_t> module_of_caller_;  // call site -> modules_ index
  std::unordered_map<void *, block> live_;
  scope_counts totals_[MESA_ALLOC_SCOPE_COUNT];
  std::int64_t live_bytes_[MESA_ALLOC_SCOPE_COUNT] = {};
  std::int64_t peak_bytes_[MESA_ALLOC_SCOPE_COUNT] = {};
  std::uint64_t alignment_counts_[64] = {};
  internal_counts internal_[MESA_ALLOC_SCOPE_COUNT];
  std::vector<timeline_sample> timeline_;
  std::vector<destroy_snapshot> snapshots_;

  std::uint64_t attempts_ = 0;
  std::uint64_t fail_at_ = UINT64_MAX;
  void (*failure_hook_)(void *, const injection &) = nullptr;
  void *failure_context_ = nullptr;
};

}  // namespace vk_audit

#endif  // TOOLS_VK_AUDIT_RECORDER_H_
