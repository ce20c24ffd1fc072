#include "mesa_alloc/pool_resource.h"

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/pool_parts.h"
#include "mesa_alloc/slab_parent.h"
#include "mesa_alloc/slab_resource.h"
#include "mesa_alloc/synchronized_pool_resource.h"
#include "mesa_alloc/tracking_resource.h"
#include "tests/test_resources.h"

namespace {

using mesa_test::counting_resource;
using mesa_test::is_aligned;
using mesa_test::stderr_of;

TEST(PoolSizeClasses, EverySizeMapsToTheSmallestClassThatFits) {
  const auto &t = mesa::internal::kSizeClasses;
  for (std::size_t bytes = 0; bytes <= mesa::internal::kPoolMaxSmall; ++bytes) {
    const std::size_t c = mesa::internal::pool_class_of(bytes);
    ASSERT_GE(t.size[c], bytes);
    if (c > 0) {
      ASSERT_LT(t.size[c - 1], bytes) << bytes;
    }
    ASSERT_EQ(t.size[c] % 16, 0u);
  }
}

TEST(PoolResource, EveryAlignmentFrom1To4096) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  for (std::size_t alignment = 1; alignment <= 4096; alignment *= 2) {
    for (std::size_t size : {1, 24, 64, 200, 3000, 5000}) {
      void *p = pool.allocate(size, alignment);
      EXPECT_TRUE(is_aligned(p, alignment)) << size << " @" << alignment;
      std::memset(p, 0x11, size);
      pool.deallocate(p, size, alignment);
      void *q = static_cast<std::pmr::memory_resource &>(pool).allocate(size, alignment);
      EXPECT_TRUE(is_aligned(q, alignment)) << size << " @" << alignment << " (pmr)";
    }
  }
}

TEST(PoolResource, RandomLiveBlocksNeverOverlap) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  mesa_test::shadow_map shadow;
  struct block {
    void *p;
    std::size_t size, alignment;
  };
  std::vector<block> live;
  std::mt19937 rng(3);
  for (int i = 0; i < 40000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      const std::size_t size = rng() % 8 == 0 ? 1 + rng() % 10000 : 1 + rng() % 300;
      const std::size_t alignment = std::size_t{1} << (rng() % 7);
      void *p = pool.allocate(size, alignment);
      ASSERT_TRUE(is_aligned(p, alignment));
      shadow.insert(p, size);
      if (HasFatalFailure()) return;
      live.push_back({p, size, alignment});
    } else {
      std::size_t k = rng() % live.size();
      shadow.erase(live[k].p);
      pool.deallocate(live[k].p, live[k].size, live[k].alignment);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (const block &b : live) pool.deallocate(b.p, b.size, b.alignment);
}

TEST(PoolResource, BadAlignmentThroughPmrIsRefused) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  mesa_test::expect_pmr_refuses_bad_alignment(pool, upstream);
  EXPECT_THROW((void)pool.allocate(8, 3), std::bad_alloc) << "the direct call too";
  EXPECT_THROW((void)pool.allocate(8, 0), std::bad_alloc);
}

TEST(PoolResource, FreedBlocksAreReused) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  std::vector<void *> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(pool.allocate(40));
  const std::size_t allocations = upstream.allocations();
  std::set<void *> freed(blocks.begin(), blocks.end());
  for (void *p : blocks) pool.deallocate(p, 40);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(freed.erase(pool.allocate(33)), 1u) << "same class";
  EXPECT_EQ(upstream.allocations(), allocations);
}

TEST(PoolResource, LargeBlocksGoUpstreamOneEach) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  const std::size_t before = upstream.blocks_in_use();
  void *a = pool.allocate(100000);
  void *b = pool.allocate(64, 64);  // too aligned for the classes
  EXPECT_EQ(upstream.blocks_in_use(), before + 2);
  EXPECT_TRUE(is_aligned(b, 64));
  pool.deallocate(a, 100000);
  EXPECT_EQ(upstream.blocks_in_use(), before + 1) << "large blocks go back at once";
  EXPECT_GE(pool.bytes_reserved(), 64u);
}

