// logging_resource — records every allocation event to a trace that //tools:alloc_trace
// summarises (totals, peak and when, top call sites, size histogram, short-lived blocks, leaks
// at the end; text, JSON and an SVG plot of live bytes over time).
//
// What it is for: understanding allocation behaviour (who allocates what, when, for how long)
// without a profiler, from C++ (this resource) or C (mesa_logging_create in debug_resources.h,
// and MESA_ALLOC_DEBUG=trace=FILE).
//
// What it costs: per event a 48-byte record copied into a 64 KiB buffer under a short spin lock,
// a clock_gettime and a cached thread id; a write(2) per 64 KiB. With stacks, a frame-pointer walk
// per allocation and a lookup in a 4096-slot call-site table that names up to 2048 distinct stacks
// (each new one is symbolised once; past that, stacks share the site "call-site table full").
//
// Trace format (native byte order): the 8 bytes "MESATRC1", then records. An event is 48 bytes:
//   u8 op (1 alloc, 2 free, 3 realloc, 4 failed alloc, 6 end), u8 scope, u16 0, u32 thread,
//   u64 nanoseconds since the first logging_resource of the process was made (one time axis
//   and one site numbering for every resource: several may share a sink), u64 pointer, u64 old
//   pointer (realloc),
//   u64 size (0 when a free does not know it), u32 alignment, u32 call site (0: none).
// A call site is: u8 5, u8 0, u16 text length, u32 id, then the text ("f < caller < ...").
// An end record (op 6, its other fields 0 but the time and thread) ends a whole trace: written by
// trace_file::finish() (its destructor, mesa_logging_destroy, MESA_ALLOC_DEBUG at exit). A trace
// without one was left by a process that never got there (killed, crashed, _exit), and its last
// buffered events are missing. Events may follow it: frees made during exit after the finish.
// An end record that stopped telling the truth (a write after it failed, or a report of the
// debug layer is about to end the process) is withdrawn: its op becomes 7, which readers skip.
//
// Example:
//   mesa::trace_file trace("/tmp/compiler.trace");
//   mesa::logging_resource logged(std::pmr::new_delete_resource(), &trace);
//   std::pmr::vector<int> v(&logged);
//   v.resize(100);
//   // bazel run //tools:alloc_trace -- /tmp/compiler.trace
#ifndef MESA_ALLOC_LOGGING_RESOURCE_H_
#define MESA_ALLOC_LOGGING_RESOURCE_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "mesa_alloc/internal/spin_lock.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa {
namespace internal {
struct fork_locks;
}

enum class trace_op : std::uint8_t { alloc = 1, free = 2, realloc = 3, failed = 4, end = 6 };

struct trace_event {
  trace_op op;
  std::uint8_t scope;
  std::uint16_t zero;
  std::uint32_t thread;
  std::uint64_t time_ns;
  std::uint64_t ptr;
  std::uint64_t old_ptr;
  std::uint64_t size;
  std::uint32_t alignment;
  std::uint32_t site;
};
static_assert(sizeof(trace_event) == 48, "the documented record size");

// Where events go. Implementations must be thread-safe.
class trace_sink {
 public:
  virtual ~trace_sink() = default;
  virtual void write_event(const trace_event &event) noexcept = 0;
  // A call site seen for the first time: `text` is its symbolised stack.
  virtual void write_site(std::uint32_t id, const char *text, std::size_t length) noexcept = 0;
};

// A trace file in the format above. The header is written when the file is opened (a process
// that dies at once leaves a trace alloc_trace reads), then writes go through a 64 KiB buffer;
// flush() writes what it holds, and finish() or destruction ends the trace.
class trace_file final : public trace_sink {
 public:
  explicit trace_file(const char *path) noexcept;
  ~trace_file() override;
  trace_file(const trace_file &) = delete;
  trace_file &operator=(const trace_file &) = delete;

