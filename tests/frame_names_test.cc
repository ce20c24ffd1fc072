// frame_symbol and frame_location: the names that leak reports and trace call sites print,
// in one process and across fork().
#include "mesa_alloc/internal/frame_names.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mesa_alloc/internal/file_mappings.h"

namespace frame_names_probe {

[[gnu::noinline]] int add_one(volatile int *x) { return *x + 1; }

// A function whose mangled name is over 700 bytes, as template code over several types has.
#define FRAME_NAMES_LONG_TYPE(n) \
  struct shader_compiler_intermediate_representation_node_kind_number_##n {};
FRAME_NAMES_LONG_TYPE(0)
FRAME_NAMES_LONG_TYPE(1)
FRAME_NAMES_LONG_TYPE(2)
FRAME_NAMES_LONG_TYPE(3)
FRAME_NAMES_LONG_TYPE(4)
FRAME_NAMES_LONG_TYPE(5)
FRAME_NAMES_LONG_TYPE(6)
FRAME_NAMES_LONG_TYPE(7)
FRAME_NAMES_LONG_TYPE(8)
FRAME_NAMES_LONG_TYPE(9)
#undef FRAME_NAMES_LONG_TYPE

template <typename... Kinds>
[[gnu::noinline]] int lower_nodes(volatile int *x) {
  return *x + static_cast<int>(sizeof...(Kinds));
}

#define FRAME_NAMES_KIND(n) shader_compiler_intermediate_representation_node_kind_number_##n
const void *long_named_function() {
  return reinterpret_cast<const void *>(
      &lower_nodes<FRAME_NAMES_KIND(0), FRAME_NAMES_KIND(1), FRAME_NAMES_KIND(2),
                   FRAME_NAMES_KIND(3), FRAME_NAMES_KIND(4), FRAME_NAMES_KIND(5),
                   FRAME_NAMES_KIND(6), FRAME_NAMES_KIND(7), FRAME_NAMES_KIND(8),
                   FRAME_NAMES_KIND(9)>);
}
#undef FRAME_NAMES_KIND

}  // namespace frame_names_probe

