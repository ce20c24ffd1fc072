#include "mesa_alloc/tracking_resource.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <memory_resource>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/tracking_monitor.h"

namespace {

std::string capture(void (*print)(const mesa::tracking_resource &, std::FILE *),
                    const mesa::tracking_resource &t) {
  char *buffer = nullptr;
  size_t size = 0;
  std::FILE *f = open_memstream(&buffer, &size);
  print(t, f);
  std::fclose(f);
  std::string s(buffer, size);
  std::free(buffer);
  return s;
}

TEST(TrackingResource, RandomWorkloadMatchesShadowModel) {
  mesa::tracking_resource tracker(std::pmr::new_delete_resource(), "random");
  std::mt19937 rng(1234);
  struct block {
    void *p;
    size_t size;
    size_t alignment;
  };
  std::vector<block> live;
  size_t bytes = 0, peak = 0, peak_blocks = 0, total_bytes = 0, allocs = 0, frees = 0;
  for (int i = 0; i < 20000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      const size_t size = 1 + rng() % 3000;
      const size_t alignment = size_t{1} << (rng() % 8);
      live.push_back({tracker.allocate(size, alignment), size, alignment});
      bytes += size;
      total_bytes += size;
      ++allocs;
    } else {
      const size_t k = rng() % live.size();
      tracker.deallocate(live[k].p, live[k].size, live[k].alignment);
      bytes -= live[k].size;
      live[k] = live.back();
      live.pop_back();
      ++frees;
    }
    peak = std::max(peak, bytes);
    peak_blocks = std::max(peak_blocks, live.size());
    if (i % 997 == 0) {
      const mesa::tracking_stats s = tracker.stats();
      ASSERT_EQ(s.bytes_in_use, bytes);
      ASSERT_EQ(s.blocks_in_use, live.size());
      ASSERT_EQ(s.peak_bytes, peak);
    }
  }
  const mesa::tracking_stats s = tracker.stats();
  EXPECT_EQ(s.bytes_in_use, bytes);
  EXPECT_EQ(s.peak_bytes, peak);
  EXPECT_EQ(s.blocks_in_use, live.size());
  EXPECT_EQ(s.peak_blocks, peak_blocks);
  EXPECT_EQ(s.total_bytes, total_bytes);
  EXPECT_EQ(s.total_allocations, allocs);
  EXPECT_EQ(s.total_deallocations, frees);
  EXPECT_EQ(s.failed_allocations, 0u);
  EXPECT_EQ(s.scopes[MESA_ALLOC_SCOPE_OBJECT].bytes_in_use, bytes);
  EXPECT_EQ(s.scopes[MESA_ALLOC_SCOPE_COMMAND].total_allocations, 0u);
  for (const block &b : live) tracker.deallocate(b.p, b.size, b.alignment);
  EXPECT_EQ(tracker.stats().bytes_in_use, 0u);
  EXPECT_EQ(tracker.stats().peak_bytes, peak);
}

// Every scope, with a budget that some allocations exceed: each scope's counters against its
// own shadow.
TEST(TrackingResource, RandomScopedWorkloadMatchesShadowModelPerScope) {
  constexpr size_t kLimit = 200000;
  mesa::tracking_resource tracker(std::pmr::new_delete_resource(), "scoped");
  tracker.set_limit(kLimit);
  std::mt19937 rng(99);
  struct block {
    void *p;
    size_t size;
    mesa_alloc_scope scope;
  };
  struct shadow {
    size_t bytes = 0, blocks = 0;
    uint64_t total_bytes = 0, allocs = 0, frees = 0, failures = 0;
  } want[MESA_ALLOC_SCOPE_COUNT];
  std::vector<block> live;
  size_t in_use = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto scope = static_cast<mesa_alloc_scope>(rng() % MESA_ALLOC_SCOPE_COUNT);
    if (live.empty() || rng() % 5 < 3) {
      const size_t size = 1 + rng() % 3000;
      if (in_use + size > kLimit) {
        EXPECT_THROW((void)tracker.allocate_in_scope(size, 8, scope), std::bad_alloc);
        ++want[scope].failures;
        continue;
      }
      live.push_back({tracker.allocate_in_scope(size, 8, scope), size, scope});
      in_use += size;
      want[scope].bytes += size;
      ++want[scope].blocks;
      want[scope].total_bytes += size;
      ++want[scope].allocs;
    } else {
      const size_t k = rng() % live.size();
      const block b = live[k];
      tracker.deallocate_in_scope(b.p, b.size, 8, b.scope);
      in_use -= b.size;
      want[b.scope].bytes -= b.size;
      --want[b.scope].blocks;
      ++want[b.scope].frees;
      live[k] = live.back();
      live.pop_back();
    }
  }
  const mesa::tracking_stats s = tracker.stats();
  uint64_t failures = 0;
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    SCOPED_TRACE("scope " + std::to_string(i));
    EXPECT_EQ(s.scopes[i].bytes_in_use, want[i].bytes);
    EXPECT_EQ(s.scopes[i].blocks_in_use, want[i].blocks);
    EXPECT_EQ(s.scopes[i].total_bytes, want[i].total_bytes);
    EXPECT_EQ(s.scopes[i].total_allocations, want[i].allocs);
    EXPECT_EQ(s.scopes[i].total_deallocations, want[i].frees);
    EXPECT_EQ(s.scopes[i].failed_allocations, want[i].failures);
    failures += want[i].failures;
  }
  EXPECT_GT(failures, 100u);  // the budget was hit, in several scopes
  EXPECT_EQ(s.failed_allocations, failures);
  EXPECT_EQ(s.bytes_in_use, in_use);
  for (const block &b : live) tracker.deallocate_in_scope(b.p, b.size, 8, b.scope);
  EXPECT_EQ(tracker.stats().bytes_in_use, 0u);
}

