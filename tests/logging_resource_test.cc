#include "mesa_alloc/logging_resource.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory_resource>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/resource_callbacks.h"
#include "tests/support/no_frame_pointers.h"

namespace {

// Keeps events in memory.
struct memory_sink : mesa::trace_sink {
  std::mutex mutex;
  std::vector<mesa::trace_event> events;
  std::vector<std::string> sites;         // in the order they were named
  std::map<uint32_t, std::string> named;  // id -> text
  void write_event(const mesa::trace_event &e) noexcept override {
    std::lock_guard<std::mutex> lock(mutex);
    events.push_back(e);
  }
  void write_site(uint32_t id, const char *text, size_t length) noexcept override {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_TRUE(named.emplace(id, std::string(text, length)).second) << "site " << id << " twice";
    sites.emplace_back(text, length);
  }
};

TEST(LoggingResource, RecordsEveryEventInOrder) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink);
  void *a = logged.allocate(100, 32);
  void *b = logged.allocate(7);
  logged.deallocate(a, 100, 32);
  logged.deallocate(b, 7);
  ASSERT_EQ(sink.events.size(), 4u);
  EXPECT_EQ(sink.events[0].op, mesa::trace_op::alloc);
  EXPECT_EQ(sink.events[0].ptr, reinterpret_cast<uintptr_t>(a));
  EXPECT_EQ(sink.events[0].size, 100u);
  EXPECT_EQ(sink.events[0].alignment, 32u);
  EXPECT_EQ(sink.events[0].scope, MESA_ALLOC_SCOPE_OBJECT);
  EXPECT_EQ(sink.events[0].site, 0u);  // no stacks asked for
  EXPECT_EQ(sink.events[2].op, mesa::trace_op::free);
  EXPECT_EQ(sink.events[2].ptr, reinterpret_cast<uintptr_t>(a));
  EXPECT_EQ(sink.events[3].size, 7u);
  EXPECT_NE(sink.events[0].thread, 0u);
  for (size_t i = 1; i < sink.events.size(); ++i)
    EXPECT_GE(sink.events[i].time_ns, sink.events[i - 1].time_ns);
}

TEST(LoggingResource, FailuresAndCallSites) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::null_memory_resource(), &sink, true);
  for (int i = 0; i < 3; ++i) EXPECT_THROW((void)logged.allocate(16), std::bad_alloc);
  ASSERT_EQ(sink.events.size(), 3u);
  EXPECT_EQ(sink.events[0].op, mesa::trace_op::failed);
  EXPECT_EQ(sink.events[0].size, 16u);
  // The same call site each time: named once.
  EXPECT_NE(sink.events[0].site, 0u);
  EXPECT_EQ(sink.events[1].site, sink.events[0].site);
  ASSERT_EQ(sink.sites.size(), 1u);
  EXPECT_FALSE(sink.sites[0].empty());
}

// The call site starts at the function that called allocate (here one built without frame
// pointers), however the resource's own frames were inlined or tail-called.
TEST(LoggingResource, TheCallSiteStartsAtTheCaller) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  void *p = test::outer_without_frame_pointers(&logged, 16);
  logged.deallocate(p, 16);
  ASSERT_EQ(sink.sites.size(), 1u);
  EXPECT_EQ(sink.sites[0].rfind("test::(anonymous namespace)::leaf_without_frame_pointers", 0), 0u)
      << sink.sites[0];
  // Where in that function, as a module offset ("leaf (module+0x1a2b) < caller ..."): two call
  // sites in one function differ there.
  const std::size_t open = sink.sites[0].find(" (");
  ASSERT_NE(open, std::string::npos) << sink.sites[0];
  EXPECT_LT(sink.sites[0].find("+0x", open), sink.sites[0].find(") < ", open)) << sink.sites[0];
}

// A chain of six frames from the allocating one, reached from two outer callers: the stacks
// differ only past the frames a site names. (volatile stops tail calls, so each frame stays.)
volatile int g_chain_keep;

[[gnu::noinline]] void *chain_1(std::pmr::memory_resource *r) {
  void *p = r->allocate(24);
  g_chain_keep = 1;
  return p;
}
#define CHAIN_LINK(n, next)                                         \
  [[gnu::noinline]] void *chain_##n(std::pmr::memory_resource *r) { \
    void *p = chain_##next(r);                                      \
    g_chain_keep = n;                                               \
    return p;                                                       \
  }
