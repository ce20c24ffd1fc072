// The C++ bridge both ways: callback_resource (table -> pmr) and resource_callbacks
// (pmr -> table), and round trips through std::pmr containers.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/pool_resource.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/tracking_resource.h"
#include "tests/support/counting_allocator.h"

namespace {

bool aligned_to(const void *p, std::size_t alignment) {
  return (reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) == 0;
}

// A pmr resource over new_delete that counts calls and remembers the last deallocate's
// size/alignment, to check what resource_callbacks passes down.
class recording_resource : public std::pmr::memory_resource {
 public:
  int allocations = 0, deallocations = 0;
  std::size_t last_bytes = 0, last_alignment = 0;
  long live_bytes = 0;

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    allocations++;
    live_bytes += static_cast<long>(bytes);
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    deallocations++;
    last_bytes = bytes;
    last_alignment = alignment;
    live_bytes -= static_cast<long>(bytes);
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &o) const noexcept override {
    return this == &o;
  }
};

TEST(CallbackResource, ForwardsToTheTableWithScopeAndAlignment) {
  test::counting_allocator counting;
  mesa::callback_resource resource(counting.table(), MESA_ALLOC_SCOPE_CACHE);
  void *p = resource.allocate(100, 256);
  EXPECT_TRUE(aligned_to(p, 256));
  EXPECT_EQ(counting.allocations(), 1);
  EXPECT_EQ(counting.last_alignment(), 256u);
  EXPECT_EQ(counting.last_scope(), MESA_ALLOC_SCOPE_CACHE);
  resource.deallocate(p, 100, 256);
  EXPECT_EQ(counting.frees(), 1);
  EXPECT_EQ(resource.table(), counting.table());
  EXPECT_EQ(resource.scope(), MESA_ALLOC_SCOPE_CACHE);
}

TEST(CallbackResource, NullTableMeansTheDefault) {
  mesa::callback_resource resource(nullptr);
  EXPECT_EQ(resource.table(), mesa_default_allocator());
  EXPECT_EQ(resource.scope(), MESA_ALLOC_SCOPE_OBJECT);
}

TEST(CallbackResource, NullFromTheTableIsBadAllocAndResourceStaysUsable) {
  test::counting_allocator counting;
  mesa::callback_resource resource(counting.table());
  counting.fail_next(1);
  EXPECT_THROW((void)resource.allocate(64, 8), std::bad_alloc);
  void *p = resource.allocate(64, 8);
  resource.deallocate(p, 64, 8);
  EXPECT_EQ(counting.live(), 0);
}

TEST(CallbackResource, EqualOnlyForTheSameTable) {
  test::counting_allocator a, b;
  mesa::callback_resource a1(a.table(), MESA_ALLOC_SCOPE_OBJECT);
  mesa::callback_resource a2(a.table(), MESA_ALLOC_SCOPE_DEVICE);
  mesa::callback_resource b1(b.table());
  EXPECT_TRUE(a1.is_equal(a2));
  EXPECT_TRUE(a1 == a2);
  EXPECT_FALSE(a1.is_equal(b1));
  EXPECT_FALSE(a1.is_equal(*std::pmr::new_delete_resource()));
}

// A table without alloc_fn, realloc_fn or free_fn would jump to address 0 at its first use: the
// resource says which function is missing when it is built, and aborts (as vk_callbacks does).
TEST(CallbackResourceDeathTest, IncompleteTableIsRefusedAtConstruction) {
  EXPECT_DEATH(
      {
        mesa_allocator incomplete = *mesa_libc_allocator();
        incomplete.alloc_fn = nullptr;
        mesa::callback_resource resource(&incomplete);
      },
      "mesa_alloc: callback_resource: the table has no alloc_fn");
  EXPECT_DEATH(
      {
        mesa_allocator incomplete = *mesa_libc_allocator();
        incomplete.free_fn = nullptr;
        mesa::callback_resource resource(&incomplete);
      },
      "mesa_alloc: callback_resource: the table has no free_fn");
}

