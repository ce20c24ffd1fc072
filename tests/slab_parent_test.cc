#include "mesa_alloc/slab_parent.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/slab_geometry.h"
#include "tests/test_resources.h"

namespace {

using mesa_test::counting_resource;
using mesa_test::is_aligned;

// A page's first slot: its header (five words) rounded up to the 16-byte alignment of the
// 32- and 48-byte slots below.
constexpr int kPageHeader = (5 * sizeof(void *) + 15) / 16 * 16;

TEST(SlabParent, ChildAllocatesAlignedDistinctBlocksAndReuses) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 64, 0, 4096);
  EXPECT_EQ(parent.page_size(), 4096u);
  {
    mesa::slab_child child(&parent);
    mesa_test::shadow_map shadow;
    std::vector<void *> blocks;
    for (int i = 0; i < 1000; ++i) {
      void *p = child.allocate_object();
      ASSERT_TRUE(is_aligned(p, 16));
      shadow.insert(p, 64);
      if (HasFatalFailure()) return;
      blocks.push_back(p);
    }
    const std::size_t pages = parent.pages();
    for (void *p : blocks) child.deallocate_object(p);
    std::set<void *> freed(blocks.begin(), blocks.end());
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(freed.erase(child.allocate_object()), 1u);
    EXPECT_EQ(parent.pages(), pages);
    void *big = child.allocate(1000, 8);  // other sizes go upstream
    child.deallocate(big, 1000, 8);
  }
  EXPECT_GT(upstream.bytes_in_use(), 0u) << "pages stay with the parent";
}

TEST(SlabParent, EveryAlignmentFrom1To4096) {
  counting_resource upstream;
  for (std::size_t alignment = 1; alignment <= 4096; alignment *= 2) {
    mesa::slab_parent parent(&upstream, 24, alignment);
    mesa::slab_child child(&parent);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(is_aligned(child.allocate(24, alignment), alignment));
  }
}

TEST(SlabParent, BadAlignmentThroughPmrIsRefused) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 32);
  mesa::slab_child child(&parent);
  mesa_test::expect_pmr_refuses_bad_alignment(child, upstream);
}

TEST(SlabParent, ForeignFreeMigratesBackToTheOwner) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 32, 0, 4096);
  mesa::slab_child a(&parent), b(&parent);
  std::vector<void *> blocks;
  const int per_page = (4096 - kPageHeader) / 32;
  for (int i = 0; i < 3 * per_page; ++i) blocks.push_back(a.allocate_object());  // a: all used
  const std::size_t pages = parent.pages();
  EXPECT_EQ(pages, 3u);
  for (void *p : blocks) b.deallocate_object(p);  // b does not own them: they migrate to a
  // b gets none of them, a gets all of them back without new pages.
  void *fresh = b.allocate_object();
  EXPECT_EQ(std::count(blocks.begin(), blocks.end(), fresh), 0);
  std::set<void *> freed(blocks.begin(), blocks.end());
  for (int i = 0; i < 3 * per_page; ++i) EXPECT_EQ(freed.erase(a.allocate_object()), 1u);
  EXPECT_EQ(parent.pages(), pages + 1) << "one page for b only";
  b.deallocate_object(fresh);
  parent.deallocate_object(a.allocate_object());  // a free without any child
}

TEST(SlabParent, DestroyingAChildWithLiveBlocksIsSafe) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 32, 0, 4096);
  std::vector<void *> blocks;
  const int per_page = (4096 - kPageHeader) / 32;
  {
    mesa::slab_child a(&parent);
    for (int i = 0; i < 4 * per_page; ++i) blocks.push_back(a.allocate_object());
    for (int i = 0; i < 100; ++i) a.deallocate_object(blocks[i]);
  }
  const std::size_t pages = parent.pages();
  mesa::slab_child b(&parent);
  for (std::size_t i = 100; i < blocks.size(); ++i) b.deallocate_object(blocks[i]);
  // b adopts the orphaned pages: every block comes back without new pages.
  std::set<void *> all(blocks.begin(), blocks.end());
  for (int i = 0; i < 4 * per_page; ++i) EXPECT_EQ(all.erase(b.allocate_object()), 1u);
  EXPECT_EQ(parent.pages(), pages);
}

