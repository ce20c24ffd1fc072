// compiler_benchmark — the example compiler backend end to end (generate + all passes +
// release) over 100 shaders of ~2,000 instructions, on each allocator, in one run:
//
//   std_allocator      std::allocator (global operator new)
//   pmr_newdelete      std::pmr::polymorphic_allocator on new_delete_resource
//   pmr_monotonic      polymorphic_allocator on a monotonic_buffer_resource per shader (IR)
//                      and per pass (scratch), over new_delete_resource
//   arena_pmr          polymorphic_allocator on mesa::arena_resource (IR per shader, scratch
//                      popped with mark/rewind), over new_delete_resource
//   arena_static       the same arenas through mesa::arena_allocator (no virtual call)
//
//   bazel run -c opt //benchmarks:compiler_benchmark -- --benchmark_repetitions=5
//
// (--benchmark_report_aggregates_only=true prints only the aggregates; README has the exact
// command behind its table.)
//
// Counters (from one extra untimed run per benchmark, with this binary's global operator
// new/delete counting): peak_bytes — the most heap bytes live at once (malloc_usable_size of
// every block, so arena blocks and std::allocator nodes are measured alike); heap_allocs —
// calls to global operator new for the 100 shaders; checksum — the same for every variant.
//
// The timed ratios drift with a shared machine's speed; benchmarks/compiler_instructions.py
// runs the same compile under cachegrind and gives instruction and cache-miss counts that do not.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory_resource>
#include <new>

#include "examples/compiler_backend/driver.h"
#include "examples/compiler_backend/variants.h"

namespace {

bool counting = false;
std::size_t live_bytes = 0;
std::size_t peak_bytes = 0;
std::uint64_t heap_allocs = 0;

void *counted(void *p) {
  if (p == nullptr) throw std::bad_alloc();
  if (counting) {
    ++heap_allocs;
    live_bytes += malloc_usable_size(p);
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
  }
  return p;
}

void *aligned(std::size_t n, std::align_val_t a) {
  void *p = nullptr;
  std::size_t al = static_cast<std::size_t>(a);
  if (posix_memalign(&p, al < sizeof(void *) ? sizeof(void *) : al, n == 0 ? 1 : n) != 0) {
    return nullptr;
  }
  return p;
}

// This file's operator new is malloc underneath, so free() is its match. GCC 12 at -O2 inlines
// the replaced operator delete into the containers and flags the free() of an operator-new
// pointer (-Wmismatched-new-delete); that is this pair working as designed.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void uncounted_free(void *p) {
  if (p != nullptr && counting) live_bytes -= malloc_usable_size(p);
  std::free(p);
}
#pragma GCC diagnostic pop

}  // namespace

void *operator new(std::size_t n) { return counted(std::malloc(n == 0 ? 1 : n)); }
void *operator new[](std::size_t n) { return counted(std::malloc(n == 0 ? 1 : n)); }
void *operator new(std::size_t n, std::align_val_t a) { return counted(aligned(n, a)); }
void *operator new[](std::size_t n, std::align_val_t a) { return counted(aligned(n, a)); }
void operator delete(void *p) noexcept { uncounted_free(p); }
void operator delete[](void *p) noexcept { uncounted_free(p); }
void operator delete(void *p, std::size_t) noexcept { uncounted_free(p); }
void operator delete[](void *p, std::size_t) noexcept { uncounted_free(p); }
void operator delete(void *p, std::align_val_t) noexcept { uncounted_free(p); }
void operator delete[](void *p, std::align_val_t) noexcept { uncounted_free(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { uncounted_free(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { uncounted_free(p); }

namespace {

using namespace compiler_backend;

constexpr std::uint32_t kShaders = 100;
constexpr std::uint32_t kSize = 2000;

template <class MakeVariant>
void BM_compile(benchmark::State &state, MakeVariant make) {
  RunOptions run;
  run.shaders = kShaders;
  run.size = kSize;
  CompileOptions options;
  RunResult r;
  for (auto _ : state) {
    auto v = make();
    r = compile_shaders(*v, run, options, nullptr);
    benchmark::DoNotOptimize(r.checksum);
  }
  if (!r.error.ok) state.SkipWithError(r.error.message);

  // One more run, untimed, for the memory counters.
  live_bytes = peak_bytes = heap_allocs = 0;
  counting = true;
  {
    auto v = make();
    r = compile_shaders(*v, run, options, nullptr);
  }
  counting = false;
  state.counters["peak_bytes"] = static_cast<double>(peak_bytes);
  state.counters["heap_allocs"] = static_cast<double>(heap_allocs);
  state.counters["checksum_lo16"] = static_cast<double>(r.checksum & 0xffff);
  state.counters["instrs_per_s"] = benchmark::Counter(
      static_cast<double>(r.instructions_in) * state.iterations(), benchmark::Counter::kIsRate);
}

std::pmr::memory_resource *heap() { return std::pmr::new_delete_resource(); }

BENCHMARK_CAPTURE(BM_compile, std_allocator, [] {
  return std::make_unique<std_variant>();
})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_compile, pmr_newdelete, [] {
  return std::make_unique<pmr_variant>(heap(), heap());
})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_compile, pmr_monotonic, [] {
  return std::make_unique<monotonic_variant>(heap(), heap());
})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_compile, arena_pmr, [] {
  return std::make_unique<arena_pmr_variant>(heap(), heap());
})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_compile, arena_static, [] {
  return std::make_unique<arena_static_variant>(heap(), heap());
})->Unit(benchmark::kMillisecond);

}  // namespace