TEST(CallbackResource, PmrContainersAllocateOnlyThroughTheTable) {
  test::counting_allocator counting;
  mesa::callback_resource resource(counting.table());
  {
    std::pmr::vector<std::pmr::string> names(&resource);
    for (int i = 0; i < 100; i++)
      names.emplace_back("a string long enough to leave the small buffer #" + std::to_string(i));
    EXPECT_EQ(names[42].get_allocator().resource(), &resource);  // uses-allocator construction
    EXPECT_GE(counting.allocations(), 101);
  }
  EXPECT_EQ(counting.live(), 0);
}

TEST(ResourceCallbacks, HeaderRecordsSizeSoUnsizedFreesWork) {
  recording_resource upstream;
  mesa::resource_callbacks callbacks(&upstream);
  const mesa_allocator *table = callbacks.table();
  EXPECT_EQ(callbacks.resource(), &upstream);
  void *p = mesa_alloc2(nullptr, table, 40, 8, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  mesa_free2(nullptr, table, p);
  EXPECT_EQ(upstream.last_bytes, 40 + mesa::resource_callbacks::header_bytes(8));
  EXPECT_EQ(upstream.last_alignment, 16u);
  EXPECT_EQ(upstream.live_bytes, 0);
}

TEST(ResourceCallbacks, HonoursLargeAlignmentsAndDocumentedHeaderCost) {
  recording_resource upstream;
  mesa::resource_callbacks callbacks(&upstream);
  for (std::size_t alignment = 1; alignment <= 65536; alignment *= 2) {
    void *p = mesa_alloc2(nullptr, callbacks.table(), 24, alignment, MESA_ALLOC_SCOPE_OBJECT);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned_to(p, alignment)) << alignment;
    mesa_free2(nullptr, callbacks.table(), p);
    EXPECT_EQ(upstream.last_bytes, 24 + std::max<std::size_t>(16, alignment));
  }
  EXPECT_EQ(upstream.live_bytes, 0);
}