  // False if the file could not be created or its header not written, or once a write to it
  // failed (reported on stderr).
  bool ok() const noexcept { return fd_ >= 0 && !failed_.load(std::memory_order_relaxed); }
  // errno of the failed open (0 when the file was opened).
  int open_error() const noexcept { return open_error_; }
  // True when another writer held the file and this trace went to a file of its own.
  bool writes_elsewhere() const noexcept { return writes_elsewhere_; }
  void flush() noexcept;
  // Writes what the buffer holds and an end record: alloc_trace then knows the trace is whole.
  // Later events (frees in exit handlers that run after MESA_ALLOC_DEBUG's exit finished its
  // trace) are written at once, a write(2) each. Finishing again writes no second end record.
  // The file stays open until destruction.
  void finish() noexcept;
  // Flushes unless a write is in progress (then does nothing): for a report, maybe from a signal
  // handler that interrupted that write. `ending`: the report is about to end the process, so an
  // end record already written is withdrawn (the process is not ending as the record says); a
  // report that lets the process go on (a leak report) leaves it.
  void flush_unless_busy(bool ending) noexcept;
  void write_event(const trace_event &event) noexcept override;
  void write_site(std::uint32_t id, const char *text, std::size_t length) noexcept override;

 private:
  friend struct internal::fork_locks;
  void append(const void *data, std::size_t length) noexcept;  // with lock_ held
  void flush_locked() noexcept;
  // Ends the trace after `written` bytes, with one line on stderr giving `reason`.
  void fail(std::uint64_t written, const char *reason) noexcept;
  void withdraw_end(std::uint64_t on_disk) noexcept;  // with lock_ held

  int fd_;
  int open_error_;
  bool writes_elsewhere_ = false;
  bool regular_file_ = false;  // the file size limit applies (not to a pipe or a device)
  pid_t pid_;                  // the process that opened the file: a fork() child writes nothing
  internal::spin_lock lock_;
  std::atomic<bool> failed_{false};  // a write failed: nothing more is written
  bool finished_ = false;            // the end record is written: events go out unbuffered
  bool end_withdrawn_ = false;
  std::uint64_t end_at_ = 0;   // the end record's offset in the file
  std::uint64_t written_ = 0;  // bytes written to the file
  std::size_t used_ = 0;
  unsigned char buffer_[64 * 1024];
};

class logging_resource final : public std::pmr::memory_resource {
 public:
  // A null upstream or sink is refused: one line on stderr, then abort.
  logging_resource(std::pmr::memory_resource *upstream, trace_sink *sink,
                   bool record_stacks = false) noexcept;

  std::pmr::memory_resource *upstream() const noexcept { return upstream_; }
  trace_sink *sink() const noexcept { return sink_; }

  // Records one event (the C table uses this for what it forwards to its parent table).
  // `caller`: the return address of the entry point the call came in through
  // (__builtin_return_address(0) there), or during a C API call the C API's caller; with
  // record_stacks, the call site starts at the frame it returns into. Frees have no call site
  // and need none.
  void record(trace_op op, const void *ptr, const void *old_ptr, std::size_t size,
              std::size_t alignment, mesa_alloc_scope scope, const void *caller = nullptr) noexcept;

 private:
  friend struct internal::fork_locks;
  static constexpr int kSites = 4096;

  void *do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override;
  [[gnu::noinline]] std::uint32_t call_site(const void *caller) noexcept;
  // Writes the site record of `id`: the names and locations of the stack's frames.
  void name_site(std::uint32_t id, void *const *frames, int depth) noexcept;
  std::uint32_t full_site() noexcept;  // with sites_lock_ held

  std::pmr::memory_resource *upstream_;
  trace_sink *sink_;
  bool record_stacks_;
  internal::spin_lock sites_lock_;
  int sites_named_ = 0;  // stacks this resource has given a site id
  bool full_site_named_ = false;
  std::uint64_t site_hashes_[kSites] = {};  // open addressing: stack hash -> site id
  std::uint32_t site_ids_[kSites] = {};
};

}  // namespace mesa

#endif  // MESA_ALLOC_LOGGING_RESOURCE_H_
