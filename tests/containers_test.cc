// The container aliases: resources reach every allocation, nested containers inherit the
// outer resource, and moves/swaps on equal and unequal resources never free a block through
// the wrong resource (each resource is a checking_resource that counts foreign frees).
#include "containers/containers.h"

#include <memory_resource>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "containers/testing/checking_resource.h"
#include "gtest/gtest.h"

namespace {

using mesa::testing::checking_resource;

const char kLong[] = "a value long enough to leave the small-string buffer: it allocates";

mesa::string long_value(int i, std::pmr::memory_resource *r) {
  mesa::string s(kLong, r);
  s += std::to_string(i).c_str();
  return s;
}

// How to fill and read each container kind with n string-bearing elements.
template <class C>
struct kind;

template <class T>
void fill_sequence(T &c, int n) {
  for (int i = 0; i < n; ++i) c.emplace_back(long_value(i, c.get_allocator().resource()));
}

template <>
struct kind<mesa::vector<mesa::string>> {
  static void fill(mesa::vector<mesa::string> &c, int n) { fill_sequence(c, n); }
  static std::string first(const mesa::vector<mesa::string> &c) { return c.front().c_str(); }
};
template <>
struct kind<mesa::deque<mesa::string>> {
  static void fill(mesa::deque<mesa::string> &c, int n) { fill_sequence(c, n); }
  static std::string first(const mesa::deque<mesa::string> &c) { return c.front().c_str(); }
};
template <>
struct kind<mesa::list<mesa::string>> {
  static void fill(mesa::list<mesa::string> &c, int n) { fill_sequence(c, n); }
  static std::string first(const mesa::list<mesa::string> &c) { return c.front().c_str(); }
};
template <>
struct kind<mesa::inlined_vector<mesa::string, 2>> {
  static void fill(mesa::inlined_vector<mesa::string, 2> &c, int n) { fill_sequence(c, n); }
  static std::string first(const mesa::inlined_vector<mesa::string, 2> &c) {
    return c.front().c_str();
  }
};
template <class Map>
struct map_kind {
  static void fill(Map &c, int n) {
    for (int i = 0; i < n; ++i) c.emplace(i, long_value(i, c.get_allocator().resource()));
  }
  static std::string first(const Map &c) { return c.at(0).c_str(); }
};
template <>
struct kind<mesa::map<int, mesa::string>> : map_kind<mesa::map<int, mesa::string>> {};
template <>
struct kind<mesa::unordered_map<int, mesa::string>>
    : map_kind<mesa::unordered_map<int, mesa::string>> {};
template <>
struct kind<mesa::flat_hash_map<int, mesa::string>>
    : map_kind<mesa::flat_hash_map<int, mesa::string>> {};
template <>
struct kind<mesa::node_hash_map<int, mesa::string>>
    : map_kind<mesa::node_hash_map<int, mesa::string>> {};
template <class Set>
struct set_kind {
  static void fill(Set &c, int n) {
    for (int i = 0; i < n; ++i) c.insert(long_value(i, c.get_allocator().resource()));
  }
  static std::string first(const Set &c) {
    return c.count(long_value(0, c.get_allocator().resource())) ? std::string(kLong) + "0" : "";
  }
};
template <>
struct kind<mesa::set<mesa::string>> : set_kind<mesa::set<mesa::string>> {};
template <>
struct kind<mesa::unordered_set<mesa::string>> : set_kind<mesa::unordered_set<mesa::string>> {};
template <>
struct kind<mesa::flat_hash_set<mesa::string>> : set_kind<mesa::flat_hash_set<mesa::string>> {};
template <>
struct kind<mesa::node_hash_set<mesa::string>> : set_kind<mesa::node_hash_set<mesa::string>> {};

template <class C>
class ContainerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (checking_resource *r : {&a_, &b_}) {
      EXPECT_EQ(r->live(), 0u);
      EXPECT_EQ(r->foreign_frees(), 0u);
      EXPECT_EQ(r->mismatches(), 0u);
    }
  }
  checking_resource a_, b_;
};

using Kinds =
    ::testing::Types<mesa::vector<mesa::string>, mesa::deque<mesa::string>,
                     mesa::list<mesa::string>, mesa::inlined_vector<mesa::string, 2>,
                     mesa::map<int, mesa::string>, mesa::unordered_map<int, mesa::string>,
                     mesa::flat_hash_map<int, mesa::string>, mesa::node_hash_map<int, mesa::string>,
                     mesa::set<mesa::string>, mesa::unordered_set<mesa::string>,
                     mesa::flat_hash_set<mesa::string>, mesa::node_hash_set<mesa::string>>;
TYPED_TEST_SUITE(ContainerTest, Kinds);

TYPED_TEST(ContainerTest, EveryBlockComesFromTheResource) {
  {
    TypeParam c(&this->a_);
    kind<TypeParam>::fill(c, 50);
    EXPECT_GE(this->a_.live(), 50u);  // at least one block per string
    EXPECT_EQ(kind<TypeParam>::first(c), std::string(kLong) + "0");
  }
  EXPECT_EQ(this->b_.allocations(), 0u);
}

