#include "mesa_alloc/fault_resource.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/pool_resource.h"

namespace {

TEST(FaultResource, FailNthIsZeroBasedFromNowAndOnce) {
  mesa::fault_resource f(std::pmr::new_delete_resource());
  f.deallocate(f.allocate(8), 8);
  f.fail_nth(2);
  void *a = f.allocate(8);
  void *b = f.allocate(8);
  EXPECT_THROW((void)f.allocate(8), std::bad_alloc);
  void *c = f.allocate(8);
  EXPECT_EQ(f.attempts(), 5u);
  EXPECT_EQ(f.failures(), 1u);
  for (void *p : {a, b, c}) f.deallocate(p, 8);
}

TEST(FaultResource, FailFromNthFailsEveryAttemptAfter) {
  mesa::fault_resource f(std::pmr::new_delete_resource());
  f.deallocate(f.allocate(8), 8);
  f.fail_from(1);
  void *a = f.allocate(8);
  for (int i = 0; i < 3; ++i) EXPECT_THROW((void)f.allocate(8 >> i), std::bad_alloc);
  EXPECT_EQ(f.failures(), 3u);
  f.fail_none();
  void *b = f.allocate(8);
  for (void *p : {a, b}) f.deallocate(p, 8);
}

TEST(FaultResource, FailEveryNth) {
  mesa::fault_resource f(std::pmr::new_delete_resource());
  f.fail_every(3);
  std::string pattern;
  for (int i = 0; i < 9; ++i) {
    try {
      f.deallocate(f.allocate(4), 4);
      pattern += '.';
    } catch (const std::bad_alloc &) {
      pattern += 'X';
    }
  }
  EXPECT_EQ(pattern, "..X..X..X");
  f.fail_every(0);
  f.deallocate(f.allocate(4), 4);
}

// Changing the setting while another thread allocates: each attempt sees one whole setting.
// Both settings here fail every attempt, so a success means an attempt saw a mix (or a
// half-written change); every-n-th read with a stale n == 0 used to divide by zero.
TEST(FaultResource, SettingChangedDuringAllocationIsSeenWhole) {
  mesa::fault_resource f(std::pmr::new_delete_resource());
  f.fail_every(1);
  std::atomic<bool> stop{false};
  std::thread changer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      f.fail_random(1.0, 7);
      f.fail_every(1);
    }
  });
  int successes = 0;
  for (int i = 0; i < 50000; ++i) {
    try {
      f.deallocate(f.allocate(8), 8);
      ++successes;
    } catch (const std::bad_alloc &) {
    }
  }
  stop.store(true);
  changer.join();
  EXPECT_EQ(successes, 0);
  EXPECT_EQ(f.failures(), 50000u);
}

// An attempt is judged by the setting in force at its number, so it is never before that
// setting's origin: settings that fail nothing in the first 2^40 attempts fail nothing, however
// they race. (An attempt numbered just before a change used to count as attempt -1 of the new
// setting, which every-n-th fails for any n.)
TEST(FaultResource, AttemptsRacingAChangeAreNeverBeforeItsOrigin) {
  mesa::fault_resource f(std::pmr::new_delete_resource());
  std::atomic<bool> stop{false};
  std::thread changer([&] {
    constexpr std::uint64_t kFar = std::uint64_t{1} << 40;
    while (!stop.load(std::memory_order_relaxed)) {
      f.fail_every(kFar);
      f.fail_nth(kFar);
      f.fail_every(kFar + 1);
    }
  });
  std::vector<std::thread> allocators;
  for (int t = 0; t < 2; ++t) {
    allocators.emplace_back([&] {
      for (int i = 0; i < 50000; ++i) {
        try {
          f.deallocate(f.allocate(8), 8);
        } catch (const std::bad_alloc &) {
        }
      }
    });
  }
  for (std::thread &t : allocators) t.join();
  stop.store(true);
  changer.join();
  EXPECT_EQ(f.failures(), 0u);
  EXPECT_EQ(f.attempts(), 100000u);
}

