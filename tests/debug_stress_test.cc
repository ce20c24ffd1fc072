// Two threads allocate, free and hand blocks to each other through one debug resource (with a
// quarantine): no false reports, nothing left live. A leak report while another thread frees
// reads only what it copied under the lock (ASan and TSan see the headers it used to read).
#include <gtest/gtest.h>

#include <atomic>
#include <memory_resource>
#include <thread>
#include <vector>

#include "mesa_alloc/debug_resource.h"

namespace {

std::atomic<int> g_errors{0};

void count_error(const mesa::debug_error &, void *) { g_errors.fetch_add(1); }

TEST(DebugStress, TwoThreadsShareOneResource) {
  mesa::debug_options o;
  o.quarantine_bytes = 1 << 16;
  o.handler = count_error;
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  std::atomic<void *> handoff{nullptr};
  auto work = [&] {
    for (int i = 0; i < 5000; ++i) {
      void *p = d.allocate(16 + i % 100);
      d.deallocate(p, 16 + i % 100);
      void *mine = d.allocate(32);
      if (void *theirs = handoff.exchange(mine)) d.deallocate(theirs, 32);
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  if (void *last = handoff.exchange(nullptr)) d.deallocate(last, 32);
  EXPECT_EQ(d.live_blocks(), 0u);
  EXPECT_EQ(g_errors.load(), 0);
}

// Blocks freed while report_leaks() lists them: each report sees a consistent set (every block
// it names was live when it looked, with its stack), and nothing it reads was freed under it.
TEST(DebugStress, LeakReportWhileAnotherThreadFrees) {
  struct seen {
    std::atomic<int> leaks{0};
    std::atomic<int> without_stack{0};
  } s;
  mesa::debug_options o;
  o.record_stacks = true;
  o.report_leaks_on_destroy = false;
  o.handler_context = &s;
  o.handler = [](const mesa::debug_error &e, void *context) {
    auto *s = static_cast<seen *>(context);
    if (e.kind != mesa::debug_error_kind::leak) return;
    s->leaks.fetch_add(1);
    if (e.stack_depth == 0 && e.detail[0] == '\0') s->without_stack.fetch_add(1);
  };
  mesa::debug_resource d(std::pmr::new_delete_resource(), o);
  constexpr int kLive = 512;
  std::atomic<bool> stop{false};
  std::atomic<unsigned> turned{0};
  std::thread churn([&] {
    std::vector<void *> blocks(kLive, nullptr);
    for (unsigned i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      void *&b = blocks[i % kLive];
      if (b != nullptr) d.deallocate(b, 100);
      b = d.allocate(100);
      turned.store(i, std::memory_order_relaxed);
    }
    for (void *b : blocks)
      if (b != nullptr) d.deallocate(b, 100);
  });
  while (turned.load() < 4 * kLive) std::this_thread::yield();
  std::size_t listed = 0;
  for (int i = 0; i < 100; ++i) listed += d.report_leaks();
  stop.store(true);
  churn.join();
  EXPECT_EQ(static_cast<std::size_t>(s.leaks.load()), listed);
  EXPECT_EQ(s.without_stack.load(), 0);
  EXPECT_EQ(d.live_blocks(), 0u);
}

}  // namespace