// Two children that overlap in time, as two contexts of one screen: each round both take and
// free 300 blocks and are destroyed. A refill adopts one orphaned page, so the second child
// finds the pages the first did not need and no round takes new ones (adopting every orphan at
// once left the second child none: 4 new pages a round, for ever).
TEST(SlabParent, OverlappingChildrenReuseOrphanedPages) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48, 0, 4096);
  std::size_t after_first_round = 0;
  for (int round = 0; round < 100; ++round) {
    mesa::slab_child a(&parent), b(&parent);
    std::vector<void *> from_a, from_b;
    for (int i = 0; i < 300; ++i) from_a.push_back(a.allocate_object());
    for (int i = 0; i < 300; ++i) from_b.push_back(b.allocate_object());
    for (void *p : from_a) a.deallocate_object(p);
    for (void *p : from_b) b.deallocate_object(p);
    if (round == 0) after_first_round = upstream.bytes_in_use();
  }
  EXPECT_EQ(after_first_round, 8 * 4096u) << "4 pages per child";
  EXPECT_EQ(upstream.bytes_in_use(), after_first_round) << "later rounds took new pages";
  EXPECT_EQ(parent.pages(), 8u);
}

// Pages are rounded up to a power of two: a page size near SIZE_MAX is refused, not rounded
// forever.
TEST(SlabParent, HugePageSizeIsRefused) {
  counting_resource upstream;
  EXPECT_THROW(mesa::slab_parent(&upstream, 64, 0, SIZE_MAX), std::invalid_argument);
  EXPECT_THROW(mesa::slab_parent(&upstream, 64, 0, (SIZE_MAX >> 1) + 2), std::invalid_argument);
  EXPECT_EQ(upstream.allocations(), 0u);
}

TEST(SlabParent, UpstreamFailureThrowsAndChildStaysUsable) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 64, 0, 4096);
  mesa::slab_child child(&parent);
  upstream.fail_after(0);
  EXPECT_THROW((void)child.allocate_object(), std::bad_alloc);
  upstream.fail_after(-1);
  EXPECT_NE(child.allocate_object(), nullptr);
}

// Double frees are refused wherever the first free put the block where the freeing thread may
// look: the owner's own list and the owner's migrated list (a foreign free). The orphans' list:
// the next test.
TEST(SlabParent, DoubleFreesAreRefused) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48);
  mesa::slab_child owner(&parent), other(&parent);
  using mesa_test::double_free_line;
  using mesa_test::stderr_of;
  void *keep = owner.allocate_object();
  void *a = owner.allocate_object();
  owner.deallocate_object(a);
  EXPECT_EQ(stderr_of([&] { owner.deallocate_object(a); }),
            double_free_line(a, 48, "in mesa::slab_child"))
      << "owner, twice";
  void *b = owner.allocate_object();  // a again
  EXPECT_EQ(b, a);
  other.deallocate_object(b);  // migrates to the owner
  EXPECT_EQ(stderr_of([&] { other.deallocate_object(b); }),
            double_free_line(b, 48, "in mesa::slab_child"))
      << "foreign, twice";
  EXPECT_EQ(stderr_of([&] { parent.deallocate_object(b); }),
            double_free_line(b, 48, "in mesa::slab_parent"))
      << "foreign, then through the parent";
  EXPECT_EQ(stderr_of([&] { owner.deallocate_object(b); }),
            double_free_line(b, 48, "in mesa::slab_child"))
      << "foreign, then the owner";
  std::set<void *> handed_out;
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(handed_out.insert(owner.allocate_object()).second) << "a block handed out twice";
  }
  for (void *p : handed_out) owner.deallocate_object(p);
  owner.deallocate_object(keep);
}