// A scope outside the MESA_ALLOC_SCOPE_* values is counted as OBJECT, as the C table counts it;
// it used to index the per-scope counters out of bounds (a corrupted neighbour, or a crash for
// VK_SYSTEM_ALLOCATION_SCOPE_MAX_ENUM).
TEST(TrackingResource, UnknownScopeIsCountedAsObject) {
  mesa::tracking_resource tracker(std::pmr::new_delete_resource(), "scopes");
  for (const int scope : {5, 7, -1, 0x7fffffff}) {
    void *p = tracker.allocate_in_scope(64, 8, static_cast<mesa_alloc_scope>(scope));
    const mesa::tracking_stats live = tracker.stats();
    EXPECT_EQ(live.scopes[MESA_ALLOC_SCOPE_OBJECT].bytes_in_use, 64u) << scope;
    tracker.deallocate_in_scope(p, 64, 8, static_cast<mesa_alloc_scope>(scope));
  }
  const mesa::tracking_stats s = tracker.stats();
  EXPECT_EQ(s.scopes[MESA_ALLOC_SCOPE_OBJECT].total_allocations, 4u);
  EXPECT_EQ(s.scopes[MESA_ALLOC_SCOPE_OBJECT].total_deallocations, 4u);
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    if (i == MESA_ALLOC_SCOPE_OBJECT) continue;
    EXPECT_EQ(s.scopes[i].total_allocations, 0u) << i;
    EXPECT_EQ(s.scopes[i].total_deallocations, 0u) << i;
    EXPECT_EQ(s.scopes[i].bytes_in_use, 0u) << i;
  }
  EXPECT_EQ(s.bytes_in_use, 0u);
}

// A parent destroyed before its child: the child would go on charging freed counters and a
// freed limit (silent corruption, found by a review probe). It is cut loose instead, with a line
// naming both, and goes on counting for itself (a program whose global parent outlives a leaked
// child must still exit normally).
TEST(TrackingResource, ParentDestroyedBeforeItsChildCutsItLoose) {
  testing::internal::CaptureStderr();
  auto *driver = new mesa::tracking_resource(std::pmr::new_delete_resource(), "driver");
  driver->set_limit(1 << 20);
  mesa::tracking_resource compiler(std::pmr::new_delete_resource(), "compiler", driver);
  mesa::tracking_resource cache(std::pmr::new_delete_resource(), "cache", &compiler);
  void *kept = cache.allocate(64);
  delete driver;
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err,
            "mesa_alloc: tracking_resource 'driver' destroyed while its child 'compiler' is "
            "alive; the child no longer rolls up into it (destroy the children first)\n");
  EXPECT_EQ(compiler.parent(), nullptr);
  cache.deallocate(cache.allocate(2 << 20), 2 << 20);  // the parent's limit is gone with it
  cache.deallocate(kept, 64);
  EXPECT_EQ(cache.stats().total_allocations, 2u);
  EXPECT_EQ(compiler.stats().total_allocations, 2u);
  EXPECT_EQ(compiler.stats().bytes_in_use, 0u);

  const mesa_allocator *c_driver = mesa_tracking_create(nullptr, "driver", nullptr);
  const mesa_allocator *c_compiler = mesa_tracking_create(nullptr, "compiler", c_driver);
  testing::internal::CaptureStderr();
  mesa_tracking_destroy(c_driver);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("'driver' destroyed while its child "
                                                        "'compiler' is alive"),
            std::string::npos);
  mesa_free2(nullptr, c_compiler, mesa_alloc2(nullptr, c_compiler, 8, 8, MESA_ALLOC_SCOPE_OBJECT));
  mesa_tracking_destroy(c_compiler);
}