TYPED_TEST(ContainerTest, MoveConstructionTakesTheResourceAndAllocatesNothing) {
  TypeParam source(&this->a_);
  kind<TypeParam>::fill(source, 20);
  const std::size_t allocations = this->a_.allocations();
  TypeParam moved(std::move(source));
  EXPECT_EQ(moved.get_allocator().resource(), &this->a_);
  // Exceptions: inline elements are moved one by one; libstdc++'s deque move constructor
  // gives the moved-from deque a fresh (allocated) map.
  if (!std::is_same_v<TypeParam, mesa::inlined_vector<mesa::string, 2>> &&
      !std::is_same_v<TypeParam, mesa::deque<mesa::string>>) {
    EXPECT_EQ(this->a_.allocations(), allocations);
  }
  EXPECT_EQ(kind<TypeParam>::first(moved), std::string(kLong) + "0");
}

TYPED_TEST(ContainerTest, MoveWithAnotherResourceCopiesIntoIt) {
  TypeParam source(&this->a_);
  kind<TypeParam>::fill(source, 20);
  TypeParam moved(std::move(source), &this->b_);
  EXPECT_EQ(moved.get_allocator().resource(), &this->b_);
  EXPECT_GE(this->b_.live(), 20u);
  EXPECT_EQ(kind<TypeParam>::first(moved), std::string(kLong) + "0");
}

TYPED_TEST(ContainerTest, MoveAssignmentOnUnequalResourcesKeepsTheTargetResource) {
  TypeParam target(&this->a_), source(&this->b_);
  kind<TypeParam>::fill(target, 5);
  kind<TypeParam>::fill(source, 30);
  target = std::move(source);
  EXPECT_EQ(target.get_allocator().resource(), &this->a_);
  EXPECT_EQ(target.size(), 30u);
  EXPECT_GE(this->a_.live(), 30u);
  // Every block of `target` is in a_: after `source` is gone b_ holds nothing of it.
  source = TypeParam(&this->b_);
  EXPECT_EQ(kind<TypeParam>::first(target), std::string(kLong) + "0");
}

TYPED_TEST(ContainerTest, MoveAssignmentOnEqualResourcesStealsTheBuffer) {
  TypeParam target(&this->a_), source(&this->a_);
  kind<TypeParam>::fill(source, 30);
  const std::size_t allocations = this->a_.allocations();
  target = std::move(source);
  if (!std::is_same_v<TypeParam, mesa::inlined_vector<mesa::string, 2>>) {
    EXPECT_EQ(this->a_.allocations(), allocations);
  }
  EXPECT_EQ(target.size(), 30u);
}

TYPED_TEST(ContainerTest, SwapOnEqualResourcesAllocatesNothing) {
  TypeParam x(&this->a_), y(&this->a_);
  kind<TypeParam>::fill(x, 10);
  const std::size_t allocations = this->a_.allocations();
  mesa::swap_contents(x, y);
  if (!std::is_same_v<TypeParam, mesa::inlined_vector<mesa::string, 2>>) {
    EXPECT_EQ(this->a_.allocations(), allocations);  // a deque too: its member swap
  }
  EXPECT_EQ(x.size(), 0u);
  EXPECT_EQ(y.size(), 10u);
}

TYPED_TEST(ContainerTest, SwapContentsOnUnequalResourcesKeepsEachResource) {
  TypeParam x(&this->a_), y(&this->b_);
  kind<TypeParam>::fill(x, 10);
  kind<TypeParam>::fill(y, 3);
  mesa::swap_contents(x, y);
  EXPECT_EQ(x.get_allocator().resource(), &this->a_);
  EXPECT_EQ(y.get_allocator().resource(), &this->b_);
  EXPECT_EQ(x.size(), 3u);
  EXPECT_EQ(y.size(), 10u);
  // TearDown: no block of either container was freed through the other resource.
}

TYPED_TEST(ContainerTest, CopyNeedsTheResourceSpelledOut) {
  TypeParam source(&this->a_);
  kind<TypeParam>::fill(source, 5);
  TypeParam copy(source, &this->b_);
  EXPECT_EQ(copy.get_allocator().resource(), &this->b_);
  // The pitfall documented in containers.h: a plain copy falls back to the default resource
  // (Abseil's InlinedVector keeps the source's instead).
  TypeParam plain_copy(source);
  EXPECT_EQ(plain_copy.get_allocator().resource(),
            (std::is_same_v<TypeParam, mesa::inlined_vector<mesa::string, 2>>
                 ? &this->a_
                 : std::pmr::get_default_resource()));
}