// A block on its owner's own free list, which only the owner's thread reads, freed again
// through another child or the parent: the free key it holds says it is free, and the second
// free is refused (a probe found it pushed onto the migrated list too, so handed out twice).
// The other child here is on the owner's thread, which takes the same path as another
// thread's.
TEST(SlabParent, ADoubleFreeOfABlockOnItsOwnersOwnListIsRefused) {
  if (!mesa::internal::kKeyAloneDecides) GTEST_SKIP() << "the key alone decides on 64-bit targets";
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48);
  mesa::slab_child owner(&parent), other(&parent);
  void *keep = owner.allocate_object();
  void *a = owner.allocate_object();
  owner.deallocate_object(a);  // onto the owner's own list
  const std::string why =
      "the 48-byte block is already free (it holds the slab's free mark, on the list of the child "
      "that owns its page, which only that child's thread reads)";
  EXPECT_EQ(mesa_test::stderr_of([&] { parent.deallocate_object(a); }),
            mesa_test::refused_line("double free", a, "in mesa::slab_parent", why))
      << "through the parent";
  EXPECT_EQ(mesa_test::stderr_of([&] { other.deallocate_object(a); }),
            mesa_test::refused_line("double free", a, "in mesa::slab_child", why))
      << "through another child";
  EXPECT_TRUE(owner.is_freed(a));
  EXPECT_TRUE(other.is_freed(a)) << "another child sees it free by its mark";
  std::set<void *> handed_out;
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(handed_out.insert(owner.allocate_object()).second) << "a block handed out twice";
  }
  EXPECT_FALSE(owner.is_freed(a));
  EXPECT_FALSE(other.is_freed(a));
  for (void *p : handed_out) owner.deallocate_object(p);
  owner.deallocate_object(keep);
}

// A live block whose second word holds the free key by chance, freed through another child: on
// a 64-bit target the key alone decides, and the free is refused (the price, for data equal to
// a 64-bit number mixed from the parent's address); on a 32-bit one, where data holds a 32-bit
// key too often, the free goes on and the block comes back.
TEST(SlabParent, ALiveBlockHoldingTheKeyFreedByAnotherChild) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48);
  mesa::slab_child owner(&parent), other(&parent);
  void *keep = owner.allocate_object();
  void *a = owner.allocate_object();
  static_cast<std::uintptr_t *>(a)[1] = mesa::internal::free_list_key(&parent);
  const std::string err = mesa_test::stderr_of([&] { other.deallocate_object(a); });
  if (mesa::internal::kKeyAloneDecides) {
    EXPECT_NE(err.find("double free at"), std::string::npos) << err;
  } else {
    EXPECT_EQ(err, "");
    std::set<void *> handed_out;
    for (int i = 0; i < 200; ++i) handed_out.insert(owner.allocate_object());
    EXPECT_EQ(handed_out.count(a), 1u) << "the freed block comes back";
    for (void *p : handed_out) owner.deallocate_object(p);
  }
  owner.deallocate_object(keep);
}

// A child destroyed with a block still live elsewhere: the block's page is orphaned; freed
// through the parent it goes to the orphans' free list, and a second free is refused there.
TEST(SlabParent, ADoubleFreeOfAnOrphanedBlockIsRefused) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48);
  void *p;
  {
    mesa::slab_child owner(&parent);
    p = owner.allocate_object();
  }
  parent.deallocate_object(p);
  EXPECT_EQ(mesa_test::stderr_of([&] { parent.deallocate_object(p); }),
            mesa_test::double_free_line(p, 48, "in mesa::slab_parent"));
  mesa::slab_child adopter(&parent);
  std::set<void *> handed_out;
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(handed_out.insert(adopter.allocate_object()).second) << "a block handed out twice";
  }
  for (void *q : handed_out) adopter.deallocate_object(q);
}

// A block of another slab (its page is not one of this parent's) is refused, not pushed into
// a list of a "page" that does not exist.
TEST(SlabParent, ABlockOfAnotherSlabIsRefused) {
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48), elsewhere(&upstream, 48);
  mesa::slab_child child(&parent), stranger(&elsewhere);
  void *theirs = stranger.allocate_object();
  (void)child.allocate_object();
  const std::string err = mesa_test::stderr_of([&] { child.deallocate_object(theirs); });
  char expected[200];
  std::snprintf(expected, sizeof expected,
                "mesa_alloc: invalid free at %p in mesa::slab_child: not a block of this slab (its "
                "page is not one of the parent's); the block is left alone\n",
                theirs);
  EXPECT_EQ(err, expected);
  stranger.deallocate_object(theirs);
}