// fail_nth(0) made while other threads allocate fails exactly one of their attempts: the one
// numbered at its origin. (An attempt used to read the setting and only then take its number, so
// one that read the old setting and was numbered at the new origin was judged by the old one,
// and the only attempt fail_nth(0) fails never failed: one setting in a few dozen here.)
TEST(FaultResource, FailNthWhileThreadsAllocateFailsExactlyOnce) {
  constexpr std::uint64_t kSettings = 800;
  mesa::fault_resource f(std::pmr::new_delete_resource());
  std::atomic<bool> stop{false};
  std::vector<std::thread> allocators;
  for (int t = 0; t < 3; ++t) {
    allocators.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        try {
          f.deallocate(f.allocate(16), 16);
        } catch (const std::bad_alloc &) {
        }
      }
    });
  }
  std::uint64_t settings = 0;
  for (; settings < kSettings; ++settings) {
    f.fail_nth(0);
    // The next setting comes when this one failed its attempt and the threads are allocating
    // again, in the middle of attempts. The failing attempt may be on a preempted thread: only a
    // lost failure never comes.
    const std::uint64_t made_at = f.attempts();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((f.failures() == settings || f.attempts() - made_at < 1000) &&
           std::chrono::steady_clock::now() < deadline) {
    }
    if (f.failures() == settings) {
      ADD_FAILURE() << "fail_nth(0) number " << settings << " failed no attempt";
      ++settings;
      break;
    }
  }
  stop.store(true);
  for (std::thread &t : allocators) t.join();
  EXPECT_EQ(f.failures(), settings);
}

std::string random_pattern(double p, uint64_t seed) {
  mesa::fault_resource f(std::pmr::new_delete_resource());
  f.fail_random(p, seed);
  std::string pattern;
  for (int i = 0; i < 400; ++i) {
    try {
      f.deallocate(f.allocate(4), 4);
      pattern += '.';
    } catch (const std::bad_alloc &) {
      pattern += 'X';
    }
  }
  return pattern;
}

TEST(FaultResource, RandomIsReproducibleFromTheSeed) {
  const std::string a = random_pattern(0.25, 42);
  EXPECT_EQ(a, random_pattern(0.25, 42));
  EXPECT_NE(a, random_pattern(0.25, 43));
  const auto failures = std::count(a.begin(), a.end(), 'X');
  EXPECT_GT(failures, 60);
  EXPECT_LT(failures, 140);
  EXPECT_EQ(random_pattern(0, 1), std::string(400, '.'));
  EXPECT_EQ(random_pattern(1, 1), std::string(400, 'X'));
}

TEST(FailEachAllocation, PmrMapOfStringsNeverLeaks) {
  int calls = 0;
  const mesa::fault_loop_result r = mesa::fail_each_allocation(
      std::pmr::new_delete_resource(), [&](std::pmr::memory_resource *m) {
        ++calls;
        std::pmr::map<std::pmr::string, std::pmr::string> names(m);
        for (int i = 0; i < 6; ++i)
          names.emplace(std::pmr::string("a key long enough to allocate " + std::to_string(i), m),
                        std::pmr::string("and a value long enough to allocate too", m));
        std::pmr::map<std::pmr::string, std::pmr::string> copy(names, m);
        EXPECT_EQ(copy.size(), 6u);
      });
  EXPECT_TRUE(r.completed);
  EXPECT_FALSE(r.leaked);
  // 6 nodes + 12 strings, then the same again for the copy: 36 allocation points.
  EXPECT_EQ(r.failure_points, 36u);
  EXPECT_EQ(r.runs, 37u);
  EXPECT_EQ(calls, 37);
}

