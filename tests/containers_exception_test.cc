// Exception safety when the resource fails mid-way (mesa::fault_resource): no leak, no
// cross-resource free, and the container unchanged wherever the standard gives the strong
// guarantee. Abseil's hash tables are not exception-safe: there a failure is a clear abort.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "containers/arena_containers.h"
#include "containers/containers.h"
#include "containers/resource_allocated.h"
#include "containers/testing/checking_resource.h"
#include "containers/unique_ptr.h"
#include "gtest/gtest.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/fault_resource.h"

namespace {

using mesa::testing::checking_resource;

const char kLong[] = "a string long enough to leave the small-string buffer and allocate";

class FaultTest : public ::testing::Test {
 protected:
  void TearDown() override {
    faults_.fail_none();
    EXPECT_EQ(checked_.foreign_frees(), 0u);
    EXPECT_EQ(checked_.mismatches(), 0u);
  }

  // Runs op(c) with the 0th, 1st, 2nd, ... allocation failing until it succeeds; after each
  // failure `c` must equal its state before the call (the strong guarantee).
  template <class C, class Op>
  void expect_strong(C &c, Op op) {
    for (int n = 0;; ++n) {
      const C before(c, std::pmr::new_delete_resource());
      faults_.fail_nth(n);
      try {
        op(c);
      } catch (const std::bad_alloc &) {
        EXPECT_TRUE(std::equal(c.begin(), c.end(), before.begin(), before.end()))
            << "changed after the allocation " << n << " failed";
        ++failures_seen_;
        continue;
      }
      faults_.fail_none();
      return;
    }
  }

  checking_resource checked_;
  mesa::fault_resource faults_{&checked_};
  int failures_seen_ = 0;
};

mesa::string long_value(std::pmr::memory_resource *r) { return mesa::string(kLong, r); }

TEST_F(FaultTest, VectorPushBackIsStrong) {
  mesa::vector<mesa::string> v(&faults_);
  for (int i = 0; i < 8; ++i) v.push_back(long_value(&faults_));
  v.shrink_to_fit();
  const auto *data = v.data();
  const mesa::string value = long_value(&faults_);
  expect_strong(v, [&](auto &c) {
    c.push_back(value);  // reallocates the buffer and copies `value`: 2 allocations
    EXPECT_NE(c.data(), data);
  });
  EXPECT_EQ(failures_seen_, 2);
  EXPECT_EQ(v.size(), 9u);
}

TEST_F(FaultTest, DequeListMapSetUnorderedInsertAreStrong) {
  mesa::deque<mesa::string> d(&faults_);
  mesa::list<mesa::string> l(&faults_);
  mesa::map<int, mesa::string> m(&faults_);
  mesa::set<mesa::string> s(&faults_);
  mesa::unordered_map<int, mesa::string> u(&faults_);
  for (int i = 0; i < 100; ++i) {
    expect_strong(d, [&](auto &c) { c.push_front(long_value(&faults_)); });
    expect_strong(l, [&](auto &c) { c.emplace_back(kLong); });
    expect_strong(m, [&](auto &c) { c.emplace(i, kLong); });
    expect_strong(s, [&](auto &c) { c.emplace(std::string(kLong) + std::to_string(i)); });
    expect_strong(u, [&](auto &c) { c.emplace(i, kLong); });  // includes rehashes
  }
  EXPECT_EQ(u.size(), 100u);
  EXPECT_GT(failures_seen_, 500);
}

TEST_F(FaultTest, StringAppendIsStrong) {
  mesa::string s(kLong, &faults_);
  for (int i = 0; i < 20; ++i) expect_strong(s, [&](auto &c) { c.append(kLong); });
  EXPECT_EQ(s.size(), 21 * (sizeof(kLong) - 1));
}

TEST_F(FaultTest, InlinedVectorPushBackIsStrong) {
  mesa::inlined_vector<mesa::string, 2> v(&faults_);
  for (int i = 0; i < 20; ++i) expect_strong(v, [&](auto &c) { c.emplace_back(kLong); });
  EXPECT_EQ(v.size(), 20u);
}

// Moving an inlined_vector whose inline elements allocate when moved (libstdc++'s deque) can
// throw, so its move constructor must not claim noexcept: a claimed one terminated, and made
// std::vector move instead of copy on growth, so a failure emptied an element already moved.
TEST_F(FaultTest, InlinedVectorOfAllocatingElementsStaysStrongInsideAVector) {
  using deques = mesa::inlined_vector<mesa::deque<int>, 1>;
  static_assert(!std::is_nothrow_move_constructible_v<deques>);
  static_assert(std::is_nothrow_move_constructible_v<mesa::inlined_vector<int, 4>>);
  static_assert(std::is_nothrow_move_constructible_v<mesa::inlined_vector<mesa::string, 2>>);
  mesa::vector<deques> v(&faults_);
  v.reserve(2);
  v.emplace_back().emplace_back().push_back(1);
  v.emplace_back().emplace_back().push_back(2);
  auto same = [](const deques &a, const deques &b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
  };
  for (int n = 0;; ++n) {
    const mesa::vector<deques> before(v, std::pmr::new_delete_resource());
    faults_.fail_nth(n);
    try {
      v.emplace_back();
    } catch (const std::bad_alloc &) {
      ASSERT_EQ(v.size(), 2u);
      EXPECT_TRUE(same(v[0], before[0]) && same(v[1], before[1]))
          << "changed after the allocation " << n << " failed";
      ++failures_seen_;
      continue;
    }
    faults_.fail_none();
    break;
  }
  EXPECT_GT(failures_seen_, 2);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0][0][0] + v[1][0][0], 3);

  deques inline_deques(&faults_);
  inline_deques.emplace_back().push_back(5);
  faults_.fail_nth(0);
  EXPECT_THROW(deques moved(std::move(inline_deques)), std::bad_alloc);
}