// A middle tracker destroyed first: what its child holds was counted and charged all the way up,
// and the child's frees no longer reach that far. The ancestors let go of it at the cut (found
// by a probe: the root's budget stayed 600 bytes short for good).
TEST(TrackingResource, AMiddleTrackerDestroyedFirstTakesItsChildsBlocksOutOfItsAncestors) {
  mesa::tracking_resource root(std::pmr::new_delete_resource(), "root");
  root.set_limit(1000);
  auto *mid = new mesa::tracking_resource(std::pmr::new_delete_resource(), "mid", &root);
  mesa::tracking_resource leaf(std::pmr::new_delete_resource(), "leaf", mid);
  void *object = leaf.allocate(400);
  void *command = leaf.allocate_in_scope(200, 8, MESA_ALLOC_SCOPE_COMMAND);
  ASSERT_EQ(root.stats().bytes_in_use, 600u);
  testing::internal::CaptureStderr();
  delete mid;
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: tracking_resource 'mid' destroyed while its child 'leaf' is alive; the "
            "child no longer rolls up into it (destroy the children first); its ancestors no "
            "longer count the blocks the child holds\n");
  mesa::tracking_stats s = root.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.blocks_in_use, 0u);
  EXPECT_EQ(s.scopes[MESA_ALLOC_SCOPE_COMMAND].bytes_in_use, 0u);
  EXPECT_EQ(s.scopes[MESA_ALLOC_SCOPE_OBJECT].bytes_in_use, 0u);
  EXPECT_EQ(s.peak_bytes, 600u);
  root.deallocate(root.allocate(1000), 1000);  // the whole budget again
  leaf.deallocate(object, 400);
  leaf.deallocate_in_scope(command, 200, 8, MESA_ALLOC_SCOPE_COMMAND);
  EXPECT_EQ(leaf.stats().bytes_in_use, 0u);
  s = root.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.total_allocations, 3u);
  EXPECT_EQ(s.total_deallocations, 3u);  // two let go at the cut, one freed
}

