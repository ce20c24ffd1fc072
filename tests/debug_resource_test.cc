#include "mesa_alloc/debug_resource.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/callback_validator.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/frame_names.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/tracking_resource.h"
#include "tests/support/no_frame_pointers.h"

namespace {

using mesa::debug_error_kind;

// Records every error instead of aborting.
struct recorder {
  struct entry {
    debug_error_kind kind;
    const void *address;
    size_t size;
    uint64_t allocation;
    ptrdiff_t offset;
    std::string detail;
    bool has_stack;
    std::string call_title;                      // how the report heads the call that found it
    std::vector<std::string> call_frames;        // that call's stack, each frame's function named
    std::vector<std::string> free_frames;        // where the block was freed before, named
    std::vector<std::string> allocation_frames;  // where it was allocated, named
  };
  std::vector<entry> errors;

  static std::vector<std::string> named(void *const *stack, int depth) {
    std::vector<std::string> names;
    for (int i = 0; i < depth; ++i) {
      char symbol[256];
      if (!mesa::internal::frame_symbol(static_cast<const char *>(stack[i]) - 1, symbol,
                                        sizeof symbol))
        std::strcpy(symbol, "?");
      names.push_back(symbol);
    }
    return names;
  }
  static void handle(const mesa::debug_error &e, void *self) {
    static_cast<recorder *>(self)->errors.push_back(
        {e.kind, e.address, e.size, e.allocation, e.offset, e.detail, e.stack != nullptr,
         e.call_title != nullptr ? e.call_title : "", named(e.call_stack, e.call_stack_depth),
         named(e.free_stack, e.free_stack_depth), named(e.stack, e.stack_depth)});
  }
  mesa::debug_options options(mesa::debug_options o = {}) {
    o.handler = &recorder::handle;
    o.handler_context = this;
    return o;
  }
};

// The error for a byte changed `distance` bytes below a block names it: "at offset -D"; or, in
// a word judged only by consistency, "in the word at offsets A..A+7"; or, where only the magic's
// folded half tells, "somewhere in offsets A..B". A word or range holds the byte, and the
// offset given is its end nearest the block.
void expect_names_the_byte(const recorder::entry &e, int distance) {
  SCOPED_TRACE(e.detail);
  long low = 0, high = 0;
  const std::size_t word = e.detail.find("in the word at offsets ");
  const std::size_t range = e.detail.find("somewhere in offsets ");
  if (word == std::string::npos && range == std::string::npos) {
    EXPECT_EQ(e.offset, -distance);
    EXPECT_NE(e.detail.find("overwritten at offset -" + std::to_string(distance)),
              std::string::npos);
    return;
  }
  const char *bounds =
      e.detail.c_str() + (word != std::string::npos ? word + std::strlen("in the word at offsets ")
                                                    : range + std::strlen("somewhere in offsets "));
  ASSERT_EQ(std::sscanf(bounds, "%ld..%ld", &low, &high), 2);
  if (word != std::string::npos) {
    EXPECT_EQ(high - low, 7);
  }
  EXPECT_LE(low, -distance);
  EXPECT_GE(high, -distance);
  EXPECT_EQ(e.offset, high);
}

// Death tests: the default handler prints one line and aborts.
// A frame in a file mapped only from its middle (a JIT's code in a memfd, with no view of the
// file's start) is named by its offset in the file; the location lookup read the ELF header
// where the file's start would be, unmapped, and the leak report or trace crashed.
TEST(FrameLocation, CodeMappedFromTheMiddleOfAFileIsNamedWithoutReadingItsStart) {
  const int fd = memfd_create("jit", 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 3 * 4096), 0);
  void *view = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 8192);
  ASSERT_NE(view, MAP_FAILED);
  char where[640];
  mesa::internal::frame_location(static_cast<char *>(view) + 0x10, where, sizeof where);
  EXPECT_STREQ(where, " (memfd:jit (deleted)+0x2010)");
  munmap(view, 4096);
  close(fd);
}

TEST(DebugResourceDeathTest, DoubleFree) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        void *p = d.allocate(64);
        d.deallocate(p, 64);
        d.deallocate(p, 64);
      },
      "mesa_alloc: double free at 0x[0-9a-f]+ size 64 allocation #1");
}

// Calls that a bad free or realloc is made in, each its own frame (not inlined, not a tail call).
[[gnu::noinline]] void free_it_here(std::pmr::memory_resource *r, void *p, std::size_t bytes) {
  r->deallocate(p, bytes);
  asm volatile("");
}
// Not the same code as free_it_here (an optimising build would fold the two into one).
[[gnu::noinline]] void first_free_here(std::pmr::memory_resource *r, void *p, std::size_t bytes) {
  r->deallocate(p, bytes);
  asm volatile("nop");
}
[[gnu::noinline]] void *allocate_here(std::pmr::memory_resource *r, std::size_t bytes) {
  void *p = r->allocate(bytes);
  asm volatile("");
  return p;
}
[[gnu::noinline]] void free_it_here_c(const mesa_allocator *table, void *p) {
  mesa_free2(nullptr, table, p);
  asm volatile("");
}
[[gnu::noinline]] void *realloc_it_here(const mesa_allocator *table, void *p, std::size_t size) {
  void *q = mesa_realloc2(nullptr, table, p, size, 8, MESA_ALLOC_SCOPE_OBJECT);
  asm volatile("");
  return q;
}
[[gnu::noinline]] void flush_it_here(mesa::debug_resource *d) {
  d->flush_quarantine();
  asm volatile("");
}

// Frees a 64-byte block with `free_first`, writes into it, and frees a block large enough to push
// it out of a 4 KiB quarantine (returned in *large): the freed block, whose write that free finds.
unsigned char *write_after_free_found_by_a_later_free(
    mesa::debug_resource *d, void (*free_first)(std::pmr::memory_resource *, void *, std::size_t),
    void **large) {
  auto *freed = static_cast<unsigned char *>(d->allocate(64));
  free_first(d, freed, 64);
  freed[3] = 1;
  *large = d->allocate(8192);
  free_it_here(d, *large, 8192);
  return freed;
}

bool has_frame(const std::vector<std::string> &frames, const char *function) {
  return std::any_of(frames.begin(), frames.end(), [function](const std::string &f) {
    return f.find(function) != std::string::npos;
  });
}

// The report says where the bad call was made, from the stack of the free or realloc that found
// the error (walked through the unwind tables then), with no allocation stacks recorded.
TEST(DebugResourceDeathTest, ADoubleFreeShowsWhereTheSecondFreeWasMade) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        void *p = d.allocate(64);
        free_it_here(&d, p, 64);
        free_it_here(&d, p, 64);
      },
      "mesa_alloc: double free at 0x[0-9a-f]+ size 64 allocation #1[^\n]*\n"
      "    freed at:\n(    #[0-9]+ [^\n]*\n)*    #[0-9]+ 0x[0-9a-f]+ [^\n]*free_it_here");
}

TEST(DebugResource, AnErrorNamesTheCallThatFoundItAndWhereItWasMade) {
  recorder r;
  mesa::debug_options o = r.options();
  o.quarantine_bytes = 4096;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  // A double free: the second free's stack, headed "freed at".
  void *p = d.allocate(64);
  free_it_here(&d, p, 64);
  free_it_here(&d, p, 64);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::double_free);
  EXPECT_EQ(r.errors[0].call_title, "freed at");
  EXPECT_TRUE(has_frame(r.errors[0].call_frames, "free_it_here")) << r.errors[0].call_frames[0];
  EXPECT_TRUE(has_frame(r.errors[0].call_frames, "AnErrorNamesTheCallThatFoundIt"));
  EXPECT_FALSE(r.errors[0].has_stack);           // no allocation stack: none was recorded
  EXPECT_TRUE(r.errors[0].free_frames.empty());  // nor the first free's
  // Through the C table: the stack starts in the caller of mesa_free2 / mesa_realloc2, with no
  // frame of the library's.
  free_it_here_c(d.table(), p);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[1].call_title, "freed at");
  ASSERT_FALSE(r.errors[1].call_frames.empty());
  EXPECT_NE(r.errors[1].call_frames[0].find("free_it_here_c"), std::string::npos)
      << r.errors[1].call_frames[0];
  EXPECT_EQ(realloc_it_here(d.table(), p, 128), nullptr);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[2].call_title, "reallocated at");
  ASSERT_FALSE(r.errors[2].call_frames.empty());
  EXPECT_NE(r.errors[2].call_frames[0].find("realloc_it_here"), std::string::npos)
      << r.errors[2].call_frames[0];
  // Through a pmr resource over the table (a container's free): from the resource's caller.
  mesa::callback_resource over_table(d.table());
  free_it_here(&over_table, p, 64);
  ASSERT_EQ(r.errors.size(), 4u);
  EXPECT_EQ(r.errors[3].call_title, "freed at");
  EXPECT_TRUE(has_frame(r.errors[3].call_frames, "free_it_here"));
  EXPECT_FALSE(has_frame(r.errors[3].call_frames, "callback_resource"))
      << r.errors[3].call_frames[0];
  r.errors.pop_back();
  // A write into a freed block, found when a later free pushes it out of the quarantine: that
  // free is named, with the block it freed.
  void *large;
  unsigned char *freed = write_after_free_found_by_a_later_free(&d, &free_it_here, &large);
  ASSERT_EQ(r.errors.size(), 4u);
  EXPECT_EQ(r.errors[3].kind, debug_error_kind::write_after_free);
  EXPECT_EQ(r.errors[3].address, freed);
  char title[96];
  std::snprintf(title, sizeof title, "found in the free of %p at", large);
  EXPECT_EQ(r.errors[3].call_title, title);
  EXPECT_TRUE(has_frame(r.errors[3].call_frames, "free_it_here"));
  // ... or when the quarantine is emptied.
  freed = static_cast<unsigned char *>(d.allocate(64));
  free_it_here(&d, freed, 64);
  freed[5] = 1;
  flush_it_here(&d);
  ASSERT_EQ(r.errors.size(), 5u);
  EXPECT_EQ(r.errors[4].call_title, "found while emptying the quarantine at");
  ASSERT_FALSE(r.errors[4].call_frames.empty());
  EXPECT_NE(r.errors[4].call_frames[0].find("flush_it_here"), std::string::npos)
      << r.errors[4].call_frames[0];
  // An error outside such a call (a leak) has none.
  void *kept = d.allocate(8);
  EXPECT_EQ(d.report_leaks(), 1u);
  ASSERT_EQ(r.errors.size(), 6u);
  EXPECT_EQ(r.errors[5].kind, debug_error_kind::leak);
  EXPECT_TRUE(r.errors[5].call_title.empty());
  EXPECT_TRUE(r.errors[5].call_frames.empty());
  d.deallocate(kept, 8);
}

// An upstream whose deallocate frees a stale block through another debug layer: the code a
// debug layer calls out to (an application's pmr resource or table) making its own bad free.
struct freeing_upstream final : std::pmr::memory_resource {
  std::pmr::memory_resource *other = nullptr;
  void *stale = nullptr;
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    if (stale != nullptr) free_it_here(other, std::exchange(stale, nullptr), 64);
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &o) const noexcept override {
    return this == &o;
  }
};

// A layer that found no error, destroyed here with a write after free in its quarantine.
[[gnu::noinline]] void destroy_a_layer_here(recorder *r) {
  mesa::debug_options o = r->options();
  o.quarantine_bytes = 4096;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  auto *p = static_cast<unsigned char *>(d.allocate(64));
  d.deallocate(p, 64);
  p[2] = 1;
}

[[gnu::noinline]] void destroy_a_table_here(const mesa_allocator *table) {
  mesa_debug_destroy(table);
  asm volatile("");
}

TEST(DebugResourceDeathTest, WhatDestroyingATableFindsIsReportedFromTheDestroyingCode) {
  EXPECT_DEATH(
      {
        mesa_debug_options o;
        mesa_debug_options_init(&o);
        o.quarantine_bytes = 4096;
        const mesa_allocator *table = mesa_debug_create(nullptr, &o);
        auto *p = static_cast<unsigned char *>(
            mesa_alloc2(nullptr, table, 64, 8, MESA_ALLOC_SCOPE_OBJECT));
        mesa_free2(nullptr, table, p);
        p[3] = 1;
        destroy_a_table_here(table);
      },
      "write after free at 0x[0-9a-f]+ size 64 allocation #1: byte 3 [^\n]*\n"
      "    found while emptying the quarantine at:\n    #0 0x[0-9a-f]+ [^\n]*destroy_a_table_here");
}

// The program's free is set aside while the layer runs code not its own: a bad free made there
// is that code's call; and what the destructor's flush finds is the destroying code's.
TEST(DebugResource, ABadFreeMadeByCodeTheLayerCallsIsThatCodesCall) {
  recorder inner_errors;
  mesa::debug_resource other(std::pmr::new_delete_resource(), inner_errors.options());
  freeing_upstream upstream;
  upstream.other = &other;
  upstream.stale = other.allocate(64);
  other.deallocate(upstream.stale, 64);
  mesa::debug_resource layer(&upstream);
  void *p = layer.allocate(32);
  first_free_here(&layer, p, 32);  // its upstream frees the stale block again, through `other`
  ASSERT_EQ(inner_errors.errors.size(), 1u);
  EXPECT_EQ(inner_errors.errors[0].kind, debug_error_kind::double_free);
  EXPECT_EQ(inner_errors.errors[0].call_title, "freed at");
  EXPECT_TRUE(has_frame(inner_errors.errors[0].call_frames, "freeing_upstream"));
  EXPECT_TRUE(has_frame(inner_errors.errors[0].call_frames, "first_free_here"));

  recorder r;
  destroy_a_layer_here(&r);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::write_after_free);
  EXPECT_EQ(r.errors[0].call_title, "found while emptying the quarantine at");
  ASSERT_FALSE(r.errors[0].call_frames.empty());
  EXPECT_NE(r.errors[0].call_frames[0].find("destroy_a_layer_here"), std::string::npos)
      << r.errors[0].call_frames[0];
}

