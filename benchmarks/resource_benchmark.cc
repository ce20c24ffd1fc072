// The fast resources side by side with what engineers would otherwise pick, in one run:
// glibc malloc/free, mimalloc (dlopen'ed, see below), std::pmr's resources, an ideal inline
// free list, and mesa's arena, slab and pool resources.
//
// Names are BM_<resource>_<workload>[/size][/real_time/threads:N]; workloads:
//   pair        alloc+free of `size` bytes, repeated (arenas bump through a buffer and
//               release every 4096 pairs)
//   mixed       10,000 blocks of mixed sizes 8..256, then free each (arenas: release all)
//   containers  a pmr::vector of 64 pmr::vector<int> of 200 ints plus a pmr::unordered_map of
//               the 12,800 elements, built then destroyed
// "_direct" rows call the resource's non-virtual API; all other mesa rows go through a
// std::pmr::memory_resource * the compiler cannot see through. benchmarks/compare.py turns the
// JSON output into ratio tables (vs glibc and vs the best std::pmr resource).
//
// mimalloc: linking Debian's libmimalloc replaces malloc/free for the whole process, which
// would corrupt the glibc baseline, so it is dlopen'ed with RTLD_LOCAL and only mi_malloc/
// mi_free are used. Without libmimalloc.so.2 its rows are skipped with a message.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "benchmark/benchmark.h"
#include "containers/arena_allocator.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/pool_resource.h"
#include "mesa_alloc/slab_parent.h"
#include "mesa_alloc/slab_resource.h"
#include "mesa_alloc/synchronized_pool_resource.h"

namespace {

constexpr unsigned kReleaseEvery = 4096;
constexpr int kMixedCount = 10000;

// A resource pointer the optimiser cannot devirtualise.
std::pmr::memory_resource *opaque(std::pmr::memory_resource *r) {
  benchmark::DoNotOptimize(r);
  return r;
}

// glibc malloc/free as a pmr resource (for the container workload).
class malloc_resource final : public std::pmr::memory_resource {
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    void *p = alignment <= alignof(std::max_align_t) ? std::malloc(bytes)
                                                     : std::aligned_alloc(alignment, bytes);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void *p, std::size_t, std::size_t) override { std::free(p); }
  bool do_is_equal(const std::pmr::memory_resource &o) const noexcept override {
    return this == &o;
  }
};

// mimalloc through dlopen (see the file comment).
struct mimalloc_api {
  void *(*malloc)(std::size_t) = nullptr;
  void *(*malloc_aligned)(std::size_t, std::size_t) = nullptr;
  void (*free)(void *) = nullptr;
};

const mimalloc_api *mimalloc() {
  static const mimalloc_api *api = []() -> const mimalloc_api * {
    void *lib = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return nullptr;
    static mimalloc_api a;
    a.malloc = reinterpret_cast<void *(*)(std::size_t)>(dlsym(lib, "mi_malloc"));
    a.malloc_aligned =
        reinterpret_cast<void *(*)(std::size_t, std::size_t)>(dlsym(lib, "mi_malloc_aligned"));
    a.free = reinterpret_cast<void (*)(void *)>(dlsym(lib, "mi_free"));
    if (a.malloc == nullptr || a.malloc_aligned == nullptr || a.free == nullptr) return nullptr;
    return &a;
  }();
  return api;
}

class mimalloc_resource final : public std::pmr::memory_resource {
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    void *p = mimalloc()->malloc_aligned(bytes, alignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void *p, std::size_t, std::size_t) override { mimalloc()->free(p); }
  bool do_is_equal(const std::pmr::memory_resource &o) const noexcept override {
    return this == &o;
  }
};

const std::vector<std::size_t> &mixed_sizes() {
  static const std::vector<std::size_t> sizes = [] {
    std::vector<std::size_t> s(kMixedCount);
    std::uint32_t x = 12345;
    for (auto &size : s) {
      x = x * 1664525u + 1013904223u;
      size = 8 + ((x >> 16) % 32) * 8;
    }
    return s;
  }();
  return sizes;
}

