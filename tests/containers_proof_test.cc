// The run-time proof: every C++ allocation of a workload over the containers goes through the
// callback table, none through global operator new/delete or malloc/free.
//
// This binary links //tests/support:global_allocation_counter, which replaces the global
// operator new/delete (every form) and, outside ASan/TSan builds, the malloc family. While the
// workload runs ("armed"), every call is counted, except those the counting table itself makes
// to its libc upstream (the root of the stack). Under ASan/TSan only operator new/delete are
// counted; the plain build counts both.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <utility>

#include "containers/arena_containers.h"
#include "containers/containers.h"
#include "containers/resource_allocated.h"
#include "containers/scoped_resource.h"
#include "containers/testing/driver_component.h"
#include "containers/unique_ptr.h"
#include "gtest/gtest.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "tests/support/counting_allocator.h"
#include "tests/support/global_allocation_counter.h"

namespace {

using global_counts = test::global_allocation_counts;

// The replacements really count (otherwise "zero" would prove nothing).
// Makes `p` visible to the outside, so the optimiser cannot elide a new/delete or malloc/free
// pair (which C++14 allows for new-expressions and GCC does for malloc at -O2).
void escape(void *p) { asm volatile("" : : "g"(p) : "memory"); }

TEST(ContainersProof, ReplacementsCountTheDefaultAllocator) {
  test::global_allocation_counter window;
  auto *v = new std::vector<int>(100);
  escape(v);
  delete v;
  void *p = std::malloc(24);
  escape(p);
  std::free(p);
  mesa::vector<int> on_default;  // no resource: std::pmr::get_default_resource(), operator new
  on_default.push_back(1);
  on_default = mesa::vector<int>();
  const global_counts counts = window.close();
  EXPECT_EQ(counts.news, 3);
  EXPECT_EQ(counts.deletes, 3);
  if (test::kReplacesMalloc) {
    EXPECT_GE(counts.mallocs, 4);  // operator new is on malloc too
    EXPECT_GE(counts.frees, 4);
  }
}

struct ir_value : mesa::resource_allocated {
  explicit ir_value(int id) : id(id) {}
  virtual ~ir_value() = default;
  int id;
};

struct ir_phi : ir_value {
  ir_phi(int id, std::pmr::memory_resource *r) : ir_value(id), sources(r) {}
  mesa::vector<mesa::string> sources;
};

struct alignas(64) ir_vector_constant : mesa::resource_allocated {
  float lanes[16] = {};
};

struct plain_base {
  virtual ~plain_base() = default;
  std::uint64_t tag = 1;
};
struct plain_derived : plain_base {
  explicit plain_derived(std::pmr::memory_resource *r) : names(r) {}
  mesa::list<mesa::string> names;
  std::uint64_t payload[8] = {};
};

constexpr std::string_view kLong = "a string too long for the small-string buffer of libstdc++";

// What one step of the workload did: how many table allocations it caused, whether its own
// checks (nested resources, contents) held.
struct step {
  const char *name;
  long allocations;
  long global_calls;  // global new/delete/malloc/free calls during the step
  bool ok;
};

class workload {
 public:
  workload(test::counting_allocator &counts, std::pmr::memory_resource *r,
           std::pmr::memory_resource *other)
      : counts_(counts), r_(r), other_(other) {}

  template <class F>
  void run(const char *name, F &&f) {
    const long before = counts_.allocations();
    const long global_before = counter_->counts().total();
    const bool ok = f();
    steps_[size_++] = {name, counts_.allocations() - before,
                       counter_->counts().total() - global_before, ok};
  }