// With stacks recorded and a quarantine, a block's free is recorded with it in the quarantine: a
// second free, or a write after the free found when the block leaves, names where it was freed.
TEST(DebugResource, AQuarantinedBlocksErrorsSayWhereItWasFreed) {
  for (const mesa::guard_mode guard : {mesa::guard_mode::none, mesa::guard_mode::after}) {
    SCOPED_TRACE(guard == mesa::guard_mode::none ? "cookie" : "guard pages");
    recorder r;
    mesa::debug_options o = r.options();
    o.record_stacks = true;
    o.unwinder = mesa::stack_unwinder::unwind_tables;
    o.guard = guard;
    o.quarantine_bytes = guard == mesa::guard_mode::none ? 4096 : 64 * 4096;
    mesa::debug_resource d(std::pmr::new_delete_resource(), o);
    void *p = d.allocate(64);
    first_free_here(&d, p, 64);
    free_it_here(&d, p, 64);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].kind, debug_error_kind::double_free);
    EXPECT_TRUE(has_frame(r.errors[0].call_frames, "free_it_here"));
    EXPECT_TRUE(has_frame(r.errors[0].free_frames, "first_free_here"));
    EXPECT_FALSE(has_frame(r.errors[0].free_frames, "free_it_here"));
    EXPECT_TRUE(has_frame(r.errors[0].free_frames, "AQuarantinedBlocksErrorsSayWhereItWasFreed"));
    if (guard != mesa::guard_mode::none) continue;  // a write there faults (a death test below)
    void *large;
    unsigned char *freed = write_after_free_found_by_a_later_free(&d, &first_free_here, &large);
    ASSERT_EQ(r.errors.size(), 2u);
    EXPECT_EQ(r.errors[1].kind, debug_error_kind::write_after_free);
    EXPECT_EQ(r.errors[1].address, freed);
    EXPECT_TRUE(has_frame(r.errors[1].free_frames, "first_free_here"));
    EXPECT_TRUE(has_frame(r.errors[1].call_frames, "free_it_here"));
  }
}

// The free stacks' ring grows with the quarantine's, slot for slot.
TEST(DebugResource, FreeStacksSurviveTheQuarantinesGrowth) {
  recorder r;
  mesa::debug_options o = r.options();
  o.record_stacks = true;
  o.quarantine_bytes = 1 << 20;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  void *first = d.allocate(64);
  first_free_here(&d, first, 64);
  for (int i = 0; i < 1000; ++i) d.deallocate(d.allocate(32), 32);  // the ring grows twice
  free_it_here(&d, first, 64);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::double_free);
  EXPECT_EQ(r.errors[0].detail, "the block was already freed");  // still held
  EXPECT_TRUE(has_frame(r.errors[0].free_frames, "first_free_here"));
}

TEST(DebugResourceDeathTest, FreeOfAPointerNeverAllocated) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        alignas(16) static char not_a_block[64];
        d.deallocate(not_a_block + 16, 16);
      },
      "mesa_alloc: invalid free at 0x[0-9a-f]+ size \\? allocation \\?: not a live block");
}

TEST(DebugResourceDeathTest, FreeThroughTheWrongAllocator) {
  EXPECT_DEATH(
      {
        mesa::debug_resource a(std::pmr::new_delete_resource());
        mesa::debug_resource b(std::pmr::new_delete_resource());
        void *p = a.allocate(48);
        b.deallocate(p, 48);
      },
      "mesa_alloc: allocator mismatch at 0x[0-9a-f]+ size 48 allocation #1: allocated by debug "
      "allocator [0-9]+, freed through debug allocator [0-9]+");
}

TEST(DebugResourceDeathTest, SizeMismatchOnDeallocate) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        void *p = d.allocate(64, 8);
        d.deallocate(p, 32, 8);
      },
      "mesa_alloc: size mismatch at 0x[0-9a-f]+ size 64 allocation #1: deallocate\\(32 bytes, "
      "alignment 8\\) for a block of 64 bytes, alignment 8");
}

TEST(DebugResourceDeathTest, OverrunByOneByte) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        auto *p = static_cast<unsigned char *>(d.allocate(64));
        p[64] = 0;
        d.deallocate(p, 64);
      },
      "mesa_alloc: buffer overrun at 0x[0-9a-f]+ size 64 allocation #1: byte 64 \\(0 past the "
      "end\\) was overwritten");
}

TEST(DebugResourceDeathTest, UnderrunByOneByte) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        auto *p = static_cast<unsigned char *>(d.allocate(64));
        p[-1] = 0;
        d.deallocate(p, 64);
      },
      "mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 64 allocation #1: the block header "
      "before the block was overwritten at offset -1; block not released");
}

// Past the magic, into the words that say where the block came from: still caught, named, and
// not released (freeing through a damaged header would free or fill the wrong memory).
TEST(DebugResourceDeathTest, UnderrunIntoTheHeaderWords) {
  EXPECT_DEATH(
      {
        mesa::debug_resource d(std::pmr::new_delete_resource());
        auto *p = static_cast<unsigned char *>(d.allocate(64));
        p[-40] = 0x7f;  // a byte of the block's size as taken from upstream
        d.deallocate(p, 64);
      },
      "mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 64 allocation #1: the block header "
      "before the block was overwritten at offset -40; block not released");
}

// A scope outside the MESA_ALLOC_SCOPE_* values (a C caller calling the table directly: the
// *2 functions refuse it) is recorded as OBJECT: it used to be stored as is and then judged
// header damage, which moved the report of a real underrun to the wrong word.
TEST(DebugResourceDeathTest, UnknownScopeDoesNotMisplaceAnUnderrun) {
  for (const int scope : {5, 7, -1, 0x7fffffff}) {
    EXPECT_DEATH(
        {
          const mesa_allocator *a = mesa_debug_create(mesa_libc_allocator(), nullptr);
          auto *p = static_cast<unsigned char *>(
              a->alloc_fn(a->user_data, 64, 8, static_cast<mesa_alloc_scope>(scope)));
          p[-40] = 0x7f;
          mesa_free2(nullptr, a, p);
        },
        "mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 64 allocation #1: the block header "
        "before the block was overwritten at offset -40; block not released");
  }
}

TEST(DebugResourceDeathTest, WriteAfterFreeCaughtByTheQuarantine) {
  EXPECT_DEATH(
      {
        mesa::debug_options o;
        o.quarantine_bytes = 1 << 20;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        auto *p = static_cast<unsigned char *>(d.allocate(64));
        d.deallocate(p, 64);
        p[3] = 7;  // still owned by the quarantine, so this is not heap corruption
        d.flush_quarantine();
      },
      "mesa_alloc: write after free at 0x[0-9a-f]+ size 64 allocation #1: byte 3 of the freed");
}

// Guard pages fault at the faulting instruction. Under sanitizers their own SIGSEGV handler
// may report it and exit instead of dying by the signal.
bool died_of_segv(int status) {
  return (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) ||
         (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

TEST(DebugResourceDeathTest, OverrunTouchingTheGuardPage) {
  EXPECT_EXIT(
      {
        mesa::debug_options o;
        o.guard = mesa::guard_mode::after;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        auto *p = static_cast<volatile unsigned char *>(d.allocate(64));
        p[63] = 1;  // the last byte is fine
        p[64] = 1;  // the first byte of the guard page
        std::fprintf(stderr, "survived the overrun\n");
        std::_Exit(0);
      },
      died_of_segv,
      "mesa_alloc: buffer overrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset 64 "
      "hit the guard page");
}

TEST(DebugResourceDeathTest, UnderrunTouchingTheGuardPage) {
  EXPECT_EXIT(
      {
        mesa::debug_options o;
        o.guard = mesa::guard_mode::before;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        auto *p = static_cast<volatile unsigned char *>(d.allocate(64));
        p[0] = 1;
        p[-1] = 1;
        std::_Exit(0);
      },
      died_of_segv,
      "mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset -1");
}

TEST(DebugResourceDeathTest, UseAfterFreeInGuardMode) {
  EXPECT_EXIT(
      {
        mesa::debug_options o;
        o.guard = mesa::guard_mode::after;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        auto *p = static_cast<volatile unsigned char *>(d.allocate(64));
        d.deallocate(const_cast<unsigned char *>(p), 64);
        p[10] = 1;
        std::_Exit(0);
      },
      died_of_segv,
      "mesa_alloc: write after free at 0x[0-9a-f]+ size 64 allocation #1: read or write at "
      "offset 10 of a freed block");
}

TEST(DebugResourceDeathTest, AUseAfterFreeInGuardModeSaysWhereTheBlockWasFreedAndAllocated) {
  EXPECT_EXIT(
      {
        mesa::debug_options o;
        o.guard = mesa::guard_mode::after;
        o.record_stacks = true;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        auto *p = static_cast<volatile unsigned char *>(allocate_here(&d, 64));
        first_free_here(&d, const_cast<unsigned char *>(p), 64);
        p[10] = 1;
        std::_Exit(0);
      },
      died_of_segv,
      "write after free at 0x[0-9a-f]+ size 64 allocation #1: read or write at offset 10 of a "
      "freed block\n(.|\n)*previously freed at:\n(    #[0-9]+ [^\n]*\n)*    #[0-9]+ "
      "0x[0-9a-f]+ [^\n]*first_free_here(.|\n)*allocated at:\n(    #[0-9]+ [^\n]*\n)*    "
      "#[0-9]+ 0x[0-9a-f]+ [^\n]*allocate_here");
}

// A runtime (a JIT, a garbage collector) recovers faults on its own protected page, with a
// SIGSEGV handler installed before the layer's and a fork prepare handler registered before the
// library's, which therefore runs after it, with the layer's locks held. Its fault goes through
// the guard handler, which must not wait for those locks (fork() never returned).
unsigned char *g_runtime_page = nullptr;
volatile int g_runtime_recovered = 0;

void runtime_segv(int, siginfo_t *info, void *) {
  auto *address = static_cast<unsigned char *>(info->si_addr);
  if (address < g_runtime_page || address >= g_runtime_page + 4096) _exit(99);
  mprotect(g_runtime_page, 4096, PROT_READ | PROT_WRITE);
  g_runtime_recovered = g_runtime_recovered + 1;
}

void runtime_prepare() {
  mprotect(g_runtime_page, 4096, PROT_NONE);
  g_runtime_page[0] = 1;
}

TEST(DebugResourceDeathTest, AFaultWhileForkHoldsTheLayersLocksIsNotWaitedOn) {
  // Re-run alone: the library's fork handlers must not be registered before the runtime's.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        alarm(10);
        g_runtime_page = static_cast<unsigned char *>(
            mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        struct sigaction action {};
        action.sa_sigaction = runtime_segv;
        action.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &action, nullptr);
        pthread_atfork(runtime_prepare, nullptr, nullptr);
        mesa::debug_options o;
        o.guard = mesa::guard_mode::after;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        void *p = d.allocate(64);
        const pid_t child = fork();
        if (child == 0) _exit(0);
        waitpid(child, nullptr, 0);
        d.deallocate(p, 64);
        std::fprintf(stderr, "recovered %d\n", g_runtime_recovered);
        std::_Exit(0);  // LeakSanitizer's exit scan would fault on the quarantine's guard pages
      },
      ::testing::ExitedWithCode(0), "recovered 1");
}

// The same cases with a recording handler.
TEST(DebugResource, RecordsDoubleFreeAndInvalidFree) {
  recorder r;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options());
  void *p = d.allocate(64);
  d.deallocate(p, 64);
  d.deallocate(p, 64);
  int local;
  d.deallocate(&local, 4);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::double_free);
  EXPECT_EQ(r.errors[0].address, p);
  EXPECT_EQ(r.errors[0].size, 64u);
  EXPECT_EQ(r.errors[0].allocation, 1u);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::invalid_free);
  EXPECT_EQ(r.errors[1].address, &local);
  EXPECT_EQ(r.errors[1].allocation, 0u);
  EXPECT_EQ(d.live_blocks(), 0u);
}