// The slot check divides by a multiply (internal::multiple_test): exact for every divisor a slot
// size can be, odd and even, around multiples far up the range too.
TEST(SlabParent, TheSlotCheckKnowsEveryMultiple) {
  std::vector<std::size_t> divisors;
  for (std::size_t d = 1; d <= 300; ++d) divisors.push_back(d);
  for (std::size_t d : {std::size_t{4096}, std::size_t{3} << 20, std::size_t{1} << 30,
                        (std::size_t{1} << 30) - 8, std::size_t{1000000007}}) {
    divisors.push_back(d);
  }
  for (std::size_t d : divisors) {
    const mesa::internal::multiple_test is_multiple(d);
    for (std::uintptr_t x = 0; x < 5000; ++x) {
      ASSERT_EQ(is_multiple(x), x % d == 0) << x << " by " << d;
    }
    for (std::uintptr_t k : {std::uintptr_t{1000}, UINTPTR_MAX / d - 1, UINTPTR_MAX / d}) {
      for (std::uintptr_t x = k * d - 3; x != k * d + 4; ++x) {
        ASSERT_EQ(is_multiple(x), x % d == 0) << x << " by " << d;
      }
    }
  }
}

// An interior pointer, or a page's header, is not a slot: every way of freeing it refuses it
// (the owner's C table, another child's, the parent) and so does a realloc, where a push would
// hand the slot out again over live blocks (and one over the page header broke the parent's
// page list). Slot sizes odd and even; the blocks stay intact and are handed out once.
TEST(SlabParentC, AnInteriorPointerOrAPageHeaderIsRefused) {
  for (std::size_t size : {std::size_t{24}, std::size_t{64}, std::size_t{72}, std::size_t{200}}) {
    SCOPED_TRACE(size);
    mesa_slab_parent *parent = mesa_slab_parent_create(nullptr, size);
    const mesa_allocator *owner = mesa_slab_child_create(parent);
    const mesa_allocator *other = mesa_slab_child_create(parent);
    auto *x =
        static_cast<unsigned char *>(mesa_alloc2(nullptr, owner, size, 8, MESA_ALLOC_SCOPE_OBJECT));
    auto *y =
        static_cast<unsigned char *>(mesa_alloc2(nullptr, owner, size, 8, MESA_ALLOC_SCOPE_OBJECT));
    ASSERT_NE(x, nullptr);
    ASSERT_NE(y, nullptr);
    std::memset(x, 'x', size);
    std::memset(y, 'y', size);
    // The C parent's pages are those of a C++ parent of the same object size.
    const std::uintptr_t page_size =
        mesa::slab_parent(std::pmr::null_memory_resource(), size).page_size();
    const auto page_start =
        reinterpret_cast<unsigned char *>(reinterpret_cast<std::uintptr_t>(x) & ~(page_size - 1));
    ASSERT_LT(x - page_start, 64) << "x is the page's first slot";
    const std::string why =
        "not a block of this slab (not the start of one of its slots: an interior pointer, or a "
        "page's header)";
    for (unsigned char *bad : {x + 8, x + size - 8, page_start}) {
      const std::string line =
          mesa_test::refused_line("invalid free", bad, "in mesa::slab_child", why);
      EXPECT_EQ(mesa_test::stderr_of([&] { mesa_free2(nullptr, owner, bad); }), line);
      EXPECT_EQ(mesa_test::stderr_of([&] { mesa_free2(nullptr, other, bad); }), line);
      EXPECT_EQ(mesa_test::stderr_of([&] { mesa_slab_parent_free(parent, bad); }),
                mesa_test::refused_line("invalid free", bad, "in mesa::slab_parent", why));
      for (const mesa_allocator *table : {owner, other}) {
        EXPECT_EQ(mesa_test::stderr_of([&] {
                    EXPECT_EQ(mesa_realloc2(nullptr, table, bad, 8, 8, MESA_ALLOC_SCOPE_OBJECT),
                              nullptr);
                  }),
                  mesa_test::refused_line("invalid realloc", bad, "in mesa::slab_child", why));
      }
    }
    std::set<void *> handed_out;
    for (int i = 0; i < 300; ++i) {
      auto *q = static_cast<unsigned char *>(
          mesa_alloc2(nullptr, owner, size, 8, MESA_ALLOC_SCOPE_OBJECT));
      ASSERT_NE(q, nullptr);
      EXPECT_TRUE(q + size <= x || q >= x + size) << "over x";
      EXPECT_TRUE(q + size <= y || q >= y + size) << "over y";
      EXPECT_TRUE(handed_out.insert(q).second) << "handed out twice";
      std::memset(q, 'n', size);
    }
    EXPECT_EQ(x[0], 'x');
    EXPECT_EQ(x[size - 1], 'x');
    EXPECT_EQ(y[0], 'y');
    for (void *q : handed_out) mesa_free2(nullptr, owner, q);
    mesa_free2(nullptr, other, x);
    mesa_free2(nullptr, owner, y);
    mesa_slab_child_destroy(owner);
    mesa_slab_child_destroy(other);
    mesa_slab_parent_destroy(parent);
  }
}

