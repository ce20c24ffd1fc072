// The arena_allocator aliases: every block comes from the arena (its stats move, the upstream
// sees only arena blocks), propagation on move/swap, and the hash-table guard.
#include "containers/arena_containers.h"

#include <memory_resource>
#include <type_traits>
#include <utility>

#include "containers/containers.h"
#include "containers/testing/checking_resource.h"
#include "gtest/gtest.h"
#include "mesa_alloc/arena_resource.h"

namespace {

using mesa::testing::checking_resource;

const char kLong[] = "a string long enough to leave the small-string buffer and allocate";

class ArenaContainers : public ::testing::Test {
 protected:
  std::size_t used() const { return arena_.stats().bytes_allocated; }
  checking_resource upstream_;
  mesa::arena_resource arena_{&upstream_};
};

TEST_F(ArenaContainers, EveryAliasAllocatesFromTheArena) {
  std::size_t before = used();
  auto grew = [&] {
    const bool g = used() > before;
    before = used();
    return g;
  };
  mesa::arena_vector<int> v(&arena_);
  v.assign(100, 1);
  EXPECT_TRUE(grew());
  mesa::arena_deque<int> d(&arena_);
  d.push_back(1);
  EXPECT_TRUE(grew());
  mesa::arena_list<int> l(&arena_);
  l.push_back(1);
  EXPECT_TRUE(grew());
  mesa::arena_string s(kLong, &arena_);
  EXPECT_TRUE(grew());
  mesa::arena_set<int> set(&arena_);
  set.insert(1);
  EXPECT_TRUE(grew());
  mesa::arena_map<int, int> map(&arena_);
  map[1] = 2;
  EXPECT_TRUE(grew());
  mesa::arena_unordered_set<int> us(&arena_);
  us.insert(1);
  EXPECT_TRUE(grew());
  mesa::arena_unordered_map<int, int> um(&arena_);
  um[1] = 2;
  EXPECT_TRUE(grew());
  mesa::arena_flat_hash_set<int> fs(&arena_);
  fs.insert(1);
  EXPECT_TRUE(grew());
  mesa::arena_flat_hash_map<int, int> fm(&arena_);
  for (int i = 0; i < 1000; ++i) fm[i] = i;
  EXPECT_TRUE(grew());
  mesa::arena_node_hash_set<int> ns(&arena_);
  ns.insert(1);
  EXPECT_TRUE(grew());
  mesa::arena_node_hash_map<int, int> nm(&arena_);
  nm[1] = 2;
  EXPECT_TRUE(grew());
  mesa::arena_inlined_vector<int, 2> iv(&arena_);
  iv.assign(10, 3);
  EXPECT_TRUE(grew());
  // Upstream saw arena blocks only, and none freed one by one.
  EXPECT_EQ(upstream_.live(), arena_.stats().blocks);
  EXPECT_EQ(upstream_.foreign_frees(), 0u);
}

TEST_F(ArenaContainers, NestedContainersNameTheArena) {
  mesa::arena_vector<mesa::arena_vector<int>> outer(&arena_);
  outer.emplace_back(&arena_).push_back(1);
  mesa::arena_flat_hash_map<int, mesa::arena_string> names(&arena_);
  names.try_emplace(1, kLong, &arena_);
  EXPECT_EQ(outer[0].get_allocator().arena(), &arena_);
  EXPECT_EQ(names.at(1).get_allocator().arena(), &arena_);
}

TEST_F(ArenaContainers, AllocatorPropagatesOnMoveAndSwap) {
  checking_resource other_upstream;
  mesa::arena_resource other(&other_upstream);
  mesa::arena_vector<int> a(&arena_), b(&other);
  a.assign(10, 1);
  b.assign(3, 2);
  a.swap(b);
  EXPECT_EQ(a.get_allocator().arena(), &other);
  EXPECT_EQ(b.get_allocator().arena(), &arena_);
  EXPECT_EQ(b.size(), 10u);
  mesa::arena_flat_hash_map<int, int> m(&arena_), n(&other);
  m[1] = 1;
  n = std::move(m);
  EXPECT_EQ(n.get_allocator().arena(), &arena_);
  EXPECT_EQ(n.at(1), 1);
}

// Abseil's InlinedVector assignments keep the target's allocator while taking the source's heap
// buffer; the arena twin must not: the vector would hold memory of an arena about to go away.
// swap_contents keeps each container on its own arena, though the allocator propagates on move
// assignment: the contents move, the arenas stay.
template <class Container, class Fill>
void expect_swap_contents_keeps_the_arenas(mesa::arena_resource *first,
                                           mesa::arena_resource *second, Fill fill) {
  Container a(first), b(second);
  fill(a, 5);
  fill(b, 2);
  mesa::swap_contents(a, b);
  EXPECT_EQ(a.get_allocator().arena(), first);
  EXPECT_EQ(b.get_allocator().arena(), second);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(b.size(), 5u);
}

TEST_F(ArenaContainers, SwapContentsKeepsEachContainerOnItsArena) {
  mesa::arena_resource other(&upstream_);
  auto push = [](auto &c, int n) {
    for (int i = 0; i < n; ++i) c.push_back(i);
  };
  auto insert = [](auto &c, int n) {
    for (int i = 0; i < n; ++i) c.insert({i, i});
  };
  auto insert_key = [](auto &c, int n) {
    for (int i = 0; i < n; ++i) c.insert(i);
  };
  expect_swap_contents_keeps_the_arenas<mesa::arena_vector<int>>(&arena_, &other, push);
  expect_swap_contents_keeps_the_arenas<mesa::arena_deque<int>>(&arena_, &other, push);
  expect_swap_contents_keeps_the_arenas<mesa::arena_list<int>>(&arena_, &other, push);
  expect_swap_contents_keeps_the_arenas<mesa::arena_string>(
      &arena_, &other, [](auto &s, int n) { s.assign(static_cast<std::size_t>(n), 'x'); });
  expect_swap_contents_keeps_the_arenas<mesa::arena_map<int, int>>(&arena_, &other, insert);
  expect_swap_contents_keeps_the_arenas<mesa::arena_unordered_map<int, int>>(&arena_, &other,
                                                                             insert);
  expect_swap_contents_keeps_the_arenas<mesa::arena_flat_hash_map<int, int>>(&arena_, &other,
                                                                             insert);
  expect_swap_contents_keeps_the_arenas<mesa::arena_node_hash_set<int>>(&arena_, &other,
                                                                        insert_key);
  expect_swap_contents_keeps_the_arenas<mesa::arena_inlined_vector<int, 2>>(&arena_, &other, push);
  // After its owner releases the other arena, the first container's contents are its own.
  mesa::arena_vector<int> a(&arena_), b(&other);
  push(a, 3);
  push(b, 4);
  mesa::swap_contents(a, b);
  other.release();
  EXPECT_EQ(a.get_allocator().arena(), &arena_);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[3], 3);
}