// A report to stderr holds the stream's lock and takes the trackers' children locks; a tracker
// destroyed meanwhile writes its lines (cut loose, overdrawn) under its children lock, so they
// must not wait for the stream's lock (the review reproduced the deadlock). Here the test holds
// stderr's lock itself, as a report in progress would.
TEST(TrackingResource, ADestroyedTrackersLinesDoNotWaitForTheStreamLock) {
  mesa::tracking_resource root(std::pmr::new_delete_resource(), "root");
  root.set_limit(1000);
  auto *mid = new mesa::tracking_resource(std::pmr::new_delete_resource(), "mid", &root);
  mesa::tracking_resource leaf(std::pmr::new_delete_resource(), "leaf", mid);
  std::pmr::monotonic_buffer_resource pool;  // its deallocate ignores the wrong size below
  mesa::tracking_resource sibling(&pool, "sibling", &root);
  void *held = leaf.allocate(600);
  void *p = sibling.allocate(100);
  testing::internal::CaptureStderr();
  sibling.deallocate(p, 500);  // a wrong size: root's charge drops to 200, below leaf's 600
  std::atomic<bool> destroyed{false};
  flockfile(stderr);
  std::thread destroyer([&] {
    delete mid;  // cut loose: root gives back 600 of its 200: the overdrawn line
    destroyed.store(true);
  });
  for (int i = 0; i < 500 && !destroyed.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const bool finished_while_stream_locked = destroyed.load();
  funlockfile(stderr);
  destroyer.join();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(finished_while_stream_locked);
  EXPECT_NE(err.find("'mid' destroyed while its child 'leaf' is alive"), std::string::npos) << err;
  EXPECT_NE(err.find("tracking resource 'root': 600 bytes given back with 200 charged"),
            std::string::npos)
      << err;
  leaf.deallocate(held, 600);
}

// A thread's exclusive shard comes back when it exits (through a pthread key's destructor, which
// unlike a thread_local object's does not keep a dlopened driver loaded): after many more
// short-lived threads than there are shards, a new thread still gets an exclusive one.
TEST(TrackingResource, ExitedThreadsGiveTheirShardsBack) {
  mesa::tracking_resource tracker(std::pmr::new_delete_resource(), "threads");
  for (int i = 0; i < 3 * mesa::internal::kTrackingShards; ++i) {
    int index = -1;
    std::thread t([&] {
      tracker.deallocate(tracker.allocate(16), 16);
      index = mesa::internal::tracking_shard_index();
    });
    t.join();
    ASSERT_LT(index, mesa::internal::kTrackingShards) << "thread " << i << " got the shared shard";
  }
  EXPECT_EQ(tracker.stats().total_allocations, 3u * mesa::internal::kTrackingShards);
}

TEST(TrackingResource, ChildrenRollUpIntoParents) {
  mesa::tracking_resource driver(std::pmr::new_delete_resource(), "driver");
  mesa::tracking_resource compiler(std::pmr::new_delete_resource(), "compiler", &driver);
  mesa::tracking_resource winsys(std::pmr::new_delete_resource(), "winsys", &driver);
  void *a = compiler.allocate(100);
  void *b = winsys.allocate(50);
  void *c = driver.allocate(7);
  EXPECT_EQ(compiler.stats().bytes_in_use, 100u);
  EXPECT_EQ(winsys.stats().bytes_in_use, 50u);
  EXPECT_EQ(driver.stats().bytes_in_use, 100u + 50u + 7u);
  EXPECT_EQ(driver.stats().total_allocations, 3u);
  winsys.deallocate(b, 50);
  EXPECT_EQ(driver.stats().bytes_in_use, 107u);
  compiler.deallocate(a, 100);
  driver.deallocate(c, 7);
  EXPECT_EQ(driver.stats().bytes_in_use, 0u);
  EXPECT_EQ(driver.stats().peak_bytes, 157u);
}

TEST(TrackingResource, LimitMakesAllocationsFailAndCountsThem) {
  mesa::tracking_resource parent(std::pmr::new_delete_resource(), "parent");
  mesa::tracking_resource child(std::pmr::new_delete_resource(), "child", &parent);
  parent.set_limit(1000);
  void *a = child.allocate(600);
  EXPECT_THROW((void)child.allocate(401), std::bad_alloc);  // the parent's budget applies
  void *b = child.allocate(400);                            // exactly at the limit
  EXPECT_THROW((void)parent.allocate(1), std::bad_alloc);
  EXPECT_EQ(child.stats().failed_allocations, 1u);
  EXPECT_EQ(parent.stats().failed_allocations, 2u);
  child.deallocate(a, 600);
  void *c = parent.allocate(600);
  child.set_limit(100);
  EXPECT_THROW((void)child.allocate(101), std::bad_alloc);
  child.deallocate(b, 400);  // charged before the child's limit: must not underflow
  void *d = child.allocate(100);
  child.deallocate(d, 100);
  parent.deallocate(c, 600);
  parent.set_limit(mesa::tracking_resource::kNoLimit);
  void *e = parent.allocate(5000);
  parent.deallocate(e, 5000);
  EXPECT_EQ(parent.stats().bytes_in_use, 0u);
}

// A limit reaches the descendants that exist when it is set and those created later, and
// nothing else: a budget on one subtree leaves its siblings alone.
TEST(TrackingResource, LimitReachesDescendantsOnly) {
  std::pmr::memory_resource *heap = std::pmr::new_delete_resource();
  mesa::tracking_resource driver(heap, "driver");
  mesa::tracking_resource cache(heap, "cache", &driver);
  mesa::tracking_resource shaders(heap, "shaders", &cache);
  mesa::tracking_resource compiler(heap, "compiler", &driver);
  cache.set_limit(100);
  mesa::tracking_resource pipelines(heap, "pipelines", &cache);  // created under the limit
  EXPECT_THROW((void)shaders.allocate(101), std::bad_alloc);
  EXPECT_THROW((void)pipelines.allocate(101), std::bad_alloc);
  void *big = compiler.allocate(1000);  // a sibling subtree: no budget
  void *a = shaders.allocate(60);
  EXPECT_THROW((void)pipelines.allocate(41), std::bad_alloc);
  EXPECT_EQ(cache.stats().failed_allocations, 3u);
  EXPECT_EQ(compiler.stats().failed_allocations, 0u);
  cache.set_limit(mesa::tracking_resource::kNoLimit);
  void *b = pipelines.allocate(500);
  pipelines.deallocate(b, 500);
  shaders.deallocate(a, 60);
  compiler.deallocate(big, 1000);
  EXPECT_EQ(driver.stats().bytes_in_use, 0u);
}

// More given back than is charged (a block freed twice, or with too large a size) is said, and
// the budget's charge stops at 0: wrapped round, it used to refuse every later allocation while
// the report showed nothing in use.
TEST(TrackingResource, AnOverdrawnLimitIsReportedAndDoesNotWedgeTheBudget) {
  std::pmr::monotonic_buffer_resource arena;  // frees nothing: the misuse is harmless below
  mesa::tracking_resource t(&arena, "budgeted");
  t.set_limit(1000);
  void *p = t.allocate(100, 8);
  testing::internal::CaptureStderr();
  t.deallocate(p, 900, 8);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: tracking resource 'budgeted': 900 bytes given back with 100 charged to "
            "its limit (a block freed twice or with a larger size than it was allocated with, or "
            "a limit set while other threads allocated); the charge is now 0\n");
  void *q = t.allocate(1000, 8);  // the whole budget again
  EXPECT_THROW((void)t.allocate(8, 8), std::bad_alloc);
  t.deallocate(q, 1000, 8);
}