// ---- workload drivers over a pmr resource ----

template <class Release>
void pmr_pairs(benchmark::State &state, std::pmr::memory_resource *resource, Release release) {
  std::pmr::memory_resource *r = opaque(resource);
  const auto n = static_cast<std::size_t>(state.range(0));
  unsigned k = 0;
  for (auto _ : state) {
    void *p = r->allocate(n);
    benchmark::DoNotOptimize(p);
    r->deallocate(p, n);
    if (++k == kReleaseEvery) {
      k = 0;
      release();
    }
  }
}

void pmr_pairs(benchmark::State &state, std::pmr::memory_resource *resource) {
  pmr_pairs(state, resource, [] {});
}

// free_each: deallocate every block (general resources); otherwise release() only (arenas).
template <class Release>
void pmr_mixed(benchmark::State &state, std::pmr::memory_resource *resource, bool free_each,
               Release release) {
  std::pmr::memory_resource *r = opaque(resource);
  const std::vector<std::size_t> &sizes = mixed_sizes();
  std::vector<void *> blocks(sizes.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < sizes.size(); ++i) blocks[i] = r->allocate(sizes[i]);
    benchmark::DoNotOptimize(blocks.data());
    if (free_each) {
      for (std::size_t i = 0; i < sizes.size(); ++i) r->deallocate(blocks[i], sizes[i]);
    }
    release();
  }
  state.SetItemsProcessed(state.iterations() * kMixedCount);
}

void pmr_mixed(benchmark::State &state, std::pmr::memory_resource *resource) {
  pmr_mixed(state, resource, true, [] {});
}

template <class Release>
void pmr_containers(benchmark::State &state, std::pmr::memory_resource *resource, Release release) {
  std::pmr::memory_resource *r = opaque(resource);
  for (auto _ : state) {
    {
      std::pmr::vector<std::pmr::vector<int>> outer(r);
      std::pmr::unordered_map<int, int> map(r);
      for (int i = 0; i < 64; ++i) {
        outer.emplace_back();
        std::pmr::vector<int> &inner = outer.back();
        for (int j = 0; j < 200; ++j) {
          inner.push_back(j);
          map.emplace(i * 200 + j, j);
        }
      }
      benchmark::DoNotOptimize(outer.data());
      benchmark::DoNotOptimize(map.size());
    }
    release();
  }
}

void pmr_containers(benchmark::State &state, std::pmr::memory_resource *resource) {
  pmr_containers(state, resource, [] {});
}

// ---- glibc and mimalloc ----

void BM_glibc_pair(benchmark::State &state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void *p = std::malloc(n);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}

void BM_glibc_mixed(benchmark::State &state) {
  const std::vector<std::size_t> &sizes = mixed_sizes();
  std::vector<void *> blocks(sizes.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < sizes.size(); ++i) blocks[i] = std::malloc(sizes[i]);
    benchmark::DoNotOptimize(blocks.data());
    for (void *p : blocks) std::free(p);
  }
  state.SetItemsProcessed(state.iterations() * kMixedCount);
}

void BM_glibc_containers(benchmark::State &state) {
  malloc_resource r;
  pmr_containers(state, &r);
}

void BM_mimalloc_pair(benchmark::State &state) {
  const mimalloc_api *mi = mimalloc();
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void *p = mi->malloc(n);
    benchmark::DoNotOptimize(p);
    mi->free(p);
  }
}

void BM_mimalloc_mixed(benchmark::State &state) {
  const mimalloc_api *mi = mimalloc();
  const std::vector<std::size_t> &sizes = mixed_sizes();
  std::vector<void *> blocks(sizes.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < sizes.size(); ++i) blocks[i] = mi->malloc(sizes[i]);
    benchmark::DoNotOptimize(blocks.data());
    for (void *p : blocks) mi->free(p);
  }
  state.SetItemsProcessed(state.iterations() * kMixedCount);
}

void BM_mimalloc_containers(benchmark::State &state) {
  mimalloc_resource r;
  pmr_containers(state, &r);
}

