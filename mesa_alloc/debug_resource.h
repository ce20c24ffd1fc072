// debug_resource — catches heap misuse: double and invalid frees, frees through the wrong
// allocator, size mismatches, overruns and underruns, writes after free, and leaks.
//
// What it is for: the memory debugger of the stack. Every block gets a header (a cookie: magic,
// requested size, alignment, owner id, a never-reused allocation number) and a trailing canary
// (the header keeps the alignment in 32 bits: a request aligned past 1 GiB fails, with a line);
// fresh blocks are filled with 0xCD, freed ones with 0xDD. Each deallocation is checked against
// a live-block table and the cookie, and any problem is reported as one line:
//   mesa_alloc: <kind> at <address> size <n> allocation #<k>[: <detail>]
// followed by the stack of the call that found it (the bad free or realloc: "freed at", walked
// when the error is found), where the block was freed before (a double free or a write after
// free of a block the quarantine holds, with record_stacks: "previously freed at") and the
// allocation stack when recorded. <kind> is one of: double free, invalid free, allocator
// mismatch, size mismatch, buffer overrun, buffer underrun, write after free, leak.
// The default handler prints that on stderr and aborts (leaks only print); tests install a
// handler that records. Guard-page mode puts each block against an inaccessible page after it
// (overruns fault at the faulting write; past a size that is not a multiple of 16, or of a
// larger alignment, the bytes left before the page are checked at free instead) or before it
// (underruns), keeps alignment, and makes freed blocks inaccessible while they sit in the
// quarantine (use after free faults); a SIGSEGV handler (installed by the first guard-mode
// resource, chaining to the previous one) prints the diagnostic line for such a fault before the
// process dies of it (a custom handler gets the error instead, and the access then proceeds).
// The quarantine delays reuse of freed blocks and checks their 0xDD fill when they leave it.
// A realloc moves the block (a stale pointer to the old one is then caught), except a shrink
// when no new block can be had (a full budget below): that stays in place, and the bytes it
// gives up join its tail, checked at free as the canary is (in every mode, guard pages too).
//
// What it costs: per block a 64-byte header (plus 8 bytes per recorded stack frame) and a
// 16-byte canary; per operation one hash-table update and the fills and checks: about 3x glibc
// malloc/free in cookie mode (README). The table's lock is biased to the first thread that uses
// the resource (plain loads and stores, no atomic read-modify-write, while no other thread has
// touched it); from the second thread on it is a spin lock. options.thread_safe = false drops
// the lock altogether. Recording stacks costs a frame-pointer walk per allocation
// (options.unwinder: the unwind tables instead, complete without frame pointers, microseconds).
// Guard mode costs an mprotect per allocate and two per free, and two pages per small block.
// Keeping each free's caller for the report of a bad one costs about 1 ns per free (a few
// thread-local accesses); the walk of that call's stack is made only when an error is found.
// With record_stacks and a quarantine, each free into it walks its stack as well (136 bytes per
// held block, in a ring of their own; in guard mode 136 more, for the allocation stack copied
// out of the header that the free makes inaccessible).
//
// Example:
//   mesa::debug_options options;
//   options.record_stacks = true;
//   mesa::debug_resource debug(std::pmr::new_delete_resource(), options);
//   {
//     std::pmr::vector<int> v(3, &debug);
//     const mesa_allocator *c_table = debug.table();  // the same checks for C code
//     mesa_free2(nullptr, c_table, mesa_alloc2(nullptr, c_table, 8, 8, MESA_ALLOC_SCOPE_OBJECT));
//   }
//   debug.report_leaks();  // nothing left: silent (also done by the destructor)
#ifndef MESA_ALLOC_DEBUG_RESOURCE_H_
#define MESA_ALLOC_DEBUG_RESOURCE_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "mesa_alloc/internal/biased_lock.h"
#include "mesa_alloc/internal/block_table.h"
#include "mesa_alloc/internal/direct_upstream.h"
#include "mesa_alloc/internal/per_copy.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa {

enum class debug_error_kind {
  double_free,
  invalid_free,
  allocator_mismatch,
  size_mismatch,
  buffer_overrun,
  buffer_underrun,
  write_after_free,
  leak,
};

// "double free", "invalid free", ... as printed.
const char *debug_error_name(debug_error_kind kind) noexcept;

