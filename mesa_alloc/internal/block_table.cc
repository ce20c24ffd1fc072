#include "mesa_alloc/internal/block_table.h"

#include <cstring>

namespace mesa::internal {

bool block_table::grow() noexcept {
  const std::size_t capacity = capacity_ == 0 ? 1024 : capacity_ * 2;
  block_entry *slots;
  try {
    slots = static_cast<block_entry *>(
        storage_->allocate(capacity * sizeof(block_entry), alignof(block_entry)));
  } catch (...) {
    return false;
  }
  std::memset(static_cast<void *>(slots), 0, capacity * sizeof(block_entry));
  block_entry *old = slots_;
  const std::size_t old_capacity = capacity_;
  slots_ = slots;
  capacity_ = capacity;
  shift_ = 64 - __builtin_ctzll(capacity);
  count_ = 0;
  for (std::size_t i = 0; i < old_capacity; ++i)
    if (old[i].user != nullptr) insert(old[i].user, old[i].header, old[i].size, old[i].number);
  if (old != nullptr)
    storage_->deallocate(old, old_capacity * sizeof(block_entry), alignof(block_entry));
  return true;
}

void block_table::release() noexcept {
  if (slots_ != nullptr)
    storage_->deallocate(slots_, capacity_ * sizeof(block_entry), alignof(block_entry));
  slots_ = nullptr;
  capacity_ = 0;
  count_ = 0;
}

}  // namespace mesa::internal
