// A program built with -fvisibility=hidden (as all of Mesa is) against the shared library keeps
// synchronized_pool_resource's lock-free fast path and its double-free check. The pool's
// thread-local cache table is a variable defined in its header, so such a program has its own copy,
// apart from libmesa_alloc.so's; if only the library filled its copy, the program's would stay
// empty and every allocation would take the pool's lock to find this thread's cache again.
//
// Built with -fvisibility=hidden and linked against the shared library (Bazel's fastbuild and
// Meson's default); where the library is linked statically there is one table and the test
// passes either way.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory_resource>
#include <mutex>
#include <string>
#include <thread>

#include "mesa_alloc/synchronized_pool_resource.h"

namespace {

// An upstream that, once closed, holds every request until opened again: a slow upstream call,
// made under the pool's lock.
class gate_resource : public std::pmr::memory_resource {
 public:
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = false;
    changed_.notify_all();
  }
  void wait_until_held() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return held_ > 0; });
  }

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ++held_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return !closed_; });
      --held_;
    }
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  bool closed_ = false;
  int held_ = 0;
};

TEST(HiddenVisibility, AnAttachedThreadTakesNoLockWhileUpstreamIsBusy) {
  gate_resource gate;
  mesa::synchronized_pool_resource pool(&gate);
  std::mutex mutex;
  std::condition_variable changed;
  bool attached = false, go = false, done = false;

  std::thread worker([&] {
    pool.deallocate(pool.allocate(32), 32);  // attaches this thread's cache, which keeps a block
    {
      std::unique_lock<std::mutex> lock(mutex);
      attached = true;
      changed.notify_all();
      changed.wait(lock, [&] { return go; });
    }
    for (int i = 0; i < 1000; ++i) pool.deallocate(pool.allocate(32), 32);
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
    changed.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return attached; });
  }
  gate.close();
  // A large block goes straight upstream under the pool's lock, and waits there.
  std::thread holder([&] { pool.deallocate(pool.allocate(1 << 20), 1 << 20); });
  gate.wait_until_held();
  bool finished;
  {
    std::unique_lock<std::mutex> lock(mutex);
    go = true;
    changed.notify_all();
    finished = changed.wait_for(lock, std::chrono::seconds(20), [&] { return done; });
  }
  gate.open();
  holder.join();
  worker.join();
  EXPECT_TRUE(finished) << "the worker's allocations waited for the pool's lock";
}

// A block freed twice, first through the virtual interface (the library's code, which enters
// this thread in the library's table) and then directly (this program's table, which has not
// seen this thread): the second free is still refused, and the block is handed out once.
TEST(HiddenVisibility, ADoubleFreeIsRefusedWhicheverTableHasTheThread) {
  mesa::synchronized_pool_resource pool(std::pmr::new_delete_resource());
  std::pmr::memory_resource *volatile through_vtable = &pool;  // no devirtualised inline copy
  void *p = through_vtable->allocate(32, 8);
  through_vtable->deallocate(p, 32, 8);
  testing::internal::CaptureStderr();
  pool.deallocate(p, 32, 8);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("double free"), std::string::npos) << err;
  void *a = pool.allocate(32, 8);
  void *b = pool.allocate(32, 8);
  EXPECT_NE(a, b) << "the block freed twice was handed out twice";
  pool.deallocate(a, 32, 8);
  pool.deallocate(b, 32, 8);
}

}  // namespace
