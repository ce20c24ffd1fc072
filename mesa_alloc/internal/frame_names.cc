#include "mesa_alloc/internal/frame_names.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "absl/debugging/internal/demangle.h"
#include "mesa_alloc/internal/file_mappings.h"

namespace mesa::internal {
namespace {

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

// The bytes [offset, offset + size) of the found file: from `fd`, or without one (a deleted
// file, a memfd) from its mapped start, with a system call that fails where a memcpy would
// fault (the header unmapped or made inaccessible since the maps were read).
bool read_header_bytes(const file_mapping &m, int fd, void *out, std::size_t size,
                       std::uint64_t offset) noexcept {
  if (fd >= 0) return read_exact(fd, out, size, offset);
  const std::uint64_t mapped = m.base_stop - m.base;
  if (!m.header_mapped || offset > mapped || size > mapped - offset) return false;  // no overflow
  iovec local{out, size};
  iovec remote{reinterpret_cast<void *>(m.base + offset), size};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

// The address pc has in its file as linked: what addr2line takes, what the symbol table holds.
// The loadable segment whose bytes of the file hold pc's byte gives it (the same distance into
// the segment), whatever the layout: PIE or not, lld's segments packed in the file, a file
// linked at a non-zero base.
bool link_address(const file_mapping &m, std::uintptr_t pc, int fd,
                  std::uintptr_t &vaddr) noexcept {
  ElfW(Ehdr) elf;
  if (!read_header_bytes(m, fd, &elf, sizeof elf, 0) ||
      std::memcmp(elf.e_ident, ELFMAG, SELFMAG) != 0 || elf.e_phentsize != sizeof(ElfW(Phdr)))
    return false;
  const std::uint64_t position = pc - m.start + m.offset;  // pc's byte in the file
  for (unsigned i = 0; i < elf.e_phnum; ++i) {
    ElfW(Phdr) ph;
    if (!read_header_bytes(m, fd, &ph, sizeof ph, elf.e_phoff + i * sizeof ph)) return false;
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

// Keeps the best of the symbols that hold virtual address `vaddr`, one at a time.
class symbol_choice {
 public:
  symbol_choice(int fd, const ElfW(Shdr) & strings, std::uintptr_t vaddr) noexcept
      : fd_(fd), strings_(strings), vaddr_(vaddr) {}

  void consider(const ElfW(Sym) & s) noexcept {
    if (s.st_value == 0 || s.st_shndx == SHN_UNDEF || ELF32_ST_TYPE(s.st_info) == STT_TLS) return;
    const bool holds = s.st_size != 0 ? vaddr_ >= s.st_value && vaddr_ - s.st_value < s.st_size
                                      : vaddr_ == s.st_value;
    if (!holds) return;
    const int r = rank(fd_, strings_, s);
    if (r <= best_rank_) return;
    best_ = s;
    best_rank_ = r;
  }
  bool found(ElfW(Sym) & best) const noexcept {
    best = best_;
    return best_rank_ >= 0;
  }

 private:
  const int fd_;
  const ElfW(Shdr) & strings_;
  const std::uintptr_t vaddr_;
  ElfW(Sym) best_{};
  int best_rank_ = -1;
};

// Maps a large table's `count` entries from the file, when the file holds them all (a mapped
// page past the file's end would fault): one mmap instead of a pread per 16 entries, which in
// libLLVM's 46,000 symbols took 700 microseconds a lookup (125 mapped). Null, and nothing
// mapped, when it cannot or the table is small (a program's own: mmap and munmap cost more than
// its few reads); else `mapped` and `length` are what to munmap. (A file truncated while it is
// mapped here faults as its code, mapped from the same file, would.)
const ElfW(Sym) * map_table(int fd, const ElfW(Shdr) & table, std::uint64_t count, void *&mapped,
                            std::size_t &length) noexcept {
  constexpr std::uint64_t kMapFrom = 512;  // symbols: 32 reads
  if (count < kMapFrom) return nullptr;
  const std::uint64_t bytes = count * sizeof(ElfW(Sym));
  struct stat file;
  if (fstat(fd, &file) != 0 || file.st_size < 0 ||
      table.sh_offset > static_cast<std::uint64_t>(file.st_size) ||
      bytes > static_cast<std::uint64_t>(file.st_size) - table.sh_offset ||
      bytes > SIZE_MAX / 2)  // a 32-bit process: more than it can map
    return nullptr;
  const std::uint64_t page = static_cast<std::uint64_t>(getpagesize());
  const std::uint64_t start = table.sh_offset & ~(page - 1);
  length = static_cast<std::size_t>(table.sh_offset - start + bytes);
  mapped = mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(start));
  if (mapped == MAP_FAILED) return nullptr;
  return reinterpret_cast<const ElfW(Sym) *>(static_cast<const char *>(mapped) +
                                             (table.sh_offset - start));
}

// The best symbol of the table in section `table`, whose names are in `strings`, that holds
// virtual address `vaddr`.
bool find_in_table(int fd, const ElfW(Shdr) & table, const ElfW(Shdr) & strings,
                   std::uintptr_t vaddr, ElfW(Sym) & best) noexcept {
  if (table.sh_entsize != sizeof(ElfW(Sym))) return false;
  const std::uint64_t count = table.sh_size / sizeof(ElfW(Sym));
  symbol_choice choice(fd, strings, vaddr);
  void *mapped;
  std::size_t length;
  if (const ElfW(Sym) *symbols = map_table(fd, table, count, mapped, length)) {
    for (std::uint64_t i = 0; i < count; ++i) choice.consider(symbols[i]);
    munmap(mapped, length);
    return choice.found(best);
  }
  ElfW(Sym) chunk[16];  // 384 bytes of stack on a 64-bit target: this may run on a signal stack
  for (std::uint64_t i = 0; i < count;) {
    const std::uint64_t want =
        count - i < sizeof chunk / sizeof chunk[0] ? count - i : sizeof chunk / sizeof chunk[0];
    const ssize_t got =
        read_at(fd, chunk, want * sizeof(ElfW(Sym)), table.sh_offset + i * sizeof(ElfW(Sym)));
    const std::uint64_t n = got > 0 ? static_cast<std::uint64_t>(got) / sizeof(ElfW(Sym)) : 0;
    if (n == 0) break;  // a truncated file: what was read is all there is
    for (std::uint64_t j = 0; j < n; ++j) choice.consider(chunk[j]);
    i += n;
  }
  return choice.found(best);
}

// The section headers of the file's symbol table and dynamic symbol table (sh_type SHT_NULL
// for one it lacks), in one pass over the section headers read eight at a time, and where the
// section headers are. Out of line: its buffer is off the stack before the tables are searched
// (this may run on a signal handler's small alternate stack).
[[gnu::noinline]] bool find_symbol_tables(int fd, ElfW(Shdr) & symtab, ElfW(Shdr) & dynsym,
                                          ElfW(Off) & headers) noexcept {
  ElfW(Ehdr) elf;
  if (!read_exact(fd, &elf, sizeof elf, 0) || std::memcmp(elf.e_ident, ELFMAG, SELFMAG) != 0 ||
      elf.e_shentsize != sizeof(ElfW(Shdr)))
    return false;
  headers = elf.e_shoff;
  symtab.sh_type = dynsym.sh_type = SHT_NULL;
  ElfW(Shdr) chunk[8];  // 512 bytes of stack on a 64-bit target
  for (unsigned i = 0; i < elf.e_shnum;) {
    const unsigned n = elf.e_shnum - i < 8u ? elf.e_shnum - i : 8u;
    if (!read_exact(fd, chunk, n * sizeof chunk[0], elf.e_shoff + i * sizeof chunk[0]))
      return false;
    for (unsigned j = 0; j < n; ++j) {
      if (chunk[j].sh_type == SHT_SYMTAB && symtab.sh_type == SHT_NULL) symtab = chunk[j];
      if (chunk[j].sh_type == SHT_DYNSYM && dynsym.sh_type == SHT_NULL) dynsym = chunk[j];
    }
    i += n;
  }
  return true;
}

// Looks `vaddr` up in the file's symbol table, else its dynamic one (a stripped library keeps
// only the exported functions there); writes the symbol's name into `name`. Out of line, as
// find_mangled_name: the buffers of each step are not on the stack at once (this may run on a
// signal handler's small alternate stack).
[[gnu::noinline]] bool find_symbol_name(int fd, std::uintptr_t vaddr, char *name,
                                        std::size_t capacity) noexcept {
  ElfW(Shdr) tables[2];
  ElfW(Off) headers;
  if (!find_symbol_tables(fd, tables[0], tables[1], headers)) return false;
  for (const ElfW(Shdr) & table : tables) {
    if (table.sh_type == SHT_NULL) continue;
    ElfW(Shdr) strings;
    ElfW(Sym) symbol;
    if (!read_exact(fd, &strings, sizeof strings, headers + table.sh_link * sizeof strings) ||
        !find_in_table(fd, table, strings, vaddr, symbol))
      continue;
    const ssize_t got = read_at(fd, name, capacity - 1, strings.sh_offset + symbol.st_name);
    if (got <= 0) continue;
    name[got] = '\0';
    return name[0] != '\0';
  }
  return false;
}

// The name of the symbol that holds `pc`, as its file spells it. (A deleted file, a program or
// driver upgraded while running or a JIT's memfd, is not opened.) `open_error`: why the file
// holding it could not be opened (EMFILE, ...), else left alone.
[[gnu::noinline]] bool find_mangled_name(std::uintptr_t pc, char *name, std::size_t capacity,
                                         int *open_error) noexcept {
  file_mapping m;
  const int fd = find_file_mapping(pc, m, true);
  if (fd < 0) {
    if (m.found) *open_error = m.open_error;
    return false;
  }
  std::uintptr_t vaddr;
  const bool named = link_address(m, pc, fd, vaddr) && find_symbol_name(fd, vaddr, name, capacity);
  close(fd);
  return named;
}

// `text`, cut to what `out` holds (capacity >= 1), terminated; a cut name ends in "..." (where
// `out` holds more than that), so that it does not read as a whole, different name.
void copy_cut(const char *text, char *out, std::size_t capacity) noexcept {
  const std::size_t length = strnlen(text, capacity);
  if (length < capacity) {
    std::memcpy(out, text, length + 1);
    return;
  }
  static constexpr char kCut[] = "...";
  std::memcpy(out, text, capacity - 1);
  out[capacity - 1] = '\0';
  if (capacity > sizeof kCut) std::memcpy(out + capacity - sizeof kCut, kCut, sizeof kCut);
}

// Demangles a name `out` cannot hold whole (its first capacity - 1 bytes), else copies it.
[[gnu::noinline]] void demangle_cut(const char *mangled, char *out, std::size_t capacity) noexcept {
  char demangled[1024];
  const char *name = absl::debugging_internal::Demangle(mangled, demangled, sizeof demangled)
                         ? demangled
                         : mangled;
  copy_cut(name, out, capacity);
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
  int open_error = 0;
  if (!find_mangled_name(reinterpret_cast<std::uintptr_t>(pc), mangled, sizeof mangled,
                         &open_error)) {
    // A file that holds the name but could not be read is not a stripped one: say why.
    if (open_error == 0) return false;
    std::snprintf(out, capacity, "(name not read: %s)", std::strerror(open_error));
    return true;
  }
  if (stack_low != nullptr && !room_to_demangle(mangled, stack_low)) {
    copy_cut(mangled, out, capacity);
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
  const auto address = reinterpret_cast<std::uintptr_t>(pc);
  file_mapping m;
  const int fd = find_file_mapping(address, m, true);
  if (m.error != 0) {
    std::snprintf(out, capacity, " (not located: /proc/self/maps: %s)", std::strerror(m.error));
    return;
  }
  if (!m.found) return;
  // The link-time address, as addr2line and AddressSanitizer take it; for a file whose ELF
  // header is not mapped (a JIT's memfd), the offset in the file.
  std::uintptr_t where;
  if (!link_address(m, address, fd, where)) where = address - m.base;
  if (fd >= 0) close(fd);
  std::snprintf(out, capacity, " (%s+0x%" PRIxPTR ")", m.name, where);
}

}  // namespace mesa::internal
