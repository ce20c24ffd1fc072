// The run-time proof: every C++ allocation of a workload over the containers goes through the
// callback table, none through global operator new/delete or malloc/free.
//
// This binary replaces the global operator new/delete (every form) and, outside ASan/TSan
// builds, malloc/calloc/realloc/free/aligned_alloc/posix_memalign/memalign/valloc/pvalloc
// (forwarding to glibc's __libc_* entry points). While the workload runs ("armed"), every call
// is counted, except those the counting table itself makes to its libc upstream (the root of
// the stack). Sanitizer runtimes own malloc, so under ASan/TSan only operator new/delete are
// replaced; the plain build counts both.
#include <atomic>
#include <cerrno>
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
#include "containers/testing/counting_table.h"
#include "containers/testing/driver_component.h"
#include "containers/unique_ptr.h"
#include "gtest/gtest.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PROOF_REPLACES_MALLOC 0
#else
#define PROOF_REPLACES_MALLOC 1
#endif

namespace {

std::atomic<bool> armed{false};
std::atomic<long> new_calls{0};
std::atomic<long> delete_calls{0};
std::atomic<long> malloc_calls{0};
std::atomic<long> free_calls{0};

bool counting() noexcept {
  return armed.load(std::memory_order_relaxed) &&
         mesa::testing::counting_table::upstream_depth() == 0;
}

void count(std::atomic<long> &counter, const void *p) noexcept {
  if (p != nullptr && counting()) counter.fetch_add(1, std::memory_order_relaxed);
}

void *new_block(std::size_t size) noexcept {
  if (counting()) new_calls.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

void *new_aligned_block(std::size_t size, std::align_val_t alignment) noexcept {
  if (counting()) new_calls.fetch_add(1, std::memory_order_relaxed);
  void *p = nullptr;
  const auto a = static_cast<std::size_t>(alignment);
  return posix_memalign(&p, a < sizeof(void *) ? sizeof(void *) : a, size == 0 ? 1 : size) == 0
             ? p
             : nullptr;
}

void *new_or_throw(void *p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void delete_block(void *p) noexcept {
  count(delete_calls, p);
  std::free(p);
}

}  // namespace

// Global operator new/delete: every form.
void *operator new(std::size_t n) { return new_or_throw(new_block(n)); }
void *operator new[](std::size_t n) { return new_or_throw(new_block(n)); }
void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return new_block(n); }
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return new_block(n); }
void *operator new(std::size_t n, std::align_val_t a) {
  return new_or_throw(new_aligned_block(n, a));
}
void *operator new[](std::size_t n, std::align_val_t a) {
  return new_or_throw(new_aligned_block(n, a));
}
void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_aligned_block(n, a);
}
void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_aligned_block(n, a);
}
void operator delete(void *p) noexcept { delete_block(p); }
void operator delete[](void *p) noexcept { delete_block(p); }
void operator delete(void *p, std::size_t) noexcept { delete_block(p); }
void operator delete[](void *p, std::size_t) noexcept { delete_block(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { delete_block(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { delete_block(p); }
void operator delete(void *p, std::align_val_t) noexcept { delete_block(p); }
void operator delete[](void *p, std::align_val_t) noexcept { delete_block(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { delete_block(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { delete_block(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  delete_block(p);
}
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  delete_block(p);
}

#if PROOF_REPLACES_MALLOC
// glibc's own implementations, under their exported internal names.
extern "C" {
void *__libc_malloc(std::size_t);
void *__libc_calloc(std::size_t, std::size_t);
void *__libc_realloc(void *, std::size_t);
void __libc_free(void *);
void *__libc_memalign(std::size_t, std::size_t);
void *__libc_valloc(std::size_t);
void *__libc_pvalloc(std::size_t);

void *malloc(std::size_t n) {
  void *p = __libc_malloc(n);
  count(malloc_calls, p);
  return p;
}
void *calloc(std::size_t n, std::size_t size) {
  void *p = __libc_calloc(n, size);
  count(malloc_calls, p);
  return p;
}
void *realloc(void *old, std::size_t n) {
  void *p = __libc_realloc(old, n);
  count(malloc_calls, p != nullptr ? p : old);
  return p;
}
void *reallocarray(void *old, std::size_t n, std::size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  return realloc(old, n * size);
}
void free(void *p) {
  count(free_calls, p);
  __libc_free(p);
}
void *memalign(std::size_t alignment, std::size_t n) {
  void *p = __libc_memalign(alignment, n);
  count(malloc_calls, p);
  return p;
}
void *aligned_alloc(std::size_t alignment, std::size_t n) { return memalign(alignment, n); }
int posix_memalign(void **out, std::size_t alignment, std::size_t n) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void *p = memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void *valloc(std::size_t n) {
  void *p = __libc_valloc(n);
  count(malloc_calls, p);
  return p;
}
void *pvalloc(std::size_t n) {
  void *p = __libc_pvalloc(n);
  count(malloc_calls, p);
  return p;
}
}  // extern "C"
#endif  // PROOF_REPLACES_MALLOC

namespace {

using mesa::testing::counting_table;

struct global_counts {
  long news, deletes, mallocs, frees;
};

class armed_window {
 public:
  armed_window() {
    new_calls = delete_calls = malloc_calls = free_calls = 0;
    armed = true;
  }
  global_counts close() {
    armed = false;
    return {new_calls.load(), delete_calls.load(), malloc_calls.load(), free_calls.load()};
  }
  ~armed_window() { armed = false; }
};

// The replacements really count (otherwise "zero" would prove nothing).
TEST(ContainersProof, ReplacementsCountTheDefaultAllocator) {
  armed_window window;
  auto *v = new std::vector<int>(100);
  delete v;
  void *p = std::malloc(24);
  std::free(p);
  mesa::vector<int> on_default;  // no resource: std::pmr::get_default_resource(), operator new
  on_default.push_back(1);
  on_default = mesa::vector<int>();
  const global_counts counts = window.close();
  EXPECT_EQ(counts.news, 3);
  EXPECT_EQ(counts.deletes, 3);
  if (PROOF_REPLACES_MALLOC) {
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
  std::size_t allocations;
  long global_calls;  // global new/delete/malloc/free calls during the step
  bool ok;
};

class workload {
 public:
  workload(counting_table &counts, std::pmr::memory_resource *r, std::pmr::memory_resource *other)
      : counts_(counts), r_(r), other_(other) {}

  template <class F>
  void run(const char *name, F &&f) {
    const std::size_t before = counts_.allocations();
    const long global_before = global_calls();
    const bool ok = f();
    steps_[size_++] = {name, counts_.allocations() - before, global_calls() - global_before, ok};
  }

  void all() {
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
  static long global_calls() {
    return new_calls.load() + delete_calls.load() + malloc_calls.load() + free_calls.load();
  }

  counting_table &counts_;
  std::pmr::memory_resource *r_;
  std::pmr::memory_resource *other_;
  step steps_[32];
  int size_ = 0;
};

TEST(ContainersProof, EveryAllocationGoesThroughTheTable) {
  counting_table counts;
  counting_table other_counts;
  global_counts global{};
  auto w = std::make_unique<workload>(counts, nullptr, nullptr);
  {
    mesa::callback_resource resource(counts.table());
    mesa::callback_resource other(other_counts.table());
    w = std::make_unique<workload>(counts, &resource, &other);
    armed_window window;
    w->all();
    global = window.close();
  }

  EXPECT_EQ(global.news, 0);
  EXPECT_EQ(global.deletes, 0);
  EXPECT_EQ(global.mallocs, 0);
  EXPECT_EQ(global.frees, 0);
  int steps = 0;
  for (const step &s : *w) {
    EXPECT_GT(s.allocations, 0u) << s.name;
    EXPECT_TRUE(s.ok) << s.name;
    EXPECT_EQ(s.global_calls, 0) << s.name;
    ++steps;
  }
  EXPECT_EQ(steps, 17);
  EXPECT_GT(counts.allocations(), 10000u);
  EXPECT_GT(other_counts.allocations(), 0u);
  EXPECT_EQ(counts.allocations(), counts.frees());
  EXPECT_EQ(other_counts.allocations(), other_counts.frees());
  EXPECT_EQ(counts.foreign_frees(), 0u);
  EXPECT_EQ(other_counts.foreign_frees(), 0u);
}

}  // namespace
