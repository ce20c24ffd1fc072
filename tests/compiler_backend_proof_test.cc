// The run-time proof for the compiler backend: 100 shaders of ~2,000 instructions compiled on
// the application-callbacks stack
//
//   per-shader arena_resource (IR) + scratch arena_resource
//     -> tracking_resource "ir" / "scratch", children of "compiler"
//       -> callback_resource over a counting mesa_allocator (the app's VkAllocationCallbacks)
//
// make zero calls to global operator new or malloc; the tracking resource sees every byte the
// application's table hands out; the IR memory is all returned when each shader's arena is
// released, and everything when the compiler goes away.
//
// This binary links //tests/support:global_allocation_counter, which replaces the global
// operator new/delete (every form) and, outside ASan/TSan builds, the malloc family. Only calls
// made while the compile runs ("armed") and not from inside the counting table's own upstream
// (libc, the root of the stack) are counted.
#include <cstddef>
#include <cstdint>

#include "examples/compiler_backend/driver.h"
#include "examples/compiler_backend/variants.h"
#include "gtest/gtest.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/tracking_resource.h"
#include "tests/support/counting_allocator.h"
#include "tests/support/global_allocation_counter.h"

namespace compiler_backend {
namespace {

constexpr std::uint32_t kShaders = 100;
constexpr std::uint32_t kSize = 2000;

// Compiles shader `k` of the run alone; its checksum.
template <class Variant>
RunResult compile_one(Variant &v, std::uint32_t k) {
  RunOptions one;
  one.shaders = 1;
  one.size = kSize;
  one.seed = 1 + k;
  return compile_shaders(v, one, CompileOptions(), nullptr);
}

template <class Variant>
void prove(const char *name) {
  SCOPED_TRACE(name);
  std_variant reference;
  std::uint64_t expected = kChecksumSeed;
  for (std::uint32_t k = 0; k < kShaders; ++k) {
    expected = checksum_word(expected, compile_one(reference, k).checksum);
  }

  test::counting_allocator app;  // the application's allocation callbacks, on libc
  std::size_t ir_in_use_after_shader = 0;
  std::uint64_t checksum = kChecksumSeed;
  bool ok = true;
  long news = 0, mallocs = 0;
  {
    mesa::callback_resource device(app.table(), MESA_ALLOC_SCOPE_OBJECT);
    mesa::tracking_resource compiler(&device, "compiler");
    mesa::tracking_resource ir(&device, "ir", &compiler);
    mesa::tracking_resource scratch(&device, "scratch", &compiler);
    {
      Variant v(&ir, &scratch);
      // tracking_resource's first use on a thread registers a thread-exit handler
      // (__cxa_thread_atexit), for which glibc callocs 32 bytes once per thread. That one-time
      // per-thread set-up happens here, before counting starts.
      ir.deallocate(ir.allocate(16), 16);
      test::global_allocation_counter counter;
      for (std::uint32_t k = 0; k < kShaders; ++k) {
        RunResult r = compile_one(v, k);
        ok = ok && r.error.ok;
        checksum = checksum_word(checksum, r.checksum);
        std::size_t in_use = ir.stats().bytes_in_use;
        if (in_use > ir_in_use_after_shader) ir_in_use_after_shader = in_use;
      }
      const test::global_allocation_counts counts = counter.close();
      news = counts.news;
      mallocs = counts.mallocs;

      const mesa::tracking_stats s = compiler.stats();
      // Tracking saw every byte and every block the application handed out.
      EXPECT_EQ(s.total_bytes, app.bytes_total());
      EXPECT_EQ(static_cast<long>(s.total_allocations), app.allocations());
      EXPECT_EQ(s.peak_bytes, app.peak_bytes());
      EXPECT_GT(s.total_bytes, 100u * 100'000u);  // the IR of 100 shaders went through it
      EXPECT_EQ(ir.stats().total_bytes + scratch.stats().total_bytes, s.total_bytes);
      // Only the scratch arena's kept blocks remain until the compiler goes away.
      EXPECT_EQ(s.bytes_in_use, scratch.stats().bytes_in_use);
      EXPECT_EQ(app.bytes_live(), s.bytes_in_use);
    }
    EXPECT_EQ(compiler.stats().bytes_in_use, 0u);
    EXPECT_EQ(compiler.stats().total_deallocations, compiler.stats().total_allocations);
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(news, 0) << "global operator new calls while compiling";
  EXPECT_EQ(mallocs, 0) << "malloc-family calls while compiling (outside the app's table)";
  EXPECT_EQ(ir_in_use_after_shader, 0u) << "IR bytes still held after a shader's release";
  EXPECT_EQ(app.bytes_live(), 0u);
  EXPECT_EQ(app.allocations(), app.frees());
  EXPECT_EQ(app.foreign_frees(), 0);
  EXPECT_EQ(checksum, expected) << "not the same compiled code as with std::allocator";
}

TEST(CompilerBackendProof, ArenaAllocatorStackMakesNoGlobalAllocation) {
  prove<arena_static_variant>("arena_static");
}

TEST(CompilerBackendProof, PolymorphicAllocatorOnArenaMakesNoGlobalAllocation) {
  prove<arena_pmr_variant>("arena");
}

// The counters really count: the same compile on std::allocator is caught.
TEST(CompilerBackendProof, StdAllocatorIsCaught) {
  std_variant v;
  RunOptions run;
  run.shaders = 2;
  run.size = 500;
  test::global_allocation_counter counter;
  RunResult r = compile_shaders(v, run, CompileOptions(), nullptr);
  const test::global_allocation_counts counts = counter.close();
  EXPECT_TRUE(r.error.ok);
  EXPECT_GT(counts.news, 1000);
}

}  // namespace
}  // namespace compiler_backend
