#include "mesa_alloc/logging_resource.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/file_mappings.h"
#include "mesa_alloc/internal/frame_names.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/stack_trace.h"

namespace mesa {
namespace {

constexpr char kMagic[8] = {'M', 'E', 'S', 'A', 'T', 'R', 'C', '1'};
constexpr std::uint8_t kSiteRecord = 5;
constexpr std::uint8_t kWithdrawnEnd = 7;
// The frames, from the caller, that identify a call site and that its text names: the same,
// or stacks that differ only past the named frames would be sites with identical text.
constexpr int kSiteFrames = 6;

std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Where every logging_resource's clock starts: the first one's construction. Resources that
// share a sink then write one time axis.
std::uint64_t trace_origin_ns() noexcept {
  static const std::uint64_t origin = now_ns();
  return origin;
}

// Site ids are unique in the process (this copy of the library), so resources that share a
// sink never give two stacks one id. kFullSite names the stacks past a resource's table.
constexpr std::uint32_t kFullSite = UINT32_MAX;
std::atomic<std::uint32_t> next_site_id{1};

thread_local std::uint32_t cached_thread_id = 0;

std::uint32_t thread_id() noexcept {
  if (cached_thread_id == 0) cached_thread_id = static_cast<std::uint32_t>(syscall(SYS_gettid));
  return cached_thread_id;
}

// A fork()ed child's one thread is the forking one, whose cached id is the parent's: the child
// asks again. Registered by the first logging_resource.
void forget_thread_id() { cached_thread_id = 0; }
void forget_thread_id_after_fork() noexcept {
  static const bool registered = pthread_atfork(nullptr, nullptr, forget_thread_id) == 0;
  (void)registered;
}

}  // namespace

namespace {

// Opens `path` for this writer alone: the file is locked (flock) before it is emptied, as two
// writers of one file (two copies of the library in a process, a traced program and one it
// runs, two trace_files) would each write from offset 0 over the other. -1 with errno set,
// EWOULDBLOCK when another writer holds the file. A file that cannot be locked at all (the
// file system has no locks) is used unlocked. Not close-on-exec: the lock must outlive an
// exec, or the next image (the program run again, or the program a launcher's child runs after
// the launcher exited) finds the file free and empties it. A program run from the traced one
// inherits the descriptor (it writes nothing there) and keeps the file locked while it runs.
// A FIFO with no reader yet is waited for, with a line, not in silence (opening it for writing
// blocks until a reader opens it). The descriptor is 3 or above: in a program started with
// stdin, stdout or stderr closed the file would take that number, and the program's output and
// the library's reports would be written into the trace.
int open_for_this_writer(const char *path) noexcept {
  int fd = open(path, O_WRONLY | O_CREAT | O_NONBLOCK, 0644);
  if (fd < 0 && errno == ENXIO) {
    std::fprintf(stderr, "mesa_alloc: trace file %s is a FIFO with no reader; waiting for one\n",
                 path);
    fd = open(path, O_WRONLY | O_CREAT, 0644);
  } else if (fd >= 0) {
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  }
  if (fd < 0) return -1;
  if (fd <= STDERR_FILENO) {
    const int high = fcntl(fd, F_DUPFD, STDERR_FILENO + 1);  // not close-on-exec, as above
    const int error = errno;
    close(fd);
    if (high < 0) {
      errno = error;
      return -1;
    }
    fd = high;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    close(fd);
    errno = EWOULDBLOCK;
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) (void)ftruncate(fd, 0);
  return fd;
}

// A write into a pipe or FIFO whose reader has gone (a `| head` that has read enough, a reader
// that crashed) raises SIGPIPE, whose default action kills the traced program: while `active`,
// the signal is blocked in this thread around the writes, which then fail with EPIPE, and the
// one such a write raised is taken off before the mask is restored. A SIGPIPE that was pending
// already is left for the program.
class sigpipe_blocked {
 public:
  explicit sigpipe_blocked(bool active) noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    active_ = active && pthread_sigmask(SIG_BLOCK, &pipe_, &saved_) == 0;
    if (!active_) return;
    sigset_t pending;
    pending_before_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }
  ~sigpipe_blocked() {
    if (active_) pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }
  sigpipe_blocked(const sigpipe_blocked &) = delete;
  sigpipe_blocked &operator=(const sigpipe_blocked &) = delete;