TEST(TrackingResource, UpstreamFailureIsCounted) {
  mesa::tracking_resource t(std::pmr::null_memory_resource(), "null");
  EXPECT_THROW((void)t.allocate(8), std::bad_alloc);
  EXPECT_EQ(t.stats().failed_allocations, 1u);
  EXPECT_EQ(t.stats().total_allocations, 0u);
}

TEST(TrackingResource, ReportAndJsonListChildren) {
  mesa::tracking_resource driver(std::pmr::new_delete_resource(), "driver");
  mesa::tracking_resource cache(std::pmr::new_delete_resource(), "cache \"x\"", &driver);
  void *p = cache.allocate(123);
  const std::string text =
      capture([](const mesa::tracking_resource &t, std::FILE *f) { t.print_report(f); }, driver);
  EXPECT_NE(text.find("tracker"), std::string::npos);
  EXPECT_NE(text.find("\n  cache \"x\""), std::string::npos) << text;
  EXPECT_NE(text.find(" 123 "), std::string::npos) << text;
  // An aligned table: every row as wide as the header, each number ending where its column
  // title ends.
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(text.substr(start, end - start));
  ASSERT_EQ(lines.size(), 3u) << text;
  const size_t in_use_end = lines[0].find("bytes_in_use") + std::string("bytes_in_use").size();
  for (const std::string &line : lines) {
    EXPECT_EQ(line.size(), lines[0].size()) << text;
    EXPECT_NE(line[in_use_end - 1], ' ') << text;
    EXPECT_EQ(line[in_use_end], ' ') << text;
  }
  EXPECT_EQ(lines[2].substr(in_use_end - 3, 3), "123") << text;
  const std::string json =
      capture([](const mesa::tracking_resource &t, std::FILE *f) { t.print_json(f); }, driver);
  EXPECT_NE(json.find("{\"name\":\"driver\",\"bytes_in_use\":123,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"children\":[{\"name\":\"cache \\\"x\\\"\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"limit\":null"), std::string::npos);
  cache.deallocate(p, 123);
}

TEST(TrackingResource, NameIsTruncatedNotOverflowed) {
  const std::string long_name(200, 'n');
  mesa::tracking_resource t(std::pmr::new_delete_resource(), long_name);
  EXPECT_EQ(t.name(), std::string(mesa::tracking_resource::kMaxName, 'n'));
}

