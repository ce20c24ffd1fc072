#include "containers/resource_allocated.h"

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "containers/containers.h"
#include "containers/testing/checking_resource.h"
#include "gtest/gtest.h"

namespace {

using mesa::testing::checking_resource;

struct node : mesa::resource_allocated {
  node() = default;
  explicit node(int v) : value(v) {}
  virtual ~node() { ++destroyed; }
  static inline int destroyed = 0;
  int value = 0;
};

struct big_node : node {
  explicit big_node(std::pmr::memory_resource *r) : node(7), names(r) {}
  mesa::vector<mesa::string> names;
  char payload[300] = {};
};

struct alignas(128) wide : mesa::resource_allocated {
  float lanes[32] = {};
};

struct throws : mesa::resource_allocated {
  throws() { throw std::runtime_error("constructor failed"); }
};

template <class T, class = void>
struct plain_new_compiles : std::false_type {};
template <class T>
struct plain_new_compiles<T, std::void_t<decltype(new T())>> : std::true_type {};

TEST(ResourceAllocated, BaseIsEmpty) {
  EXPECT_TRUE(std::is_empty_v<mesa::resource_allocated>);
  struct plain {
    int x;
  };
  struct mixed : mesa::resource_allocated {
    int x;
  };
  EXPECT_EQ(sizeof(mixed), sizeof(plain));
}

TEST(ResourceAllocated, PlainNewWithoutAResourceDoesNotCompile) {
  EXPECT_FALSE(plain_new_compiles<node>::value);
  struct not_mixed {};
  EXPECT_TRUE(plain_new_compiles<not_mixed>::value);  // the detector itself works
}

TEST(ResourceAllocated, DeleteReturnsTheBlockToItsResource) {
  checking_resource a, b;
  node *x = new (&a) node(1);
  node *y = new (&b) node(2);
  EXPECT_EQ(mesa::resource_allocated::resource_of(x), &a);
  EXPECT_EQ(mesa::resource_allocated::resource_of(y), &b);
  EXPECT_EQ(a.live_bytes(), sizeof(node) + mesa::resource_allocated::header_bytes(1));
  delete x;
  delete y;
  EXPECT_EQ(a.live(), 0u);
  EXPECT_EQ(b.live(), 0u);
  EXPECT_EQ(a.mismatches() + b.mismatches() + a.foreign_frees() + b.foreign_frees(), 0u);
}

TEST(ResourceAllocated, DeletingDerivedThroughBaseFreesTheDerivedSize) {
  checking_resource r;
  node::destroyed = 0;
  node *n = new (&r) big_node(&r);
  static_cast<big_node *>(n)->names.emplace_back(
      "long enough to allocate from the same resource, not the heap");
  EXPECT_EQ(r.live(), 3u);  // the object, the vector's buffer, the string
  delete n;
  EXPECT_EQ(node::destroyed, 1);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(ResourceAllocated, Arrays) {
  checking_resource r;
  node::destroyed = 0;
  node *many = new (&r) node[5];
  EXPECT_EQ(r.live(), 1u);
  EXPECT_GE(r.live_bytes(), 5 * sizeof(node) + mesa::resource_allocated::header_bytes(1));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(many[i].value, 0);
  delete[] many;
  EXPECT_EQ(node::destroyed, 5);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

TEST(ResourceAllocated, OverAlignedTypes) {
  checking_resource r;
  wide *w = new (&r) wide();
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(w) % 128, 0u);
  EXPECT_EQ(r.live_bytes(), sizeof(wide) + 128);
  delete w;
  wide *ws = new (&r) wide[3];
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ws) % 128, 0u);
  delete[] ws;
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

// Refuses everything, and remembers the largest request it was asked for.
class refusing_resource final : public std::pmr::memory_resource {
 public:
  std::size_t largest = 0;

 private:
  void *do_allocate(std::size_t bytes, std::size_t) override {
    if (bytes > largest) largest = bytes;
    throw std::bad_alloc();
  }
  void do_deallocate(void *, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource &o) const noexcept override {
    return this == &o;
  }
};

// A size within the header of SIZE_MAX is refused before the resource is asked: passed on, it
// reached libstdc++'s new_delete_resource, whose aligned new rounds such a size up to a tiny
// block, and the header and object were written past it.
TEST(ResourceAllocated, ASizeNearSizeMaxIsRefusedBeforeTheResourceIsAsked) {
  for (std::size_t alignment :
       {std::size_t{1}, std::size_t{16}, std::size_t{64}, std::size_t{4096}}) {
    for (std::size_t slack :
         {std::size_t{0}, std::size_t{10}, std::size_t{74}, std::size_t{5000}, SIZE_MAX / 2 - 8}) {
      refusing_resource r;
      const std::size_t size = SIZE_MAX - slack;
      EXPECT_THROW(mesa::resource_allocated::operator new(size, std::align_val_t(alignment), &r),
                   std::bad_alloc)
          << "alignment " << alignment << " size " << size;
      EXPECT_EQ(r.largest, 0u) << "alignment " << alignment << " size " << size;
    }
  }
  refusing_resource r;
  EXPECT_THROW(mesa::resource_allocated::operator new(1000, &r), std::bad_alloc);
  EXPECT_EQ(r.largest, 1000 + mesa::resource_allocated::header_bytes(1)) << "a positive control";
}

TEST(ResourceAllocated, ThrowingConstructorReturnsTheBlock) {
  checking_resource r;
  EXPECT_THROW(new (&r) throws(), std::runtime_error);
  EXPECT_EQ(r.allocations(), 1u);
  EXPECT_EQ(r.live(), 0u);
  EXPECT_EQ(r.mismatches(), 0u);
}

struct plain_node : mesa::resource_allocated {
  int value = 0;
};

TEST(ResourceAllocatedDeathTest, NewWithANullResourceSaysSo) {
  std::pmr::memory_resource *none = nullptr;
  EXPECT_DEATH((void)new (none) plain_node(),
               "mesa_alloc: resource_allocated::operator new: no resource \\(null\\)");
}

TEST(ResourceAllocated, DeleteOfNullIsANoOp) {
  node *n = nullptr;
  delete n;
  node *a = nullptr;
  delete[] a;
}

}  // namespace
