#include "mesa_alloc/internal/stack_trace.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>
#include <unwind.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "absl/debugging/stacktrace.h"

namespace mesa::internal {
namespace {

// Room for the frames asked for and the walk's and the library's own above them (at most nine:
// capture_stack, then e.g. call_site, record, logged_alloc, the C table's alloc,
// malloc_through_table, mesa_malloc when not a tail call, mesa_strndup and mesa_strdup).
constexpr int kOwnFrames = 12;

struct unwind_walk {
  void **walked;
  int limit;           // frames walked at most
  const void *caller;  // stop `max_depth` frames after the one returning here
  int max_depth;
  int depth = 0;
  int first = -1;  // index of that frame, once seen
};

_Unwind_Reason_Code record_frame(_Unwind_Context *context, void *arg) {
  auto *walk = static_cast<unwind_walk *>(arg);
  const std::uintptr_t ip = _Unwind_GetIP(context);
  if (ip == 0 || walk->depth >= walk->limit) return _URC_END_OF_STACK;
  walk->walked[walk->depth] = reinterpret_cast<void *>(ip);
  if (walk->first < 0 && walk->walked[walk->depth] == walk->caller) walk->first = walk->depth;
  ++walk->depth;
  if (walk->first >= 0 && walk->depth - walk->first == walk->max_depth) return _URC_END_OF_STACK;
  return _URC_NO_REASON;
}

int index_of(void *const *walked, int depth, const void *frame) noexcept {
  for (int i = 0; i < depth; ++i) {
    if (walked[i] == frame) return i;
  }
  return -1;
}

}  // namespace

int capture_stack(void **frames, int max_depth, const void *caller, bool unwind_tables) noexcept {
  max_depth = max_depth < 0 ? 0 : max_depth > kMaxStackFrames ? kMaxStackFrames : max_depth;
  if (max_depth == 0) return 0;
  void *walked[kMaxStackFrames + kOwnFrames];
  const int limit = max_depth + kOwnFrames;
  int depth, first;
  if (unwind_tables) {
    unwind_walk walk{walked, limit, caller, max_depth};
    _Unwind_Backtrace(&record_frame, &walk);
    depth = walk.depth;
    first = walk.first;  // found during the walk, which stops once it has enough after it
  } else {
    depth = absl::GetStackTrace(walked, limit, 0);
    first = index_of(walked, depth, caller);
  }
  if (first < 0) {
    // The walk lost its way in the library's own frames (built without frame pointers): the
    // frames it found are not the caller's, and `caller` is the one known to be right.
    frames[0] = const_cast<void *>(caller);
    return 1;
  }
  int n = 0;
  for (int i = first; i < depth && n < max_depth; ++i) frames[n++] = walked[i];
  return n;
}

namespace {

std::uintptr_t parse_hex(const char *&p, const char *end) noexcept {
  std::uintptr_t v = 0;
  for (; p < end; ++p) {
    const char c = *p;
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) break;
    v = v * 16 + static_cast<std::uintptr_t>(d);
  }
  return v;
}

void skip_field(const char *&p, const char *end) noexcept {
  while (p < end && *p != ' ') ++p;
  while (p < end && *p == ' ') ++p;
}

struct maps_lookup {
  std::uintptr_t pc;
  std::uintptr_t base = 0;  // where the file's first mapping starts: its load base
  bool base_readable = false;
  char base_path[512] = {};
  bool found = false;
  std::uintptr_t found_base = 0;
  // found_base is a readable mapping of the file's start, whose ELF header can be read. Not so
  // for code mapped from the middle of a file with no view of its start (a JIT's memfd).
  bool found_header_mapped = false;
  char path[512] = {};

  // One line of /proc/self/maps: "start-end perms offset dev inode   path".
  void line(const char *p, const char *end) noexcept {
    const std::uintptr_t start = parse_hex(p, end);
    if (p < end && *p == '-') ++p;
    const std::uintptr_t stop = parse_hex(p, end);
    while (p < end && *p == ' ') ++p;
    const bool readable = p < end && *p == 'r';
    skip_field(p, end);  // perms
    const std::uintptr_t offset = parse_hex(p, end);
    while (p < end && *p == ' ') ++p;
    skip_field(p, end);  // dev
    skip_field(p, end);  // inode
    const std::size_t length = static_cast<std::size_t>(end - p);
    if (length == 0 || *p != '/' || length >= sizeof path) return;
    if (offset == 0) {
      base = start;
      base_readable = readable;
      std::memcpy(base_path, p, length);
      base_path[length] = '\0';
    }
    if (pc < start || pc >= stop) return;
    found = true;
    std::memcpy(path, p, length);
    path[length] = '\0';
    const bool same_file = std::strcmp(path, base_path) == 0;
    found_base = same_file ? base : start - offset;
    found_header_mapped = same_file && base_readable;
  }
};

}  // namespace

void frame_location(const void *pc, char *out, std::size_t capacity) noexcept {
  out[0] = '\0';
  maps_lookup lookup;
  lookup.pc = reinterpret_cast<std::uintptr_t>(pc);
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buffer[4096];
  std::size_t have = 0;
  for (;;) {
    const ssize_t n = read(fd, buffer + have, sizeof buffer - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
    const char *line = buffer;
    const char *end = buffer + have;
    for (const char *nl; (nl = static_cast<const char *>(std::memchr(line, '\n', end - line)));
         line = nl + 1) {
      lookup.line(line, nl);
      if (lookup.found) break;
    }
    if (lookup.found) break;
    have = static_cast<std::size_t>(end - line);
    if (have == sizeof buffer) have = 0;  // a line longer than the buffer: not a module's
    std::memmove(buffer, line, have);
  }
  close(fd);
  if (!lookup.found) return;
  // A program linked at a fixed address (not PIE): its addresses are already what addr2line takes.
  const auto *elf = reinterpret_cast<const ElfW(Ehdr) *>(lookup.found_base);
  const bool fixed = lookup.found_header_mapped &&
                     std::memcmp(elf->e_ident, ELFMAG, SELFMAG) == 0 && elf->e_type == ET_EXEC;
  const char *slash = std::strrchr(lookup.path, '/');
  std::snprintf(out, capacity, " (%s+0x%" PRIxPTR ")", slash + 1,
                lookup.pc - (fixed ? 0 : lookup.found_base));
}

}  // namespace mesa::internal