// A pool under the body retries a refused chunk smaller; failing one allocation per run, the
// retry absorbed every failure and the body's out-of-memory path never ran while the loop
// reported a clean pass. Each run now fails from its n-th allocation on.
TEST(FailEachAllocation, ARetryingResourceCannotAbsorbTheFailure) {
  int out_of_memory = 0;
  const mesa::fault_loop_result r = mesa::fail_each_allocation(
      std::pmr::new_delete_resource(), [&](std::pmr::memory_resource *m) {
        mesa::pool_resource pool(m);
        try {
          pool.deallocate(pool.allocate(64), 64);
        } catch (const std::bad_alloc &) {
          ++out_of_memory;
          throw;
        }
      });
  EXPECT_TRUE(r.completed);
  EXPECT_FALSE(r.leaked);
  EXPECT_GE(r.failure_points, 1u);
  EXPECT_EQ(out_of_memory, static_cast<int>(r.failure_points))
      << "every run with a failure reached the body's out-of-memory path";
}

TEST(FailEachAllocation, FindsTheLeakingFailurePath) {
  // Leaks its first block when the second allocation fails (into an arena, freed at the end).
  std::pmr::monotonic_buffer_resource arena;
  const mesa::fault_loop_result r =
      mesa::fail_each_allocation(&arena, [](std::pmr::memory_resource *m) {
        void *first = m->allocate(24);
        void *second = m->allocate(8);  // throws at run 1: `first` is lost
        m->deallocate(second, 8);
        m->deallocate(first, 24);
      });
  EXPECT_FALSE(r.completed);
  EXPECT_TRUE(r.leaked);
  EXPECT_EQ(r.leak_at, 1u);
  EXPECT_EQ(r.leaked_bytes, 24u);
  EXPECT_EQ(r.leaked_blocks, 1u);
}

// A body that leaks only when everything succeeds: the leak is in the run with no failure,
// which completed; leak_at says so rather than naming an allocation that does not exist.
TEST(FailEachAllocation, ALeakOnTheSuccessPathIsInTheRunWithNoFailure) {
  std::pmr::monotonic_buffer_resource arena;
  const mesa::fault_loop_result r =
      mesa::fail_each_allocation(&arena, [](std::pmr::memory_resource *m) {
        void *a = m->allocate(16);
        void *b;
        try {
          b = m->allocate(16);
        } catch (const std::bad_alloc &) {
          m->deallocate(a, 16);
          throw;
        }
        m->deallocate(a, 16);
        (void)b;  // forgotten on success
      });
  EXPECT_TRUE(r.completed);
  EXPECT_TRUE(r.leaked);
  EXPECT_EQ(r.leak_at, mesa::fault_loop_result::kNoFailure);
  EXPECT_EQ(r.runs, 3u);
  EXPECT_EQ(r.failure_points, 2u);
  EXPECT_EQ(r.leaked_blocks, 1u);
}

void leak_on_success(const mesa_allocator *a, void *) {
  void *kept = mesa_alloc2(nullptr, a, 8, 8, MESA_ALLOC_SCOPE_OBJECT);
  (void)kept;
}

TEST(FaultC, ALeakOnTheSuccessPathIsInTheRunWithNoFailure) {
  const mesa_allocator *arena = mesa_arena_create(nullptr);  // takes the leak back at the end
  mesa_fault_loop_result r;
  EXPECT_EQ(mesa_fault_loop(arena, leak_on_success, nullptr, &r), 0);
  mesa_arena_destroy(arena);
  EXPECT_EQ(r.completed, 1);
  EXPECT_EQ(r.leaked, 1);
  EXPECT_EQ(r.leak_at, MESA_FAULT_LOOP_NO_FAILURE);
  EXPECT_EQ(r.runs, 2u);
}

struct c_workload {
  int completed_runs = 0;
};

