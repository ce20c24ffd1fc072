#include "mesa_alloc/slab_resource.h"

#include <cstdint>
#include <cstring>
#include <list>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/internal/free_list.h"
#include "tests/test_resources.h"

namespace {

using mesa_test::counting_resource;
using mesa_test::is_aligned;

TEST(SlabResource, EveryAlignmentFrom1To4096) {
  counting_resource upstream;
  for (std::size_t alignment = 1; alignment <= 4096; alignment *= 2) {
    mesa::slab_resource slab(&upstream, 40, alignment);
    EXPECT_GE(slab.alignment(), alignment);
    for (int i = 0; i < 200; ++i) {
      void *p = slab.allocate(40, alignment);
      ASSERT_TRUE(is_aligned(p, alignment)) << "alignment " << alignment;
      std::memset(p, 0x5a, 40);
    }
    // A more aligned request than the slab's goes upstream and is still aligned.
    void *q = slab.allocate(8, alignment * 2);
    EXPECT_TRUE(is_aligned(q, alignment * 2));
    slab.deallocate(q, 8, alignment * 2);
  }
  EXPECT_EQ(upstream.bytes_in_use(), 0u);
}

TEST(SlabResource, NaturalAlignmentAndSlotSize) {
  counting_resource upstream;
  mesa::slab_resource a(&upstream, 24);
  EXPECT_EQ(a.alignment(), 8u);
  EXPECT_EQ(a.object_size(), 24u);
  mesa::slab_resource b(&upstream, 64);
  EXPECT_EQ(b.alignment(), 16u);
  mesa::slab_resource c(&upstream, 1);
  EXPECT_EQ(c.object_size(), 2 * sizeof(void *)) << "a slot holds the link and the free key";
  EXPECT_THROW(mesa::slab_resource(&upstream, 16, 3), std::invalid_argument);
  EXPECT_THROW(mesa::slab_resource(&upstream, 4096, 16, 128), std::invalid_argument);
  EXPECT_THROW(mesa::slab_resource(&upstream, 64, 0, SIZE_MAX), std::invalid_argument);
}

TEST(SlabResource, RandomLiveBlocksNeverOverlap) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 48);
  mesa_test::shadow_map shadow;
  std::vector<void *> live;
  std::mt19937 rng(7);
  for (int i = 0; i < 50000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      void *p = slab.allocate_object();
      shadow.insert(p, 48);
      if (HasFatalFailure()) return;
      live.push_back(p);
    } else {
      std::size_t k = rng() % live.size();
      shadow.erase(live[k]);
      slab.deallocate_object(live[k]);
      live[k] = live.back();
      live.pop_back();
    }
  }
  EXPECT_EQ(shadow.size(), live.size());
}

TEST(SlabResource, BadAlignmentThroughPmrIsRefused) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 32);
  mesa_test::expect_pmr_refuses_bad_alignment(slab, upstream);
  EXPECT_THROW((void)slab.allocate(8, 3), std::bad_alloc) << "the direct call too";
  EXPECT_THROW((void)slab.allocate(8, 0), std::bad_alloc);
}

TEST(SlabResource, FreedBlocksAreReusedFirst) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 32);
  std::vector<void *> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(slab.allocate_object());
  const std::size_t pages = slab.pages();
  const std::size_t allocations = upstream.allocations();
  std::set<void *> freed(blocks.begin(), blocks.end());
  for (void *p : blocks) slab.deallocate_object(p);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(freed.erase(slab.allocate_object()), 1u);
  EXPECT_EQ(slab.pages(), pages);
  EXPECT_EQ(upstream.allocations(), allocations);
}

TEST(SlabResource, OtherSizesGoUpstream) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 32);
  void *small = slab.allocate(16, 8);  // fits: served by the slab
  const std::size_t after_page = upstream.allocations();
  void *big = slab.allocate(100, 8);
  EXPECT_EQ(upstream.allocations(), after_page + 1);
  slab.deallocate(big, 100, 8);
  slab.deallocate(small, 16, 8);
  EXPECT_EQ(upstream.blocks_in_use(), 1u) << "only the slab page";
  std::pmr::list<int> nodes(&slab);  // list nodes are 24 bytes: served by the slab
  for (int i = 0; i < 100; ++i) nodes.push_back(i);
  EXPECT_EQ(upstream.allocations(), after_page + 1) << "100 nodes fit the first page";
}