  void all(const test::global_allocation_counter &counter) {
    counter_ = &counter;
    std::pmr::memory_resource *r = r_;
    run("vector growth/erase/shrink/move/swap", [r] {
      mesa::vector<int> v(r);
      for (int i = 0; i < 5000; ++i) v.push_back(i);
      v.erase(v.begin(), v.begin() + 2500);
      v.shrink_to_fit();
      mesa::vector<int> moved(std::move(v));
      mesa::vector<int> assigned(r);
      assigned = std::move(moved);
      mesa::vector<int> swapped(r);
      swapped.swap(assigned);
      mesa::vector<int> copy(swapped, r);
      return copy.size() == 2500 && copy.front() == 2500 && swapped.get_allocator().resource() == r;
    });
    run("deque", [r] {
      mesa::deque<int> d(r);
      for (int i = 0; i < 5000; ++i) (i % 2 ? d.push_back(i) : d.push_front(i));
      while (d.size() > 10) d.pop_front();
      d.shrink_to_fit();
      return d.size() == 10;
    });
    run("list of strings (nested)", [r] {
      mesa::list<mesa::string> l(r);
      for (int i = 0; i < 100; ++i) l.emplace_back(kLong);
      l.remove_if([](const mesa::string &s) { return s.empty(); });
      l.pop_front();
      return l.back().get_allocator().resource() == r && l.size() == 99;
    });
    run("string growth/copy", [r] {
      mesa::string s(r);
      for (int i = 0; i < 1000; ++i) s.append(kLong.substr(0, 7));
      mesa::string copy(s, r);
      copy.erase(10);
      copy.shrink_to_fit();
      return s.size() == 7000 && copy.size() == 10;
    });
    run("map and set", [r] {
      mesa::map<int, mesa::string> m(r);
      mesa::set<int> s(r);
      for (int i = 0; i < 2000; ++i) {
        m.emplace(i, kLong);
        s.insert(i * 7 % 2000);
      }
      for (int i = 0; i < 2000; i += 2) {
        m.erase(i);
        s.erase(i);
      }
      return m.size() == 1000 && s.size() == 1000 && m.at(1).get_allocator().resource() == r;
    });
    run("unordered_map/set rehash/erase (nested)", [r] {
      mesa::unordered_map<int, mesa::vector<int>> m(r);
      mesa::unordered_set<int> s(r);
      for (int i = 0; i < 3000; ++i) {
        m[i % 500].push_back(i);
        s.insert(i);
      }
      m.rehash(4096);
      for (int i = 0; i < 3000; i += 3) s.erase(i);
      s.rehash(0);
      return m.size() == 500 && s.size() == 2000 && m[7].get_allocator().resource() == r;
    });
    run("flat_hash_map/set rehash/erase (nested)", [r] {
      mesa::flat_hash_map<int, mesa::string> m(r);
      mesa::flat_hash_set<int> s(r);
      for (int i = 0; i < 3000; ++i) {
        m.try_emplace(i, kLong);
        s.insert(i);
      }
      for (int i = 0; i < 3000; i += 2) {
        m.erase(i);
        s.erase(i);
      }
      m.rehash(0);
      s.reserve(10000);
      mesa::flat_hash_map<int, mesa::string> moved(std::move(m));
      return moved.size() == 1500 && s.size() == 1500 &&
             moved.at(1).get_allocator().resource() == r;
    });
    run("node_hash_map/set (nested)", [r] {
      mesa::node_hash_map<mesa::string, mesa::vector<int>> m(r);
      mesa::node_hash_set<int> s(r);
      mesa::string key(kLong, r);
      for (int i = 0; i < 1000; ++i) {
        key.back() = static_cast<char>('a' + i % 26);
        m[key].push_back(i);
        s.insert(i);
      }
      s.erase(5);
      m.rehash(512);
      const auto &entry = *m.begin();
      return m.size() == 26 && s.size() == 999 && entry.first.get_allocator().resource() == r &&
             entry.second.get_allocator().resource() == r;
    });
    run("inlined_vector growth (nested)", [r] {
      mesa::inlined_vector<mesa::string, 4> v(r);
      for (int i = 0; i < 100; ++i) v.emplace_back(kLong);
      v.erase(v.begin() + 10, v.end());
      v.shrink_to_fit();
      return v.size() == 10 && v[3].get_allocator().resource() == r;
    });
    run("string-keyed lookups by literal and string_view", [r] {
      mesa::map<mesa::string, int> m(r);
      mesa::set<mesa::string> s(r);
      mesa::flat_hash_map<mesa::string, int> f(r);
      mesa::node_hash_map<mesa::string, int> n(r);
      mesa::flat_hash_set<mesa::string> fs(r);
      const mesa::string key(kLong, r);
      m.emplace(key, 1);
      s.insert(key);
      n.emplace(key, 3);
      fs.insert(key);
      f[kLong] = 2;  // the key is built once, in the table, on r
      bool ok = m.find(kLong) != m.end() && s.count(kLong.data()) == 1 && f.contains(kLong) &&
                f.find(kLong.data())->second == 2 && n.find(kLong) != n.end() && fs.contains(kLong);
      for (int i = 0; i < 100; ++i) ok = ok && f[kLong] == 2 && m.count(kLong) == 1;
      return ok && f.begin()->first.get_allocator().resource() == r;
    });
    run("inlined_vector assigned a braced list", [r] {
      mesa::inlined_vector<int, 2> v(r);
      v = {1, 2, 3, 4, 5};
      return v.size() == 5 && v.get_allocator().resource() == r;
    });
    run("vector<vector<string>> uses-allocator", [r] {
      mesa::vector<mesa::vector<mesa::string>> outer(r);
      outer.resize(10);
      for (auto &inner : outer) inner.emplace_back(kLong);
      outer.emplace_back().emplace_back(kLong);
      return outer.back().get_allocator().resource() == r &&
             outer[3][0].get_allocator().resource() == r;
    });
    run("allocate_unique objects, derived-to-base, arrays", [r] {
      auto phi = mesa::allocate_unique<ir_phi>(r, 1, r);
      phi->sources.emplace_back(kLong);
      mesa::unique_ptr<ir_value> base = std::move(phi);
      mesa::unique_ptr<plain_base> plain = mesa::allocate_unique<plain_derived>(r, r);
      auto vec = mesa::allocate_unique<mesa::vector<int>>(r);  // uses-allocator
      vec->assign(100, 7);
      auto strings = mesa::allocate_unique<mesa::string[]>(r, 5);
      strings[4].assign(kLong);
      auto ints = mesa::allocate_unique<std::uint32_t[]>(r, 1000);
      return vec->get_allocator().resource() == r && strings[4].get_allocator().resource() == r &&
             ints[999] == 0 && base->id == 1;
    });
    run("allocate_shared with control block", [r] {
      auto shared = mesa::allocate_shared<mesa::vector<mesa::string>>(r, 3, mesa::string(kLong, r));
      std::weak_ptr<mesa::vector<mesa::string>> weak = shared;
      std::shared_ptr<mesa::vector<mesa::string>> copy = shared;
      shared.reset();
      const bool ok = weak.lock()->at(2).get_allocator().resource() == r;
      copy.reset();
      return ok && weak.expired();
    });
    run("resource_allocated mixin", [r] {
      ir_value *v = new (r) ir_phi(2, r);
      static_cast<ir_phi *>(v)->sources.emplace_back(kLong);
      const bool ok = mesa::resource_allocated::resource_of(v) == r;
      delete v;
      ir_value *array = new (r) ir_value[4]{ir_value(1), ir_value(2), ir_value(3), ir_value(4)};
      delete[] array;
      auto *aligned = new (r) ir_vector_constant();
      const bool aligned_ok = reinterpret_cast<std::uintptr_t>(aligned) % 64 == 0;
      delete aligned;
      return ok && aligned_ok;
    });
    std::pmr::memory_resource *other = other_;
    run("moves and swaps across resources", [r, other] {
      mesa::vector<mesa::string> a(r), b(other);
      a.assign(10, mesa::string(kLong, r));
      b.assign(3, mesa::string(kLong, r));
      mesa::swap_contents(a, b);
      mesa::flat_hash_map<int, int> m(r), n(other);
      for (int i = 0; i < 100; ++i) m[i] = i;
      n = std::move(m);  // unequal: element-wise into `other`
      mesa::vector<mesa::string> c(std::move(a), other);
      return a.get_allocator().resource() == r && b.size() == 10 && c.size() == 3 &&
             n.size() == 100 && n.get_allocator().resource() == other;
    });
    run("scoped_resource", [r] {
      mesa::scoped_resource scope(r);
      mesa::vector<int> v(mesa::current_resource());
      v.resize(100);
      auto p = mesa::allocate_unique<int>(mesa::current_resource(), 5);
      return v.get_allocator().resource() == r;
    });
    run("arena_allocator containers on an arena over the table", [r] {
      mesa::arena_resource arena(r);
      mesa::arena_vector<mesa::arena_string> strings(&arena);
      for (int i = 0; i < 100; ++i) strings.emplace_back(kLong, &arena);
      mesa::arena_flat_hash_map<int, int> fm(&arena);
      mesa::arena_node_hash_map<int, int> nm(&arena);
      mesa::arena_map<int, int> m(&arena);
      mesa::arena_unordered_map<int, int> um(&arena);
      mesa::arena_deque<int> d(&arena);
      mesa::arena_list<int> l(&arena);
      mesa::arena_inlined_vector<int, 2> iv(&arena);
      for (int i = 0; i < 3000; ++i) {
        fm[i] = nm[i] = m[i] = um[i] = i;
        d.push_back(i);
        l.push_back(i);
        iv.push_back(i);
      }
      mesa::arena_flat_hash_set<int> fs(&arena);
      mesa::arena_node_hash_set<int> ns(&arena);
      mesa::arena_set<int> set(&arena);
      mesa::arena_unordered_set<int> us(&arena);
      fs.insert(1);
      ns.insert(1);
      set.insert(1);
      us.insert(1);
      return fm.size() == 3000 && arena.stats().blocks > 1;
    });
    run("driver component", [r] {
      return mesa::testing::run_driver_component(r, 300) ==
             mesa::testing::run_driver_component(r, 300);
    });
  }

