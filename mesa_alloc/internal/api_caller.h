// Internal: where the calling thread entered the C API, so that allocation stacks start in the
// caller's code. Not part of the public API.
//
// What it is for: the C API's allocating and freeing functions (mesa_malloc's and mesa_free's
// table paths, mesa_calloc, mesa_strdup, mesa_alloc2, mesa_free2, ...) reach the debug and
// logging layers through a table, and those layers start a recorded stack at the frame their
// entry point returns into: inside the C API (malloc_through_table, mesa_malloc), two frames a
// leak report, a bad free's report and a trace call site would waste on the library. An api_call,
// made by the C API function, records its caller's return address for the thread for the length of
// the call; the layers' entry points start there (caller_or). The outermost call wins:
// mesa_strdup's caller, not mesa_strdup, is where its mesa_malloc was called from. Only a call into
// one of this copy's own tables records it (made_by_this_copy): an application's callback that
// allocates through a debug resource keeps that allocation's own stack. And where a layer of this
// copy calls a table it did not make (a tracking table over the application's table, vk_resource
// over VkAllocationCallbacks), a foreign_call sets the record aside for that call: the callback's
// own allocations through a debug or logging layer record their own stack, not the C API call that
// led to them.
//
// What it costs: nothing on mesa_malloc's libc path. Through a table, one load of a global
// flag, until a layer that records stacks has been made in this copy of the library
// (want_callers()); from then on, a thread-local load and two stores as well.
//
// Example, in a C API function's table path:
//   if (!records_caller(table)) return table->alloc_fn(table->user_data, size, alignment, scope);
//   const mesa::internal::api_call call(__builtin_return_address(0));
//   return table->alloc_fn(table->user_data, size, alignment, scope);
// and in a layer's entry point:
//   capture_stack(frames, n, api_call::caller_or(__builtin_return_address(0)), unwind);
// and where a layer calls its parent table:
//   const mesa::internal::foreign_call call(parent);
//   return parent->alloc_fn(parent->user_data, size, alignment, scope);
#ifndef MESA_ALLOC_INTERNAL_API_CALLER_H_
#define MESA_ALLOC_INTERNAL_API_CALLER_H_

#include <atomic>

#include "mesa_alloc/internal/per_copy.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

// Whether a layer that records stacks has been made (never reset): before that, no C API call
// needs to say where it came from. Defined in api_caller.cc.
MESA_ALLOC_PER_COPY extern std::atomic<bool> callers_wanted_flag;

inline bool callers_wanted() noexcept {
  return callers_wanted_flag.load(std::memory_order_relaxed);
}

// Whether `table` is one of this copy's (a debug, logging, tracking, validator, fault-gate
// (MESA_ALLOC_DEBUG's fail=N) or slab table, or one over a resource): only a call into one of
// those records its caller. An application's own table that allocates through a debug resource
// in its callback keeps that allocation's real stack. Defined in debug_resources.cc; a table
// kind added to the library joins its list.
bool made_by_this_copy(const mesa_allocator *table) noexcept;

// Whether `table` is a slab table (mesa_slab_create, mesa_slab_child_create). Defined in
// fast_resources.cc.
bool is_slab_table(const mesa_allocator *table) noexcept;

// Whether a C API call into `table` records its caller: once a layer that records stacks exists,
// for this copy's own tables.
inline bool records_caller(const mesa_allocator *table) noexcept {
  return callers_wanted() && made_by_this_copy(table);
}

// Called by the constructor of a layer that records stacks, before it can be used: every debug
// layer (its error reports show the stack of the bad free from its caller) and a logging layer
// that records call sites. Those are the layers "that record stacks" here.
inline void want_callers() noexcept {
  if (!callers_wanted()) callers_wanted_flag.store(true, std::memory_order_relaxed);
}

// The return address into the code that made the calling thread's outermost C API call, or
// null outside one. Defined in api_caller.cc; __thread, as it needs no initialization call.
[[gnu::tls_model("initial-exec")]] MESA_ALLOC_PER_COPY extern __thread const void *api_caller;