// What a handler is given. Its pointers (detail, the stacks, call_title) are valid during the
// handler's call only: a handler that keeps them copies what they point to.
struct debug_error {
  debug_error_kind kind;
  const void *address;       // the user pointer
  std::size_t size;          // requested size; 0 when unknown (invalid free)
  std::uint64_t allocation;  // allocation number (from 1); 0 when unknown
  std::ptrdiff_t offset;     // first bad byte, from the block start (overrun, underrun, write
                             // after free); 0 otherwise
  const char *detail;        // a short explanation, never NULL
  void *const *stack;        // allocation stack when recorded, else NULL
  int stack_depth;
  // The allocation went deeper than the stack: only its innermost frames (16) are recorded.
  bool stack_cut = false;
  // Where the error was found: the stack of the free or realloc that found it (the bad free
  // itself, or the free that pushed a damaged block out of the quarantine), innermost first,
  // walked through the unwind tables when the error is found, whatever record_stacks says; NULL
  // for an error found elsewhere (a guard page's fault, a leak). `call_title` heads it in the
  // report: "freed at", "reallocated at", "found in the free of 0x... at", ...
  void *const *call_stack = nullptr;
  int call_stack_depth = 0;
  bool call_stack_cut = false;  // the call was deeper than its 16 innermost frames
  const char *call_title = nullptr;
  // Where the block was freed before: for a double free, or a write after free, of a block the
  // quarantine holds, when stacks are recorded (record_stacks and quarantine_bytes, or guard
  // mode); else NULL. Printed as "previously freed at".
  void *const *free_stack = nullptr;
  int free_stack_depth = 0;
  bool free_stack_cut = false;
};

// Called for every error. May return (the operation is then skipped or completed safely).
using debug_error_handler = void (*)(const debug_error &error, void *context);

// Prints `error` as described above (one line, then the stack if any) on stderr, without
// allocating. The default handler is this followed by abort(), except for leaks.
void print_debug_error(const debug_error &error) noexcept;

enum class guard_mode { none, after, before };

// How record_stacks walks the stack. frame_pointers: fast, but it loses its way at the first
// caller built without frame pointers (GCC's default from -O1 on, so most distributions' Mesa):
// the frames above are missing, or wrong, and a leak often shows one frame. unwind_tables: the
// DWARF unwind tables (.eh_frame) every x86-64 and i386 object carries; complete without frame
// pointers, microseconds per allocation (README).
enum class stack_unwinder { frame_pointers, unwind_tables };

namespace internal {
struct guard_fault_handler;
struct fork_locks;
}  // namespace internal

struct debug_options {
  bool cookie = true;  // check magic and canaries on free
  bool fill = true;    // 0xCD on allocate, 0xDD on free
  guard_mode guard = guard_mode::none;
  // Freed blocks held back (filled with 0xDD, checked when evicted) up to this many bytes. In
  // guard mode freed blocks are always held (made inaccessible), 16 MiB if this is 0.
  std::size_t quarantine_bytes = 0;
  bool record_stacks = false;  // an allocation stack per block, for leak and error reports
  stack_unwinder unwinder = stack_unwinder::frame_pointers;  // how record_stacks walks
  bool report_leaks_on_destroy = true;
  // false: only one thread at a time uses the resource, and the live-block table is not locked
  // (saves little while only one thread ever uses it: the lock is then biased to that thread).
  // Other debug resources then do not read its table either: its block freed through another
  // is an invalid free there, not an allocator mismatch (or a double free, with a detail saying
  // the address may be another allocator's block, when that other one freed a block at the same
  // address lately and no longer holds it).
  bool thread_safe = true;
  debug_error_handler handler = nullptr;  // nullptr: print_debug_error, then abort (not leaks)
  void *handler_context = nullptr;
  // Where the layer's own bookkeeping comes from (the live-block table, the quarantine ring, a
  // leak report's copy); nullptr: the upstream. Another resource keeps it out of the upstream's
  // accounting, limits and fault injection, which then see only the program's blocks. It must
  // outlive the debug resource, is called with the layer's lock held (so it must not allocate
  // through this debug resource), and must be thread-safe if the debug resource is used from
  // several threads. Not settable from C (mesa_debug_create uses the parent).
  std::pmr::memory_resource *bookkeeping = nullptr;
};

class debug_resource : public std::pmr::memory_resource {
 public:
  explicit debug_resource(std::pmr::memory_resource *upstream,
                          const debug_options &options = debug_options()) noexcept;
  ~debug_resource() override;
  debug_resource(const debug_resource &) = delete;
  debug_resource &operator=(const debug_resource &) = delete;

