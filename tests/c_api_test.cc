// The C API: every function on the default (libc) table and on a custom counting table, the
// vk_alloc2 fallback order, realloc semantics, overflow, alignments and zero sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <string>

#include "mesa_alloc/callback_validator.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/internal/default_from_environment.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/resource_callbacks.h"
#include "tests/support/counting_allocator.h"

namespace {

bool aligned_to(const void *p, std::size_t alignment) {
  return (reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) == 0;
}

// Installs a counting table as the default for one test and restores the previous one.
class DefaultIsCounting : public ::testing::Test {
 protected:
  void SetUp() override { previous_ = mesa_set_default_allocator(counting_.table()); }
  void TearDown() override {
    EXPECT_EQ(mesa_set_default_allocator(previous_), counting_.table());
    EXPECT_EQ(counting_.live(), 0) << "a test leaked through the default table";
  }
  test::counting_allocator counting_;
  const mesa_allocator *previous_ = nullptr;
};

TEST(CApi, LibcTableIsTheDefaultWithoutEnvironment) {
  EXPECT_EQ(mesa_default_allocator(), mesa_libc_allocator());
  const mesa_allocator *libc = mesa_libc_allocator();
  EXPECT_NE(libc->alloc_fn, nullptr);
  EXPECT_NE(libc->realloc_fn, nullptr);
  EXPECT_NE(libc->free_fn, nullptr);
  EXPECT_EQ(libc->internal_alloc_fn, nullptr);
  EXPECT_EQ(libc->internal_free_fn, nullptr);
}

TEST(CApi, SetDefaultReturnsPreviousAndNullRestoresLibc) {
  test::counting_allocator counting;
  EXPECT_EQ(mesa_set_default_allocator(counting.table()), mesa_libc_allocator());
  EXPECT_EQ(mesa_default_allocator(), counting.table());
  EXPECT_EQ(mesa_set_default_allocator(nullptr), counting.table());
  EXPECT_EQ(mesa_default_allocator(), mesa_libc_allocator());
}

// mesa_malloc/mesa_free jump through entry points that follow the default: to the table while
// a custom one is set, straight to libc again once it is restored.
TEST(CApi, MallocAndFreeFollowTheDefaultBothWays) {
  test::counting_allocator counting;
  const mesa_allocator *previous = mesa_set_default_allocator(counting.table());
  mesa_free(mesa_malloc(24));
  EXPECT_EQ(counting.allocations(), 1);
  EXPECT_EQ(counting.frees(), 1);
  mesa_set_default_allocator(previous);
  mesa_free(mesa_malloc(24));
  EXPECT_EQ(counting.allocations(), 1);
  EXPECT_EQ(counting.frees(), 1);
}

TEST_F(DefaultIsCounting, EveryFunctionGoesThroughTheDefault) {
  void *a = mesa_malloc(10);
  void *b = mesa_calloc(4, 8);
  void *c = mesa_aligned_alloc(256, 100);
  char *d = mesa_strdup("pipeline");
  char *e = mesa_strndup("shader cache", 6);
  EXPECT_EQ(counting_.allocations(), 5);
  EXPECT_EQ(counting_.last_alignment(), MESA_ALLOC_DEFAULT_ALIGNMENT);  // strndup: mesa_malloc
  for (int i = 0; i < 32; i++) EXPECT_EQ(static_cast<unsigned char *>(b)[i], 0);
  EXPECT_TRUE(aligned_to(c, 256));
  EXPECT_STREQ(d, "pipeline");
  EXPECT_STREQ(e, "shader");

  a = mesa_realloc(a, 1000);
  c = mesa_aligned_realloc(c, 5000, 256);
  EXPECT_TRUE(aligned_to(c, 256));
  EXPECT_EQ(counting_.reallocations(), 2);
  EXPECT_EQ(counting_.last_alignment(), 256u);

  mesa_free(a);
  mesa_free(b);
  mesa_free(c);
  mesa_free(d);
  mesa_free(e);
  mesa_free(nullptr);
  EXPECT_EQ(counting_.frees(), 5);
  EXPECT_EQ(counting_.live(), 0);
}

TEST_F(DefaultIsCounting, StrdupOfNullIsNull) {
  EXPECT_EQ(mesa_strdup(nullptr), nullptr);
  EXPECT_EQ(mesa_strndup(nullptr, 4), nullptr);
  EXPECT_EQ(counting_.allocations(), 0);
}

TEST_F(DefaultIsCounting, CallocOverflowIsNullWithoutCallingTheTable) {
  EXPECT_EQ(mesa_calloc(SIZE_MAX / 2 + 1, 2), nullptr);
  EXPECT_EQ(mesa_calloc(SIZE_MAX, SIZE_MAX), nullptr);
  EXPECT_EQ(counting_.allocations(), 0);
  EXPECT_EQ(counting_.failures(), 0);
  void *zero = mesa_calloc(0, SIZE_MAX);  // 0 × anything does not overflow
  EXPECT_NE(zero, nullptr);
  mesa_free(zero);
}

TEST_F(DefaultIsCounting, FailureReturnsNullAndReallocFailureKeepsOriginal) {
  counting_.fail_next(1);
  EXPECT_EQ(mesa_malloc(64), nullptr);
  char *p = static_cast<char *>(mesa_malloc(16));
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "0123456789abcde", 16);
  counting_.fail_next(1);
  EXPECT_EQ(mesa_realloc(p, 4096), nullptr);
  EXPECT_STREQ(p, "0123456789abcde");  // untouched and still owned
  mesa_free(p);
}

