// internal::resource_cast, the RTTI-free dynamic_cast behind is_equal of callback_resource,
// vk_resource and slab_child, direct_upstream's table shortcut and mesa_debug_destroy's check.
// The same code runs under -fno-rtti in the Meson subproject test (tests/meson/parent).
#include "mesa_alloc/internal/resource_cast.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <memory_resource>
#include <new>
#include <thread>
#include <vector>

#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/internal/direct_upstream.h"
#include "mesa_alloc/slab_parent.h"
#include "tests/support/counting_allocator.h"

namespace {

using mesa::internal::resource_cast;

// A wrapper that counts its calls and hands is_equal on to its upstream, as a forwarding
// resource may: it must not be taken for its upstream.
class forwarding_resource final : public std::pmr::memory_resource {
 public:
  explicit forwarding_resource(std::pmr::memory_resource *upstream) : upstream_(upstream) {}
  int calls = 0;

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    ++calls;
    return upstream_->allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    ++calls;
    upstream_->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return upstream_->is_equal(other);
  }
  std::pmr::memory_resource *upstream_;
};

// A resource whose is_equal asks questions of its own (a cast inside a cast).
class asking_resource final : public std::pmr::memory_resource {
 public:
  explicit asking_resource(const std::pmr::memory_resource *probe) : probe_(probe) {}
  mutable int asked = 0;

 private:
  void *do_allocate(std::size_t, std::size_t) override { throw std::bad_alloc(); }
  void do_deallocate(void *, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    if (resource_cast<mesa::callback_resource>(*probe_) != nullptr) ++asked;
    return this == &other;
  }
  const std::pmr::memory_resource *probe_;
};

TEST(ResourceCast, FindsEachClassAsItselfAndNothingElse) {
  test::counting_allocator counting;
  mesa::callback_resource callbacks(counting.table());
  mesa::slab_parent pool(&callbacks, 32);
  mesa::slab_child child(&pool);
  mesa::arena_resource arena(&callbacks);

  EXPECT_EQ(resource_cast<mesa::callback_resource>(callbacks), &callbacks);
  EXPECT_EQ(resource_cast<mesa::slab_child>(child), &child);
  EXPECT_EQ(resource_cast<mesa::slab_child>(callbacks), nullptr);
  EXPECT_EQ(resource_cast<mesa::callback_resource>(child), nullptr);
  EXPECT_EQ(resource_cast<mesa::callback_resource>(arena), nullptr);
  EXPECT_EQ(resource_cast<mesa::callback_resource>(*std::pmr::new_delete_resource()), nullptr);
}

TEST(ResourceCast, AForwardingResourceIsNotTakenForItsUpstream) {
  test::counting_allocator counting;
  mesa::callback_resource callbacks(counting.table());
  forwarding_resource forwarding(&callbacks);
  EXPECT_EQ(resource_cast<mesa::callback_resource>(forwarding), nullptr);

  // direct_upstream calls the table directly only for a callback_resource itself: over the
  // wrapper, every call still goes through the wrapper.
  mesa::internal::direct_upstream up(&forwarding, "test");
  void *p = up.allocate(64, 16);
  up.deallocate(p, 64, 16);
  EXPECT_EQ(forwarding.calls, 2);
  EXPECT_EQ(counting.live(), 0);
}

// The inner question, asked while the outer one is open, is answered; the outer one still gets
// its (null) answer, and a question after both is answered as usual.
TEST(ResourceCast, ACastInsideACastIsAnswered) {
  test::counting_allocator counting;
  mesa::callback_resource callbacks(counting.table());
  asking_resource asking(&callbacks);
  EXPECT_EQ(resource_cast<mesa::callback_resource>(asking), nullptr);
  EXPECT_EQ(asking.asked, 1);  // the inner question found the callback_resource
  EXPECT_EQ(resource_cast<mesa::callback_resource>(callbacks), &callbacks);
}

TEST(ResourceCast, EqualityOfSlabChildrenAndCallbackResources) {
  test::counting_allocator a, b;
  mesa::callback_resource on_a(a.table()), also_on_a(a.table()), on_b(b.table());
  forwarding_resource forwarding(&on_a);
  EXPECT_TRUE(on_a.is_equal(also_on_a));
  EXPECT_FALSE(on_a.is_equal(on_b));
  EXPECT_FALSE(on_a.is_equal(forwarding));  // not a callback_resource itself

  mesa::slab_parent pool(&on_a, 32), other_pool(&on_a, 32);
  mesa::slab_child first(&pool), second(&pool), stranger(&other_pool);
  EXPECT_TRUE(first.is_equal(second));
  EXPECT_TRUE(second.is_equal(first));
  EXPECT_FALSE(first.is_equal(stranger));
  EXPECT_FALSE(first.is_equal(on_a));
}

// mesa_debug_destroy frees only tables mesa_debug_create made: a debug_resource a program built
// answers as a debug_resource's table but not as a debug table, and is left alone.
TEST(ResourceCast, DebugDestroyLeavesAProgramsDebugResourceAlone) {
  test::counting_allocator counting;
  mesa::callback_resource upstream(counting.table());
  mesa::debug_resource own(&upstream);
  void *p = own.allocate(32, 8);
  mesa_debug_destroy(own.table());
  EXPECT_EQ(own.live_blocks(), 1u);
  own.deallocate(p, 32, 8);

  const mesa_allocator *made = mesa_debug_create(counting.table(), nullptr);
  ASSERT_NE(made, nullptr);
  const long before = counting.live();
  mesa_debug_destroy(made);
  EXPECT_EQ(counting.live(), before - 1);  // the table's own block went back to its parent
}

TEST(ResourceCast, QuestionsOnManyThreadsDoNotMeet) {
  test::counting_allocator a, b;
  mesa::callback_resource on_a(a.table()), also_on_a(a.table()), on_b(b.table());
  mesa::slab_parent pool(&on_a, 32);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      mesa::slab_child mine(&pool), also_mine(&pool);
      for (int i = 0; i < 2000; ++i) {
        if (!on_a.is_equal(also_on_a) || on_a.is_equal(on_b)) ++wrong;
        if (!mine.is_equal(also_mine) || mine.is_equal(on_a)) ++wrong;
      }
    });
  }
  for (auto &t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
