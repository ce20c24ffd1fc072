#include "mesa_alloc/debug_resource.h"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/align_up.h"
#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/file_mappings.h"
#include "mesa_alloc/internal/fork_locks.h"
#include "mesa_alloc/internal/frame_names.h"
#include "mesa_alloc/internal/known_scope.h"
#include "mesa_alloc/internal/per_copy.h"
#include "mesa_alloc/internal/resource_cast.h"
#include "mesa_alloc/internal/spin_lock.h"
#include "mesa_alloc/internal/stack_trace.h"
#include "mesa_alloc/internal/tentative_request.h"

namespace mesa {
namespace internal {

// How many of this copy's debug-layer locks (the registry's, the tables') the calling thread
// holds. The SIGSEGV handler of guard mode takes those locks for its walk unless this is
// non-zero: the fault was then taken in code that runs under one (an upstream or bookkeeping
// resource growing a table), and waiting for the locks could be waiting for ever.
// initial-exec: read in a signal handler, where __tls_get_addr must not run; external linkage
// for gold (tracking_resource.cc, tracking_thread_shard).
[[gnu::tls_model("initial-exec")]] MESA_ALLOC_PER_COPY __thread int debug_locks_held = 0;

// The lowest byte of the alternate signal stack this thread's guard fault is being handled on,
// while it is; else null. From the context the kernel passes the handler, which knows the stack
// even when it was registered with SS_AUTODISARM (sigaltstack then reports none until the
// handler returns). The report reads it to see how much of the stack is left.
[[gnu::tls_model("initial-exec")]] MESA_ALLOC_PER_COPY __thread const char *guard_stack_low =
    nullptr;

// The free, realloc or quarantine flush of a debug layer this thread is in (its record lives in
// the entry point's frame): an error found in it is reported with the stack of that call, from
// where the program made it. Set by the entry points (debug_call_scope), the outermost of one
// layer's; set aside while the layer runs code not its own (its upstream, its bookkeeping, an
// error handler), whose frees are calls of their own. Initial-exec and external, as above.
struct debug_call_record {
  const void *caller;  // the return address into the code that made the call
  const void *block;   // the block freed or reallocated; null: a flush of the quarantine
  bool realloc;
};
[[gnu::tls_model(
    "initial-exec")]] MESA_ALLOC_PER_COPY __thread const debug_call_record *debug_call = nullptr;

}  // namespace internal

namespace {

constexpr std::uint64_t kMagic = 0x6e34090a6d657361ull;  // Gallium's old magic, then "mesa"
constexpr unsigned char kFreshFill = 0xCD;
constexpr unsigned char kFreedFill = 0xDD;
constexpr unsigned char kCanaryFill = 0xFD;
constexpr std::size_t kCanaryBytes = 16;
constexpr std::uint64_t kCanaryWord = 0x0101010101010101ull * kCanaryFill;
constexpr std::size_t kMinAlignment = 16;
// The largest alignment a block can have here: the header keeps it in 32 bits.
constexpr std::size_t kMaxAlignment = std::size_t{1} << 30;

// A request aligned past kMaxAlignment, refused with one line (libc might serve it), after the
// line naming the library whose copy of mesa_alloc refused, as the layer's reports do.
[[gnu::noinline, gnu::cold]] void report_alignment_over_limit(std::uint32_t owner,
                                                              std::size_t alignment) noexcept {
  internal::before_debug_report(false);
  char line[200];
  const int n = std::snprintf(line, sizeof line,
                              "mesa_alloc: debug allocator %u: alignment %zu is over the debug "
                              "layer's limit of 1 GiB; the allocation fails\n",
                              owner, alignment);
  internal::write_line(line, n, sizeof line);
}

// True, after the invalid-alignment line naming the entry point `call`, for an alignment that
// is not a power of two. Each entry point checks before allocate_from/reallocate_from.
bool alignment_refused(std::size_t alignment, const char *call) noexcept {
  if (mesa_alloc_alignment_valid(alignment)) return false;
  internal::report_invalid_alignment(call, alignment);
  return true;
}

constexpr int kMaxFrames = 16;
constexpr std::size_t kDefaultGuardQuarantine = std::size_t{16} << 20;
constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// The registry of live debug resources, to name the owner of a block freed through another.
internal::spin_lock g_registry_lock;
debug_resource *g_registry = nullptr;
std::atomic<std::uint32_t> g_next_owner{1};

// Guard mode: a SIGSEGV on a guard page or a freed block is explained before the process dies.
struct sigaction g_previous_segv;
std::atomic<bool> g_segv_installed{false};

void guard_fault(int, siginfo_t *info, void *);

void install_guard_handler() noexcept {
  if (g_segv_installed.exchange(true)) return;
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_sigaction = guard_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &g_previous_segv);
}

// Counted before a lock is taken and after it is dropped; the compiler barriers keep the count
// where the code put it, so that a fault anywhere in between finds it set.
void count_held_lock(int change) noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  internal::debug_locks_held += change;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

// lock_, unless the resource was declared single-threaded.
class table_guard {
 public:
  table_guard(internal::biased_lock &lock, bool thread_safe) noexcept
      : lock_(thread_safe ? &lock : nullptr), biased_(lock_ != nullptr && take(*lock_)) {}
  ~table_guard() {
    if (lock_ == nullptr) return;
    lock_->unlock(biased_);
    count_held_lock(-1);
  }
  table_guard(const table_guard &) = delete;
  table_guard &operator=(const table_guard &) = delete;

 private:
  static bool take(internal::biased_lock &lock) noexcept {
    count_held_lock(1);
    return lock.lock();
  }

  internal::biased_lock *lock_;
  bool biased_;
};

// g_registry_lock, when `locking`.
class registry_guard {
 public:
  explicit registry_guard(bool locking = true) noexcept : locking_(locking) {
    if (!locking_) return;
    count_held_lock(1);
    g_registry_lock.lock();
  }
  ~registry_guard() {
    if (!locking_) return;
    g_registry_lock.unlock();
    count_held_lock(-1);
  }
  registry_guard(const registry_guard &) = delete;
  registry_guard &operator=(const registry_guard &) = delete;

 private:
  const bool locking_;
};

// After a report whose stack was recorded before libraries were unloaded: its frames in them are
// named after what is loaded there now. `at_start`: the count when the layer was made. Takes the
// dynamic loader's lock: not in a signal handler.
void say_libraries_unloaded_since(unsigned long long at_start) noexcept {
  const unsigned long long unloaded = internal::libraries_unloaded() - at_start;
  if (unloaded == 0) return;
  char line[200];
  const int n =
      std::snprintf(line, sizeof line,
                    "mesa_alloc: %llu shared librar%s unloaded (dlclose) since this "
                    "debug layer was made: a frame in %s is named after what was loaded "
                    "at its address since, if anything\n",
                    unloaded, unloaded == 1 ? "y was" : "ies were", unloaded == 1 ? "it" : "one");
  internal::write_line(line, n, sizeof line);
}

// `context`: for an error report, the unload count when the layer was made (report() passes
// it); null for the leak report's blocks, whose summary says it once.
void default_handler(const debug_error &error, void *context) {
  const bool ending = error.kind != debug_error_kind::leak;
  internal::before_debug_report(ending);
  print_debug_error(error);
  if (context != nullptr && error.stack != nullptr)
    say_libraries_unloaded_since(*static_cast<const unsigned long long *>(context));
  if (ending) std::abort();
}

// For the length of a free, realloc or flush: what an error found in it is reported with (see
// debug_call). A thread-local load and store in, a store out.
class debug_call_scope {
 public:
  debug_call_scope(const void *caller, const void *block, bool realloc) noexcept
      : record_{caller, block, realloc}, outermost_(internal::debug_call == nullptr) {
    if (outermost_) internal::debug_call = &record_;
  }
  debug_call_scope(const debug_call_scope &) = delete;
  debug_call_scope &operator=(const debug_call_scope &) = delete;
  ~debug_call_scope() {
    if (outermost_) internal::debug_call = nullptr;
  }

 private:
  const internal::debug_call_record record_;
  const bool outermost_;
};

// For the length of a call out of the layer (its upstream, its bookkeeping, an error handler): a
// bad free that code makes through a debug layer is its own call, not the program's that led
// here.
class debug_call_aside {
 public:
  debug_call_aside() noexcept : saved_(internal::debug_call) { internal::debug_call = nullptr; }
  debug_call_aside(const debug_call_aside &) = delete;
  debug_call_aside &operator=(const debug_call_aside &) = delete;
  ~debug_call_aside() { internal::debug_call = saved_; }

 private:
  const internal::debug_call_record *const saved_;
};

}  // namespace

[[gnu::always_inline]] inline void *debug_resource::upstream_allocate(
    std::size_t bytes, std::size_t alignment) noexcept {
  const debug_call_aside aside;
  return direct_.try_allocate(bytes, alignment);
}

[[gnu::always_inline]] inline void debug_resource::upstream_deallocate(
    void *p, std::size_t bytes, std::size_t alignment) noexcept {
  const debug_call_aside aside;
  direct_.deallocate(p, bytes, alignment);
}

namespace {

// A size or pointer held in a whole 64-bit word, so that the block header has one layout,
// eight words, on 32- and 64-bit targets: its damage is located word by word.
template <class T>
class header_word {
 public:
  header_word &operator=(T value) noexcept {
    if constexpr (std::is_pointer_v<T>) {
      bits_ = reinterpret_cast<std::uintptr_t>(value);
    } else {
      bits_ = value;
    }
    return *this;
  }
  operator T() const noexcept { return get(); }  // NOLINT: reads as the T it holds
  std::uint64_t bits() const noexcept { return bits_; }
  T get() const noexcept {
    if constexpr (std::is_pointer_v<T>) {
      return reinterpret_cast<T>(static_cast<std::uintptr_t>(bits_));
    } else {
      return static_cast<T>(bits_);
    }
  }

 private:
  std::uint64_t bits_;
};

}  // namespace