TEST(SlabResource, ReleaseReturnsEveryUpstreamByte) {
  counting_resource upstream;
  {
    mesa::slab_resource slab(&upstream, 100, 0, 8192);
    for (int i = 0; i < 500; ++i) (void)slab.allocate_object();
    EXPECT_EQ(upstream.bytes_in_use(), slab.pages() * 8192);
    slab.release();
    EXPECT_EQ(upstream.bytes_in_use(), 0u);
    EXPECT_EQ(slab.pages(), 0u);
    (void)slab.allocate_object();
  }
  EXPECT_EQ(upstream.bytes_in_use(), 0u) << "the destructor releases too";
}

TEST(SlabResource, UpstreamFailureThrowsAndSlabStaysUsable) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 64, 0, 4096);
  std::vector<void *> blocks;
  while (slab.pages() < 1 || blocks.size() < 4096 / 64 - 1)
    blocks.push_back(slab.allocate_object());
  upstream.fail_after(0);
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) blocks.push_back(slab.allocate_object());
      },
      std::bad_alloc);
  slab.deallocate_object(blocks.back());
  EXPECT_EQ(slab.allocate_object(), blocks.back()) << "free list still works";
  upstream.fail_after(-1);
  EXPECT_NE(slab.allocate_object(), nullptr);
}

// A block freed twice is refused with one line and handed out once; data that happens to equal
// the free key in a live block's second word is freed normally.
TEST(SlabResource, ADoubleFreeIsRefusedAndTheBlockHandedOutOnce) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 40);
  void *keep = slab.allocate_object();
  void *p = slab.allocate_object();
  slab.deallocate_object(p);
  EXPECT_EQ(mesa_test::stderr_of([&] { slab.deallocate_object(p); }),
            mesa_test::double_free_line(p, 40, "in mesa::slab_resource"));
  EXPECT_EQ(mesa_test::stderr_of([&] { slab.deallocate(p, 40, 8); }),
            mesa_test::double_free_line(p, 40, "in mesa::slab_resource"))
      << "through the pmr path too";
  void *a = slab.allocate_object();
  void *b = slab.allocate_object();
  EXPECT_EQ(a, p);
  EXPECT_NE(b, p) << "handed out twice";
  EXPECT_NE(b, keep);
  static_cast<std::uintptr_t *>(a)[1] = mesa::internal::free_list_key(&slab);
  EXPECT_EQ(mesa_test::stderr_of([&] { slab.deallocate_object(a); }), "");
  EXPECT_EQ(slab.allocate_object(), a);
  EXPECT_EQ(static_cast<std::uintptr_t *>(a)[1], 0u) << "allocation clears the key";
}

// A slot carved from a page is handed out without the key, even when the page is memory the
// slab freed before (release(), then upstream hands it back).
TEST(SlabResource, CarvedSlotsNeverHoldTheKey) {
  counting_resource upstream;
  mesa::slab_resource slab(&upstream, 8);
  const std::uintptr_t key = mesa::internal::free_list_key(&slab);
  for (int round = 0; round < 3; ++round) {
    std::vector<void *> blocks;
    for (int i = 0; i < 100; ++i) blocks.push_back(slab.allocate_object());
    for (void *b : blocks) EXPECT_NE(static_cast<std::uintptr_t *>(b)[1], key);
    for (void *b : blocks) slab.deallocate_object(b);
    slab.release();
  }
}