TEST(PoolResource, ReleaseReturnsEveryUpstreamByte) {
  counting_resource upstream;
  {
    mesa::pool_resource pool(&upstream);
    {
      std::pmr::vector<std::pmr::vector<int>> outer(&pool);
      for (int i = 0; i < 64; ++i) {
        outer.emplace_back();
        for (int j = 0; j < 200; ++j) outer.back().push_back(j);
      }
    }
    for (int i = 0; i < 100; ++i) (void)pool.allocate(24);  // live blocks too
    (void)pool.allocate(1 << 20, 4096);
    EXPECT_EQ(pool.bytes_reserved(), upstream.bytes_in_use());
    pool.release();
    EXPECT_EQ(upstream.bytes_in_use(), 0u);
    EXPECT_EQ(pool.bytes_reserved(), 0u);
    (void)pool.allocate(10);
    (void)pool.allocate(10000);
  }
  EXPECT_EQ(upstream.bytes_in_use(), 0u) << "the destructor releases too";
}

TEST(PoolResource, UpstreamFailureThrowsAndPoolStaysUsable) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  upstream.fail_after(0);
  EXPECT_THROW((void)pool.allocate(64), std::bad_alloc);
  EXPECT_THROW((void)pool.allocate(100000), std::bad_alloc);
  upstream.fail_after(-1);
  void *p = pool.allocate(64);
  pool.deallocate(p, 64);
  EXPECT_EQ(pool.allocate(64), p);
  std::pmr::memory_resource &pmr = pool;
  EXPECT_THROW((void)pmr.allocate(8, mesa_test::unseen(48)), std::bad_alloc)
      << "not a power of two";
}

// Over a budget, a chunk that does not fit is asked for again smaller: 64-byte requests are
// refused only when not even a chunk for one block fits, not when the next doubling step does
// not (that refused with half of a 100 KiB budget free). Both pools carve the same way. The
// budget counts one failure, the request the pool refused: the larger chunks asked for first had
// a fallback.
template <class Pool>
void expect_small_blocks_use_the_budget(std::size_t limit) {
  mesa::tracking_resource budget(std::pmr::new_delete_resource(), "budget");
  budget.set_limit(limit);
  std::vector<void *> live;
  Pool pool(&budget);
  try {
    for (;;) live.push_back(pool.allocate(64));
  } catch (const std::bad_alloc &) {
  }
  const std::size_t in_use = budget.stats().bytes_in_use;
  EXPECT_LT(limit - in_use, mesa::internal::kPoolAlignment + 64) << "limit " << limit;
  EXPECT_GT(live.size() * 64, limit / 10 * 9) << "limit " << limit;
  EXPECT_EQ(budget.stats().failed_allocations, 1u) << "limit " << limit;
  pool.deallocate(live.back(), 64);
  EXPECT_EQ(pool.allocate(64), live.back()) << "the pool stays usable";
  for (void *p : live) pool.deallocate(p, 64);
}

TEST(PoolResource, UnderABudgetSmallBlocksUseAllOfIt) {
  for (std::size_t limit : {std::size_t{100} << 10, std::size_t{1536} << 10}) {
    expect_small_blocks_use_the_budget<mesa::pool_resource>(limit);
    expect_small_blocks_use_the_budget<mesa::synchronized_pool_resource>(limit);
  }
}

TEST(PoolResource, ContainerWorkload) {
  counting_resource upstream;
  mesa::pool_resource pool(&upstream);
  std::pmr::unordered_map<int, std::pmr::string> names(&pool);
  for (int i = 0; i < 1000; ++i) names[i] = std::string(i % 50, 'x');
  EXPECT_EQ(names[49].size(), 49u);
  names.clear();
  EXPECT_TRUE(pool.is_equal(pool));
}

// Both pools refuse a free that would corrupt their lists, with one line that says what and
// where; every other block keeps working.
template <class Pool>
class PoolMisuse : public testing::Test {};
// How each pool names itself in its one-line reports.
template <class Pool>
std::string pool_name() {
  return std::is_same_v<Pool, mesa::pool_resource> ? "in mesa::pool_resource"
                                                   : "in mesa::synchronized_pool_resource";
}
using Pools = testing::Types<mesa::pool_resource, mesa::synchronized_pool_resource>;
TYPED_TEST_SUITE(PoolMisuse, Pools);