// A count that makes size() + n wrap, or a size past max_size(), throws std::length_error (as
// std::vector does) and leaves the vector as it was; Abseil alone writes past the inline buffer.
template <class Vector>
void expect_counts_past_max_size_throw(Vector &v) {
  for (int i = 1; i <= 3; ++i) v.push_back(i);
  const std::size_t want = 2;
  EXPECT_THROW(v.insert(v.end(), want - v.size(), 0), std::length_error) << "n = SIZE_MAX";
  EXPECT_THROW(v.insert(v.begin(), v.max_size() - 2, 7), std::length_error);
  const int many[] = {4, 5};
  EXPECT_THROW(v.insert(v.end(), many + 2, many), std::length_error) << "a reversed range";
  EXPECT_THROW(v.resize(SIZE_MAX), std::length_error);
  EXPECT_THROW(v.resize(SIZE_MAX, 9), std::length_error);
  // No block of more than PTRDIFF_MAX bytes exists: max_size() stops there, as std::vector's, so
  // a size Abseil's own limit (SIZE_MAX / 2 elements) lets through is length_error too, not the
  // allocator's bad_array_new_length (an API probe).
  EXPECT_LE(v.max_size(), std::size_t{PTRDIFF_MAX} / sizeof(int));
  EXPECT_THROW(v.resize(SIZE_MAX / 2), std::length_error);
  EXPECT_THROW(v.resize(v.max_size() + 1), std::length_error);
  // And so for the other counts a caller gives: reserve and the sized constructors.
  EXPECT_THROW(v.reserve(v.max_size() + 1), std::length_error);
  EXPECT_THROW(Vector(SIZE_MAX / 2, v.get_allocator()), std::length_error);
  EXPECT_THROW(Vector(v.max_size() + 1, 9, v.get_allocator()), std::length_error);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0] + v[1] + v[2], 6);
  v.insert(v.end(), many, many + 2);  // the checked overloads still insert
  v.insert(v.begin(), 2, 0);
  v.insert(v.begin(), {-1});
  EXPECT_EQ(v.size(), 8u);
  EXPECT_EQ(v.front(), -1);
  EXPECT_EQ(v.back(), 5);
}

TEST(InlinedVector, CountsPastMaxSizeThrowLengthError) {
  checking_resource checked;
  mesa::inlined_vector<int, 4> v(&checked);
  expect_counts_past_max_size_throw(v);
  mesa::arena_resource arena(&checked);
  mesa::arena_inlined_vector<int, 4> a(&arena);
  expect_counts_past_max_size_throw(a);
}

// Whole workloads: whatever allocation fails, nothing leaks (fail_each_allocation checks the
// bytes in use through the resource after each run).
template <class Body>
void expect_no_leak(Body body) {
  checking_resource checked;
  const mesa::fault_loop_result result = mesa::fail_each_allocation(&checked, body);
  EXPECT_TRUE(result.completed);
  EXPECT_FALSE(result.leaked) << "leak when allocation " << result.leak_at << " failed";
  EXPECT_GT(result.failure_points, 3u);
  EXPECT_EQ(checked.live(), 0u);
  EXPECT_EQ(checked.foreign_frees(), 0u);
  EXPECT_EQ(checked.mismatches(), 0u);
}

