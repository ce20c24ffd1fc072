// hello_alloc — the smallest tour of mesa_alloc: a C table, the default, the u_memory.h macros,
// and C++ containers on a callback_resource, with every call counted and printed.
//
//   bazel run //examples:hello_alloc
#include <cstdio>
#include <memory_resource>
#include <string>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/resource_callbacks.h"
#include "mesa_alloc/u_memory.h"

namespace {

// An application-style table that forwards to libc and prints each call, as a Vulkan
// application's VkAllocationCallbacks might.
struct app_allocator {
  int allocations = 0, frees = 0;
};

const char *scope_name(mesa_alloc_scope scope) {
  static const char *const names[] = {"command", "object", "cache", "device", "instance"};
  return names[scope];
}

void *app_alloc(void *user_data, size_t size, size_t alignment, mesa_alloc_scope scope) {
  auto *app = static_cast<app_allocator *>(user_data);
  void *p = mesa_libc_allocator()->alloc_fn(nullptr, size, alignment, scope);
  std::printf("  app alloc   #%d: %5zu bytes, align %3zu, scope %-8s -> %p\n", ++app->allocations,
              size, alignment, scope_name(scope), p);
  return p;
}

void *app_realloc(void *user_data, void *ptr, size_t size, size_t alignment,
                  mesa_alloc_scope scope) {
  (void)user_data;
  void *p = mesa_libc_allocator()->realloc_fn(nullptr, ptr, size, alignment, scope);
  std::printf("  app realloc   : %p -> %5zu bytes -> %p\n", ptr, size, p);
  return p;
}

void app_free(void *user_data, void *ptr) {
  auto *app = static_cast<app_allocator *>(user_data);
  // Numbered apart from the allocations (the n-th free), so not in their "#N" column.
  if (ptr != nullptr) std::printf("  app free      : %p (free %d)\n", ptr, ++app->frees);
  mesa_libc_allocator()->free_fn(nullptr, ptr);
}

struct pipe_screen {
  int id;
  char name[32];
};

}  // namespace

int main() {
  app_allocator app;
  const mesa_allocator table = {&app, app_alloc, app_realloc, app_free, nullptr, nullptr};

  std::printf("1. C code through the default table, made the application's:\n");
  const mesa_allocator *previous = mesa_set_default_allocator(&table);
  pipe_screen *screen = CALLOC_STRUCT(pipe_screen);
  char *label = mesa_strdup("lavapipe screen");
  label = static_cast<char *>(REALLOC(label, 16, 64));
  FREE(label);
  FREE(screen);
  mesa_set_default_allocator(previous);

  std::printf("2. vk_alloc2 rule: object allocator, else device, else default:\n");
  void *p = mesa_alloc2(&table, nullptr, 256, 64, MESA_ALLOC_SCOPE_DEVICE);
  mesa_free2(&table, nullptr, p);

  std::printf("3. C++ containers on a callback_resource over the same table:\n");
  {
    mesa::callback_resource resource(&table, MESA_ALLOC_SCOPE_OBJECT);
    std::pmr::vector<std::pmr::string> passes(&resource);
    passes.reserve(4);
    for (const char *name : {"dominance", "constant folding", "dead code elimination"})
      passes.emplace_back(name);
    std::printf("  %zu pass names stored; the long ones allocated through the table\n",
                passes.size());
  }

  std::printf("4. And back to C: a pmr resource as a table (unsized frees work):\n");
  {
    mesa::callback_resource resource(&table, MESA_ALLOC_SCOPE_CACHE);
    mesa::resource_callbacks callbacks(&resource);
    void *q = mesa_alloc2(nullptr, callbacks.table(), 100, 16, MESA_ALLOC_SCOPE_CACHE);
    mesa_free2(nullptr, callbacks.table(), q);
  }

  std::printf("%d allocations, %d frees: %s\n", app.allocations, app.frees,
              app.allocations == app.frees ? "balanced" : "LEAK");
  return app.allocations == app.frees ? 0 : 1;
}