// A pointer into a live block (free(&s->member)) names that block, with its allocation stack,
// instead of calling the address never allocated; the block stays live and can be freed.
TEST(DebugResource, FreeOfAPointerInsideALiveBlockNamesTheBlock) {
  recorder r;
  mesa::debug_options o;
  o.record_stacks = true;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  void *other = d.allocate(16);
  auto *p = static_cast<unsigned char *>(d.allocate(40));
  d.deallocate(p + 8, 32);
  const mesa_allocator *t = d.table();
  EXPECT_EQ(t->realloc_fn(t->user_data, p + 39, 80, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  d.deallocate(p + 40, 8);  // one past the end: inside nothing
  EXPECT_EQ(t->realloc_fn(t->user_data, p + 40, 80, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  ASSERT_EQ(r.errors.size(), 4u);
  char at[32];
  std::snprintf(at, sizeof at, "%p", static_cast<void *>(p));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(r.errors[i].kind, debug_error_kind::invalid_free);
    EXPECT_EQ(r.errors[i].size, 40u);
    EXPECT_EQ(r.errors[i].allocation, 2u);
    EXPECT_TRUE(r.errors[i].has_stack);
  }
  EXPECT_EQ(r.errors[0].address, p + 8);
  EXPECT_EQ(r.errors[0].detail,
            std::string("8 bytes inside the live block at ") + at + ", which is left alone");
  EXPECT_EQ(r.errors[1].detail, std::string("realloc of a pointer 39 bytes inside the live block "
                                            "at ") +
                                    at + ", which is left alone");
  EXPECT_EQ(r.errors[2].allocation, 0u);
  EXPECT_EQ(r.errors[2].detail,
            "not a live block of this allocator (never allocated, or freed long ago)");
  EXPECT_EQ(r.errors[3].kind, debug_error_kind::invalid_free);
  EXPECT_EQ(r.errors[3].detail,
            "realloc of a pointer that is not a live block of this allocator (never allocated, or "
            "freed long ago)")
      << "a realloc, not a free, is what the program did";
  EXPECT_EQ(d.live_blocks(), 2u);
  d.deallocate(p, 40);
  d.deallocate(other, 16);
  EXPECT_EQ(r.errors.size(), 4u);
}

// The header keeps the alignment in 32 bits, so the layer serves up to 1 GiB; past that the
// request fails with a line saying so (libc may serve it: without the line the program's
// out-of-memory under the debug layer has no reason).
TEST(DebugResource, AnAlignmentPastTheLimitIsRefusedWithALine) {
  recorder r;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options());
  const mesa_allocator *t = d.table();
  testing::internal::CaptureStderr();
  EXPECT_EQ(t->alloc_fn(t->user_data, 64, std::size_t{1} << 31, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_EQ(said, "mesa_alloc: debug allocator " + std::to_string(d.owner_id()) +
                      ": alignment 2147483648 is over the debug layer's limit of 1 GiB; the "
                      "allocation fails\n");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(d.live_blocks(), 0u);
}

// An alignment that is not a power of two is refused with the line naming the call made, as
// every other layer names its own: the C table's functions, or the C++ ones (a probe found the
// C++ calls named as the C table's "mesa_debug alloc", which no C++ program calls).
TEST(DebugResource, AnInvalidAlignmentIsRefusedNamingTheCallMade) {
  recorder r;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options());
  const mesa_allocator *t = d.table();
  volatile std::size_t bad = 24;  // clang refuses a constant bad alignment
  void *block = d.allocate_block(32, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(block, nullptr);
  testing::internal::CaptureStderr();
  EXPECT_THROW((void)d.allocate(64, bad), std::bad_alloc);
  EXPECT_EQ(d.allocate_block(64, bad, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(d.reallocate_block(block, 64, bad, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(t->alloc_fn(t->user_data, 64, bad, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(t->realloc_fn(t->user_data, block, 64, bad, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string said = testing::internal::GetCapturedStderr();
#ifndef NDEBUG
  EXPECT_EQ(
      said,
      "mesa_alloc: invalid alignment 24 in debug_resource::allocate (must be a power of two)\n"
      "mesa_alloc: invalid alignment 24 in debug_resource::allocate_block (must be a power "
      "of two)\n"
      "mesa_alloc: invalid alignment 24 in debug_resource::reallocate_block (must be a "
      "power of two)\n"
      "mesa_alloc: invalid alignment 24 in mesa_debug alloc (must be a power of two)\n"
      "mesa_alloc: invalid alignment 24 in mesa_debug realloc (must be a power of two)\n");
#else
  EXPECT_EQ(said, "") << "the line is for debug builds";
#endif
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(d.live_blocks(), 1u) << "the block a refused realloc was given stays live";
  d.free_block(block);
}

// A realloc to size 0 (Vulkan's way to free) of a freed block or of a pointer inside a live
// one is worded as a realloc, as any other realloc is: a probe saw the free wording send the
// reader looking for a free that is a pfnReallocation(p, 0).
TEST(DebugResource, AReallocToZeroIsNamedAsARealloc) {
  recorder r;
  mesa::debug_options o;
  o.quarantine_bytes = 1 << 16;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  const mesa_allocator *t = d.table();
  auto *p = static_cast<unsigned char *>(d.allocate(40));
  EXPECT_EQ(t->realloc_fn(t->user_data, p + 8, 0, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(t->realloc_fn(t->user_data, p, 0, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(t->realloc_fn(t->user_data, p, 0, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  ASSERT_EQ(r.errors.size(), 2u);
  char at[32];
  std::snprintf(at, sizeof at, "%p", static_cast<void *>(p));
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::invalid_free);
  EXPECT_EQ(r.errors[0].detail, std::string("realloc of a pointer 8 bytes inside the live block "
                                            "at ") +
                                    at + ", which is left alone");
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::double_free);
  EXPECT_EQ(r.errors[1].detail, "realloc of a block that was already freed");
  EXPECT_EQ(d.live_blocks(), 0u);
}

// The same in every guard mode: the stack shown is the block's own, where the leak report finds
// it (guard_under keeps the frames after the header, not before it).
TEST(DebugResource, FreeInsideALiveBlockShowsItsOwnStackInEveryGuardMode) {
  struct stacks {
    std::vector<std::vector<void *>> seen;
    static void handle(const mesa::debug_error &e, void *self) {
      static_cast<stacks *>(self)->seen.emplace_back(e.stack, e.stack + e.stack_depth);
    }
  };
  for (mesa::guard_mode guard :
       {mesa::guard_mode::none, mesa::guard_mode::after, mesa::guard_mode::before}) {
    SCOPED_TRACE(static_cast<int>(guard));
    stacks s;
    mesa::debug_options o;
    o.guard = guard;
    o.record_stacks = true;
    o.report_leaks_on_destroy = false;
    o.handler = &stacks::handle;
    o.handler_context = &s;
    mesa::debug_resource d(std::pmr::new_delete_resource(), o);
    auto *p = static_cast<unsigned char *>(d.allocate(100));
    d.deallocate(p + 8, 92);
    EXPECT_EQ(d.report_leaks(), 1u);
    ASSERT_EQ(s.seen.size(), 2u);
    EXPECT_FALSE(s.seen[1].empty());
    EXPECT_EQ(s.seen[0], s.seen[1]);
    d.deallocate(p, 100);
  }
}

// A double free of a block the quarantine still holds is certain. One only the ring of recent
// frees remembers went back upstream, and the address may since be another allocator's block
// (a thread_safe = false debug table's, or libc's): the detail says so.
TEST(DebugResource, DoubleFreeSaysWhetherTheBlockIsStillHeld) {
  for (size_t quarantine : {size_t{1} << 20, size_t{0}}) {
    recorder r;
    mesa::debug_options o;
    o.quarantine_bytes = quarantine;
    mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
    void *p = d.allocate(64);
    d.deallocate(p, 64);
    d.deallocate(p, 64);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].kind, debug_error_kind::double_free);
    EXPECT_EQ(r.errors[0].allocation, 1u);
    EXPECT_EQ(r.errors[0].detail,
              quarantine != 0 ? "the block was already freed"
                              : "the block was already freed (its memory went back upstream: the "
                                "address may now be another allocator's block)");
  }
}

// 1,000 frees later the recent-free ring has forgotten the block, but the quarantine still
// holds it: still a double free, with its size and number. Without a quarantine the same late
// free can only be called an invalid free.
TEST(DebugResource, LateDoubleFreeIsNamedWhileQuarantined) {
  for (size_t quarantine : {size_t{1} << 20, size_t{0}}) {
    recorder r;
    mesa::debug_options o;
    o.quarantine_bytes = quarantine;
    mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
    void *p = d.allocate(24);
    d.deallocate(p, 24);
    // Another size class: the old block's address is not handed out again meanwhile.
    for (int i = 0; i < 1000; ++i) d.deallocate(d.allocate(200), 200);
    d.deallocate(p, 24);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].address, p);
    if (quarantine != 0) {
      EXPECT_EQ(r.errors[0].kind, debug_error_kind::double_free);
      EXPECT_EQ(r.errors[0].size, 24u);
      EXPECT_EQ(r.errors[0].allocation, 1u);
    } else {
      EXPECT_EQ(r.errors[0].kind, debug_error_kind::invalid_free);
    }
  }
}

// Guard mode without cookies: a block whose size is not a multiple of its alignment ends short
// of the guard page, and an overrun into that slack is caught at free by its fill.
TEST(DebugResource, GuardModeCatchesAnOverrunShortOfTheGuardPage) {
  for (std::size_t alignment : {std::size_t{16}, std::size_t{8192}}) {
    recorder r;
    mesa::debug_options o;
    o.cookie = false;
    o.guard = mesa::guard_mode::after;
    mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
    const std::size_t size = alignment == 16 ? 12 : 4096;
    auto *p = static_cast<unsigned char *>(d.allocate(size, alignment));
    p[size] = 'x';
    d.deallocate(p, size, alignment);
    ASSERT_EQ(r.errors.size(), 1u) << "alignment " << alignment;
    EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_overrun);
    EXPECT_EQ(r.errors[0].size, size);
    EXPECT_EQ(r.errors[0].offset, static_cast<ptrdiff_t>(size));
  }
}

// Freeing a live block of `a` through `b`, at an address where `b` itself freed a block before:
// the live owner is certain, the old free of `b` is stale. An allocator mismatch, named with the
// live block's size and number, not a double free of `b`'s old block.
TEST(DebugResource, MismatchIsNotTakenForAStaleDoubleFree) {
  // Small blocks one at a time, handed out again as soon as they come back (the debug
  // resources' own tables, larger, from the heap).
  struct one_slot final : std::pmr::memory_resource {
    alignas(64) unsigned char block[256];
    bool taken = false;
    void *do_allocate(std::size_t bytes, std::size_t alignment) override {
      if (bytes > sizeof block) return std::pmr::new_delete_resource()->allocate(bytes, alignment);
      if (taken) throw std::bad_alloc();
      taken = true;
      return block;
    }
    void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
      if (p != block) return std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
      taken = false;
    }
    bool do_is_equal(const memory_resource &o) const noexcept override { return this == &o; }
  } upstream;
  recorder r;
  mesa::debug_resource a(&upstream, r.options());
  mesa::debug_resource b(&upstream, r.options());
  void *old = b.allocate(40);
  b.deallocate(old, 40);
  void *live = a.allocate(36);
  ASSERT_EQ(live, old) << "the same address, now a's";
  b.deallocate(live, 36);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::allocator_mismatch);
  EXPECT_EQ(r.errors[0].size, 36u);
  EXPECT_EQ(r.errors[0].allocation, 1u);
  a.deallocate(live, 36);
}

// With stacks recorded, a 1-byte underrun and a double free of a quarantined block carry the
// allocation stack (the frames lie below the header, untouched by either).
TEST(DebugResource, UnderrunAndQuarantinedDoubleFreeCarryTheStack) {
  recorder r;
  mesa::debug_options o;
  o.record_stacks = true;
  o.quarantine_bytes = 1 << 20;
  std::pmr::monotonic_buffer_resource arena;  // takes back the block left unreleased
  mesa::debug_resource d(&arena, r.options(o));
  auto *p = static_cast<unsigned char *>(d.allocate(64));
  p[-1] = 0;
  d.deallocate(p, 64);
  void *q = d.allocate(32);
  d.deallocate(q, 32);
  for (int i = 0; i < 300; ++i) d.deallocate(d.allocate(200), 200);  // past the recent frees
  d.deallocate(q, 32);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_underrun);
  EXPECT_TRUE(r.errors[0].has_stack);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::double_free);
  EXPECT_TRUE(r.errors[1].has_stack);
}

// The quarantine holds at most its limit once a free returns, also when a large block is freed
// behind many small ones: eviction went eight blocks a free, so a 1 MiB block kept a 64 KiB
// quarantine over its limit for hundreds of frees.
TEST(DebugResource, ALargeBlockFreedBehindSmallOnesLeavesTheQuarantineWithinItsLimit) {
  mesa::tracking_resource below(std::pmr::new_delete_resource(), "below");
  mesa::debug_options o;
  o.quarantine_bytes = 64 << 10;
  o.bookkeeping = std::pmr::new_delete_resource();  // `below` sees the blocks alone
  mesa::debug_resource d(&below, o);
  std::vector<void *> small;
  for (int i = 0; i < 2000; ++i) small.push_back(d.allocate(200));
  for (void *p : small) d.deallocate(p, 200);
  void *large = d.allocate(1 << 20);
  d.deallocate(large, 1 << 20);
  d.deallocate(d.allocate(200), 200);
  EXPECT_LE(below.stats().bytes_in_use, std::size_t{64 << 10})
      << "nothing is live: what is held below is the quarantine";
}

// Without recorded stacks, leaks are not grouped: nothing says they came from one place.
TEST(DebugResource, LeaksWithoutStacksAreNotGrouped) {
  recorder r;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options());
  const std::size_t sizes[3] = {8, 100, 323};
  void *blocks[3];
  for (int i = 0; i < 3; ++i) blocks[i] = d.allocate(sizes[i]);
  EXPECT_EQ(d.report_leaks(), 3u);
  ASSERT_EQ(r.errors.size(), 3u);
  for (const recorder::entry &e : r.errors) {
    EXPECT_EQ(e.kind, debug_error_kind::leak);
    EXPECT_EQ(e.detail, "no allocation stack recorded");
  }
  for (int i = 0; i < 3; ++i) d.deallocate(blocks[i], sizes[i]);
}

TEST(DebugResource, SingleThreadedModeChecksTheSame) {
  recorder r;
  mesa::debug_options o;
  o.thread_safe = false;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  auto *p = static_cast<unsigned char *>(d.allocate(32));
  p[32] = 0;
  d.deallocate(p, 32);
  d.deallocate(p, 32);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_overrun);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::double_free);
}

TEST(DebugResource, RecordsAllocatorMismatchAndKeepsTheBlock) {
  recorder r;
  std::pmr::monotonic_buffer_resource arena;  // takes back the leaked block
  mesa::debug_resource a(&arena, r.options());
  mesa::debug_resource b(std::pmr::new_delete_resource(), r.options());
  (void)a.allocate(8);
  void *p = a.allocate(48);
  b.deallocate(p, 48);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::allocator_mismatch);
  EXPECT_EQ(r.errors[0].address, p);
  EXPECT_EQ(r.errors[0].size, 48u);
  EXPECT_EQ(r.errors[0].allocation, 2u);
  EXPECT_NE(r.errors[0].detail.find(std::to_string(a.owner_id())), std::string::npos);
  EXPECT_EQ(a.live_blocks(), 2u);  // still a's, and still valid
  a.deallocate(p, 48);
  a.report_leaks();  // the 8-byte block
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::leak);
  EXPECT_EQ(r.errors[1].size, 8u);
}

// A block freed through the wrong table, then by its own, then through the wrong one again: the
// second is a double free (its own resource still has it in its quarantine), not "never
// allocated".
TEST(DebugResource, ASecondFreeThroughAnotherTableIsADoubleFree) {
  recorder r;
  mesa::debug_options o;
  o.quarantine_bytes = 1 << 16;
  mesa::debug_resource a(std::pmr::new_delete_resource(), r.options(o));
  mesa::debug_resource b(std::pmr::new_delete_resource(), r.options());
  void *p = a.allocate(48);
  b.deallocate(p, 48);
  a.deallocate(p, 48);
  b.deallocate(p, 48);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::allocator_mismatch);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::double_free);
  EXPECT_EQ(r.errors[1].size, 48u);
  EXPECT_EQ(r.errors[1].allocation, r.errors[0].allocation);
  EXPECT_NE(r.errors[1].detail.find("freed the block already; freed again through"),
            std::string::npos)
      << r.errors[1].detail;
}

// A single-threaded resource's table is not locked, so other resources do not read it (another
// thread may be changing it): its block freed through another is an invalid free there.
TEST(DebugResource, ASingleThreadedResourceIsNotReadByOthers) {
  recorder r;
  mesa::debug_options single;
  single.thread_safe = false;
  mesa::debug_resource a(std::pmr::new_delete_resource(), r.options(single));
  mesa::debug_resource b(std::pmr::new_delete_resource(), r.options());
  void *p = a.allocate(24);
  b.deallocate(p, 24);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::invalid_free);
  a.deallocate(p, 24);
  EXPECT_EQ(r.errors.size(), 1u);
}

TEST(DebugResource, RecordsSizeMismatchAndStillFrees) {
  recorder r;
  mesa::tracking_resource t(std::pmr::new_delete_resource(), "below");
  void *p, *q;
  {
    mesa::debug_resource d(&t, r.options());
    p = d.allocate(64, 8);
    d.deallocate(p, 64, 32);  // the alignment differs
    q = d.allocate(40, 8);
    d.deallocate(q, 48, 8);  // the size differs
  }
  ASSERT_EQ(r.errors.size(), 2u);  // no leak reported: both blocks were freed
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::size_mismatch);
  EXPECT_EQ(r.errors[0].address, p);
  EXPECT_EQ(r.errors[0].size, 64u);
  EXPECT_EQ(r.errors[0].allocation, 1u);
  EXPECT_NE(r.errors[0].detail.find("alignment 32"), std::string::npos) << r.errors[0].detail;
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::size_mismatch);
  EXPECT_EQ(r.errors[1].address, q);
  EXPECT_EQ(r.errors[1].size, 40u);
  EXPECT_EQ(r.errors[1].allocation, 2u);
  EXPECT_NE(r.errors[1].detail.find("deallocate(48 bytes"), std::string::npos)
      << r.errors[1].detail;
  EXPECT_EQ(t.stats().bytes_in_use, 0u);
}