TEST(SlabC, FixedSizeTable) {
  mesa_test::counting_table parent;
  EXPECT_EQ(mesa_slab_create(&parent.table, 0), nullptr);
  const mesa_allocator *slab = mesa_slab_create(&parent.table, 48);
  ASSERT_NE(slab, nullptr);
  void *a = mesa_alloc2(nullptr, slab, 48, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *b = mesa_alloc2(nullptr, slab, 10, 8, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(mesa_alloc2(nullptr, slab, 49, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, slab, 8, 32, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, slab, 8, 3, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_realloc2(nullptr, slab, b, 40, 8, MESA_ALLOC_SCOPE_OBJECT), b);
  EXPECT_EQ(mesa_realloc2(nullptr, slab, b, 400, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_free2(nullptr, slab, a);
  EXPECT_EQ(mesa_alloc2(nullptr, slab, 48, 16, MESA_ALLOC_SCOPE_OBJECT), a) << "reuse";
  mesa_free2(nullptr, slab, nullptr);
  mesa_slab_destroy(slab);
  EXPECT_EQ(parent.live, 0) << "destroy returns pages with live blocks too";
}

// The C tables serve the object size asked for, not the slot it is rounded up to: a 12-byte
// slab (16-byte slots) and a 12-byte slab parent's child refuse 13 bytes, and realloc past 12
// too (they served up to 16, so a slab made for one struct did not catch a wrong size). Their
// alignment is the slots': 16.
TEST(SlabC, ServesTheObjectSizeAskedForNotTheSlotSize) {
  mesa_test::counting_table parent;
  mesa_slab_parent *shared = mesa_slab_parent_create(&parent.table, 12);
  ASSERT_NE(shared, nullptr);
  const mesa_allocator *slab = mesa_slab_create(&parent.table, 12);
  const mesa_allocator *child = mesa_slab_child_create(shared);
  for (const mesa_allocator *table : {slab, child}) {
    ASSERT_NE(table, nullptr);
    void *a = mesa_alloc2(nullptr, table, 12, 16, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 16, 0u);
    EXPECT_EQ(mesa_alloc2(nullptr, table, 13, 1, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    EXPECT_EQ(mesa_alloc2(nullptr, table, 16, 1, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    EXPECT_EQ(mesa_realloc2(nullptr, table, a, 13, 1, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    EXPECT_EQ(mesa_realloc2(nullptr, table, a, 12, 1, MESA_ALLOC_SCOPE_OBJECT), a);
    mesa_free2(nullptr, table, a);
  }
  mesa_slab_child_destroy(child);
  mesa_slab_destroy(slab);
  mesa_slab_parent_destroy(shared);
  EXPECT_EQ(parent.live, 0);
}

// The two fixed-size tables, of 64-byte blocks over one counting parent: the slab's and a slab
// child's, each with the names its lines use. Destroyed, they have returned every block.
struct fixed_size_tables {
  struct table_case {
    const mesa_allocator *table;
    const char *where;  // in a refused free's line
    const char *name;   // in an invalid alignment's line
  };
  mesa_test::counting_table parent;
  mesa_slab_parent *shared = mesa_slab_parent_create(&parent.table, 64);
  table_case both[2] = {
      {mesa_slab_create(&parent.table, 64), "in mesa::slab_resource", "mesa_slab"},
      {mesa_slab_child_create(shared), "in mesa::slab_child", "mesa_slab_child"}};
  ~fixed_size_tables() {
    mesa_slab_destroy(both[0].table);
    mesa_slab_child_destroy(both[1].table);
    mesa_slab_parent_destroy(shared);
    EXPECT_EQ(parent.live, 0);
  }
};

// A realloc in place of a freed block is refused as its second free is: kept, the block would
// be the caller's while on the free list, and handed out again (a probe saw the next write
// break the list). Both fixed-size tables: the slab's and a slab child's.
TEST(SlabC, AReallocOfAFreedBlockIsRefusedAndTheBlockHandedOutOnce) {
  fixed_size_tables tables;
  for (const auto &c : tables.both) {
    SCOPED_TRACE(c.where);
    ASSERT_NE(c.table, nullptr);
    void *keep = mesa_alloc2(nullptr, c.table, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
    void *p = mesa_alloc2(nullptr, c.table, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
    EXPECT_EQ(mesa_realloc2(nullptr, c.table, p, 48, 8, MESA_ALLOC_SCOPE_OBJECT), p) << "live";
    mesa_free2(nullptr, c.table, p);
    EXPECT_EQ(mesa_test::stderr_of([&] {
                EXPECT_EQ(mesa_realloc2(nullptr, c.table, p, 48, 8, MESA_ALLOC_SCOPE_OBJECT),
                          nullptr);
              }),
              mesa_test::refused_line("realloc of a freed block", p, c.where,
                                      "the 64-byte block is already free"));
    void *a = mesa_alloc2(nullptr, c.table, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
    void *b = mesa_alloc2(nullptr, c.table, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
    EXPECT_EQ(a, p);
    EXPECT_NE(b, p) << "handed out twice";
    EXPECT_EQ(mesa_test::stderr_of([&] {
                EXPECT_EQ(mesa_realloc2(nullptr, c.table, a, 64, 8, MESA_ALLOC_SCOPE_OBJECT), a);
              }),
              "")
        << "allocated again, the block is live";
    for (void *q : {keep, a, b}) mesa_free2(nullptr, c.table, q);
  }
}

// A realloc with an alignment that is not a power of two is refused before anything else, as
// on every table: to 0 bytes too, the block is kept (a caller freeing it after the NULL would
// otherwise free it twice). Called through the table itself: mesa_realloc2 checks first.
TEST(SlabC, ABadAlignmentInARealloc0KeepsTheBlock) {
  fixed_size_tables tables;
  for (const auto &c : tables.both) {
    SCOPED_TRACE(c.name);
    ASSERT_NE(c.table, nullptr);
    void *p = mesa_alloc2(nullptr, c.table, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    for (std::size_t size : {std::size_t{0}, std::size_t{32}}) {
      for (void *block : {p, static_cast<void *>(nullptr)}) {
        const std::string err = mesa_test::stderr_of([&] {
          EXPECT_EQ(c.table->realloc_fn(c.table->user_data, block, size, mesa_test::unseen(24),
                                        MESA_ALLOC_SCOPE_OBJECT),
                    nullptr);
        });
#ifndef NDEBUG
        EXPECT_EQ(err, "mesa_alloc: invalid alignment 24 in " + std::string(c.name) +
                           " realloc (must be a power of two)\n");
#else
        EXPECT_EQ(err, "");
#endif
      }
    }
    EXPECT_EQ(mesa_test::stderr_of([&] { mesa_free2(nullptr, c.table, p); }), "")
        << "the block was still live";
  }
}

// A slab child's realloc in place of a block of another slab is refused as its free is: returned
// as the caller's own, the block would later be freed into the wrong slab.
TEST(SlabC, AChildReallocOfABlockOfAnotherSlabIsRefused) {
  mesa_test::counting_table parent;
  mesa_slab_parent *ours = mesa_slab_parent_create(&parent.table, 64);
  mesa_slab_parent *theirs = mesa_slab_parent_create(&parent.table, 64);
  const mesa_allocator *child = mesa_slab_child_create(ours);
  const mesa_allocator *stranger = mesa_slab_child_create(theirs);
  void *mine = mesa_alloc2(nullptr, child, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
  void *other = mesa_alloc2(nullptr, stranger, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(mine, nullptr);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(mesa_test::stderr_of([&] {
              EXPECT_EQ(mesa_realloc2(nullptr, child, other, 48, 8, MESA_ALLOC_SCOPE_OBJECT),
                        nullptr);
            }),
            mesa_test::refused_line("invalid realloc", other, "in mesa::slab_child",
                                    "not a block of this slab (its page is not one of the "
                                    "parent's)"));
  EXPECT_EQ(mesa_realloc2(nullptr, child, mine, 48, 8, MESA_ALLOC_SCOPE_OBJECT), mine);
  EXPECT_EQ(mesa_realloc2(nullptr, stranger, other, 48, 8, MESA_ALLOC_SCOPE_OBJECT), other)
      << "left alone, the block is still its own slab's";
  mesa_free2(nullptr, child, mine);
  mesa_free2(nullptr, stranger, other);
  mesa_slab_child_destroy(child);
  mesa_slab_child_destroy(stranger);
  mesa_slab_parent_destroy(ours);
  mesa_slab_parent_destroy(theirs);
  EXPECT_EQ(parent.live, 0);
}

TEST(SlabC, AnObjectOverTheSlabLimitIsRefusedWithALine) {
  mesa_test::counting_table parent;
  for (std::size_t size : {(std::size_t{1} << 30) + 1, SIZE_MAX}) {
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(mesa_slab_create(&parent.table, size), nullptr);
    EXPECT_EQ(mesa_slab_parent_create(&parent.table, size), nullptr);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("mesa_alloc: mesa_slab_create: object size " + std::to_string(size) +
                       " is over the slab limit (1 GiB)"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("mesa_alloc: mesa_slab_parent_create: object size"), std::string::npos)
        << err;
  }
  EXPECT_EQ(parent.live, 0);
  ::testing::internal::CaptureStderr();
  const mesa_allocator *largest = mesa_slab_create(&parent.table, std::size_t{1} << 30);
  const std::string err = ::testing::internal::GetCapturedStderr();
  if (sizeof(std::size_t) == 8) {
    EXPECT_NE(largest, nullptr) << "the limit itself is taken (pages come on first use)";
    EXPECT_EQ(err, "");
  } else {  // 64 slots of 1 GiB do not fit a 32-bit page: refused with the reason
    EXPECT_EQ(largest, nullptr);
    EXPECT_EQ(err.rfind("mesa_alloc: mesa_slab_create: slab page", 0), 0u) << err;
  }
  mesa_slab_destroy(largest);
}

TEST(SlabC, ParentFailureGivesNullAndSlabStaysUsable) {
  mesa_test::counting_table parent;
  parent.fail_after = 0;
  EXPECT_EQ(mesa_slab_create(&parent.table, 32), nullptr);
  parent.fail_after = 1;
  const mesa_allocator *slab = mesa_slab_create(&parent.table, 32);
  ASSERT_NE(slab, nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, slab, 32, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  parent.fail_after = -1;
  EXPECT_NE(mesa_alloc2(nullptr, slab, 32, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_slab_destroy(slab);
  EXPECT_EQ(parent.live, 0);
}

}  // namespace
