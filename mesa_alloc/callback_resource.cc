#include "mesa_alloc/callback_resource.h"

#include <cstdlib>
#include <new>

#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/resource_cast.h"

namespace mesa {

callback_resource::callback_resource(const mesa_allocator *table, mesa_alloc_scope scope) noexcept
    : table_(table != nullptr ? table : mesa_default_allocator()), scope_(scope) {
  // A missing function would be called through address 0 at the first use; say so here.
  if (const char *missing = internal::missing_table_function(table_)) {
    internal::report_incomplete_table("callback_resource", missing);
    std::abort();
  }
  if (static_cast<unsigned>(scope) >= MESA_ALLOC_SCOPE_COUNT)
    internal::report_bad_scope("callback_resource", scope);
}

namespace {

// The table's block, once a layer records stacks: from one of this copy's tables with the
// resource's caller recorded, so that a stack starts in the container's code; inside a C API
// call, with that call's record set aside for a table this copy did not make
// (internal/api_caller.h). Out of line, as only a process with such a layer needs it.
[[gnu::noinline]] void *checked_alloc_from(const mesa_allocator *table, std::size_t bytes,
                                           std::size_t alignment, mesa_alloc_scope scope,
                                           const void *caller) noexcept {
  const internal::resource_call call(table, caller);
  return internal::checked_alloc(table, bytes, alignment, scope, "callback_resource");
}

// The free of a table's block, once a layer records stacks: with the resource's caller recorded,
// as checked_alloc_from, so that a debug layer's report of a bad free starts in the container.
[[gnu::noinline]] void free_from(const mesa_allocator *table, void *p,
                                 const void *caller) noexcept {
  const internal::resource_call call(table, caller);
  table->free_fn(table->user_data, p);
}

}  // namespace

// A request no table may be given (an alignment that is not a power of two, a size no block can
// have) fails here, the table untouched; a misaligned block goes back to the table.
void *callback_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (internal::request_refused(bytes, alignment))
    internal::refuse_request("callback_resource::allocate", alignment);
  void *p = __builtin_expect(internal::callers_wanted(), 0)
                ? checked_alloc_from(table_, bytes, alignment, scope_, __builtin_return_address(0))
                : internal::checked_alloc(table_, bytes, alignment, scope_, "callback_resource");
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void callback_resource::do_deallocate(void *p, std::size_t, std::size_t) {
  if (__builtin_expect(internal::callers_wanted(), 0))
    return free_from(table_, p, __builtin_return_address(0));
  table_->free_fn(table_->user_data, p);
}

bool callback_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
  if (internal::answer_resource_query(other, this)) return false;
  if (this == &other) return true;
  const auto *that = internal::resource_cast<callback_resource>(other);
  return that != nullptr && that->table_ == table_;
}

}  // namespace mesa