// debug_options::bookkeeping: the block table, the quarantine ring and a leak report's copy
// come from there, so the upstream (a tracker, a limit, fault injection) sees only the blocks.
TEST(DebugResource, BookkeepingFromItsOwnResourceStaysOutOfTheUpstream) {
  recorder r;
  mesa::tracking_resource blocks(std::pmr::new_delete_resource(), "blocks");
  mesa::tracking_resource bookkeeping(std::pmr::new_delete_resource(), "bookkeeping");
  {
    mesa::debug_options o = r.options();
    o.quarantine_bytes = 1 << 20;
    o.bookkeeping = &bookkeeping;
    mesa::debug_resource d(&blocks, o);
    std::vector<void *> live;
    for (int i = 0; i < 300; ++i) live.push_back(d.allocate(32 + i % 64, 16));
    EXPECT_EQ(blocks.stats().total_allocations, 300u)
        << "one upstream block per allocation, no more";
    EXPECT_GT(bookkeeping.stats().bytes_in_use, 0u) << "the live-block table";
    for (void *p : live) d.deallocate(p, 0, 16);  // wrong sizes: reported, still freed
    void *kept = d.allocate(24, 8);               // one left for the leak report
    d.flush_quarantine();
    EXPECT_EQ(blocks.stats().total_allocations, 301u);
    EXPECT_EQ(blocks.stats().blocks_in_use, 1u);
    EXPECT_EQ(d.report_leaks(), 1u);
    d.deallocate(kept, 24, 8);
  }
  EXPECT_EQ(blocks.stats().bytes_in_use, 0u);
  EXPECT_EQ(bookkeeping.stats().bytes_in_use, 0u) << "all of it given back";
  EXPECT_GT(bookkeeping.stats().total_allocations, 1u) << "table and quarantine ring";
}

TEST(DebugResource, RecordsOverrunAndUnderrunWithOffsets) {
  recorder r;
  std::pmr::monotonic_buffer_resource arena;  // takes back the block left unreleased
  mesa::tracking_resource t(&arena, "below");
  auto d_storage = std::make_unique<mesa::debug_resource>(&t, r.options());
  mesa::debug_resource &d = *d_storage;
  auto *p = static_cast<unsigned char *>(d.allocate(10));
  p[10] = 0;
  d.deallocate(p, 10);
  auto *q = static_cast<unsigned char *>(d.allocate(100));
  q[-1] = 0;
  d.deallocate(q, 100);
  auto *s = static_cast<unsigned char *>(d.allocate(40, 64));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s) % 64, 0u);
  s[45] = 0;
  d.deallocate(s, 40, 64);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_overrun);
  EXPECT_EQ(r.errors[0].offset, 10);
  EXPECT_EQ(r.errors[0].allocation, 1u);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::buffer_underrun);
  EXPECT_EQ(r.errors[1].offset, -1);
  EXPECT_EQ(r.errors[1].size, 100u);
  EXPECT_EQ(r.errors[2].kind, debug_error_kind::buffer_overrun);
  EXPECT_EQ(r.errors[2].offset, 45);
  // The underrun block is not trusted and not released; the others are.
  d_storage.reset();
  EXPECT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(t.stats().blocks_in_use, 1u);
}

// One byte changed anywhere in the 64-byte header before the block: the error names the
// block and the byte, or a word or range that holds it (expect_names_the_byte), and the block
// is left alone. Underruns of 1..64 bytes and whole-header scribbles.
TEST(DebugResource, RecordsEveryHeaderUnderrunWithoutTrustingTheHeader) {
  for (mesa::debug_options base : {mesa::debug_options{}, [] {
                                     mesa::debug_options o;
                                     o.record_stacks = true;
                                     return o;
                                   }()}) {
    for (int distance = 1; distance <= 64; ++distance) {
      // 0x5a makes a small field inconsistent; 0x01 can leave it consistent (a scope of 1).
      for (unsigned char flip : {0x5a, 0x01}) {
        SCOPED_TRACE("distance " + std::to_string(distance) + " flip " + std::to_string(flip) +
                     (base.record_stacks ? " with stacks" : ""));
        recorder r;
        std::pmr::monotonic_buffer_resource arena;  // takes back the block left unreleased
        mesa::tracking_resource t(&arena, "below");
        {
          mesa::debug_resource d(&t, r.options(base));
          auto *keep = d.allocate(8);
          void *blocks[2];
          for (void *&b : blocks) b = d.allocate(48, 16);  // one call site: one stack
          auto *p = static_cast<unsigned char *>(blocks[0]);
          p[-distance] ^= flip;
          d.deallocate(p, 48, 16);
          ASSERT_EQ(r.errors.size(), 1u);
          EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_underrun);
          EXPECT_EQ(r.errors[0].address, p);
          EXPECT_EQ(r.errors[0].size, 48u);
          EXPECT_EQ(r.errors[0].allocation, 2u);
          expect_names_the_byte(r.errors[0], distance);
          // The twin's header is intact: a wrong size is reported with its stack, and the block
          // is released. The damaged block's stack is given only from a depth the damage cannot
          // have changed: read with another, it would differ from the twin's (or lie outside the
          // block).
          d.deallocate(blocks[1], 40, 16);
          ASSERT_EQ(r.errors.size(), 2u);
          EXPECT_EQ(r.errors[1].kind, debug_error_kind::size_mismatch);
          EXPECT_EQ(r.errors[1].has_stack, base.record_stacks);
          if (r.errors[0].has_stack) {
            EXPECT_EQ(r.errors[0].allocation_frames, r.errors[1].allocation_frames);
          }
          d.deallocate(keep, 8);
        }
        ASSERT_EQ(r.errors.size(), 2u);          // the other blocks were fine, nothing leaked
        EXPECT_EQ(t.stats().blocks_in_use, 1u);  // the damaged block was not released
      }
    }
  }
  recorder r;
  std::pmr::monotonic_buffer_resource arena;
  mesa::tracking_resource t(&arena, "below");
  mesa::debug_resource d(&t, r.options());
  auto *p = static_cast<unsigned char *>(d.allocate(32));
  for (int k = 1; k <= 64; ++k) p[-k] = 0;  // the 64 bytes below the block
  d.deallocate(p, 32);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_underrun);
  EXPECT_EQ(r.errors[0].offset, -1);
}

// The same for a block shrunk in place (its tail then longer than the canary, and base_bytes
// still the upstream block's), but for one word: on x86-64 a byte of base_bytes (offsets
// -40..-33) makes it disagree with the tail, and the tail word, the nearer to the block, is
// named instead (on i386, whose header lays the words out otherwise, some of those bytes are
// named exactly).
TEST(DebugResource, RecordsEveryHeaderUnderrunOfABlockShrunkInPlace) {
  for (int distance = 1; distance <= 64; ++distance) {
    SCOPED_TRACE("distance " + std::to_string(distance));
    recorder r;
    mesa::debug_options o;
    o.bookkeeping = std::pmr::new_delete_resource();
    std::pmr::monotonic_buffer_resource arena;  // takes back the block left unreleased
    mesa::tracking_resource t(&arena, "below");
    {
      mesa::debug_resource d(&t, r.options(o));
      void *block = d.allocate_block(480, 16, MESA_ALLOC_SCOPE_OBJECT);
      t.set_limit(t.stats().bytes_in_use);  // full: no room to move the block
      auto *p =
          static_cast<unsigned char *>(d.reallocate_block(block, 48, 16, MESA_ALLOC_SCOPE_OBJECT));
      ASSERT_EQ(p, block);
      p[-distance] ^= 0x01;
      d.free_block(p);
      ASSERT_EQ(r.errors.size(), 1u);
      EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_underrun);
      EXPECT_EQ(r.errors[0].size, 48u);
      if (distance >= 33 && distance <= 40 &&
          r.errors[0].detail.find("in the word at offsets -24..-17") != std::string::npos) {
        EXPECT_EQ(r.errors[0].offset, -17);
      } else {
        expect_names_the_byte(r.errors[0], distance);
      }
    }
    EXPECT_EQ(r.errors.size(), 1u);
  }
}

// A write through a stale pointer into the header before a freed block: named, like an
// underrun of a live block, by the byte (or the word judged inconsistent) nearest the block.
TEST(DebugResource, RecordsHeaderDamageWhileInQuarantine) {
  for (bool stacks : {false, true}) {
    for (int distance = 1; distance <= 64; ++distance) {
      SCOPED_TRACE("distance " + std::to_string(distance) + (stacks ? " with stacks" : ""));
      recorder r;
      mesa::debug_options o;
      o.quarantine_bytes = 4096;
      o.record_stacks = stacks;
      std::pmr::monotonic_buffer_resource arena;
      mesa::tracking_resource t(&arena, "below");
      mesa::debug_resource d(&t, r.options(o));
      auto *p = static_cast<unsigned char *>(d.allocate(64));
      d.deallocate(p, 64);
      p[-distance] ^= 1;
      d.flush_quarantine();
      ASSERT_EQ(r.errors.size(), 1u);
      EXPECT_EQ(r.errors[0].kind, debug_error_kind::write_after_free);
      EXPECT_EQ(r.errors[0].address, p);
      EXPECT_EQ(r.errors[0].size, 64u);
      EXPECT_EQ(r.errors[0].allocation, 1u);
      EXPECT_NE(r.errors[0].detail.find("while in quarantine"), std::string::npos);
      expect_names_the_byte(r.errors[0], distance);
      // The allocation stack comes with it unless the word saying its depth was hit, or the
      // half of the check word that folds it (bytes -8..-5 on a little-endian machine): the
      // depth could then have been changed to another consistent one.
      const bool layout_word = distance >= 17 && distance <= 24;
      const bool folded_half = distance >= 5 && distance <= 8;
      if (!layout_word && !folded_half) {
        EXPECT_EQ(r.errors[0].has_stack, stacks);
      }
    }
  }
}

TEST(DebugResource, RecordsWriteAfterFreeOnEviction) {
  recorder r;
  mesa::debug_options o;
  o.quarantine_bytes = 4096;
  mesa::tracking_resource t(std::pmr::new_delete_resource(), "below");
  auto d_storage = std::make_unique<mesa::debug_resource>(&t, r.options(o));
  mesa::debug_resource &d = *d_storage;
  auto *p = static_cast<unsigned char *>(d.allocate(64));
  d.deallocate(p, 64);
  EXPECT_EQ(p[0], 0xDD);
  p[20] = 1;
  EXPECT_GT(t.stats().blocks_in_use, 0u);                          // held in the quarantine
  for (int i = 0; i < 100; ++i) d.deallocate(d.allocate(64), 64);  // pushes p out
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::write_after_free);
  EXPECT_EQ(r.errors[0].address, p);
  EXPECT_EQ(r.errors[0].offset, 20);
  EXPECT_EQ(r.errors[0].allocation, 1u);
  d.flush_quarantine();
  EXPECT_EQ(r.errors.size(), 1u);
  d_storage.reset();
  EXPECT_EQ(t.stats().blocks_in_use, 0u);
}

TEST(DebugResource, RecordsGuardPageFaultsAndGoesOn) {
  recorder r;
  mesa::debug_options o;
  o.guard = mesa::guard_mode::after;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  auto *p = static_cast<volatile unsigned char *>(d.allocate(64));
  p[64] = 1;  // faults; the recording handler takes it and the write then happens
  EXPECT_EQ(p[64], 1);
  void *q = d.allocate(32);
  d.deallocate(const_cast<unsigned char *>(p), 64);
  p[5] = 2;  // use after free: the freed block is inaccessible in the quarantine
  d.deallocate(q, 32);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_overrun);
  EXPECT_EQ(r.errors[0].address, p);
  EXPECT_EQ(r.errors[0].offset, 64);
  EXPECT_EQ(r.errors[0].allocation, 1u);
  EXPECT_EQ(r.errors[1].kind, debug_error_kind::write_after_free);
  EXPECT_EQ(r.errors[1].address, p);
  EXPECT_EQ(r.errors[1].offset, 5);
  EXPECT_EQ(r.errors[1].size, 64u);
  EXPECT_EQ(r.errors[1].allocation, 1u);
}

// A guarded block's header is as inaccessible as the rest of it once freed: where it was
// allocated is copied out at the free, for a use after free and for a second free of it. The
// frees after it grow the quarantine's rings (256 entries at first), which keep it in step.
TEST(DebugResource, AFreedGuardedBlockStillNamesWhereItWasAllocated) {
  for (mesa::guard_mode mode : {mesa::guard_mode::after, mesa::guard_mode::before}) {
    SCOPED_TRACE(mode == mesa::guard_mode::after ? "after" : "before");
    recorder r;
    mesa::debug_options o;
    o.guard = mode;
    o.record_stacks = true;
    mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
    auto *p = static_cast<volatile unsigned char *>(allocate_here(&d, 64));
    first_free_here(&d, const_cast<unsigned char *>(p), 64);
    for (int i = 0; i < 300; ++i) d.deallocate(d.allocate(32), 32);
    p[5] = 2;  // faults; the recording handler takes it and the write then happens
    free_it_here(&d, const_cast<unsigned char *>(p), 64);
    ASSERT_EQ(r.errors.size(), 2u);
    EXPECT_EQ(r.errors[0].kind, debug_error_kind::write_after_free);
    EXPECT_EQ(r.errors[1].kind, debug_error_kind::double_free);
    for (const recorder::entry &e : r.errors) {
      EXPECT_EQ(e.address, p);
      EXPECT_EQ(e.allocation, 1u);
      EXPECT_TRUE(has_frame(e.allocation_frames, "allocate_here"));
      EXPECT_FALSE(has_frame(e.allocation_frames, "first_free_here"));
      EXPECT_TRUE(has_frame(e.free_frames, "first_free_here"));
    }
  }
}

// The code a guard fault interrupts goes on (a handler of the program's took the report) with
// errno as it was, whatever the report's system calls did to it (here the handler's own).
TEST(DebugResource, AGuardFaultLeavesTheInterruptedCodesErrnoAlone) {
  mesa::debug_options o;
  o.guard = mesa::guard_mode::after;
  o.handler = [](const mesa::debug_error &, void *) { errno = EBADF; };
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  auto *p = static_cast<volatile unsigned char *>(d.allocate(64));
  errno = EAGAIN;
  p[64] = 1;  // faults; the handler sets EBADF and returns, and the write then happens
  const int after = errno;
  EXPECT_EQ(after, EAGAIN);
  d.deallocate(const_cast<unsigned char *>(p), 64);
}

