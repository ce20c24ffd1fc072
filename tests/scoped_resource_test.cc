#include "containers/scoped_resource.h"

#include <optional>
#include <thread>

#include "containers/containers.h"
#include "containers/testing/checking_resource.h"
#include "gtest/gtest.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/mesa_alloc.h"

namespace {

using mesa::testing::checking_resource;

TEST(ScopedResource, NestsAndRestores) {
  checking_resource a, b;
  std::pmr::memory_resource *outside = mesa::current_resource();
  EXPECT_EQ(outside, mesa::default_resource());
  {
    mesa::scoped_resource sa(&a);
    EXPECT_EQ(mesa::current_resource(), &a);
    {
      mesa::scoped_resource sb(&b);
      EXPECT_EQ(mesa::current_resource(), &b);
    }
    EXPECT_EQ(mesa::current_resource(), &a);
  }
  EXPECT_EQ(mesa::current_resource(), outside);
}

TEST(ScopedResource, NullMeansTheDefault) {
  mesa::scoped_resource s(nullptr);
  EXPECT_EQ(mesa::current_resource(), mesa::default_resource());
}

TEST(ScopedResource, DefaultResourceGoesThroughTheDefaultTable) {
  auto *r = dynamic_cast<mesa::callback_resource *>(mesa::default_resource());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->table(), mesa_default_allocator());
}

TEST(ScopedResource, ObjectsKeepTheirResourceAfterTheScopeEnds) {
  checking_resource a, b;
  std::optional<mesa::vector<mesa::string>> survivor;
  {
    mesa::scoped_resource scope(&a);
    survivor.emplace(mesa::current_resource());
    survivor->emplace_back("made in scope a and kept after it: still freed through a");
  }
  {
    mesa::scoped_resource scope(&b);
    survivor.reset();  // frees through a, not through the current b
  }
  EXPECT_EQ(a.live(), 0u);
  EXPECT_EQ(b.allocations(), 0u);
  EXPECT_EQ(a.foreign_frees() + b.foreign_frees(), 0u);
}

TEST(ScopedResource, IsPerThread) {
  checking_resource a;
  mesa::scoped_resource scope(&a);
  std::pmr::memory_resource *seen = nullptr;
  std::thread([&seen] { seen = mesa::current_resource(); }).join();
  EXPECT_EQ(seen, mesa::default_resource());
  EXPECT_EQ(mesa::current_resource(), &a);
}

TEST(ScopedResourceDeathTest, OutOfOrderDestructionAborts) {
  checking_resource a, b;
  EXPECT_DEATH(
      {
        std::optional<mesa::scoped_resource> outer;
        outer.emplace(&a);
        mesa::scoped_resource inner(&b);
        outer.reset();  // the outer guard ends while the inner one is live
      },
      "mesa_alloc: scoped_resource destroyed out of order");
}

}  // namespace