// A C-style body: handles NULL by unwinding what it built.
void build_names(const mesa_allocator *a, void *context) {
  char *names[4] = {};
  for (int i = 0; i < 4; ++i) {
    names[i] = static_cast<char *>(mesa_alloc2(nullptr, a, 32, 8, MESA_ALLOC_SCOPE_OBJECT));
    if (names[i] == nullptr) {
      for (int j = 0; j < i; ++j) mesa_free2(nullptr, a, names[j]);
      return;
    }
    std::strcpy(names[i], "shader");
  }
  char *grown =
      static_cast<char *>(mesa_realloc2(nullptr, a, names[0], 4096, 8, MESA_ALLOC_SCOPE_OBJECT));
  if (grown != nullptr) names[0] = grown;
  for (char *n : names) mesa_free2(nullptr, a, n);
  if (grown != nullptr) static_cast<c_workload *>(context)->completed_runs++;
}

TEST(FaultC, LoopDrivesACWorkload) {
  c_workload w;
  mesa_fault_loop_result r;
  EXPECT_EQ(mesa_fault_loop(nullptr, build_names, &w, &r), 1);
  EXPECT_EQ(r.completed, 1);
  EXPECT_EQ(r.leaked, 0);
  EXPECT_EQ(r.runs, 6u);  // 4 allocations + realloc, then one clean run
  EXPECT_EQ(w.completed_runs, 1);
}

// No body, or a parent table that lacks a function: one line each, 0, and a zeroed result
// (the parent's missing function used to be called through address 0).
TEST(FaultC, LoopRefusesAMissingBodyOrAnIncompleteParent) {
  mesa_allocator incomplete = *mesa_libc_allocator();
  incomplete.free_fn = nullptr;
  c_workload w;
  mesa_fault_loop_result r;
  std::memset(&r, 0xff, sizeof r);
  testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_fault_loop(&incomplete, build_names, &w, &r), 0);
  EXPECT_EQ(r.runs, 0u);
  EXPECT_EQ(r.completed, 0);
  EXPECT_EQ(mesa_fault_loop(nullptr, nullptr, &w, &r), 0);
  EXPECT_EQ(r.runs, 0u);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: mesa_fault_loop: the table has no free_fn (alloc_fn, realloc_fn and "
            "free_fn are required)\n"
            "mesa_alloc: mesa_fault_loop: no body to run\n");
  EXPECT_EQ(w.completed_runs, 0);
}

// A probability that is not a number is said, and means no failures.
TEST(FaultResource, RandomWithNaNIsReportedAndFailsNothing) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(random_pattern(std::nan(""), 1), std::string(400, '.'));
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: fault_resource: fail_random with a probability that is not a number; no "
            "failures\n");
  EXPECT_EQ(random_pattern(-1, 1), std::string(400, '.'));
  EXPECT_EQ(random_pattern(2, 1), std::string(400, 'X'));
}