CHAIN_LINK(2, 1)
CHAIN_LINK(3, 2)
CHAIN_LINK(4, 3)
CHAIN_LINK(5, 4)
CHAIN_LINK(6, 5)
#undef CHAIN_LINK
[[gnu::noinline]] void *from_outer_a(std::pmr::memory_resource *r) {
  void *p = chain_6(r);
  g_chain_keep = 1;
  return p;
}
[[gnu::noinline]] void *from_outer_b(std::pmr::memory_resource *r) {
  void *p = chain_6(r);
  g_chain_keep = 2;
  return p;
}

// Stacks that differ only past the frames a site's text names are one site: the probe saw one
// call site listed as eight identical lines, each with an eighth of its bytes.
TEST(LoggingResource, StacksThatDifferOnlyPastTheNamedFramesAreOneSite) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  void *a = from_outer_a(&logged);
  void *b = from_outer_b(&logged);
  logged.deallocate(a, 24);
  logged.deallocate(b, 24);
  ASSERT_EQ(sink.sites.size(), 1u) << sink.sites[0] << "\n" << sink.sites[1];
  EXPECT_EQ(sink.sites[0].find("from_outer"), std::string::npos) << sink.sites[0];
}

// Six frames whose names hold over 1024 bytes together: the site names those that fit, and
// says that more were left out.
namespace site_frames_in_a_namespace_whose_name_is_long_on_purpose {
namespace and_nested_in_another_so_that_each_frame_name_is_long {
namespace six_such_names_do_not_fit_in_the_kilobyte_of_one_call_site {
[[gnu::noinline]] void *long_frame_1(std::pmr::memory_resource *r) {
  void *p = r->allocate(24);
  g_chain_keep = 101;  // not chain_1: identical code would be folded into one function
  return p;
}
#define LONG_LINK(n, next)                                               \
  [[gnu::noinline]] void *long_frame_##n(std::pmr::memory_resource *r) { \
    void *p = long_frame_##next(r);                                      \
    g_chain_keep = 100 + n;                                              \
    return p;                                                            \
  }
LONG_LINK(2, 1)
LONG_LINK(3, 2)
LONG_LINK(4, 3)
LONG_LINK(5, 4)
LONG_LINK(6, 5)
#undef LONG_LINK
}  // namespace six_such_names_do_not_fit_in_the_kilobyte_of_one_call_site
}  // namespace and_nested_in_another_so_that_each_frame_name_is_long
}  // namespace site_frames_in_a_namespace_whose_name_is_long_on_purpose

TEST(LoggingResource, ASiteTooLongForItsTextSaysFramesWereLeftOut) {
  namespace frames = site_frames_in_a_namespace_whose_name_is_long_on_purpose::
      and_nested_in_another_so_that_each_frame_name_is_long::
          six_such_names_do_not_fit_in_the_kilobyte_of_one_call_site;
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  logged.deallocate(frames::long_frame_6(&logged), 24);
  ASSERT_EQ(sink.sites.size(), 1u);
  const std::string &site = sink.sites[0];
  EXPECT_LE(site.size(), 1024u);
  ASSERT_GE(site.size(), 6u) << site;
  EXPECT_EQ(site.substr(site.size() - 6), " < ...") << site;
  EXPECT_NE(site.find("long_frame_1("), std::string::npos) << site;
  EXPECT_EQ(site.find("long_frame_6("), std::string::npos) << site;
}

TEST(LoggingResource, ThreadsAreTold) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink);
  std::thread t([&] { logged.deallocate(logged.allocate(8), 8); });
  t.join();
  logged.deallocate(logged.allocate(8), 8);
  ASSERT_EQ(sink.events.size(), 4u);
  EXPECT_NE(sink.events[0].thread, sink.events[2].thread);
}