TEST(SlabParentDeathTest, ParentDestroyedBeforeChildIsAClearError) {
  EXPECT_DEATH(
      {
        counting_resource upstream;
        auto *parent = new mesa::slab_parent(&upstream, 16);
        auto *child = new mesa::slab_child(parent);
        (void)child;
        delete parent;
      },
      "mesa_alloc: slab_parent destroyed with live children");
}

// Threads allocate from their own child and free blocks allocated by the others; every
// block comes back exactly once and nothing is lost.
TEST(SlabParent, CrossThreadFreeLosesNoBlocks) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  constexpr int kBatch = 64;
  counting_resource upstream;
  mesa::slab_parent parent(&upstream, 48, 0, 4096);
  std::mutex mailbox_mutex;
  std::vector<std::vector<void *>> mailbox(kThreads);
  std::atomic<long> allocated{0}, freed{0};
  auto worker = [&](int id) {
    mesa::slab_child child(&parent);
    for (int round = 0; round < kRounds; ++round) {
      std::vector<void *> mine;
      for (int i = 0; i < kBatch; ++i) {
        auto *p = static_cast<long *>(child.allocate_object());
        *p = id;  // write the block: TSan sees any unsynchronised reuse
        mine.push_back(p);
      }
      allocated += kBatch;
      std::vector<void *> theirs;
      {
        std::lock_guard<std::mutex> lock(mailbox_mutex);
        auto &next = mailbox[(id + 1) % kThreads];
        next.insert(next.end(), mine.begin(), mine.end());
        theirs.swap(mailbox[id]);
      }
      for (void *p : theirs) {
        *static_cast<long *>(p) = -1;
        child.deallocate_object(p);
      }
      freed += static_cast<long>(theirs.size());
      if (round % 50 == 49 && id == 0) {
        // Destroy and recreate this thread's child while its blocks are live elsewhere.
        child.~slab_child();
        new (&child) mesa::slab_child(&parent);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto &t : threads) t.join();
  mesa::slab_child last(&parent);
  for (auto &box : mailbox) {
    for (void *p : box) last.deallocate_object(p);
    freed += static_cast<long>(box.size());
  }
  EXPECT_EQ(allocated.load(), freed.load());
  // No lost blocks: everything the pages hold can be allocated again without a new page.
  const std::size_t pages = parent.pages();
  const std::size_t capacity = pages * ((4096 - kPageHeader) / 48);
  std::set<void *> seen;
  for (std::size_t i = 0; i < capacity; ++i)
    EXPECT_TRUE(seen.insert(last.allocate_object()).second);
  EXPECT_EQ(parent.pages(), pages) << "every block freed on any thread came back";
}

TEST(SlabParentC, ChildrenOnTwoThreadsFreeEachOthersBlocks) {
  mesa_test::counting_table table;
  EXPECT_EQ(mesa_slab_parent_create(&table.table, 0), nullptr);
  EXPECT_EQ(mesa_slab_child_create(nullptr), nullptr);
  mesa_slab_parent *parent = mesa_slab_parent_create(&table.table, 40);
  ASSERT_NE(parent, nullptr);
  const mesa_allocator *a = mesa_slab_child_create(parent);
  const mesa_allocator *b = mesa_slab_child_create(parent);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, a, 41, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr) << "fixed size";
  std::vector<void *> from_a(2000), from_b(2000);
  std::thread ta([&] {
    for (void *&p : from_a) p = mesa_alloc2(nullptr, a, 40, 8, MESA_ALLOC_SCOPE_OBJECT);
  });
  std::thread tb([&] {
    for (void *&p : from_b) p = mesa_alloc2(nullptr, b, 40, 8, MESA_ALLOC_SCOPE_OBJECT);
  });
  ta.join();
  tb.join();
  std::set<void *> all(from_a.begin(), from_a.end());
  all.insert(from_b.begin(), from_b.end());
  EXPECT_EQ(all.size(), 4000u);
  EXPECT_EQ(all.count(nullptr), 0u);
  // Each thread frees the other's blocks through its own child.
  std::thread fa([&] {
    for (void *p : from_b) mesa_free2(nullptr, a, p);
  });
  std::thread fb([&] {
    for (void *p : from_a) mesa_free2(nullptr, b, p);
  });
  fa.join();
  fb.join();
  mesa_slab_child_destroy(a);
  mesa_slab_child_destroy(b);
  mesa_slab_parent_destroy(parent);
  EXPECT_EQ(table.live, 0);
}