TEST(FaultC, TableInjectsFailures) {
  const mesa_allocator *f = mesa_fault_create(nullptr);
  ASSERT_NE(f, nullptr);
  mesa_fault_fail_nth(f, 1);
  void *a = mesa_alloc2(nullptr, f, 16, 8, MESA_ALLOC_SCOPE_OBJECT);
  EXPECT_NE(a, nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, f, 16, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_fault_fail_every(f, 1);
  EXPECT_EQ(mesa_realloc2(nullptr, f, a, 64, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_fault_fail_random(f, 0.0, 1);
  EXPECT_EQ(mesa_fault_attempts(f), 3u);
  mesa_free2(nullptr, f, a);
  mesa_fault_destroy(f);
  mesa_fault_fail_nth(nullptr, 1);
  EXPECT_EQ(mesa_fault_attempts(nullptr), 0u);
}

// From C, as from C++: fail_from runs memory out for good, so an arena table over the fault
// table, which retries a refused chunk smaller, cannot get round it; fail_none ends it, and
// failures counts what was injected.
TEST(FaultC, FailFromRunsMemoryOutUntilFailNone) {
  const mesa_allocator *f = mesa_fault_create(nullptr);
  ASSERT_NE(f, nullptr);
  const mesa_allocator *arena = mesa_arena_create(f);
  ASSERT_NE(arena, nullptr);
  const uint64_t attempts_before = mesa_fault_attempts(f);  // the arena table itself
  mesa_fault_fail_from(f, 0);
  EXPECT_EQ(mesa_alloc2(nullptr, arena, 64, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const uint64_t failed = mesa_fault_failures(f);
  EXPECT_GE(failed, 2u);  // the chunk, and every smaller retry
  EXPECT_EQ(failed, mesa_fault_attempts(f) - attempts_before);
  mesa_fault_fail_none(f);
  EXPECT_NE(mesa_alloc2(nullptr, arena, 64, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_fault_failures(f), failed);
  mesa_arena_destroy(arena);
  mesa_fault_destroy(f);
  mesa_fault_fail_from(nullptr, 0);
  mesa_fault_fail_none(nullptr);
  EXPECT_EQ(mesa_fault_failures(nullptr), 0u);
}

// Handed a table of another kind, the fault functions and the fast resources' destroy and
// release functions do nothing, like the tracking and debug ones: no write into the other
// table's object, no free of it.
TEST(FaultC, FunctionsIgnoreTablesOfAnotherKind) {
  mesa_slab_parent *parent = mesa_slab_parent_create(nullptr, 32);
  ASSERT_NE(parent, nullptr);
  struct kind {
    const mesa_allocator *table;
    void (*destroy)(const mesa_allocator *);
  };
  const kind kinds[] = {
      {mesa_tracking_create(nullptr, "t", nullptr), mesa_tracking_destroy},
      {mesa_arena_create(nullptr), mesa_arena_destroy},
      {mesa_pool_create(nullptr), mesa_pool_destroy},
      {mesa_synchronized_pool_create(nullptr), mesa_synchronized_pool_destroy},
      {mesa_slab_create(nullptr, 64), mesa_slab_destroy},
      {mesa_slab_child_create(parent), mesa_slab_child_destroy},
      {mesa_fault_create(nullptr), mesa_fault_destroy},
      {mesa_libc_allocator(), nullptr},
  };
  const mesa_allocator *fault = kinds[6].table;
  for (const kind &k : kinds) ASSERT_NE(k.table, nullptr);
  for (const kind &other : kinds) {
    for (const kind &k : kinds) {
      if (k.destroy != nullptr && k.destroy != other.destroy) k.destroy(other.table);
    }
    if (other.destroy != mesa_arena_destroy) mesa_arena_release(other.table);
    if (other.table == fault) continue;
    mesa_fault_fail_nth(other.table, 0);
    mesa_fault_fail_every(other.table, 1);
    mesa_fault_fail_random(other.table, 1.0, 7);
    mesa_fault_fail_from(other.table, 0);
    mesa_fault_fail_none(other.table);
    EXPECT_EQ(mesa_fault_attempts(other.table), 0u);
    EXPECT_EQ(mesa_fault_failures(other.table), 0u);
  }
  for (const kind &k : kinds) {  // every table still alive and working
    if (k.table == fault) continue;
    void *p = mesa_alloc2(nullptr, k.table, 32, 8, MESA_ALLOC_SCOPE_OBJECT);  // slab: 32
    EXPECT_NE(p, nullptr);
    mesa_free2(nullptr, k.table, p);
  }
  mesa_fault_fail_nth(fault, 0);
  EXPECT_EQ(mesa_alloc2(nullptr, fault, 64, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_tracking_stats stats;
  ASSERT_EQ(mesa_tracking_get_stats(kinds[0].table, &stats), 1);
  EXPECT_EQ(stats.total_allocations, 1u);
  EXPECT_EQ(stats.total_deallocations, 1u);
  for (const kind &k : kinds) {
    if (k.destroy != nullptr) k.destroy(k.table);
  }
  mesa_slab_parent_destroy(parent);
}

}  // namespace
