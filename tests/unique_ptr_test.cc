#include "containers/unique_ptr.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "containers/containers.h"
#include "containers/testing/checking_resource.h"
#include "gtest/gtest.h"

namespace {

using mesa::testing::checking_resource;

struct small {
  explicit small(int v) : value(v) {}
  int value;
};

struct base {
  virtual ~base() { ++destroyed; }
  static inline int destroyed = 0;
  std::uint64_t id = 0;
};

struct derived : base {
  ~derived() override { ++destroyed; }
  static inline int destroyed = 0;
  char payload[200] = {};
};

struct other_base {
  virtual ~other_base() = default;
  std::uint64_t other = 0;
};

// Multiple inheritance: a pointer to the second base is not the block's address.
struct both : base, other_base {
  char payload[40] = {};
};

struct alignas(64) over_aligned_base {
  virtual ~over_aligned_base() = default;
};
struct over_aligned_derived : over_aligned_base {
  char payload[100] = {};
};

struct throws_in_constructor {
  explicit throws_in_constructor(bool fail) {
    if (fail) throw std::runtime_error("constructor failed");
  }
};

struct counted_element {
  counted_element() {
    if (fail_after == 0) throw std::runtime_error("element failed");
    --fail_after;
    ++alive;
  }
  ~counted_element() { --alive; }
  static inline int alive = 0;
  static inline int fail_after = -1;
};

TEST(UniquePtr, DeleterIsOnePointer) {
  EXPECT_EQ(sizeof(mesa::resource_deleter<int>), sizeof(void *));
  EXPECT_EQ(sizeof(mesa::unique_ptr<int>), 2 * sizeof(void *));
  EXPECT_EQ(sizeof(mesa::unique_ptr<base>), 2 * sizeof(void *));
  EXPECT_EQ(sizeof(mesa::unique_ptr<int[]>), 2 * sizeof(void *));
}

TEST(UniquePtr, PlainObjectHasNoOverheadAndIsFreedSized) {
  checking_resource r;
  {
    auto p = mesa::allocate_unique<small>(&r, 42);
    EXPECT_EQ(p->value, 42);
    const auto *block = r.find(p.get());
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(block->bytes, sizeof(small));
    EXPECT_EQ(block->alignment, alignof(small));
    EXPECT_EQ(p.get_deleter().resource(), &r);
  }
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(UniquePtr, BasePointerDeletesDerivedWithDerivedSize) {
  checking_resource r;
  base::destroyed = derived::destroyed = 0;
  {
    mesa::unique_ptr<base> p = mesa::allocate_unique<derived>(&r);
    EXPECT_EQ(r.live_bytes(), sizeof(derived) + 2 * sizeof(std::size_t));  // the documented header
  }
  EXPECT_EQ(derived::destroyed, 1);
  EXPECT_EQ(base::destroyed, 1);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
  EXPECT_EQ(r.foreign_frees(), 0u);
}

TEST(UniquePtr, SecondBaseOfMultipleInheritanceFreesTheWholeBlock) {
  checking_resource r;
  {
    mesa::unique_ptr<both> p = mesa::allocate_unique<both>(&r);
    mesa::unique_ptr<other_base> second = std::move(p);
    EXPECT_EQ(r.find(second.get()), nullptr);  // not the block's address, nor the object's
  }
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
  EXPECT_EQ(r.foreign_frees(), 0u);
}

TEST(UniquePtr, OverAlignedPolymorphicObject) {
  checking_resource r;
  {
    mesa::unique_ptr<over_aligned_base> p = mesa::allocate_unique<over_aligned_derived>(&r);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.get()) % 64, 0u);
    EXPECT_EQ(r.live_bytes(), sizeof(over_aligned_derived) + 64);
  }
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

// allocate_unique<const T>: built as a T, handed out const, freed with the same layout.
TEST(UniquePtr, ConstObjectsPlainAndPolymorphic) {
  checking_resource r;
  derived::destroyed = 0;
  {
    mesa::unique_ptr<const small> s = mesa::allocate_unique<const small>(&r, 7);
    EXPECT_EQ(s->value, 7);
    EXPECT_EQ(r.live_bytes(), sizeof(small));
    mesa::unique_ptr<const derived> d = mesa::allocate_unique<const derived>(&r);
    EXPECT_EQ(r.live_bytes(), sizeof(small) + sizeof(derived) + 2 * sizeof(std::size_t));
    mesa::unique_ptr<const base> b = std::move(d);
  }
  EXPECT_EQ(derived::destroyed, 1);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
  EXPECT_EQ(r.foreign_frees(), 0u);
}

TEST(UniquePtr, ConversionNeedsAVirtualDestructor) {
  struct nv_base {
    int x;
  };
  struct nv_derived : nv_base {
    int y;
  };
  EXPECT_FALSE((std::is_convertible_v<mesa::unique_ptr<nv_derived>, mesa::unique_ptr<nv_base>>));
  EXPECT_TRUE((std::is_convertible_v<mesa::unique_ptr<derived>, mesa::unique_ptr<base>>));
}

TEST(UniquePtr, UsesAllocatorConstruction) {
  checking_resource r;
  auto v = mesa::allocate_unique<mesa::vector<mesa::string>>(&r);
  EXPECT_EQ(v->get_allocator().resource(), &r);
  v->emplace_back("a string long enough to need a block of its own, on the same resource");
  EXPECT_EQ(v->back().get_allocator().resource(), &r);
  v.reset();
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(UniquePtr, ArraysAreValueInitializedAndFreedWithTheirCount) {
  checking_resource r;
  {
    auto a = mesa::allocate_unique<std::uint32_t[]>(&r, 100);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(a[i], 0u);
    EXPECT_EQ(r.live_bytes(), sizeof(std::size_t) + 100 * sizeof(std::uint32_t));
    auto strings = mesa::allocate_unique<mesa::string[]>(&r, 3);
    strings[2] = "long enough to leave the small string buffer of libstdc++";
    EXPECT_EQ(strings[2].get_allocator().resource(), &r);
    auto empty = mesa::allocate_unique<int[]>(&r, 0);
    EXPECT_NE(empty.get(), nullptr);
  }
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(UniquePtr, ArrayDestroysElementsInReverse) {
  checking_resource r;
  counted_element::alive = 0;
  counted_element::fail_after = -1;
  {
    auto a = mesa::allocate_unique<counted_element[]>(&r, 5);
    EXPECT_EQ(counted_element::alive, 5);
  }
  EXPECT_EQ(counted_element::alive, 0);
  EXPECT_EQ(r.live(), 0u);
}

// As with std::default_delete<T[]>, an array can be handed on as an array of const elements.
TEST(UniquePtr, ArrayConvertsToAnArrayOfConst) {
  checking_resource r;
  counted_element::alive = 0;
  counted_element::fail_after = -1;
  {
    mesa::unique_ptr<counted_element[]> a = mesa::allocate_unique<counted_element[]>(&r, 4);
    mesa::unique_ptr<const counted_element[]> c = std::move(a);
    EXPECT_EQ(a, nullptr);
    EXPECT_EQ(c.get_deleter().resource(), &r);
    EXPECT_EQ(counted_element::alive, 4);
    static_assert(!std::is_constructible_v<mesa::unique_ptr<counted_element[]>,
                                           mesa::unique_ptr<const counted_element[]> &&>,
                  "no conversion that drops const");
  }
  EXPECT_EQ(counted_element::alive, 0);
  EXPECT_EQ(r.live(), 0u);  // freed with the size and alignment it was made with
}

// Made const from the start: an array of const elements and a shared const object, each built
// as the plain type and freed with the layout it was made with.
TEST(UniquePtr, ConstArraysAndSharedConstObjects) {
  checking_resource r;
  counted_element::alive = 0;
  counted_element::fail_after = -1;
  {
    mesa::unique_ptr<const counted_element[]> a =
        mesa::allocate_unique<const counted_element[]>(&r, 3);
    EXPECT_EQ(counted_element::alive, 3);
    std::shared_ptr<const small> s = mesa::allocate_shared<const small>(&r, 7);
    EXPECT_EQ(s->value, 7);
    EXPECT_EQ(r.live(), 2u);
  }
  EXPECT_EQ(counted_element::alive, 0);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(UniquePtr, ArraySizeOverflowThrows) {
  checking_resource r;
  EXPECT_THROW(mesa::allocate_unique<std::uint64_t[]>(&r, SIZE_MAX / 4), std::bad_array_new_length);
  EXPECT_EQ(r.allocations(), 0u);
}

TEST(UniquePtr, ThrowingConstructorReturnsTheBlock) {
  checking_resource r;
  EXPECT_THROW(mesa::allocate_unique<throws_in_constructor>(&r, true), std::runtime_error);
  EXPECT_EQ(r.allocations(), 1u);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(UniquePtr, ThrowingArrayElementDestroysTheOthersAndReturnsTheBlock) {
  checking_resource r;
  counted_element::alive = 0;
  counted_element::fail_after = 3;
  EXPECT_THROW(mesa::allocate_unique<counted_element[]>(&r, 10), std::runtime_error);
  EXPECT_EQ(counted_element::alive, 0);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
  counted_element::fail_after = -1;
}

TEST(UniquePtr, EmptyPointerHasNoResource) {
  mesa::unique_ptr<int> p;
  EXPECT_EQ(p.get_deleter().resource(), nullptr);
  p.reset();  // never calls the deleter on null
}

TEST(AllocateShared, ControlBlockAndObjectAreOneBlockFromTheResource) {
  checking_resource r;
  {
    std::shared_ptr<derived> p = mesa::allocate_shared<derived>(&r);
    EXPECT_EQ(r.allocations(), 1u);
    EXPECT_GT(r.live_bytes(), sizeof(derived));
    std::shared_ptr<base> as_base = p;
    std::weak_ptr<base> weak = as_base;
    p.reset();
    as_base.reset();
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(r.live(), 1u);  // the control block lives as long as a weak_ptr
  }
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(AllocateShared, UsesAllocatorConstruction) {
  checking_resource r;
  auto v = mesa::allocate_shared<mesa::vector<int>>(&r, 100, 7);
  EXPECT_EQ(v->get_allocator().resource(), &r);
  EXPECT_EQ(v->at(99), 7);
}

}  // namespace