namespace {

[[gnu::noinline]] int local_twice(volatile int *x) { return *x * 2; }

// An address `offset` bytes into a function: a return address is never its first byte.
const char *inside(const void *function, int offset = 1) {
  return static_cast<const char *>(function) + offset;
}

std::string symbol_of(const void *pc) {
  char out[256];
  if (!mesa::internal::frame_symbol(pc, out, sizeof out)) return "(none)";
  return out;
}

// Whether this test's probes and a libc function, `offset` bytes in, are named right.
bool names_are_right(int offset) {
  return symbol_of(inside(reinterpret_cast<const void *>(&frame_names_probe::add_one), offset)) ==
             "frame_names_probe::add_one()" &&
         symbol_of(inside(reinterpret_cast<const void *>(&local_twice), offset)) ==
             "(anonymous namespace)::local_twice()" &&
         symbol_of(inside(reinterpret_cast<const void *>(&getpagesize), offset)) == "getpagesize";
}

// The names of `count` addresses spread over libc's code around getpagesize, hashed (FNV-1a);
// how many have a name into `named`.
std::uint64_t hash_of_libc_names(int count, int &named) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  named = 0;
  for (int i = 0; i < count; ++i) {
    const std::string name =
        symbol_of(inside(reinterpret_cast<const void *>(&getpagesize), (i - count / 2) * 61));
    named += name != "(none)";
    for (const char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    hash = (hash ^ 0xff) * 0x100000001b3ull;
  }
  return hash;
}

TEST(FrameSymbol, NamesAFunctionOfThisProgramDemangled) {
  EXPECT_EQ(symbol_of(inside(reinterpret_cast<const void *>(&frame_names_probe::add_one))),
            "frame_names_probe::add_one()");
}

TEST(FrameSymbol, NamesAFunctionWithoutExternalLinkageFromTheSymbolTable) {
  EXPECT_EQ(symbol_of(inside(reinterpret_cast<const void *>(&local_twice))),
            "(anonymous namespace)::local_twice()");
}

TEST(FrameSymbol, NamesACFunctionOfASharedLibraryAsItIs) {
  EXPECT_EQ(symbol_of(inside(reinterpret_cast<const void *>(&getpagesize))), "getpagesize");
}

TEST(FrameSymbol, AnAddressNoFileHoldsHasNoName) {
  void *heap = std::calloc(1, 64);
  char out[64] = "untouched";
  EXPECT_FALSE(mesa::internal::frame_symbol(heap, out, sizeof out));
  EXPECT_STREQ(out, "");
  std::free(heap);
}

// Cut, its end marked, so that it does not read as the name of another function.
TEST(FrameSymbol, ANameLongerThanTheBufferIsCutMarkedAndTerminated) {
  char out[12];
  ASSERT_TRUE(mesa::internal::frame_symbol(
      inside(reinterpret_cast<const void *>(&frame_names_probe::add_one)), out, sizeof out));
  EXPECT_EQ(std::string(out), "frame_na...");
  char tiny[3];
  ASSERT_TRUE(mesa::internal::frame_symbol(
      inside(reinterpret_cast<const void *>(&frame_names_probe::add_one)), tiny, sizeof tiny));
  EXPECT_EQ(std::string(tiny), "fr");
  char whole[29];
  ASSERT_TRUE(mesa::internal::frame_symbol(
      inside(reinterpret_cast<const void *>(&frame_names_probe::add_one)), whole, sizeof whole));
  EXPECT_EQ(std::string(whole), "frame_names_probe::add_one()");
}

TEST(FrameSymbol, AMangledNameOverFiveHundredBytesIsDemangled) {
  EXPECT_EQ(symbol_of(inside(frame_names_probe::long_named_function())),
            "frame_names_probe::lower_nodes<>()");
}

// errno as the caller left it, when the lookup's open fails (a file deleted since it was
// mapped): the guard pages' signal handler names frames, and must not change the errno of the
// code it interrupted.
TEST(FrameSymbol, ALookupThatFailsLeavesErrnoAlone) {
  const int fd = memfd_create("jit", 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  void *view = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(view, MAP_FAILED);
  char out[256];
  errno = EAGAIN;
  EXPECT_FALSE(mesa::internal::frame_symbol(static_cast<char *>(view) + 16, out, sizeof out));
  EXPECT_EQ(errno, EAGAIN);
  mesa::internal::frame_location(static_cast<char *>(view) + 16, out, sizeof out);
  EXPECT_EQ(errno, EAGAIN);
  munmap(view, 4096);
  close(fd);
}

// A file whose second loadable segment follows the first in the file but a page above it in
// memory, as lld lays out a small library (LOAD 0x0 at 0x0, LOAD 0x100 at 0x1100), optionally
// linked at a non-zero base (-Ttext-segment, --image-base), with one function in its symbol
// table. Mapped whole from offset 0, the second segment's bytes lie in the file's first page.
// Made in `directory`, mapped at `at` when given (MAP_FIXED). Its symbol table's header may
// claim more entries than the two the file holds.
class SyntheticElf {
 public:
  explicit SyntheticElf(std::uintptr_t link_base, std::uint64_t program_headers_at = 0,
                        const std::string &directory = "/tmp", void *at = nullptr,
                        std::uint64_t claimed_symbols = 2) {
    std::vector<char> image(kBytes, 0);
    auto *elf = reinterpret_cast<ElfW(Ehdr) *>(image.data());
    std::memcpy(elf->e_ident, ELFMAG, SELFMAG);
    elf->e_ident[EI_CLASS] = sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32;
    elf->e_ident[EI_DATA] = ELFDATA2LSB;
    elf->e_ident[EI_VERSION] = EV_CURRENT;
    elf->e_type = ET_DYN;
    elf->e_phoff = program_headers_at != 0 ? program_headers_at : sizeof(ElfW(Ehdr));
    elf->e_phentsize = sizeof(ElfW(Phdr));
    elf->e_phnum = 2;
    elf->e_shoff = 0x400;
    elf->e_shentsize = sizeof(ElfW(Shdr));
    elf->e_shnum = 3;
    auto *ph = reinterpret_cast<ElfW(Phdr) *>(image.data() + sizeof(ElfW(Ehdr)));
    ph[0] = ElfW(Phdr){};
    ph[0].p_type = PT_LOAD;
    ph[0].p_vaddr = link_base;
    ph[0].p_filesz = ph[0].p_memsz = 0x100;
    ph[0].p_flags = PF_R;
    ph[1] = ph[0];
    ph[1].p_offset = 0x100;
    ph[1].p_vaddr = link_base + 0x1100;
    ph[1].p_filesz = ph[1].p_memsz = 0x200;
    ph[1].p_flags = PF_R | PF_X;
    auto *sh = reinterpret_cast<ElfW(Shdr) *>(image.data() + elf->e_shoff);
    sh[1].sh_type = SHT_SYMTAB;
    sh[1].sh_offset = 0x600;
    sh[1].sh_size = claimed_symbols * sizeof(ElfW(Sym));
    sh[1].sh_entsize = sizeof(ElfW(Sym));
    sh[1].sh_link = 2;
    sh[2].sh_type = SHT_STRTAB;
    sh[2].sh_offset = 0x700;
    sh[2].sh_size = 0x40;
    auto *sym = reinterpret_cast<ElfW(Sym) *>(image.data() + 0x600);
    sym[1].st_name = 1;
    sym[1].st_info = ELF32_ST_INFO(STB_GLOBAL, STT_FUNC);
    sym[1].st_shndx = 1;
    sym[1].st_value = link_base + 0x1150;
    sym[1].st_size = 0x80;
    std::strcpy(image.data() + 0x701, "synthetic_function");
    std::string path = directory + "/frame_names_test_XXXXXX";
    const int fd = mkstemp(path.data());
    if (fd < 0) return;
    path_ = path;
    const bool written = write(fd, image.data(), image.size()) == kBytes;
    view_ = written
                ? mmap(at, kBytes, PROT_READ, MAP_PRIVATE | (at != nullptr ? MAP_FIXED : 0), fd, 0)
                : MAP_FAILED;
    close(fd);
  }
  ~SyntheticElf() {
    if (view_ != MAP_FAILED) munmap(view_, kBytes);
    if (!path_.empty()) unlink(path_.c_str());
  }
  // Two pages: the first holds the header, the tables and the code; the second is past every
  // segment.
  static constexpr std::size_t kBytes = 8192;

  bool ok() const { return view_ != MAP_FAILED; }
  const char *at(std::size_t offset) const { return static_cast<const char *>(view_) + offset; }
  std::string file_name() const { return path_.substr(path_.rfind('/') + 1); }
  // Removes the file, which stays mapped (the maps then say " (deleted)").
  void unlink_file() {
    unlink(path_.c_str());
    path_.clear();
  }
  // Unmaps the file, leaving the address range to the caller.
  void *unmap() {
    void *view = view_;
    if (view_ != MAP_FAILED) munmap(view_, kBytes);
    view_ = MAP_FAILED;
    return view;
  }

 private:
  std::string path_;
  void *view_ = MAP_FAILED;
};

TEST(FrameNames, ASegmentPackedIntoTheFilesFirstPageIsNamedAtItsLinkAddress) {
  const SyntheticElf lld_like(0);
  ASSERT_TRUE(lld_like.ok());
  EXPECT_EQ(symbol_of(lld_like.at(0x180)), "synthetic_function");
  char where[320];
  mesa::internal::frame_location(lld_like.at(0x180), where, sizeof where);
  EXPECT_EQ(std::string(where), " (" + lld_like.file_name() + "+0x1180)");
}

TEST(FrameNames, AFileLinkedAtANonZeroBaseIsNamedAtItsLinkAddress) {
  const SyntheticElf based(0x20000000);
  ASSERT_TRUE(based.ok());
  EXPECT_EQ(symbol_of(based.at(0x180)), "synthetic_function");
  char where[320];
  mesa::internal::frame_location(based.at(0x180), where, sizeof where);
  EXPECT_EQ(std::string(where), " (" + based.file_name() + "+0x20001180)");
}

// A mapped file whose header puts its program headers at an offset that wraps (e_phoff -56):
// the bounds check overflowed and both lookups read far outside the mapping.
TEST(FrameNames, AHostileProgramHeaderOffsetIsRefusedNotRead) {
  const SyntheticElf hostile(0, static_cast<std::uint64_t>(-56));
  ASSERT_TRUE(hostile.ok());
  char out[320];
  EXPECT_FALSE(mesa::internal::frame_symbol(hostile.at(0x180), out, sizeof out));
  mesa::internal::frame_location(hostile.at(0x180), out, sizeof out);
  EXPECT_EQ(std::string(out), " (" + hostile.file_name() + "+0x180)");
}

// A large symbol table is mapped rather than read (one mmap, not a read per 16 entries), but
// only the part inside the file: a mapped page past the file's end faults (SIGBUS) when read.
TEST(FrameNames, ASymbolTableLongerThanItsFileIsReadAsFarAsTheFileGoes) {
  const SyntheticElf truncated(0, 0, "/tmp", nullptr, 100000);
  ASSERT_TRUE(truncated.ok());
  EXPECT_EQ(symbol_of(truncated.at(0x180)), "synthetic_function");
}

// An address in no mapped file (an unloaded library's frame, a JIT's code) costs a read of the
// maps at each lookup, as a library may be loaded there since; inside a lookup session (one
// report) only the first: a leak report with an unloaded plugin's frames read the maps twice
// per frame, 20 s for 300 leaks at 20,000 maps lines.
TEST(FrameNames, ALookupSessionReadsTheMapsOnceForAnAddressInNoFile) {
  void *anonymous = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(anonymous, MAP_FAILED);
  const char *at = static_cast<const char *>(anonymous);
  char where[320], symbol[256];
  std::uint64_t before = mesa::internal::maps_reads();
  mesa::internal::frame_location(at, where, sizeof where);
  mesa::internal::frame_location(at, where, sizeof where);
  EXPECT_EQ(mesa::internal::maps_reads() - before, 2u);
  {
    const mesa::internal::lookup_session session;
    before = mesa::internal::maps_reads();
    for (int i = 0; i < 10; ++i) {
      EXPECT_FALSE(mesa::internal::frame_symbol(at + i * 16, symbol, sizeof symbol));
      mesa::internal::frame_location(at + i * 16, where, sizeof where);
      EXPECT_STREQ(where, "");
    }
    EXPECT_EQ(mesa::internal::maps_reads() - before, 1u);
  }
  before = mesa::internal::maps_reads();
  mesa::internal::frame_location(at, where, sizeof where);
  EXPECT_EQ(mesa::internal::maps_reads() - before, 1u);
  // A library's frame in the same session is still found (the table holds it: no read).
  {
    const mesa::internal::lookup_session session;
    mesa::internal::frame_location(at, where, sizeof where);
    before = mesa::internal::maps_reads();
    mesa::internal::frame_location(inside(reinterpret_cast<const void *>(&getpagesize)), where,
                                   sizeof where);
    EXPECT_EQ(std::string(where).rfind(" (libc.so.6+0x", 0), 0u) << where;
    EXPECT_EQ(mesa::internal::maps_reads() - before, 0u);
  }
  munmap(anonymous, 4096);
}

TEST(FrameLocation, NamesTheFileAndTheOffsetInIt) {
  char where[320];
  mesa::internal::frame_location(inside(reinterpret_cast<const void *>(&getpagesize)), where,
                                 sizeof where);
  EXPECT_EQ(std::string(where).rfind(" (libc.so.6+0x", 0), 0u) << where;
}

// A child that closes the descriptors it inherited and opens others (as one does before an
// exec) still names frames: no lookup keeps a descriptor between calls. absl::Symbolize kept
// the object files open (once the parent had named a frame in them), and read /dev/zero here
// in their place for any address it had not named before.
TEST(FrameSymbol, AForkedChildThatReplacedItsDescriptorsStillNamesFrames) {
  ASSERT_TRUE(names_are_right(1));  // the parent names frames in these files first
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    for (int i = 0; i < 64; ++i) (void)open("/dev/zero", O_RDONLY);
    _exit(names_are_right(2) && names_are_right(3) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

// Threads naming frames at once get the names one thread gets: a lookup that finds the table
// of mappings busy reads the maps itself.
TEST(FrameSymbol, ThreadsNamingFramesAtOnceGetTheSameNames) {
  constexpr int kAddresses = 600;
  int named = 0;
  const std::uint64_t alone = hash_of_libc_names(kAddresses, named);
  std::uint64_t hashes[3] = {};
  std::vector<std::thread> threads;
  for (std::uint64_t &hash : hashes)
    threads.emplace_back([&hash] {
      int n;
      hash = hash_of_libc_names(kAddresses, n);
    });
  for (std::thread &t : threads) t.join();
  for (const std::uint64_t hash : hashes) EXPECT_EQ(hash, alone);
}

std::string location_of(const void *pc) {
  char where[320];
  mesa::internal::frame_location(pc, where, sizeof where);
  return where;
}

// A file's header page made inaccessible after its frames were named, its code untouched (a
// program protecting part of a library): a lookup reads the header from the file, or without one
// (a deleted file) with a system call that fails, never with a load that faults (the header was
// read from its cached address, and the process died).
TEST(FrameLocation, AHeaderMadeInaccessibleLaterIsNotReadFromMemory) {
  for (const bool deleted : {false, true}) {
    SCOPED_TRACE(deleted ? "deleted" : "on disk");
    SyntheticElf file(0);
    ASSERT_TRUE(file.ok());
    const std::string name = file.file_name() + (deleted ? " (deleted)" : "");
    if (deleted) file.unlink_file();
    // The second page a mapping of its own, executable where the file system allows it.
    char *second = const_cast<char *>(file.at(4096));
    ASSERT_TRUE(mprotect(second, 4096, PROT_READ | PROT_EXEC) == 0 ||
                mprotect(second, 4096, PROT_READ | PROT_WRITE) == 0);
    EXPECT_EQ(location_of(second + 0x80), " (" + name + "+0x1080)");
    ASSERT_EQ(mprotect(const_cast<char *>(file.at(0)), 4096, PROT_NONE), 0);
    EXPECT_EQ(location_of(second + 0x90), " (" + name + "+0x1090)");
    EXPECT_EQ(symbol_of(second + 0x90), "(none)");
  }
}

// A file under a path of 3,000 bytes (a deep build or sandbox tree) is named and located: a
// path of 512 bytes or more lost both.
TEST(FrameNames, AFileUnderAVeryLongPathIsNamedAndLocated) {
  std::string directory = testing::TempDir() + "/frame_names_long_path";
  std::vector<std::string> made;
  ASSERT_TRUE(mkdir(directory.c_str(), 0700) == 0 || errno == EEXIST) << directory;
  made.push_back(directory);
  while (directory.size() < 3000) {
    directory += "/a_directory_name_of_fifty_bytes_for_a_deep_tree_xx";
    ASSERT_TRUE(mkdir(directory.c_str(), 0700) == 0 || errno == EEXIST) << directory;
    made.push_back(directory);
  }
  {
    const SyntheticElf deep(0, 0, directory);
    ASSERT_TRUE(deep.ok());
    EXPECT_EQ(symbol_of(deep.at(0x180)), "synthetic_function");
    EXPECT_EQ(location_of(deep.at(0x180)), " (" + deep.file_name() + "+0x1180)");
  }
  for (auto d = made.rbegin(); d != made.rend(); ++d) rmdir(d->c_str());
}

// Another file mapped where a named one was (a dlclose, then a dlopen) is named as itself: the
// kept table of mappings is checked, not trusted.
TEST(FrameNames, AFileMappedWhereANamedOneWasIsNamedAsItself) {
  SyntheticElf first(0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(location_of(first.at(0x180)), " (" + first.file_name() + "+0x1180)");
  void *where = first.unmap();
  const SyntheticElf second(0x20000000, 0, "/tmp", where);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second.at(0), where);
  EXPECT_EQ(location_of(second.at(0x180)), " (" + second.file_name() + "+0x20001180)");
  EXPECT_EQ(symbol_of(second.at(0x180)), "synthetic_function");
}

// With no file descriptor left, a frame the table knows is still located, also after a lookup
// that failed, and one it does not know says why it is not: a bare address is useless once the
// process is gone.
TEST(FrameLocation, WithNoDescriptorLeftSaysWhyAFrameIsNotLocated) {
  const char *known = inside(reinterpret_cast<const void *>(&getpagesize));
  const std::string known_where = location_of(known);
  ASSERT_EQ(known_where.rfind(" (libc.so.6+0x", 0), 0u) << known_where;
  const SyntheticElf unseen(0);
  ASSERT_TRUE(unseen.ok());
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  rlimit low = limit;
  low.rlim_cur = 256;  // descriptors run out soon, whatever the environment's limit
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> taken;
  for (int fd; (fd = open("/dev/null", O_RDONLY)) >= 0;) taken.push_back(fd);
  const int error = errno;
  // The unseen one first: a failed read of the maps must leave the table as it was.
  const std::string unseen_now = location_of(unseen.at(0x180));
  const std::string known_now = location_of(known);
  const std::string known_name_now = symbol_of(known);
  for (const int fd : taken) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_EQ(error, EMFILE);
  EXPECT_EQ(known_now, known_where);
  EXPECT_EQ(unseen_now, " (not located: /proc/self/maps: Too many open files)");
  // Its name cannot be read either, and it says why rather than look like a stripped file's
  // (a stacks probe saw "(unknown)").
  EXPECT_EQ(known_name_now, "(name not read: Too many open files)");
}

// A parent and its child naming frames at once get the same names, and neither dies:
// absl::Symbolize's descriptors, shared across fork(), were read with lseek() then read(), each
// process moving the other's offset, and the symbolizer aborted the process without a word
// (or named a frame from the wrong bytes).
TEST(FrameSymbol, AParentAndItsChildNamingFramesAtOnceGetTheSameNames) {
  constexpr int kAddresses = 1500;
  ASSERT_TRUE(names_are_right(1));  // the parent has named frames in these files
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int named;
    const std::uint64_t hash = hash_of_libc_names(kAddresses, named);
    _exit(write(pipe_fds[1], &hash, sizeof hash) == sizeof hash ? 0 : 1);
  }
  int named = 0, named_alone = 0;
  const std::uint64_t parent_hash = hash_of_libc_names(kAddresses, named);
  std::uint64_t child_hash = 0;
  EXPECT_EQ(read(pipe_fds[0], &child_hash, sizeof child_hash),
            static_cast<ssize_t>(sizeof child_hash));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(child_hash, parent_hash);
  EXPECT_EQ(parent_hash, hash_of_libc_names(kAddresses, named_alone));  // and the same alone
  EXPECT_GT(named, kAddresses / 2);  // libc exports most of its code: .dynsym names it
}

}  // namespace