struct debug_resource::header {
  std::uint64_t number;
  header_word<std::size_t> size;
  header_word<void *> base;             // what the upstream returned
  header_word<std::size_t> base_bytes;  // what was asked of it
  // The small fields, packed by shifts into whole words (word loads and stores only: a word
  // load over narrower stores still in flight would stall).
  std::uint64_t alignment_owner;      // alignment | owner << 32
  std::uint64_t layout;               // depth | cut << 15 | scope << 16 | guard << 24 | tail << 32
  header_word<unsigned char *> user;  // the block handed out
  // Last: adjacent to the user block (except guard_mode::before). kMagic ^ owner ^ fold(): its
  // four bytes nearest the block are the plain magic; the other four also cover the words
  // release() trusts, so a write that reaches past the magic into them is caught too.
  std::uint64_t magic;

  static constexpr int kWords = 8;
  static constexpr int kMagicWord = 7;

  static std::uint64_t pack(std::size_t alignment, std::uint32_t owner) noexcept {
    return static_cast<std::uint32_t>(alignment) | std::uint64_t{owner} << 32;
  }
  // With the depth, whether the stack went on past it (the allocation was deeper than kMaxFrames).
  static constexpr int kStackCut = 0x8000;
  static std::uint64_t pack(int depth_and_cut, mesa_alloc_scope scope, guard_mode guard,
                            std::size_t tail) noexcept {
    return static_cast<std::uint16_t>(depth_and_cut) |
           std::uint64_t{static_cast<std::uint8_t>(scope)} << 16 |
           std::uint64_t{static_cast<std::uint8_t>(guard)} << 24 |
           std::uint64_t{static_cast<std::uint32_t>(tail)} << 32;
  }
  std::uint32_t alignment() const noexcept { return static_cast<std::uint32_t>(alignment_owner); }
  std::uint32_t owner() const noexcept { return static_cast<std::uint32_t>(alignment_owner >> 32); }
  int depth() const noexcept { return static_cast<int>(layout & (kStackCut - 1)); }
  bool stack_cut() const noexcept { return (layout & kStackCut) != 0; }
  int scope() const noexcept { return static_cast<int>((layout >> 16) & 0xff); }
  guard_mode guard() const noexcept { return static_cast<guard_mode>((layout >> 24) & 0xff); }
  std::uint32_t tail() const noexcept { return static_cast<std::uint32_t>(layout >> 32); }

  // The words between `number` (checked against the live table) and `magic`, folded into the
  // half of the magic farther from the block.
  // Whole words: on a 32-bit target a write into the upper half of a pointer or size word
  // changes the fold too.
  static std::uint64_t fold(std::uint64_t size, std::uint64_t base, std::uint64_t base_bytes,
                            std::uint64_t alignment_owner, std::uint64_t layout,
                            std::uint64_t user) noexcept {
    const std::uint64_t x = size ^ base ^ base_bytes ^ alignment_owner ^ layout ^ user;
    const std::uint64_t folded = (x ^ (x >> 32)) & 0xffffffffu;
    return kLittleEndian ? folded : folded << 32;
  }
  std::uint64_t fold() const noexcept {
    return fold(size.bits(), base.bits(), base_bytes.bits(), alignment_owner, layout, user.bits());
  }
  // A block shrunk in place: `size` bytes, followed by a tail of `tail` bytes (the block's base
  // and base_bytes, what the upstream gave, stay), the magic recomputed over them.
  void resize(std::size_t new_size, std::uint32_t tail, std::uint32_t owner) noexcept {
    size = new_size;
    layout = (layout & 0xffffffffu) | std::uint64_t{tail} << 32;
    magic = kMagic ^ owner ^ fold();
  }
  // The magic or a word it folds was overwritten, or `number` is not the live table's.
  bool damaged(std::uint32_t owner, std::uint64_t table_number) const noexcept {
    return magic != (kMagic ^ owner ^ fold()) || number != table_number;
  }
  // The recorded stack lies beyond the header, seen from the block: below it, or above it in
  // guard_mode::before, so that an overrun reaches the checked header before the frames.
  void *const *frames() const noexcept {
    return guard() == guard_mode::before ? reinterpret_cast<void *const *>(this + 1)
                                         : reinterpret_cast<void *const *>(this) - depth();
  }
  std::size_t block_alignment() const noexcept {
    const std::size_t a = std::max<std::size_t>(alignment(), kMinAlignment);
    return guard() == guard_mode::none ? a : std::max(page_size(), a);
  }
};

const char *debug_error_name(debug_error_kind kind) noexcept {
  switch (kind) {
    case debug_error_kind::double_free:
      return "double free";
    case debug_error_kind::invalid_free:
      return "invalid free";
    case debug_error_kind::allocator_mismatch:
      return "allocator mismatch";
    case debug_error_kind::size_mismatch:
      return "size mismatch";
    case debug_error_kind::buffer_overrun:
      return "buffer overrun";
    case debug_error_kind::buffer_underrun:
      return "buffer underrun";
    case debug_error_kind::write_after_free:
      return "write after free";
    case debug_error_kind::leak:
      return "leak";
  }
  return "error";
}

namespace {

constexpr std::size_t kStackToNameFrames = 4096;
// Frames of a guard fault's "accessed at": the faulting function and its nearest callers.
constexpr int kAccessFrames = 4;
constexpr std::size_t kStackToLocateFrames = 2560;

// The lowest byte of the alternate signal stack this runs on (the guard handler's, else what
// sigaltstack says), or null when it runs on a thread's stack (as large as the program made it).
[[gnu::noinline]] const char *signal_stack_low() noexcept {
  if (internal::guard_stack_low != nullptr) return internal::guard_stack_low;
  stack_t current;
  if (sigaltstack(nullptr, &current) != 0 || (current.ss_flags & SS_ONSTACK) == 0) return nullptr;
  return static_cast<const char *>(current.ss_sp);
}

// The bytes between a frame below this function's (as the lookups' will be) and `low`.
[[gnu::noinline]] std::size_t stack_left_above(const char *low) noexcept {
  const auto *here = static_cast<const char *>(__builtin_frame_address(0));
  return here > low ? static_cast<std::size_t>(here - low) : 0;
}

}  // namespace

namespace {

// `title` ("allocated at", "accessed at"), then the frames, one a line, named as far as the
// stack this runs on allows. Each is a return address, whose call is the instruction before it,
// except the first when `first_is_pc` (a fault's own instruction, maybe its function's first).
void print_frames(const char *title, void *const *stack, int depth, bool cut,
                  bool first_is_pc) noexcept {
  char line[640];
  int n = std::snprintf(line, sizeof line, "    %s:\n", title);
  internal::write_line(line, n, sizeof line);
  const internal::lookup_session session;  // a frame in no mapped file: one read of the maps
  // On a guard fault's signal stack (an application's: 8 KiB is common), what is left of it
  // decides how much of each frame is looked up (frame_names.cc measures about 3 KiB to name a
  // frame, 2 KiB to locate it); the addresses are printed whatever is left.
  const char *stack_low = signal_stack_low();
  const std::size_t left = stack_low == nullptr ? SIZE_MAX : stack_left_above(stack_low);
  const bool named = left >= kStackToNameFrames, located = left >= kStackToLocateFrames;
  if (!named) {
    n = std::snprintf(line, sizeof line,
                      "    (function names%s left out: %zu bytes of signal stack left)\n",
                      located ? "" : " and locations", left);
    internal::write_line(line, n, sizeof line);
  }
  for (int i = 0; i < depth; ++i) {
    char symbol[256] = "";
    // A return address points after the call: look up the byte before it.
    const char *code = static_cast<char *>(stack[i]) - (i == 0 && first_is_pc ? 0 : 1);
    if (named && !internal::frame_symbol(code, symbol, sizeof symbol, stack_low))
      std::strcpy(symbol, "(unknown)");
    char where[320] = "";
    if (located) internal::frame_location(stack[i], where, sizeof where);
    n = std::snprintf(line, sizeof line, "    #%d %p%s%s%s\n", i, stack[i], named ? " " : "",
                      symbol, where);
    internal::write_line(line, n, sizeof line);
  }
  if (cut) {
    n = std::snprintf(line, sizeof line,
                      "    ... (deeper frames not recorded: a stack keeps its %d innermost)\n",
                      depth);
    internal::write_line(line, n, sizeof line);
  }
}

// print_debug_error, with the code that made a guard page's bad access (`access`, innermost
// first; none elsewhere) before the block's allocation stack.
void print_error(const debug_error &e, void *const *access, int access_depth) noexcept {
  char size[32] = "?", number[32] = "?";
  if (e.allocation != 0) {
    std::snprintf(size, sizeof size, "%zu", e.size);
    std::snprintf(number, sizeof number, "#%" PRIu64, e.allocation);
  }
  char line[640];
  const int n = std::snprintf(line, sizeof line, "mesa_alloc: %s at %p size %s allocation %s%s%s\n",
                              debug_error_name(e.kind), e.address, size, number,
                              e.detail[0] != '\0' ? ": " : "", e.detail);
  internal::write_line(line, n, sizeof line);
  if (access_depth > 0) print_frames("accessed at", access, access_depth, false, true);
  if (e.call_stack != nullptr && e.call_stack_depth > 0)
    print_frames(e.call_title != nullptr ? e.call_title : "found at", e.call_stack,
                 e.call_stack_depth, e.call_stack_cut, false);
  if (e.free_stack != nullptr && e.free_stack_depth > 0)
    print_frames("previously freed at", e.free_stack, e.free_stack_depth, e.free_stack_cut, false);
  if (e.stack != nullptr && e.stack_depth > 0)
    print_frames("allocated at", e.stack, e.stack_depth, e.stack_cut, false);
}

}  // namespace

void print_debug_error(const debug_error &e) noexcept { print_error(e, nullptr, 0); }

debug_resource::debug_resource(std::pmr::memory_resource *upstream,
                               const debug_options &options) noexcept
    : direct_(upstream, "debug_resource::allocate"),
      options_(options),
      owner_(g_next_owner.fetch_add(1, std::memory_order_relaxed)),
      table_{this, &c_alloc, &c_realloc, &c_free, nullptr, nullptr},
      live_(options.bookkeeping != nullptr ? options.bookkeeping : upstream),
      quarantine_limit_(options.quarantine_bytes) {
  static_assert(sizeof(header) == 64, "the documented header size");
  if (upstream == nullptr) internal::report_null_resource("debug_resource", "upstream resource");
  if (options_.handler == nullptr) options_.handler = default_handler;
  internal::want_callers();  // an error's report shows the bad call's stack from its caller
  if (options_.record_stacks) libraries_unloaded_at_start_ = internal::libraries_unloaded();
  internal::register_fork_handlers();
  if (options_.guard != guard_mode::none && quarantine_limit_ == 0)
    quarantine_limit_ = kDefaultGuardQuarantine;
  if (options_.guard != guard_mode::none) install_guard_handler();
  const registry_guard lock;
  next_registered_ = g_registry;
  g_registry = this;
}

