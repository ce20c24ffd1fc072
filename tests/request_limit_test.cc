// No mesa_alloc resource or table hands a size near SIZE_MAX to a std::pmr upstream it does not
// know. libstdc++ 12's std::pmr::new_delete_resource() rounds such a size up to 0 and returns a
// tiny block, so a wrapped size (`a - b` with b > a) would "succeed" and the caller would write
// past the block. Every layer here sits on new_delete_resource() and must refuse instead.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/logging_resource.h"
#include "mesa_alloc/pool_resource.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/slab_parent.h"
#include "mesa_alloc/slab_resource.h"
#include "mesa_alloc/synchronized_pool_resource.h"
#include "mesa_alloc/tracking_resource.h"
#include "tests/test_resources.h"

namespace {

std::pmr::memory_resource *heap() { return std::pmr::new_delete_resource(); }

// Sizes a wrapped subtraction gives, each within some alignment of SIZE_MAX.
constexpr std::size_t kWrappedSizes[] = {SIZE_MAX, SIZE_MAX - 8, SIZE_MAX - 100};
constexpr std::size_t kAlignments[] = {8, 16, 128};

struct null_sink final : mesa::trace_sink {
  int failed = 0;
  void write_event(const mesa::trace_event &e) noexcept override {
    failed += e.op == mesa::trace_op::failed;
  }
  void write_site(std::uint32_t, const char *, std::size_t) noexcept override {}
};

// The top bit: no block can have it. Read at run time: clang refuses to compile a call whose
// constant alignment is that large (-Wbuiltin-assume-aligned-alignment).
std::size_t huge_alignment() { return mesa_test::unseen((SIZE_MAX >> 1) + 1); }

// Also an alignment of 2^63 (2^31 on 32-bit targets), which glibc fails but ASan's allocator aborts
// on (a failed CHECK).
void expect_refuses_wrapped_sizes(std::pmr::memory_resource &resource, const std::string &name) {
  for (std::size_t bytes : kWrappedSizes) {
    for (std::size_t alignment : kAlignments) {
      EXPECT_THROW((void)resource.allocate(bytes, alignment), std::bad_alloc)
          << name << ": " << bytes << " bytes @" << alignment;
    }
  }
  EXPECT_THROW((void)resource.allocate(16, huge_alignment()), std::bad_alloc) << name << " @2^63";
}

TEST(RequestLimit, EveryResourceOverNewDeleteRefusesWrappedSizes) {
  mesa::tracking_resource tracking(heap(), "tracking");
  expect_refuses_wrapped_sizes(tracking, "tracking_resource");
  EXPECT_EQ(tracking.stats().failed_allocations, 10u);
  EXPECT_EQ(tracking.stats().bytes_in_use, 0u);

  mesa::debug_resource debug(heap());
  expect_refuses_wrapped_sizes(debug, "debug_resource");

  null_sink sink;
  mesa::logging_resource logging(heap(), &sink);
  expect_refuses_wrapped_sizes(logging, "logging_resource");
  EXPECT_EQ(sink.failed, 10) << "each refusal is logged as a failed allocation";

  mesa::fault_resource fault(heap());
  expect_refuses_wrapped_sizes(fault, "fault_resource");
  EXPECT_EQ(fault.failures(), 0u) << "refused, not injected";

  mesa::arena_resource arena(heap());
  expect_refuses_wrapped_sizes(arena, "arena_resource");
  mesa::pool_resource pool(heap());
  expect_refuses_wrapped_sizes(pool, "pool_resource");
  mesa::synchronized_pool_resource synchronized_pool(heap());
  expect_refuses_wrapped_sizes(synchronized_pool, "synchronized_pool_resource");
  mesa::slab_resource slab(heap(), 64);
  expect_refuses_wrapped_sizes(slab, "slab_resource");
  mesa::slab_parent parent(heap(), 64);
  mesa::slab_child child(&parent);
  expect_refuses_wrapped_sizes(child, "slab_child");
}

// An alignment that is not a power of two breaks the pmr contract; the layers that exist to
// catch misuse refuse it (std::bad_alloc) instead of passing it on, where glibc fails some and
// ASan's allocator aborts on them, and alignment 0 succeeded under ASan only.
// Counts every call, failed ones too (glibc fails some of these alignments itself), and those
// over PTRDIFF_MAX; refuses (std::bad_alloc) every request of 1 GiB or more.
struct call_counting_resource final : std::pmr::memory_resource {
  int calls = 0;
  int over_limit = 0;
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    ++calls;
    if (bytes > PTRDIFF_MAX) ++over_limit;
    if (bytes >= (std::size_t{1} << 30)) throw std::bad_alloc();
    return heap()->allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    heap()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }
};