  void take_raised_signal() const noexcept {
    if (!active_ || pending_before_) return;
    const timespec now = {0, 0};
    while (sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
    }
  }

 private:
  sigset_t pipe_;
  sigset_t saved_;
  bool active_ = false;
  bool pending_before_ = false;
};

}  // namespace

// A file another writer holds is not shared: this trace goes to `path.<pid>`, or when that is
// held too (a third copy of the library: the Vulkan loader loads every driver installed),
// `path.<pid>.2`, `.3`, ... up to kOwnFiles of them, with a line.
trace_file::trace_file(const char *path) noexcept
    : fd_(open_for_this_writer(path)), pid_(getpid()) {
  constexpr int kOwnFiles = 16;
  const bool held = fd_ < 0 && errno == EWOULDBLOCK;
  char own[4096] = "";
  for (int k = 1; fd_ < 0 && errno == EWOULDBLOCK && k <= kOwnFiles; ++k) {
    const int n = k == 1
                      ? std::snprintf(own, sizeof own, "%s.%d", path, static_cast<int>(pid_))
                      : std::snprintf(own, sizeof own, "%s.%d.%d", path, static_cast<int>(pid_), k);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof own) break;
    fd_ = open_for_this_writer(own);
    if (fd_ >= 0) {
      writes_elsewhere_ = true;
      std::fprintf(stderr,
                   "mesa_alloc: trace file %s is being written by another writer (another copy "
                   "of mesa_alloc, another process or another trace_file); this one writes %s\n",
                   path, own);
    }
  }
  open_error_ = fd_ < 0 ? errno : 0;
  if (fd_ < 0 && held && open_error_ != EWOULDBLOCK) {  // the file is there, its twin is not
    std::fprintf(stderr,
                 "mesa_alloc: trace file %s is being written by another writer, and %s cannot be "
                 "created: %s\n",
                 path, own, std::strerror(open_error_));
  } else if (fd_ < 0) {
    std::fprintf(stderr, "mesa_alloc: cannot create trace file %s: %s\n", path,
                 open_error_ == EWOULDBLOCK ? "held by other writers" : std::strerror(open_error_));
  }
  struct stat st;
  regular_file_ = fd_ >= 0 && fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  std::memcpy(buffer_, kMagic, sizeof kMagic);
  used_ = sizeof kMagic;
  if (fd_ >= 0) flush_locked();  // a trace from the start, whatever ends the process
}

trace_file::~trace_file() {
  finish();
  if (fd_ >= 0) close(fd_);
}

// A failed write (a full disk, a file size limit) ends the trace where it is, once, with a line
// that says so: a trace that silently lost events in the middle would report false leaks.
void trace_file::flush_locked() noexcept {
  // A child of fork() holds a copy of the parent's buffer: writing it would record the parent's
  // events twice (and the child's own, on addresses the parent also uses, under its name).
  if (getpid() != pid_) {
    used_ = 0;
    return;
  }
  if (fd_ < 0 || failed_.load(std::memory_order_relaxed)) {
    used_ = 0;
    return;
  }
  // A write past the file size limit (ulimit -f) would raise SIGXFSZ, whose default action
  // kills the traced program: the trace writes up to the limit (the reader reports the record
  // cut there) and ends with a line instead. The limit is a regular file's only, not a pipe's.
  std::size_t allowed = used_;
  struct rlimit file_size;
  if (regular_file_ && getrlimit(RLIMIT_FSIZE, &file_size) == 0 &&
      file_size.rlim_cur != RLIM_INFINITY) {
    const std::uint64_t room = file_size.rlim_cur > written_ ? file_size.rlim_cur - written_ : 0;
    if (room < allowed) allowed = static_cast<std::size_t>(room);
  }
  std::size_t done = 0;
  {
    const sigpipe_blocked pipe_writes(!regular_file_);
    while (done < allowed) {
      const ssize_t n = write(fd_, buffer_ + done, allowed - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int error = n < 0 ? errno : 0;
        if (error == EPIPE) pipe_writes.take_raised_signal();
        fail(written_ + done, error != 0 ? std::strerror(error) : "nothing written");
        break;
      }
      done += static_cast<std::size_t>(n);
    }
  }
  written_ += done;
  if (done == allowed && allowed < used_) {
    char reason[96];
    std::snprintf(reason, sizeof reason, "the file size limit, %llu bytes, is reached",
                  static_cast<unsigned long long>(file_size.rlim_cur));
    fail(written_, reason);
  }
  used_ = 0;
}