  // A C table over this resource with the same checks (its blocks carry no extra header; free
  // is unsized). Valid as long as the resource.
  const mesa_allocator *table() const noexcept { return &table_; }
  // The resource behind a table(), or nullptr if `table` is not a debug_resource's.
  static debug_resource *from_table(const mesa_allocator *table) noexcept;
  std::pmr::memory_resource *upstream() const noexcept { return direct_.resource(); }
  const debug_options &options() const noexcept { return options_; }
  // Identifies this resource in cookies and mismatch reports (from 1, never reused).
  std::uint32_t owner_id() const noexcept { return owner_; }

  // Reports every live block as a leak (grouped by allocation stack: the first block of each
  // group carries the stack) and returns how many. The blocks stay allocated. Without memory
  // for the report's copy of the table (leaks that used up the bookkeeping's budget), 16 of them
  // are reported ungrouped, each with its stack, then one line with the count and bytes of all.
  std::size_t report_leaks() noexcept;
  std::size_t live_blocks() const noexcept;
  // Checks and releases everything in the quarantine.
  void flush_quarantine() noexcept;

  // The C entry points, also usable directly: NULL on failure; free and realloc unsized.
  void *allocate_block(std::size_t size, std::size_t alignment, mesa_alloc_scope scope) noexcept;
  void free_block(void *p) noexcept;
  void *reallocate_block(void *p, std::size_t size, std::size_t alignment,
                         mesa_alloc_scope scope) noexcept;

 protected:
  // For a debug table made over a parent table (mesa_debug_create): the internal-allocation
  // notifications of table() (NULL: none, as for a resource over any other upstream). Set before
  // the table is handed out.
  void set_notifications(decltype(mesa_allocator::internal_alloc_fn) internal_alloc,
                         decltype(mesa_allocator::internal_free_fn) internal_free) noexcept {
    table_.internal_alloc_fn = internal_alloc;
    table_.internal_free_fn = internal_free;
  }

 private:
  // What every allocating entry point calls, once it has checked that the alignment is a power
  // of two (so that the line refusing one names the entry point). `caller` is the entry point's
  // return address (__builtin_return_address(0)), or during a C API call the C API's caller
  // (internal/api_caller.h): a recorded stack starts at the frame it returns into, so the
  // resource's own frames are left out however they were inlined or tail-called.
  void *allocate_from(std::size_t size, std::size_t alignment, mesa_alloc_scope scope,
                      const void *caller) noexcept;
  // free_block's work, for the call made from `caller`.
  void free_from(void *p, const void *caller) noexcept;
  void *reallocate_from(void *p, std::size_t size, std::size_t alignment, mesa_alloc_scope scope,
                        const void *caller) noexcept;

  friend struct internal::guard_fault_handler;
  friend struct internal::fork_locks;
  struct header;
  struct freed_record {
    const void *user;
    std::size_t size;
    std::uint64_t number;
  };
  MESA_ALLOC_PER_COPY static constexpr int kFreeFrames = 16;
  struct quarantined {
    header *h;
    void *base;
    std::size_t base_bytes;
    std::size_t block_alignment;
    const void *user;
    std::size_t size;
    std::uint64_t number;
  };
  // With record_stacks, where a block of the quarantine was freed, innermost first; kept in a
  // ring of its own (free_stacks_), slot for slot with the quarantine's, so that the quarantine
  // stays small without stacks. In guard mode, where a block was allocated too
  // (allocation_stacks()): its header is as inaccessible as the rest of it once freed.
  struct recorded_stack {
    int depth;
    bool cut;
    void *frames[kFreeFrames];
  };
  static constexpr int kFreedRecords = 256;

  void *do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override;
  static void *c_alloc(void *self, std::size_t size, std::size_t alignment, mesa_alloc_scope scope);
  static void *c_realloc(void *self, void *p, std::size_t size, std::size_t alignment,
                         mesa_alloc_scope scope);
  static void c_free(void *self, void *p);