TEST(CApi, Alloc2FallbackOrder) {
  test::counting_allocator parent, object, fallback;
  const mesa_allocator *previous = mesa_set_default_allocator(fallback.table());

  void *p = mesa_alloc2(parent.table(), object.table(), 8, 8, MESA_ALLOC_SCOPE_COMMAND);
  EXPECT_EQ(object.allocations(), 1);
  EXPECT_EQ(parent.allocations(), 0);
  EXPECT_EQ(object.last_scope(), MESA_ALLOC_SCOPE_COMMAND);
  mesa_free2(parent.table(), object.table(), p);
  EXPECT_EQ(object.frees(), 1);

  p = mesa_alloc2(parent.table(), nullptr, 8, 8, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(parent.allocations(), 1);
  EXPECT_EQ(parent.last_scope(), MESA_ALLOC_SCOPE_DEVICE);
  p = mesa_realloc2(parent.table(), nullptr, p, 64, 8, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(parent.reallocations(), 1);
  mesa_free2(parent.table(), nullptr, p);
  EXPECT_EQ(parent.frees(), 1);

  p = mesa_zalloc2(nullptr, nullptr, 32, 16, MESA_ALLOC_SCOPE_INSTANCE);
  EXPECT_EQ(fallback.allocations(), 1);
  EXPECT_EQ(fallback.last_scope(), MESA_ALLOC_SCOPE_INSTANCE);
  for (int i = 0; i < 32; i++) EXPECT_EQ(static_cast<unsigned char *>(p)[i], 0);
  mesa_free2(nullptr, nullptr, p);
  EXPECT_EQ(fallback.frees(), 1);

  EXPECT_EQ(parent.live() + object.live() + fallback.live(), 0);
  mesa_set_default_allocator(previous);
}

TEST(CApi, ReallocSemanticsOnEveryAlignment) {
  const mesa_allocator *libc = mesa_libc_allocator();
  for (std::size_t alignment = 1; alignment <= 65536; alignment *= 2) {
    SCOPED_TRACE(alignment);
    // realloc(NULL) allocates.
    auto *p = static_cast<unsigned char *>(
        libc->realloc_fn(libc->user_data, nullptr, 100, alignment, MESA_ALLOC_SCOPE_OBJECT));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned_to(p, alignment));
    for (int i = 0; i < 100; i++) p[i] = static_cast<unsigned char>(i);
    // Growing keeps contents and alignment.
    p = static_cast<unsigned char *>(
        libc->realloc_fn(libc->user_data, p, 100000, alignment, MESA_ALLOC_SCOPE_OBJECT));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned_to(p, alignment));
    for (int i = 0; i < 100; i++) ASSERT_EQ(p[i], i);
    // Shrinking keeps the prefix.
    p = static_cast<unsigned char *>(
        libc->realloc_fn(libc->user_data, p, 10, alignment, MESA_ALLOC_SCOPE_OBJECT));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned_to(p, alignment));
    for (int i = 0; i < 10; i++) ASSERT_EQ(p[i], i);
    // Size 0 frees and returns NULL.
    EXPECT_EQ(libc->realloc_fn(libc->user_data, p, 0, alignment, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  }
}

TEST(CApi, AlignedAllocHonoursEveryPowerOfTwoUpTo64KiB) {
  for (std::size_t alignment = 1; alignment <= 65536; alignment *= 2) {
    void *p = mesa_aligned_alloc(alignment, 24);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned_to(p, alignment)) << alignment;
    std::memset(p, 0xab, 24);
    mesa_free(p);
  }
}

