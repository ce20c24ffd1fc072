// The C layers of debug_resources.h (tracking, debug, logging, fault) and the arena and pool
// tables of fast_resources.h made over an application's table pass its internal-allocation
// notifications on: each arrives once, with the size, type and scope the driver gave; a parent
// without them gives a layer without them (NULL).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstddef>
#include <string>
#include <vector>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/logging_resource.h"
#include "mesa_alloc/mesa_alloc.h"

namespace {

// An application's table: blocks from libc, notifications recorded.
struct application_table {
  struct notification {
    bool alloc;
    void *user_data;
    std::size_t size;
    int type;
    mesa_alloc_scope scope;
  };
  std::vector<notification> received;
  mesa_allocator table{this, &alloc, &realloc, &free, &internal_alloc, &internal_free};

  static void *alloc(void *, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) {
    const mesa_allocator *libc = mesa_libc_allocator();
    return libc->alloc_fn(libc->user_data, size, alignment, scope);
  }
  static void *realloc(void *, void *p, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    const mesa_allocator *libc = mesa_libc_allocator();
    return libc->realloc_fn(libc->user_data, p, size, alignment, scope);
  }
  static void free(void *, void *p) {
    const mesa_allocator *libc = mesa_libc_allocator();
    libc->free_fn(libc->user_data, p);
  }
  static void internal_alloc(void *self, std::size_t size, int type, mesa_alloc_scope scope) {
    static_cast<application_table *>(self)->received.push_back({true, self, size, type, scope});
  }
  static void internal_free(void *self, std::size_t size, int type, mesa_alloc_scope scope) {
    static_cast<application_table *>(self)->received.push_back({false, self, size, type, scope});
  }
};

// Sends a driver's notification pair through `t`, which must have both functions: an internal
// allocation of `size`, then its free.
void notify_pair(const mesa_allocator *t, std::size_t size, mesa_alloc_scope scope) {
  ASSERT_NE(t->internal_alloc_fn, nullptr);
  ASSERT_NE(t->internal_free_fn, nullptr);
  t->internal_alloc_fn(t->user_data, size, 0, scope);
  t->internal_free_fn(t->user_data, size, 0, scope);
}

std::string trace_path(const char *name) { return testing::TempDir() + "/" + name + ".trace"; }

// One layer of debug_resources.h, made and destroyed through its C functions.
struct layer {
  const char *name;
  const mesa_allocator *(*create)(const mesa_allocator *parent);
  void (*destroy)(const mesa_allocator *table);
};

const layer kLayers[] = {
    {"tracking",
     [](const mesa_allocator *parent) { return mesa_tracking_create(parent, "driver", nullptr); },
     mesa_tracking_destroy},
    {"debug", [](const mesa_allocator *parent) { return mesa_debug_create(parent, nullptr); },
     mesa_debug_destroy},
    {"logging",
     [](const mesa_allocator *parent) {
       return mesa_logging_create(parent, trace_path("notifications").c_str(), 0);
     },
     mesa_logging_destroy},
    {"fault", mesa_fault_create, mesa_fault_destroy},
    {"arena", mesa_arena_create, mesa_arena_destroy},
    {"pool", mesa_pool_create, mesa_pool_destroy},
    {"synchronized_pool", mesa_synchronized_pool_create, mesa_synchronized_pool_destroy},
    {"slab", [](const mesa_allocator *parent) { return mesa_slab_create(parent, 64); },
     mesa_slab_destroy},
};

TEST(CLayerNotifications, EachLayerForwardsTheParentsNotificationsUnchanged) {
  for (const layer &l : kLayers) {
    SCOPED_TRACE(l.name);
    application_table app;
    const mesa_allocator *t = l.create(&app.table);
    ASSERT_NE(t, nullptr);
    ASSERT_NO_FATAL_FAILURE(notify_pair(t, 4096, MESA_ALLOC_SCOPE_DEVICE));
    t->internal_alloc_fn(t->user_data, 24, 0, MESA_ALLOC_SCOPE_INSTANCE);
    ASSERT_EQ(app.received.size(), 3u);
    EXPECT_TRUE(app.received[0].alloc);
    EXPECT_EQ(app.received[0].user_data, &app);
    EXPECT_EQ(app.received[0].size, 4096u);
    EXPECT_EQ(app.received[0].type, 0);
    EXPECT_EQ(app.received[0].scope, MESA_ALLOC_SCOPE_DEVICE);
    EXPECT_FALSE(app.received[1].alloc);
    EXPECT_EQ(app.received[1].size, 4096u);
    EXPECT_EQ(app.received[1].scope, MESA_ALLOC_SCOPE_DEVICE);
    EXPECT_TRUE(app.received[2].alloc);
    EXPECT_EQ(app.received[2].size, 24u);
    EXPECT_EQ(app.received[2].scope, MESA_ALLOC_SCOPE_INSTANCE);
    // Blocks still go through the layer to the parent, and the layer comes down cleanly.
    void *p = mesa_alloc2(nullptr, t, 64, 16, MESA_ALLOC_SCOPE_OBJECT);
    EXPECT_NE(p, nullptr);
    mesa_free2(nullptr, t, p);
    l.destroy(t);
    EXPECT_EQ(app.received.size(), 3u) << "only the driver's notifications reach the app";
  }
}

// A driver's notification through tracking -> debug -> logging -> fault -> application arrives
// once.
TEST(CLayerNotifications, StackedLayersForwardEachNotificationOnce) {
  application_table app;
  const mesa_allocator *stack[4];
  const mesa_allocator *parent = &app.table;
  for (int i = 3; i >= 0; --i) {
    stack[i] = kLayers[i].create(parent);
    ASSERT_NE(stack[i], nullptr) << kLayers[i].name;
    parent = stack[i];
  }
  const mesa_allocator *top = stack[0];
  ASSERT_NO_FATAL_FAILURE(notify_pair(top, 512, MESA_ALLOC_SCOPE_CACHE));
  ASSERT_EQ(app.received.size(), 2u);
  EXPECT_TRUE(app.received[0].alloc);
  EXPECT_FALSE(app.received[1].alloc);
  for (const application_table::notification &n : app.received) {
    EXPECT_EQ(n.user_data, &app);
    EXPECT_EQ(n.size, 512u);
    EXPECT_EQ(n.scope, MESA_ALLOC_SCOPE_CACHE);
  }
  for (int i = 0; i < 4; ++i) kLayers[i].destroy(stack[i]);
}

// The trace format has no record for notifications: the logging layer passes them on unlogged.
TEST(CLayerNotifications, TheLoggingLayerForwardsWithoutLogging) {
  application_table app;
  const std::string path = trace_path("unlogged");
  const mesa_allocator *log = mesa_logging_create(&app.table, path.c_str(), 0);
  ASSERT_NE(log, nullptr);
  ASSERT_NO_FATAL_FAILURE(notify_pair(log, 100, MESA_ALLOC_SCOPE_DEVICE));
  mesa_logging_destroy(log);
  EXPECT_EQ(app.received.size(), 2u);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(8 + sizeof(mesa::trace_event)))
      << "only the header and the end record: no event for a notification";
}

