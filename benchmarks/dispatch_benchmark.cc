// The cost of dispatching through the default table: mesa_malloc/mesa_free over the libc
// table against direct malloc/free, for 16, 64, 256 and 4096 bytes. Target: ≤ 1.10× (median).
// BM_mesa_alloc2_free2_app_table: mesa_alloc2/mesa_free2 through a table of the application's
// (as a Vulkan driver's allocations go through VkAllocationCallbacks) that calls malloc/free.
//
//   bazel run -c opt //benchmarks:dispatch_benchmark -- --benchmark_repetitions=10
//
// (--benchmark_report_aggregates_only=true prints only the aggregates.)
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "mesa_alloc/mesa_alloc.h"

namespace {

void BM_glibc_malloc_free(benchmark::State &state) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void *p = std::malloc(size);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}

void BM_mesa_malloc_free(benchmark::State &state) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void *p = mesa_malloc(size);
    benchmark::DoNotOptimize(p);
    mesa_free(p);
  }
}

void BM_mesa_alloc2_free2(benchmark::State &state) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  const mesa_allocator *device = mesa_libc_allocator();
  for (auto _ : state) {
    void *p = mesa_alloc2(device, nullptr, size, 16, MESA_ALLOC_SCOPE_OBJECT);
    benchmark::DoNotOptimize(p);
    mesa_free2(device, nullptr, p);
  }
}

// An application's callbacks: malloc and free, the alignment ignored up to 16.
void *app_alloc(void *, size_t size, size_t, mesa_alloc_scope) { return std::malloc(size); }
void *app_realloc(void *, void *p, size_t size, size_t, mesa_alloc_scope) {
  return std::realloc(p, size);
}
void app_free(void *, void *p) { std::free(p); }

void BM_mesa_alloc2_free2_app_table(benchmark::State &state) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  const mesa_allocator app = {nullptr, &app_alloc, &app_realloc, &app_free, nullptr, nullptr};
  for (auto _ : state) {
    void *p = mesa_alloc2(&app, nullptr, size, 16, MESA_ALLOC_SCOPE_OBJECT);
    benchmark::DoNotOptimize(p);
    mesa_free2(&app, nullptr, p);
  }
}

BENCHMARK(BM_glibc_malloc_free)->Arg(16)->Arg(64)->Arg(256)->Arg(4096);
BENCHMARK(BM_mesa_malloc_free)->Arg(16)->Arg(64)->Arg(256)->Arg(4096);
BENCHMARK(BM_mesa_alloc2_free2)->Arg(16)->Arg(64)->Arg(256)->Arg(4096);
BENCHMARK(BM_mesa_alloc2_free2_app_table)->Arg(16)->Arg(64);

}  // namespace