TEST(DebugResource, RecordsGuardUnderrun) {
  recorder r;
  mesa::debug_options o;
  o.guard = mesa::guard_mode::before;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  auto *p = static_cast<volatile unsigned char *>(d.allocate(100, 8));
  p[-1] = 1;
  d.deallocate(const_cast<unsigned char *>(p), 100, 8);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_underrun);
  EXPECT_EQ(r.errors[0].offset, -1);
  EXPECT_EQ(r.errors[0].size, 100u);
}

// Each block in a mapping of its own; what is left is unmapped at the end whatever its
// protection (a guarded block that a damaged header keeps from being released).
class mapped_pages : public std::pmr::memory_resource {
 public:
  ~mapped_pages() override {
    for (const auto &[p, bytes] : live_) munmap(p, bytes);
  }

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || alignment > static_cast<std::size_t>(sysconf(_SC_PAGESIZE)))
      throw std::bad_alloc();
    live_.emplace(p, bytes);
    return p;
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t) override {
    munmap(p, bytes);
    live_.erase(p);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }
  std::map<void *, std::size_t> live_;
};

// guard_mode::before with stacks: [guard page][block][tail][header][frames]. Every byte from the
// block's end up to its header is the tail, checked at free, and an overrun reaches the checked
// header before the frames: wherever it stops it is reported, with the stack as recorded. (The
// frames lay between tail and header, where a write was seen by nothing, and later reports printed
// it as the stack: debug probe 3, finding 4.)
TEST(DebugResource, GuardUnderOverrunsUpToTheHeaderAreReportedWithTheirStack) {
  struct seen {
    int reports = 0;
    debug_error_kind kind{};
    ptrdiff_t offset = 0;
    std::string detail;
    std::vector<void *> stack;
  } s;
  mesa::debug_options o;
  o.guard = mesa::guard_mode::before;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  o.handler_context = &s;
  o.handler = [](const mesa::debug_error &e, void *context) {
    auto *s = static_cast<seen *>(context);
    ++s->reports;
    s->kind = e.kind;
    s->offset = e.offset;
    s->detail = e.detail;
    s->stack.assign(e.stack, e.stack + e.stack_depth);
  };
  mapped_pages pages;
  mesa::debug_resource d(&pages, o);
  constexpr std::size_t kSize = 100;
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  std::vector<void *> recorded;  // the stack of the first report: the same call site throughout
  std::size_t header = 0;        // the first header byte, once an overrun has reached it
  for (std::size_t k = kSize; header == 0 || k < header + 64; ++k) {
    SCOPED_TRACE("p[" + std::to_string(k) + "]");
    auto *p = static_cast<unsigned char *>(d.allocate(kSize));
    ASSERT_NE((reinterpret_cast<std::uintptr_t>(p) + k) % page, 0u) << "past the block's pages";
    s.reports = 0;
    p[k] ^= 0x5a;
    d.deallocate(p, kSize);
    ASSERT_EQ(s.reports, 1);
    EXPECT_EQ(s.kind, debug_error_kind::buffer_overrun);
    if (recorded.empty()) recorded = s.stack;
    ASSERT_FALSE(recorded.empty());
    if (header == 0 && s.detail.find("the block header after the block was overwritten") == 0)
      header = k;
    if (header == 0) {
      EXPECT_EQ(s.offset, static_cast<ptrdiff_t>(k));
      EXPECT_EQ(s.detail, "byte " + std::to_string(k) + " (" + std::to_string(k - kSize) +
                              " past the end) was overwritten");
      EXPECT_EQ(s.stack, recorded);
    } else {
      EXPECT_EQ(s.detail.find("the block header after the block was overwritten"), 0u);
      // The recorded stack, or none where the word giving its depth was hit.
      if (k == header || !s.stack.empty()) {
        EXPECT_EQ(s.stack, recorded);
      }
    }
  }
  EXPECT_EQ(d.live_blocks(), 0u);
}

TEST(DebugResource, FillsAndKeepsAlignment) {
  recorder r;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options());
  for (size_t alignment = 1; alignment <= 4096; alignment *= 2) {
    auto *p = static_cast<unsigned char *>(d.allocate(33, alignment));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    for (int i = 0; i < 33; ++i) ASSERT_EQ(p[i], 0xCD);
    std::memset(p, 1, 33);
    d.deallocate(p, 33, alignment);
  }
  EXPECT_TRUE(r.errors.empty());
}

TEST(DebugResource, GuardModesKeepAlignmentAndCountPages) {
  for (mesa::guard_mode mode : {mesa::guard_mode::after, mesa::guard_mode::before}) {
    recorder r;
    mesa::debug_options o;
    o.guard = mode;
    o.quarantine_bytes = 64 << 10;
    mesa::tracking_resource t(std::pmr::new_delete_resource(), "pages");
    auto d_storage = std::make_unique<mesa::debug_resource>(&t, r.options(o));
    mesa::debug_resource &d = *d_storage;
    for (size_t alignment : {1, 16, 64, 4096, 8192}) {
      auto *p = static_cast<unsigned char *>(d.allocate(100, alignment));
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
      std::memset(p, 0, 100);
      d.deallocate(p, 100, alignment);
    }
    d.flush_quarantine();
    const size_t bookkeeping = t.stats().bytes_in_use;
    void *p = d.allocate(64);
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    EXPECT_EQ(t.stats().bytes_in_use - bookkeeping, 2 * page);  // one data page, one guard
    d.deallocate(p, 64);
    d_storage.reset();
    EXPECT_EQ(t.stats().bytes_in_use, 0u);
    EXPECT_TRUE(r.errors.empty());
  }
}

// A shrinking realloc at a full budget below keeps the block where it is, in every mode: with
// no cookie (MESA_ALLOC_DEBUG=leaks) and with guard pages after or before the block too. The
// bytes given up are checked at free as the canary is (in guard_mode::after an overrun there
// stops short of the guard page, so it is caught at free rather than at the write), the leak
// report gives the new size, and freeing gives the whole budget back. The budget's refusal of
// the debug layer's attempt to move the block is no failed allocation: the program's call
// succeeded.
TEST(DebugResource, ShrinkAtAFullBudgetStaysInPlaceAndChecked) {
  struct mode {
    bool cookie;
    mesa::guard_mode guard;
  };
  for (mode m : {mode{true, mesa::guard_mode::none}, mode{false, mesa::guard_mode::none},
                 mode{true, mesa::guard_mode::after}, mode{false, mesa::guard_mode::before}}) {
    SCOPED_TRACE(testing::Message()
                 << "cookie " << m.cookie << " guard " << static_cast<int>(m.guard));
    recorder r;
    mesa::debug_options o;
    o.cookie = m.cookie;
    o.fill = m.cookie;
    o.record_stacks = !m.cookie;
    o.guard = m.guard;
    o.report_leaks_on_destroy = false;
    o.bookkeeping = std::pmr::new_delete_resource();
    mesa::tracking_resource t(std::pmr::new_delete_resource(), "budget");
    auto d_storage = std::make_unique<mesa::debug_resource>(&t, r.options(o));
    mesa::debug_resource &d = *d_storage;
    void *first = d.allocate_block(1200, 16, MESA_ALLOC_SCOPE_OBJECT);
    t.set_limit(2 * t.stats().bytes_in_use);  // room for one more block of the same size
    void *second = d.allocate_block(1200, 16, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(second, nullptr);
    ASSERT_EQ(d.allocate_block(1200, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    std::memset(first, 0x5a, 1200);
    const std::size_t full = t.stats().bytes_in_use;
    ASSERT_EQ(t.stats().failed_allocations, 1u);

    auto *p =
        static_cast<unsigned char *>(d.reallocate_block(first, 300, 16, MESA_ALLOC_SCOPE_OBJECT));
    ASSERT_EQ(p, first);
    EXPECT_EQ(t.stats().failed_allocations, 1u);
    EXPECT_EQ(p[0], 0x5a);
    EXPECT_EQ(p[299], 0x5a);
    EXPECT_EQ(t.stats().bytes_in_use, full);
    EXPECT_EQ(d.report_leaks(), 2u);
    ASSERT_EQ(r.errors.size(), 2u);
    for (const recorder::entry &e : r.errors) EXPECT_EQ(e.size, e.address == p ? 300u : 1200u);

    r.errors.clear();
    p[1100] = 1;  // in the bytes given up
    d.free_block(p);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].kind, debug_error_kind::buffer_overrun);
    EXPECT_EQ(r.errors[0].size, 300u);
    EXPECT_EQ(r.errors[0].offset, 1100);
    d.free_block(second);
    d.flush_quarantine();
    EXPECT_EQ(t.stats().bytes_in_use, 0u);
    EXPECT_EQ(r.errors.size(), 1u);
  }
}

// A failure a fault layer below injects into a shrinking realloc's move is the realloc's own:
// the debug layer does not absorb it by shrinking in place (a sweep that fails allocation N
// must see allocation N fail), and the block is left as it was, in every mode.
TEST(DebugResource, InjectedFailureOfAShrinkIsNotAbsorbed) {
  for (mesa::guard_mode guard :
       {mesa::guard_mode::none, mesa::guard_mode::after, mesa::guard_mode::before}) {
    for (bool cookie : {true, false}) {
      SCOPED_TRACE(testing::Message()
                   << "cookie " << cookie << " guard " << static_cast<int>(guard));
      recorder r;
      mesa::debug_options o;
      o.cookie = cookie;
      o.fill = cookie;
      o.record_stacks = !cookie;
      o.guard = guard;
      o.report_leaks_on_destroy = false;
      o.bookkeeping = std::pmr::new_delete_resource();
      mesa::fault_resource faults(std::pmr::new_delete_resource());
      mesa::debug_resource d(&faults, r.options(o));
      auto *first =
          static_cast<unsigned char *>(d.allocate_block(100, 16, MESA_ALLOC_SCOPE_OBJECT));
      ASSERT_NE(first, nullptr);
      std::memset(first, 0x5a, 100);
      faults.fail_nth(0);
      EXPECT_EQ(d.reallocate_block(first, 50, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
      EXPECT_EQ(faults.failures(), 1u);
      EXPECT_EQ(first[0], 0x5a);
      EXPECT_EQ(first[99], 0x5a);  // still 100 bytes: an overrun check at free would see it
      d.free_block(first);
      d.flush_quarantine();
      EXPECT_TRUE(r.errors.empty());
    }
  }
}

// `n` blocks of `size` bytes from one call site. The loop must stay a loop: clang unrolls a
// three-trip loop at -O2, and each copy of the call is a call site of its own.
[[gnu::noinline]] void allocate_at_one_site(mesa::debug_resource &d, int n, std::size_t size,
                                            std::vector<void *> &out) {
#pragma GCC unroll 1
  for (int i = 0; i < n; ++i) out.push_back(d.allocate(size));
}

TEST(DebugResource, LeakReportGroupsByCallSite) {
  recorder r;
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  std::vector<void *> kept;
  allocate_at_one_site(d, 3, 16, kept);
  kept.push_back(d.allocate(32));  // another call site
  EXPECT_EQ(d.report_leaks(), 4u);
  ASSERT_EQ(r.errors.size(), 4u);
  int with_stack = 0;
  for (const auto &e : r.errors) {
    EXPECT_EQ(e.kind, debug_error_kind::leak);
    with_stack += e.has_stack;
  }
  EXPECT_EQ(with_stack, 2);  // the first block of each call site carries the stack
  for (void *p : kept) d.deallocate(p, p == kept.back() ? 32 : 16);
  EXPECT_EQ(d.report_leaks(), 0u);
}

// A leaked block is never freed, so nothing else looks at its header: the leak report does, and
// a header an underrun overwrote gives no stack (its depth and frames are not to be trusted;
// the depth once sent the report reading far below the block) and says why.
TEST(DebugResource, LeakReportDistrustsAnOverwrittenHeader) {
  for (bool stacks : {false, true}) {
    for (int distance = 1; distance <= 40; ++distance) {
      SCOPED_TRACE(std::to_string(distance) + (stacks ? " with stacks" : ""));
      recorder r;
      mesa::debug_options o;
      o.record_stacks = stacks;
      o.report_leaks_on_destroy = false;
      mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
      auto *p = static_cast<unsigned char *>(d.allocate(40));
      p[-distance] = static_cast<unsigned char>(~p[-distance]);
      ASSERT_EQ(d.report_leaks(), 1u);
      ASSERT_EQ(r.errors.size(), 1u);
      EXPECT_EQ(r.errors[0].kind, debug_error_kind::leak);
      EXPECT_FALSE(r.errors[0].has_stack);
      EXPECT_EQ(r.errors[0].detail,
                "its block header was overwritten, so no allocation stack can be trusted");
      p[-distance] = static_cast<unsigned char>(~p[-distance]);
      d.deallocate(p, 40);
    }
  }
}

// Leaks that used up the memory the bookkeeping comes from (a budget, say) still get a report:
// 16 of them with their stacks, ungrouped, then one line with the count and bytes of them all.
TEST(DebugResource, LeakReportWithoutMemoryListsSixteenAndCountsAll) {
  mesa::fault_resource bookkeeping(std::pmr::new_delete_resource());
  recorder r;
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  o.bookkeeping = &bookkeeping;
  mesa::debug_resource d(std::pmr::new_delete_resource(), r.options(o));
  std::vector<void *> kept;
  allocate_at_one_site(d, 40, 100, kept);
  bookkeeping.fail_from(0);
  EXPECT_EQ(d.report_leaks(), 40u);
  ASSERT_EQ(r.errors.size(), 17u);
  for (std::size_t i = 0; i < 16; ++i) {
    const auto &e = r.errors[i];
    EXPECT_EQ(e.kind, debug_error_kind::leak);
    EXPECT_EQ(e.size, 100u);
    EXPECT_NE(e.address, nullptr);
    EXPECT_TRUE(e.has_stack);  // ungrouped: each one carries its own
    EXPECT_EQ(e.detail, "not grouped by allocation site (no memory for the report)");
  }
  const auto &rest = r.errors.back();
  EXPECT_EQ(rest.kind, debug_error_kind::leak);
  EXPECT_EQ(rest.address, nullptr);
  EXPECT_EQ(rest.detail,
            "40 blocks, 4000 bytes in all, are still allocated; 16 of them are listed, the rest "
            "not (no memory to list them)");

  // Fewer than 16: every one is listed, and the line says so.
  bookkeeping.fail_none();
  for (std::size_t i = 3; i < kept.size(); ++i) d.deallocate(kept[i], 100);
  kept.resize(3);
  bookkeeping.fail_from(0);
  r.errors.clear();
  EXPECT_EQ(d.report_leaks(), 3u);
  ASSERT_EQ(r.errors.size(), 4u);
  EXPECT_EQ(r.errors.back().detail,
            "3 blocks, 300 bytes in all, are still allocated (all listed, ungrouped: no memory to "
            "group them)");
  bookkeeping.fail_none();
  for (void *p : kept) d.deallocate(p, 100);
  EXPECT_EQ(d.report_leaks(), 0u);
}

// On stderr (the default handler) the fallback ends with a "leak summary" line too, as the
// grouped report does: a script that looks for it finds the leaks.
TEST(DebugResource, LeakReportWithoutMemoryEndsWithASummaryLine) {
  mesa::fault_resource bookkeeping(std::pmr::new_delete_resource());
  mesa::debug_options o;
  o.report_leaks_on_destroy = false;
  o.bookkeeping = &bookkeeping;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  void *p = d.allocate(100);
  void *q = d.allocate(20);
  bookkeeping.fail_from(0);
  testing::internal::CaptureStderr();
  EXPECT_EQ(d.report_leaks(), 2u);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("\nmesa_alloc: leak summary: 120 bytes in 2 blocks (not grouped by allocation "
                     "site: no memory for the report)\n"),
            std::string::npos)
      << err;
  bookkeeping.fail_none();
  d.deallocate(p, 100);
  d.deallocate(q, 20);
}

// (Not under a sanitizer, whose frames do not fit the small stacks these tests use.)
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
[[gnu::noinline]] int function_named_in_the_report(volatile int *x) { return *x + 3; }

void *g_reported_frames[1];

void print_an_error_with_a_stack() {
  const mesa::debug_error error{
      mesa::debug_error_kind::buffer_overrun, nullptr, 64, 1, 64, "", g_reported_frames, 1};
  mesa::print_debug_error(error);
}

// print_debug_error's output when it runs on an alternate signal stack of `size` bytes, with an
// inaccessible page below it, as a guard fault's report does (entered by swapcontext: the
// kernel says "on the signal stack" by where the stack pointer is).
std::string report_on_a_signal_stack(std::size_t size, void *frame = nullptr) {
  const std::size_t page = static_cast<std::size_t>(getpagesize());
  const std::size_t mapped = page + (size + page - 1) / page * page;
  auto *memory = static_cast<char *>(
      mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (memory == MAP_FAILED || mprotect(memory, page, PROT_NONE) != 0) return "(no memory)";
  char *stack = memory + mapped - size;
  stack_t signal_stack{}, previous{};
  signal_stack.ss_sp = stack;
  signal_stack.ss_size = size;
  std::string out = "(no signal stack)";
  if (sigaltstack(&signal_stack, &previous) == 0) {
    ucontext_t caller{}, report{};
    getcontext(&report);
    report.uc_stack.ss_sp = stack;
    report.uc_stack.ss_size = size;
    report.uc_link = &caller;
    makecontext(&report, print_an_error_with_a_stack, 0);
    g_reported_frames[0] =
        frame != nullptr ? frame
                         : reinterpret_cast<char *>(
                               reinterpret_cast<std::uintptr_t>(&function_named_in_the_report)) +
                               2;
    testing::internal::CaptureStderr();
    swapcontext(&caller, &report);
    out = testing::internal::GetCapturedStderr();
    sigaltstack(&previous, nullptr);
  }
  munmap(memory, mapped);
  return out;
}

#endif

void ignore_signal(int) {}

// A report line whose write(2) a signal interrupts (stderr a full pipe, a handler installed
// without SA_RESTART) is written whole once the pipe drains: the interrupted write used to end
// the line there, lost.
TEST(DebugReport, ALineWhoseWriteASignalInterruptsIsWrittenWhole) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const int flags = fcntl(pipe_fds[1], F_GETFL);
  fcntl(pipe_fds[1], F_SETFL, flags | O_NONBLOCK);
  const std::string filler(4096, 'x');
  std::size_t filled = 0;
  for (ssize_t n; (n = write(pipe_fds[1], filler.data(), filler.size())) > 0;) filled += n;
  fcntl(pipe_fds[1], F_SETFL, flags);
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = ignore_signal;  // no SA_RESTART: the blocked write returns EINTR
  sigemptyset(&ignore.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &ignore, &previous), 0);
  const int saved_stderr = dup(STDERR_FILENO);
  ASSERT_EQ(dup2(pipe_fds[1], STDERR_FILENO), STDERR_FILENO);
  close(pipe_fds[1]);
  const pthread_t writer = pthread_self();
  std::string drained;
  std::thread reader([&] {
    usleep(100 * 1000);
    pthread_kill(writer, SIGUSR1);  // interrupts the write blocked on the full pipe
    usleep(200 * 1000);
    char buffer[4096];
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) drained.append(buffer, n);
  });
  static constexpr char kLine[] = "mesa_alloc: a line written while a signal came\n";
  mesa::internal::write_to_stderr(kLine, sizeof kLine - 1);
  dup2(saved_stderr, STDERR_FILENO);  // the pipe's last writer goes: the reader sees its end
  close(saved_stderr);
  reader.join();
  close(pipe_fds[0]);
  sigaction(SIGUSR1, &previous, nullptr);
  EXPECT_EQ(drained.size(), filled + sizeof kLine - 1);
  EXPECT_EQ(drained.substr(filled), kLine);
}