// ---- std::pmr ----

void BM_pmr_new_delete_pair(benchmark::State &state) {
  pmr_pairs(state, std::pmr::new_delete_resource());
}
void BM_pmr_new_delete_mixed(benchmark::State &state) {
  pmr_mixed(state, std::pmr::new_delete_resource());
}
void BM_pmr_new_delete_containers(benchmark::State &state) {
  pmr_containers(state, std::pmr::new_delete_resource());
}

void BM_pmr_unsync_pool_pair(benchmark::State &state) {
  std::pmr::unsynchronized_pool_resource r;
  pmr_pairs(state, &r);
}
void BM_pmr_unsync_pool_mixed(benchmark::State &state) {
  std::pmr::unsynchronized_pool_resource r;
  pmr_mixed(state, &r);
}
void BM_pmr_unsync_pool_containers(benchmark::State &state) {
  std::pmr::unsynchronized_pool_resource r;
  pmr_containers(state, &r);
}

std::pmr::synchronized_pool_resource *shared_pmr_sync_pool() {
  static auto *r = new std::pmr::synchronized_pool_resource();  // shared by the threads
  return r;
}
void BM_pmr_sync_pool_pair(benchmark::State &state) { pmr_pairs(state, shared_pmr_sync_pool()); }
void BM_pmr_sync_pool_mixed(benchmark::State &state) {
  std::pmr::synchronized_pool_resource r;
  pmr_mixed(state, &r);
}
void BM_pmr_sync_pool_containers(benchmark::State &state) {
  std::pmr::synchronized_pool_resource r;
  pmr_containers(state, &r);
}

// Arenas in the pair workload bump through a buffer big enough for kReleaseEvery blocks and
// start over with release(): the rows measure the bump itself, not the upstream's page faults.
std::vector<char> &arena_buffer() {
  static std::vector<char> buffer(kReleaseEvery * 256 + 4096);
  return buffer;
}

void BM_pmr_monotonic_pair(benchmark::State &state) {
  std::pmr::monotonic_buffer_resource r(arena_buffer().data(), arena_buffer().size());
  pmr_pairs(state, &r, [&] { r.release(); });
}
void BM_pmr_monotonic_mixed(benchmark::State &state) {
  std::pmr::monotonic_buffer_resource r;
  pmr_mixed(state, &r, false, [&] { r.release(); });
}
void BM_pmr_monotonic_containers(benchmark::State &state) {
  std::pmr::monotonic_buffer_resource r;
  pmr_containers(state, &r, [&] { r.release(); });
}

// ---- mesa: arena ----

mesa::arena_options buffered_arena() {
  mesa::arena_options options;
  options.initial_buffer = arena_buffer().data();
  options.initial_buffer_size = arena_buffer().size();
  return options;
}

void BM_mesa_arena_pair(benchmark::State &state) {
  mesa::arena_resource r(std::pmr::new_delete_resource(), buffered_arena());
  pmr_pairs(state, &r, [&] { r.release(); });
}
void BM_mesa_arena_direct_pair(benchmark::State &state) {
  mesa::arena_resource arena(std::pmr::new_delete_resource(), buffered_arena());
  const auto n = static_cast<std::size_t>(state.range(0));
  unsigned k = 0;
  for (auto _ : state) {
    void *p = arena.allocate(n);
    benchmark::DoNotOptimize(p);
    arena.deallocate(p, n);
    if (++k == kReleaseEvery) {
      k = 0;
      arena.release();
    }
  }
}
void BM_mesa_arena_mixed(benchmark::State &state) {
  mesa::arena_resource r(std::pmr::new_delete_resource());
  pmr_mixed(state, &r, false, [&] { r.release(); });
}
void BM_mesa_arena_containers(benchmark::State &state) {
  mesa::arena_resource r(std::pmr::new_delete_resource());
  pmr_containers(state, &r, [&] { r.release(); });
}
// The same containers with arena_allocator<T>: no virtual call at all.
void BM_mesa_arena_allocator_containers(benchmark::State &state) {
  mesa::arena_resource arena(std::pmr::new_delete_resource());
  mesa::arena_resource *a = &arena;
  benchmark::DoNotOptimize(a);
  for (auto _ : state) {
    {
      using inner_vec = std::vector<int, mesa::arena_allocator<int>>;
      std::vector<inner_vec, mesa::arena_allocator<inner_vec>> outer(a);
      std::unordered_map<int, int, std::hash<int>, std::equal_to<int>,
                         mesa::arena_allocator<std::pair<const int, int>>>
          map(0, std::hash<int>(), std::equal_to<int>(), a);
      for (int i = 0; i < 64; ++i) {
        outer.emplace_back(a);
        inner_vec &inner = outer.back();
        for (int j = 0; j < 200; ++j) {
          inner.push_back(j);
          map.emplace(i * 200 + j, j);
        }
      }
      benchmark::DoNotOptimize(outer.data());
      benchmark::DoNotOptimize(map.size());
    }
    arena.release();
  }
}

