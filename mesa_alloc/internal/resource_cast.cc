#include "mesa_alloc/internal/resource_cast.h"

#include <cstddef>
#include <new>

namespace mesa::internal {
namespace {

// The question: never allocates, equal only to itself. Recognised by its address, which
// find_resource publishes in `current` for as long as the question is asked.
class resource_query final : public std::pmr::memory_resource {
 public:
  explicit resource_query(resource_kind kind) noexcept : kind_(kind) {}

  resource_kind kind() const noexcept { return kind_; }
  const std::pmr::memory_resource *found() const noexcept { return found_; }
  void answer(const std::pmr::memory_resource *resource) noexcept { found_ = resource; }

 private:
  void *do_allocate(std::size_t, std::size_t) override { throw std::bad_alloc(); }
  void do_deallocate(void *, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  const resource_kind kind_;
  const std::pmr::memory_resource *found_ = nullptr;
};

thread_local resource_query *current = nullptr;

}  // namespace

const std::pmr::memory_resource *find_resource(const std::pmr::memory_resource &r,
                                               resource_kind kind) noexcept {
  resource_query query(kind);
  resource_query *outer = current;  // a do_is_equal may itself ask (a cast inside a cast)
  current = &query;
  (void)r.is_equal(query);
  current = outer;
  // Only `r` itself counts: a resource whose do_is_equal hands the question on to its upstream
  // would otherwise make the upstream answer for it.
  return query.found() == &r ? query.found() : nullptr;
}

bool answer_resource_query(const std::pmr::memory_resource &other, resource_kind kind,
                           const std::pmr::memory_resource *self) noexcept {
  resource_query *query = current;
  if (query == nullptr || &other != query) return false;
  if (query->kind() == kind) query->answer(self);
  return true;
}

}  // namespace mesa::internal