debug_resource::~debug_resource() {
  if (options_.report_leaks_on_destroy) report_leaks();
  {
    // What the flush finds is reported from the code that destroyed the layer.
    const debug_call_scope call(internal::api_call::caller_or(__builtin_return_address(0)), nullptr,
                                false);
    flush_quarantine();
  }
  {
    const registry_guard lock;
    for (debug_resource **link = &g_registry; *link != nullptr; link = &(*link)->next_registered_) {
      if (*link == this) {
        *link = next_registered_;
        break;
      }
    }
  }
  live_.release();
  if (quarantine_ != nullptr)
    bookkeeping_deallocate(quarantine_, quarantine_capacity_ * sizeof(quarantined),
                           alignof(quarantined));
  if (free_stacks_ != nullptr)
    bookkeeping_deallocate(free_stacks_,
                           quarantine_capacity_ * stack_rings() * sizeof(recorded_stack),
                           alignof(recorded_stack));
}

void *debug_resource::bookkeeping_allocate(std::size_t bytes, std::size_t alignment) noexcept {
  const debug_call_aside aside;
  if (options_.bookkeeping == nullptr) return direct_.try_allocate(bytes, alignment);
  try {
    return options_.bookkeeping->allocate(bytes, alignment);
  } catch (...) {
    return nullptr;
  }
}

void debug_resource::bookkeeping_deallocate(void *p, std::size_t bytes,
                                            std::size_t alignment) noexcept {
  const debug_call_aside aside;
  if (options_.bookkeeping == nullptr) return direct_.deallocate(p, bytes, alignment);
  options_.bookkeeping->deallocate(p, bytes, alignment);
}

void *debug_resource::allocate_block(std::size_t size, std::size_t alignment,
                                     mesa_alloc_scope scope) noexcept {
  if (alignment_refused(alignment, "debug_resource::allocate_block")) return nullptr;
  return allocate_from(size, alignment, scope,
                       internal::api_call::caller_or(__builtin_return_address(0)));
}

void *debug_resource::allocate_from(std::size_t size, std::size_t alignment, mesa_alloc_scope scope,
                                    const void *caller) noexcept {
  if (alignment > kMaxAlignment) {
    report_alignment_over_limit(owner_, alignment);
    return nullptr;
  }
  if (size > (SIZE_MAX >> 2)) return nullptr;
  if (options_.guard != guard_mode::none || options_.record_stacks) {
    // One frame more than is kept: if it is there, the stack is cut, and the reports say so.
    void *frames[kMaxFrames + 1];
    const int depth =
        options_.record_stacks
            ? internal::capture_stack(frames, kMaxFrames + 1, caller,
                                      options_.unwinder == stack_unwinder::unwind_tables)
            : 0;
    return allocate_guarded_or_traced(size, alignment, scope, frames, depth);
  }
  // Cookie mode: [header][user block][canary], the header right before the block.
  const std::size_t a = std::max(alignment, kMinAlignment);
  const std::size_t offset = internal::align_up(sizeof(header), a);
  const std::size_t tail = options_.cookie ? kCanaryBytes : 0;
  const std::size_t base_bytes = offset + size + tail;
  unsigned char *base;
  {
    const internal::foreign_call call(direct_.table());
    base = static_cast<unsigned char *>(upstream_allocate(base_bytes, a));
  }
  if (base == nullptr) return nullptr;
  return publish(base, base_bytes, base + offset, size, alignment, scope, 0, tail);
}

// One line per process: the first failure says why (usually the kernel's limit on mappings, each
// guard page splitting one); later ones are only counted in the refused allocations.
void debug_resource::report_mprotect_failure(const char *what) const noexcept {
  static std::atomic<bool> said{false};
  if (said.exchange(true)) return;
  const int error = errno;
  char line[320];
  const int n = std::snprintf(line, sizeof line,
                              "mesa_alloc: debug allocator %u: guard pages: %s (mprotect: %s; "
                              "raise vm.max_map_count for more guarded blocks); later failures "
                              "are not reported\n",
                              owner_, what, std::strerror(error));
  internal::write_line(line, n, sizeof line);
}

// A guarded block's pages (a guard page, or all of them in the quarantine) made readable and
// writable again before they go back upstream. If the kernel refuses, they are kept out of use
// (upstream would fault on them), and false.
bool debug_resource::make_accessible(void *base, std::size_t bytes) const noexcept {
  if (mprotect(base, bytes, PROT_READ | PROT_WRITE) == 0) return true;
  report_mprotect_failure(
      "a freed block's pages could not be made accessible again; they are kept out of use");
  return false;
}

// The guard page could not be set: the block is given back and the allocation fails, rather
// than handing out a block whose overruns would go unseen.
void *debug_resource::refuse_unguarded(unsigned char *base, std::size_t base_bytes,
                                       std::size_t block_alignment, std::size_t size) noexcept {
  char what[96];
  std::snprintf(what, sizeof what, "no guard page for a %zu-byte block; the allocation fails",
                size);
  report_mprotect_failure(what);
  upstream_deallocate(base, base_bytes, block_alignment);
  return nullptr;
}

void *debug_resource::allocate_guarded_or_traced(std::size_t size, std::size_t alignment,
                                                 mesa_alloc_scope scope, void *const *frames,
                                                 int depth) noexcept {
  const bool cut = depth > kMaxFrames;  // kMaxFrames are kept
  if (cut) depth = kMaxFrames;
  const std::size_t frame_bytes = static_cast<std::size_t>(depth) * sizeof(void *);
  const std::size_t a = std::max(alignment, kMinAlignment);
  const std::size_t page = options_.guard == guard_mode::none ? 0 : page_size();
  std::size_t base_bytes, block_alignment;
  switch (options_.guard) {
    case guard_mode::none:
      base_bytes = internal::align_up(frame_bytes + sizeof(header), a) + size +
                   (options_.cookie ? kCanaryBytes : 0);
      block_alignment = a;
      break;
    case guard_mode::after:
      base_bytes = internal::align_up(frame_bytes + sizeof(header) + size + a, page) + page;
      block_alignment = std::max(page, a);
      break;
    case guard_mode::before:
    default:
      block_alignment = std::max(page, a);
      base_bytes = block_alignment +
                   internal::align_up(size + kCanaryBytes + frame_bytes + sizeof(header), page);
      break;
  }
  unsigned char *base;
  {
    const internal::foreign_call call(direct_.table());
    base = static_cast<unsigned char *>(upstream_allocate(base_bytes, block_alignment));
  }
  if (base == nullptr) return nullptr;
  unsigned char *user;
  header *h;
  std::size_t tail;
  switch (options_.guard) {
    case guard_mode::none:
      user = base + internal::align_up(frame_bytes + sizeof(header), a);
      h = reinterpret_cast<header *>(user) - 1;
      tail = options_.cookie ? kCanaryBytes : 0;
      break;
    case guard_mode::after: {
      unsigned char *guard = base + base_bytes - page;
      user = reinterpret_cast<unsigned char *>(reinterpret_cast<std::uintptr_t>(guard - size) &
                                               ~static_cast<std::uintptr_t>(a - 1));
      h = reinterpret_cast<header *>(user) - 1;
      tail = static_cast<std::size_t>(guard - (user + size));
      if (mprotect(guard, page, PROT_NONE) != 0)
        return refuse_unguarded(base, base_bytes, block_alignment, size);
      break;
    }
    case guard_mode::before:
    default:
      // [guard page][block][tail][header][frames]: the tail reaches the header.
      user = base + block_alignment;
      h = reinterpret_cast<header *>(base + base_bytes - frame_bytes) - 1;
      tail = static_cast<std::size_t>(reinterpret_cast<unsigned char *>(h) - (user + size));
      if (mprotect(base, block_alignment, PROT_NONE) != 0)
        return refuse_unguarded(base, base_bytes, block_alignment, size);
      break;
  }
  if (depth > 0) {
    void **to = options_.guard == guard_mode::before ? reinterpret_cast<void **>(h + 1)
                                                     : reinterpret_cast<void **>(h) - depth;
    std::memcpy(to, frames, frame_bytes);
  }
  return publish(base, base_bytes, user, size, alignment, scope,
                 cut ? depth | header::kStackCut : depth, tail, h);
}

[[gnu::always_inline]] inline void *debug_resource::publish(
    unsigned char *base, std::size_t base_bytes, unsigned char *user, std::size_t size,
    std::size_t alignment, mesa_alloc_scope scope, int depth_and_cut, std::size_t tail,
    header *h) noexcept {
  if (h == nullptr) h = reinterpret_cast<header *>(user) - 1;
  // Field by field from registers: a copy of a local header would be stored to the stack and
  // read back in 16-byte pieces, each stalling on the two 8-byte stores it spans.
  const std::uint64_t alignment_owner = header::pack(alignment, owner_);
  const std::uint64_t layout =
      header::pack(depth_and_cut, internal::known_scope(scope), options_.guard, tail);
  h->number = 0;
  h->size = size;
  h->base = base;
  h->base_bytes = base_bytes;
  h->alignment_owner = alignment_owner;
  h->layout = layout;
  h->user = user;
  h->magic = kMagic ^ owner_ ^
             header::fold(size, reinterpret_cast<std::uintptr_t>(base), base_bytes, alignment_owner,
                          layout, reinterpret_cast<std::uintptr_t>(user));
  if (options_.fill) std::memset(user, kFreshFill, size);
  if (tail == kCanaryBytes) {  // the common case: two stores, no memset call
    std::memcpy(user + size, &kCanaryWord, 8);
    std::memcpy(user + size + 8, &kCanaryWord, 8);
  } else if (tail > 0) {
    std::memset(user + size, kCanaryFill, tail);
  }
  bool inserted;
  {
    const table_guard lock(lock_, options_.thread_safe);
    h->number = next_number_;
    inserted = live_.insert(user, h, size, next_number_);
    next_number_ += inserted;
  }
  if (!inserted) {
    release(h);
    return nullptr;
  }
  return user;
}