  const step *begin() const { return steps_; }
  const step *end() const { return steps_ + size_; }

 private:
  test::counting_allocator &counts_;
  std::pmr::memory_resource *r_;
  std::pmr::memory_resource *other_;
  const test::global_allocation_counter *counter_ = nullptr;
  step steps_[32];
  int size_ = 0;
};

TEST(ContainersProof, EveryAllocationGoesThroughTheTable) {
  test::counting_allocator counts;
  test::counting_allocator other_counts;
  global_counts global{};
  auto w = std::make_unique<workload>(counts, nullptr, nullptr);
  {
    mesa::callback_resource resource(counts.table());
    mesa::callback_resource other(other_counts.table());
    w = std::make_unique<workload>(counts, &resource, &other);
    test::global_allocation_counter window;
    w->all(window);
    global = window.close();
  }

  EXPECT_EQ(global.news, 0);
  EXPECT_EQ(global.deletes, 0);
  EXPECT_EQ(global.mallocs, 0);
  EXPECT_EQ(global.frees, 0);
  int steps = 0;
  for (const step &s : *w) {
    EXPECT_GT(s.allocations, 0) << s.name;
    EXPECT_TRUE(s.ok) << s.name;
    EXPECT_EQ(s.global_calls, 0) << s.name;
    ++steps;
  }
  EXPECT_EQ(steps, 19);
  EXPECT_GT(counts.allocations(), 10000);
  EXPECT_GT(other_counts.allocations(), 0);
  EXPECT_EQ(counts.allocations(), counts.frees());
  EXPECT_EQ(other_counts.allocations(), other_counts.frees());
  EXPECT_EQ(counts.foreign_frees(), 0);
  EXPECT_EQ(other_counts.foreign_frees(), 0);
}

}  // namespace
