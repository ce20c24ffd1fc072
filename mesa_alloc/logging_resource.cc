#include "mesa_alloc/logging_resource.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "absl/debugging/symbolize.h"
#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/stack_trace.h"

namespace mesa {
namespace {

constexpr char kMagic[8] = {'M', 'E', 'S', 'A', 'T', 'R', 'C', '1'};
constexpr std::uint8_t kSiteRecord = 5;
constexpr int kSiteFrames = 6;   // frames named in a call site's text, from the caller
constexpr int kStackFrames = 8;  // frames that identify a call site

std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint32_t thread_id() noexcept {
  static thread_local std::uint32_t id = 0;
  if (id == 0) id = static_cast<std::uint32_t>(syscall(SYS_gettid));
  return id;
}

}  // namespace

trace_file::trace_file(const char *path) noexcept
    : fd_(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)),
      open_error_(fd_ < 0 ? errno : 0),
      pid_(getpid()) {
  std::memcpy(buffer_, kMagic, sizeof kMagic);
  used_ = sizeof kMagic;
  if (fd_ >= 0) flush_locked();  // a trace from the start, whatever ends the process
}

trace_file::~trace_file() {
  flush();
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
  std::size_t done = 0;
  while (fd_ >= 0 && !failed_.load(std::memory_order_relaxed) && done < used_) {
    const ssize_t n = write(fd_, buffer_ + done, used_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_.store(true, std::memory_order_relaxed);
      std::fprintf(stderr,
                   "mesa_alloc: trace file: write failed after %llu bytes (%s); the trace ends "
                   "there and later events are dropped\n",
                   static_cast<unsigned long long>(written_ + done),
                   n < 0 ? std::strerror(errno) : "nothing written");
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  written_ += done;
  used_ = 0;
}

void trace_file::flush() noexcept {
  std::lock_guard<internal::spin_lock> lock(lock_);
  flush_locked();
}

void trace_file::flush_unless_busy() noexcept {
  if (!lock_.try_lock()) return;
  flush_locked();
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
}

logging_resource::logging_resource(std::pmr::memory_resource *upstream, trace_sink *sink,
                                   bool record_stacks) noexcept
    : upstream_(upstream), sink_(sink), record_stacks_(record_stacks), start_ns_(now_ns()) {
  if (record_stacks) internal::want_callers();
  if (upstream == nullptr) internal::report_null_resource("logging_resource", "upstream resource");
  if (sink == nullptr) internal::report_null_resource("logging_resource", "trace sink");
}

std::uint32_t logging_resource::call_site(const void *caller) noexcept {
  void *frames[kStackFrames];
  const int depth = internal::capture_stack(frames, kStackFrames, caller, false);
  if (depth <= 0) return 0;
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (int i = 0; i < depth; ++i)
    hash = (hash ^ reinterpret_cast<std::uintptr_t>(frames[i])) * 0x100000001b3ull;
  if (hash == 0) hash = 1;
  std::lock_guard<internal::spin_lock> lock(sites_lock_);
  std::size_t i = hash & (kSites - 1);
  for (int probes = 0; probes < kSites; ++probes, i = (i + 1) & (kSites - 1)) {
    if (site_hashes_[i] == hash) return site_ids_[i];
    if (site_hashes_[i] != 0) continue;
    if (next_site_ > kSites / 2) return 0;  // full enough: "other sites"
    site_hashes_[i] = hash;
    site_ids_[i] = next_site_++;
    char text[1024];
    std::size_t used = 0;
    for (int f = 0; f < depth && f < kSiteFrames; ++f) {
      char symbol[256];
      if (!absl::Symbolize(static_cast<char *>(frames[f]) - 1, symbol, sizeof symbol))
        std::strcpy(symbol, "?");
      const std::size_t n = std::strlen(symbol);
      if (used + n + 4 > sizeof text) break;
      if (f > 0) {
        std::memcpy(text + used, " < ", 3);
        used += 3;
      }
      std::memcpy(text + used, symbol, n);
      used += n;
      if (f == 0) {  // where in the function: two call sites in one function differ here
        char where[320];
        internal::frame_location(frames[0], where, sizeof where);
        const std::size_t w = std::strlen(where);
        if (used + w + 4 <= sizeof text) {
          std::memcpy(text + used, where, w);
          used += w;
        }
      }
    }
    sink_->write_site(site_ids_[i], text, used);
    return site_ids_[i];
  }
  return 0;
}

void logging_resource::record(trace_op op, const void *ptr, const void *old_ptr, std::size_t size,
                              std::size_t alignment, mesa_alloc_scope scope,
                              const void *caller) noexcept {
  trace_event e;
  e.op = op;
  e.scope = static_cast<std::uint8_t>(scope);
  e.zero = 0;
  e.thread = thread_id();
  e.time_ns = now_ns() - start_ns_;
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