[[gnu::always_inline]] inline debug_resource::header *debug_resource::take(
    void *p, bool sized, std::size_t bytes, std::size_t alignment, bool in_realloc,
    std::uint64_t only_number) noexcept {
  internal::block_entry e{};
  bool found, reused = false;
  {
    const table_guard lock(lock_, options_.thread_safe);
    if (only_number != 0) {
      const internal::block_entry *live = live_.find(p);
      reused = live != nullptr && live->number != only_number;
    }
    found = !reused && live_.erase(p, &e);
    if (found) {
      freed_[freed_next_ % kFreedRecords] = freed_record{p, e.size, e.number};
      ++freed_next_;
    }
  }
  if (reused) {  // freed by another thread, and the address given to a new block since
    report(debug_error_kind::double_free, p, bytes, only_number, 0,
           "realloc of a block another thread freed meanwhile (the address is now another "
           "allocation's, left alone)",
           nullptr);
    return nullptr;
  }
  if (!found) {
    report_unknown_free(p, in_realloc);
    return nullptr;
  }
  header *h = static_cast<header *>(e.header);
  if (h->damaged(owner_, e.number)) {
    report_damaged_header(p, e.size, e.number, h);
    return nullptr;
  }
  if (sized && (bytes != e.size || alignment != h->alignment()))
    report_size_mismatch(p, e.size, e.number, h, bytes, alignment);
  // The tail: the cookie mode's canary, or in guard mode the slack before the guard page (an
  // overrun of a size that is not a multiple of the alignment stays short of the page).
  if (h->tail() != 0) {
    bool intact = false;
    if (h->tail() == kCanaryBytes) {  // the common case, inline
      const unsigned char *tail = static_cast<unsigned char *>(p) + e.size;
      std::uint64_t a, b;
      std::memcpy(&a, tail, 8);
      std::memcpy(&b, tail + 8, 8);
      intact = a == kCanaryWord && b == kCanaryWord;
    }
    if (!intact) check_canaries(h, static_cast<unsigned char *>(p), e.size, e.number, false);
  }
  return h;
}

std::ptrdiff_t debug_resource::locate_header_damage(const void *p, std::size_t size,
                                                    std::uint64_t number, const header *h,
                                                    char (&where)[64],
                                                    bool *depth_intact) const noexcept {
  // Which header bytes were overwritten? number, size and user are known exactly (from the live
  // table), and so is the plain half of the magic; without guard pages base and base_bytes
  // follow from the alignment and the stack depth. The small fields must be consistent with the
  // block and the options.
  std::uint64_t got[header::kWords], want[header::kWords];
  std::memcpy(got, h, sizeof got);
  std::memcpy(want, got, sizeof want);
  bool exact[header::kWords] = {}, bad[header::kWords] = {};
  auto expect = [&](int word, std::uint64_t value) {
    exact[word] = true;
    want[word] = value;
    bad[word] = got[word] != value;
  };
  const auto user = reinterpret_cast<std::uintptr_t>(p);
  expect(0, number);
  expect(1, size);
  expect(6, user);
  bad[4] = h->owner() != owner_ || !mesa_alloc_alignment_valid(h->alignment()) ||
           user % h->alignment() != 0;
  const bool guarded = options_.guard != guard_mode::none;
  const std::size_t canary = options_.cookie ? kCanaryBytes : 0;
  bad[5] = h->guard() != options_.guard || h->scope() >= MESA_ALLOC_SCOPE_COUNT ||
           h->depth() > kMaxFrames || (!options_.record_stacks && h->depth() != 0) ||
           (!guarded && h->tail() < canary) || (guarded && h->tail() > h->base_bytes);
  if (!guarded && !bad[4] && !bad[5]) {
    const std::size_t offset =
        internal::align_up(h->depth() * sizeof(void *) + sizeof(header),
                           std::max<std::size_t>(h->alignment(), kMinAlignment));
    expect(2, user - offset);
    // A tail longer than the canary is a block shrunk in place, and base_bytes agrees with it.
    // Where they disagree, the tail word (the nearer to the block) is taken as the damaged one:
    // right for a block never shrunk; for a shrunk one a damaged base_bytes is named so too (the
    // magic's fold cannot tell the two apart: the tail folds onto base_bytes' low half).
    const std::uint64_t end = std::uint64_t{offset} + size;
    if (h->tail() == canary || h->base_bytes == end + h->tail()) {
      expect(3, end + h->tail());
    } else {
      bad[5] = true;
      bad[3] = h->base_bytes < end + canary;
    }
  } else {
    const auto base = reinterpret_cast<std::uintptr_t>(h->base.get());
    bad[2] = bad[3] =
        !(base <= user && h->base_bytes >= size && user - base <= h->base_bytes - size);
  }
  // The folded half of the magic covers words 1..6. With the exact words put right, it still
  // differs when it was overwritten itself, or when a word judged only by consistency was
  // changed to another consistent value (a scope, say): the damage then lies somewhere from the
  // lowest such word to the folded half, and is named as that range, never as one byte.
  header restored;
  std::memcpy(&restored, want, sizeof restored);
  want[header::kMagicWord] = kMagic ^ owner_ ^ restored.fold();
  const std::uint64_t folded_half = kLittleEndian ? 0xffffffffull : 0xffffffffull << 32;
  int lowest_judged = header::kMagicWord;
  bool judged_bad = false;
  for (int i = header::kMagicWord - 1; i >= 1; --i) {
    if (exact[i]) continue;
    lowest_judged = i;
    judged_bad |= bad[i];
  }
  const bool fold_differs =
      ((got[header::kMagicWord] ^ want[header::kMagicWord]) & folded_half) != 0;
  auto plain_half = [](int byte) { return (byte % 8 >= 4) == kLittleEndian; };
  // Per byte: known exactly (compare), in a word judged inconsistent (name the word), or in the
  // folded half (name the range it stands for).
  const auto *bytes = reinterpret_cast<const unsigned char *>(got);
  const auto *wanted = reinterpret_cast<const unsigned char *>(want);
  // The damaged byte nearest to the block: the header is below it (above it in
  // guard_mode::before, where reaching it is an overrun).
  const bool after_block = options_.guard == guard_mode::before;
  constexpr int kBytes = static_cast<int>(sizeof(header));
  int nearest = after_block ? 0 : kBytes - 1;
  enum { kWord, kByte, kRange } found = kWord;
  for (int k = 0; k < kBytes; ++k) {
    const int byte = after_block ? k : kBytes - 1 - k;
    const int word = byte / 8;
    if (word == header::kMagicWord && !plain_half(byte)) {
      if (!fold_differs || judged_bad) continue;
      nearest = after_block ? lowest_judged * 8 : byte;
      found = kRange;
      break;
    }
    const bool known = exact[word] || word == header::kMagicWord;
    if (known ? bytes[byte] != wanted[byte] : bad[word]) {
      nearest = byte;
      found = known ? kByte : kWord;
      break;
    }
  }
  const auto *start = reinterpret_cast<const unsigned char *>(h);
  const auto *block = static_cast<const unsigned char *>(p);
  const std::ptrdiff_t offset = start + nearest - block;
  const std::ptrdiff_t word_offset = start + nearest / 8 * 8 - block;
  if (found == kByte) {
    std::snprintf(where, sizeof where, "at offset %td", offset);
  } else if (found == kWord) {
    std::snprintf(where, sizeof where, "in the word at offsets %td..%td", word_offset,
                  word_offset + 7);
  } else {
    const std::ptrdiff_t low = start + lowest_judged * 8 - block;
    const std::ptrdiff_t high = start + header::kMagicWord * 8 + (kLittleEndian ? 3 : 7) - block;
    std::snprintf(where, sizeof where, "somewhere in offsets %td..%td", low, high);
  }
  // The layout word may have been changed to another consistent depth, which would read the
  // frames from the wrong place, maybe outside the block: then the magic's fold differs with no
  // inconsistent word to explain it. A damaged folded half looks the same, and loses the stack
  // too.
  *depth_intact = !bad[5] && (!fold_differs || judged_bad);
  return offset;
}

void debug_resource::report_damaged_header(void *p, std::size_t size, std::uint64_t number,
                                           const header *h) noexcept {
  char where[64];
  bool depth_intact;
  const std::ptrdiff_t offset = locate_header_damage(p, size, number, h, where, &depth_intact);
  const bool after_block = options_.guard == guard_mode::before;
  char detail[160];
  std::snprintf(detail, sizeof detail,
                "the block header %s the block was overwritten %s; block not released",
                after_block ? "after" : "before", where);
  // The stored stack is trusted only if the word that says how deep it is was not damaged: the
  // frames lie beyond the header, seen from the block (below it, or above it in
  // guard_mode::before), so a write that ran on into them ran through that word first.
  report(after_block ? debug_error_kind::buffer_overrun : debug_error_kind::buffer_underrun, p,
         size, number, offset, detail, depth_intact ? h : nullptr);
}

void debug_resource::report_size_mismatch(void *p, std::size_t size, std::uint64_t number,
                                          const header *h, std::size_t bytes,
                                          std::size_t alignment) noexcept {
  char detail[160];
  std::snprintf(detail, sizeof detail,
                "deallocate(%zu bytes, alignment %zu) for a block of %zu bytes, alignment %u",
                bytes, alignment, size, h->alignment());
  report(debug_error_kind::size_mismatch, p, size, number, 0, detail, h);
}

