// callback_validator — checks every rule of the Vulkan host-allocation callbacks.
//
// What it is for: wrap any callback table (the application's VkAllocationCallbacks seen as a
// mesa_allocator, or any project table) and hand the wrapper to a driver. Every call is checked
// against the rules the Vulkan spec states and the Vulkan CTS (validateAllocationCallbacks)
// enforces, and each violation is recorded with the call that caused it:
//   - scope_out_of_range         scope not one of COMMAND..INSTANCE
//   - alignment_not_power_of_two alignment 0 or not a power of two
//   - realloc_alignment_changed  realloc with an alignment other than the original's
//   - realloc_unknown_pointer    realloc of a pointer this table never returned
//   - realloc_freed_pointer      realloc of a pointer already freed
//   - free_unknown_pointer       free of a pointer this table never returned
//   - free_freed_pointer         free of a pointer already freed (double free)
//   - internal_type_out_of_range internal-allocation notification of an unknown type
//   - internal_total_negative    more internal frees than allocations for a (type, scope)
//   - live_at_checkpoint         a block of a checked scope still live at checkpoint()
//                                (e.g. COMMAND memory after the command returned; anything
//                                after the instance was destroyed)
// and on the table's side:
//   - misaligned_result          the table returned a block not aligned as asked
//   - realloc_zero_returned_block realloc(p, 0) returned a block (it must free and return NULL)
//   - result_already_live        the table returned a block that is still live (handed out
//                                twice: two owners of one block)
// A realloc with size 0 frees: the pointer is then dead for later calls.
//
// What it costs: a mutex and a hash-table lookup per call; bookkeeping memory (one node per
// live or freed block, one entry per violation) comes from a separate `bookkeeping` resource so
// the audited table sees only the driver's own allocations. Meant for tests and tools. The
// lock is not held while upstream runs, so an upstream may call back into this table; when the
// bookkeeping has no memory for a new block, the call fails as an allocation failure (one line,
// the block goes back upstream) instead of throwing through the C functions.
//
// From C (C11), the same validator behind a table:
//   const mesa_allocator *checked = mesa_validator_create(app_table);
//   mesa_validator_set_call(checked, "vkCreateDevice");
//   ... hand `checked` to the code under test ...
//   mesa_validator_checkpoint(checked, 0x1f);          // nothing may be live now
//   for (size_t i = 0; i < mesa_validator_violation_count(checked); ++i) {
//     char line[256];
//     mesa_validator_format(checked, i, line, sizeof line);
//   }
//   mesa_validator_destroy(checked);
//
// To stop in a debugger at the call that broke a rule, or to write violations out of a process
// that may crash before it can report: mesa_validator_set_listener(checked, fn, context), or
// set_listener() in C++, is called with each violation as it happens.
//
// Example (C++):
//   mesa::callback_validator validator(mesa::to_mesa(app_callbacks));
//   validator.set_call("vkCreateDevice");
//   vkCreateDevice(gpu, &info, mesa::to_vk(validator.table()), &device);
//   validator.checkpoint(1u << MESA_ALLOC_SCOPE_COMMAND);   // nothing of COMMAND scope left
//   for (std::size_t i = 0; i < validator.violation_count(); ++i) {
//     char line[256];
//     validator.violation(i).format(line, sizeof line);
//   }
#ifndef MESA_ALLOC_CALLBACK_VALIDATOR_H_
#define MESA_ALLOC_CALLBACK_VALIDATOR_H_

#include <stddef.h>

#include "mesa_alloc/mesa_alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A validator over `upstream` (NULL: the default table); its table is what the code under test
 * gets. The validator's own memory comes from mesa_libc_allocator(). NULL if out of memory. */
const mesa_allocator *mesa_validator_create(const mesa_allocator *upstream);
/* Every function below does nothing (or returns 0 / -1) when given a table that is not a
 * validator's. */
void mesa_validator_destroy(const mesa_allocator *validator);
/* Labels the calls that follow; `label` must outlive the validator (a string literal). */
void mesa_validator_set_call(const mesa_allocator *validator, const char *label);
/* Records a violation for every live block whose scope bit (1u << MESA_ALLOC_SCOPE_x) is in
 * `scope_mask`; returns how many. */
size_t mesa_validator_checkpoint(const mesa_allocator *validator, unsigned scope_mask);
size_t mesa_validator_violation_count(const mesa_allocator *validator);
/* Violation `index` as one line; returns the length snprintf would write, -1 for a bad index.
 * A NULL `buffer` is taken as a size of 0 (the length alone). */