// A fork()ed child that logs through a resource of its own names its own thread, not the one
// it was forked from (whose id the forking thread had cached).
TEST(LoggingResource, AForkedChildLogsItsOwnThreadId) {
  memory_sink parent_sink;
  mesa::logging_resource parent_log(std::pmr::new_delete_resource(), &parent_sink);
  parent_log.deallocate(parent_log.allocate(8), 8);
  ASSERT_EQ(parent_sink.events.size(), 2u);
  ASSERT_EQ(parent_sink.events[0].thread, static_cast<uint32_t>(gettid()));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    memory_sink child_sink;
    mesa::logging_resource child_log(std::pmr::new_delete_resource(), &child_sink);
    child_log.deallocate(child_log.allocate(8), 8);
    const bool own = child_sink.events.size() == 2 &&
                     child_sink.events[0].thread == static_cast<uint32_t>(gettid());
    _exit(own ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's event named another thread";
}

// Two threads log at once, with call sites: every event once, each thread's events in its own
// order (alloc then free of the same block), one site per thread. TSan-tagged.
TEST(LoggingResource, TwoThreadsLogEveryEventOnce) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  constexpr int kPerThread = 2000;
  auto work = [&] {
    for (int i = 0; i < kPerThread; ++i) {
      const size_t size = 16 + i % 64;
      logged.deallocate(logged.allocate(size), size);
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  ASSERT_EQ(sink.events.size(), 4u * kPerThread);
  std::map<uint32_t, std::vector<mesa::trace_event>> by_thread;
  for (const mesa::trace_event &e : sink.events) by_thread[e.thread].push_back(e);
  ASSERT_EQ(by_thread.size(), 2u);
  for (const auto &[thread, events] : by_thread) {
    ASSERT_EQ(events.size(), 2u * kPerThread);
    for (size_t i = 0; i < events.size(); i += 2) {
      EXPECT_EQ(events[i].op, mesa::trace_op::alloc);
      EXPECT_EQ(events[i + 1].op, mesa::trace_op::free);
      EXPECT_EQ(events[i + 1].ptr, events[i].ptr);
      EXPECT_EQ(events[i].size, 16u + (i / 2) % 64);
      EXPECT_EQ(sink.named.count(events[i].site), 1u);
#if !defined(__SANITIZE_THREAD__)
      // One call site per thread, always the same id. Not under ThreadSanitizer: its thread
      // start routine keeps no frame pointer, so the walk past the thread's first frames reads
      // whatever the stack holds, and a shallow thread's site changes from call to call.
      EXPECT_EQ(events[i].site, events[0].site);
#endif
    }
  }
}

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The events of a trace file (call-site and end records skipped; `ends` counts the end records).
std::vector<mesa::trace_event> read_events(const std::string &path, int *ends = nullptr) {
  const std::string data = read_file(path);
  EXPECT_GE(data.size(), 8u);
  EXPECT_EQ(data.substr(0, 8), "MESATRC1");
  std::vector<mesa::trace_event> events;
  for (size_t pos = 8; pos < data.size();) {
    if (data[pos] == 5) {  // a call site
      uint16_t length;
      std::memcpy(&length, data.data() + pos + 2, 2);
      pos += 8 + length;
      continue;
    }
    mesa::trace_event e;
    if (pos + sizeof e > data.size()) {
      ADD_FAILURE() << "cut-off event at byte " << pos;
      break;
    }
    std::memcpy(&e, data.data() + pos, sizeof e);
    if (e.op != mesa::trace_op::end)
      events.push_back(e);
    else if (ends != nullptr)
      ++*ends;
    pos += sizeof e;
  }
  return events;
}

TEST(LoggingResourceDeathTest, NoSinkOrUpstreamIsRefusedAtConstruction) {
  memory_sink sink;
  EXPECT_DEATH(mesa::logging_resource(std::pmr::new_delete_resource(), nullptr),
               "mesa_alloc: logging_resource: no trace sink");
  EXPECT_DEATH(mesa::logging_resource(nullptr, &sink),
               "mesa_alloc: logging_resource: no upstream resource");
}

TEST(LoggingC, TraceFileHasHeaderAndEvents) {
  const std::string path = testing::TempDir() + "/c.trace";
  const mesa_allocator *log = mesa_logging_create(mesa_libc_allocator(), path.c_str(), 1);
  ASSERT_NE(log, nullptr);
  void *p = mesa_alloc2(nullptr, log, 24, 8, MESA_ALLOC_SCOPE_DEVICE);
  p = mesa_realloc2(nullptr, log, p, 48, 8, MESA_ALLOC_SCOPE_DEVICE);
  mesa_free2(nullptr, log, p);
  mesa_logging_destroy(log);
  int ends = 0;
  const std::vector<mesa::trace_event> events = read_events(path, &ends);
  EXPECT_EQ(ends, 1) << "mesa_logging_destroy finishes the trace";
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].op, mesa::trace_op::alloc);
  EXPECT_EQ(events[0].scope, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(events[1].op, mesa::trace_op::realloc);
  EXPECT_EQ(events[1].old_ptr, events[0].ptr);
  EXPECT_EQ(events[1].size, 48u);
  EXPECT_EQ(events[2].op, mesa::trace_op::free);
  EXPECT_EQ(events[2].ptr, events[1].ptr);
  EXPECT_NE(events[0].site, 0u);
}

// A parent that hands a freed block straight to the next request, whichever thread asks, and
// always moves on realloc: addresses change hands between threads as fast as they can.
struct recycling_table {
  static constexpr std::size_t kBlock = 256;
  std::mutex mutex;
  std::vector<void *> free_blocks;
  std::vector<void *> all;
  mesa_allocator table{this, &alloc, &realloc, &free, nullptr, nullptr};

  ~recycling_table() {
    for (void *p : all) std::free(p);
  }
  static void *alloc(void *self, size_t size, size_t alignment, mesa_alloc_scope) {
    auto *t = static_cast<recycling_table *>(self);
    std::lock_guard<std::mutex> lock(t->mutex);
    if (size > kBlock || alignment > 16) {  // the logging table itself: its own block
      t->all.push_back(std::aligned_alloc(64, (size + 63) / 64 * 64));
      return t->all.back();
    }
    if (!t->free_blocks.empty()) {
      void *p = t->free_blocks.back();
      t->free_blocks.pop_back();
      return p;
    }
    t->all.push_back(std::malloc(kBlock));
    return t->all.back();
  }
  static void *realloc(void *self, void *ptr, size_t size, size_t alignment,
                       mesa_alloc_scope scope) {
    if (ptr == nullptr) return alloc(self, size, alignment, scope);
    if (size == 0) {
      free(self, ptr);
      return nullptr;
    }
    void *fresh = alloc(self, size, alignment, scope);
    if (fresh == nullptr) return nullptr;
    std::memcpy(fresh, ptr, size);
    free(self, ptr);
    return fresh;
  }
  static void free(void *self, void *ptr) {
    if (ptr == nullptr) return;
    auto *t = static_cast<recycling_table *>(self);
    std::lock_guard<std::mutex> lock(t->mutex);
    t->free_blocks.push_back(ptr);
  }
};

// With threads reusing each other's addresses, the trace still replays: no address is born
// while live, and nothing dead is freed or reallocated (a realloc used to be logged after its
// parent call had freed the old block, so another thread could log that address first).
TEST(LoggingC, TraceOfThreadsReusingAddressesReplaysConsistently) {
  const std::string path = testing::TempDir() + "/threads.trace";
  recycling_table parent;
  const mesa_allocator *log = mesa_logging_create(&parent.table, path.c_str(), 0);
  ASSERT_NE(log, nullptr);
  auto work = [log] {
    for (int i = 0; i < 20000; ++i) {
      void *p = mesa_alloc2(nullptr, log, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
      p = mesa_realloc2(nullptr, log, p, 128, 8, MESA_ALLOC_SCOPE_OBJECT);
      mesa_free2(nullptr, log, p);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(work);
  for (std::thread &t : threads) t.join();
  mesa_logging_destroy(log);

  std::set<std::uint64_t> live;
  int born_live = 0, dead_freed = 0;
  const std::vector<mesa::trace_event> events = read_events(path);
  for (const mesa::trace_event &e : events) {
    if (e.op == mesa::trace_op::alloc) {
      born_live += !live.insert(e.ptr).second;
    } else if (e.op == mesa::trace_op::realloc) {
      dead_freed += live.erase(e.old_ptr) == 0;
      born_live += !live.insert(e.ptr).second;
    } else if (e.op == mesa::trace_op::free) {
      dead_freed += live.erase(e.ptr) == 0;
    }
  }
  EXPECT_EQ(events.size(), 4u * 20000 * 3);
  EXPECT_EQ(born_live, 0);
  EXPECT_EQ(dead_freed, 0);
  EXPECT_TRUE(live.empty());
}

// The call sites of a trace file, in the order they were first seen.
std::vector<std::string> read_sites(const std::string &path) {
  const std::string data = read_file(path);
  std::vector<std::string> sites;
  for (size_t pos = 8; pos < data.size();) {
    if (data[pos] != 5) {
      pos += sizeof(mesa::trace_event);
      continue;
    }
    uint16_t length;
    std::memcpy(&length, data.data() + pos + 2, 2);
    sites.emplace_back(data.data() + pos + 8, length);
    pos += 8 + length;
  }
  return sites;
}

// Allocations through the C API, each from a function of its own (not inlined, not a tail call).
[[gnu::noinline]] void *log_through_alloc2(const mesa_allocator *log) {
  void *p = mesa_alloc2(nullptr, log, 24, 8, MESA_ALLOC_SCOPE_OBJECT);
  __asm__ volatile("" ::: "memory");
  return p;
}

[[gnu::noinline]] char *log_through_strdup() {
  char *s = mesa_strdup("site");
  __asm__ volatile("" ::: "memory");
  return s;
}

[[gnu::noinline]] void *log_through_calloc() {
  void *p = mesa_calloc(3, 8);
  __asm__ volatile("" ::: "memory");
  return p;
}

// Through the C API a call site starts at the C API's caller: the frames of mesa_alloc2,
// mesa_strdup (and the mesa_strndup and mesa_malloc under it) and of the logging layer are not
// part of it, and the site has room for the caller's own.
TEST(LoggingC, CallSitesStartAtTheCApisCaller) {
  const std::string path = testing::TempDir() + "/sites.trace";
  const mesa_allocator *log = mesa_logging_create(mesa_libc_allocator(), path.c_str(), 1);
  ASSERT_NE(log, nullptr);
  mesa_free2(nullptr, log, log_through_alloc2(log));
  const mesa_allocator *previous = mesa_set_default_allocator(log);
  mesa_free(log_through_strdup());
  mesa_set_default_allocator(previous);
  mesa_logging_destroy(log);
  const std::vector<std::string> sites = read_sites(path);
  ASSERT_EQ(sites.size(), 2u);
  EXPECT_EQ(sites[0].rfind("(anonymous namespace)::log_through_alloc2", 0), 0u) << sites[0];
  EXPECT_EQ(sites[1].rfind("(anonymous namespace)::log_through_strdup", 0), 0u) << sites[1];
  EXPECT_NE(sites[1].find("CallSitesStartAtTheCApisCaller"), std::string::npos) << sites[1];
}

// The same for a logging_resource under a C table (resource_callbacks): its entry point is
// called by the table's thunk, and the site still starts at the C API's caller.
TEST(LoggingC, ResourceUnderATableStartsAtTheCApisCaller) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  mesa::resource_callbacks table(&logged);
  const mesa_allocator *previous = mesa_set_default_allocator(table.table());
  mesa_free(log_through_calloc());
  mesa_set_default_allocator(previous);
  ASSERT_EQ(sink.sites.size(), 1u);
  EXPECT_EQ(sink.sites[0].rfind("(anonymous namespace)::log_through_calloc", 0), 0u)
      << sink.sites[0];
}

// An application's table that counts the calls it gets.
struct counting_app_table {
  int calls = 0;
  mesa_allocator table{this, &alloc, &realloc, &free, nullptr, nullptr};
  static void *alloc(void *self, size_t size, size_t, mesa_alloc_scope) {
    ++static_cast<counting_app_table *>(self)->calls;
    return std::malloc(size);
  }
  static void *realloc(void *self, void *p, size_t size, size_t, mesa_alloc_scope) {
    ++static_cast<counting_app_table *>(self)->calls;
    return std::realloc(p, size);
  }
  static void free(void *, void *p) { std::free(p); }
};

// A bad alignment is refused by the logging table itself, as by every table of the library: it
// used to go to the parent, and an application's table handed back a block.
TEST(LoggingC, BadAlignmentIsRefusedNotForwarded) {
  const std::string path = testing::TempDir() + "/alignment.trace";
  counting_app_table app;
  const mesa_allocator *log = mesa_logging_create(&app.table, path.c_str(), 0);
  ASSERT_NE(log, nullptr);
  const int calls_at_creation = app.calls;  // the table's own storage
  testing::internal::CaptureStderr();
  EXPECT_EQ(log->alloc_fn(log->user_data, 8, 24, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(log->realloc_fn(log->user_data, nullptr, 8, 3, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(app.calls, calls_at_creation);
  mesa_logging_destroy(log);
#ifndef NDEBUG
  EXPECT_NE(err.find("invalid alignment 24 in mesa_logging alloc"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid alignment 3 in mesa_logging realloc"), std::string::npos) << err;
#endif
  const std::vector<mesa::trace_event> events = read_events(path);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].op, mesa::trace_op::failed);
  EXPECT_EQ(events[0].alignment, 24u);
  EXPECT_EQ(events[1].op, mesa::trace_op::failed);
}

// A write that fails (here /dev/full: ENOSPC) ends the trace with one line on stderr; it used
// to drop the buffer silently, and alloc_trace then read a trace with events missing. The
// header is written when the file is opened, so the failure shows at once, and the line says
// nothing is traced (it used to speak of later events dropped, as if tracing went on).
TEST(TraceFile, AFailedWriteIsReportedOnce) {
  testing::internal::CaptureStderr();
  {
    mesa::trace_file file("/dev/full");
    EXPECT_FALSE(file.ok());
    mesa::trace_event e{};
    for (int i = 0; i < 4000; ++i) file.write_event(e);  // three buffers' worth
    file.flush();
    EXPECT_FALSE(file.ok());
  }
  const std::string err = testing::internal::GetCapturedStderr();
  const std::string line =
      "mesa_alloc: trace file: cannot write its header (No space left on device); nothing is "
      "traced\n";
  EXPECT_EQ(err, line);
}

// The header is on disk as soon as the file is open, and flush_unless_busy() writes what is
// buffered: a process that dies of the error being debugged leaves its trace behind.
TEST(TraceFile, HeaderAtOnceAndFlushUnlessBusy) {
  const std::string path = testing::TempDir() + "/flush_unless_busy.trace";
  mesa::trace_file file(path.c_str());
  ASSERT_TRUE(file.ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8) << "MESATRC1";
  mesa::trace_event e{};
  file.write_event(e);
  file.flush_unless_busy(true);
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(8 + sizeof e));
}

// A report after the trace is finished: a leak report lets the process go on, so the end record
// stays (a probe saw a global debug_resource's leak report, made after MESA_ALLOC_DEBUG finished
// the trace at exit, turn a clean run's trace into "not finished"); a report that ends the
// process withdraws it.
TEST(TraceFile, OnlyAReportThatEndsTheProcessWithdrawsTheEndRecord) {
  const std::string path = testing::TempDir() + "/report_after_finish.trace";
  mesa::trace_file file(path.c_str());
  ASSERT_TRUE(file.ok());
  mesa::trace_event e{};
  e.op = mesa::trace_op::alloc;
  file.write_event(e);
  file.finish();
  constexpr std::size_t kEnd = 8 + sizeof(mesa::trace_event);
  const unsigned char end_op = static_cast<unsigned char>(mesa::trace_op::end);
  file.flush_unless_busy(false);
  EXPECT_EQ(static_cast<unsigned char>(read_file(path)[kEnd]), end_op);
  file.flush_unless_busy(true);
  EXPECT_EQ(read_file(path)[kEnd], 7) << "the end record, withdrawn";
}

// finish() writes the buffer and an end record, the last 48 bytes of a whole trace; events after
// it (frees made during exit) are written at once, as nothing would flush them later; finishing
// again adds no second end record.
TEST(TraceFile, FinishWritesAnEndRecordAndLaterEventsAtOnce) {
  const std::string path = testing::TempDir() + "/finish.trace";
  {
    mesa::trace_file file(path.c_str());
    ASSERT_TRUE(file.ok());
    mesa::trace_event e{};
    e.op = mesa::trace_op::alloc;
    e.ptr = 0x1000;
    file.write_event(e);
    file.finish();
    const std::string data = read_file(path);
    ASSERT_EQ(data.size(), 8 + 2 * sizeof e);
    mesa::trace_event end;
    std::memcpy(&end, data.data() + 8 + sizeof e, sizeof end);
    EXPECT_EQ(end.op, mesa::trace_op::end);
    EXPECT_EQ(end.ptr, 0u);
    EXPECT_EQ(end.size, 0u);
    EXPECT_NE(end.thread, 0u);

    e.op = mesa::trace_op::free;
    file.write_event(e);
    EXPECT_EQ(read_file(path).size(), 8 + 3 * sizeof e) << "an event after finish() waits";
    file.finish();
  }
  int ends = 0;
  const std::vector<mesa::trace_event> events = read_events(path, &ends);
  EXPECT_EQ(ends, 1);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].op, mesa::trace_op::free);
}

// A write that fails after the end record (a file size limit, a full disk) loses the exit-time
// events after it: the end record is withdrawn (op 7, which readers skip), so the trace no longer
// claims to be whole, and the events written after it stay.
TEST(TraceFile, AWriteThatFailsAfterTheEndRecordWithdrawsIt) {
  const std::string path = testing::TempDir() + "/withdrawn_end.trace";
  constexpr std::size_t kEvent = sizeof(mesa::trace_event);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the limit is the child's alone
    mesa::trace_file file(path.c_str());
    mesa::trace_event e{};
    e.op = mesa::trace_op::alloc;
    file.write_event(e);
    file.finish();
    const rlimit limit{8 + 3 * kEvent, RLIM_INFINITY};  // room for one more event
    // The limit holds for every file the child writes: a stderr that is a file (Bazel's test
    // log) would end the child with SIGXFSZ at the failure's line.
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(2);
    e.op = mesa::trace_op::free;
    file.write_event(e);  // written
    file.write_event(e);  // past the limit: fails
    _exit(file.ok() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::string data = read_file(path);
  ASSERT_EQ(data.size(), 8 + 3 * kEvent);
  EXPECT_EQ(data[8], static_cast<char>(mesa::trace_op::alloc));
  EXPECT_EQ(data[8 + kEvent], 7) << "the end record, withdrawn";
  EXPECT_EQ(data[8 + 2 * kEvent], static_cast<char>(mesa::trace_op::free));
}

// A trace_file destroyed without finish() is finished by its destructor.
TEST(TraceFile, DestructionFinishesTheTrace) {
  const std::string path = testing::TempDir() + "/destroyed.trace";
  {
    mesa::trace_file file(path.c_str());
    mesa::trace_event e{};
    e.op = mesa::trace_op::alloc;
    file.write_event(e);
  }
  const std::string data = read_file(path);
  ASSERT_EQ(data.size(), 8 + 2 * sizeof(mesa::trace_event));
  EXPECT_EQ(data[8 + sizeof(mesa::trace_event)], static_cast<char>(mesa::trace_op::end));
}

// Site ids name one stack in the whole process and every resource stamps one time axis, so
// resources that share a sink (one per component over one trace_file) write a trace that reads
// back right: each resource numbered its own sites from 1 and timed from its own start.
[[gnu::noinline]] void *allocate_in_compiler(std::pmr::memory_resource *r) {
  void *p = r->allocate(1000, 8);
  __asm__ volatile("" ::: "memory");
  return p;
}
[[gnu::noinline]] void *allocate_in_winsys(std::pmr::memory_resource *r) {
  void *p = r->allocate(24, 8);
  __asm__ volatile("" ::: "memory");
  return p;
}

TEST(LoggingResource, ResourcesSharingASinkKeepSitesAndTimesApart) {
  memory_sink sink;
  mesa::logging_resource compiler(std::pmr::new_delete_resource(), &sink, true);
  void *a = allocate_in_compiler(&compiler);
  compiler.deallocate(a, 1000, 8);
  mesa::logging_resource winsys(std::pmr::new_delete_resource(), &sink, true);
  void *b = allocate_in_winsys(&winsys);
  winsys.deallocate(b, 24, 8);
  ASSERT_EQ(sink.events.size(), 4u);
  ASSERT_EQ(sink.sites.size(), 2u);
  EXPECT_NE(sink.events[0].site, sink.events[2].site);
  EXPECT_NE(sink.named[sink.events[0].site].find("allocate_in_compiler"), std::string::npos)
      << sink.named[sink.events[0].site];
  EXPECT_NE(sink.named[sink.events[2].site].find("allocate_in_winsys"), std::string::npos)
      << sink.named[sink.events[2].site];
  for (std::size_t i = 1; i < sink.events.size(); ++i)
    EXPECT_GE(sink.events[i].time_ns, sink.events[i - 1].time_ns) << "event " << i;
}

// Two calls of one function from one caller are two sites, and their texts differ: every frame
// carries its module offset, not only the first (which both share).
[[gnu::noinline]] void *allocate_in_leaf(std::pmr::memory_resource *r) {
  void *p = r->allocate(8, 8);
  __asm__ volatile("" ::: "memory");
  return p;
}
[[gnu::noinline]] void call_the_leaf_twice(std::pmr::memory_resource *r, void **first,
                                           void **second) {
  *first = allocate_in_leaf(r);
  __asm__ volatile("" ::: "memory");
  *second = allocate_in_leaf(r);
  __asm__ volatile("" ::: "memory");
}

TEST(LoggingResource, TwoCallsOfOneFunctionFromOneCallerReadApart) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  void *first, *second;
  call_the_leaf_twice(&logged, &first, &second);
  logged.deallocate(first, 8, 8);
  logged.deallocate(second, 8, 8);
  ASSERT_EQ(sink.events.size(), 4u);
  const std::string &a = sink.named[sink.events[0].site];
  const std::string &b = sink.named[sink.events[1].site];
  EXPECT_NE(sink.events[0].site, sink.events[1].site);
  EXPECT_NE(a, b) << "both read: " << a;
  EXPECT_NE(a.find("call_the_leaf_twice"), std::string::npos) << a;
}

// A resource names at most kSites / 2 distinct stacks; the rest share one site that says so,
// rather than site 0, which reads as if stacks had not been recorded.
template <int N>
[[gnu::noinline]] void allocate_from_site(std::pmr::memory_resource *r) {
  r->deallocate(r->allocate(N + 1, 1), N + 1, 1);
  __asm__ volatile("" ::: "memory");
}
template <int... N>
void allocate_from_sites(std::pmr::memory_resource *r, std::integer_sequence<int, N...>) {
  void (*const sites[])(std::pmr::memory_resource *) = {&allocate_from_site<N>...};
  for (auto *site : sites) site(r);
}

TEST(LoggingResource, StacksPastTheSiteTableShareASiteThatSaysSo) {
  memory_sink sink;
  mesa::logging_resource logged(std::pmr::new_delete_resource(), &sink, true);
  allocate_from_sites(&logged, std::make_integer_sequence<int, 2100>());
  std::set<uint32_t> allocation_sites;
  for (const mesa::trace_event &e : sink.events) {
    if (e.op != mesa::trace_op::alloc) continue;
    EXPECT_NE(e.site, 0u);
    allocation_sites.insert(e.site);
  }
  EXPECT_EQ(allocation_sites.size(), 2049u) << "2048 named stacks and the full table's site";
  EXPECT_EQ(sink.named[UINT32_MAX], "(call-site table full: more than 2048 distinct stacks)");
}

// Two writers of one trace file would each write from offset 0 over the other (two copies of
// the library in a process, a traced program and one it runs, two trace_files): the second
// writes `path.<pid>` instead, and says so.
TEST(TraceFile, ASecondWriterOfOneFileWritesItsOwn) {
  const std::string path = testing::TempDir() + "/two_writers.trace";
  const std::string own = path + "." + std::to_string(getpid());
  std::remove(own.c_str());
  mesa::trace_event e{};
  {
    mesa::trace_file first(path.c_str());
    ASSERT_TRUE(first.ok());
    e.size = 111;
    for (int i = 0; i < 6; ++i) first.write_event(e);
    first.flush();
    testing::internal::CaptureStderr();
    mesa::trace_file second(path.c_str());
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err, "mesa_alloc: trace file " + path +
                       " is being written by another writer (another copy of mesa_alloc, another "
                       "process or another trace_file); this one writes " +
                       own + "\n");
    ASSERT_TRUE(second.ok());
    e.size = 222;
    for (int i = 0; i < 2; ++i) second.write_event(e);
  }
  const std::vector<mesa::trace_event> first_events = read_events(path);
  ASSERT_EQ(first_events.size(), 6u);
  for (const mesa::trace_event &f : first_events) EXPECT_EQ(f.size, 111u);
  const std::vector<mesa::trace_event> second_events = read_events(own);
  ASSERT_EQ(second_events.size(), 2u);
  EXPECT_EQ(second_events[0].size, 222u);
  std::remove(own.c_str());
}

// A second writer whose own file cannot be made either: the line names the held file and the
// reason its twin failed (it used to say the held file itself "cannot be created", with the
// twin's reason). A name that leaves no room for ".<pid>" makes the twin fail, even as root.
TEST(TraceFile, ASecondWriterWithoutItsOwnFileSaysWhy) {
  const std::string path = testing::TempDir() + "/" + std::string(248, 'x') + ".trace";
  mesa::trace_file first(path.c_str());
  ASSERT_TRUE(first.ok());
  const std::string own = path + "." + std::to_string(getpid());
  testing::internal::CaptureStderr();
  mesa::trace_file second(path.c_str());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(second.ok());
  EXPECT_EQ(err, "mesa_alloc: trace file " + path + " is being written by another writer, and " +
                     own + " cannot be created: File name too long\n");
  std::remove(path.c_str());
}

// A third writer of one file (a third driver's copy of the library: the Vulkan loader loads every
// driver installed) writes a file of its own too; it wrote nothing once FILE.<pid> was held.
TEST(TraceFile, AThirdWriterOfOneFileWritesItsOwnToo) {
  const std::string path = testing::TempDir() + "/three_writers.trace";
  const std::string second = path + "." + std::to_string(getpid());
  const std::string third = second + ".2";
  mesa::trace_file first_file(path.c_str());
  ASSERT_TRUE(first_file.ok());
  EXPECT_FALSE(first_file.writes_elsewhere());
  testing::internal::CaptureStderr();
  mesa::trace_file second_file(path.c_str());
  mesa::trace_file third_file(path.c_str());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(second_file.ok() && second_file.writes_elsewhere());
  ASSERT_TRUE(third_file.ok());
  EXPECT_TRUE(third_file.writes_elsewhere());
  EXPECT_NE(err.find("; this one writes " + second + "\n"), std::string::npos) << err;
  EXPECT_NE(err.find("; this one writes " + third + "\n"), std::string::npos) << err;
  mesa::trace_event e{};
  e.size = 333;
  third_file.write_event(e);
  third_file.finish();
  const std::vector<mesa::trace_event> events = read_events(third);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].size, 333u);
  std::remove(second.c_str());
  std::remove(third.c_str());
}

// A trace file that cannot be created says so once (it used to lose every event silently).
TEST(TraceFile, AFileThatCannotBeCreatedSaysSo) {
  testing::internal::CaptureStderr();
  {
    mesa::trace_file file("/nonexistent-dir/x.trace");
    EXPECT_FALSE(file.ok());
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "mesa_alloc: cannot create trace file /nonexistent-dir/x.trace: No such file or "
            "directory\n");
}

TEST(LoggingC, BadPathGivesNull) {
  EXPECT_EQ(mesa_logging_create(nullptr, "/nonexistent-dir/x.trace", 0), nullptr);
  EXPECT_EQ(mesa_logging_create(nullptr, nullptr, 0), nullptr);
  mesa_logging_destroy(mesa_libc_allocator());  // not a logging table: ignored
}

}  // namespace