// ---- mesa: slab and the ideal free list ----

void BM_mesa_slab_pair(benchmark::State &state) {
  mesa::slab_resource r(std::pmr::new_delete_resource(), static_cast<std::size_t>(state.range(0)),
                        16);
  pmr_pairs(state, &r);
}
void BM_mesa_slab_direct_pair(benchmark::State &state) {
  mesa::slab_resource slab(std::pmr::new_delete_resource(),
                           static_cast<std::size_t>(state.range(0)), 16);
  for (auto _ : state) {
    void *p = slab.allocate_object();
    benchmark::DoNotOptimize(p);
    slab.deallocate_object(p);
  }
}

// What a hand-written inline free list does: the floor for any slab.
class ideal_free_list {
 public:
  explicit ideal_free_list(std::size_t size) : size_(size < sizeof(node) ? sizeof(node) : size) {}
  ~ideal_free_list() {
    for (void *page : pages_) std::free(page);
  }
  void *allocate() {
    if (head_ != nullptr) {
      node *n = head_;
      head_ = n->next;
      return n;
    }
    return refill();
  }
  void deallocate(void *p) {
    auto *n = static_cast<node *>(p);
    n->next = head_;
    head_ = n;
  }

 private:
  struct node {
    node *next;
  };
  [[gnu::noinline]] void *refill() {
    char *page = static_cast<char *>(std::malloc(64 * size_));
    pages_.push_back(page);
    for (int i = 63; i > 0; --i) deallocate(page + i * size_);
    return page;
  }
  node *head_ = nullptr;
  std::size_t size_;
  std::vector<void *> pages_;
};

void BM_ideal_free_list_pair(benchmark::State &state) {
  ideal_free_list list(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    void *p = list.allocate();
    benchmark::DoNotOptimize(p);
    list.deallocate(p);
  }
}

mesa::slab_parent *shared_slab_parent(std::size_t size) {
  static auto *parents = new std::unordered_map<std::size_t, mesa::slab_parent *>();
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  mesa::slab_parent *&p = (*parents)[size];
  if (p == nullptr) p = new mesa::slab_parent(std::pmr::new_delete_resource(), size, 16);
  return p;
}
void BM_mesa_slab_child_pair(benchmark::State &state) {
  mesa::slab_child child(shared_slab_parent(static_cast<std::size_t>(state.range(0))));
  pmr_pairs(state, &child);
}

// ---- mesa: pools ----

void BM_mesa_pool_pair(benchmark::State &state) {
  mesa::pool_resource r(std::pmr::new_delete_resource());
  pmr_pairs(state, &r);
}
void BM_mesa_pool_direct_pair(benchmark::State &state) {
  mesa::pool_resource pool(std::pmr::new_delete_resource());
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void *p = pool.allocate(n);
    benchmark::DoNotOptimize(p);
    pool.deallocate(p, n);
  }
}
void BM_mesa_pool_mixed(benchmark::State &state) {
  mesa::pool_resource r(std::pmr::new_delete_resource());
  pmr_mixed(state, &r);
}
void BM_mesa_pool_containers(benchmark::State &state) {
  mesa::pool_resource r(std::pmr::new_delete_resource());
  pmr_containers(state, &r);
}

