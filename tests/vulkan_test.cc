// The Vulkan bridge: VkAllocationCallbacks <-> mesa_allocator <-> std::pmr, the vk_alloc2
// fallback rule, internal-allocation forwarding and vk_multialloc.
#include "mesa_alloc/vulkan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <string>
#include <vector>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/debug_resources.h"

namespace {

// An application's callbacks that count what reaches them.
struct counting_app {
  int allocs = 0, reallocs = 0, frees = 0, internal_allocs = 0, internal_frees = 0;
  VkSystemAllocationScope last_scope = VK_SYSTEM_ALLOCATION_SCOPE_MAX_ENUM;
  VkAllocationCallbacks callbacks{};

  counting_app() {
    callbacks.pUserData = this;
    callbacks.pfnAllocation = [](void *u, std::size_t size, std::size_t alignment,
                                 VkSystemAllocationScope scope) -> void * {
      auto *self = static_cast<counting_app *>(u);
      ++self->allocs;
      self->last_scope = scope;
      return mesa_libc_allocator()->alloc_fn(nullptr, size, alignment,
                                             static_cast<mesa_alloc_scope>(scope));
    };
    callbacks.pfnReallocation = [](void *u, void *p, std::size_t size, std::size_t alignment,
                                   VkSystemAllocationScope scope) -> void * {
      ++static_cast<counting_app *>(u)->reallocs;
      return mesa_libc_allocator()->realloc_fn(nullptr, p, size, alignment,
                                               static_cast<mesa_alloc_scope>(scope));
    };
    callbacks.pfnFree = [](void *u, void *p) {
      if (p != nullptr) ++static_cast<counting_app *>(u)->frees;
      mesa_libc_allocator()->free_fn(nullptr, p);
    };
    callbacks.pfnInternalAllocation = [](void *u, std::size_t, VkInternalAllocationType,
                                         VkSystemAllocationScope) {
      ++static_cast<counting_app *>(u)->internal_allocs;
    };
    callbacks.pfnInternalFree = [](void *u, std::size_t, VkInternalAllocationType,
                                   VkSystemAllocationScope) {
      ++static_cast<counting_app *>(u)->internal_frees;
    };
  }
};

TEST(VulkanBridge, ToMesaAndBackAreTheSameTable) {
  counting_app app;
  const mesa_allocator *table = mesa::to_mesa(&app.callbacks);
  EXPECT_EQ(static_cast<const void *>(table), static_cast<const void *>(&app.callbacks));
  EXPECT_EQ(mesa::to_vk(table), &app.callbacks);
  EXPECT_EQ(mesa::to_mesa(static_cast<const VkAllocationCallbacks *>(nullptr)), nullptr);
  void *p = table->alloc_fn(table->user_data, 64, 32, MESA_ALLOC_SCOPE_DEVICE);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 32, 0u);
  EXPECT_EQ(app.last_scope, VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
  p = table->realloc_fn(table->user_data, p, 128, 32, MESA_ALLOC_SCOPE_DEVICE);
  table->free_fn(table->user_data, p);
  table->internal_alloc_fn(table->user_data, 1, 0, MESA_ALLOC_SCOPE_DEVICE);
  table->internal_free_fn(table->user_data, 1, 0, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(app.allocs, 1);
  EXPECT_EQ(app.reallocs, 1);
  EXPECT_EQ(app.frees, 1);
  EXPECT_EQ(app.internal_allocs, 1);
  EXPECT_EQ(app.internal_frees, 1);
  EXPECT_EQ(mesa::to_vk(MESA_ALLOC_SCOPE_CACHE), VK_SYSTEM_ALLOCATION_SCOPE_CACHE);
  EXPECT_EQ(mesa::to_mesa(VK_SYSTEM_ALLOCATION_SCOPE_COMMAND), MESA_ALLOC_SCOPE_COMMAND);
}

TEST(VulkanBridge, Alloc2UsesObjectElseParent) {
  counting_app parent, object;
  void *a = mesa::vk_alloc2(&parent.callbacks, &object.callbacks, 8, 8,
                            VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  void *b = mesa::vk_zalloc2(&parent.callbacks, nullptr, 8, 8, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  EXPECT_EQ(object.allocs, 1);
  EXPECT_EQ(parent.allocs, 1);
  EXPECT_EQ(std::memcmp(b, "\0\0\0\0\0\0\0\0", 8), 0);
  a = mesa::vk_realloc2(&parent.callbacks, &object.callbacks, a, 16, 8,
                        VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  EXPECT_EQ(object.reallocs, 1);
  mesa::vk_free2(&parent.callbacks, &object.callbacks, a);
  mesa::vk_free2(&parent.callbacks, nullptr, b);
  EXPECT_EQ(object.frees, 1);
  EXPECT_EQ(parent.frees, 1);
  void *c = mesa::vk_alloc2(nullptr, nullptr, 8, 8, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  ASSERT_NE(c, nullptr);  // the default table
  mesa::vk_free2(nullptr, nullptr, c);
}

TEST(VkResource, FallsBackObjectDeviceInstanceDefault) {
  counting_app object, device, instance;
  EXPECT_EQ(mesa::vk_resource(&object.callbacks, &device.callbacks, &instance.callbacks,
                              VK_SYSTEM_ALLOCATION_SCOPE_OBJECT)
                .callbacks(),
            &object.callbacks);
  EXPECT_EQ(mesa::vk_resource(nullptr, &device.callbacks, &instance.callbacks,
                              VK_SYSTEM_ALLOCATION_SCOPE_OBJECT)
                .callbacks(),
            &device.callbacks);
  EXPECT_EQ(
      mesa::vk_resource(nullptr, nullptr, &instance.callbacks, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT)
          .callbacks(),
      &instance.callbacks);
  EXPECT_EQ(mesa::vk_resource(nullptr).callbacks(), mesa::to_vk(mesa_default_allocator()));
}

TEST(VkResource, ContainersAllocateThroughTheCallbacksWithTheScope) {
  counting_app device;
  mesa::vk_resource resource(nullptr, &device.callbacks, nullptr,
                             VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
  {
    std::pmr::vector<std::uint64_t> v(&resource);
    for (int i = 0; i < 100; ++i) v.push_back(i);
    EXPECT_EQ(v[99], 99u);
    std::pmr::string s("a string too long for the small-string buffer", &resource);
    EXPECT_EQ(s.size(), 45u);
  }
  EXPECT_GT(device.allocs, 1);
  EXPECT_EQ(device.allocs, device.frees);
  EXPECT_EQ(device.last_scope, VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
  mesa::vk_resource same(&device.callbacks, VK_SYSTEM_ALLOCATION_SCOPE_COMMAND);
  counting_app other;
  mesa::vk_resource different(&other.callbacks);
  EXPECT_TRUE(resource.is_equal(same));
  EXPECT_FALSE(resource.is_equal(different));
}

TEST(VkResource, NullFromCallbacksIsBadAlloc) {
  VkAllocationCallbacks failing{};
  failing.pfnAllocation = [](void *, std::size_t, std::size_t, VkSystemAllocationScope) -> void * {
    return nullptr;
  };
  failing.pfnFree = [](void *, void *) {};
  mesa::vk_resource resource(&failing);
  EXPECT_THROW((void)resource.allocate(16, 8), std::bad_alloc);
}

TEST(VkResource, AMisalignedBlockFromTheCallbacksIsRefused) {
  alignas(64) static unsigned char block[128];
  static int frees = 0;
  VkAllocationCallbacks misaligning{};
  misaligning.pfnAllocation = [](void *, std::size_t, std::size_t,
                                 VkSystemAllocationScope) -> void * { return block + 8; };
  misaligning.pfnFree = [](void *, void *p) { frees += p == block + 8; };
  mesa::vk_resource resource(&misaligning);
  ::testing::internal::CaptureStderr();
  EXPECT_THROW((void)resource.allocate(16, 64), std::bad_alloc);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: vk_resource: the callbacks returned "), std::string::npos) << err;
  EXPECT_EQ(frees, 1);
}

TEST(VkResource, AnInvalidAlignmentNeverReachesTheCallbacks) {
  static int calls = 0;
  VkAllocationCallbacks counting{};
  counting.pfnAllocation = [](void *, std::size_t size, std::size_t alignment,
                              VkSystemAllocationScope) -> void * {
    ++calls;
    return std::aligned_alloc(alignment, size);
  };
  counting.pfnFree = [](void *, void *p) { std::free(p); };
  mesa::vk_resource resource(&counting);
  for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{24}}) {
    ::testing::internal::CaptureStderr();
    EXPECT_THROW((void)resource.allocate(64, alignment), std::bad_alloc) << alignment;
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(err.find("misaligned"), std::string::npos) << "not the callbacks' fault: " << err;
  }
  EXPECT_EQ(calls, 0) << "the callbacks saw an alignment the Vulkan spec forbids";
}

TEST(VkResourceDeathTest, AScopeOutOfRangeIsRefusedAtConstruction) {
  VkAllocationCallbacks libc = *mesa::to_vk(mesa_libc_allocator());
  EXPECT_DEATH(mesa::vk_resource(&libc, static_cast<VkSystemAllocationScope>(1000)),
               "mesa_alloc: vk_resource: scope 1000 is not an allocation scope");
}

TEST(VkCallbacks, OverAResourceReachTheResource) {
  std::pmr::monotonic_buffer_resource upstream;
  struct counting_resource : std::pmr::memory_resource {
    std::pmr::memory_resource *up;
    int allocations = 0, deallocations = 0;
    void *do_allocate(std::size_t b, std::size_t a) override {
      ++allocations;
      return up->allocate(b, a);
    }
    void do_deallocate(void *p, std::size_t b, std::size_t a) override {
      ++deallocations;
      up->deallocate(p, b, a);
    }
    bool do_is_equal(const memory_resource &o) const noexcept override { return this == &o; }
  } counted;
  counted.up = &upstream;
  mesa::vk_callbacks callbacks(&counted);
  const VkAllocationCallbacks *vk = callbacks.get();
  void *p = vk->pfnAllocation(vk->pUserData, 100, 256, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
  std::memset(p, 0x5a, 100);
  p = vk->pfnReallocation(vk->pUserData, p, 4000, 256, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
  EXPECT_EQ(static_cast<unsigned char *>(p)[99], 0x5a);
  vk->pfnFree(vk->pUserData, p);
  EXPECT_EQ(counted.allocations, 2);
  EXPECT_EQ(counted.deallocations, 2);
  EXPECT_EQ(vk->pfnInternalAllocation, nullptr);  // no observer: nothing to notify
}

struct recording_observer final : mesa::vk_internal_observer {
  std::vector<std::string> events;
  void internal_allocation(std::size_t size, VkInternalAllocationType,
                           VkSystemAllocationScope scope) noexcept override {
    events.push_back("alloc " + std::to_string(size) + " " + std::to_string(scope));
  }
  void internal_free(std::size_t size, VkInternalAllocationType,
                     VkSystemAllocationScope scope) noexcept override {
    events.push_back("free " + std::to_string(size) + " " + std::to_string(scope));
  }
};

TEST(VkCallbacks, OverATableIsTheTableWithoutObserver) {
  counting_app app;
  mesa::vk_callbacks callbacks(mesa::to_mesa(&app.callbacks));
  EXPECT_EQ(callbacks.get()->pfnAllocation, app.callbacks.pfnAllocation);
  EXPECT_EQ(callbacks.get()->pUserData, &app);
  EXPECT_EQ(static_cast<const void *>(callbacks.table()),
            static_cast<const void *>(callbacks.get()));
}

TEST(VkCallbacks, ForwardNotificationsToObserverAndTable) {
  counting_app app;
  recording_observer observer;
  mesa::vk_callbacks callbacks(mesa::to_mesa(&app.callbacks), &observer);
  const VkAllocationCallbacks *vk = callbacks.get();
  void *p = vk->pfnAllocation(vk->pUserData, 10, 8, VK_SYSTEM_ALLOCATION_SCOPE_INSTANCE);
  p = vk->pfnReallocation(vk->pUserData, p, 20, 8, VK_SYSTEM_ALLOCATION_SCOPE_INSTANCE);
  vk->pfnFree(vk->pUserData, p);
  vk->pfnInternalAllocation(vk->pUserData, 4096, VK_INTERNAL_ALLOCATION_TYPE_EXECUTABLE,
                            VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
  vk->pfnInternalFree(vk->pUserData, 4096, VK_INTERNAL_ALLOCATION_TYPE_EXECUTABLE,
                      VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
  EXPECT_EQ(observer.events, (std::vector<std::string>{"alloc 4096 3", "free 4096 3"}));
  EXPECT_EQ(app.allocs, 1);
  EXPECT_EQ(app.reallocs, 1);
  EXPECT_EQ(app.frees, 1);
  EXPECT_EQ(app.internal_allocs, 1);
  EXPECT_EQ(app.internal_frees, 1);
}

// A driver handed a C layer made over the application's callbacks (debug_resources.h) gets
// notification functions, and its notifications reach the application.
TEST(VkCallbacks, ACLayerOverTheApplicationKeepsItsNotifications) {
  counting_app app;
  const mesa_allocator *tracking =
      mesa_tracking_create(mesa::to_mesa(&app.callbacks), "driver", nullptr);
  ASSERT_NE(tracking, nullptr);
  {
    mesa::vk_callbacks callbacks(tracking);
    const VkAllocationCallbacks *vk = callbacks.get();
    ASSERT_NE(vk->pfnInternalAllocation, nullptr);
    ASSERT_NE(vk->pfnInternalFree, nullptr);
    vk->pfnInternalAllocation(vk->pUserData, 4096, VK_INTERNAL_ALLOCATION_TYPE_EXECUTABLE,
                              VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
    vk->pfnInternalFree(vk->pUserData, 4096, VK_INTERNAL_ALLOCATION_TYPE_EXECUTABLE,
                        VK_SYSTEM_ALLOCATION_SCOPE_DEVICE);
  }
  mesa_tracking_destroy(tracking);
  EXPECT_EQ(app.internal_allocs, 1);
  EXPECT_EQ(app.internal_frees, 1);
}

TEST(VkMultialloc, PlacesArraysInOneAlignedBlock) {
  counting_app app;
  struct header {
    int a;
  } * h;
  double *values;
  char *name;
  struct alignas(64) line {
    char bytes[64];
  } * lines;
  mesa::vk_multialloc ma;
  ma.add(&h);
  ma.add(&name, 13);
  ma.add(&values, 3);
  ma.add(&lines, 2);
  EXPECT_EQ(ma.alignment(), 64u);
  void *block = ma.zalloc2(nullptr, &app.callbacks, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(app.allocs, 1);
  EXPECT_EQ(block, static_cast<void *>(h));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(block) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<char *>(name), reinterpret_cast<char *>(h) + 4);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(values) % alignof(double), 0u);
  EXPECT_GE(reinterpret_cast<char *>(values), name + 13);
  EXPECT_GE(reinterpret_cast<char *>(lines), reinterpret_cast<char *>(values + 3));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(lines) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<char *>(lines + 2), static_cast<char *>(block) + ma.size());
  EXPECT_EQ(lines[1].bytes[63], 0);
  mesa::vk_free2(nullptr, &app.callbacks, h);
  EXPECT_EQ(app.frees, 1);
}

TEST(VkMultialloc, FailureAndOverflowNullEveryPointer) {
  VkAllocationCallbacks failing{};
  failing.pfnAllocation = [](void *, std::size_t, std::size_t, VkSystemAllocationScope) -> void * {
    return nullptr;
  };
  int *a = reinterpret_cast<int *>(1);
  double *b = reinterpret_cast<double *>(1);
  mesa::vk_multialloc ma;
  ma.add(&a, 4);
  ma.add(&b, 4);
  EXPECT_EQ(ma.alloc2(nullptr, &failing, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(b, nullptr);

  mesa::vk_multialloc huge;
  a = reinterpret_cast<int *>(1);
  huge.add(&a, SIZE_MAX / 2);
  EXPECT_EQ(huge.alloc2(nullptr, nullptr, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(a, nullptr);

  mesa::vk_multialloc too_many;
  int *slots[mesa::vk_multialloc::kMaxArrays + 1];
  for (int *&slot : slots) too_many.add(&slot);
  EXPECT_EQ(too_many.alloc2(nullptr, nullptr, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT), nullptr);
  for (int *slot : slots) EXPECT_EQ(slot, nullptr);
}

// A total near SIZE_MAX never reaches a pmr resource: std::pmr::new_delete_resource() would
// round it up to 0 and return a tiny block (see request_limit.h).
TEST(VkMultialloc, TotalNearSizeMaxIsRefusedBeforeTheResource) {
  void *bytes = reinterpret_cast<void *>(1);
  mesa::vk_multialloc ma;
  ma.add_bytes(&bytes, SIZE_MAX - 100, 128);
  EXPECT_EQ(ma.allocate(std::pmr::new_delete_resource()), nullptr);
  EXPECT_EQ(bytes, nullptr);
}

// A null resource is refused with a line, as every entry point that takes a resource does.
TEST(VkMultiallocDeathTest, ANullResourceIsRefused) {
  int *ints = nullptr;
  mesa::vk_multialloc ma;
  ma.add(&ints, 4);
  EXPECT_DEATH(ma.allocate(nullptr),
               "^mesa_alloc: vk_multialloc::allocate: no resource \\(null\\)\n");
}

// Over a debug_resource the callbacks are its own table: no resource_callbacks header inside
// the layer's block, whose second free would be read from memory the layer gave back instead
// of reaching the layer's double-free check (a probe saw a reused address free another live
// block, and ASan a use after free in resource_callbacks::free).
TEST(VkCallbacks, OverADebugResourceAreItsOwnTableAndADoubleFreeIsCaught) {
  struct errors {
    std::vector<mesa::debug_error_kind> kinds;
    static void record(const mesa::debug_error &e, void *self) {
      static_cast<errors *>(self)->kinds.push_back(e.kind);
    }
  } seen;
  mesa::debug_options options;
  options.handler = &errors::record;
  options.handler_context = &seen;
  mesa::debug_resource debug(std::pmr::new_delete_resource(), options);
  mesa::vk_callbacks callbacks(&debug);
  const VkAllocationCallbacks *cb = callbacks.get();
  EXPECT_EQ(mesa::to_mesa(cb)->alloc_fn, debug.table()->alloc_fn);
  EXPECT_EQ(cb->pUserData, debug.table()->user_data);
  void *p = cb->pfnAllocation(cb->pUserData, 100, 16, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(debug.live_blocks(), 1u);
  cb->pfnFree(cb->pUserData, p);
  cb->pfnFree(cb->pUserData, p);
  ASSERT_EQ(seen.kinds.size(), 1u);
  EXPECT_EQ(seen.kinds[0], mesa::debug_error_kind::double_free);
  EXPECT_EQ(debug.live_blocks(), 0u);
}

// nullptr alone names the default table (it was an ambiguous call between the two overloads).
TEST(VkCallbacks, NullptrMeansTheDefaultTable) {
  mesa::vk_callbacks callbacks(nullptr);
  EXPECT_EQ(callbacks.table()->alloc_fn, mesa_default_allocator()->alloc_fn);
  EXPECT_EQ(callbacks.table()->user_data, mesa_default_allocator()->user_data);
}

TEST(VkCallbacks, WrappedSizeOverNewDeleteIsNull) {
  mesa::vk_callbacks callbacks(std::pmr::new_delete_resource());
  const VkAllocationCallbacks *cb = callbacks.get();
  EXPECT_EQ(cb->pfnAllocation(cb->pUserData, SIZE_MAX - 16, 16, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT),
            nullptr);
}

TEST(VkCallbacks, NullResourceMeansTheDefaultTable) {
  mesa::vk_callbacks callbacks(static_cast<std::pmr::memory_resource *>(nullptr));
  const VkAllocationCallbacks *cb = callbacks.get();
  void *p = cb->pfnAllocation(cb->pUserData, 64, 16, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 64);
  cb->pfnFree(cb->pUserData, p);
}

void build_over_table_without_realloc() {
  mesa_allocator incomplete = *mesa_libc_allocator();
  incomplete.realloc_fn = nullptr;
  mesa::vk_callbacks callbacks(&incomplete);
}

void build_over_table_without_free_with_observer() {
  struct quiet final : mesa::vk_internal_observer {
    void internal_allocation(std::size_t, VkInternalAllocationType,
                             VkSystemAllocationScope) noexcept override {}
    void internal_free(std::size_t, VkInternalAllocationType,
                       VkSystemAllocationScope) noexcept override {}
  } observer;
  mesa_allocator incomplete = *mesa_libc_allocator();
  incomplete.free_fn = nullptr;
  mesa::vk_callbacks callbacks(&incomplete, &observer);
}

void build_over_table_with_half_the_notifications() {
  mesa_allocator half = *mesa_libc_allocator();
  half.internal_alloc_fn = [](void *, std::size_t, int, mesa_alloc_scope) {};
  mesa::vk_callbacks callbacks(&half);
}

void build_resource_over_callbacks_without_free() {
  VkAllocationCallbacks callbacks = *mesa::to_vk(mesa_libc_allocator());
  callbacks.pfnFree = nullptr;
  mesa::vk_resource resource(&callbacks);
}

TEST(VkCallbacksDeathTest, IncompleteTableIsRefusedAtConstruction) {
  EXPECT_DEATH(build_over_table_without_realloc(),
               "mesa_alloc: vk_callbacks: the table has no realloc_fn");
  EXPECT_DEATH(build_over_table_without_free_with_observer(),
               "mesa_alloc: vk_callbacks: the table has no free_fn");
  // The driver would call pfnInternalFree at address 0 at its first internal free.
  EXPECT_DEATH(build_over_table_with_half_the_notifications(),
               "mesa_alloc: vk_callbacks: the table has internal_alloc_fn without "
               "internal_free_fn \\(Vulkan takes both or neither\\)");
}

TEST(VkResourceDeathTest, IncompleteCallbacksAreRefusedAtConstruction) {
  EXPECT_DEATH(build_resource_over_callbacks_without_free(),
               "mesa_alloc: vk_resource: the callbacks have no pfnFree \\(it calls pfnAllocation "
               "and pfnFree\\)");
}

TEST(VkMultialloc, FromAResource) {
  std::pmr::monotonic_buffer_resource arena;
  std::uint32_t *words;
  std::uint64_t *longs;
  mesa::vk_multialloc ma;
  ma.add(&words, 3);
  ma.add(&longs, 2);
  void *block = ma.allocate(&arena);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(ma.size(), 3 * 4 + 4 + 2 * 8u);
  EXPECT_EQ(reinterpret_cast<char *>(longs) - reinterpret_cast<char *>(words), 16);
  arena.deallocate(block, ma.size(), ma.alignment());
}

TEST(VkMultialloc, UntypedBytesAndBadAlignment) {
  counting_app app;
  void *raw;
  std::uint16_t *halfs;
  mesa::vk_multialloc ma;
  ma.add_bytes(&raw, 3, 1);
  ma.add(&halfs, 2);
  void *block = ma.alloc2(nullptr, &app.callbacks, VK_SYSTEM_ALLOCATION_SCOPE_COMMAND);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(raw, block);
  EXPECT_EQ(reinterpret_cast<char *>(halfs), static_cast<char *>(block) + 4);
  EXPECT_EQ(ma.size(), 8u);
  EXPECT_EQ(app.last_scope, VK_SYSTEM_ALLOCATION_SCOPE_COMMAND);
  mesa::vk_free2(nullptr, &app.callbacks, block);

  mesa::vk_multialloc bad;
  int *p;
  bad.add(&p, 1, 24);  // not a power of two
  EXPECT_EQ(bad.alloc2(nullptr, &app.callbacks, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(app.allocs, 1);
}

}  // namespace