void trace_file::fail(std::uint64_t written, const char *reason) noexcept {
  failed_.store(true, std::memory_order_relaxed);
  withdraw_end(written);
  if (written < sizeof kMagic) {  // the header, written as the file is opened
    std::fprintf(stderr,
                 "mesa_alloc: trace file: cannot write its header (%s); nothing is traced\n",
                 reason);
    return;
  }
  std::fprintf(stderr,
               "mesa_alloc: trace file: write failed after %llu bytes (%s); the trace ends "
               "there and later events are dropped\n",
               static_cast<unsigned long long>(written), reason);
}

void trace_file::flush() noexcept {
  std::lock_guard<internal::spin_lock> lock(lock_);
  flush_locked();
}

void trace_file::finish() noexcept {
  std::lock_guard<internal::spin_lock> lock(lock_);
  if (!finished_) {
    trace_event end{};
    end.op = trace_op::end;
    end.thread = thread_id();
    end.time_ns = now_ns() - trace_origin_ns();
    append(&end, sizeof end);
    end_at_ = written_ + used_ - sizeof end;  // the last record in the buffer
    finished_ = true;
  }
  flush_locked();
}

// The end record on disk says the trace is whole; once it is not (a later write failed, or a
// report is about to end the process), its op becomes kWithdrawnEnd, which the reader skips. The
// events after it stay. Truncated there if even that byte cannot be written. `on_disk`: the
// bytes the file holds.
void trace_file::withdraw_end(std::uint64_t on_disk) noexcept {
  if (!finished_ || end_withdrawn_ || end_at_ + sizeof(trace_event) > on_disk) return;
  if (fd_ < 0 || getpid() != pid_) return;  // a fork() child: the file is its parent's
  end_withdrawn_ = true;
  const unsigned char withdrawn = kWithdrawnEnd;
  if (pwrite(fd_, &withdrawn, 1, static_cast<off_t>(end_at_)) != 1)
    (void)ftruncate(fd_, static_cast<off_t>(end_at_));
}

void trace_file::flush_unless_busy(bool ending) noexcept {
  if (!lock_.try_lock()) return;
  flush_locked();
  if (ending) withdraw_end(written_);
  lock_.unlock();
}

void trace_file::append(const void *data, std::size_t length) noexcept {
  if (used_ + length > sizeof buffer_) flush_locked();
  std::memcpy(buffer_ + used_, data, length);
  used_ += length;
}

void trace_file::write_event(const trace_event &event) noexcept {
  std::lock_guard<internal::spin_lock> lock(lock_);
  append(&event, sizeof event);
  if (finished_) flush_locked();
}

void trace_file::write_site(std::uint32_t id, const char *text, std::size_t length) noexcept {
  if (length > 1024) length = 1024;
  unsigned char head[8] = {kSiteRecord, 0};
  const auto length16 = static_cast<std::uint16_t>(length);
  std::memcpy(head + 2, &length16, 2);
  std::memcpy(head + 4, &id, 4);
  std::lock_guard<internal::spin_lock> lock(lock_);
  append(head, sizeof head);
  append(text, length);
  if (finished_) flush_locked();
}

logging_resource::logging_resource(std::pmr::memory_resource *upstream, trace_sink *sink,
                                   bool record_stacks) noexcept
    : upstream_(upstream), sink_(sink), record_stacks_(record_stacks) {
  trace_origin_ns();
  forget_thread_id_after_fork();
  if (record_stacks) internal::want_callers();
  if (upstream == nullptr) internal::report_null_resource("logging_resource", "upstream resource");
  if (sink == nullptr) internal::report_null_resource("logging_resource", "trace sink");
}

