// A null upstream or resource is refused where it is given, with a line that names the class,
// instead of a crash without a word at the first call through it (found by a review probe: only
// logging_resource said anything).
#include <gtest/gtest.h>

#include <memory_resource>
#include <type_traits>

#include "containers/unique_ptr.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/pool_resource.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/slab_parent.h"
#include "mesa_alloc/slab_resource.h"
#include "mesa_alloc/synchronized_pool_resource.h"
#include "mesa_alloc/tracking_resource.h"
#include "tests/test_resources.h"

namespace {

TEST(NullResourceDeathTest, ResourcesRefuseANullUpstream) {
  EXPECT_DEATH(mesa::arena_resource(nullptr),
               "mesa_alloc: arena_resource: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::pool_resource(nullptr),
               "mesa_alloc: pool_resource: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::synchronized_pool_resource(nullptr),
               "mesa_alloc: synchronized_pool_resource: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::slab_resource(nullptr, 32),
               "mesa_alloc: slab_resource: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::slab_parent(nullptr, 32),
               "mesa_alloc: slab_parent: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::tracking_resource(nullptr, "driver"),
               "mesa_alloc: tracking_resource: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::debug_resource(nullptr),
               "mesa_alloc: debug_resource: no upstream resource \\(null\\)");
  EXPECT_DEATH(mesa::fault_resource(nullptr),
               "mesa_alloc: fault_resource: no upstream resource \\(null\\)");
}

// A slab child's parent is not an upstream, but null is refused the same way (a literal
// nullptr does not compile).
TEST(NullResourceDeathTest, ASlabChildRefusesANullParent) {
  mesa::slab_parent *no_parent = nullptr;
  EXPECT_DEATH(mesa::slab_child{no_parent}, "mesa_alloc: slab_child: no parent \\(null\\)");
  static_assert(!std::is_constructible_v<mesa::slab_child, std::nullptr_t>);
}

// Freeing null does nothing on every direct path, as on the slab parent and the C tables.
TEST(NullResource, TheDirectFreesTakeNull) {
  mesa::slab_parent parent(std::pmr::new_delete_resource(), 32);
  mesa::slab_child child(&parent);
  mesa::slab_resource slab(std::pmr::new_delete_resource(), 32);
  mesa::pool_resource pool(std::pmr::new_delete_resource());
  mesa::synchronized_pool_resource shared_pool(std::pmr::new_delete_resource());
  child.deallocate_object(nullptr);
  slab.deallocate_object(nullptr);
  pool.deallocate(nullptr, 48);
  pool.deallocate(nullptr, 1 << 20);
  shared_pool.deallocate(nullptr, 48);
  shared_pool.deallocate(nullptr, 1 << 20);
  parent.deallocate_object(nullptr);
  void *p = child.allocate_object();  // all still work
  child.deallocate_object(p);
  p = slab.allocate_object();
  slab.deallocate_object(p);
  p = pool.allocate(48);
  pool.deallocate(p, 48);
  p = shared_pool.allocate(48);
  shared_pool.deallocate(p, 48);
}

// The tracker's deallocate_in_scope takes a null free as the direct frees above do: nothing is
// counted or given back (a probe found it counted as a free, so a live block read as none, and
// with a limit the block's real free was then blamed as a second one). std::pmr's own
// deallocate() takes no null: libstdc++ declares its pointer nonnull, and UBSan stops a call
// with one, so the pmr layers are not asked to.
TEST(NullResource, TheTrackerTakesANullFreeInScope) {
  mesa_test::counting_resource upstream;  // fails the test if given a block it never gave
  mesa::tracking_resource tracker(&upstream, "layer");
  tracker.set_limit(1000);
  void *live = tracker.allocate_in_scope(100, 16, MESA_ALLOC_SCOPE_COMMAND);
  tracker.deallocate_in_scope(nullptr, 48, 16, MESA_ALLOC_SCOPE_COMMAND);
  const mesa::tracking_stats stats = tracker.stats();
  EXPECT_EQ(stats.bytes_in_use, 100u);
  EXPECT_EQ(stats.blocks_in_use, 1u);
  EXPECT_EQ(stats.total_deallocations, 0u);
  EXPECT_EQ(stats.scopes[MESA_ALLOC_SCOPE_COMMAND].bytes_in_use, 100u);
  ::testing::internal::CaptureStderr();
  tracker.deallocate_in_scope(live, 100, 16, MESA_ALLOC_SCOPE_COMMAND);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "the real free blamed";
  EXPECT_EQ(tracker.stats().bytes_in_use, 0u);
  EXPECT_EQ(upstream.blocks_in_use(), 0u);
}

// An arena over a fixed buffer that must not grow says so with null_memory_resource().
TEST(NullResource, FixedArenaTakesTheNullMemoryResource) {
  alignas(16) unsigned char buffer[256];
  mesa::arena_options o;
  o.initial_buffer = buffer;
  o.initial_buffer_size = sizeof buffer;
  mesa::arena_resource arena(std::pmr::null_memory_resource(), o);
  EXPECT_NE(arena.allocate(200), nullptr);
  EXPECT_THROW((void)arena.allocate(200), std::bad_alloc);
}

// A C table over no resource is one over std::pmr::get_default_resource(), as the C functions'
// NULL parent is the default table (it used to crash at its first allocation).
TEST(NullResource, ResourceCallbacksOverNullTakeTheDefaultResource) {
  mesa::tracking_resource tracker(std::pmr::new_delete_resource(), "default");
  std::pmr::memory_resource *previous = std::pmr::set_default_resource(&tracker);
  {
    mesa::resource_callbacks callbacks(nullptr);
    EXPECT_EQ(callbacks.resource(), &tracker);
    const mesa_allocator *t = callbacks.table();
    void *p = t->alloc_fn(t->user_data, 100, 8, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    EXPECT_GE(tracker.stats().bytes_in_use, 100u);
    t->free_fn(t->user_data, p);
  }
  std::pmr::set_default_resource(previous);
  EXPECT_EQ(tracker.stats().bytes_in_use, 0u);
}

TEST(NullResourceDeathTest, AllocateUniqueAndItsDeleterRefuseNoResource) {
  EXPECT_DEATH((void)mesa::allocate_unique<int>(nullptr, 1),
               "mesa_alloc: allocate_unique: no resource \\(null\\)");
  EXPECT_DEATH((void)mesa::allocate_unique<int[]>(nullptr, 4),
               "mesa_alloc: allocate_unique: no resource \\(null\\)");
  EXPECT_DEATH((void)mesa::allocate_shared<int>(nullptr, 1),
               "mesa_alloc: allocate_shared: no resource \\(null\\)");
  // A default-constructed unique_ptr given an object: its deleter has nowhere to return it.
  EXPECT_DEATH(
      {
        int object = 0;
        mesa::unique_ptr<int> p;
        p.reset(&object);
      },
      "mesa_alloc: resource_deleter: no resource \\(a default-constructed deleter was given an "
      "object\\) \\(null\\)");
}

}  // namespace