class api_call {
 public:
  explicit api_call(const void *return_address) noexcept : outermost_(api_caller == nullptr) {
    if (outermost_) api_caller = return_address;
  }
  api_call(const api_call &) = delete;
  api_call &operator=(const api_call &) = delete;
  ~api_call() {
    if (outermost_) api_caller = nullptr;
  }

  // Where a stack recorded now starts: the C API's caller during a C API call, else `own` (the
  // entry point's return address).
  static const void *caller_or(const void *own) noexcept {
    const void *c = api_caller;
    return c != nullptr ? c : own;
  }

 private:
  const bool outermost_;
};

// The record of the thread's C API caller, cleared for a call into `table` when this copy did not
// make it (null: callbacks this copy knows nothing of, VkAllocationCallbacks); what to restore
// after the call (null: nothing was set aside). Defined in api_caller.cc.
const void *set_aside_api_caller(const mesa_allocator *table) noexcept;
void restore_api_caller(const void *saved) noexcept;
// set_aside_api_caller only once a layer records stacks and inside a C API call (null
// otherwise): for code outside the core (the Vulkan bridge), which cannot read the per-copy
// flag that tells. One call into the core; the work only when there is a record.
const void *set_aside_api_caller_if_recorded(const mesa_allocator *table) noexcept;

// Whether the thread is inside a C API call whose caller is recorded: only then has a
// foreign_call anything to set aside.
inline bool caller_recorded() noexcept { return callers_wanted() && api_caller != nullptr; }

// For the length of a call into a table this copy may not have made (null: a pmr upstream, which
// is left alone). Only in the library's own source files: header code a program compiles cannot
// read the per-copy flag. Costs a flag load, and once a layer records stacks a thread-local load
// too; only inside a C API call (never on a container's pmr path) is the table looked at, out
// of line: about 90 instructions per allocation through a library table over an application's,
// while some layer in the process records stacks. The hot callers (callback_resource, the
// tracking resource) test caller_recorded() inline and make the foreign_call out of line.
class foreign_call {
 public:
  explicit foreign_call(const mesa_allocator *table) noexcept
      : saved_(table != nullptr && caller_recorded() ? set_aside_api_caller(table) : nullptr) {}
  foreign_call(const foreign_call &) = delete;
  foreign_call &operator=(const foreign_call &) = delete;
  ~foreign_call() {
    if (saved_ != nullptr) restore_api_caller(saved_);
  }

 protected:
  struct set_aside_record {
    const void *caller;  // what to restore (null: nothing was set aside)
  };
  explicit foreign_call(set_aside_record record) noexcept : saved_(record.caller) {}

 private:
  const void *const saved_;
};

// For the length of a call from a pmr resource of this copy (callback_resource) into `table`:
// outside a C API call, a table of this copy's records `caller`, the return address into the
// code that called the resource, as a C API call does, so that a container's allocation through
// the MESA_ALLOC_DEBUG stack starts its stack in the container's code rather than in the
// resource; inside one, a table this copy did not make has the record set aside, as under a
// foreign_call. Made only once a layer records stacks (callers_wanted()); defined in
// api_caller.cc.
class resource_call {
 public:
  resource_call(const mesa_allocator *table, const void *caller) noexcept;
  resource_call(const resource_call &) = delete;
  resource_call &operator=(const resource_call &) = delete;
  ~resource_call() {
    if (recorded_)
      api_caller = nullptr;
    else if (saved_ != nullptr)
      restore_api_caller(saved_);
  }

 private:
  const void *saved_ = nullptr;  // the record set aside, to restore
  bool recorded_ = false;        // this call made the record, to clear
};

// For the length of a step that may run application code a foreign_call does not cover: a
// realloc's free of its old block (or a realloc to size 0), which may reach an application's
// free callback through any layer below, and a debug_resource's error handler; what they
// allocate keeps its own stack. A flag load outside a C API call that records its caller.
class caller_set_aside : public foreign_call {
 public:
  caller_set_aside() noexcept
      : foreign_call(
            set_aside_record{caller_recorded() ? set_aside_api_caller(nullptr) : nullptr}) {}
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_API_CALLER_H_