TEST(ResourceCallbacks, ReallocKeepsAlignmentAndContents) {
  recording_resource upstream;
  mesa::resource_callbacks callbacks(&upstream);
  const mesa_allocator *table = callbacks.table();
  auto *p = static_cast<unsigned char *>(
      mesa_realloc2(nullptr, table, nullptr, 64, 4096, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 64; i++) p[i] = static_cast<unsigned char>(i * 3);
  p = static_cast<unsigned char *>(
      mesa_realloc2(nullptr, table, p, 10000, 4096, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(aligned_to(p, 4096));
  for (int i = 0; i < 64; i++) ASSERT_EQ(p[i], static_cast<unsigned char>(i * 3));
  p = static_cast<unsigned char *>(
      mesa_realloc2(nullptr, table, p, 8, 4096, MESA_ALLOC_SCOPE_OBJECT));
  for (int i = 0; i < 8; i++) ASSERT_EQ(p[i], static_cast<unsigned char>(i * 3));
  EXPECT_EQ(mesa_realloc2(nullptr, table, p, 0, 4096, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_EQ(upstream.live_bytes, 0);
  mesa_free2(nullptr, table, nullptr);  // no-op
  EXPECT_EQ(upstream.allocations, upstream.deallocations);
}

TEST(ResourceCallbacks, UpstreamFailureIsNullAndOriginalSurvives) {
  test::counting_allocator counting;
  mesa::callback_resource upstream(counting.table());
  mesa::resource_callbacks callbacks(&upstream);
  const mesa_allocator *table = callbacks.table();
  counting.fail_next(1);
  EXPECT_EQ(mesa_alloc2(nullptr, table, 32, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  char *p = static_cast<char *>(mesa_alloc2(nullptr, table, 8, 8, MESA_ALLOC_SCOPE_OBJECT));
  std::strcpy(p, "intact");
  counting.fail_next(1);
  EXPECT_EQ(mesa_realloc2(nullptr, table, p, 1 << 16, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  EXPECT_STREQ(p, "intact");
  mesa_free2(nullptr, table, p);
  EXPECT_EQ(counting.live(), 0);
  EXPECT_EQ(mesa_alloc2(nullptr, table, SIZE_MAX - 4, 8, MESA_ALLOC_SCOPE_OBJECT), nullptr);
}

// An application's table that ignores the alignment (returns its 64-aligned block plus one).
alignas(64) unsigned char g_misaligned_arena[256];
int g_misaligned_frees = 0;
const mesa_allocator kMisaligningTable = {
    nullptr,
    [](void *, std::size_t, std::size_t, mesa_alloc_scope) -> void * {
      return g_misaligned_arena + 1;
    },
    [](void *, void *, std::size_t, std::size_t, mesa_alloc_scope) -> void * { return nullptr; },
    [](void *, void *p) { g_misaligned_frees += p == g_misaligned_arena + 1; },
    nullptr,
    nullptr};

TEST(CallbackResource, AMisalignedBlockFromTheTableIsRefused) {
  mesa::callback_resource resource(&kMisaligningTable);
  g_misaligned_frees = 0;
  ::testing::internal::CaptureStderr();
  EXPECT_THROW((void)resource.allocate(8, 16), std::bad_alloc);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: callback_resource: the table returned "), std::string::npos)
      << err;
  EXPECT_NE(err.find(" for alignment 16 (misaligned); refused"), std::string::npos) << err;
  EXPECT_EQ(g_misaligned_frees, 1) << "given back to the table";
}

// A resource that ignores over-alignment, as libstdc++ 12's pool resources do above their
// block sizes.
class misaligning_resource final : public std::pmr::memory_resource {
 public:
  int live = 0;

 private:
  void *do_allocate(std::size_t bytes, std::size_t) override {
    ++live;
    return static_cast<unsigned char *>(::operator new (bytes + 16, std::align_val_t{64})) + 16;
  }
  void do_deallocate(void *p, std::size_t, std::size_t) override {
    --live;
    ::operator delete (static_cast<unsigned char *>(p) - 16, std::align_val_t{64});
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }
};

TEST(ResourceCallbacks, AMisalignedBlockFromTheResourceIsRefused) {
  misaligning_resource resource;
  mesa::resource_callbacks callbacks(&resource);
  const mesa_allocator *t = callbacks.table();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(t->alloc_fn(t->user_data, 8, 128, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: resource_callbacks: the resource returned "), std::string::npos)
      << err;
  EXPECT_NE(err.find(" for alignment 128 (misaligned); refused"), std::string::npos) << err;
  EXPECT_EQ(resource.live, 0) << "given back to the resource";
}

TEST(CallbackResource, AnInvalidAlignmentNeverReachesTheTable) {
  test::counting_allocator counting;
  mesa::callback_resource resource(counting.table());
  for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{24}}) {
    ::testing::internal::CaptureStderr();
    EXPECT_THROW((void)resource.allocate(64, alignment), std::bad_alloc) << alignment;
    const std::string err = ::testing::internal::GetCapturedStderr();
#ifndef NDEBUG
    EXPECT_NE(err.find("invalid alignment " + std::to_string(alignment) +
                       " in callback_resource::allocate"),
              std::string::npos)
        << err;
#endif
    EXPECT_EQ(err.find("misaligned"), std::string::npos) << "not the table's fault: " << err;
  }
  EXPECT_EQ(counting.allocations(), 0) << "the table saw an alignment it may not be given";
}

TEST(CallbackResourceDeathTest, AScopeOutOfRangeIsRefusedAtConstruction) {
  EXPECT_DEATH(mesa::callback_resource(mesa_libc_allocator(), static_cast<mesa_alloc_scope>(1000)),
               "mesa_alloc: callback_resource: scope 1000 is not an allocation scope \\(0 to 4\\)");
}

// An application's table that, once `misalign` is set, returns every block one byte past a
// 64-byte boundary: aligned as asked only for an alignment of 1.
class misaligning_table {
 public:
  bool misalign = false;
  long live = 0;

  const mesa_allocator *table() const { return &table_; }

 private:
  static misaligning_table *self(void *user_data) {
    return static_cast<misaligning_table *>(user_data);
  }
  static void *alloc(void *user_data, std::size_t size, std::size_t, mesa_alloc_scope) {
    auto *t = self(user_data);
    auto *base = static_cast<unsigned char *>(std::aligned_alloc(64, (size + 127) & ~63u));
    if (base == nullptr) return nullptr;
    ++t->live;
    if (!t->misalign) return base;
    t->shifted_.insert(base + 1);
    return base + 1;
  }
  static void *realloc(void *, void *, std::size_t, std::size_t, mesa_alloc_scope) {
    return nullptr;
  }
  static void free(void *user_data, void *p) {
    if (p == nullptr) return;
    auto *t = self(user_data);
    --t->live;
    auto *block = static_cast<unsigned char *>(p);
    if (t->shifted_.erase(block) != 0) block -= 1;
    std::free(block);
  }

  std::set<void *> shifted_;
  const mesa_allocator table_{this, &alloc, &realloc, &free, nullptr, nullptr};
};

TEST(MisalignedTable, IsRefusedUnderEveryLayerStackedOnIt) {
  misaligning_table app;
  app.misalign = true;
  mesa::callback_resource from_app(app.table());
  mesa::tracking_resource tracker(&from_app, "tracker");
  mesa::debug_resource debug(&from_app);
  mesa::pool_resource pool(&from_app);
  const std::pair<const char *, std::pmr::memory_resource *> layers[] = {
      {"tracking_resource", &tracker}, {"debug_resource", &debug}, {"pool_resource", &pool}};
  for (const auto &[name, layer] : layers) {
    ::testing::internal::CaptureStderr();
    EXPECT_THROW((void)layer->allocate(64, 16), std::bad_alloc) << name;
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("mesa_alloc: callback_resource: the table returned "), std::string::npos)
        << name << ": " << err;
    EXPECT_NE(err.find("(misaligned); refused"), std::string::npos) << name << ": " << err;
    EXPECT_EQ(app.live, 0) << name << ": the block goes back to the table";
  }
}

TEST(MisalignedTable, IsRefusedByTheCTablesOverIt) {
  misaligning_table app;
  app.misalign = true;
  const std::pair<const char *, const mesa_allocator *(*)(const mesa_allocator *)> makers[] = {
      {"mesa_tracking_create",
       [](const mesa_allocator *p) { return mesa_tracking_create(p, "t", nullptr); }},
      {"mesa_debug_create", [](const mesa_allocator *p) { return mesa_debug_create(p, nullptr); }},
      {"mesa_arena_create", &mesa_arena_create},
      {"mesa_slab_create", [](const mesa_allocator *p) { return mesa_slab_create(p, 48); }}};
  for (const auto &[name, make] : makers) {
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(make(app.table()), nullptr) << name << ": its handle would sit misaligned";
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find(std::string("mesa_alloc: ") + name + ": the table returned "),
              std::string::npos)
        << err;
    EXPECT_EQ(app.live, 0) << name;
  }

  // Made while the table behaved; the blocks under the tracker's headers are checked too.
  app.misalign = false;
  const mesa_allocator *tracker = mesa_tracking_create(app.table(), "t", nullptr);
  ASSERT_NE(tracker, nullptr);
  app.misalign = true;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(mesa_alloc2(nullptr, tracker, 64, 16, MESA_ALLOC_SCOPE_OBJECT), nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: mesa_tracking alloc: the table returned "), std::string::npos)
      << err;
  mesa_tracking_stats stats;
  ASSERT_TRUE(mesa_tracking_get_stats(tracker, &stats));
  EXPECT_EQ(stats.bytes_in_use, 0u);
  EXPECT_EQ(stats.failed_allocations, 1u);
  mesa_tracking_destroy(tracker);
  EXPECT_EQ(app.live, 0);
}

TEST(Bridge, RoundTripTableToResourceToTable) {
  // counting table -> callback_resource -> resource_callbacks -> callback_resource -> pmr
  test::counting_allocator counting;
  mesa::callback_resource first(counting.table());
  mesa::resource_callbacks back_to_c(&first);
  mesa::callback_resource second(back_to_c.table(), MESA_ALLOC_SCOPE_COMMAND);
  {
    std::pmr::vector<int> numbers(&second);
    std::pmr::string text("round trip through two bridges, long enough to allocate", &second);
    for (int i = 0; i < 10000; i++) numbers.push_back(i);
    EXPECT_EQ(numbers[9999], 9999);
    EXPECT_GT(counting.allocations(), 10);
    std::pmr::string copy(text, &second);
    EXPECT_EQ(copy, text);
  }
  EXPECT_EQ(counting.live(), 0);
  EXPECT_EQ(counting.allocations(), counting.frees());
}

}  // namespace
