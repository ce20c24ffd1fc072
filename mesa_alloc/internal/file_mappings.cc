#include "mesa_alloc/internal/file_mappings.h"

#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace mesa::internal {
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

// One line of /proc/self/maps: "start-end perms offset dev inode   path".
struct maps_line {
  std::uintptr_t start;
  std::uintptr_t stop;
  std::uintptr_t offset;
  bool readable;
  bool executable;
  const char *path;
  std::size_t path_length;
  std::uint64_t path_hash;
};

// False for a line that maps no file (anonymous memory, the stack, the vdso).
bool parse_line(const char *p, const char *end, maps_line &l) noexcept {
  l.start = parse_hex(p, end);
  if (p < end && *p == '-') ++p;
  l.stop = parse_hex(p, end);
  while (p < end && *p == ' ') ++p;
  l.readable = p < end && *p == 'r';
  l.executable = end - p > 2 && p[2] == 'x';
  skip_field(p, end);  // perms
  l.offset = parse_hex(p, end);
  while (p < end && *p == ' ') ++p;
  skip_field(p, end);  // dev
  skip_field(p, end);  // inode
  if (p == end || *p != '/') return false;
  l.path = p;
  l.path_length = static_cast<std::size_t>(end - p);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < l.path_length; ++i)
    h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ull;
  l.path_hash = h;
  return true;
}

// Where each file's start (its ELF header) is mapped: the maps list a file's mappings in
// address order from its start, so the last mapping of an offset 0 seen is its file's.
class header_tracker {
 public:
  void see(const maps_line &l) noexcept {
    if (l.offset != 0) return;
    base_ = l.start;
    base_stop_ = l.stop;
    readable_ = l.readable;
    path_hash_ = l.path_hash;
  }
  bool header_mapped(const maps_line &l) const noexcept {
    return l.path_hash == path_hash_ && readable_;
  }
  std::uintptr_t base(const maps_line &l) const noexcept {
    return header_mapped(l) ? base_ : l.start - l.offset;
  }
  std::uintptr_t base_stop(const maps_line &l) const noexcept {
    return header_mapped(l) ? base_stop_ : 0;
  }

 private:
  std::uintptr_t base_ = 0;
  std::uintptr_t base_stop_ = 0;
  bool readable_ = false;
  std::uint64_t path_hash_ = 0;
};

// Calls on_line(begin, end) for each line of /proc/self/maps (end: where its '\n' was, in
// `buffer`, writable) until it returns true; a line longer than `buffer` is skipped. errno of a
// failed open, else 0.
std::atomic<std::uint64_t> g_maps_reads{0};

template <class OnLine>
int read_maps(char *buffer, std::size_t size, OnLine on_line) noexcept {
  g_maps_reads.fetch_add(1, std::memory_order_relaxed);
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != 0 ? errno : EIO;
  std::size_t have = 0;
  bool in_long_line = false;  // skipping the rest of a line longer than the buffer
  bool done = false;
  while (!done) {
    const ssize_t n = read(fd, buffer + have, size - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
    char *line = buffer;
    char *const end = buffer + have;
    for (char *nl; !done && (nl = static_cast<char *>(std::memchr(line, '\n', end - line)));
         line = nl + 1) {
      if (!in_long_line) done = on_line(line, nl);
      in_long_line = false;
    }
    have = static_cast<std::size_t>(end - line);
    if (have == size) {
      have = 0;
      in_long_line = true;
    }
    std::memmove(buffer, line, have);
  }
  close(fd);
  return 0;
}

bool deleted(const char *path, std::size_t length) noexcept {
  static constexpr char kDeleted[] = " (deleted)";
  const std::size_t k = sizeof kDeleted - 1;
  return length >= k && std::memcmp(path + length - k, kDeleted, k) == 0;
}

void describe(const maps_line &l, std::uintptr_t base, std::uintptr_t base_stop, bool header_mapped,
              file_mapping &out) noexcept {
  out.found = true;
  out.header_mapped = header_mapped;
  out.base = base;
  out.base_stop = base_stop;
  out.start = l.start;
  out.offset = l.offset;
  const char *name = l.path + l.path_length;
  while (name > l.path && name[-1] != '/') --name;
  std::size_t length = static_cast<std::size_t>(l.path + l.path_length - name);
  if (length >= sizeof out.name) length = sizeof out.name - 1;
  std::memcpy(out.name, name, length);
  out.name[length] = '\0';
}

// `path` is `length` bytes followed by a byte this may overwrite with a NUL.
// A failed open's errno goes to `out.open_error`.
int open_unless_deleted(char *path, std::size_t length, file_mapping &out) noexcept {
  if (deleted(path, length)) return -1;  // a program or driver replaced while running, a memfd
  path[length] = '\0';
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) out.open_error = errno != 0 ? errno : EIO;
  return fd;
}