TYPED_TEST(PoolMisuse, ADoubleFreeIsReportedAndTheBlockHandedOutOnce) {
  counting_resource upstream;
  TypeParam pool(&upstream);
  void *keep = pool.allocate(48);
  void *p = pool.allocate(48);
  pool.deallocate(p, 48);
  EXPECT_EQ(stderr_of([&] { pool.deallocate(p, 48); }),
            mesa_test::double_free_line(p, 48, pool_name<TypeParam>()));
  void *a = pool.allocate(48);
  void *b = pool.allocate(48);
  EXPECT_EQ(a, p);
  EXPECT_NE(b, p) << "handed out twice";
  EXPECT_NE(b, keep);
  pool.deallocate(keep, 48);
  pool.deallocate(a, 48);
  pool.deallocate(b, 48);
}

// A live block whose second word holds what a free block's holds is freed normally.
TYPED_TEST(PoolMisuse, DataThatLooksLikeTheFreeKeyIsNotAnError) {
  counting_resource upstream;
  TypeParam pool(&upstream);
  auto *p = static_cast<std::uintptr_t *>(pool.allocate(16));
  p[1] = mesa::internal::free_list_key(&pool);
  EXPECT_EQ(stderr_of([&] { pool.deallocate(p, 16); }), "");
  EXPECT_EQ(pool.allocate(16), p);
  EXPECT_EQ(p[1], 0u) << "allocation clears the key";
}

// A large block whose header's tag an underrun damaged: its free is refused, and release() (here
// the destructor) still returns it upstream instead of retrying it for ever.
TYPED_TEST(PoolMisuse, ReleaseReturnsALargeBlockWithADamagedTag) {
  counting_resource upstream;
  {
    TypeParam pool(&upstream);
    auto *p = static_cast<unsigned char *>(pool.allocate(10000));
    p[-1] ^= 1;
    EXPECT_NE(stderr_of([&] { pool.deallocate(p, 10000); }).find("not a live large block"),
              std::string::npos);
  }
  EXPECT_EQ(upstream.blocks_in_use(), 0u);
}

// The first block carved from a chunk is handed out without the key, even when the chunk is
// memory the pool freed before (after release(), upstream hands the same pages back): a free
// of a block whose second word still held the key would search the whole free list.
TYPED_TEST(PoolMisuse, CarvedBlocksNeverHoldTheKey) {
  counting_resource upstream;
  TypeParam pool(&upstream);
  const std::uintptr_t key = mesa::internal::free_list_key(&pool);
  for (std::size_t size : {16u, 2048u}) {
    for (int round = 0; round < 3; ++round) {
      std::vector<void *> blocks;
      for (int i = 0; i < 64; ++i) blocks.push_back(pool.allocate(size));
      for (void *b : blocks) EXPECT_NE(static_cast<std::uintptr_t *>(b)[1], key) << size;
      for (void *b : blocks) pool.deallocate(b, size);
      pool.release();
    }
  }
}

// A class block freed as a large one: its "header" is not a live large block's.
TYPED_TEST(PoolMisuse, AFreeWithTheWrongSizeOfALargeBlockIsRefused) {
  counting_resource upstream;
  TypeParam pool(&upstream);
  void *first = pool.allocate(64);
  void *p = pool.allocate(64);  // not the chunk's first block: its "header" is pool memory
  const std::size_t blocks = upstream.blocks_in_use();
  EXPECT_EQ(stderr_of([&] { pool.deallocate(p, 100000); }),
            mesa_test::refused_line("invalid free", p, pool_name<TypeParam>(),
                                    "not a live large block of this pool (freed already, or not "
                                    "allocated by it, or freed with a size or alignment it was "
                                    "not allocated with)"));
  EXPECT_EQ(upstream.blocks_in_use(), blocks);
  pool.deallocate(p, 64);
  pool.deallocate(first, 64);
}