TEST(FaultLoop, StdContainersNeverLeak) {
  expect_no_leak([](std::pmr::memory_resource *r) {
    mesa::vector<mesa::vector<mesa::string>> nested(r);
    for (int i = 0; i < 10; ++i) nested.emplace_back().emplace_back(kLong);
    mesa::map<mesa::string, mesa::list<int>> m(r);
    m[mesa::string(kLong, r)].push_back(1);
    mesa::unordered_map<int, mesa::deque<int>> u(r);
    for (int i = 0; i < 50; ++i) u[i].push_back(i);
    mesa::inlined_vector<mesa::string, 1> iv(r);
    iv.emplace_back(kLong);
    iv.emplace_back(kLong);
    mesa::vector<mesa::string> copy(nested[3], r);
    mesa::swap_contents(copy, nested[4]);
  });
}

// Abseil's InlinedVector copy constructor leaks its heap buffer when an element's copy throws
// (it marks the buffer as owned only after the last element); mesa::inlined_vector copies
// through the range constructor instead.
TEST(FaultLoop, InlinedVectorCopiesNeverLeak) {
  expect_no_leak([](std::pmr::memory_resource *r) {
    mesa::inlined_vector<mesa::string, 2> v(r);
    for (int i = 0; i < 5; ++i) v.emplace_back(kLong);
    mesa::inlined_vector<mesa::string, 2> copy(v);
    mesa::inlined_vector<mesa::string, 2> copy_with_resource(v, v.get_allocator());
    mesa::vector<mesa::inlined_vector<mesa::string, 2>> nested(r);
    nested.push_back(v);
  });
}

struct node : mesa::resource_allocated {
  explicit node(std::pmr::memory_resource *r) : names(r) { names.emplace_back(kLong); }
  virtual ~node() = default;
  mesa::vector<mesa::string> names;  // allocates in the constructor: may throw mid-way
};

TEST(FaultLoop, OwningPointersAndMixinNeverLeak) {
  expect_no_leak([](std::pmr::memory_resource *r) {
    auto a = mesa::allocate_unique<node>(r, r);
    auto arr = mesa::allocate_unique<mesa::string[]>(r, 4);
    arr[3] = kLong;
    auto s = mesa::allocate_shared<node>(r, r);
    std::unique_ptr<node> m(new (r) node(r));
    auto vec = mesa::allocate_unique<mesa::vector<mesa::string>>(r);
    vec->emplace_back(kLong);
  });
}

TEST(FaultLoop, ArenaContainersNeverLeakUpstream) {
  expect_no_leak([](std::pmr::memory_resource *r) {
    mesa::arena_resource arena(r, mesa::arena_options{256, 4096, 0, nullptr, 0});
    mesa::arena_vector<mesa::arena_string> v(&arena);
    for (int i = 0; i < 50; ++i) v.emplace_back(kLong, &arena);
    mesa::arena_map<int, int> m(&arena);
    for (int i = 0; i < 200; ++i) m[i] = i;
  });
}

void fail_flat_table_growth(mesa::fault_resource *faults) {
  mesa::flat_hash_map<int, int> m(faults);
  faults->fail_nth(0);
  m[1] = 1;
}

void fail_node_allocation(mesa::fault_resource *faults) {
  mesa::node_hash_set<int> s(faults);
  s.insert(1);
  faults->fail_nth(0);  // the node of the next element
  s.insert(2);
}

void fail_element_construction(mesa::fault_resource *faults) {
  mesa::flat_hash_map<int, mesa::string> m(faults);
  m.reserve(10);
  faults->fail_nth(0);  // the string inside the element
  m.try_emplace(1, kLong);
}

TEST(HashTableDeathTest, OutOfMemoryInsideAnAbseilTableIsAClearAbort) {
  checking_resource checked;
  mesa::fault_resource faults(&checked);
  EXPECT_DEATH(fail_flat_table_growth(&faults),
               "mesa_alloc: out of memory in an Abseil hash table \\(a block of [0-9]+ bytes\\)");
  EXPECT_DEATH(fail_node_allocation(&faults),
               "mesa_alloc: out of memory in an Abseil hash table \\(a block of [0-9]+ bytes\\)");
  EXPECT_DEATH(fail_element_construction(&faults),
               "mesa_alloc: exception while constructing an element of an Abseil hash table");
}

// A hash that throws on its `*throw_at`th call (0: never), as one reading a key's text from a
// source that can fail would.
struct picky_hash {
  int *calls;
  const int *throw_at;
  std::size_t operator()(int key) const {
    if (++*calls == *throw_at) throw std::runtime_error("hash failed");
    return std::hash<int>()(key);
  }
};

struct picky_eq {
  bool operator()(int a, int b) const {
    if (a == 13 || b == 13) throw std::runtime_error("eq failed");
    return a == b;
  }
};