// Whether `l` holds `address`: then `out` describes it, and with `open_file` `fd` is its file.
// `end` is where the line ends in a writable buffer (the path is NUL-terminated there).
bool take_if_holds(const maps_line &l, char *end, const header_tracker &headers,
                   std::uintptr_t address, file_mapping &out, bool open_file, int &fd) noexcept {
  if (address < l.start || address >= l.stop) return false;
  describe(l, headers.base(l), headers.base_stop(l), headers.header_mapped(l), out);
  if (open_file) fd = open_unless_deleted(end - l.path_length, l.path_length, out);
  return true;
}

// The lookup of a process whose table is busy or unusable: the maps read to the address.
int read_to_address(std::uintptr_t address, file_mapping &out, bool open_file) noexcept {
  char buffer[1024];
  header_tracker headers;
  int fd = -1;
  out.error = read_maps(buffer, sizeof buffer, [&](char *begin, char *end) {
    maps_line l;
    if (!parse_line(begin, end, l)) return false;
    headers.see(l);
    return take_if_holds(l, end, headers, address, out, open_file, fd);
  });
  return fd;
}

// This thread's lookup session (file_mappings.h): how deep, and which one (0: none).
[[gnu::tls_model("initial-exec")]] thread_local unsigned session_depth = 0;
[[gnu::tls_model("initial-exec")]] thread_local std::uint64_t session_number = 0;
std::atomic<std::uint64_t> g_sessions{0};

// The executable file mappings of the process (where frames are), kept between lookups
// (file_mappings.h says why). An address the table does not hold (a library loaded since, a
// data mapping) is looked up in the same read of the maps that fills the table again.
class mapping_table {
 public:
  bool try_lock() noexcept { return !busy_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { busy_.store(false, std::memory_order_release); }

  // With the lock held. False when the table cannot be used (map_files unreadable): the caller
  // reads the maps itself.
  bool find(std::uintptr_t address, file_mapping &out, bool open_file, int &fd) noexcept {
    if (unusable_) return false;
    const int i = filled_ ? index_of(address) : -1;
    if (i >= 0 && still_mapped(mappings_[i])) {
      const cached_mapping &m = mappings_[i];
      maps_line l{};
      l.start = m.start;
      l.offset = m.offset;
      l.path = paths_ + m.path_at;
      l.path_length = m.path_length;
      describe(l, m.base, m.base_stop, m.header_mapped, out);
      if (open_file) fd = open_unless_deleted(paths_ + m.path_at, m.path_length, out);
      return true;
    }
    if (unusable_) return false;
    if (in_known_gap(address)) return true;  // found in no file mapping earlier in this session
    std::uintptr_t gap_low = 0, gap_high = UINTPTR_MAX;
    out.error = refill_finding(address, out, open_file, fd, gap_low, gap_high);
    if (out.error == 0 && !out.found) remember_gap(gap_low, gap_high);
    return true;
  }

 private:
  static constexpr int kMappings = 1024;
  static constexpr std::size_t kPathBytes = 32 * 1024;

  struct cached_mapping {
    std::uintptr_t start;
    std::uintptr_t stop;
    std::uintptr_t offset;
    std::uintptr_t base;
    std::uintptr_t base_stop;
    std::uint32_t path_at;  // in paths_, NUL-terminated
    std::uint32_t path_length;
    bool header_mapped;
  };

  // Reads the maps into the table (the executable mappings that fit), and `address`'s mapping,
  // whatever it is, into `out`. errno of a failed open (the table is then left as it was: a
  // process out of descriptors still names the frames it holds), else 0.
  // [gap_low, gap_high): the addresses around `address` that no file mapping holds.
  int refill_finding(std::uintptr_t address, file_mapping &out, bool open_file, int &fd,
                     std::uintptr_t &gap_low, std::uintptr_t &gap_high) noexcept {
    bool started = false;
    header_tracker headers;
    const int error = read_maps(buffer_, sizeof buffer_, [&](char *begin, char *end) {
      if (!started) {
        started = true;
        count_ = 0;
        paths_used_ = 0;
      }
      maps_line l;
      if (!parse_line(begin, end, l)) return false;
      if (l.stop <= address && l.stop > gap_low) gap_low = l.stop;
      if (l.start > address && l.start < gap_high) gap_high = l.start;
      headers.see(l);
      if (l.executable) keep(l, headers);
      take_if_holds(l, end, headers, address, out, open_file, fd);
      return false;
    });
    if (error == 0) filled_ = true;
    return error;
  }

  // Whether this thread's lookup session found `address` in no file mapping already.
  bool in_known_gap(std::uintptr_t address) const noexcept {
    if (session_depth == 0) return false;
    for (const gap &g : gaps_) {
      if (g.session == session_number && address >= g.low && address < g.high) return true;
    }
    return false;
  }

  void remember_gap(std::uintptr_t low, std::uintptr_t high) noexcept {
    if (session_depth == 0) return;
    gaps_[next_gap_] = gap{low, high, session_number};
    next_gap_ = (next_gap_ + 1) % kGaps;
  }

  // Adds `l`, unless the table or its paths are full.
  void keep(const maps_line &l, const header_tracker &headers) noexcept {
    const cached_mapping *previous = count_ > 0 ? &mappings_[count_ - 1] : nullptr;
    const bool same_path = previous != nullptr && previous->path_length == l.path_length &&
                           std::memcmp(paths_ + previous->path_at, l.path, l.path_length) == 0;
    if (count_ == kMappings || (!same_path && paths_used_ + l.path_length + 1 > sizeof paths_))
      return;
    cached_mapping &m = mappings_[count_++];
    m.start = l.start;
    m.stop = l.stop;
    m.offset = l.offset;
    m.base = headers.base(l);
    m.base_stop = headers.base_stop(l);
    m.header_mapped = headers.header_mapped(l);
    m.path_length = static_cast<std::uint32_t>(l.path_length);
    if (same_path) {
      m.path_at = previous->path_at;
      return;
    }
    m.path_at = static_cast<std::uint32_t>(paths_used_);
    std::memcpy(paths_ + paths_used_, l.path, l.path_length);
    paths_[paths_used_ + l.path_length] = '\0';
    paths_used_ += l.path_length + 1;
  }

  // The mapping that holds `address` (the maps are in address order), or -1.
  int index_of(std::uintptr_t address) const noexcept {
    int low = 0, high = count_;
    while (low < high) {
      const int mid = low + (high - low) / 2;
      if (mappings_[mid].stop <= address)
        low = mid + 1;
      else
        high = mid;
    }
    return low < count_ && mappings_[low].start <= address ? low : -1;
  }

  // Whether `m` still maps its file: a dlclose and a dlopen may have put another one there.
  // Where map_files cannot be read, the table is not used again.
  bool still_mapped(const cached_mapping &m) noexcept {
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/map_files/%" PRIxPTR "-%" PRIxPTR, m.start,
                  m.stop);
    const ssize_t n = readlink(link, buffer_, sizeof buffer_);
    if (n < 0 && (errno == EPERM || errno == EACCES)) unusable_ = true;
    return n == static_cast<ssize_t>(m.path_length) &&
           std::memcmp(buffer_, paths_ + m.path_at, m.path_length) == 0;
  }