// `freed`: the block waits in the quarantine (a write after free; `stack`: where it was freed,
// when recorded) rather than being freed now (an overrun).
void debug_resource::check_canaries(const header *h, const unsigned char *user, std::size_t size,
                                    std::uint64_t number, bool freed,
                                    const recorded_stack *stack) noexcept {
  const unsigned char *tail = user + size;
  // The canary compared 8 bytes at a time.
  constexpr std::uint64_t kWord = kCanaryWord;
  std::uint32_t words = h->tail() / 8;
  bool intact = true;
  for (std::uint32_t i = 0; i < words && intact; ++i) {
    std::uint64_t w;
    std::memcpy(&w, tail + 8 * i, 8);
    intact = w == kWord;
  }
  for (std::uint32_t i = 8 * words; i < h->tail() && intact; ++i) intact = tail[i] == kCanaryFill;
  if (__builtin_expect(intact, 1)) return;
  for (std::uint32_t i = 0; i < h->tail(); ++i) {
    if (tail[i] != kCanaryFill) {
      char detail[112];
      std::snprintf(detail, sizeof detail, "byte %zu (%u past the end)%s was overwritten%s",
                    size + i, i, freed ? " of the freed block" : "",
                    freed ? " while in quarantine" : "");
      report(freed ? debug_error_kind::write_after_free : debug_error_kind::buffer_overrun, user,
             size, number, static_cast<std::ptrdiff_t>(size + i), detail, h, stack);
      return;
    }
  }
}

debug_resource::quarantined debug_resource::quarantine_entry(header *h) noexcept {
  return quarantined{h, h->base, h->base_bytes, h->block_alignment(), h->user, h->size, h->number};
}

[[gnu::always_inline]] inline void debug_resource::release(header *h) noexcept {
  if (h->guard() != guard_mode::none) return release_guarded(h);
  if (quarantine_limit_ == 0) {
    if (options_.fill) std::memset(h->user, kFreedFill, h->size);
    return upstream_deallocate(h->base, h->base_bytes, h->block_alignment());
  }
  std::memset(h->user, kFreedFill, h->size);
  // An overrun of the live block was reported at this free: the quarantine checks afresh.
  std::memset(h->user + h->size, kCanaryFill, h->tail());
  recorded_stack stack;  // written only as deep as the stack goes
  if (options_.record_stacks) record_free_stack(&stack);
  quarantine(quarantine_entry(h), options_.record_stacks ? &stack : nullptr, nullptr);
}

void debug_resource::release_guarded(header *h) noexcept {
  const quarantined entry = quarantine_entry(h);
  // Where it is freed, and where it was allocated, from its header while that can still be read.
  static_assert(kMaxFrames <= kFreeFrames, "a header's frames fit a recorded_stack");
  recorded_stack stack, allocated;
  if (options_.record_stacks) {
    record_free_stack(&stack);
    allocated.depth = h->depth();
    allocated.cut = h->stack_cut();
    std::memcpy(allocated.frames, h->frames(),
                static_cast<std::size_t>(allocated.depth) * sizeof(void *));
  }
  // Guarded blocks are inaccessible until they leave the quarantine: a use after free faults.
  // Where the kernel refuses (its map limit), the block is released at once instead, once its
  // guard page is accessible again (or kept out of use if that is refused too).
  if (mprotect(h->base, h->base_bytes, PROT_NONE) != 0) {
    if (make_accessible(entry.base, entry.base_bytes))
      upstream_deallocate(entry.base, entry.base_bytes, entry.block_alignment);
    return;
  }
  quarantine(entry, options_.record_stacks ? &stack : nullptr,
             options_.record_stacks ? &allocated : nullptr);
}

void debug_resource::record_free_stack(recorded_stack *out) const noexcept {
  out->depth = 0;
  out->cut = false;
  if (internal::debug_call == nullptr) return;  // not a free of the program's (a block refused)
  void *frames[kFreeFrames + 1];
  const int depth = internal::capture_stack(frames, kFreeFrames + 1, internal::debug_call->caller,
                                            options_.unwinder == stack_unwinder::unwind_tables);
  out->depth = std::min(depth, kFreeFrames);
  out->cut = depth > kFreeFrames;
  std::memcpy(out->frames, frames, static_cast<std::size_t>(out->depth) * sizeof(void *));
}

// Evicts the oldest blocks, eight at a time outside the lock, until the quarantine is within
// its limit again: a large block freed behind many small ones must not keep it over for
// hundreds of frees.
void debug_resource::quarantine(const quarantined &entry, const recorded_stack *stack,
                                const recorded_stack *allocated) noexcept {
  bool held = false;
  const bool stacks = stack != nullptr;  // then free_stacks_ is kept, from the first growth on
  for (bool first = true, over = true; over; first = false) {
    quarantined victims[8];
    recorded_stack victim_stacks[8];
    int count = 0;
    {
      const table_guard lock(lock_, options_.thread_safe);
      if (first && (quarantine_count_ < quarantine_capacity_ || grow_quarantine())) {
        queued(quarantine_count_) = entry;
        if (stacks) free_stacks_[slot(quarantine_count_)] = *stack;
        if (allocated != nullptr) allocation_stacks()[slot(quarantine_count_)] = *allocated;
        ++quarantine_count_;
        quarantine_bytes_ += entry.base_bytes;
        held = true;
      }
      while (quarantine_count_ > 0 && count < 8 && quarantine_bytes_ > quarantine_limit_) {
        if (stacks) victim_stacks[count] = free_stacks_[quarantine_head_];
        victims[count++] = quarantine_[quarantine_head_];
        quarantine_head_ = (quarantine_head_ + 1) & (quarantine_capacity_ - 1);
        --quarantine_count_;
        quarantine_bytes_ -= victims[count - 1].base_bytes;
      }
      over = quarantine_count_ > 0 && quarantine_bytes_ > quarantine_limit_;
    }
    for (int i = 0; i < count; ++i) evict(victims[i], stacks ? &victim_stacks[i] : nullptr);
  }
  if (!held) evict(entry, stack);  // no room to hold it: release at once
}

bool debug_resource::grow_quarantine() noexcept {
  const std::size_t capacity = quarantine_capacity_ == 0 ? 256 : quarantine_capacity_ * 2;
  auto *fresh = static_cast<quarantined *>(
      bookkeeping_allocate(capacity * sizeof(quarantined), alignof(quarantined)));
  if (fresh == nullptr) return false;
  const int rings = stack_rings();
  recorded_stack *fresh_stacks = nullptr;
  if (rings > 0) {
    fresh_stacks = static_cast<recorded_stack *>(
        bookkeeping_allocate(capacity * rings * sizeof(recorded_stack), alignof(recorded_stack)));
    if (fresh_stacks == nullptr) {
      bookkeeping_deallocate(fresh, capacity * sizeof(quarantined), alignof(quarantined));
      return false;
    }
  }
  for (std::size_t i = 0; i < quarantine_count_; ++i) {
    fresh[i] = queued(i);
    for (int r = 0; r < rings; ++r)
      fresh_stacks[r * capacity + i] = free_stacks_[r * quarantine_capacity_ + slot(i)];
  }
  if (quarantine_ != nullptr)
    bookkeeping_deallocate(quarantine_, quarantine_capacity_ * sizeof(quarantined),
                           alignof(quarantined));
  if (free_stacks_ != nullptr)
    bookkeeping_deallocate(free_stacks_, quarantine_capacity_ * rings * sizeof(recorded_stack),
                           alignof(recorded_stack));
  free_stacks_ = fresh_stacks;
  quarantine_ = fresh;
  quarantine_capacity_ = capacity;
  quarantine_head_ = 0;
  return true;
}

void debug_resource::evict(const quarantined &q, const recorded_stack *stack) noexcept {
  if (options_.guard != guard_mode::none) {
    // Made inaccessible by release(); give the pages back their access.
    if (!make_accessible(q.base, q.base_bytes)) return;
  } else if (const header *h = q.h; h->damaged(owner_, q.number)) {
    char where[64];
    bool depth_intact;
    const std::ptrdiff_t offset =
        locate_header_damage(q.user, q.size, q.number, h, where, &depth_intact);
    char detail[160];
    std::snprintf(detail, sizeof detail,
                  "the block header before the freed block was overwritten %s while in quarantine",
                  where);
    report(debug_error_kind::write_after_free, q.user, q.size, q.number, offset, detail,
           depth_intact ? h : nullptr, stack);
  } else {
    const auto *user = static_cast<const unsigned char *>(q.user);
    constexpr std::uint64_t kFreedWord = 0x0101010101010101ull * kFreedFill;
    std::size_t i = 0;  // skip the intact 8-byte words, then find the byte
    for (std::uint64_t w; i + 8 <= q.size; i += 8) {
      std::memcpy(&w, user + i, 8);
      if (w != kFreedWord) break;
    }
    while (i < q.size && user[i] == kFreedFill) ++i;
    if (i < q.size) {
      char detail[96];
      std::snprintf(detail, sizeof detail,
                    "byte %zu of the freed block was overwritten while in quarantine", i);
      report(debug_error_kind::write_after_free, user, q.size, q.number,
             static_cast<std::ptrdiff_t>(i), detail, h, stack);
    } else {
      // Past the end: the canary is still the block's (a stale pointer's p[size] lands there).
      check_canaries(h, user, q.size, q.number, true, stack);
    }
  }
  upstream_deallocate(q.base, q.base_bytes, q.block_alignment);
}

void debug_resource::flush_quarantine() noexcept {
  const debug_call_scope call(internal::api_call::caller_or(__builtin_return_address(0)), nullptr,
                              false);
  for (;;) {
    quarantined victim;
    recorded_stack victim_stack;
    {
      const table_guard lock(lock_, options_.thread_safe);
      if (quarantine_count_ == 0) break;
      victim = quarantine_[quarantine_head_];
      if (free_stacks_ != nullptr) victim_stack = free_stacks_[quarantine_head_];
      quarantine_head_ = (quarantine_head_ + 1) & (quarantine_capacity_ - 1);
      --quarantine_count_;
      quarantine_bytes_ -= victim.base_bytes;
    }
    evict(victim, free_stacks_ != nullptr ? &victim_stack : nullptr);
  }
}

