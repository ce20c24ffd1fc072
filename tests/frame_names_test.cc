// frame_symbol and frame_location: the names that leak reports and trace call sites print,
// in one process and across fork().
#include "mesa_alloc/internal/frame_names.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace frame_names_probe {

[[gnu::noinline]] int add_one(volatile int *x) { return *x + 1; }

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

TEST(FrameSymbol, ANameLongerThanTheBufferIsCutAndTerminated) {
  char out[8];
  ASSERT_TRUE(mesa::internal::frame_symbol(
      inside(reinterpret_cast<const void *>(&frame_names_probe::add_one)), out, sizeof out));
  EXPECT_EQ(std::strlen(out), sizeof out - 1);
  EXPECT_EQ(std::string(out), std::string("frame_names_probe::add_one()").substr(0, 7));
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