// A guard fault's report on a small signal stack (8 KiB is common; the kernel's signal frame
// takes 1 to 3 KiB of it, more with AVX-512) leaves out what it has no room to look up, and says
// so, instead of running off the stack into the memory below: naming a frame takes about 3 KiB.
TEST(DebugResource, AReportOnASmallSignalStackLeavesNamesOutAndSaysSo) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's frames do not fit the small stack";
#else
  const std::string small = report_on_a_signal_stack(5 * 1024);
  EXPECT_NE(small.find("left out: "), std::string::npos) << small;
  EXPECT_NE(small.find("bytes of signal stack left)"), std::string::npos) << small;
  EXPECT_EQ(small.find("function_named_in_the_report"), std::string::npos) << small;
  EXPECT_NE(small.find("    #0 0x"), std::string::npos) << small;
  const std::string large = report_on_a_signal_stack(64 * 1024);
  EXPECT_NE(large.find("function_named_in_the_report"), std::string::npos) << large;
  EXPECT_EQ(large.find("left out"), std::string::npos) << large;
#endif
}

template <class T>
struct wrapped {};
template <int N>
struct nested {
  using type = wrapped<typename nested<N - 1>::type>;
};
template <>
struct nested<0> {
  using type = int;
};
template <class T>
[[gnu::noinline]] int deeply_named(volatile int *x) {
  return *x + 4;
}

// A name nested 30 deep takes Abseil's demangler about 8 KiB of stack: on a signal stack with
// less left it is printed mangled, where the report used to run off the stack.
TEST(DebugResource, ADeepNameOnASmallSignalStackIsPrintedMangled) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's frames do not fit the small stack";
#else
  void *const deep =
      reinterpret_cast<char *>(reinterpret_cast<std::uintptr_t>(&deeply_named<nested<30>::type>)) +
      2;
  const std::string small = report_on_a_signal_stack(7 * 1024, deep);
  EXPECT_NE(small.find(" _ZN12_GLOBAL__N_112deeply_namedINS_7wrapped"), std::string::npos) << small;
  const std::string large = report_on_a_signal_stack(64 * 1024, deep);
  EXPECT_NE(large.find("::deeply_named<>()"), std::string::npos) << large;
#endif
}

TEST(DebugResource, DestructorReportsLeaksWithSymbolizedStacks) {
  testing::internal::CaptureStderr();
  {
    mesa::debug_options o;
    o.record_stacks = true;
    std::pmr::monotonic_buffer_resource arena;  // takes back the leaked block
    mesa::debug_resource d(&arena, o);
    (void)d.allocate(24);
  }
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("mesa_alloc: leak at 0x"), std::string::npos) << out;
  EXPECT_NE(out.find("size 24 allocation #1"), std::string::npos) << out;
  EXPECT_NE(out.find("    allocated at:\n    #0 0x"), std::string::npos) << out;
  // Symbolized, not just addresses: the allocating frame is this test's body.
  EXPECT_NE(out.find("DestructorReportsLeaksWithSymbolizedStacks_Test::TestBody"),
            std::string::npos)
      << out;
  // Each frame also names its file and the offset in it, which a stripped driver's frames need
  // (addr2line, debuginfod): the test body is in this program at the offset of its address.
  const std::size_t frame = out.find("    #0 0x");
  ASSERT_NE(frame, std::string::npos) << out;
  const std::string line = out.substr(frame, out.find('\n', frame) - frame);
  void *address = nullptr;
  ASSERT_EQ(std::sscanf(line.c_str(), "    #0 %p", &address), 1) << line;
  Dl_info info;
  ASSERT_NE(dladdr(address, &info), 0);
  char expected[64];
  std::snprintf(expected, sizeof expected, "debug_resource_test+0x%tx)",
                static_cast<char *>(address) - static_cast<char *>(info.dli_fbase));
  EXPECT_NE(line.find(expected), std::string::npos) << line;
  EXPECT_NE(out.find("mesa_alloc: leak summary: 24 bytes in 1 blocks from 1 allocation sites"),
            std::string::npos)
      << out;
}

// A leak made three calls deep in code built without frame pointers: with the unwind tables the
// report names all three and the test body above them.
std::string leak_report_without_frame_pointers(mesa::stack_unwinder unwinder) {
  testing::internal::CaptureStderr();
  {
    mesa::debug_options o;
    o.record_stacks = true;
    o.unwinder = unwinder;
    std::pmr::monotonic_buffer_resource arena;  // takes back the leaked block
    mesa::debug_resource d(&arena, o);
    (void)test::outer_without_frame_pointers(&d, 24);
  }
  return testing::internal::GetCapturedStderr();
}

TEST(DebugResource, UnwindTablesRecordTheWholeStackWithoutFramePointers) {
  const std::string out = leak_report_without_frame_pointers(mesa::stack_unwinder::unwind_tables);
  const std::size_t leaf = out.find("leaf_without_frame_pointers"),
                    middle = out.find("middle_without_frame_pointers"),
                    outer = out.find("outer_without_frame_pointers"),
                    body = out.find("UnwindTablesRecordTheWholeStackWithoutFramePointers_Test");
  ASSERT_NE(leaf, std::string::npos) << out;
  ASSERT_NE(middle, std::string::npos) << out;
  ASSERT_NE(outer, std::string::npos) << out;
  ASSERT_NE(body, std::string::npos) << out;
  EXPECT_LT(leaf, middle) << out;
  EXPECT_LT(middle, outer) << out;
  EXPECT_LT(outer, body) << out;
  EXPECT_EQ(out.find("capture_stack"), std::string::npos) << out;  // the walk's own frames
  EXPECT_EQ(out.find("_Unwind_"), std::string::npos) << out;
}

TEST(DebugResource, FramePointersStillNameTheAllocatingFunction) {
  const std::string out = leak_report_without_frame_pointers(mesa::stack_unwinder::frame_pointers);
  EXPECT_NE(out.find("#0 0x"), std::string::npos) << out;
  EXPECT_NE(out.find("leaf_without_frame_pointers"), std::string::npos) << out;
}

// Options outside their enums are refused with a line naming the field (a bad guard was a
// silent NULL, and any record_stacks but 0 meant frame pointers: an uninitialised -1 included).
TEST(DebugResourceC, OptionsOutsideTheirEnumsAreRefusedWithALine) {
  mesa_debug_options o;
  mesa_debug_options_init(&o);
  const int bad_guard = 3;
  std::memcpy(&o.guard, &bad_guard, sizeof bad_guard);
  testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_debug_create(nullptr, &o), nullptr);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: mesa_debug_create: guard 3 is not a mesa_debug_guard\n");
  mesa_debug_options_init(&o);
  o.record_stacks = -1;
  testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_debug_create(nullptr, &o), nullptr);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: mesa_debug_create: record_stacks -1 is not a MESA_DEBUG_STACKS_ value\n");
}

TEST(DebugResourceC, RecordStacksTwoWalksTheUnwindTables) {
  mesa_debug_options o;
  mesa_debug_options_init(&o);
  o.record_stacks = MESA_DEBUG_STACKS_UNWIND_TABLES;
  o.report_leaks_on_destroy = 0;
  const mesa_allocator *debug = mesa_debug_create(nullptr, &o);
  ASSERT_NE(debug, nullptr);
  void *p = test::outer_without_frame_pointers_c(debug, 24);
  testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_debug_report_leaks(debug), 1u);
  const std::string out = testing::internal::GetCapturedStderr();
  // Frame #0 is the caller of alloc_fn, as with frame pointers; all three frames are there.
  ASSERT_NE(out.find("#0 0x"), std::string::npos) << out;
  EXPECT_LT(out.find("#0 0x"), out.find("leaf_without_frame_pointers")) << out;
  EXPECT_LT(out.find("leaf_without_frame_pointers"), out.find("#1 0x")) << out;
  EXPECT_NE(out.find("middle_without_frame_pointers"), std::string::npos) << out;
  EXPECT_NE(out.find("outer_without_frame_pointers_c"), std::string::npos) << out;
  EXPECT_NE(out.find("RecordStacksTwoWalksTheUnwindTables_Test"), std::string::npos) << out;
  debug->free_fn(debug->user_data, p);
  mesa_debug_destroy(debug);
}

// Allocations through each allocating function of the C API, each from a function of its own
// (not inlined, not a tail call). `debug` is the table for the functions that take one; the
// others go through the default.
#define THROUGH_C_API(name, call)                             \
  [[gnu::noinline]] void *name(const mesa_allocator *debug) { \
    (void)debug;                                              \
    void *p = (call);                                         \
    __asm__ volatile("" ::: "memory");                        \
    return p;                                                 \
  }
THROUGH_C_API(through_malloc, mesa_malloc(24))
THROUGH_C_API(through_calloc, mesa_calloc(3, 8))
THROUGH_C_API(through_realloc, mesa_realloc(nullptr, 24))
THROUGH_C_API(through_aligned_alloc, mesa_aligned_alloc(64, 24))
THROUGH_C_API(through_aligned_realloc, mesa_aligned_realloc(nullptr, 24, 64))
THROUGH_C_API(through_strdup, mesa_strdup("twenty-three characters"))
THROUGH_C_API(through_strndup, mesa_strndup("twenty-three characters, and more", 23))
THROUGH_C_API(through_alloc2, mesa_alloc2(nullptr, debug, 24, 8, MESA_ALLOC_SCOPE_OBJECT))
THROUGH_C_API(through_zalloc2, mesa_zalloc2(nullptr, debug, 24, 8, MESA_ALLOC_SCOPE_OBJECT))
THROUGH_C_API(through_realloc2,
              mesa_realloc2(nullptr, debug, nullptr, 24, 8, MESA_ALLOC_SCOPE_OBJECT))
THROUGH_C_API(through_app_table, mesa_alloc2(nullptr, debug, 16, 8, MESA_ALLOC_SCOPE_OBJECT))
THROUGH_C_API(through_slab, mesa_alloc2(nullptr, debug, 20, 4, MESA_ALLOC_SCOPE_CACHE))
#undef THROUGH_C_API