// A throw in the middle of a rehash left Abseil's table half moved (size() 12 with 7 elements
// found, the old array leaked) and went on without a word.
void throw_from_the_hash_while_rehashing() {
  int calls = 0, throw_at = 0;
  mesa::flat_hash_set<int, picky_hash> s(0, picky_hash{&calls, &throw_at}, {},
                                         std::pmr::new_delete_resource());
  for (int i = 0; i < 7; ++i) s.insert(i);
  throw_at = calls + 4;  // the next insert grows the table: its 4th hash is a rehash's
  for (int i = 7; i < 100; ++i) s.insert(i);
}

void throw_from_the_key_equality() {
  mesa::node_hash_set<int, std::hash<int>, picky_eq> s(std::pmr::new_delete_resource());
  s.insert(13);
  s.insert(13);
}

TEST(HashTableDeathTest, AnExceptionFromTheHashOrTheEqualityIsAClearAbort) {
  EXPECT_DEATH(throw_from_the_hash_while_rehashing(),
               "mesa_alloc: exception from the hash function of an Abseil hash table");
  EXPECT_DEATH(throw_from_the_key_equality(),
               "mesa_alloc: exception from the key equality of an Abseil hash table");
}

TEST(HashTable, TheProgramsFunctorsAreKeptWhole) {
  int calls = 0, throw_at = 0;
  mesa::flat_hash_set<int, picky_hash> s(0, picky_hash{&calls, &throw_at}, {},
                                         std::pmr::new_delete_resource());
  s.insert(1);
  EXPECT_GT(calls, 0);
  const picky_hash &hash = s.hash_function();
  EXPECT_EQ(hash.calls, &calls);
  static_assert(sizeof(mesa::flat_hash_set<int>) ==
                    sizeof(absl::flat_hash_set<int>) + sizeof(std::pmr::memory_resource *),
                "empty functors stay empty");
}

struct final_hash final {
  std::size_t operator()(int key) const { return std::hash<int>()(key) ^ 0x5a; }
};

std::size_t hash_by_pointer(const int &key) { return static_cast<std::size_t>(key) * 31; }

// Every hash a table took before the wrappers still builds one: a final class, a function
// pointer, a std::function built from a lambda.
TEST(HashTable, FinalFunctionPointerAndStdFunctionHashesStillWork) {
  std::pmr::memory_resource *r = std::pmr::new_delete_resource();
  mesa::flat_hash_set<int, final_hash> a(r);
  mesa::flat_hash_set<int, std::size_t (*)(const int &)> b(0, &hash_by_pointer, {}, r);
  mesa::node_hash_set<int, std::function<std::size_t(int)>> c(
      0, [](int key) { return static_cast<std::size_t>(key); }, {}, r);
  for (int i = 0; i < 100; ++i) {
    a.insert(i);
    b.insert(i);
    c.insert(i);
  }
  EXPECT_EQ(a.size() + b.size() + c.size(), 300u);
  EXPECT_TRUE(a.contains(42) && b.contains(42) && c.contains(42));
  const final_hash &kept = a.hash_function();
  EXPECT_EQ(kept(1), final_hash()(1));
  EXPECT_EQ(b.hash_function()(2), 62u);
  static_assert(!std::is_invocable_v<const mesa::flat_hash_set<int, final_hash>::hasher &,
                                     const std::string &>,
                "the wrapper is callable exactly as the program's hash is");
}

// A count whose byte size does not fit size_t is reported as asked, not as a wrapped product.
void allocate_overflowing_count() {
  mesa::hash_table_allocator<std::pmr::polymorphic_allocator<std::uint64_t>> a(
      std::pmr::new_delete_resource());
  (void)a.allocate(SIZE_MAX / 4);
}

TEST(HashTableDeathTest, OverflowingCountIsReportedUnwrapped) {
  EXPECT_DEATH(allocate_overflowing_count(), "out of memory in an Abseil hash table \\(" +
                                                 std::to_string(SIZE_MAX / 4) +
                                                 " units of 8 bytes, more than a size_t holds\\)");
}

TEST(HashTable, ReservedTableWithValuesBuiltOutsideDoesNotAllocate) {
  checking_resource checked;
  mesa::fault_resource faults(&checked);
  mesa::flat_hash_map<int, mesa::string> m(&faults);
  m.reserve(100);
  mesa::vector<mesa::string> values(50, mesa::string(kLong, &faults), &faults);
  const std::uint64_t attempts = faults.attempts();
  for (int i = 0; i < 50; ++i) m.try_emplace(i, std::move(values[i]));  // equal resources: moves
  EXPECT_EQ(faults.attempts(), attempts);
  EXPECT_EQ(m.at(49), kLong);
}

}  // namespace
