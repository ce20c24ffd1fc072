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

// The file mapping that holds a pc, from /proc/self/maps.
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
    found_start = start;
    found_offset = offset;
  }
};

// Reads /proc/self/maps (open/read: no allocation, no lock) until the mapping of `lookup.pc`.
void find_mapping(maps_lookup &lookup) noexcept {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buffer[2048];  // lines are well under 600 bytes: paths of at most 511
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
  ElfW(Sym) chunk[64];  // 1.5 KiB of stack, on a 64-bit target: small enough for a signal stack
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

// Looks the address up in the file's symbol table, else its dynamic one (a stripped library
// keeps only the exported functions there); writes the symbol's name into `name`. Out of line,
// as find_mangled_name: the buffers of each step are not on the stack at once (this may run on
// a signal handler's small alternate stack).
[[gnu::noinline]] bool find_symbol_name(int fd, std::uintptr_t start, std::uintptr_t file_offset,
                                        std::uintptr_t pc, char *name,
                                        std::size_t capacity) noexcept {
  ElfW(Ehdr) elf;
  if (!read_exact(fd, &elf, sizeof elf, 0) || std::memcmp(elf.e_ident, ELFMAG, SELFMAG) != 0 ||
      elf.e_shentsize != sizeof(ElfW(Shdr)) || elf.e_phentsize != sizeof(ElfW(Phdr)))
    return false;
  // The loadable segment whose bytes of the file hold pc's gives the address the code was
  // linked at: its virtual address is the same distance into the segment.
  const std::uint64_t position = pc - start + file_offset;  // pc's byte in the file
  std::uintptr_t vaddr = 0;
  bool in_segment = false;
  for (unsigned i = 0; i < elf.e_phnum && !in_segment; ++i) {
    ElfW(Phdr) ph;
    if (!read_exact(fd, &ph, sizeof ph, elf.e_phoff + i * sizeof ph)) return false;
    if (ph.p_type != PT_LOAD || position < ph.p_offset || position - ph.p_offset >= ph.p_filesz)
      continue;
    vaddr = static_cast<std::uintptr_t>(position - ph.p_offset + ph.p_vaddr);
    in_segment = true;
  }
  if (!in_segment) return false;
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

// The name of the symbol that holds `pc`, as its file spells it.
[[gnu::noinline]] bool find_mangled_name(std::uintptr_t pc, char *name,
                                         std::size_t capacity) noexcept {
  maps_lookup lookup;
  lookup.pc = pc;
  find_mapping(lookup);
  if (!lookup.found) return false;
  const open_file file(lookup.path);
  return file.fd() >= 0 &&
         find_symbol_name(file.fd(), lookup.found_start, lookup.found_offset, pc, name, capacity);
}

}  // namespace

bool frame_symbol(const void *pc, char *out, std::size_t capacity) noexcept {
  if (capacity == 0) return false;
  out[0] = '\0';
  char mangled[512];
  if (!find_mangled_name(reinterpret_cast<std::uintptr_t>(pc), mangled, sizeof mangled))
    return false;
  // A C function, or a name the demangler does not take, as it is in the file.
  char demangled[512];
  const char *name = absl::debugging_internal::Demangle(mangled, demangled, sizeof demangled)
                         ? demangled
                         : mangled;
  std::strncpy(out, name, capacity - 1);
  out[capacity - 1] = '\0';
  return true;
}

void frame_location(const void *pc, char *out, std::size_t capacity) noexcept {
  out[0] = '\0';
  maps_lookup lookup;
  lookup.pc = reinterpret_cast<std::uintptr_t>(pc);
  find_mapping(lookup);
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