TEST(Containers, NestedContainersGetTheOuterResource) {
  checking_resource r;
  {
    mesa::vector<mesa::vector<mesa::string>> outer(&r);
    outer.resize(3);
    outer[1].emplace_back(kLong);
    EXPECT_EQ(outer[1].get_allocator().resource(), &r);
    EXPECT_EQ(outer[1][0].get_allocator().resource(), &r);

    mesa::flat_hash_map<int, mesa::flat_hash_map<int, mesa::string>> tables(&r);
    tables[1][2] = kLong;
    EXPECT_EQ(tables[1].get_allocator().resource(), &r);
    EXPECT_EQ(tables[1][2].get_allocator().resource(), &r);

    mesa::map<mesa::string, mesa::list<mesa::string>> m(&r);
    m[mesa::string(kLong, &r)].emplace_back(kLong);
    EXPECT_EQ(m.begin()->first.get_allocator().resource(), &r);
    EXPECT_EQ(m.begin()->second.front().get_allocator().resource(), &r);

    mesa::inlined_vector<mesa::vector<int>, 1> small(&r);
    small.emplace_back();
    small.emplace_back();
    EXPECT_EQ(small[1].get_allocator().resource(), &r);
  }
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(Containers, StringConcatenationReturnsAStringOnTheDefaultResource) {
  checking_resource r;
  mesa::string a(kLong, &r), b(kLong, &r);
  EXPECT_EQ((a + b).get_allocator().resource(), std::pmr::get_default_resource());
  mesa::string joined(a, &r);  // the documented way
  joined += b;
  EXPECT_EQ(joined.get_allocator().resource(), &r);
}

TEST(Containers, InlinedVectorMemberSwapKeepsEachResource) {
  checking_resource a, b;
  {
    mesa::inlined_vector<mesa::string, 1> x(&a), y(&b);
    x.emplace_back(kLong);
    x.emplace_back(kLong);
    y.emplace_back("short");
    x.swap(y);
    EXPECT_EQ(x.get_allocator().resource(), &a);
    EXPECT_EQ(y.get_allocator().resource(), &b);
    EXPECT_EQ(x.size(), 1u);
    EXPECT_EQ(y.size(), 2u);
    EXPECT_EQ(y[1].get_allocator().resource(), &b);
    swap(x, y);
    EXPECT_EQ(x.size(), 2u);
  }
  EXPECT_EQ(a.live(), 0u);
  EXPECT_EQ(b.live(), 0u);
  EXPECT_EQ(a.foreign_frees() + b.foreign_frees(), 0u);
}

TEST(Containers, HashTableAllocatorIsOnePointerAndComparesByResource) {
  checking_resource a, b;
  EXPECT_EQ(sizeof(mesa::hash_table_allocator<mesa::allocator<int>>), sizeof(void *));
  mesa::flat_hash_set<int> x(&a), y(&a), z(&b);
  EXPECT_TRUE(x.get_allocator() == y.get_allocator());
  EXPECT_FALSE(x.get_allocator() == z.get_allocator());
}

}  // namespace

// The default resource refuses everything while it lives: an allocation meant for a
// container's resource that went to the default one throws std::bad_alloc.
class default_resource_refuses {
 public:
  default_resource_refuses()
      : previous_(std::pmr::set_default_resource(std::pmr::null_memory_resource())) {}
  ~default_resource_refuses() { std::pmr::set_default_resource(previous_); }

 private:
  std::pmr::memory_resource *previous_;
};

// Abseil copies the inserted element into a temporary without the allocator (at every position,
// the end included, and for every insert of n copies): a probe counted one operator new per
// insert, and a null default resource made an insert whose resource had room throw.
TEST(Containers, InlinedVectorInsertsAnywhereAllocateOnlyFromItsResource) {
  checking_resource r;
  const mesa::string s("a string too long for the small-string buffer", &r);
  mesa::inlined_vector<mesa::string, 4> v(1, mesa::string("last", &r), &r);
  const default_resource_refuses refuses;
  v.insert(v.begin(), s);
  v.insert(v.begin(), mesa::string("moved in, long enough to allocate its own buffer", &r));
  v.emplace(v.begin() + 1, 40, 'x');
  v.insert(v.begin() + 2, 3, s);
  v.insert(v.begin(), 2, v[3]);  // copies of an element of the vector itself
  v.insert(v.end(), s);
  v.emplace(v.end(), 30, 'y');
  v.insert(v.end(), v[3]);  // at the end, a copy of an element of the vector itself
  ASSERT_EQ(v.size(), 12u);
  EXPECT_EQ(v[0], s);
  EXPECT_EQ(v[1], s);
  EXPECT_EQ(std::string_view(v[3]), std::string(40, 'x'));
  EXPECT_EQ(v[8], "last");
  EXPECT_EQ(v[9], s);
  EXPECT_EQ(std::string_view(v[10]), std::string(30, 'y'));
  EXPECT_EQ(v[11], v[3]);
  for (const mesa::string &e : v) EXPECT_EQ(e.get_allocator().resource(), &r);
}
