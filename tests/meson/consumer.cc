// A tiny C++ program built against the INSTALLED mesa_alloc with nothing but
// `pkg-config --cflags --libs mesa_alloc` (see installed_consumer_test.sh): std::pmr containers
// on a resource over a counting C table, the installed containers/ (aliases, Abseil's hash map,
// allocate_unique) on the same resource, and an arena_allocator.
#include <cstdio>
#include <memory_resource>
#include <vector>

#include "containers/arena_allocator.h"
#include "containers/containers.h"
#include "containers/unique_ptr.h"
#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/mesa_alloc.h"

namespace {

int allocations = 0;

void *count_alloc(void *, size_t size, size_t alignment, mesa_alloc_scope scope) {
  ++allocations;
  return mesa_libc_allocator()->alloc_fn(nullptr, size, alignment, scope);
}
void *count_realloc(void *, void *ptr, size_t size, size_t alignment, mesa_alloc_scope scope) {
  return mesa_libc_allocator()->realloc_fn(nullptr, ptr, size, alignment, scope);
}
void count_free(void *, void *ptr) { mesa_libc_allocator()->free_fn(nullptr, ptr); }

}  // namespace

int main() {
  const mesa_allocator table = {nullptr, count_alloc, count_realloc, count_free, nullptr, nullptr};
  mesa::callback_resource app(&table);
  bool ok = true;
  {
    std::pmr::vector<int> values(&app);
    for (int i = 0; i < 1000; ++i) values.push_back(i);
    ok = ok && values[999] == 999 && allocations > 0;
  }
  {
    // The container aliases, Abseil's included, and an owning pointer, all on `app`.
    mesa::vector<mesa::string> names(&app);
    names.emplace_back("a name long enough to leave the small-string buffer");
    mesa::flat_hash_map<int, mesa::vector<int>> uses(&app);
    uses[7].push_back(1);
    auto owned = mesa::allocate_unique<int>(&app, 42);
    ok = ok && names[0].size() > 16 && uses[7].size() == 1 && *owned == 42;
  }
  const int before_arena = allocations;
  {
    mesa::arena_resource arena(&app);
    std::vector<int, mesa::arena_allocator<int>> squares(&arena);
    for (int i = 0; i < 100; ++i) squares.push_back(i * i);
    ok = ok && squares[99] == 9801 && allocations > before_arena;
  }
  std::printf("consumer.cc: %s (%d allocations reached the C table)\n", ok ? "ok" : "FAILED",
              allocations);
  return ok ? 0 : 1;
}