// The line of frame #`n` in a leak report ("" if none).
std::string frame_line(const std::string &report, int n) {
  const std::string tag = "    #" + std::to_string(n) + " 0x";
  const std::size_t at = report.find(tag);
  if (at == std::string::npos) return "";
  return report.substr(at, report.find('\n', at) - at);
}

// A debug table over libc recording stacks with `walk` (MESA_DEBUG_STACKS_*), whose leaks the
// test reports itself.
const mesa_allocator *debug_recording_stacks(int walk) {
  mesa_debug_options o;
  mesa_debug_options_init(&o);
  o.record_stacks = walk;
  o.report_leaks_on_destroy = 0;
  return mesa_debug_create(mesa_libc_allocator(), &o);
}
const char *walk_name(int walk) {
  return walk == MESA_DEBUG_STACKS_UNWIND_TABLES ? "unwind tables" : "frame pointers";
}

// A block allocated through the C API has a stack that starts at the C API's caller, with either
// walk: no frame of the C API (malloc_through_table, mesa_strndup under mesa_strdup, ...) or of
// the debug table comes before it. mesa_malloc reaches the table with a tail call when
// optimized; unoptimized, its own frame is #0, the caller's #1.
TEST(DebugResourceC, StacksOfCApiAllocationsStartAtTheCaller) {
  struct entry {
    const char *name;
    void *(*allocate)(const mesa_allocator *);
  };
  const entry entries[] = {
      {"through_malloc", &through_malloc},
      {"through_calloc", &through_calloc},
      {"through_realloc", &through_realloc},
      {"through_aligned_alloc", &through_aligned_alloc},
      {"through_aligned_realloc", &through_aligned_realloc},
      {"through_strdup", &through_strdup},
      {"through_strndup", &through_strndup},
      {"through_alloc2", &through_alloc2},
      {"through_zalloc2", &through_zalloc2},
      {"through_realloc2", &through_realloc2},
  };
  for (const int walk : {MESA_DEBUG_STACKS_FRAME_POINTERS, MESA_DEBUG_STACKS_UNWIND_TABLES}) {
    const mesa_allocator *debug = debug_recording_stacks(walk);
    ASSERT_NE(debug, nullptr);
    const mesa_allocator *previous = mesa_set_default_allocator(debug);
    for (const entry &e : entries) {
      SCOPED_TRACE(std::string(e.name) + " (" + walk_name(walk) + ")");
      void *p = e.allocate(debug);
      ASSERT_NE(p, nullptr);
      testing::internal::CaptureStderr();
      EXPECT_EQ(mesa_debug_report_leaks(debug), 1u);
      const std::string out = testing::internal::GetCapturedStderr();
      mesa_free(p);
      const std::string first = frame_line(out, 0);
      if (std::strcmp(e.name, "through_malloc") == 0 &&
          first.find(" mesa_malloc") != std::string::npos) {
        EXPECT_NE(frame_line(out, 1).find(e.name), std::string::npos) << out;
      } else {
        EXPECT_NE(first.find(e.name), std::string::npos) << out;
      }
      for (const char *own : {"malloc_through_table", "mesa_strndup", "mesa_alloc2", "c_alloc",
                              "c_realloc", "allocate_from", "capture_stack"}) {
        EXPECT_EQ(out.find(own), std::string::npos) << own << " in\n" << out;
      }
    }
    mesa_set_default_allocator(previous);
    mesa_debug_destroy(debug);
  }
}

// An allocation `levels` calls deep, through one chain of functions of its own.
[[gnu::noinline]] void *deep_allocation(const mesa_allocator *table, int levels) {
  void *p = levels == 0 ? mesa_alloc2(nullptr, table, 24, 8, MESA_ALLOC_SCOPE_OBJECT)
                        : deep_allocation(table, levels - 1);
  __asm__ volatile("" ::: "memory");  // not a tail call: each level keeps its frame
  return p;
}
[[gnu::noinline]] void *deep_from_one_site(const mesa_allocator *table) {
  void *p = deep_allocation(table, 20);
  __asm__ volatile("" ::: "memory");
  return p;
}
[[gnu::noinline]] void *deep_from_another_site(const mesa_allocator *table) {
  void *p = deep_allocation(table, 20);
  __asm__ volatile("" ::: "memory");
  return p;
}

// A stack deeper than the 16 frames kept says so, and two leaks whose stacks share only those
// innermost frames are not called "the same place" (a stacks probe: the cut was silent, and two
// sites reported as one).
TEST(DebugResourceC, AStackCutAtItsDepthSaysSo) {
  for (const int walk : {MESA_DEBUG_STACKS_FRAME_POINTERS, MESA_DEBUG_STACKS_UNWIND_TABLES}) {
    SCOPED_TRACE(walk_name(walk));
    const mesa_allocator *debug = debug_recording_stacks(walk);
    ASSERT_NE(debug, nullptr);
    void *a = deep_from_one_site(debug);
    void *b = deep_from_another_site(debug);
    void *shallow = through_alloc2(debug);
    testing::internal::CaptureStderr();
    EXPECT_EQ(mesa_debug_report_leaks(debug), 3u);
    const std::string out = testing::internal::GetCapturedStderr();
    EXPECT_NE(frame_line(out, 15).find("deep_allocation"), std::string::npos) << out;
    EXPECT_EQ(frame_line(out, 16), "") << out;
    const std::string cut = "    ... (deeper frames not recorded: a stack keeps its 16 innermost)";
    const std::size_t first_cut = out.find(cut);
    EXPECT_NE(first_cut, std::string::npos) << out;
    EXPECT_EQ(out.find(cut, first_cut + 1), std::string::npos) << "only the deep site's:\n" << out;
    EXPECT_NE(out.find("allocated with the same innermost 16 frames as allocation #"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("allocated at the same place"), std::string::npos) << out;
    EXPECT_NE(out.find("from 2 allocation sites (1 of them told apart by their innermost 16 "
                       "frames only)"),
              std::string::npos)
        << out;
    for (void *p : {a, b, shallow}) mesa_free2(nullptr, debug, p);
    mesa_debug_destroy(debug);
  }
}

// A pmr allocation through a callback_resource, from a function of its own.
[[gnu::noinline]] void *through_callback_resource(std::pmr::memory_resource *resource) {
  void *p = resource->allocate(24, 8);
  __asm__ volatile("" ::: "memory");
  return p;
}

// A container's allocation through callback_resource over one of the library's tables (the way
// mesa::default_resource() reaches the MESA_ALLOC_DEBUG stack) records its caller, as a C API
// call does: the stack starts in the container's code, with no frame of the resource or of a
// layer between it and the debug layer (a stacks probe: it started at
// callback_resource::do_allocate, and under fail=N at the fault gate's function too).
// Unoptimized, memory_resource::allocate is a frame of its own: then #0 is it, #1 the caller.
TEST(DebugResourceC, StacksOfAllocationsThroughCallbackResourceStartAtTheCaller) {
  for (const int walk : {MESA_DEBUG_STACKS_FRAME_POINTERS, MESA_DEBUG_STACKS_UNWIND_TABLES}) {
    SCOPED_TRACE(walk_name(walk));
    const mesa_allocator *debug = debug_recording_stacks(walk);
    ASSERT_NE(debug, nullptr);
    // A layer of the library over the debug table, as the fault gate is under MESA_ALLOC_DEBUG
    // (its own state is a block of the debug table too: the report's other leak).
    const mesa_allocator *tracking = mesa_tracking_create(debug, "over debug", nullptr);
    ASSERT_NE(tracking, nullptr);
    for (const mesa_allocator *table : {debug, tracking}) {
      SCOPED_TRACE(table == debug ? "the debug table" : "a tracking table over it");
      mesa::callback_resource resource(table);
      void *p = through_callback_resource(&resource);
      ASSERT_NE(p, nullptr);
      testing::internal::CaptureStderr();
      EXPECT_EQ(mesa_debug_report_leaks(debug), 2u);
      const std::string report = testing::internal::GetCapturedStderr();
      resource.deallocate(p, 24, 8);
      // The block's entry: the leak that is not the tracking table's state.
      std::string out;
      for (std::size_t at = report.find("mesa_alloc: leak at"); at != std::string::npos;) {
        const std::size_t next = report.find("mesa_alloc: leak", at + 1);
        const std::string entry = report.substr(at, next - at);
        if (entry.find("mesa_tracking_create") == std::string::npos) out = entry;
        at = report.find("mesa_alloc: leak at", at + 1);
      }
      ASSERT_NE(out, "") << report;
      const std::string first = frame_line(out, 0);
      const std::string caller =
          first.find("memory_resource::allocate") != std::string::npos ? frame_line(out, 1) : first;
      EXPECT_NE(caller.find("through_callback_resource"), std::string::npos) << report;
      for (const char *own : {"mesa::callback_resource", "mesa::internal::", "mesa::tracking",
                              "allocate_from", "capture_stack"}) {
        EXPECT_EQ(out.find(own), std::string::npos) << own << " in\n" << report;
      }
    }
    // Outside the resource, the record is gone: a direct call into the table starts at itself.
    mesa_tracking_destroy(tracking);
    void *direct = through_alloc2(debug);
    testing::internal::CaptureStderr();
    EXPECT_EQ(mesa_debug_report_leaks(debug), 1u);
    const std::string out = testing::internal::GetCapturedStderr();
    EXPECT_NE(frame_line(out, 0).find("through_alloc2"), std::string::npos) << out;
    mesa_free2(nullptr, debug, direct);
    mesa_debug_destroy(debug);
  }
}

// A slab table is one of the library's: a C API call into it records its caller, so the slab's
// page, allocated from a debug table below, has a stack that starts there (it started inside
// the slab's allocation function, as for any table the library did not make).
TEST(DebugResourceC, AStackThroughASlabTableStartsAtTheCaller) {
  mesa_debug_options o;
  mesa_debug_options_init(&o);
  o.record_stacks = MESA_DEBUG_STACKS_FRAME_POINTERS;
  o.report_leaks_on_destroy = 0;
  const mesa_allocator *debug = mesa_debug_create(mesa_libc_allocator(), &o);
  ASSERT_NE(debug, nullptr);
  const mesa_allocator *slab = mesa_slab_create(debug, 24);
  ASSERT_NE(slab, nullptr);
  void *p = through_slab(slab);
  ASSERT_NE(p, nullptr);
  testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_debug_report_leaks(debug), 2u);  // the slab's table and its page
  const std::string out = testing::internal::GetCapturedStderr();
  const std::size_t page = out.find("size 4096 ");
  ASSERT_NE(page, std::string::npos) << out;
  EXPECT_NE(frame_line(out.substr(page), 0).find("through_slab"), std::string::npos) << out;
  for (const char *own : {"mesa_alloc2", "c_fixed_table", "allocate_object", "c_alloc"})
    EXPECT_EQ(out.find(own), std::string::npos) << own << " in\n" << out;
  mesa_free2(nullptr, slab, p);
  mesa_slab_destroy(slab);
  mesa_debug_destroy(debug);
}

// A library unloaded after a stack was recorded: its frames are named after whatever is loaded
// at their addresses by the report (a probe saw plugin A's leak blamed on plugin B, loaded where
// A was). The report cannot tell which frames are stale, so it says that some may be.
TEST(DebugResource, ALeakReportSaysWhenLibrariesWereUnloadedSinceItsStacksBegan) {
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  void *p = d.allocate(24);
  testing::internal::CaptureStderr();
  d.report_leaks();
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find("unloaded"), std::string::npos) << out;
  void *library = dlopen("libanl.so.1", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(library, nullptr) << dlerror();
  ASSERT_EQ(dlclose(library), 0);
  testing::internal::CaptureStderr();
  d.report_leaks();
  out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("mesa_alloc: 1 shared library was unloaded (dlclose) since this debug layer "
                     "was made: a frame in it is named after what was loaded at its address "
                     "since, if anything\n"),
            std::string::npos)
      << out;
  d.deallocate(p, 24);
}

// The same for an error's report: a block allocated before a library was unloaded, overrun
// after (a stacks probe: the error named its frames after the library loaded there since, with
// no line, where the leak report had one).
TEST(DebugResourceDeathTest, AnErrorReportSaysWhenLibrariesWereUnloadedSinceItsStacksBegan) {
  EXPECT_DEATH(
      {
        mesa::debug_options o;
        o.record_stacks = true;
        o.report_leaks_on_destroy = false;
        mesa::debug_resource d(std::pmr::new_delete_resource(), o);
        auto *p = static_cast<unsigned char *>(d.allocate(24));
        void *library = dlopen("libanl.so.1", RTLD_NOW | RTLD_LOCAL);
        if (library == nullptr || dlclose(library) != 0) std::abort();
        p[24] = 0;
        d.deallocate(p, 24);
      },
      "buffer overrun at 0x[0-9a-f]+ size 24(.|\n)*allocated at:(.|\n)*mesa_alloc: 1 shared "
      "library was unloaded \\(dlclose\\) since this debug layer was made");
}

// An application's table whose callback allocates through a debug resource (its own bookkeeping,
// say): that allocation keeps its own stack, starting in the callback, rather than the stack of
// the C API call the callback serves (a review found it attributed to mesa_alloc2's caller).
[[gnu::noinline]] void *allocate_in_callback(mesa::debug_resource *bookkeeping) {
  void *p = bookkeeping->allocate(24);
  __asm__ volatile("" ::: "memory");
  return p;
}

struct bookkeeping_app_table {
  mesa::debug_resource *bookkeeping;
  void *kept = nullptr;
  mesa_allocator table{this, &alloc, &realloc, &free, nullptr, nullptr};
  static void *alloc(void *self, size_t size, size_t, mesa_alloc_scope) {
    auto *app = static_cast<bookkeeping_app_table *>(self);
    app->kept = allocate_in_callback(app->bookkeeping);
    return std::malloc(size);
  }
  static void *realloc(void *, void *p, size_t size, size_t, mesa_alloc_scope) {
    return std::realloc(p, size);
  }
  static void free(void *, void *p) { std::free(p); }
};

TEST(DebugResourceC, AnApplicationCallbackKeepsItsOwnStack) {
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  mesa::debug_resource bookkeeping(std::pmr::new_delete_resource(), o);
  bookkeeping_app_table app{&bookkeeping};
  void *p = through_app_table(&app.table);
  ASSERT_NE(p, nullptr);
  testing::internal::CaptureStderr();
  EXPECT_EQ(bookkeeping.report_leaks(), 1u);
  const std::string out = testing::internal::GetCapturedStderr();
  // The callback's frames come first (unoptimized, memory_resource::allocate is a frame before
  // it), then the C API call it serves; not that call's caller alone.
  const std::size_t callback = out.find("allocate_in_callback");
  ASSERT_NE(callback, std::string::npos) << out;
  EXPECT_LT(callback, out.find("through_app_table")) << out;
  EXPECT_EQ(frame_line(out, 0).find("through_app_table"), std::string::npos) << out;
  std::free(p);
  bookkeeping.deallocate(app.kept, 24);
}