TEST(CApi, Realloc4096AlignedBlockStaysAlignedAndKeepsContents) {
  auto *p = static_cast<std::uint32_t *>(mesa_aligned_alloc(4096, 4096));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 1024; i++) p[i] = 0xdead0000u + i;
  p = static_cast<std::uint32_t *>(mesa_aligned_realloc(p, 1 << 20, 4096));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(aligned_to(p, 4096));
  for (int i = 0; i < 1024; i++) ASSERT_EQ(p[i], 0xdead0000u + i);
  mesa_free(p);
}

TEST(CApi, InvalidAlignmentIsNullNeverACrash) {
  test::counting_allocator counting;
  for (std::size_t bad :
       {std::size_t{0}, std::size_t{3}, std::size_t{24}, std::size_t{100}, SIZE_MAX}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(mesa_aligned_alloc(bad, 16), nullptr);
    EXPECT_EQ(mesa_alloc2(nullptr, counting.table(), 16, bad, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    const mesa_allocator *libc = mesa_libc_allocator();
    EXPECT_EQ(libc->alloc_fn(libc->user_data, 16, bad, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  }
  EXPECT_EQ(counting.allocations(), 0);  // rejected before the table is called
  void *p = mesa_malloc(8);
  EXPECT_EQ(mesa_aligned_realloc(p, 64, 48), nullptr);  // p untouched, still ours
  mesa_free(p);
}

TEST(CApi, InvalidAlignmentSaysWhyInDebugBuilds) {
#ifdef NDEBUG
  GTEST_SKIP() << "the message is printed in debug builds only";
#else
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_aligned_alloc(24, 16), nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: invalid alignment 24 in mesa_aligned_alloc"), std::string::npos)
      << err;
#endif
}

// The scope is what an application indexes its per-scope counters by: the *2 functions refuse
// one outside mesa_alloc_scope before the table sees it, as they refuse a bad alignment.
TEST(CApi, AScopeOutsideTheEnumIsNullAndNeverReachesTheTable) {
  test::counting_allocator counting;
  void *kept = mesa_alloc2(nullptr, counting.table(), 16, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(kept, nullptr);
  ::testing::internal::CaptureStderr();
  for (int bad : {-1, MESA_ALLOC_SCOPE_COUNT, 7, 1000}) {
    SCOPED_TRACE(bad);
    const auto scope = static_cast<mesa_alloc_scope>(bad);
    EXPECT_EQ(mesa_alloc2(nullptr, counting.table(), 16, 16, scope), nullptr);
    EXPECT_EQ(mesa_zalloc2(counting.table(), nullptr, 16, 16, scope), nullptr);
    EXPECT_EQ(mesa_realloc2(nullptr, counting.table(), kept, 64, 16, scope), nullptr);
    EXPECT_EQ(mesa_realloc2(nullptr, counting.table(), kept, 0, 16, scope), nullptr);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(counting.allocations(), 1);  // kept's only; `kept` is untouched and still live
  EXPECT_EQ(counting.reallocations(), 0);
#ifndef NDEBUG
  EXPECT_NE(err.find("mesa_alloc: invalid scope 7 in mesa_alloc2 (must be 0 to 4)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("mesa_alloc: invalid scope -1 in mesa_realloc2"), std::string::npos) << err;
#endif
  mesa_free2(nullptr, counting.table(), kept);
  EXPECT_EQ(counting.frees(), 1);
}

// Called directly (not through mesa_alloc2, which checks first), the tracking and debug tables
// refuse a bad alignment as loudly as the libc table does; an alignment too large for the
// tracking header is a counted failure.
TEST(CApi, TrackingAndDebugTablesSayWhyABadAlignmentFails) {
  const mesa_allocator *tracker = mesa_tracking_create(nullptr, "t", nullptr);
  const mesa_allocator *debug = mesa_debug_create(nullptr, nullptr);
  ASSERT_TRUE(tracker != nullptr && debug != nullptr);
  ::testing::internal::CaptureStderr();
  for (const mesa_allocator *t : {tracker, debug}) {
    EXPECT_EQ(t->alloc_fn(t->user_data, 16, 24, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    void *p = t->alloc_fn(t->user_data, 16, 16, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(t->realloc_fn(t->user_data, p, 64, 3, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    t->free_fn(t->user_data, p);  // untouched by the refused realloc
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  // 2^33 (on 32-bit targets 2^31, the largest alignment a size_t holds).
  const auto huge = static_cast<std::size_t>(
      std::min<std::uint64_t>(std::uint64_t{1} << 33, (SIZE_MAX >> 1) + 1));
  EXPECT_EQ(tracker->alloc_fn(tracker->user_data, 16, huge, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_tracking_stats stats;
  ASSERT_EQ(mesa_tracking_get_stats(tracker, &stats), 1);
  EXPECT_EQ(stats.failed_allocations, 1u);
  EXPECT_EQ(stats.bytes_in_use, 0u);
  mesa_debug_destroy(debug);
  mesa_tracking_destroy(tracker);
#ifndef NDEBUG
  for (const char *where : {"24 in mesa_tracking alloc", "3 in mesa_tracking realloc",
                            "24 in mesa_debug alloc", "3 in mesa_debug realloc"}) {
    EXPECT_NE(err.find(std::string("mesa_alloc: invalid alignment ") + where), std::string::npos)
        << where << "\n"
        << err;
  }
#endif
}

// A parent_tracker that is not a tracking table is refused with a line, as every other refused
// create is (an API probe found it the one silent NULL).
TEST(CApi, AParentTrackerThatIsNoTrackingTableIsRefusedWithALine) {
  const mesa_allocator *debug = mesa_debug_create(nullptr, nullptr);
  ASSERT_NE(debug, nullptr);
  for (const mesa_allocator *not_a_tracker : {mesa_libc_allocator(), debug}) {
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(mesa_tracking_create(nullptr, "child", not_a_tracker), nullptr);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("mesa_alloc: mesa_tracking_create: parent_tracker 0x"), std::string::npos)
        << err;
    EXPECT_NE(err.find("is not a tracking table"), std::string::npos) << err;
  }
  mesa_debug_destroy(debug);
}

// A table missing a function is refused where it is handed over, naming the function, instead
// of crashing at its first call (pc 0).
TEST(CApi, IncompleteTablesAreRefusedWhereTheyAreHandedOver) {
  mesa_allocator no_realloc = *mesa_libc_allocator();
  no_realloc.realloc_fn = nullptr;
  const mesa_allocator empty = {};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_set_default_allocator(&empty), mesa_libc_allocator()) << "the default stays";
  EXPECT_EQ(mesa_default_allocator(), mesa_libc_allocator());
  EXPECT_EQ(mesa_tracking_create(&no_realloc, "t", nullptr), nullptr);
  EXPECT_EQ(mesa_debug_create(&no_realloc, nullptr), nullptr);
  EXPECT_EQ(mesa_fault_create(&no_realloc), nullptr);
  EXPECT_EQ(mesa_logging_create(&no_realloc, "/dev/null", 0), nullptr);
  EXPECT_EQ(mesa_arena_create(&no_realloc), nullptr);
  EXPECT_EQ(mesa_pool_create(&no_realloc), nullptr);
  EXPECT_EQ(mesa_synchronized_pool_create(&no_realloc), nullptr);
  EXPECT_EQ(mesa_slab_create(&no_realloc, 32), nullptr);
  EXPECT_EQ(mesa_slab_parent_create(&no_realloc, 32), nullptr);
  EXPECT_EQ(mesa_validator_create(&no_realloc), nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: mesa_set_default_allocator: the table has no alloc_fn (alloc_fn, "
                     "realloc_fn and free_fn are required)"),
            std::string::npos)
      << err;
  for (const char *where :
       {"mesa_tracking_create", "mesa_debug_create", "mesa_fault_create", "mesa_logging_create",
        "mesa_arena_create", "mesa_pool_create", "mesa_synchronized_pool_create",
        "mesa_slab_create", "mesa_slab_parent_create", "mesa_validator_create"}) {
    EXPECT_NE(err.find(std::string("mesa_alloc: ") + where + ": the table has no realloc_fn"),
              std::string::npos)
        << where << "\n"
        << err;
  }
}

// A table passed per call (the pAllocator of a vkCreate*) is checked at the call: a missing
// function is reported, naming it, and the call fails (NULL; a free does nothing) instead of
// jumping to address 0.
TEST(CApi, IncompleteTablePassedPerCallIsReportedNotCalled) {
  mesa_allocator no_alloc = *mesa_libc_allocator();
  no_alloc.alloc_fn = nullptr;
  mesa_allocator no_realloc = *mesa_libc_allocator();
  no_realloc.realloc_fn = nullptr;
  mesa_allocator no_free = *mesa_libc_allocator();
  no_free.free_fn = nullptr;
  void *block = mesa_malloc(16);
  ASSERT_NE(block, nullptr);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_alloc2(nullptr, &no_alloc, 16, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_zalloc2(&no_alloc, nullptr, 16, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_realloc2(nullptr, &no_realloc, nullptr, 16, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_free2(nullptr, &no_free, block);  // reported; the block is left alone
  const std::string err = ::testing::internal::GetCapturedStderr();
  for (const char *line : {"mesa_alloc: mesa_alloc2: the table has no alloc_fn",
                           "mesa_alloc: mesa_zalloc2: the table has no alloc_fn",
                           "mesa_alloc: mesa_realloc2: the table has no realloc_fn",
                           "mesa_alloc: mesa_free2: the table has no free_fn"}) {
    EXPECT_NE(err.find(line), std::string::npos) << line << "\n" << err;
  }
  mesa_free(block);
  ::testing::internal::CaptureStderr();
  mesa_free2(nullptr, &no_free, nullptr);  // freeing NULL is always legal: nothing to report
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

// No size over PTRDIFF_MAX reaches malloc from a table: glibc fails it, but AddressSanitizer's
// malloc aborts the process on it (allocation-size-too-big), so under --config=asan this test
// died before the libc and tracking tables refused such sizes themselves (review probe).
TEST(CApi, SizesOverPtrdiffMaxFailWithoutReachingMalloc) {
  const mesa_allocator *libc = mesa_libc_allocator();
  for (const std::size_t size : {SIZE_MAX, SIZE_MAX - 8, std::size_t{PTRDIFF_MAX} + 1}) {
    SCOPED_TRACE(size);
    EXPECT_EQ(libc->alloc_fn(libc->user_data, size, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    EXPECT_EQ(libc->alloc_fn(libc->user_data, size, 64, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    EXPECT_EQ(mesa_alloc2(nullptr, libc, size, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    const mesa_allocator *previous = mesa_set_default_allocator(libc);
    EXPECT_EQ(mesa_calloc(1, size), nullptr);
    mesa_set_default_allocator(previous);
    void *p = mesa_alloc2(nullptr, libc, 16, 8, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(libc->realloc_fn(libc->user_data, p, size, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    EXPECT_EQ(libc->realloc_fn(libc->user_data, p, size, 64, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    mesa_free2(nullptr, libc, p);  // still live: a failed realloc leaves it

    const mesa_allocator *tracker = mesa_tracking_create(libc, "big", nullptr);
    ASSERT_NE(tracker, nullptr);
    EXPECT_EQ(mesa_alloc2(nullptr, tracker, size, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    mesa_tracking_stats stats;
    ASSERT_EQ(mesa_tracking_get_stats(tracker, &stats), 1);
    EXPECT_EQ(stats.failed_allocations, 1u);
    mesa_tracking_destroy(tracker);
  }
}

// The C API's own refusals and the libc table fail as libc does, with errno set: ENOMEM for a
// size no block can have or a count × size that overflows, EINVAL for an invalid alignment or
// scope (a drop-in probe: the first MALLOC of a process, which goes through the libc table,
// left errno at 0, and later ones, straight to malloc, set it).
TEST(CApi, FailuresSetErrnoAsLibcDoes) {
  const mesa_allocator *libc = mesa_libc_allocator();
  const mesa_allocator *previous = mesa_set_default_allocator(libc);
  const auto errno_after = [](auto call) {
    errno = 0;
    EXPECT_EQ(call(), nullptr);
    return errno;
  };
  EXPECT_EQ(
      errno_after([&] { return libc->alloc_fn(nullptr, SIZE_MAX, 16, MESA_ALLOC_SCOPE_OBJECT); }),
      ENOMEM);
  EXPECT_EQ(
      errno_after([&] { return libc->alloc_fn(nullptr, SIZE_MAX, 64, MESA_ALLOC_SCOPE_OBJECT); }),
      ENOMEM);
  EXPECT_EQ(errno_after([] { return mesa_calloc(SIZE_MAX, 2); }), ENOMEM);
  EXPECT_EQ(errno_after([] { return mesa_calloc(1, SIZE_MAX); }), ENOMEM);
  EXPECT_EQ(errno_after([] { return mesa_realloc(nullptr, SIZE_MAX); }), ENOMEM);
  volatile std::size_t three = 3;  // clang refuses a constant bad alignment
  EXPECT_EQ(errno_after([&] { return mesa_aligned_alloc(three, 8); }), EINVAL);
  EXPECT_EQ(errno_after([&] { return libc->alloc_fn(nullptr, 8, three, MESA_ALLOC_SCOPE_OBJECT); }),
            EINVAL);
  volatile int seven = 7;
  EXPECT_EQ(errno_after([&] {
              return mesa_alloc2(nullptr, nullptr, 8, 8, static_cast<mesa_alloc_scope>(seven));
            }),
            EINVAL);
  mesa_set_default_allocator(previous);
}

// Every failure of the C API's allocating functions sets errno, whichever table refused: the
// library's own layers (a budget, an injected fault, the debug layer's size limit) as libc would
// (ENOMEM), and a table passed per call without the function the call needs (EINVAL). (A
// review: under MESA_ALLOC_DEBUG errno stayed 0.)
TEST(CApi, FailuresThroughTheLibrarysTablesSetErrno) {
  const auto errno_after = [](auto call) {
    errno = 0;
    EXPECT_EQ(call(), nullptr);
    return errno;
  };
  const mesa_allocator *limited = mesa_tracking_create(nullptr, "limited", nullptr);
  const mesa_allocator *fault = mesa_fault_create(nullptr);
  const mesa_allocator *debug = mesa_debug_create(nullptr, nullptr);
  ASSERT_TRUE(limited != nullptr && fault != nullptr && debug != nullptr);
  mesa_tracking_set_limit(limited, 1024);
  ::testing::internal::CaptureStderr();  // the limit's refusal line
  const mesa_allocator *previous = mesa_set_default_allocator(limited);
  EXPECT_EQ(errno_after([] { return mesa_malloc(4096); }), ENOMEM);
  EXPECT_EQ(errno_after([] { return mesa_calloc(64, 64); }), ENOMEM);
  void *small = mesa_malloc(16);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(errno_after([&] { return mesa_realloc(small, 4096); }), ENOMEM);
  mesa_free(small);
  mesa_set_default_allocator(fault);
  mesa_fault_fail_nth(fault, 0);
  EXPECT_EQ(errno_after([] { return mesa_strdup("injected"); }), ENOMEM);
  // A realloc of NULL to 0 allocates (one byte): a refusal is a failure, not a free's NULL (a
  // fuzz probe: errno stayed 0).
  mesa_fault_fail_from(fault, 0);
  EXPECT_EQ(errno_after([] { return mesa_realloc(nullptr, 0); }), ENOMEM);
  EXPECT_EQ(errno_after([] { return mesa_aligned_realloc(nullptr, 0, 64); }), ENOMEM);
  EXPECT_EQ(errno_after([&] {
              return mesa_realloc2(nullptr, fault, nullptr, 0, 16, MESA_ALLOC_SCOPE_OBJECT);
            }),
            ENOMEM);
  mesa_fault_fail_none(fault);
  mesa_set_default_allocator(debug);
  EXPECT_EQ(errno_after([] { return mesa_malloc(SIZE_MAX / 2); }), ENOMEM);
  mesa_set_default_allocator(previous);
  errno = 0;
  void *freed = mesa_realloc(mesa_malloc(8), 0);  // a free: its NULL is no failure
  EXPECT_EQ(freed, nullptr);
  EXPECT_EQ(errno, 0);
  const mesa_allocator no_alloc = {
      nullptr, nullptr, mesa_libc_allocator()->realloc_fn, mesa_libc_allocator()->free_fn,
      nullptr, nullptr};
  EXPECT_EQ(
      errno_after([&] { return mesa_alloc2(nullptr, &no_alloc, 8, 8, MESA_ALLOC_SCOPE_OBJECT); }),
      EINVAL);
  ::testing::internal::GetCapturedStderr();
  mesa_debug_destroy(debug);
  mesa_fault_destroy(fault);
  mesa_tracking_destroy(limited);
}

// A free through a table that checks block headers, of a pointer into read-only memory (a name
// that is sometimes a string literal, freed by mistake), is reported and left alone: the header
// is read before it is claimed (a review: the claim's compare-and-swap faulted on the page).
TEST(CApi, AFreeOfReadOnlyMemoryIsReportedNotAFault) {
  static const char kLiteral[96] = "a name that is sometimes a literal";
  void *inside = const_cast<char *>(kLiteral) + 32;
  const mesa_allocator *tracking = mesa_tracking_create(nullptr, "t", nullptr);
  ASSERT_NE(tracking, nullptr);
  mesa::resource_callbacks callbacks(std::pmr::new_delete_resource());
  ::testing::internal::CaptureStderr();
  tracking->free_fn(tracking->user_data, inside);
  EXPECT_EQ(tracking->realloc_fn(tracking->user_data, inside, 64, 16, MESA_ALLOC_SCOPE_OBJECT),
            nullptr);
  callbacks.table()->free_fn(callbacks.table()->user_data, inside);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: allocator mismatch at"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid free"), std::string::npos) << err;
  mesa_tracking_destroy(tracking);
}

// mesa_calloc and mesa_zalloc2 on the libc table are libc's calloc: a large zeroed block comes
// from fresh pages that nothing touches, so it costs no resident memory until used (malloc and
// memset made 256 MiB resident at once, a drop-in probe found).
TEST(CApi, LargeCallocOnLibcLeavesItsPagesUntouched) {
  const auto resident_bytes = [] {
    long pages = 0, resident = 0;
    std::FILE *statm = std::fopen("/proc/self/statm", "r");
    if (statm == nullptr) return -1L;
    const int read = std::fscanf(statm, "%ld %ld", &pages, &resident);
    std::fclose(statm);
    return read == 2 ? resident * 4096 : -1L;
  };
  if (resident_bytes() < 0) GTEST_SKIP() << "no /proc/self/statm";
  // glibc's calloc writes every byte when MALLOC_PERTURB_ is set (meson test sets it), and so
  // does ThreadSanitizer's.
  if (std::getenv("MALLOC_PERTURB_") != nullptr) GTEST_SKIP() << "MALLOC_PERTURB_ is set";
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer's calloc writes every byte";
#endif
  const mesa_allocator *previous = mesa_set_default_allocator(mesa_libc_allocator());
  constexpr std::size_t kBytes = std::size_t{256} << 20;
  const long before = resident_bytes();
  auto *zeroed = static_cast<unsigned char *>(mesa_calloc(1, kBytes));
  auto *zeroed2 = static_cast<unsigned char *>(
      mesa_zalloc2(nullptr, nullptr, kBytes, 8, MESA_ALLOC_SCOPE_OBJECT));
  const long after = resident_bytes();
  ASSERT_NE(zeroed, nullptr);
  ASSERT_NE(zeroed2, nullptr);
  EXPECT_LT(after - before, 32L << 20)
      << "a zeroed 2 x 256 MiB made " << (after - before) << " bytes resident";
  EXPECT_EQ(zeroed[0] | zeroed[kBytes / 2] | zeroed[kBytes - 1], 0);
  EXPECT_EQ(zeroed2[0] | zeroed2[kBytes / 2] | zeroed2[kBytes - 1], 0);
  mesa_free(zeroed);
  mesa_free(zeroed2);
  mesa_set_default_allocator(previous);
}

// The C functions that write through a pointer argument say so when it is NULL, instead of
// crashing; print functions take NULL for stderr, and the validator's format NULL for size 0.
TEST(CApi, NullOutputArgumentsAreReportedNotWrittenThrough) {
  const mesa_allocator *t = mesa_tracking_create(nullptr, "t", nullptr);
  ASSERT_NE(t, nullptr);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_tracking_get_stats(t, nullptr), 0);
  EXPECT_EQ(mesa_tracking_get_stats(mesa_libc_allocator(), nullptr), 0);
  mesa_debug_options_init(nullptr);
  mesa_tracking_print_report(t, nullptr);
  mesa_tracking_print_json(t, nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: mesa_tracking_get_stats: stats is NULL\n"), std::string::npos)
      << err;
  EXPECT_NE(err.find("mesa_alloc: mesa_debug_options_init: options is NULL\n"), std::string::npos)
      << err;
  EXPECT_NE(err.find("\"name\":\"t\""), std::string::npos) << err;  // the JSON, on stderr
  mesa_tracking_destroy(t);
}

// A driver sets its default to the application's table: MESA_ALLOC_DEBUG's layers stay over libc
// (over the application's table they would hold its memory past vkDestroyInstance), and a line
// says they are no longer the default. It used to be silent: a leaking run printed no leak
// report and an all-zero statistics table (found by a review that built a mock ICD).
void set_the_application_table_as_default() {
  setenv("MESA_ALLOC_DEBUG", "leaks", 1);
  static test::counting_allocator app;  // outlives the exit reports
  mesa_set_default_allocator(app.table());
  mesa_free(mesa_malloc(40));
  std::fprintf(stderr, "the application's table made %ld blocks\n", app.allocations());
  std::exit(0);
}

TEST(CApiDeathTest, ReplacingTheDebugLayersAsTheDefaultIsSaid) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: MESA_ALLOC_DEBUG is read
  EXPECT_EXIT(set_the_application_table_as_default(), testing::ExitedWithCode(0),
              "mesa_alloc: mesa_set_default_allocator: MESA_ALLOC_DEBUG's layers are no longer "
              "the default; the new default goes through them only if it was made over them\n"
              "the application's table made 1 blocks\n");
}

// Setting the default it already has (a second instance of the same driver) says nothing.
void set_the_same_default_again() {
  setenv("MESA_ALLOC_DEBUG", "cookie", 1);
  std::fprintf(stderr, "before\n");
  mesa_set_default_allocator(mesa_default_allocator());
  std::fprintf(stderr, "after\n");
  std::exit(0);
}

TEST(CApiDeathTest, SettingTheSameDefaultAgainSaysNothing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(set_the_same_default_again(), testing::ExitedWithCode(0), "before\nafter\n");
}

// A set-user-ID (or set-group-ID, or file-capability) process ignores MESA_ALLOC_DEBUG and says
// so: trace=FILE let whoever ran it truncate and write any file with its privileges (a probe
// overwrote a root-only file through a setuid program that calls mesa_malloc once).
TEST(CApi, MesaAllocDebugIsIgnoredInSecureExecution) {
  const char *saved = std::getenv("MESA_ALLOC_DEBUG");
  const std::string previous = saved != nullptr ? saved : "";
  setenv("MESA_ALLOC_DEBUG", "trace=/etc/not_for_a_user", 1);
  testing::internal::CaptureStderr();
  EXPECT_EQ(mesa::internal::debug_words_from_environment(true), nullptr);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: MESA_ALLOC_DEBUG ignored: this process runs set-user-ID, set-group-ID or "
            "with file capabilities (secure execution), where trace=FILE would write a file the "
            "user who ran it may not\n");
  EXPECT_STREQ(mesa::internal::debug_words_from_environment(false), "trace=/etc/not_for_a_user");
  if (saved != nullptr) {
    setenv("MESA_ALLOC_DEBUG", previous.c_str(), 1);
  } else {
    unsetenv("MESA_ALLOC_DEBUG");
  }
}

// A block freed or reallocated through a tracking table that did not make it is reported and
// left alone: neither table's counts or budget move (the budget used to be uncharged by the
// foreign block's size, letting the limited table grant more than its limit).
TEST(CApi, TrackingTableRefusesBlocksOfAnotherTable) {
  const mesa_allocator *a = mesa_tracking_create(nullptr, "a", nullptr);
  const mesa_allocator *b = mesa_tracking_create(nullptr, "b", nullptr);
  ASSERT_TRUE(a != nullptr && b != nullptr);
  mesa_tracking_set_limit(b, 1000);
  void *in_b = mesa_alloc2(nullptr, b, 600, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *in_a = mesa_alloc2(nullptr, a, 500, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_TRUE(in_a != nullptr && in_b != nullptr);
  ::testing::internal::CaptureStderr();
  mesa_free2(nullptr, b, in_a);
  EXPECT_EQ(mesa_realloc2(nullptr, b, in_a, 700, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: allocator mismatch at 0x"), std::string::npos) << err;
  EXPECT_NE(err.find(": freed through tracking table 'b', which did not allocate it (or freed it "
                     "already); the block is left alone"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(": reallocated through tracking table 'b'"), std::string::npos) << err;
  mesa_tracking_stats sa, sb;
  ASSERT_EQ(mesa_tracking_get_stats(a, &sa), 1);
  ASSERT_EQ(mesa_tracking_get_stats(b, &sb), 1);
  EXPECT_EQ(sa.bytes_in_use, 500u);
  EXPECT_EQ(sb.bytes_in_use, 600u);
  EXPECT_EQ(mesa_alloc2(nullptr, b, 800, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr) << "over budget";
  mesa_free2(nullptr, a, in_a);  // still a's, intact
  mesa_free2(nullptr, b, in_b);
  ASSERT_EQ(mesa_tracking_get_stats(a, &sa), 1);
  ASSERT_EQ(mesa_tracking_get_stats(b, &sb), 1);
  EXPECT_EQ(sa.bytes_in_use, 0u);
  EXPECT_EQ(sb.bytes_in_use, 0u);
  mesa_tracking_destroy(b);
  mesa_tracking_destroy(a);
}

TEST(CApi, ZeroSizeIsAUniqueFreeableBlockEverywhere) {
  test::counting_allocator counting;
  void *a = mesa_malloc(0);
  void *b = mesa_malloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  mesa_free(a);
  mesa_free(b);
  void *c = mesa_aligned_alloc(4096, 0);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(aligned_to(c, 4096));
  mesa_free(c);
  void *d = mesa_alloc2(nullptr, counting.table(), 0, 64, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(d, nullptr);
  mesa_free2(nullptr, counting.table(), d);
  EXPECT_EQ(counting.live(), 0);
  // realloc to size 0 frees and returns NULL; mesa_realloc follows the Vulkan rule.
  void *e = mesa_malloc(32);
  EXPECT_EQ(mesa_realloc(e, 0), nullptr);
}

}  // namespace
