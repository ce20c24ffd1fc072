#include "mesa_alloc/internal/frame_names.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "absl/debugging/internal/demangle.h"

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

std::uint64_t hash_of(const char *p, std::size_t length) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < length; ++i)
    h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ull;
  return h;
}

// The file mapping that holds a pc, from /proc/self/maps.
struct maps_lookup {
  std::uintptr_t pc;
  // The last mapping of a file's start seen (its ELF header): where, and the file's path hash.
  std::uintptr_t base = 0;
  std::uintptr_t base_stop = 0;
  bool base_readable = false;
  std::uint64_t base_path_hash = 0;
  bool found = false;
  // The header of pc's file, at found_base, readable up to found_base_stop. Not so for code
  // mapped from the middle of a file with no view of its start (a JIT's memfd).
  bool found_header_mapped = false;
  std::uintptr_t found_base = 0;
  std::uintptr_t found_base_stop = 0;
  std::uintptr_t found_start = 0;   // the mapping that holds pc
  std::uintptr_t found_offset = 0;  // and the file offset it maps
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
    const std::uint64_t path_hash = hash_of(p, length);
    if (offset == 0) {
      base = start;
      base_stop = stop;
      base_readable = readable;
      base_path_hash = path_hash;
    }
    if (pc < start || pc >= stop) return;
    found = true;
    std::memcpy(path, p, length);
    path[length] = '\0';
    found_header_mapped = path_hash == base_path_hash && base_readable;
    found_base = found_header_mapped ? base : start - offset;
    found_base_stop = found_header_mapped ? base_stop : 0;
    found_start = start;
    found_offset = offset;
  }
};

// Reads /proc/self/maps (open/read: no allocation, no lock) until the mapping of `lookup.pc`.
void find_mapping(maps_lookup &lookup) noexcept {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buffer[1024];  // a line with a path of at most 511 bytes is under 600
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
}