void debug_resource::report(debug_error_kind kind, const void *address, std::size_t size,
                            std::uint64_t number, std::ptrdiff_t offset, const char *detail,
                            const header *h, const recorded_stack *freed,
                            const recorded_stack *allocated) noexcept {
  debug_error e{kind, address, size, number, offset, detail != nullptr ? detail : "", nullptr, 0};
  if (h != nullptr && h->depth() > 0) {
    e.stack = h->frames();
    e.stack_depth = h->depth();
    e.stack_cut = h->stack_cut();
  } else if (h == nullptr && allocated != nullptr && allocated->depth > 0) {
    e.stack = allocated->frames;
    e.stack_depth = allocated->depth;
    e.stack_cut = allocated->cut;
  }
  if (freed != nullptr && freed->depth > 0) {
    e.free_stack = freed->frames;
    e.free_stack_depth = freed->depth;
    e.free_stack_cut = freed->cut;
  }
  // Where: the stack of the free, realloc or flush this error was found in.
  void *call_frames[kMaxFrames + 1];
  char title[96];
  if (internal::debug_call != nullptr && kind != debug_error_kind::leak) {
    const internal::debug_call_record &call = *internal::debug_call;
    const int depth = internal::capture_stack(call_frames, kMaxFrames + 1, call.caller, true);
    e.call_stack = call_frames;
    e.call_stack_depth = std::min(depth, kMaxFrames);
    e.call_stack_cut = depth > kMaxFrames;
    if (call.block == nullptr) {
      e.call_title = "found while emptying the quarantine at";
    } else if (call.block == address) {
      e.call_title = call.realloc ? "reallocated at" : "freed at";
    } else {
      std::snprintf(title, sizeof title, "found in the %s of %p at",
                    call.realloc ? "realloc" : "free", call.block);
      e.call_title = title;
    }
  }
  const debug_call_aside call_aside;       // the handler's frees are calls of its own
  const internal::caller_set_aside aside;  // errors are found inside C API calls
  if (options_.handler == default_handler) {
    default_handler(e, &libraries_unloaded_at_start_);
    return;
  }
  options_.handler(e, options_.handler_context);
}

bool debug_resource::owns(const void *p, std::size_t *size, std::uint64_t *number) const noexcept {
  if (!options_.thread_safe) return false;
  const table_guard lock(lock_, true);
  const internal::block_entry *e = live_.find(p);
  if (e == nullptr) return false;
  *size = e->size;
  *number = e->number;
  return true;
}

// Only the quarantine: its blocks are still held, so their addresses cannot have been handed out
// again (the ring of recent frees may name an address another allocator has reused since).
bool debug_resource::freed_recently(const void *p, freed_record *freed) const noexcept {
  if (!options_.thread_safe) return false;
  const table_guard lock(lock_, true);
  const quarantined *q = quarantined_block(p);
  if (q != nullptr) *freed = freed_record{q->user, q->size, q->number};
  return q != nullptr;
}

const debug_resource::quarantined *debug_resource::quarantined_block(const void *p) const noexcept {
  for (std::size_t i = quarantine_count_; i > 0; --i) {
    const quarantined &q = queued(i - 1);
    if (q.user == p) return &q;
  }
  return nullptr;
}

struct debug_resource::fault_report {
  debug_error error;
  char detail[96];
  void *frames[kMaxFrames];
  void *freed_at[kFreeFrames];  // where a freed block was freed, when recorded
  debug_error_handler handler;
  void *handler_context;
};

bool debug_resource::explain_fault(const unsigned char *address, bool locking,
                                   fault_report *out) const noexcept {
  if (options_.guard == guard_mode::none) return false;
  // Other threads may be inserting, erasing, rehashing and growing the ring meanwhile. Everything
  // the report needs is copied under the lock: once it is dropped, the block may be freed.
  const table_guard lock(lock_, locking && options_.thread_safe);
  unsigned char *region = nullptr;  // what to make accessible if a custom handler returns
  std::size_t region_bytes = 0;
  live_.for_each([&](const internal::block_entry &e) {
    if (region != nullptr) return;
    const auto *h = static_cast<const header *>(e.header);
    auto *base = static_cast<unsigned char *>(h->base.get());
    unsigned char *guard_begin = base;
    std::size_t guard_bytes = h->block_alignment();
    if (options_.guard == guard_mode::after) {
      guard_begin = base + h->base_bytes - page_size();
      guard_bytes = page_size();
    }
    if (address < guard_begin || address >= guard_begin + guard_bytes) return;
    region = guard_begin;
    region_bytes = guard_bytes;
    const std::ptrdiff_t offset = address - static_cast<const unsigned char *>(e.user);
    std::snprintf(out->detail, sizeof out->detail, "access at offset %td hit the guard page",
                  offset);
    // The stack only from a header left intact: a write that reached it may have run on into the
    // frames, and its depth may be anything.
    const int depth = h->damaged(owner_, e.number) ? 0 : std::min(h->depth(), kMaxFrames);
    std::memcpy(out->frames, h->frames(), static_cast<std::size_t>(depth) * sizeof(void *));
    out->error =
        debug_error{options_.guard == guard_mode::after ? debug_error_kind::buffer_overrun
                                                        : debug_error_kind::buffer_underrun,
                    e.user,
                    e.size,
                    e.number,
                    offset,
                    out->detail,
                    depth > 0 ? out->frames : nullptr,
                    depth,
                    depth > 0 && h->stack_cut()};
  });
  for (std::size_t i = 0; i < quarantine_count_ && region == nullptr; ++i) {
    const quarantined &q = queued(i);
    auto *base = static_cast<unsigned char *>(q.base);
    if (address < base || address >= base + q.base_bytes) continue;
    region = base;
    region_bytes = q.base_bytes;
    const std::ptrdiff_t offset = address - static_cast<const unsigned char *>(q.user);
    std::snprintf(out->detail, sizeof out->detail, "read or write at offset %td of a freed block",
                  offset);
    out->error = debug_error{debug_error_kind::write_after_free,
                             q.user,
                             q.size,
                             q.number,
                             offset,
                             out->detail,
                             nullptr,
                             0};
    // Where it was allocated and freed, when recorded, copied out of the rings.
    auto copy = [&](const recorded_stack *ring, void **to, void *const *&frames, int &depth,
                    bool &cut) {
      if (ring == nullptr || ring[slot(i)].depth <= 0) return;
      const recorded_stack &from = ring[slot(i)];
      std::memcpy(to, from.frames, static_cast<std::size_t>(from.depth) * sizeof(void *));
      frames = to;
      depth = from.depth;
      cut = from.cut;
    };
    debug_error &e = out->error;
    copy(allocation_stacks(), out->frames, e.stack, e.stack_depth, e.stack_cut);
    copy(free_stacks_, out->freed_at, e.free_stack, e.free_stack_depth, e.free_stack_cut);
  }
  if (region == nullptr) return false;
  out->handler = options_.handler;
  out->handler_context = options_.handler_context;
  // A custom handler that returns lets the program go on: the access is made possible (while
  // the block is still where the walk found it).
  if (options_.handler != default_handler) mprotect(region, region_bytes, PROT_READ | PROT_WRITE);
  return true;
}

namespace internal {

// Counted as held for the length of the fork, so that a guard fault taken meanwhile (in an
// earlier-registered fork handler, say) does not wait for them.
void fork_locks::lock_debug_resources() noexcept {
  count_held_lock(1);
  g_registry_lock.lock();
  for (debug_resource *r = g_registry; r != nullptr; r = r->next_registered_) {
    if (r->options_.thread_safe) r->lock_.lock_for_fork();
  }
}

void fork_locks::unlock_debug_resources() noexcept {
  for (debug_resource *r = g_registry; r != nullptr; r = r->next_registered_) {
    if (r->options_.thread_safe) r->lock_.unlock_after_fork();
  }
  g_registry_lock.unlock_after_fork();
  count_held_lock(-1);
}

struct guard_fault_handler {
  // True when a custom handler took the fault and the access may be retried. With the default
  // handler the line is printed, and the process then dies of the signal. The registry and the
  // tables are walked under their locks (resources may be made and destroyed meanwhile), unless
  // this thread holds one of them already; the handler is called with none held, as it may
  // allocate through the very table.
  // `pc`: the faulting instruction (null where the context's layout is not known here).
  static bool explain(const unsigned char *address, const void *pc) noexcept {
    const bool locking = debug_locks_held == 0;
    debug_resource::fault_report report;
    bool found = false;
    {
      const registry_guard lock(locking);
      for (const debug_resource *r = g_registry; r != nullptr && !found; r = r->next_registered_)
        found = r->explain_fault(address, locking, &report);
    }
    if (!found) return false;
    if (report.handler == default_handler) {
      before_debug_report(true);
      // The access: the faulting function and a few of its callers, walked through the signal
      // frame by the unwind tables (a leaf such as memcpy keeps no frame pointer of its own).
      void *access[kAccessFrames];
      int access_depth = 0;
      // On a small signal stack, only the faulting instruction: the walk needs room too.
      const char *stack_low = signal_stack_low();
      if (pc != nullptr && stack_low != nullptr &&
          stack_left_above(stack_low) < kStackToNameFrames) {
        access[0] = const_cast<void *>(pc);
        access_depth = 1;
      } else if (pc != nullptr) {
        access_depth = capture_stack(access, kAccessFrames, pc, true);
      }
      print_error(report.error, access, access_depth);
      return false;
    }
    report.handler(report.error, report.handler_context);
    return true;
  }
};

}  // namespace internal

