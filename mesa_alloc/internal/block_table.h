// Internal: the live-block table of the debug layers — an open-addressing hash map from a user
// pointer to what is known about its block, with its storage taken from an upstream
// std::pmr::memory_resource (never std::allocator, so the core library stays off libc).
//
// Cost: linear probing, load factor at most 1/2, backward-shift deletion (no tombstones);
// 32 bytes per slot; doubles when half full. Not thread-safe: callers hold a lock.
#ifndef MESA_ALLOC_INTERNAL_BLOCK_TABLE_H_
#define MESA_ALLOC_INTERNAL_BLOCK_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace mesa::internal {

struct block_entry {
  const void *user;  // nullptr: empty slot
  void *header;
  std::size_t size;
  std::uint64_t number;
};

class block_table {
 public:
  explicit block_table(std::pmr::memory_resource *storage) noexcept : storage_(storage) {}
  ~block_table() { release(); }
  block_table(const block_table &) = delete;
  block_table &operator=(const block_table &) = delete;

  // False when the table could not grow (the upstream failed). Fields one by one: a struct
  // just built on the stack and copied whole stalls on store forwarding.
  bool insert(const void *user, void *header, std::size_t size, std::uint64_t number) noexcept {
    if ((count_ + 1) * 2 > capacity_ && !grow()) return false;
    const std::size_t mask = capacity_ - 1;
    std::size_t i = home(user);
    while (slots_[i].user != nullptr) i = (i + 1) & mask;
    slots_[i].user = user;
    slots_[i].header = header;
    slots_[i].size = size;
    slots_[i].number = number;
    ++count_;
    return true;
  }
  // Removes the entry of `user` into *out; false if absent.
  bool erase(const void *user, block_entry *out) noexcept {
    const block_entry *found = find(user);
    if (found == nullptr) return false;
    *out = *found;
    const std::size_t mask = capacity_ - 1;
    std::size_t hole = static_cast<std::size_t>(found - slots_);
    // Backward shift: move later entries of the probe run into the hole when their home allows.
    for (std::size_t i = (hole + 1) & mask; slots_[i].user != nullptr; i = (i + 1) & mask) {
      const std::size_t h = home(slots_[i].user);
      const bool movable = hole <= i ? (h <= hole || h > i) : (h <= hole && h > i);
      if (movable) {
        slots_[hole] = slots_[i];
        hole = i;
      }
    }
    slots_[hole] = block_entry{};
    --count_;
    return true;
  }
  const block_entry *find(const void *user) const noexcept {
    if (capacity_ == 0) return nullptr;
    const std::size_t mask = capacity_ - 1;
    for (std::size_t i = home(user); slots_[i].user != nullptr; i = (i + 1) & mask)
      if (slots_[i].user == user) return &slots_[i];
    return nullptr;
  }
  // The entry itself, to change its size (a block shrunk in place).
  block_entry *find(const void *user) noexcept {
    return const_cast<block_entry *>(static_cast<const block_table *>(this)->find(user));
  }
  std::size_t size() const noexcept { return count_; }
  // Calls f(const block_entry &) for each entry.
  template <class F>
  void for_each(F &&f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i].user != nullptr) f(slots_[i]);
  }
  void release() noexcept;

 private:
  std::size_t home(const void *user) const noexcept {
    const auto x = reinterpret_cast<std::uintptr_t>(user) >> 4;
    return static_cast<std::size_t>((x * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  bool grow() noexcept;

  std::pmr::memory_resource *storage_;
  block_entry *slots_ = nullptr;
  std::size_t capacity_ = 0;  // a power of two
  std::size_t count_ = 0;
  int shift_ = 64;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_BLOCK_TABLE_H_
