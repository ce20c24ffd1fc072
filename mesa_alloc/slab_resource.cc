#include "mesa_alloc/slab_resource.h"

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/slab_geometry.h"

namespace mesa {

struct slab_resource::page {
  page *next;
};

slab_resource::slab_resource(std::pmr::memory_resource *upstream, std::size_t object_size,
                             std::size_t alignment, std::size_t page_size)
    : upstream_(upstream) {
  if (upstream == nullptr) internal::report_null_resource("slab_resource", "upstream resource");
  const internal::slab_geometry g =
      internal::slab_geometry::make(object_size, alignment, page_size, sizeof(page),
                                    /*power_of_two_pages=*/false);
  object_size_ = g.object_size;
  alignment_ = g.alignment;
  page_size_ = g.page_size;
  first_offset_ = g.first_offset;
}

// Sizes and alignments the slab does not serve; never a bad alignment or a size near SIZE_MAX
// (request_limit.h).
void *slab_resource::allocate_upstream(std::size_t bytes, std::size_t alignment) {
  if (internal::request_refused(bytes, alignment))
    internal::refuse_request("slab_resource::allocate", alignment);
  return upstream_->allocate(bytes, alignment);
}

void *slab_resource::allocate_slow() {
  if (carve_end_ - carve_ < static_cast<std::ptrdiff_t>(object_size_)) {
    const std::size_t page_alignment = alignment_ > alignof(page) ? alignment_ : alignof(page);
    auto *fresh = static_cast<page *>(upstream_->allocate(page_size_, page_alignment));
    fresh->next = pages_;
    pages_ = fresh;
    ++pages_count_;
    carve_ = reinterpret_cast<char *>(fresh) + first_offset_;
    carve_end_ = reinterpret_cast<char *>(fresh) + page_size_;
  }
  auto *object = reinterpret_cast<free_node *>(carve_);
  object->key = 0;  // the page may be memory this slab freed before, keys and all
  carve_ += object_size_;
  return object;
}

void slab_resource::deallocate_keyed(free_node *node) noexcept {
  if (internal::refuse_double_free(free_, node, object_size_, "in mesa::slab_resource")) return;
  internal::push_free(free_, node, key_);
}

void slab_resource::release() noexcept {
  const std::size_t page_alignment = alignment_ > alignof(page) ? alignment_ : alignof(page);
  while (pages_ != nullptr) {
    page *next = pages_->next;
    upstream_->deallocate(pages_, page_size_, page_alignment);
    pages_ = next;
  }
  pages_count_ = 0;
  free_ = nullptr;
  carve_ = carve_end_ = nullptr;
}

}  // namespace mesa