// Names are labels a driver makes up (a shader's name, an application's): the JSON report stays
// valid UTF-8 and the text table stays one row per tracker whatever they hold.
TEST(TrackingResource, OddNamesKeepTheReportsWellFormed) {
  // Cut at kMaxName (47) bytes, a name is cut between characters, not inside one.
  const std::string han = std::string(46, 'a') + "\xe6\x97\xa5";  // 46 bytes + a 3-byte character
  const std::string emoji = std::string(45, 'b') + "\xf0\x9f\x98\x80";  // 45 + a 4-byte one
  mesa::tracking_resource cut_han(std::pmr::new_delete_resource(), han);
  mesa::tracking_resource cut_emoji(std::pmr::new_delete_resource(), emoji);
  EXPECT_EQ(cut_han.name(), std::string(46, 'a'));
  EXPECT_EQ(cut_emoji.name(), std::string(45, 'b'));
  mesa::tracking_resource fits(std::pmr::new_delete_resource(), "x\xe6\x97\xa5");
  EXPECT_EQ(fits.name(), "x\xe6\x97\xa5");
  mesa::tracking_resource none(std::pmr::new_delete_resource(), std::string_view());
  EXPECT_EQ(none.name(), "");

  mesa::tracking_resource root(std::pmr::new_delete_resource(), "r\xc3\xa9gion");
  mesa::tracking_resource bad(std::pmr::new_delete_resource(),
                              "a\xff\xfe"
                              "b\xe6\x97",
                              &root);
  mesa::tracking_resource control(std::pmr::new_delete_resource(), "line\nbreak\x7f", &root);
  const std::string json =
      capture([](const mesa::tracking_resource &t, std::FILE *f) { t.print_json(f); }, root);
  EXPECT_NE(json.find("{\"name\":\"r\xc3\xa9gion\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"a\\ufffd\\ufffdb\\ufffd\\ufffd\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"line\\u000abreak\x7f\""), std::string::npos) << json;
  for (unsigned char c : json) EXPECT_TRUE(c >= 0x20 || c == '\n');  // control characters escaped

  const std::string text =
      capture([](const mesa::tracking_resource &t, std::FILE *f) { t.print_report(f); }, root);
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(text.substr(start, end - start));
  ASSERT_EQ(lines.size(), 4u) << text;  // the header and one row per tracker
  EXPECT_EQ(lines[1].rfind("r\xc3\xa9gion ", 0), 0u) << text;
  EXPECT_EQ(lines[2].rfind("  line?break? ", 0), 0u) << text;
  EXPECT_EQ(lines[3].rfind("  a??b?? ", 0), 0u) << text;
  // Columns line up by characters: "région" is 6 characters in 7 bytes.
  EXPECT_EQ(lines[1].size(), lines[0].size() + 1) << text;
  EXPECT_EQ(lines[2].size(), lines[0].size()) << text;
}