mesa::synchronized_pool_resource *shared_mesa_sync_pool() {
  static auto *r = new mesa::synchronized_pool_resource(std::pmr::new_delete_resource());
  return r;
}
void BM_mesa_sync_pool_pair(benchmark::State &state) { pmr_pairs(state, shared_mesa_sync_pool()); }
void BM_mesa_sync_pool_mixed(benchmark::State &state) {
  mesa::synchronized_pool_resource r(std::pmr::new_delete_resource());
  pmr_mixed(state, &r);
}
void BM_mesa_sync_pool_containers(benchmark::State &state) {
  mesa::synchronized_pool_resource r(std::pmr::new_delete_resource());
  pmr_containers(state, &r);
}

// ---- registration ----

void pair_sizes(benchmark::internal::Benchmark *b) { b->Arg(16)->Arg(64)->Arg(256); }
void two_threads(benchmark::internal::Benchmark *b) { b->Arg(64)->Threads(2)->UseRealTime(); }

BENCHMARK(BM_glibc_pair)->Apply(pair_sizes);
BENCHMARK(BM_glibc_pair)->Apply(two_threads);
BENCHMARK(BM_pmr_new_delete_pair)->Apply(pair_sizes);
BENCHMARK(BM_pmr_unsync_pool_pair)->Apply(pair_sizes);
BENCHMARK(BM_pmr_sync_pool_pair)->Apply(pair_sizes);
BENCHMARK(BM_pmr_sync_pool_pair)->Apply(two_threads);
BENCHMARK(BM_pmr_monotonic_pair)->Apply(pair_sizes);
BENCHMARK(BM_ideal_free_list_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_arena_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_arena_direct_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_slab_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_slab_direct_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_slab_child_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_slab_child_pair)->Apply(two_threads);
BENCHMARK(BM_mesa_pool_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_pool_direct_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_sync_pool_pair)->Apply(pair_sizes);
BENCHMARK(BM_mesa_sync_pool_pair)->Apply(two_threads);

BENCHMARK(BM_glibc_mixed);
BENCHMARK(BM_pmr_new_delete_mixed);
BENCHMARK(BM_pmr_unsync_pool_mixed);
BENCHMARK(BM_pmr_sync_pool_mixed);
BENCHMARK(BM_pmr_monotonic_mixed);
BENCHMARK(BM_mesa_arena_mixed);
BENCHMARK(BM_mesa_pool_mixed);
BENCHMARK(BM_mesa_sync_pool_mixed);

BENCHMARK(BM_glibc_containers);
BENCHMARK(BM_pmr_new_delete_containers);
BENCHMARK(BM_pmr_unsync_pool_containers);
BENCHMARK(BM_pmr_sync_pool_containers);
BENCHMARK(BM_pmr_monotonic_containers);
BENCHMARK(BM_mesa_arena_containers);
BENCHMARK(BM_mesa_arena_allocator_containers);
BENCHMARK(BM_mesa_pool_containers);
BENCHMARK(BM_mesa_sync_pool_containers);

// mimalloc only when it can be loaded.
const bool mimalloc_registered = [] {
  if (mimalloc() == nullptr) {
    std::fprintf(stderr,
                 "resource_benchmark: libmimalloc.so.2 not found (Debian: libmimalloc2.0); "
                 "skipping the mimalloc rows\n");
    return false;
  }
  benchmark::RegisterBenchmark("BM_mimalloc_pair", BM_mimalloc_pair)->Apply(pair_sizes);
  benchmark::RegisterBenchmark("BM_mimalloc_pair", BM_mimalloc_pair)->Apply(two_threads);
  benchmark::RegisterBenchmark("BM_mimalloc_mixed", BM_mimalloc_mixed);
  benchmark::RegisterBenchmark("BM_mimalloc_containers", BM_mimalloc_containers);
  return true;
}();

}  // namespace