std::uint32_t logging_resource::call_site(const void *caller) noexcept {
  void *frames[kSiteFrames];
  const int depth = internal::capture_stack(frames, kSiteFrames, caller, false);
  if (depth <= 0) return 0;
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (int i = 0; i < depth; ++i)
    hash = (hash ^ reinterpret_cast<std::uintptr_t>(frames[i])) * 0x100000001b3ull;
  if (hash == 0) hash = 1;
  std::uint32_t id = 0;
  {
    std::lock_guard<internal::spin_lock> lock(sites_lock_);
    std::size_t i = hash & (kSites - 1);
    for (int probes = 0;; ++probes, i = (i + 1) & (kSites - 1)) {
      if (probes == kSites) return 0;
      if (site_hashes_[i] == hash) return site_ids_[i];
      if (site_hashes_[i] != 0) continue;
      if (sites_named_ >= kSites / 2) return full_site();
      site_hashes_[i] = hash;
      id = site_ids_[i] = next_site_id.fetch_add(1, std::memory_order_relaxed);
      ++sites_named_;
      break;
    }
  }
  // Named outside the lock: a lookup in a big library's symbol table takes milliseconds, which
  // every thread allocating through this resource would spend spinning. Another thread with the
  // same stack meanwhile records the id before the site's record is written; the reader names
  // sites whenever their record comes.
  name_site(id, frames, depth);
  return id;
}

void logging_resource::name_site(std::uint32_t id, void *const *frames, int depth) noexcept {
  const internal::lookup_session session;
  char text[1024];
  // Frames that do not fit are left out, and the text ends with this, which always fits.
  static constexpr char kMore[] = " < ...";
  constexpr std::size_t kRoom = sizeof text - (sizeof kMore - 1);
  std::size_t used = 0;
  for (int f = 0; f < depth; ++f) {
    char symbol[256];
    if (!internal::frame_symbol(static_cast<char *>(frames[f]) - 1, symbol, sizeof symbol))
      std::strcpy(symbol, "?");
    const std::size_t n = std::strlen(symbol);
    if (used + 3 + n > kRoom) {
      std::memcpy(text + used, kMore, sizeof kMore - 1);
      used += sizeof kMore - 1;
      break;
    }
    if (f > 0) {
      std::memcpy(text + used, " < ", 3);
      used += 3;
    }
    std::memcpy(text + used, symbol, n);
    used += n;
    // Where in the function, on every frame as the leak stacks print it: two call sites in one
    // function differ here, even when the first frame is a C API or pmr function of an
    // unoptimised build, which every site shares.
    char where[320];
    internal::frame_location(frames[f], where, sizeof where);
    const std::size_t w = std::strlen(where);
    if (used + w <= kRoom) {
      std::memcpy(text + used, where, w);
      used += w;
    }
  }
  sink_->write_site(id, text, used);
}

// The site of the stacks past the table: named once per resource, so a trace says why a
// leak has no stack instead of looking as if stacks were off.
std::uint32_t logging_resource::full_site() noexcept {
  if (!full_site_named_) {
    full_site_named_ = true;
    static const char text[] = "(call-site table full: more than 2048 distinct stacks)";
    sink_->write_site(kFullSite, text, sizeof text - 1);
  }
  return kFullSite;
}

void logging_resource::record(trace_op op, const void *ptr, const void *old_ptr, std::size_t size,
                              std::size_t alignment, mesa_alloc_scope scope,
                              const void *caller) noexcept {
  trace_event e;
  e.op = op;
  e.scope = static_cast<std::uint8_t>(scope);
  e.zero = 0;
  e.thread = thread_id();
  e.time_ns = now_ns() - trace_origin_ns();
  e.ptr = reinterpret_cast<std::uintptr_t>(ptr);
  e.old_ptr = reinterpret_cast<std::uintptr_t>(old_ptr);
  e.size = size;
  e.alignment = static_cast<std::uint32_t>(alignment);
  e.site = record_stacks_ && op != trace_op::free && caller != nullptr ? call_site(caller) : 0;
  sink_->write_event(e);
}

void *logging_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  void *p;
  try {
    if (internal::request_refused(bytes, alignment))
      internal::refuse_request("logging_resource::allocate", alignment);
    p = upstream_->allocate(bytes, alignment);
  } catch (...) {
    record(trace_op::failed, nullptr, nullptr, bytes, alignment, MESA_ALLOC_SCOPE_OBJECT,
           internal::api_call::caller_or(__builtin_return_address(0)));
    throw;
  }
  record(trace_op::alloc, p, nullptr, bytes, alignment, MESA_ALLOC_SCOPE_OBJECT,
         internal::api_call::caller_or(__builtin_return_address(0)));
  return p;
}

void logging_resource::do_deallocate(void *p, std::size_t bytes, std::size_t alignment) {
  record(trace_op::free, p, nullptr, bytes, alignment, MESA_ALLOC_SCOPE_OBJECT);
  upstream_->deallocate(p, bytes, alignment);
}

bool logging_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
  return this == &other;
}

}  // namespace mesa
