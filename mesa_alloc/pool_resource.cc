#include "mesa_alloc/pool_resource.h"

namespace mesa {

void *pool_resource::allocate_small_slow(std::size_t size_class) {
  const std::size_t size = internal::kSizeClasses.size[size_class];
  // Carve about 1 KiB at a time (at least one block): few trips here, little memory idle.
  const std::size_t batch = size >= 1024 ? 1 : 1024 / size;
  return chunks_.carve(upstream_, size, batch, &free_[size_class]);
}

void pool_resource::deallocate_keyed(internal::free_node *node, std::size_t size_class) noexcept {
  if (internal::refuse_double_free(free_[size_class], node, internal::kSizeClasses.size[size_class],
                                   kName))
    return;
  internal::push_free(free_[size_class], node, key_);
}

void pool_resource::release() noexcept {
  chunks_.release(upstream_);
  large_.release(upstream_);
  for (auto &list : free_) list = nullptr;
}

}  // namespace mesa