TEST(PoolC, CreateAllocateDestroy) {
  mesa_test::counting_table parent;
  for (auto [create, destroy] :
       {std::pair{&mesa_pool_create, &mesa_pool_destroy},
        std::pair{&mesa_synchronized_pool_create, &mesa_synchronized_pool_destroy}}) {
    const mesa_allocator *pool = create(&parent.table);
    ASSERT_NE(pool, nullptr);
    std::vector<void *> blocks;
    for (int i = 0; i < 1000; ++i) {
      void *p = mesa_alloc2(nullptr, pool, 1 + i % 500, 8, MESA_ALLOC_SCOPE_OBJECT);
      ASSERT_NE(p, nullptr);
      blocks.push_back(p);
    }
    void *big = mesa_alloc2(nullptr, pool, 100000, 4096, MESA_ALLOC_SCOPE_OBJECT);
    EXPECT_TRUE(is_aligned(big, 4096));
    void *grown = mesa_realloc2(nullptr, pool, blocks[0], 3000, 8, MESA_ALLOC_SCOPE_OBJECT);
    EXPECT_NE(grown, nullptr);
    for (std::size_t i = 1; i < blocks.size(); i += 2) mesa_free2(nullptr, pool, blocks[i]);
    destroy(pool);
    EXPECT_EQ(parent.live, 0);
    parent.fail_after = 0;
    EXPECT_EQ(create(&parent.table), nullptr);
    parent.fail_after = 1;
    pool = create(&parent.table);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(mesa_alloc2(nullptr, pool, 64, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    parent.fail_after = -1;
    EXPECT_NE(mesa_alloc2(nullptr, pool, 64, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    destroy(pool);
    EXPECT_EQ(parent.live, 0);
  }
}

// A C table's create and destroy functions (mesa_pool_create, mesa_arena_destroy, ...).
using create_fn = const mesa_allocator *(*)(const mesa_allocator *);
using destroy_fn = void (*)(const mesa_allocator *);

// The C tables over a resource (the pools', the arena's) keep a tag in each block's header: a
// block freed twice, freed through another table, or never allocated through one (an interior
// pointer) is reported and left alone, where it used to reach the resource with a made-up size.
// A second free is named a double free while the header is intact (the arena reuses nothing);
// a pool writes its free-list link into the freed bytes at once, over the header's tag on 64-bit
// targets (a block of no table then) but not on 32-bit ones (a double free), so either line.
TEST(PoolC, BlocksThatAreNotLiveBlocksOfTheTableAreRefused) {
  struct table_kind {
    create_fn create;
    destroy_fn destroy;
    bool keeps_freed_bytes;
    const char *name;  // in the lines
  };
  for (auto [create, destroy, keeps_freed_bytes, name] :
       {table_kind{&mesa_pool_create, &mesa_pool_destroy, false, "mesa_pool"},
        {&mesa_synchronized_pool_create, &mesa_synchronized_pool_destroy, false,
         "mesa_synchronized_pool"},
        {&mesa_arena_create, &mesa_arena_destroy, true, "mesa_arena"}}) {
    mesa_test::counting_table parent;
    const mesa_allocator *table = create(&parent.table);
    const mesa_allocator *other = create(&parent.table);
    auto *keep =
        static_cast<std::uint64_t *>(mesa_alloc2(nullptr, table, 64, 16, MESA_ALLOC_SCOPE_OBJECT));
    keep[0] = 1 << 20;  // an interior pointer's "header": a 1 MiB block
    keep[1] = 16;
    void *p = mesa_alloc2(nullptr, table, 48, 16, MESA_ALLOC_SCOPE_OBJECT);
    void *elsewhere = mesa_alloc2(nullptr, other, 48, 16, MESA_ALLOC_SCOPE_OBJECT);
    mesa_free2(nullptr, table, p);
    const auto refused = [&, name = name](const char *what, const void *block) {
      return mesa_test::not_a_live_block_line(what, block, name);
    };
    const std::string second_free = stderr_of([&] { mesa_free2(nullptr, table, p); });
    const std::string double_free =
        mesa_test::refused_line("double free", p, std::string("through a ") + name + " table",
                                "this table freed it already");
    if (keeps_freed_bytes)
      EXPECT_EQ(second_free, double_free);
    else
      EXPECT_TRUE(second_free == double_free || second_free == refused("invalid free", p))
          << second_free;
    EXPECT_EQ(stderr_of([&] { mesa_free2(nullptr, table, elsewhere); }),
              refused("invalid free", elsewhere))
        << "another table's block";
    void *moved = nullptr;
    EXPECT_EQ(stderr_of([&] {
                moved =
                    mesa_realloc2(nullptr, table, keep + 2, 2 << 20, 16, MESA_ALLOC_SCOPE_OBJECT);
              }),
              refused("invalid realloc", keep + 2))
        << "interior pointer";
    EXPECT_EQ(moved, nullptr);
    // Off a block's alignment its "header" is not even read (the tag's load would be misaligned:
    // UBSan's finding in a fuzz probe, before the refusal line).
    void *odd = reinterpret_cast<unsigned char *>(keep) + 3;
    EXPECT_EQ(stderr_of([&] { mesa_free2(nullptr, table, odd); }), refused("invalid free", odd))
        << "a misaligned interior pointer";
    EXPECT_EQ(stderr_of([&] {
                moved = mesa_realloc2(nullptr, table, odd, 8, 1, MESA_ALLOC_SCOPE_OBJECT);
              }),
              refused("invalid realloc", odd))
        << "a misaligned interior pointer";
    EXPECT_EQ(moved, nullptr);
    mesa_free2(nullptr, other, elsewhere);
    mesa_free2(nullptr, table, keep);
    destroy(other);
    destroy(table);
    EXPECT_EQ(parent.live, 0);
  }
}

}  // namespace

// The C tables made over a C++ resource (a resource_callbacks table inside) name themselves as
// the other C tables do (`mesa_tracking alloc`, `mesa_slab alloc`): a program with no
// resource_callbacks of its own was told of one.
TEST(FastResourcesC, TheTablesOverAResourceNameThemselvesInTheirLines) {
  const struct {
    create_fn create;
    destroy_fn destroy;
    const char *name;
  } cases[] = {
      {&mesa_arena_create, &mesa_arena_destroy, "mesa_arena"},
      {&mesa_pool_create, &mesa_pool_destroy, "mesa_pool"},
      {&mesa_synchronized_pool_create, &mesa_synchronized_pool_destroy, "mesa_synchronized_pool"},
      {&mesa_fault_create, &mesa_fault_destroy, "mesa_fault"}};
  for (const auto &c : cases) {
    SCOPED_TRACE(c.name);
    const mesa_allocator *table = c.create(nullptr);
    ASSERT_NE(table, nullptr);
    const std::string name = c.name;
    EXPECT_EQ(stderr_of([&] { EXPECT_EQ(table->alloc_fn(table->user_data, 8, 3, {}), nullptr); }),
              "mesa_alloc: invalid alignment 3 in " + name + " alloc (must be a power of two)\n");
    void *p = mesa_alloc2(nullptr, table, 40, 8, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(
        stderr_of([&] { EXPECT_EQ(table->realloc_fn(table->user_data, p, 80, 24, {}), nullptr); }),
        "mesa_alloc: invalid alignment 24 in " + name + " realloc (must be a power of two)\n");
    void *other = mesa_alloc2(nullptr, table, 40, 8, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(other, nullptr);
    std::memset(other, 0, 40);  // the "header" an interior pointer 16 bytes in is read from
    EXPECT_EQ(
        stderr_of([&] { mesa_free2(nullptr, table, static_cast<char *>(other) + 16); }),
        mesa_test::not_a_live_block_line("invalid free", static_cast<char *>(other) + 16, name));
    mesa_free2(nullptr, table, other);
    mesa_free2(nullptr, table, p);
    c.destroy(table);
  }
}

// Through the pmr interface each fast resource refuses an alignment that is no power of two with
// std::bad_alloc, its upstream untouched, and in debug builds a line that names it, as the other
// resources do (an API probe: the five were silent).
TEST(FastResources, ABadAlignmentIsRefusedWithALineNamingTheResource) {
  mesa::arena_resource arena(std::pmr::new_delete_resource());
  mesa::slab_resource slab(std::pmr::new_delete_resource(), 32);
  mesa::slab_parent parent(std::pmr::new_delete_resource(), 32);
  mesa::slab_child child(&parent);
  mesa::pool_resource pool(std::pmr::new_delete_resource());
  mesa::synchronized_pool_resource synchronized(std::pmr::new_delete_resource());
  const struct {
    std::pmr::memory_resource *resource;
    const char *name;
  } cases[] = {{&arena, "arena_resource"},
               {&slab, "slab_resource"},
               {&child, "slab_child"},
               {&pool, "pool_resource"},
               {&synchronized, "synchronized_pool_resource"}};
  for (const auto &c : cases) {
    SCOPED_TRACE(c.name);
    volatile std::size_t bad = 24;  // clang refuses a constant bad alignment
    ::testing::internal::CaptureStderr();
    EXPECT_THROW((void)c.resource->allocate(16, bad), std::bad_alloc);
    const std::string err = ::testing::internal::GetCapturedStderr();
#ifndef NDEBUG
    EXPECT_NE(err.find(std::string("mesa_alloc: invalid alignment 24 in ") + c.name +
                       "::allocate (must be a power of two)"),
              std::string::npos)
        << err;
#endif
  }
}
