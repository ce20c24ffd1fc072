// Costs of the debugging and accounting layers, 64-byte allocate+free pairs, against their
// upstream and glibc in the same run:
//   bazel run -c opt //benchmarks:resource_benchmark -- --benchmark_filter='BM_debug|BM_tracking'
//       --benchmark_repetitions=40 --benchmark_enable_random_interleaving=true
//       --benchmark_min_time=0.05 --benchmark_report_aggregates_only=true
// (many short interleaved repetitions: every row sees the same phases of a drifting machine)
// Targets: tracking <= 1.3x its upstream (single thread) and near-linear on 2 threads;
// debug in cookie+canary mode <= 3x glibc malloc/free; guard mode reported (time, pages/block).
#define MESA_ALLOC_ALLOW_LIBC 1

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <memory_resource>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/logging_resource.h"
#include "mesa_alloc/tracking_resource.h"

namespace {

constexpr std::size_t kSize = 64;

void BM_debug_baseline_glibc(benchmark::State &state) {
  for (auto _ : state) {
    void *p = std::malloc(kSize);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_debug_baseline_glibc)->Threads(1)->Threads(2)->UseRealTime();

// The upstream of the tracker below: the libc table seen as a pmr resource.
mesa::callback_resource &libc_resource() {
  static mesa::callback_resource r(mesa_libc_allocator());
  return r;
}

void alloc_free_loop(benchmark::State &state, std::pmr::memory_resource *r) {
  for (auto _ : state) {
    void *p = r->allocate(kSize, 16);
    benchmark::DoNotOptimize(p);
    r->deallocate(p, kSize, 16);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_tracking_upstream(benchmark::State &state) { alloc_free_loop(state, &libc_resource()); }
BENCHMARK(BM_tracking_upstream)->Threads(1)->Threads(2)->UseRealTime();

void BM_tracking(benchmark::State &state) {
  // One tracker shared by every benchmark thread.
  static mesa::tracking_resource tracker(&libc_resource(), "bench");
  alloc_free_loop(state, &tracker);
}
BENCHMARK(BM_tracking)->Threads(1)->Threads(2)->UseRealTime();

void BM_tracking_with_parent(benchmark::State &state) {
  static mesa::tracking_resource parent(&libc_resource(), "driver");
  static mesa::tracking_resource child(&libc_resource(), "compiler", &parent);
  alloc_free_loop(state, &child);
}
BENCHMARK(BM_tracking_with_parent)->Threads(1)->Threads(2)->UseRealTime();

void BM_tracking_limited(benchmark::State &state) {
  static mesa::tracking_resource tracker(&libc_resource(), "limited");
  static const bool limited = (tracker.set_limit(std::size_t{1} << 30), true);
  benchmark::DoNotOptimize(limited);
  alloc_free_loop(state, &tracker);
}
BENCHMARK(BM_tracking_limited)->Threads(1)->Threads(2)->UseRealTime();

void debug_loop(benchmark::State &state, const mesa::debug_options &options) {
  mesa::debug_resource debug(&libc_resource(), options);
  alloc_free_loop(state, &debug);
}

// Cookie and canary checks only (no fills, stacks, quarantine or guard pages).
mesa::debug_options cookie_only() {
  mesa::debug_options o;
  o.fill = false;
  return o;
}

void BM_debug_cookie(benchmark::State &state) { debug_loop(state, cookie_only()); }
BENCHMARK(BM_debug_cookie);

void BM_debug_cookie_unsynchronized(benchmark::State &state) {
  mesa::debug_options o = cookie_only();
  o.thread_safe = false;
  debug_loop(state, o);
}
BENCHMARK(BM_debug_cookie_unsynchronized);

// One resource shared by two threads: the second thread revokes the lock's bias, and from then
// on both take the spin lock (time per operation, as for the other threaded rows).
void BM_debug_cookie_shared(benchmark::State &state) {
  static mesa::debug_resource debug(&libc_resource(), cookie_only());
  alloc_free_loop(state, &debug);
}
BENCHMARK(BM_debug_cookie_shared)->Threads(2)->UseRealTime();

// The thinnest pmr upstream (operator new, i.e. malloc), for the comparison with glibc.
void BM_debug_cookie_over_new_delete(benchmark::State &state) {
  mesa::debug_resource debug(std::pmr::new_delete_resource(), cookie_only());
  alloc_free_loop(state, &debug);
}
BENCHMARK(BM_debug_cookie_over_new_delete);

void BM_debug_cookie_fill(benchmark::State &state) { debug_loop(state, mesa::debug_options()); }
BENCHMARK(BM_debug_cookie_fill);

void BM_debug_cookie_stacks(benchmark::State &state) {
  mesa::debug_options o;
  o.record_stacks = true;
  debug_loop(state, o);
}
BENCHMARK(BM_debug_cookie_stacks);

// The same stacks walked through the unwind tables (MESA_ALLOC_DEBUG=leaks,unwind).
void BM_debug_cookie_stacks_unwind(benchmark::State &state) {
  mesa::debug_options o;
  o.record_stacks = true;
  o.unwinder = mesa::stack_unwinder::unwind_tables;
  debug_loop(state, o);
}
BENCHMARK(BM_debug_cookie_stacks_unwind);

void BM_debug_quarantine(benchmark::State &state) {
  mesa::debug_options o;
  o.quarantine_bytes = 1 << 20;
  debug_loop(state, o);
}
BENCHMARK(BM_debug_quarantine);

void BM_debug_guard(benchmark::State &state) {
  mesa::debug_options o;
  o.guard = mesa::guard_mode::after;
  o.quarantine_bytes = 1 << 20;
  mesa::tracking_resource pages(&libc_resource(), "pages");
  {
    mesa::debug_resource debug(&pages, o);
    alloc_free_loop(state, &debug);
    debug.flush_quarantine();
    const std::size_t before = pages.stats().bytes_in_use;
    void *p = debug.allocate(kSize, 16);
    state.counters["pages_per_block"] =
        static_cast<double>(pages.stats().bytes_in_use - before) / sysconf(_SC_PAGESIZE);
    debug.deallocate(p, kSize, 16);
  }
}
BENCHMARK(BM_debug_guard);

void BM_debug_fault_passthrough(benchmark::State &state) {
  mesa::fault_resource faults(&libc_resource());
  alloc_free_loop(state, &faults);
}
BENCHMARK(BM_debug_fault_passthrough);

// Events into a memory sink that drops them: the cost of building a record.
struct null_sink final : mesa::trace_sink {
  void write_event(const mesa::trace_event &e) noexcept override { benchmark::DoNotOptimize(&e); }
  void write_site(std::uint32_t, const char *, std::size_t) noexcept override {}
};

void BM_debug_logging(benchmark::State &state) {
  null_sink sink;
  mesa::logging_resource logged(&libc_resource(), &sink);
  alloc_free_loop(state, &logged);
}
BENCHMARK(BM_debug_logging);

}  // namespace
