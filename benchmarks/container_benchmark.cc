// Containers on mesa::arena_allocator (non-virtual bump) vs std::pmr::polymorphic_allocator
// over the same kind of arena (a virtual call per allocation) vs std::allocator (glibc), and
// polymorphic_allocator over the libc table (mesa's default route, no arena), for 100k ints:
// vector push_back, map insert, flat_hash_map insert. Each iteration builds the container from
// empty (a fresh arena over the libc table) and destroys it.
//
//   bazel run -c opt //benchmarks:container_benchmark -- --benchmark_repetitions=10
//
// (--benchmark_report_aggregates_only=true prints only the aggregates.)
// Ratios are medians against the std::allocator run of the same operation.
#include <benchmark/benchmark.h>

#include <functional>
#include <map>
#include <memory_resource>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "containers/arena_allocator.h"
#include "containers/arena_containers.h"
#include "containers/containers.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/mesa_alloc.h"

namespace {

constexpr int kCount = 100000;

// 100k distinct keys in a scattered order (7919 and 100003 are prime).
int key(int i) { return static_cast<int>(static_cast<long>(i) * 7919 % 100003); }

template <class Kind>
void bm_std(benchmark::State &state) {
  for (auto _ : state) {
    typename Kind::std_type c;
    Kind::fill(c);
    benchmark::DoNotOptimize(c);
  }
}

template <class Kind>
void bm_pmr_arena(benchmark::State &state) {
  mesa::callback_resource libc(mesa_libc_allocator());
  for (auto _ : state) {
    mesa::arena_resource arena(&libc);
    typename Kind::pmr_type c(&arena);
    Kind::fill(c);
    benchmark::DoNotOptimize(c);
  }
}

template <class Kind>
void bm_arena_allocator(benchmark::State &state) {
  mesa::callback_resource libc(mesa_libc_allocator());
  for (auto _ : state) {
    mesa::arena_resource arena(&libc);
    typename Kind::arena_type c(&arena);
    Kind::fill(c);
    benchmark::DoNotOptimize(c);
  }
}

template <class Kind>
void bm_pmr_libc(benchmark::State &state) {
  mesa::callback_resource libc(mesa_libc_allocator());
  for (auto _ : state) {
    typename Kind::pmr_type c(&libc);
    Kind::fill(c);
    benchmark::DoNotOptimize(c);
  }
}

struct vector_push_back {
  using std_type = std::vector<int>;
  using pmr_type = mesa::vector<int>;
  using arena_type = mesa::arena_vector<int>;
  template <class C>
  static void fill(C &c) {
    for (int i = 0; i < kCount; ++i) c.push_back(i);
  }
};

struct map_insert {
  using std_type = std::map<int, int>;
  using pmr_type = mesa::map<int, int>;
  using arena_type = mesa::arena_map<int, int>;
  template <class C>
  static void fill(C &c) {
    for (int i = 0; i < kCount; ++i) c.emplace(key(i), i);
  }
};

struct flat_hash_map_insert {
  using std_type = absl::flat_hash_map<int, int>;
  using pmr_type = mesa::flat_hash_map<int, int>;
  using arena_type = mesa::arena_flat_hash_map<int, int>;
  template <class C>
  static void fill(C &c) {
    for (int i = 0; i < kCount; ++i) c.emplace(key(i), i);
  }
};

#define CONTAINER_BENCHMARKS(kind)                                                               \
  BENCHMARK_TEMPLATE(bm_std, kind)->Name(#kind "/std_allocator")->Unit(benchmark::kMicrosecond); \
  BENCHMARK_TEMPLATE(bm_pmr_arena, kind)                                                         \
      ->Name(#kind "/pmr_over_arena")                                                            \
      ->Unit(benchmark::kMicrosecond);                                                           \
  BENCHMARK_TEMPLATE(bm_arena_allocator, kind)                                                   \
      ->Name(#kind "/arena_allocator")                                                           \
      ->Unit(benchmark::kMicrosecond);                                                           \
  BENCHMARK_TEMPLATE(bm_pmr_libc, kind)                                                          \
      ->Name(#kind "/pmr_over_libc_table")                                                       \
      ->Unit(benchmark::kMicrosecond)

CONTAINER_BENCHMARKS(vector_push_back);
CONTAINER_BENCHMARKS(map_insert);
CONTAINER_BENCHMARKS(flat_hash_map_insert);

}  // namespace