// A null arena or resource is named where the container is made, not found as a crash at its
// first allocation.
TEST(ArenaContainersDeathTest, ANullArenaIsReportedAtConstruction) {
  mesa::arena_resource *no_arena = nullptr;
  std::pmr::memory_resource *no_resource = nullptr;
  EXPECT_DEATH(mesa::arena_vector<int>{no_arena},
               "^mesa_alloc: arena_allocator: no arena \\(null\\)\n");
  EXPECT_DEATH((mesa::arena_flat_hash_map<int, int>{no_arena}),
               "^mesa_alloc: hash_table_allocator: no resource \\(null\\)\n");
  EXPECT_DEATH((mesa::flat_hash_map<int, int>{no_resource}),
               "^mesa_alloc: hash_table_allocator: no resource \\(null\\)\n");
  EXPECT_DEATH(mesa::node_hash_set<int>{no_resource},
               "^mesa_alloc: hash_table_allocator: no resource \\(null\\)\n");
  // A literal nullptr is refused at compile time.
  static_assert(!std::is_constructible_v<mesa::flat_hash_map<int, int>, std::nullptr_t>);
  static_assert(!std::is_constructible_v<mesa::arena_flat_hash_map<int, int>, std::nullptr_t>);
  static_assert(!std::is_constructible_v<mesa::arena_vector<int>, std::nullptr_t>);
}

TEST_F(ArenaContainers, InlinedVectorTakesTheArenaWithItsContents) {
  mesa::arena_inlined_vector<int, 2> a(&arena_);
  {
    checking_resource other_upstream;
    mesa::arena_resource other(&other_upstream);
    mesa::arena_inlined_vector<int, 2> b(&other);
    b.assign(10, 7);  // spills into `other`
    a = std::move(b);
    EXPECT_EQ(a.get_allocator().arena(), &other);
    a = mesa::arena_inlined_vector<int, 2>(4, 3, &arena_);  // back: a must leave `other`
    EXPECT_EQ(a.get_allocator().arena(), &arena_);

    mesa::arena_inlined_vector<int, 2> c(&other), d(&arena_);
    c.assign(5, 1);
    d.assign(6, 2);
    std::swap(c, d);  // move construction and two move assignments
    EXPECT_EQ(c.get_allocator().arena(), &arena_);
    EXPECT_EQ(d.get_allocator().arena(), &other);
    EXPECT_EQ(c.size(), 6u);
    EXPECT_EQ(c[5], 2);
    swap(c, d);
    EXPECT_EQ(c.get_allocator().arena(), &other);

    mesa::arena_inlined_vector<int, 2> e(&other);
    e.assign(8, 9);
    d = e;  // a copy in e's arena
    EXPECT_EQ(d.get_allocator().arena(), &other);
    EXPECT_EQ(d.size(), 8u);
    EXPECT_EQ(d[7], 9);
    const mesa::arena_inlined_vector<int, 2> &itself = d;
    d = itself;
    EXPECT_EQ(d.size(), 8u);
  }  // `other` is gone: a must not point into it
  EXPECT_EQ(a.size(), 4u);
  for (int x : a) EXPECT_EQ(x, 3);
  a.push_back(4);
  EXPECT_EQ(a[4], 4);
}

// On one arena, assignment reuses the vector's storage: a loop of copies does not grow the arena.
TEST_F(ArenaContainers, InlinedVectorAssignmentOnOneArenaReusesItsStorage) {
  mesa::arena_inlined_vector<int, 2> source(100, 7, &arena_), copy(&arena_);
  copy = source;
  const std::size_t after_first = used();
  for (int i = 0; i < 1000; ++i) copy = source;
  EXPECT_EQ(used(), after_first);
  mesa::arena_inlined_vector<int, 2> moved(&arena_);
  moved = std::move(copy);
  EXPECT_EQ(used(), after_first) << "a move on one arena takes the buffer";
  EXPECT_EQ(moved.size(), 100u);
}

TEST_F(ArenaContainers, RewindReturnsContainerMemory) {
  const mesa::arena_mark mark = arena_.mark();
  {
    mesa::arena_vector<int> scratch(&arena_);
    scratch.resize(10000);
  }
  EXPECT_GT(used(), 0u);
  arena_.rewind(mark);
  EXPECT_EQ(used(), 0u);
}

}  // namespace