int mesa_validator_format(const mesa_allocator *validator, size_t index, char *buffer,
                          size_t buffer_size);
/* Calls `fn(context, line)` with each violation's line (as mesa_validator_format writes it) when
 * it is recorded, on the thread whose call broke the rule, before that call returns: abort() in
 * `fn` stops a debugger at the culprit, and a process that may crash can write its violations out
 * as they come. `fn` runs under the validator's lock: it must not call the validator or allocate
 * through its table. A NULL `fn` stops the calls. */
void mesa_validator_set_listener(const mesa_allocator *validator,
                                 void (*fn)(void *context, const char *line), void *context);

#ifdef __cplusplus
}  // extern "C"
#endif

/* The C++ class, for C++17 and later only; in C++ linkage even where a C++ file includes this
 * header inside extern "C" { } (as older code wraps C headers), so that C API users compile in
 * C++14 and inside such a block. */
#if defined(__cplusplus) && __cplusplus >= 201703L
extern "C++" {

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "mesa_alloc/callback_resource.h"

namespace mesa {

enum class validator_rule : std::uint8_t {
  scope_out_of_range,
  alignment_not_power_of_two,
  realloc_alignment_changed,
  realloc_unknown_pointer,
  realloc_freed_pointer,
  free_unknown_pointer,
  free_freed_pointer,
  internal_type_out_of_range,
  internal_total_negative,
  live_at_checkpoint,
  misaligned_result,
  realloc_zero_returned_block,
  result_already_live,
};
inline constexpr int kValidatorRuleCount = 13;

// "scope_out_of_range", ... (the enumerator's name).
const char *validator_rule_name(validator_rule rule) noexcept;

enum class validator_op : std::uint8_t {
  alloc,
  realloc,
  free,
  internal_alloc,
  internal_free,
  checkpoint
};
const char *validator_op_name(validator_op op) noexcept;

// One call through the validator, as the driver made it.
struct validator_call {
  validator_op op;
  int scope;              // -1 for free and checkpoint
  int type;               // internal-allocation type, -1 otherwise
  const void *ptr;        // the pointer passed (realloc, free) or the live block (checkpoint)
  std::size_t size;       // requested size (alloc, realloc, internal) or the live block's size
  std::size_t alignment;  // requested alignment (alloc, realloc)
  // 0-based index of this call among the calls through the validator (free(NULL) is not
  // counted); for live_at_checkpoint, how many calls came before the checkpoint.
  std::uint64_t sequence;
  const char *context;  // the label given to set_call() when the call happened (or "")
};

struct validator_violation {
  validator_rule rule;
  validator_call call;
  // The block's own alignment (realloc_alignment_changed) or the one the table was asked for
  // (misaligned_result; for a realloc, the block's own);
  // for a pointer already freed, the sequence number of the call that freed it; for
  // result_already_live, that of the call that returned the block first; for
  // live_at_checkpoint, that of the call that allocated it; for internal_total_negative, how
  // far below zero the total went. 0 for the other rules.
  std::size_t expected;
  // For the rules the table breaks with what it returns (misaligned_result,
  // result_already_live, realloc_zero_returned_block), the block it returned; else null.
  const void *result = nullptr;

  // One line: "<rule> in <context>: <op>(ptr=..., size=..., alignment=..., scope=..., type=...)
  // #<seq>" (<context> is "(no call)" when no set_call() label was set), then " returned
  // <result>" when there is one, then for the rules above " expected alignment <n>", " freed by
  // #<seq>", " live since #<seq>", " allocated by #<seq>" or " total now -<n>".
  // Returns the length snprintf would write.
  int format(char *buffer, std::size_t buffer_size) const noexcept;
};

class callback_validator {
 public:
  // `upstream` NULL means the default table. `bookkeeping` NULL means libc (through
  // mesa_libc_allocator), never `upstream`.
  explicit callback_validator(const mesa_allocator *upstream,
                              std::pmr::memory_resource *bookkeeping = nullptr);
  callback_validator(const callback_validator &) = delete;
  callback_validator &operator=(const callback_validator &) = delete;

  // The checking table to hand to a driver. Notifications are forwarded to upstream's, if any.
  const mesa_allocator *table() const noexcept { return &table_; }
  const mesa_allocator *upstream() const noexcept { return upstream_; }
  // The validator behind a table from table(); NULL for any other table.
  static callback_validator *from_table(const mesa_allocator *table) noexcept;

  // Labels the calls that follow (e.g. "vkCreateDevice"); `label` must outlive the validator
  // (a string literal). Violations carry the label current when they happened.
  void set_call(const char *label) noexcept;

  // Records live_at_checkpoint for every live block whose scope bit is in `scope_mask`
  // (1u << MESA_ALLOC_SCOPE_x); returns how many were found.
  std::size_t checkpoint(unsigned scope_mask);

  // Calls `fn(context, violation)` for each violation when it is recorded, on the thread whose
  // call broke the rule, before that call returns (see mesa_validator_set_listener: the same
  // uses, and `fn` runs under the lock, so it must not call this validator or allocate through
  // its table, and it must not throw). A null `fn` stops the calls.
  using listener = void (*)(void *context, const validator_violation &violation);
  void set_listener(listener fn, void *context) noexcept;
  // The same with each violation's line, as mesa_validator_format writes it (the C API's
  // mesa_validator_set_listener).
  void set_line_listener(void (*fn)(void *context, const char *line), void *context) noexcept;

  // The state so far (each read takes the lock; violations are kept in call order).
  std::size_t violation_count() const;
  validator_violation violation(std::size_t index) const;
  std::size_t live_blocks() const;
  std::size_t live_bytes(mesa_alloc_scope scope) const;
  std::int64_t internal_total(int type, mesa_alloc_scope scope) const;

 private:
  struct block {
    std::size_t size;
    std::size_t alignment;
    int scope;
    std::uint64_t sequence;  // the call that returned it
    // The thread whose realloc of the block is with upstream, or none. The block stays live
    // meanwhile; only that thread's next call about it can clear a mark its realloc left behind.
    std::thread::id reallocating;
  };

  static void *alloc(void *self, std::size_t size, std::size_t alignment, mesa_alloc_scope scope);
  static void *realloc(void *self, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope);
  static void free(void *self, void *ptr);
  static void internal_alloc(void *self, std::size_t size, int type, mesa_alloc_scope scope);
  static void internal_free(void *self, std::size_t size, int type, mesa_alloc_scope scope);

  validator_call make_call(validator_op op, int scope, int type, const void *ptr, std::size_t size,
                           std::size_t alignment) noexcept;
  void record(validator_rule rule, const validator_call &call, std::size_t expected,
              const void *result = nullptr);
  bool check_request(const validator_call &call);
  using live_map = std::pmr::unordered_map<const void *, block>;
  bool note_result(const validator_call &call, void *result, std::size_t alignment, int scope,
                   live_map::node_type reuse = {});
  void *keep(const validator_call &call, void *result, std::size_t alignment, int scope);
  void remember_freed(const void *ptr, std::uint64_t sequence) noexcept;
  live_map::iterator find_live(const validator_call &call, const void *ptr,
                               validator_rule freed_rule, validator_rule unknown_rule);
  live_map::iterator marked_by_this_thread(const void *ptr);
  static void report_unrecorded() noexcept;
  // False when the notification is malformed (then not forwarded).
  bool note_internal(const validator_call &call, std::int64_t delta);

  static constexpr int kInternalTypes = 1;  // VK_INTERNAL_ALLOCATION_TYPE_EXECUTABLE

  static void forward_line(void *self, const validator_violation &violation);

  const mesa_allocator *upstream_;
  callback_resource libc_;
  std::pmr::memory_resource *bookkeeping_;
  mesa_allocator table_;

  mutable std::mutex mutex_;
  const char *context_ = "";
  std::uint64_t sequence_ = 0;
  listener listener_ = nullptr;
  void *listener_context_ = nullptr;
  void (*line_listener_)(void *, const char *) = nullptr;  // set_line_listener's
  void *line_listener_context_ = nullptr;
  live_map live_;
  std::pmr::unordered_map<const void *, std::uint64_t> freed_;  // -> sequence of the free
  // Blocks another call received while a realloc of them was with upstream (which may free a
  // block before it returns, and another thread, or upstream's own call through this table, may
  // get it then): the realloc decides, when it returns, whether that was a block handed out twice
  // (it did not move the block).
  struct taken_block {
    validator_call by;         // the call that received it
    std::uint64_t live_since;  // the call that returned it to the reallocating owner
  };
  std::pmr::unordered_map<const void *, taken_block> taken_;
  std::pmr::vector<validator_violation> violations_;
  std::size_t live_bytes_[MESA_ALLOC_SCOPE_COUNT] = {};
  std::int64_t internal_[kInternalTypes][MESA_ALLOC_SCOPE_COUNT] = {};
};

}  // namespace mesa

}  // extern "C++"
#endif  // C++17

#endif  // MESA_ALLOC_CALLBACK_VALIDATOR_H_