  // Address ranges a lookup session found in no file mapping (an unloaded library's frames, a
  // JIT's code, a stray frame-pointer walk's): a few, overwritten in turn.
  struct gap {
    std::uintptr_t low;
    std::uintptr_t high;
    std::uint64_t session;  // 0: none
  };
  static constexpr int kGaps = 8;

  std::atomic<bool> busy_{false};
  gap gaps_[kGaps] = {};
  int next_gap_ = 0;
  bool unusable_ = false;  // map_files cannot be read: every lookup reads the maps itself
  bool filled_ = false;
  int count_ = 0;
  std::size_t paths_used_ = 0;
  cached_mapping mappings_[kMappings] = {};
  char paths_[kPathBytes] = {};
  char buffer_[PATH_MAX + 256] = {};  // a line of the maps, or a readlink's answer
};

mapping_table g_table;

}  // namespace

int find_file_mapping(std::uintptr_t address, file_mapping &out, bool open_file) noexcept {
  out = file_mapping{};
  if (g_table.try_lock()) {
    int fd = -1;
    const bool answered = g_table.find(address, out, open_file, fd);
    g_table.unlock();
    if (answered) return fd;
  }
  return read_to_address(address, out, open_file);
}

lookup_session::lookup_session() noexcept {
  if (session_depth++ == 0) session_number = g_sessions.fetch_add(1, std::memory_order_relaxed) + 1;
}

lookup_session::~lookup_session() {
  if (--session_depth == 0) session_number = 0;
}

std::uint64_t maps_reads() noexcept { return g_maps_reads.load(std::memory_order_relaxed); }

unsigned long long libraries_unloaded() noexcept {
  unsigned long long unloaded = 0;
  dl_iterate_phdr(
      [](dl_phdr_info *info, std::size_t size, void *out) {
        if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
          *static_cast<unsigned long long *>(out) = info->dlpi_subs;
        return 1;  // every entry carries the same counts: the first is enough
      },
      &unloaded);
  return unloaded;
}

}  // namespace mesa::internal