TEST(RequestLimit, EveryLayerRefusesAnAlignmentThatIsNotAPowerOfTwo) {
  call_counting_resource upstream;
  null_sink sink;
  mesa::tracking_resource tracking(&upstream, "tracking");
  mesa::debug_resource debug(&upstream);
  mesa::logging_resource logging(&upstream, &sink);
  mesa::fault_resource fault(&upstream);
  mesa::arena_resource arena(&upstream);
  mesa::pool_resource pool(&upstream);
  mesa::synchronized_pool_resource synchronized_pool(&upstream);
  const std::pair<std::pmr::memory_resource *, const char *> layers[] = {
      {&tracking, "tracking_resource"},
      {&debug, "debug_resource"},
      {&logging, "logging_resource"},
      {&fault, "fault_resource"},
      {&arena, "arena_resource"},
      {&pool, "pool_resource"},
      {&synchronized_pool, "synchronized_pool_resource"}};
  const int before = upstream.calls;
  for (const auto &[layer, name] : layers) {
    for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{24}}) {
      EXPECT_THROW((void)layer->allocate(64, mesa_test::unseen(alignment)), std::bad_alloc)
          << name << " @" << alignment;
    }
  }
  EXPECT_EQ(upstream.calls, before) << "a refused request reached the upstream";
  EXPECT_EQ(tracking.stats().failed_allocations, 3u);
  EXPECT_EQ(sink.failed, 3);
  EXPECT_EQ(fault.failures(), 0u) << "refused, not injected";

  // Over a C table (direct_upstream calls it without the pmr layer in between) the same.
  mesa_test::counting_table table;
  table.fail_after = 1000;  // counts down on every call of its alloc_fn
  mesa::callback_resource callbacks(&table.table);
  mesa::tracking_resource over_table(&callbacks, "over a table");
  EXPECT_THROW((void)over_table.allocate(64, mesa_test::unseen(24)), std::bad_alloc);
  EXPECT_EQ(table.fail_after, 1000) << "the table was called";
}

// Sizes at and just under PTRDIFF_MAX pass the checks against a wrap, and a layer that adds its
// header to them goes over: none may reach the upstream (the arena's blocks of their own did).
TEST(RequestLimit, NoResourceAsksItsUpstreamForMoreThanPtrdiffMax) {
  call_counting_resource upstream;
  null_sink sink;
  mesa::tracking_resource tracking(&upstream, "tracking");
  mesa::debug_resource debug(&upstream);
  mesa::logging_resource logging(&upstream, &sink);
  mesa::fault_resource fault(&upstream);
  mesa::arena_resource arena(&upstream);
  mesa::pool_resource pool(&upstream);
  mesa::synchronized_pool_resource synchronized_pool(&upstream);
  mesa::slab_resource slab(&upstream, 64);
  mesa::slab_parent parent(&upstream, 64);
  mesa::slab_child child(&parent);
  const std::pair<std::pmr::memory_resource *, const char *> layers[] = {
      {&tracking, "tracking_resource"},
      {&debug, "debug_resource"},
      {&logging, "logging_resource"},
      {&fault, "fault_resource"},
      {&arena, "arena_resource"},
      {&pool, "pool_resource"},
      {&synchronized_pool, "synchronized_pool_resource"},
      {&slab, "slab_resource"},
      {&child, "slab_child"}};
  const std::size_t limit = PTRDIFF_MAX;
  for (const auto &[layer, name] : layers) {
    for (std::size_t bytes : {limit, limit - 100, limit / 2 + limit / 4}) {
      for (std::size_t alignment : {std::size_t{16}, std::size_t{4096}}) {
        EXPECT_THROW((void)layer->allocate(mesa_test::unseen(bytes), alignment), std::bad_alloc)
            << name << ": " << bytes << " bytes @" << alignment;
        EXPECT_EQ(upstream.over_limit, 0) << name << ": " << bytes << " bytes @" << alignment;
        upstream.over_limit = 0;
      }
    }
  }
}

TEST(RequestLimit, CTableOverNewDeleteReturnsNull) {
  mesa::resource_callbacks callbacks(heap());
  const mesa_allocator *t = callbacks.table();
  void *small = t->alloc_fn(t->user_data, 32, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(small, nullptr);
  for (std::size_t bytes : kWrappedSizes) {
    for (std::size_t alignment : kAlignments) {
      EXPECT_EQ(t->alloc_fn(t->user_data, bytes, alignment, MESA_ALLOC_SCOPE_OBJECT), nullptr)
          << bytes << " bytes @" << alignment;
      EXPECT_EQ(t->realloc_fn(t->user_data, small, bytes, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr)
          << "realloc to " << bytes;
    }
  }
  t->free_fn(t->user_data, small);  // untouched by the failed reallocs
}

// An alignment no block can have (2^63) is refused by the C tables too, not wrapped into a
// small header (resource_callbacks' header is the alignment itself).
TEST(RequestLimit, CTablesRefuseAnAlignmentNoBlockCanHave) {
  const mesa_allocator *libc = mesa_libc_allocator();
  EXPECT_EQ(libc->alloc_fn(libc->user_data, 16, huge_alignment(), MESA_ALLOC_SCOPE_OBJECT),
            nullptr);
  mesa::resource_callbacks callbacks(heap());
  const mesa_allocator *t = callbacks.table();
  EXPECT_EQ(t->alloc_fn(t->user_data, 16, huge_alignment(), MESA_ALLOC_SCOPE_OBJECT), nullptr);
}

}  // namespace