// A thread with no child of its own frees the blocks another thread allocates through its
// child, while that thread goes on allocating and freeing its own: through the parent
// (mesa_slab_parent_free, under the parent's lock) the blocks migrate back to the child, which
// hands none out twice and loses none. (The child's own free_fn is the owner's unlocked push:
// called on this thread it raced with the owner's pop, see fast_resources.h.)
TEST(SlabParentC, AThreadWithoutAChildFreesThroughTheParent) {
  mesa_test::counting_table table;
  mesa_slab_parent *parent = mesa_slab_parent_create(&table.table, 64);
  ASSERT_NE(parent, nullptr);
  const mesa_allocator *child = mesa_slab_child_create(parent);
  ASSERT_NE(child, nullptr);
  mesa_slab_parent_free(nullptr, nullptr);
  mesa_slab_parent_free(parent, nullptr);
  constexpr int kBlocks = 20000;
  std::mutex mutex;
  std::deque<std::pair<unsigned char *, int>> queue;
  bool done = false;
  std::atomic<int> overwritten{0};
  std::thread freer([&] {
    for (;;) {
      std::pair<unsigned char *, int> item;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (queue.empty()) {
          if (done) return;
          continue;
        }
        item = queue.front();
        queue.pop_front();
      }
      for (int k = 16; k < 64; ++k) {
        if (item.first[k] != static_cast<unsigned char>(item.second)) ++overwritten;
      }
      mesa_slab_parent_free(parent, item.first);
    }
  });
  unsigned char *kept[64] = {};
  for (int i = 0; i < kBlocks; ++i) {
    auto *p =
        static_cast<unsigned char *>(mesa_alloc2(nullptr, child, 64, 8, MESA_ALLOC_SCOPE_OBJECT));
    ASSERT_NE(p, nullptr);
    std::memset(p + 16, i & 0xff, 48);
    if (i % 2 == 0) {
      std::lock_guard<std::mutex> lock(mutex);
      queue.emplace_back(p, i & 0xff);
      continue;
    }
    unsigned char *&slot = kept[(i / 2) % 64];
    if (slot != nullptr) mesa_free2(nullptr, child, slot);
    slot = p;
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
  }
  freer.join();
  EXPECT_EQ(overwritten.load(), 0) << "a block was handed out twice";
  for (unsigned char *p : kept) mesa_free2(nullptr, child, p);
  // Every block came back: the child reuses the pages it has without asking for more. The table
  // also holds the parent and the child; a page has room for 64 blocks at least, so this many
  // fit, however few pages the run needed (a fixed 2000 did not when the freeing thread kept up).
  const long pages = table.live - 2;
  ASSERT_GT(pages, 0);
  std::set<void *> again;
  for (long i = 0; i < 64 * pages; ++i) {
    EXPECT_TRUE(again.insert(mesa_alloc2(nullptr, child, 64, 8, MESA_ALLOC_SCOPE_OBJECT)).second);
  }
  EXPECT_EQ(table.live - 2, pages);
  for (void *p : again) mesa_free2(nullptr, child, p);
  mesa_slab_child_destroy(child);
  mesa_slab_parent_destroy(parent);
  EXPECT_EQ(table.live, 0);
}

}  // namespace
