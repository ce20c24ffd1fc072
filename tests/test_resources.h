// Test helpers for the fast-resource suites: a counting upstream that checks every deallocate
// against its allocate and can be told to fail, a C table over it, and a shadow map that
// detects overlapping live blocks.
#ifndef MESA_TESTS_TEST_RESOURCES_H_
#define MESA_TESTS_TEST_RESOURCES_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory_resource>
#include <mutex>
#include <new>
#include <string>

#include "gtest/gtest.h"
#include "mesa_alloc/mesa_alloc.h"

namespace mesa_test {

// Thread-safe. Records (size, alignment) per live block; a mismatched deallocate is a test
// failure. fail_after(n): the allocations after the next n fail with std::bad_alloc.
class counting_resource final : public std::pmr::memory_resource {
 public:
  ~counting_resource() override { EXPECT_TRUE(live_.empty()) << live_.size() << " blocks leaked"; }

  std::size_t bytes_in_use() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_in_use_;
  }
  std::size_t blocks_in_use() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.size();
  }
  std::size_t allocations() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return allocations_;
  }
  std::size_t largest_request() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return largest_;
  }
  void fail_after(long n) {
    std::lock_guard<std::mutex> lock(mutex_);
    fail_after_ = n;
  }

 private:
  struct record {
    std::size_t size;
    std::size_t alignment;
  };

  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fail_after_ == 0) throw std::bad_alloc();
    if (fail_after_ > 0) --fail_after_;
    void *p = std::pmr::new_delete_resource()->allocate(bytes, alignment);
    live_[p] = record{bytes, alignment};
    bytes_in_use_ += bytes;
    ++allocations_;
    if (bytes > largest_) largest_ = bytes;
    return p;
  }
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(p);
      if (it == live_.end()) {
        ADD_FAILURE() << "deallocate of unknown block " << p;
        return;
      }
      EXPECT_EQ(it->second.size, bytes);
      EXPECT_EQ(it->second.alignment, alignment);
      bytes_in_use_ -= it->second.size;
      live_.erase(it);
    }
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  mutable std::mutex mutex_;
  std::map<void *, record> live_;
  std::size_t bytes_in_use_ = 0;
  std::size_t allocations_ = 0;
  std::size_t largest_ = 0;
  long fail_after_ = -1;
};

// A C table over libc that counts live blocks and can fail.
struct counting_table {
  mesa_allocator table;
  long live = 0;
  long fail_after = -1;

  counting_table() : table{this, &alloc, &realloc, &free, nullptr, nullptr} {}

  static void *alloc(void *user, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) {
    auto *self = static_cast<counting_table *>(user);
    if (self->fail_after == 0) return nullptr;
    if (self->fail_after > 0) --self->fail_after;
    const mesa_allocator *libc = mesa_libc_allocator();
    void *p = libc->alloc_fn(libc->user_data, size, alignment, scope);
    if (p != nullptr) ++self->live;
    return p;
  }
  static void *realloc(void *user, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    const mesa_allocator *libc = mesa_libc_allocator();
    if (ptr == nullptr) return alloc(user, size, alignment, scope);
    if (size == 0) {
      free(user, ptr);
      return nullptr;
    }
    return libc->realloc_fn(libc->user_data, ptr, size, alignment, scope);
  }
  static void free(void *user, void *ptr) {
    if (ptr == nullptr) return;
    --static_cast<counting_table *>(user)->live;
    const mesa_allocator *libc = mesa_libc_allocator();
    libc->free_fn(libc->user_data, ptr);
  }
};

// Live blocks by start address; insert() fails the test when a block overlaps a live one.
class shadow_map {
 public:
  void insert(void *p, std::size_t size) {
    auto begin = reinterpret_cast<std::uintptr_t>(p);
    auto next = blocks_.lower_bound(begin);
    if (next != blocks_.end()) {
      ASSERT_GE(next->first, begin + size) << "block " << p << " overlaps a live block";
    }
    if (next != blocks_.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second, begin) << "block " << p << " overlaps a live block";
    }
    blocks_[begin] = size;
  }
  void erase(void *p) { blocks_.erase(reinterpret_cast<std::uintptr_t>(p)); }
  std::size_t size() const { return blocks_.size(); }

 private:
  std::map<std::uintptr_t, std::size_t> blocks_;
};

// `value`, read back through a volatile so that the compiler cannot see it: for a bad alignment
// passed on purpose, which clang refuses to compile when it is a constant
// (-Wnon-power-of-two-alignment).
inline std::size_t unseen(std::size_t value) {
  volatile std::size_t v = value;
  return v;
}

inline bool is_aligned(const void *p, std::size_t alignment) {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

// Through std::pmr, `resource` refuses alignments that are not a power of two (small and large
// requests alike) with std::bad_alloc, without asking `upstream` for anything.
inline void expect_pmr_refuses_bad_alignment(std::pmr::memory_resource &resource,
                                             const counting_resource &upstream) {
  const std::size_t before = upstream.allocations();
  for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{24}}) {
    for (std::size_t bytes : {std::size_t{8}, std::size_t{100000}}) {
      EXPECT_THROW((void)resource.allocate(bytes, alignment), std::bad_alloc)
          << bytes << " bytes @" << alignment;
    }
  }
  EXPECT_EQ(upstream.allocations(), before);
}

// Runs `body` and returns what it printed on stderr.
template <class Body>
std::string stderr_of(Body body) {
  testing::internal::CaptureStderr();
  body();
  return testing::internal::GetCapturedStderr();
}

// The one line a resource prints when it refuses a free (internal/diagnostics.h):
// "mesa_alloc: <what> at <p> <where>: <why>; the block is left alone".
inline std::string refused_line(const std::string &what, const void *p, const std::string &where,
                                const std::string &why) {
  char address[32];
  std::snprintf(address, sizeof address, "%p", p);
  return "mesa_alloc: " + what + " at " + address + " " + where + ": " + why +
         "; the block is left alone\n";
}
// The line a resource_callbacks table prints when it refuses a block without its tag (`what`:
// "invalid free" or "invalid realloc"; `table`: what the line calls the table, "mesa_arena" for
// mesa_arena_create's).
inline std::string not_a_live_block_line(const std::string &what, const void *p,
                                         const std::string &table = "resource_callbacks") {
  return refused_line(what, p, "through a " + table + " table",
                      "not a live block of this table (allocated through another table, freed "
                      "and its memory reused, freed by a release of the whole table, or not a "
                      "block's start)");
}
// The same for a double free (internal/free_list.h) of a block of `size` bytes, `where` being
// e.g. "in mesa::slab_child".
inline std::string double_free_line(const void *p, std::size_t size, const std::string &where) {
  return refused_line("double free", p, where,
                      "the " + std::to_string(size) + "-byte block is already free");
}

}  // namespace mesa_test

#endif  // MESA_TESTS_TEST_RESOURCES_H_