// One print_json is one line of the stream even while another thread writes to it.
TEST(TrackingResource, AReportIsNotInterleavedWithAnotherThreadsWrites) {
  mesa::tracking_resource root(std::pmr::new_delete_resource(), "root");
  std::vector<std::unique_ptr<mesa::tracking_resource>> children;
  for (int i = 0; i < 16; ++i)
    children.push_back(
        std::make_unique<mesa::tracking_resource>(std::pmr::new_delete_resource(), "child", &root));
  char *buffer = nullptr;
  size_t size = 0;
  std::FILE *f = open_memstream(&buffer, &size);
  std::atomic<bool> done{false};
  std::thread noise([&] {
    while (!done.load(std::memory_order_relaxed)) std::fputs("noise\n", f);
  });
  for (int i = 0; i < 200; ++i) root.print_json(f);
  done.store(true, std::memory_order_relaxed);
  noise.join();
  std::fclose(f);
  const std::string out(buffer, size);
  std::free(buffer);
  int documents = 0;
  for (size_t start = 0, end; (end = out.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string line = out.substr(start, end - start);
    if (line == "noise") continue;
    ++documents;
    EXPECT_EQ(line.rfind("{\"name\":\"root\"", 0), 0u) << line.substr(0, 80);
    EXPECT_EQ(line.substr(line.size() - 2), "]}") << line.substr(0, 80);
    EXPECT_EQ(line.find("noise"), std::string::npos);
  }
  EXPECT_EQ(documents, 200);
}

TEST(TrackingMonitor, InUseTotalPeak) {
  mesa::tracking_resource t(std::pmr::new_delete_resource(), "m");
  mesa::tracking_monitor monitor(&t);
  EXPECT_TRUE(monitor.in_use_same());
  EXPECT_TRUE(monitor.total_same());
  void *p = t.allocate(10);
  EXPECT_TRUE(monitor.in_use_up());
  EXPECT_TRUE(monitor.total_up());
  EXPECT_TRUE(monitor.peak_up());
  monitor.reset();
  t.deallocate(p, 10);
  EXPECT_TRUE(monitor.in_use_down());
  EXPECT_TRUE(monitor.peak_same());
  EXPECT_FALSE(monitor.total_up());
}

TEST(TrackingMonitorDeathTest, ANullTrackerIsRefused) {
  EXPECT_DEATH(mesa::tracking_monitor(static_cast<const mesa::tracking_resource *>(nullptr)),
               "mesa_alloc: tracking_monitor: no tracker \\(null\\)");
}

// A zero-byte block is a block: kept, it is a leak the monitor must see (bytes alone miss it).
TEST(TrackingMonitor, AKeptZeroByteBlockIsInUseUp) {
  mesa::tracking_resource t(std::pmr::new_delete_resource(), "m");
  mesa::tracking_monitor monitor(&t);
  void *empty = t.allocate(0);
  EXPECT_FALSE(monitor.in_use_same());
  EXPECT_TRUE(monitor.in_use_up());
  EXPECT_FALSE(monitor.in_use_down());
  monitor.reset();
  t.deallocate(empty, 0);
  EXPECT_TRUE(monitor.in_use_down());
  EXPECT_FALSE(monitor.in_use_same());
}

TEST(TrackingC, ExactUserSizesPerScopeAndRollup) {
  const mesa_allocator *driver = mesa_tracking_create(nullptr, "driver", nullptr);
  const mesa_allocator *compiler = mesa_tracking_create(nullptr, "compiler", driver);
  ASSERT_NE(driver, nullptr);
  ASSERT_NE(compiler, nullptr);
  void *a = mesa_alloc2(nullptr, compiler, 64, 8, MESA_ALLOC_SCOPE_COMMAND);
  void *b = mesa_alloc2(nullptr, compiler, 100, 256, MESA_ALLOC_SCOPE_DEVICE);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(b) % 256, 0u);
  mesa_tracking_stats s;
  ASSERT_EQ(mesa_tracking_get_stats(driver, &s), 1);
  EXPECT_EQ(s.bytes_in_use, 164u);
  EXPECT_EQ(s.scope_bytes_in_use[MESA_ALLOC_SCOPE_COMMAND], 64u);
  EXPECT_EQ(s.scope_bytes_in_use[MESA_ALLOC_SCOPE_DEVICE], 100u);
  b = mesa_realloc2(nullptr, compiler, b, 300, 8, MESA_ALLOC_SCOPE_DEVICE);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(b) % 256, 0u);  // realloc keeps the alignment
  mesa_tracking_get_stats(compiler, &s);
  EXPECT_EQ(s.bytes_in_use, 364u);
  mesa_tracking_set_limit(compiler, 400);
  EXPECT_EQ(mesa_alloc2(nullptr, compiler, 37, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, compiler, 50, 8, MESA_ALLOC_SCOPE_CACHE), nullptr);
  mesa_tracking_get_stats(driver, &s);
  EXPECT_EQ(s.failed_allocations, 2u);
  EXPECT_EQ(s.scope_failed_allocations[MESA_ALLOC_SCOPE_OBJECT], 1u);
  EXPECT_EQ(s.scope_failed_allocations[MESA_ALLOC_SCOPE_CACHE], 1u);
  EXPECT_EQ(s.scope_failed_allocations[MESA_ALLOC_SCOPE_DEVICE], 0u);
  // DEVICE: 100 bytes, then the realloc's 300 (a new block; the old one freed).
  EXPECT_EQ(s.scope_total_bytes[MESA_ALLOC_SCOPE_DEVICE], 400u);
  EXPECT_EQ(s.scope_allocations[MESA_ALLOC_SCOPE_DEVICE], 2u);
  EXPECT_EQ(s.scope_deallocations[MESA_ALLOC_SCOPE_DEVICE], 1u);
  EXPECT_EQ(s.scope_total_bytes[MESA_ALLOC_SCOPE_COMMAND], 64u);
  mesa_free2(nullptr, compiler, a);
  mesa_free2(nullptr, compiler, b);
  mesa_tracking_get_stats(driver, &s);
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.blocks_in_use, 0u);
  EXPECT_EQ(s.total_allocations, 3u);
  EXPECT_EQ(s.total_deallocations, 3u);
  mesa_tracking_destroy(compiler);
  mesa_tracking_destroy(driver);
}

// A budget counts what is live; shrinking a block under a full budget must not need room for a
// second copy.
TEST(TrackingC, ShrinkingReallocSucceedsUnderAFullBudget) {
  const mesa_allocator *t = mesa_tracking_create(nullptr, "t", nullptr);
  ASSERT_NE(t, nullptr);
  mesa_tracking_set_limit(t, 1000);
  auto *p = static_cast<char *>(mesa_alloc2(nullptr, t, 1000, 64, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_NE(p, nullptr);
  std::memset(p, 'x', 1000);
  EXPECT_EQ(mesa_alloc2(nullptr, t, 1, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);  // full
  auto *q = static_cast<char *>(mesa_realloc2(nullptr, t, p, 10, 8, MESA_ALLOC_SCOPE_COMMAND));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q[9], 'x');
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 64, 0u);
  mesa_tracking_stats s;
  ASSERT_EQ(mesa_tracking_get_stats(t, &s), 1);
  EXPECT_EQ(s.bytes_in_use, 10u);
  EXPECT_EQ(s.scope_bytes_in_use[MESA_ALLOC_SCOPE_OBJECT], 0u);
  EXPECT_EQ(s.scope_bytes_in_use[MESA_ALLOC_SCOPE_COMMAND], 10u);
  EXPECT_EQ(s.peak_bytes, 1000u);
  void *r = mesa_alloc2(nullptr, t, 990, 8, MESA_ALLOC_SCOPE_OBJECT);  // the budget came back
  EXPECT_NE(r, nullptr);
  // Growing or asking for more alignment still moves the block (and needs the room).
  EXPECT_EQ(mesa_realloc2(nullptr, t, q, 11, 8, MESA_ALLOC_SCOPE_COMMAND), nullptr);
  mesa_free2(nullptr, t, r);
  q = static_cast<char *>(mesa_realloc2(nullptr, t, q, 10, 128, MESA_ALLOC_SCOPE_COMMAND));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 128, 0u);
  mesa_free2(nullptr, t, q);
  ASSERT_EQ(mesa_tracking_get_stats(t, &s), 1);
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.blocks_in_use, 0u);
  mesa_tracking_destroy(t);
}

