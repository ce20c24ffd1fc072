// A tiny C++ program built against the INSTALLED mesa_alloc with nothing but
// `pkg-config --cflags --libs mesa_alloc` (see installed_consumer_test.sh): std::pmr containers
// on a resource over a counting C table, and an arena_allocator from the installed containers/.
#include <cstdio>
#include <memory_resource>
#include <vector>

#include "containers/arena_allocator.h"
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