  // The members declared inline below are the hot path, defined (and forced inline) in
  // debug_resource.cc: an allocate+free pair is then two calls deep, not six.
  //
  // Removes p from the live table and checks it; returns its header, or nullptr if p must not
  // be released (an error was reported).
  // `in_realloc`: p came through a realloc (to size 0), which its error then names.
  // `only_number`: a realloc's claim of the block it found (`bytes` its size), which another
  // thread may have freed meanwhile (and the address been given out again): taken only if it is
  // still that allocation.
  inline header *take(void *p, bool sized, std::size_t bytes, std::size_t alignment,
                      bool in_realloc = false, std::uint64_t only_number = 0) noexcept;
  inline void release(header *h) noexcept;
  // release() of a guarded block (made inaccessible in the quarantine): out of line, as it makes
  // a system call anyway, and keeps the copy of its allocation stack out of the hot path's frame.
  [[gnu::noinline]] void release_guarded(header *h) noexcept;
  // What the quarantine keeps of a block: guarded headers are inaccessible once freed.
  static quarantined quarantine_entry(header *h) noexcept;
  // allocate_block's slow path: guard pages or recorded stacks (`depth` frames, maybe 0).
  [[gnu::noinline]] void *allocate_guarded_or_traced(std::size_t size, std::size_t alignment,
                                                     mesa_alloc_scope scope, void *const *frames,
                                                     int depth) noexcept;
  // Writes the header (h, or right before `user` when nullptr) and the canary, and enters the
  // block in the live table; returns `user`, or nullptr (block released) if the table is full.
  inline void *publish(unsigned char *base, std::size_t base_bytes, unsigned char *user,
                       std::size_t size, std::size_t alignment, mesa_alloc_scope scope, int depth,
                       std::size_t tail, header *h = nullptr) noexcept;
  // reallocate_from's way out when no new block can be had: the live block p (header h, its
  // size and number as the live table had them) keeps its place and takes `size` (at most its
  // size); the bytes it gives up join its tail, which is checked at free as the canary is.
  void *shrink_in_place(void *p, std::size_t size, header *h, std::size_t old_size,
                        std::uint64_t number) noexcept;
  // `freed`: the block waits in the quarantine, where it was freed at `stack` (when recorded).
  void check_canaries(const header *h, const unsigned char *user, std::size_t size,
                      std::uint64_t number, bool freed,
                      const recorded_stack *stack = nullptr) noexcept;
  // The stack of the free being made (from its entry point's caller) into *out.
  [[gnu::noinline]] void record_free_stack(recorded_stack *out) const noexcept;
  // take()'s error paths, out of line so that the hot path keeps a small frame.
  [[gnu::cold, gnu::noinline]] void report_damaged_header(void *p, std::size_t size,
                                                          std::uint64_t number,
                                                          const header *h) noexcept;
  // Where the damaged header `h` of the block p (size, allocation number) is damaged, nearest to
  // the block, written to `where`: "at offset N" (a byte known exactly), "in the word at offsets
  // N..N+7" (a word judged inconsistent) or "somewhere in offsets N..M" (only the magic's folded
  // half tells). Returns that byte's offset, or the end of the word or range nearest the block;
  // *depth_intact says whether the word giving the stored stack's depth was left alone.
  std::ptrdiff_t locate_header_damage(const void *p, std::size_t size, std::uint64_t number,
                                      const header *h, char (&where)[64],
                                      bool *depth_intact) const noexcept;
  [[gnu::cold, gnu::noinline]] void report_size_mismatch(void *p, std::size_t size,
                                                         std::uint64_t number, const header *h,
                                                         std::size_t bytes,
                                                         std::size_t alignment) noexcept;
  // Guarded headers are inaccessible once freed: the entry keeps what eviction needs.
  // `stack`: where it was freed, with record_stacks (else nullptr).
  // `allocated`: where it was allocated, copied from its header (guard mode with record_stacks,
  // else nullptr).
  void quarantine(const quarantined &entry, const recorded_stack *stack,
                  const recorded_stack *allocated) noexcept;
  // The i-th oldest entry of the quarantine ring (with lock_ held).
  quarantined &queued(std::size_t i) const noexcept { return quarantine_[slot(i)]; }
  // Its slot in the ring (of the stack rings too).
  std::size_t slot(std::size_t i) const noexcept {
    return (quarantine_head_ + i) & (quarantine_capacity_ - 1);
  }
  bool grow_quarantine() noexcept;
  // How many stack rings the quarantine keeps: where blocks were freed (with record_stacks), and
  // in guard mode where they were allocated. They share one allocation, ring after ring.
  int stack_rings() const noexcept {
    return !options_.record_stacks ? 0 : options_.guard == guard_mode::none ? 1 : 2;
  }
  // The second ring, or nullptr.
  recorded_stack *allocation_stacks() const noexcept {
    return stack_rings() == 2 && free_stacks_ != nullptr ? free_stacks_ + quarantine_capacity_
                                                         : nullptr;
  }
  // The bookkeeping's memory (options_.bookkeeping, else the upstream); NULL on failure.
  // The upstream's allocate and deallocate, with the record of the program's free set aside: a
  // bad free the upstream's code makes through a debug layer is reported as its own call.
  inline void *upstream_allocate(std::size_t bytes, std::size_t alignment) noexcept;
  inline void upstream_deallocate(void *p, std::size_t bytes, std::size_t alignment) noexcept;
  void *bookkeeping_allocate(std::size_t bytes, std::size_t alignment) noexcept;
  void bookkeeping_deallocate(void *p, std::size_t bytes,
                              std::size_t alignment) noexcept;  // with lock_ held
  void evict(const quarantined &q, const recorded_stack *stack) noexcept;
  void report_mprotect_failure(const char *what) const noexcept;
  bool make_accessible(void *base, std::size_t bytes) const noexcept;
  void *refuse_unguarded(unsigned char *base, std::size_t base_bytes, std::size_t block_alignment,
                         std::size_t size) noexcept;
  // `freed`: where the block was freed before (nullptr: not known). The allocation stack comes
  // from `h`, else from `allocated` (a guarded block's, copied when it was freed).
  void report(debug_error_kind kind, const void *address, std::size_t size, std::uint64_t number,
              std::ptrdiff_t offset, const char *detail, const header *h,
              const recorded_stack *freed = nullptr,
              const recorded_stack *allocated = nullptr) noexcept;
  // `p` is not a live block of this resource: a live block of another debug resource (an
  // allocator mismatch), a recent free (double free, or a realloc of a freed block), or unknown.
  [[gnu::noinline]] void report_unknown_free(void *p, bool in_realloc) noexcept;
  // Asked by another resource (under the registry lock): a live block of this one, or one it
  // freed and still holds in its quarantine. A single-threaded resource answers false: its table
  // is not locked, and its thread may be changing it.
  bool owns(const void *p, std::size_t *size, std::uint64_t *number) const noexcept;
  bool freed_recently(const void *p, freed_record *freed) const noexcept;
  // The newest quarantine entry for `p` (with lock_ held), or nullptr.
  const quarantined *quarantined_block(const void *p) const noexcept;
  // What the SIGSEGV handler of guard mode reports for a fault: the error, with its own copy of
  // the detail and the block's stack, and the handler to give it to.
  struct fault_report;
  // From the SIGSEGV handler (under the registry lock when `locking`): whether `address` is this
  // resource's, a guard page of a live block or a freed block in the quarantine, and if so the
  // report in *out. The walk holds lock_ when `locking` (false: the faulting thread holds one of
  // the layer's locks already, and waiting could be for ever). For a custom handler, which lets
  // the program go on, the page is made accessible before the lock is dropped.
  bool explain_fault(const unsigned char *address, bool locking, fault_report *out) const noexcept;