// An application's table that records each block's bookkeeping through a debug resource of its
// own, every block kept until the test looks.
struct recording_app_table {
  mesa::debug_resource *bookkeeping;
  std::vector<void *> kept;
  mesa_allocator table{this, &alloc, &realloc, &free, nullptr, nullptr};
  static void *alloc(void *self, size_t size, size_t alignment, mesa_alloc_scope) {
    auto *app = static_cast<recording_app_table *>(self);
    app->kept.push_back(allocate_in_callback(app->bookkeeping));
    void *p = nullptr;
    return posix_memalign(&p, std::max(alignment, sizeof(void *)), size) == 0 ? p : nullptr;
  }
  static void *realloc(void *, void *p, size_t size, size_t, mesa_alloc_scope) {
    return std::realloc(p, size);
  }
  static void free(void *, void *p) { std::free(p); }
  void forget_kept() {
    for (void *k : kept) bookkeeping->deallocate(k, 24);
    kept.clear();
  }
};

// Every block `bookkeeping` holds has a stack that starts in the callback, then reaches the C API
// call `call` it ran in; none starts at that call.
// Unoptimized, memory_resource::allocate is a frame before the callback. Returns the report.
std::string expect_stacks_start_in_the_callback(mesa::debug_resource &bookkeeping, std::size_t kept,
                                                const char *call) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(bookkeeping.report_leaks(), kept);
  const std::string out = testing::internal::GetCapturedStderr();
  std::size_t stacks = 0;
  for (std::size_t at = 0; (at = out.find("    #0 0x", at)) != std::string::npos; ++at) {
    ++stacks;
    const std::string stack = out.substr(at, out.find("mesa_alloc: ", at) - at);
    const std::size_t callback = stack.find("allocate_in_callback");
    EXPECT_NE(callback, std::string::npos) << out;
    if (callback == std::string::npos) continue;
    EXPECT_LT(callback, stack.find(call)) << out;
    EXPECT_EQ(stack.substr(0, stack.find('\n')).find(call), std::string::npos) << out;
  }
  EXPECT_EQ(stacks, kept) << out;
  return out;
}

// A C API call into `library`, a table of this library over `app`'s: the callback's own
// allocation starts at the callback, not at the C API call's caller.
void expect_the_callbacks_own_stack(const char *name, const mesa_allocator *library,
                                    recording_app_table &app) {
  SCOPED_TRACE(name);
  app.forget_kept();  // what making the library table allocated
  void *p = through_app_table(library);
  ASSERT_NE(p, nullptr);
  ASSERT_GE(app.kept.size(), 1u);  // the debug table's bookkeeping may come from the app too
  const std::string out =
      expect_stacks_start_in_the_callback(*app.bookkeeping, app.kept.size(), "through_app_table");
  EXPECT_NE(out.find("through_app_table"), std::string::npos) << out;
  mesa_free2(nullptr, library, p);
  app.forget_kept();
}

// The same under a table of this library over the application's (a driver's tracking table over
// the VkAllocationCallbacks it was given): the C API caller recorded for the call into the
// library table is set aside while that table calls the application's (a probe found the
// callback's stack cut to the driver's call).
TEST(DebugResourceC, AnApplicationCallbackUnderALibraryTableKeepsItsOwnStack) {
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  mesa::debug_resource bookkeeping(std::pmr::new_delete_resource(), o);
  recording_app_table app{&bookkeeping, {}};
  const std::string trace = testing::TempDir() + "/callback_under_library.trace";
  struct made {
    const char *name;
    const mesa_allocator *table;
    void (*destroy)(const mesa_allocator *);
  };
  mesa_debug_options checked;
  mesa_debug_options_init(&checked);
  checked.report_leaks_on_destroy = 0;
  for (const made &m : {
           made{"tracking", mesa_tracking_create(&app.table, "driver", nullptr),
                &mesa_tracking_destroy},
           made{"debug", mesa_debug_create(&app.table, &checked), &mesa_debug_destroy},
           made{"logging", mesa_logging_create(&app.table, trace.c_str(), 1),
                &mesa_logging_destroy},
           made{"fault", mesa_fault_create(&app.table), &mesa_fault_destroy},
           made{"validator", mesa_validator_create(&app.table), &mesa_validator_destroy},
       }) {
    ASSERT_NE(m.table, nullptr) << m.name;
    expect_the_callbacks_own_stack(m.name, m.table, app);
    m.destroy(m.table);
  }
  {
    mesa::callback_resource upstream(&app.table);
    mesa::tracking_resource tracker(&upstream, "driver");
    mesa::resource_callbacks table(&tracker);
    expect_the_callbacks_own_stack("resource_callbacks over tracking_resource", table.table(), app);
  }
  app.forget_kept();
}

// An application's table that records a block of bookkeeping at each free (a deferred-free
// log), every block kept until the test looks.
struct recording_free_app_table {
  mesa::debug_resource *bookkeeping;
  std::vector<void *> kept;
  mesa_allocator table{this, &alloc, &realloc, &free, nullptr, nullptr};
  static void *alloc(void *, size_t size, size_t alignment, mesa_alloc_scope) {
    void *p = nullptr;
    return posix_memalign(&p, std::max(alignment, sizeof(void *)), size) == 0 ? p : nullptr;
  }
  static void *realloc(void *self, void *p, size_t size, size_t, mesa_alloc_scope) {
    if (size != 0) return std::realloc(p, size);
    free(self, p);
    return nullptr;
  }
  static void free(void *self, void *p) {
    if (p == nullptr) return;
    auto *app = static_cast<recording_free_app_table *>(self);
    app->kept.push_back(allocate_in_callback(app->bookkeeping));
    std::free(p);
  }
  void forget_kept() {
    for (void *k : kept) bookkeeping->deallocate(k, 24);
    kept.clear();
  }
};

[[gnu::noinline]] void *free_by_realloc(const mesa_allocator *table, void *p) {
  void *r = mesa_realloc2(nullptr, table, p, 0, 8, MESA_ALLOC_SCOPE_OBJECT);
  __asm__ volatile("" ::: "memory");
  return r;
}

[[gnu::noinline]] void *grow_by_realloc(const mesa_allocator *table, void *p) {
  void *r = mesa_realloc2(nullptr, table, p, 1 << 16, 8, MESA_ALLOC_SCOPE_OBJECT);
  __asm__ volatile("" ::: "memory");
  return r;
}

// A free callback runs inside a C API call too: a realloc to size 0, or a growing realloc that
// moves the block and frees the old one. What it allocates keeps its own stack (a probe found
// the C API caller's, with the callback's frames dropped: the record was set aside only around
// the application's alloc and realloc).
TEST(DebugResourceC, AnApplicationsFreeCallbackKeepsItsOwnStack) {
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  mesa::debug_resource bookkeeping(std::pmr::new_delete_resource(), o);
  recording_free_app_table app{&bookkeeping, {}};
  const std::string trace = testing::TempDir() + "/free_callback_under_library.trace";
  mesa_debug_options checked;
  mesa_debug_options_init(&checked);
  checked.report_leaks_on_destroy = 0;
  struct made {
    const char *name;
    const mesa_allocator *table;
    void (*destroy)(const mesa_allocator *);
    bool moves;  // a growing realloc frees the old block through the application's table
  };
  for (const made &m : {
           made{"tracking", mesa_tracking_create(&app.table, "driver", nullptr),
                &mesa_tracking_destroy, true},
           made{"debug", mesa_debug_create(&app.table, &checked), &mesa_debug_destroy, true},
           made{"logging", mesa_logging_create(&app.table, trace.c_str(), 1), &mesa_logging_destroy,
                false},
           made{"fault", mesa_fault_create(&app.table), &mesa_fault_destroy, false},
           made{"validator", mesa_validator_create(&app.table), &mesa_validator_destroy, false},
       }) {
    SCOPED_TRACE(m.name);
    ASSERT_NE(m.table, nullptr);
    void *p = mesa_alloc2(nullptr, m.table, 24, 8, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    app.forget_kept();
    EXPECT_EQ(free_by_realloc(m.table, p), nullptr);
    ASSERT_GE(app.kept.size(), 1u);
    expect_stacks_start_in_the_callback(bookkeeping, app.kept.size(), "free_by_realloc");
    app.forget_kept();
    if (m.moves) {
      p = mesa_alloc2(nullptr, m.table, 24, 8, MESA_ALLOC_SCOPE_OBJECT);
      app.forget_kept();
      p = grow_by_realloc(m.table, p);
      ASSERT_NE(p, nullptr);
      ASSERT_GE(app.kept.size(), 1u);
      expect_stacks_start_in_the_callback(bookkeeping, app.kept.size(), "grow_by_realloc");
      mesa_free2(nullptr, m.table, p);
      app.forget_kept();
    }
    m.destroy(m.table);
    app.forget_kept();
  }
  {
    mesa::callback_resource upstream(&app.table);
    mesa::tracking_resource tracker(&upstream, "driver");
    mesa::resource_callbacks table(&tracker);
    void *p = mesa_alloc2(nullptr, table.table(), 24, 8, MESA_ALLOC_SCOPE_OBJECT);
    app.forget_kept();
    p = grow_by_realloc(table.table(), p);
    ASSERT_NE(p, nullptr);
    ASSERT_GE(app.kept.size(), 1u);
    expect_stacks_start_in_the_callback(bookkeeping, app.kept.size(), "grow_by_realloc");
    mesa_free2(nullptr, table.table(), p);
  }
  app.forget_kept();
}

// A debug table's error handler runs inside the C API call that found the error: what it
// allocates (a copy of the message it keeps) has its own stack, not the bad call's.
struct keeping_handler {
  mesa::debug_resource *bookkeeping;
  std::vector<void *> kept;
  static void handle(const mesa_debug_error *, void *self) {
    auto *h = static_cast<keeping_handler *>(self);
    h->kept.push_back(allocate_in_callback(h->bookkeeping));
  }
};

[[gnu::noinline]] void *realloc_a_foreign_pointer(const mesa_allocator *table, void *p) {
  void *r = mesa_realloc2(nullptr, table, p, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
  __asm__ volatile("" ::: "memory");
  return r;
}

TEST(DebugResourceC, AnErrorHandlerKeepsItsOwnStack) {
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  mesa::debug_resource bookkeeping(std::pmr::new_delete_resource(), o);
  keeping_handler handler{&bookkeeping, {}};
  mesa_debug_options checked;
  mesa_debug_options_init(&checked);
  checked.record_stacks = MESA_DEBUG_STACKS_FRAME_POINTERS;
  checked.report_leaks_on_destroy = 0;
  checked.handler = &keeping_handler::handle;
  checked.handler_context = &handler;
  const mesa_allocator *debug = mesa_debug_create(mesa_libc_allocator(), &checked);
  ASSERT_NE(debug, nullptr);
  alignas(16) static char not_a_block[64];
  EXPECT_EQ(realloc_a_foreign_pointer(debug, not_a_block + 16), nullptr);
  ASSERT_EQ(handler.kept.size(), 1u);
  expect_stacks_start_in_the_callback(bookkeeping, 1, "realloc_a_foreign_pointer");
  for (void *k : handler.kept) bookkeeping.deallocate(k, 24);
  mesa_debug_destroy(debug);
}

// realloc reads the old block's alignment from its header: a damaged header is reported as the
// underrun it is (as free() reports it), never trusted, and never mistaken for a foreign pointer.
TEST(DebugResourceCDeathTest, ReallocOfABlockWithADamagedHeaderReportsTheUnderrun) {
  for (const unsigned char written : {0x55, 0x00}) {  // the alignment field: nonsense, or zero
    EXPECT_DEATH(
        {
          const mesa_allocator *a = mesa_debug_create(nullptr, nullptr);
          auto *p = static_cast<unsigned char *>(
              mesa_alloc2(nullptr, a, 100, 8, MESA_ALLOC_SCOPE_OBJECT));
          for (int k = 29; k <= 32; ++k) p[-k] = written;
          (void)mesa_realloc2(nullptr, a, p, 200, 8, MESA_ALLOC_SCOPE_OBJECT);
        },
        "mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 100 allocation #1: the block header "
        "before the block was overwritten in the word at offsets -32..-25; block not released");
  }
}

TEST(DebugResourceC, TableChecksCFreesAndReallocs) {
  const mesa_allocator *a = mesa_debug_create(nullptr, nullptr);
  ASSERT_NE(a, nullptr);
  auto *p = static_cast<char *>(mesa_alloc2(nullptr, a, 10, 8, MESA_ALLOC_SCOPE_OBJECT));
  std::memcpy(p, "123456789", 10);
  p = static_cast<char *>(mesa_realloc2(nullptr, a, p, 5000, 256, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  EXPECT_STREQ(p, "123456789");
  EXPECT_EQ(mesa_debug_report_leaks(a), 1u);  // prints, does not abort
  mesa_free2(nullptr, a, p);
  EXPECT_EQ(mesa_debug_report_leaks(a), 0u);
  mesa_debug_destroy(a);
  mesa_debug_destroy(mesa_libc_allocator());  // not a debug table: ignored
  mesa_debug_options bad;
  mesa_debug_options_init(&bad);
  bad.guard = static_cast<mesa_debug_guard>(7);
  EXPECT_EQ(mesa_debug_create(nullptr, &bad), nullptr);
}

TEST(DebugResourceCDeathTest, DefaultBlockFreedThroughAnotherDebugTable) {
  EXPECT_DEATH(
      {
        // The default made a debug table (as MESA_ALLOC_DEBUG=cookie does), and another one.
        const mesa_allocator *as_default = mesa_debug_create(mesa_libc_allocator(), nullptr);
        mesa_set_default_allocator(as_default);
        const mesa_allocator *other = mesa_debug_create(mesa_libc_allocator(), nullptr);
        void *p = mesa_malloc(16);
        mesa_free2(nullptr, other, p);
      },
      "mesa_alloc: allocator mismatch at 0x[0-9a-f]+ size 16 allocation #1");
  EXPECT_DEATH(
      {
        const mesa_allocator *as_default = mesa_debug_create(mesa_libc_allocator(), nullptr);
        mesa_set_default_allocator(as_default);
        const mesa_allocator *other = mesa_debug_create(mesa_libc_allocator(), nullptr);
        void *p = mesa_alloc2(nullptr, other, 16, 8, MESA_ALLOC_SCOPE_OBJECT);
        mesa_free(p);
      },
      "mesa_alloc: allocator mismatch at 0x[0-9a-f]+ size 16 allocation #1");
}

}  // namespace