// A block freed twice through a tracking table is named a double free (its header is marked
// freed), uncharged once, and not handed to the parent again; a realloc of it too.
TEST(TrackingC, ADoubleFreeIsReportedAndUnchargedOnce) {
  const mesa_allocator *arena = mesa_arena_create(nullptr);  // frees nothing: the header stays
  const mesa_allocator *t = mesa_tracking_create(arena, "t", nullptr);
  ASSERT_TRUE(arena != nullptr && t != nullptr);
  mesa_tracking_set_limit(t, 1000);
  void *p = mesa_alloc2(nullptr, t, 600, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  mesa_free2(nullptr, t, p);
  testing::internal::CaptureStderr();
  mesa_free2(nullptr, t, p);
  EXPECT_EQ(mesa_realloc2(nullptr, t, p, 700, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: double free at 0x"), std::string::npos) << err;
  EXPECT_NE(err.find(": freed through tracking table 't', which freed it already; the block is "
                     "left alone\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(": reallocated through tracking table 't', which freed it already"),
            std::string::npos)
      << err;
  mesa_tracking_stats s;
  ASSERT_EQ(mesa_tracking_get_stats(t, &s), 1);
  EXPECT_EQ(s.total_deallocations, 1u);
  EXPECT_EQ(s.bytes_in_use, 0u);
  void *whole = mesa_alloc2(nullptr, t, 1000, 16, MESA_ALLOC_SCOPE_OBJECT);
  EXPECT_NE(whole, nullptr) << "the budget was uncharged once, not wrapped";
  mesa_free2(nullptr, t, whole);
  mesa_tracking_destroy(t);
  mesa_arena_destroy(arena);
}

// A pointer into a block is no block: refused as one of another table, its "header" not read
// when the pointer is off a block's alignment (the tag's load would be misaligned: UBSan's finding
// in a fuzz probe), and nothing uncharged.
TEST(TrackingC, AnInteriorPointerIsRefused) {
  const mesa_allocator *t = mesa_tracking_create(nullptr, "t", nullptr);
  ASSERT_NE(t, nullptr);
  auto *p = static_cast<unsigned char *>(mesa_alloc2(nullptr, t, 64, 16, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0, 64);
  for (void *interior : {static_cast<void *>(p + 3), static_cast<void *>(p + 16)}) {
    testing::internal::CaptureStderr();
    mesa_free2(nullptr, t, interior);
    EXPECT_EQ(mesa_realloc2(nullptr, t, interior, 8, 1, MESA_ALLOC_SCOPE_OBJECT), nullptr);
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find(": freed through tracking table 't', which did not allocate it"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(": reallocated through tracking table 't', which did not allocate it"),
              std::string::npos)
        << err;
  }
  mesa_tracking_stats s;
  ASSERT_EQ(mesa_tracking_get_stats(t, &s), 1);
  EXPECT_EQ(s.bytes_in_use, 64u);
  EXPECT_EQ(s.total_deallocations, 0u);
  mesa_free2(nullptr, t, p);
  mesa_tracking_destroy(t);
}

TEST(TrackingC, BadInputIsRejected) {
  EXPECT_EQ(mesa_tracking_create(nullptr, "x", mesa_libc_allocator()), nullptr);
  mesa_tracking_stats s;
  EXPECT_EQ(mesa_tracking_get_stats(mesa_libc_allocator(), &s), 0);
  EXPECT_EQ(s.bytes_in_use, 0u);
  mesa_tracking_destroy(nullptr);
  const mesa_allocator *t = mesa_tracking_create(nullptr, nullptr, nullptr);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(mesa_alloc2(nullptr, t, 8, 3, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  mesa_tracking_destroy(t);
}

}  // namespace