// A slab child's table forwards to the table its slab parent was made over.
TEST(CLayerNotifications, ASlabChildForwardsToItsParentsTable) {
  application_table app;
  mesa_slab_parent *parent = mesa_slab_parent_create(&app.table, 48);
  ASSERT_NE(parent, nullptr);
  const mesa_allocator *child = mesa_slab_child_create(parent);
  ASSERT_NE(child, nullptr);
  ASSERT_NO_FATAL_FAILURE(notify_pair(child, 256, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_EQ(app.received.size(), 2u);
  EXPECT_TRUE(app.received[0].alloc);
  EXPECT_EQ(app.received[0].user_data, &app);
  EXPECT_EQ(app.received[0].size, 256u);
  EXPECT_FALSE(app.received[1].alloc);
  mesa_slab_child_destroy(child);
  mesa_slab_parent_destroy(parent);
}

TEST(CLayerNotifications, AParentWithoutThemGivesALayerWithoutThem) {
  for (const layer &l : kLayers) {
    SCOPED_TRACE(l.name);
    const mesa_allocator *t = l.create(mesa_libc_allocator());
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->internal_alloc_fn, nullptr);
    EXPECT_EQ(t->internal_free_fn, nullptr);
    l.destroy(t);
  }
}

// Vulkan takes both or neither: a parent with one gets a layer with neither, and a line.
TEST(CLayerNotifications, AParentWithOnlyOneGivesALayerWithNeitherAndALine) {
  for (const layer &l : kLayers) {
    SCOPED_TRACE(l.name);
    application_table app;
    mesa_allocator half = app.table;
    half.internal_free_fn = nullptr;
    testing::internal::CaptureStderr();
    const mesa_allocator *t = l.create(&half);
    const std::string err = testing::internal::GetCapturedStderr();
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->internal_alloc_fn, nullptr);
    EXPECT_EQ(t->internal_free_fn, nullptr);
    EXPECT_NE(err.find("mesa_alloc: mesa_" + std::string(l.name) +
                       "_create: the parent table has internal_alloc_fn without "
                       "internal_free_fn (Vulkan takes both or neither); its notifications are "
                       "not forwarded\n"),
              std::string::npos)
        << err;
    l.destroy(t);
  }
}

}  // namespace