// pread until `size` bytes or the end of the file; the bytes read, -1 on an error.
ssize_t read_at(int fd, void *out, std::size_t size, std::uint64_t offset) noexcept {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n =
        pread(fd, static_cast<char *>(out) + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

bool read_exact(int fd, void *out, std::size_t size, std::uint64_t offset) noexcept {
  return read_at(fd, out, size, offset) == static_cast<ssize_t>(size);
}

// The descriptor of one lookup, closed on every way out.
class open_file {
 public:
  explicit open_file(const char *path) noexcept : fd_(open(path, O_RDONLY | O_CLOEXEC)) {}
  ~open_file() {
    if (fd_ >= 0) close(fd_);
  }
  open_file(const open_file &) = delete;
  open_file &operator=(const open_file &) = delete;
  int fd() const noexcept { return fd_; }

 private:
  const int fd_;
};

// The bytes [offset, offset + size) of the found file: from its mapped start if that mapping
// holds them (no system call; a deleted file's too), else from `fd` (-1: no file to read).
bool read_header_bytes(const maps_lookup &l, int fd, void *out, std::size_t size,
                       std::uint64_t offset) noexcept {
  const std::uint64_t mapped = l.found_base_stop - l.found_base;
  if (l.found_header_mapped && offset <= mapped && size <= mapped - offset) {  // no overflow
    std::memcpy(out, reinterpret_cast<const char *>(l.found_base) + offset, size);
    return true;
  }
  return fd >= 0 && read_exact(fd, out, size, offset);
}

// The address pc has in its file as linked: what addr2line takes, what the symbol table holds.
// The loadable segment whose bytes of the file hold pc's byte gives it (the same distance into
// the segment), whatever the layout: PIE or not, lld's segments packed in the file, a file
// linked at a non-zero base.
bool link_address(const maps_lookup &l, int fd, std::uintptr_t &vaddr) noexcept {
  ElfW(Ehdr) elf;
  if (!read_header_bytes(l, fd, &elf, sizeof elf, 0) ||
      std::memcmp(elf.e_ident, ELFMAG, SELFMAG) != 0 || elf.e_phentsize != sizeof(ElfW(Phdr)))
    return false;
  const std::uint64_t position = l.pc - l.found_start + l.found_offset;  // pc's byte in the file
  for (unsigned i = 0; i < elf.e_phnum; ++i) {
    ElfW(Phdr) ph;
    if (!read_header_bytes(l, fd, &ph, sizeof ph, elf.e_phoff + i * sizeof ph)) return false;
    if (ph.p_type != PT_LOAD || position < ph.p_offset || position - ph.p_offset >= ph.p_filesz)
      continue;
    vaddr = static_cast<std::uintptr_t>(position - ph.p_offset + ph.p_vaddr);
    return true;
  }
  return false;
}

// How well a symbol that holds the address names it, as a reader would choose among aliases:
// one with a size over one without, a function or object over an untyped label, a public name
// over a reserved one (libc's getpagesize, not its __getpagesize), and a strong definition
// over a weak one. (ELF32_ST_TYPE and ELF32_ST_BIND read st_info, one byte in either class.)
int rank(int fd, const ElfW(Shdr) & strings, const ElfW(Sym) & s) noexcept {
  const int type = ELF32_ST_TYPE(s.st_info);
  char start[2] = {};
  const bool reserved = read_exact(fd, start, sizeof start, strings.sh_offset + s.st_name) &&
                        start[0] == '_' && start[1] == '_';
  return (s.st_size != 0 ? 8 : 0) + (type == STT_FUNC || type == STT_OBJECT ? 4 : 0) +
         (reserved ? 0 : 2) + (ELF32_ST_BIND(s.st_info) != STB_WEAK ? 1 : 0);
}

// The best symbol of the table in section `table`, whose names are in `strings`, that holds
// virtual address `vaddr`.
bool find_in_table(int fd, const ElfW(Shdr) & table, const ElfW(Shdr) & strings,
                   std::uintptr_t vaddr, ElfW(Sym) & best) noexcept {
  if (table.sh_entsize != sizeof(ElfW(Sym))) return false;
  const std::uint64_t count = table.sh_size / sizeof(ElfW(Sym));
  ElfW(Sym) chunk[16];  // 384 bytes of stack on a 64-bit target: this may run on a signal stack
  int best_rank = -1;
  for (std::uint64_t i = 0; i < count;) {
    const std::uint64_t want =
        count - i < sizeof chunk / sizeof chunk[0] ? count - i : sizeof chunk / sizeof chunk[0];
    const ssize_t got =
        read_at(fd, chunk, want * sizeof(ElfW(Sym)), table.sh_offset + i * sizeof(ElfW(Sym)));
    const std::uint64_t n = got > 0 ? static_cast<std::uint64_t>(got) / sizeof(ElfW(Sym)) : 0;
    if (n == 0) break;  // a truncated file: what was read is all there is
    for (std::uint64_t j = 0; j < n; ++j) {
      const ElfW(Sym) &s = chunk[j];
      if (s.st_value == 0 || s.st_shndx == SHN_UNDEF || ELF32_ST_TYPE(s.st_info) == STT_TLS)
        continue;
      const bool holds = s.st_size != 0 ? vaddr >= s.st_value && vaddr - s.st_value < s.st_size
                                        : vaddr == s.st_value;
      if (!holds) continue;
      const int r = rank(fd, strings, s);
      if (r <= best_rank) continue;
      best = s;
      best_rank = r;
    }
    i += n;
  }
  return best_rank >= 0;
}

// Looks `vaddr` up in the file's symbol table, else its dynamic one (a stripped library keeps
// only the exported functions there); writes the symbol's name into `name`. Out of line, as
// find_mangled_name: the buffers of each step are not on the stack at once (this may run on a
// signal handler's small alternate stack).
[[gnu::noinline]] bool find_symbol_name(int fd, std::uintptr_t vaddr, char *name,
                                        std::size_t capacity) noexcept {
  ElfW(Ehdr) elf;
  if (!read_exact(fd, &elf, sizeof elf, 0) || std::memcmp(elf.e_ident, ELFMAG, SELFMAG) != 0 ||
      elf.e_shentsize != sizeof(ElfW(Shdr)))
    return false;
  static constexpr ElfW(Word) kTables[] = {SHT_SYMTAB, SHT_DYNSYM};
  for (const ElfW(Word) type : kTables) {
    for (unsigned i = 0; i < elf.e_shnum; ++i) {
      ElfW(Shdr) table;
      if (!read_exact(fd, &table, sizeof table, elf.e_shoff + i * sizeof table)) return false;
      if (table.sh_type != type) continue;
      ElfW(Shdr) strings;
      ElfW(Sym) symbol;
      if (!read_exact(fd, &strings, sizeof strings, elf.e_shoff + table.sh_link * sizeof strings) ||
          !find_in_table(fd, table, strings, vaddr, symbol))
        break;
      const ssize_t got = read_at(fd, name, capacity - 1, strings.sh_offset + symbol.st_name);
      if (got <= 0) break;
      name[got] = '\0';
      return name[0] != '\0';
    }
  }
  return false;
}

bool ends_with(const char *s, const char *suffix) noexcept {
  const std::size_t n = std::strlen(s), k = std::strlen(suffix);
  return n >= k && std::memcmp(s + n - k, suffix, k) == 0;
}

// The name of the symbol that holds `pc`, as its file spells it.
[[gnu::noinline]] bool find_mangled_name(std::uintptr_t pc, char *name,
                                         std::size_t capacity) noexcept {
  maps_lookup lookup;
  lookup.pc = pc;
  find_mapping(lookup);
  // A deleted file (a program or driver upgraded while running, a JIT's memfd) cannot be opened.
  if (!lookup.found || ends_with(lookup.path, " (deleted)")) return false;
  const open_file file(lookup.path);
  std::uintptr_t vaddr;
  return file.fd() >= 0 && link_address(lookup, file.fd(), vaddr) &&
         find_symbol_name(file.fd(), vaddr, name, capacity);
}

// Demangles a name `out` cannot hold whole (its first capacity - 1 bytes), else copies it.
[[gnu::noinline]] void demangle_cut(const char *mangled, char *out, std::size_t capacity) noexcept {
  char demangled[1024];
  const char *name = absl::debugging_internal::Demangle(mangled, demangled, sizeof demangled)
                         ? demangled
                         : mangled;
  std::strncpy(out, name, capacity - 1);
  out[capacity - 1] = '\0';
}

// Abseil's demangler recurses about 240 bytes of stack per nesting level of the name (a
// template argument list, a nested name): counted here from the mangled name's 'I' and 'N'
// (a bound from above: identifiers may hold those letters too), with 2 KiB for the rest.
bool room_to_demangle(const char *mangled, const void *stack_low) noexcept {
  std::size_t levels = 0;
  for (const char *c = mangled; *c != '\0'; ++c) levels += *c == 'I' || *c == 'N';
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  const auto low = reinterpret_cast<std::uintptr_t>(stack_low);
  return here > low && here - low >= 2048 + 256 * levels;
}

// errno as the caller left it, whatever the lookup's system calls did to it (a signal handler
// that returns must not change it under the code it interrupted).
class errno_keeper {
 public:
  errno_keeper() noexcept : saved_(errno) {}
  ~errno_keeper() { errno = saved_; }
  errno_keeper(const errno_keeper &) = delete;
  errno_keeper &operator=(const errno_keeper &) = delete;

 private:
  const int saved_;
};

}  // namespace

bool frame_symbol(const void *pc, char *out, std::size_t capacity, const void *stack_low) noexcept {
  if (capacity == 0) return false;
  const errno_keeper keep_errno;
  out[0] = '\0';
  char mangled[1024];
  if (!find_mangled_name(reinterpret_cast<std::uintptr_t>(pc), mangled, sizeof mangled))
    return false;
  if (stack_low != nullptr && !room_to_demangle(mangled, stack_low)) {
    std::strncpy(out, mangled, capacity - 1);
    out[capacity - 1] = '\0';
    return true;
  }
  // Straight into `out` when it fits; a C function, or a name the demangler does not take, as
  // it is in the file.
  const int room = capacity < sizeof mangled ? static_cast<int>(capacity) : sizeof mangled;
  if (!absl::debugging_internal::Demangle(mangled, out, room)) demangle_cut(mangled, out, capacity);
  return true;
}

void frame_location(const void *pc, char *out, std::size_t capacity) noexcept {
  const errno_keeper keep_errno;
  out[0] = '\0';
  maps_lookup lookup;
  lookup.pc = reinterpret_cast<std::uintptr_t>(pc);
  find_mapping(lookup);
  if (!lookup.found) return;
  // The link-time address, as addr2line and AddressSanitizer take it; for a file whose ELF
  // header is not mapped (a JIT's memfd), the offset in the file.
  std::uintptr_t where;
  if (!link_address(lookup, -1, where)) where = lookup.pc - lookup.found_base;
  const char *slash = std::strrchr(lookup.path, '/');
  std::snprintf(out, capacity, " (%s+0x%" PRIxPTR ")", slash + 1, where);
}

}  // namespace mesa::internal