  internal::direct_upstream direct_;  // the upstream
  debug_options options_;
  std::uint32_t owner_;
  mesa_allocator table_;
  std::uint64_t next_number_ = 1;  // guarded by lock_
  mutable internal::biased_lock lock_;
  internal::block_table live_;  // storage from bookkeeping (options_.bookkeeping or upstream)
  freed_record freed_[kFreedRecords] = {};
  unsigned freed_next_ = 0;
  // The quarantine: a FIFO ring (storage from bookkeeping) of freed blocks held back.
  quarantined *quarantine_ = nullptr;
  // With record_stacks: quarantine_'s, slot for slot (then allocation_stacks() in guard mode).
  recorded_stack *free_stacks_ = nullptr;
  std::size_t quarantine_capacity_ = 0;  // a power of two
  std::size_t quarantine_head_ = 0;
  std::size_t quarantine_count_ = 0;
  std::size_t quarantine_bytes_ = 0;
  std::size_t quarantine_limit_;
  // Shared libraries unloaded before this resource was made (a leak report says when more were
  // since: a stack's frames in them may be named after code loaded there later).
  unsigned long long libraries_unloaded_at_start_ = 0;
  debug_resource *next_registered_ = nullptr;  // the registry of live debug resources
};

}  // namespace mesa

#endif  // MESA_ALLOC_DEBUG_RESOURCE_H_