namespace {

// A guard fault explained, else (not ours, or ours, reported, and fatal) the previous handler's
// turn. A handler of the program's (a crash reporter, a runtime recovering faults on its own
// pages) is called and this one stays installed for the next guard fault; for the default action
// it is put back, and returning re-executes the access, which then kills the process.
void handle_guard_fault(int sig, siginfo_t *info, void *context) {
  const void *pc = nullptr;
#if defined(__x86_64__)
  pc = reinterpret_cast<const void *>(
      static_cast<const ucontext_t *>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__i386__)
  pc = reinterpret_cast<const void *>(
      static_cast<const ucontext_t *>(context)->uc_mcontext.gregs[REG_EIP]);
#endif
  if (internal::guard_fault_handler::explain(static_cast<const unsigned char *>(info->si_addr), pc))
    return;
  const struct sigaction &previous = g_previous_segv;
  const bool has_function = (previous.sa_flags & SA_SIGINFO) != 0
                                ? previous.sa_sigaction != nullptr
                                : previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN;
  // A one-shot handler (SA_RESETHAND) and the default action get the fault as the kernel would
  // give it: the previous action is put back and the access retried.
  if (!has_function || (previous.sa_flags & SA_RESETHAND) != 0) {
    sigaction(SIGSEGV, &g_previous_segv, nullptr);
    g_segv_installed.store(false);
    return;
  }
  // The previous handler runs with the mask it asked for (its sa_mask; SIGSEGV unblocked for
  // SA_NODEFER), which stays if it leaves by longjmp, as it would have been without this one.
  sigset_t mask, saved;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  sigorset(&mask, &mask, &previous.sa_mask);
  if ((previous.sa_flags & SA_NODEFER) != 0) sigdelset(&mask, SIGSEGV);
  pthread_sigmask(SIG_SETMASK, &mask, &saved);
  if ((previous.sa_flags & SA_SIGINFO) != 0)
    previous.sa_sigaction(sig, info, context);
  else
    previous.sa_handler(sig);
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
}

// The handler: the code it interrupts, which goes on when a program's handler lets it, finds
// errno as it was, whatever the report's system calls (a frame whose file is gone) did to it.
void guard_fault(int sig, siginfo_t *info, void *context) {
  const int saved_errno = errno;
  const char *const outer_stack_low = internal::guard_stack_low;
  const auto *signal_context = static_cast<const ucontext_t *>(context);
  const auto *here = static_cast<const char *>(__builtin_frame_address(0));
  const auto *stack = static_cast<const char *>(signal_context->uc_stack.ss_sp);
  if (stack != nullptr && here >= stack && here < stack + signal_context->uc_stack.ss_size)
    internal::guard_stack_low = stack;
  handle_guard_fault(sig, info, context);
  internal::guard_stack_low = outer_stack_low;
  errno = saved_errno;
}

// At unload (a driver carrying this copy is dlclose'd, as the Vulkan loader does) and at exit:
// SIGSEGV goes back to the previous handler while it is still ours, so that it does not point
// into unmapped code.
struct guard_handler_at_unload {
  ~guard_handler_at_unload() {
    if (!g_segv_installed.load()) return;
    struct sigaction current;
    if (sigaction(SIGSEGV, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) != 0 &&
        current.sa_sigaction == guard_fault)
      sigaction(SIGSEGV, &g_previous_segv, nullptr);
  }
} g_guard_handler_at_unload;

}  // namespace

void debug_resource::report_unknown_free(void *p, bool in_realloc) noexcept {
  // A live block of another resource first: that is certain, while a recent free of this one at
  // the same address may be stale (the memory went back upstream and was handed out again).
  std::size_t size = 0;
  std::uint64_t number = 0;
  std::uint32_t owner = 0;
  {
    const registry_guard lock;
    for (const debug_resource *r = g_registry; r != nullptr; r = r->next_registered_) {
      if (r != this && r->owns(p, &size, &number)) {
        owner = r->owner_;
        break;
      }
    }
  }
  if (owner != 0) {
    char detail[128];
    std::snprintf(detail, sizeof detail,
                  "allocated by debug allocator %u, %s through debug allocator %u", owner,
                  in_realloc ? "reallocated" : "freed", owner_);
    report(debug_error_kind::allocator_mismatch, p, size, number, 0, detail, nullptr);
    return;
  }
  freed_record freed{nullptr, 0, 0};
  // A copy of the freed block's stack and header, for its allocation stack: copied under the
  // lock, as another thread may evict and release the block once it is dropped.
  // The frames go on the side of the header copy where its frames() finds them, as in a block:
  // before it, or after it in guard_mode::before.
  struct saved_stack {
    void *before[kMaxFrames];
    header h;
    void *after[kMaxFrames];
  } saved;
  static_assert(offsetof(saved_stack, h) == sizeof(saved_stack::before), "frames, then header");
  static_assert(offsetof(saved_stack, after) == offsetof(saved_stack, h) + sizeof(header),
                "header, then frames");
  const header *stack = nullptr;
  bool held = false;          // in the quarantine: the address is certainly still this block's
  recorded_stack held_stack;  // where it was freed then, when recorded
  held_stack.depth = 0;
  recorded_stack held_allocated;  // in guard mode, where it was allocated, when recorded
  held_allocated.depth = 0;
  auto save_stack = [&saved, &stack](const header *h) {  // h intact: its depth is the recorded one
    std::memcpy(&saved.h, h, sizeof(header));
    std::memcpy(const_cast<void **>(saved.h.frames()), h->frames(),
                static_cast<std::size_t>(h->depth()) * sizeof(void *));
    stack = &saved.h;
  };
  const void *inside = nullptr;  // the live block p points into, if any
  {
    const table_guard lock(lock_, options_.thread_safe);
    // Inside a live block (free(&s->member)): that block is certain, any free recorded at the
    // same address stale.
    live_.for_each([&](const internal::block_entry &e) {
      const auto *user = static_cast<const unsigned char *>(e.user);
      if (inside != nullptr || p <= e.user || p >= user + e.size) return;
      inside = e.user;
      freed = freed_record{e.user, e.size, e.number};
      const auto *h = static_cast<const header *>(e.header);
      if (!h->damaged(owner_, e.number)) save_stack(h);
    });
    // Else a block still in the quarantine (newest first: its address cannot have been handed
    // out again since), as its header is still there to name where it was allocated (not if a
    // write after free hit the header; in guard mode, where the block is inaccessible, the
    // allocation stack was copied out of it when it was freed).
    if (inside == nullptr) {
      if (const quarantined *q = quarantined_block(p)) {
        freed = freed_record{q->user, q->size, q->number};
        held = true;
        if (free_stacks_ != nullptr) held_stack = free_stacks_[q - quarantine_];
        if (const recorded_stack *allocations = allocation_stacks())
          held_allocated = allocations[q - quarantine_];
        if (options_.guard == guard_mode::none && !q->h->damaged(owner_, q->number))
          save_stack(q->h);
      }
      for (int i = 0; i < kFreedRecords && freed.user == nullptr; ++i) {
        const freed_record &r = freed_[(freed_next_ - 1 - i) % kFreedRecords];
        if (r.user == p) freed = r;
      }
    }
  }
  if (inside != nullptr) {
    char detail[160];
    std::snprintf(detail, sizeof detail,
                  "%s%zu bytes inside the live block at %p, which is left alone",
                  in_realloc ? "realloc of a pointer " : "",
                  static_cast<std::size_t>(static_cast<const unsigned char *>(p) -
                                           static_cast<const unsigned char *>(inside)),
                  inside);
    report(debug_error_kind::invalid_free, p, freed.size, freed.number, 0, detail, stack);
    return;
  }
  if (freed.user != nullptr) {
    // Out of the quarantine, the memory went back upstream: a second free is likeliest, but
    // the address may since belong to a block of another allocator, freed here by mistake.
    const char *detail =
        held ? (in_realloc ? "realloc of a block that was already freed"
                           : "the block was already freed")
             : (in_realloc ? "realloc of a block that was already freed (its memory went back "
                             "upstream: the address may now be another allocator's block)"
                           : "the block was already freed (its memory went back upstream: the "
                             "address may now be another allocator's block)");
    report(debug_error_kind::double_free, p, freed.size, freed.number, 0, detail, stack,
           held ? &held_stack : nullptr, held ? &held_allocated : nullptr);
    return;
  }
  // Freed recently by another resource: a second free of its block, through the wrong table.
  {
    const registry_guard lock;
    for (const debug_resource *r = g_registry; r != nullptr; r = r->next_registered_) {
      if (r != this && r->freed_recently(p, &freed)) {
        owner = r->owner_;
        break;
      }
    }
  }
  if (owner != 0) {
    char detail[128];
    std::snprintf(detail, sizeof detail,
                  "debug allocator %u freed the block already; %s again through debug allocator %u",
                  owner, in_realloc ? "reallocated" : "freed", owner_);
    report(debug_error_kind::double_free, p, freed.size, freed.number, 0, detail, nullptr);
    return;
  }
  report(debug_error_kind::invalid_free, p, 0, 0, 0,
         in_realloc ? "realloc of a pointer that is not a live block of this allocator (never "
                      "allocated, or freed long ago)"
                    : "not a live block of this allocator (never allocated, or freed long ago)",
         nullptr);
}

void *debug_resource::c_alloc(void *self, std::size_t size, std::size_t alignment,
                              mesa_alloc_scope scope) {
  if (alignment_refused(alignment, "mesa_debug alloc")) return nullptr;
  return static_cast<debug_resource *>(self)->allocate_from(
      size, alignment, scope, internal::api_call::caller_or(__builtin_return_address(0)));
}

void *debug_resource::c_realloc(void *self, void *p, std::size_t size, std::size_t alignment,
                                mesa_alloc_scope scope) {
  if (alignment_refused(alignment, "mesa_debug realloc")) return nullptr;
  return static_cast<debug_resource *>(self)->reallocate_from(
      p, size, alignment, scope, internal::api_call::caller_or(__builtin_return_address(0)));
}

void debug_resource::c_free(void *self, void *p) {
  static_cast<debug_resource *>(self)->free_from(
      p, internal::api_call::caller_or(__builtin_return_address(0)));
}

debug_resource *debug_resource::from_table(const mesa_allocator *table) noexcept {
  if (table == nullptr || table->alloc_fn != &c_alloc) return nullptr;
  return static_cast<debug_resource *>(table->user_data);
}

void debug_resource::free_block(void *p) noexcept {
  free_from(p, internal::api_call::caller_or(__builtin_return_address(0)));
}

void debug_resource::free_from(void *p, const void *caller) noexcept {
  if (p == nullptr) return;
  const debug_call_scope call(caller, p, false);
  if (header *h = take(p, false, 0, 0)) release(h);
}

void *debug_resource::reallocate_block(void *p, std::size_t size, std::size_t alignment,
                                       mesa_alloc_scope scope) noexcept {
  if (alignment_refused(alignment, "debug_resource::reallocate_block")) return nullptr;
  return reallocate_from(p, size, alignment, scope,
                         internal::api_call::caller_or(__builtin_return_address(0)));
}

