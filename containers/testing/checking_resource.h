// checking_resource — a test memory_resource that checks every deallocate against its
// allocate: same block, same size, same alignment, allocated here.
//
// What it is for: proving deleters and the mixin free with the right size and alignment, and
// that moves and swaps never free a block through another resource. Mismatches are counted,
// not fatal, so a test can assert on them.
//
// What it costs: a std::map node per live block (from the global heap). Not thread-safe; tests
// only.
//
// Example:
//   mesa::testing::checking_resource checked;
//   { auto p = mesa::allocate_unique<widget>(&checked); }
//   EXPECT_EQ(checked.mismatches(), 0u);
#ifndef MESA_CONTAINERS_TESTING_CHECKING_RESOURCE_H_
#define MESA_CONTAINERS_TESTING_CHECKING_RESOURCE_H_

#include <cstddef>
#include <map>
#include <memory_resource>
#include <utility>

namespace mesa::testing {

class checking_resource final : public std::pmr::memory_resource {
 public:
  struct block {
    std::size_t bytes;
    std::size_t alignment;
  };

  std::size_t allocations() const noexcept { return allocations_; }
  std::size_t live() const noexcept { return live_.size(); }
  std::size_t live_bytes() const noexcept {
    std::size_t total = 0;
    for (const auto &[p, b] : live_) total += b.bytes;
    return total;
  }
  // Frees of blocks this resource did not hand out (e.g. through the wrong resource).
  std::size_t foreign_frees() const noexcept { return foreign_frees_; }
  // Frees whose size or alignment differ from the allocation's.
  std::size_t mismatches() const noexcept { return mismatches_; }
  const block *find(const void *p) const {
    auto it = live_.find(p);
    return it == live_.end() ? nullptr : &it->second;
  }

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    void *p = std::pmr::new_delete_resource()->allocate(bytes, alignment);
    live_.emplace(p, block{bytes, alignment});
    ++allocations_;
    return p;
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    auto it = live_.find(p);
    if (it == live_.end()) {
      ++foreign_frees_;
      return;
    }
    const block b = it->second;
    live_.erase(it);
    if (b.bytes != bytes || b.alignment != alignment) ++mismatches_;
    std::pmr::new_delete_resource()->deallocate(p, b.bytes, b.alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  std::map<const void *, block> live_;
  std::size_t allocations_ = 0;
  std::size_t foreign_frees_ = 0;
  std::size_t mismatches_ = 0;
};

}  // namespace mesa::testing

#endif  // MESA_CONTAINERS_TESTING_CHECKING_RESOURCE_H_