void *debug_resource::reallocate_from(void *p, std::size_t size, std::size_t alignment,
                                      mesa_alloc_scope scope, const void *caller) noexcept {
  if (p == nullptr) return allocate_from(size, alignment, scope, caller);
  const debug_call_scope call(caller, p, true);
  if (size == 0) {
    const internal::caller_set_aside aside;  // the upstream's free may be an application's
    if (header *h = take(p, false, 0, 0, true)) release(h);
    return nullptr;
  }
  std::size_t old_size = 0;
  std::uint32_t old_alignment = 0;
  std::uint64_t number = 0;
  header *h = nullptr;
  bool damaged = false;
  {
    const table_guard lock(lock_, options_.thread_safe);
    if (const internal::block_entry *e = live_.find(p)) {
      h = static_cast<header *>(e->header);
      damaged = h->damaged(owner_, e->number);
      old_size = e->size;
      old_alignment = h->alignment();
      number = e->number;
    }
  }
  if (h == nullptr) {
    report_unknown_free(p, true);
    return nullptr;
  }
  if (damaged) {  // the header's alignment cannot be trusted: report it as free() would
    free_block(p);
    return nullptr;
  }
  // The block moves, so that a stale pointer to the old one is caught. It is claimed (taken
  // out of the live table) before it is read: a free or realloc of it racing this one on
  // another thread is then reported, once, and cannot release it during the copy; one that came
  // first makes this claim fail, and the new block goes back.
  const std::uint64_t injected_before = fault_resource::injected_on_this_thread();
  const bool shrinks = size <= old_size && alignment <= old_alignment;
  void *fresh;
  {
    const internal::tentative_request tentative(shrinks);  // a budget's refusal is absorbed
    fresh = allocate_from(size, std::max<std::size_t>(alignment, old_alignment), scope, caller);
  }
  if (fresh != nullptr) {
    const internal::caller_set_aside aside;
    header *old = take(p, false, old_size, 0, true, number);
    if (old == nullptr) {
      free_block(fresh);
      return nullptr;
    }
    std::memcpy(fresh, p, std::min(old_size, size));
    release(old);
    return fresh;
  }
  // No new block (a budget below is full): a shrink stays where it is, as libc's would. A
  // failure a fault layer below injected is the realloc's own: the caller sees it.
  if (shrinks && fault_resource::injected_on_this_thread() == injected_before)
    return shrink_in_place(p, size, h, old_size, number);
  return nullptr;
}

void *debug_resource::shrink_in_place(void *p, std::size_t size, header *h, std::size_t old_size,
                                      std::uint64_t number) noexcept {
  const std::uint64_t tail = std::uint64_t{h->tail()} + (old_size - size);
  if (tail > UINT32_MAX) return nullptr;  // the header holds a tail of less than 4 GiB
  auto *user = static_cast<unsigned char *>(p);
  // An overrun of the block as it was is reported now, as the free of a moved block would; the
  // tail is then written afresh.
  if (h->tail() != 0) check_canaries(h, user, old_size, number, false);
  {
    const table_guard lock(lock_, options_.thread_safe);
    internal::block_entry *e = live_.find(p);
    if (e != nullptr && e->number == number && !h->damaged(owner_, number)) {
      std::memset(user + size, kCanaryFill, static_cast<std::size_t>(tail));
      h->resize(size, static_cast<std::uint32_t>(tail), owner_);
      e->size = size;
      return p;
    }
  }
  free_block(p);  // freed, or its header damaged, by another thread meanwhile: reported
  return nullptr;
}

void *debug_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (alignment_refused(alignment, "debug_resource::allocate")) throw std::bad_alloc();
  void *p = allocate_from(bytes, alignment, MESA_ALLOC_SCOPE_OBJECT,
                          internal::api_call::caller_or(__builtin_return_address(0)));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void debug_resource::do_deallocate(void *p, std::size_t bytes, std::size_t alignment) {
  const debug_call_scope call(internal::api_call::caller_or(__builtin_return_address(0)), p, false);
  if (header *h = take(p, true, bytes, alignment)) release(h);
}

bool debug_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
  if (internal::answer_resource_query(other, internal::resource_kind::debug, this)) return false;
  return this == &other;
}

std::size_t debug_resource::live_blocks() const noexcept {
  const table_guard lock(lock_, options_.thread_safe);
  return live_.size();
}

namespace {

// Orders leaked blocks by allocation stack, then by allocation number.
int compare_stacks(void *const *a, int a_depth, void *const *b, int b_depth) noexcept {
  if (a_depth != b_depth) return a_depth < b_depth ? -1 : 1;
  for (int i = 0; i < a_depth; ++i)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

}  // namespace

std::size_t debug_resource::report_leaks() noexcept {
  // Everything the report needs is copied under the lock: once it is dropped, other threads may
  // free the blocks, and their headers go back upstream.
  struct leak {
    const void *user;
    std::size_t size;
    std::uint64_t number;
    bool damaged;  // its header was overwritten: its depth and frames are not to be trusted
    int depth;
    bool cut;  // the allocation was deeper: the frames are its innermost kMaxFrames
    void *frames[kMaxFrames];
  };
  auto copy = [this](const internal::block_entry &e, leak &l) {
    const auto *h = static_cast<const header *>(e.header);
    l.user = e.user;
    l.size = e.size;
    l.number = e.number;
    l.damaged = h->damaged(owner_, e.number);
    l.depth = l.damaged ? 0 : std::min<int>(h->depth(), kMaxFrames);
    l.cut = l.depth > 0 && h->stack_cut();
    if (l.depth > 0)
      std::memcpy(l.frames, h->frames(), static_cast<std::size_t>(l.depth) * sizeof(void *));
  };
  static constexpr char kDamaged[] =
      "its block header was overwritten, so no allocation stack can be trusted";
  // Without memory for the copy (the leaks may have used up the budget the bookkeeping comes
  // from), up to 16 are listed from a copy on the stack, ungrouped, and all are counted.
  constexpr std::size_t kListedWithoutMemory = 16;
  leak first[kListedWithoutMemory];
  std::size_t listed = 0, all_bytes = 0;
  leak *leaks = nullptr;
  std::size_t count = 0;
  {
    const table_guard lock(lock_, options_.thread_safe);
    count = live_.size();
    if (count == 0) return 0;
    leaks = static_cast<leak *>(bookkeeping_allocate(count * sizeof(leak), alignof(leak)));
    std::size_t i = 0;
    live_.for_each([&](const internal::block_entry &e) {
      if (leaks != nullptr) {
        copy(e, leaks[i++]);
      } else {
        all_bytes += e.size;
        if (listed < kListedWithoutMemory) copy(e, first[listed++]);
      }
    });
  }
  if (leaks == nullptr) {
    for (std::size_t i = 0; i < listed; ++i) {
      const leak &l = first[i];
      debug_error e{
          debug_error_kind::leak,
          l.user,
          l.size,
          l.number,
          0,
          l.damaged ? kDamaged : "not grouped by allocation site (no memory for the report)",
          l.depth > 0 ? l.frames : nullptr,
          l.depth};
      options_.handler(e, options_.handler_context);
    }
    char rest[200];
    if (listed < count) {
      std::snprintf(rest, sizeof rest,
                    "%zu blocks, %zu bytes in all, are still allocated; %zu of them are listed, "
                    "the rest not (no memory to list them)",
                    count, all_bytes, listed);
    } else {
      std::snprintf(rest, sizeof rest,
                    "%zu blocks, %zu bytes in all, are still allocated (all listed, ungrouped: no "
                    "memory to group them)",
                    count, all_bytes);
    }
    report(debug_error_kind::leak, nullptr, 0, 0, 0, rest, nullptr);
    if (options_.handler == default_handler) {  // the line a reader of the grouped report greps
      char line[160];
      const int n = std::snprintf(line, sizeof line,
                                  "mesa_alloc: leak summary: %zu bytes in %zu blocks (not grouped "
                                  "by allocation site: no memory for the report)\n",
                                  all_bytes, count);
      internal::write_line(line, n, sizeof line);
    }
    return count;
  }
  const internal::lookup_session session;  // for all the report's stacks
  std::sort(leaks, leaks + count, [](const leak &a, const leak &b) {
    const int c = compare_stacks(a.frames, a.depth, b.frames, b.depth);
    if (c != 0) return c < 0;
    return a.cut != b.cut ? a.cut < b.cut : a.number < b.number;
  });
  std::size_t bytes = 0, sites = 0, cut_sites = 0, unknown = 0, damaged = 0;
  const leak *group = nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    const leak &l = leaks[i];
    bytes += l.size;
    debug_error e{debug_error_kind::leak, l.user, l.size, l.number, 0, "", nullptr, 0};
    char detail[96];
    if (l.damaged) {
      ++damaged;
      e.detail = kDamaged;
    } else if (l.depth == 0) {  // no stack: nothing says where, so no grouping either
      ++unknown;
      e.detail = "no allocation stack recorded";
    } else if (group == nullptr || group->cut != l.cut ||
               compare_stacks(group->frames, group->depth, l.frames, l.depth) != 0) {
      group = &l;
      ++sites;
      if (l.cut) ++cut_sites;
      e.stack = l.frames;
      e.stack_depth = l.depth;
      e.stack_cut = l.cut;
    } else if (l.cut) {  // deeper frames may differ: the same innermost ones, no more
      std::snprintf(detail, sizeof detail,
                    "allocated with the same innermost %d frames as allocation #%" PRIu64, l.depth,
                    group->number);
      e.detail = detail;
    } else {
      std::snprintf(detail, sizeof detail, "allocated at the same place as allocation #%" PRIu64,
                    group->number);
      e.detail = detail;
    }
    options_.handler(e, options_.handler_context);
  }
  bookkeeping_deallocate(leaks, count * sizeof(leak), alignof(leak));
  if (options_.handler == default_handler) {
    char line[320];
    char cut[96] = "", unknown_sites[128] = "";
    if (cut_sites > 0)
      std::snprintf(cut, sizeof cut, " (%zu of them told apart by their innermost %d frames only)",
                    cut_sites, kMaxFrames);
    if (unknown > 0 || damaged > 0)
      std::snprintf(unknown_sites, sizeof unknown_sites, " (and %zu blocks with no stack %s)",
                    unknown + damaged,
                    damaged == 0   ? "recorded"
                    : unknown == 0 ? "to trust: their headers were overwritten"
                                   : "recorded or to trust");
    const int n = std::snprintf(line, sizeof line,
                                "mesa_alloc: leak summary: %zu bytes in %zu blocks from %zu "
                                "allocation sites%s%s\n",
                                bytes, count, sites, cut, unknown_sites);
    internal::write_line(line, n, sizeof line);
    if (sites > 0) say_libraries_unloaded_since(libraries_unloaded_at_start_);
  }
  return count;
}

}  // namespace mesa
