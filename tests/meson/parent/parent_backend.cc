// The parent project's C++ program, built as Mesa builds its C++ when LLVM has no RTTI
// (cpp_rtti=false in the parent's meson.build, so -fno-rtti): a compiler-style pass on mesa
// containers over a tracking table, a slab pool shared by two children, and the C debug layer.
// Each line printed is a check; any failure makes it exit 1.
#include <cstdio>
#include <memory_resource>

#include "containers/containers.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/slab_parent.h"

#if defined(__GXX_RTTI) || defined(__cpp_rtti)
#error "this program checks mesa_alloc under -fno-rtti; the parent project must set cpp_rtti=false"
#endif

namespace {

int failures = 0;

void check(bool ok, const char *what) {
  std::printf("parent_backend: %s: %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

}  // namespace

int main() {
  const mesa_allocator *tracker = mesa_tracking_create(nullptr, "parent_backend", nullptr);
  {
    mesa::callback_resource resource(tracker);
    mesa::vector<int> values(&resource);
    mesa::flat_hash_map<int, int> numbering(&resource);
    for (int i = 0; i < 1000; ++i) {
      values.push_back(i);
      numbering[i % 97] += i;
    }
    mesa_tracking_stats stats;
    check(mesa_tracking_get_stats(tracker, &stats) == 1 && stats.blocks_in_use >= 2,
          "containers allocate through the tracking table");

    mesa::callback_resource same_table(tracker, MESA_ALLOC_SCOPE_DEVICE);
    check(resource.is_equal(same_table) && !resource.is_equal(*std::pmr::new_delete_resource()),
          "callback_resources on one table are equal, others are not");

    mesa::slab_parent pool(&resource, 48);
    mesa::slab_child first(&pool), second(&pool);
    mesa::slab_parent other_pool(&resource, 48);
    mesa::slab_child stranger(&other_pool);
    check(first.is_equal(second) && !first.is_equal(stranger) && !first.is_equal(resource),
          "children of one slab parent are equal, others are not");
  }
  mesa_tracking_stats stats;
  check(mesa_tracking_get_stats(tracker, &stats) == 1 && stats.bytes_in_use == 0,
        "everything came back");
  mesa_tracking_destroy(tracker);

  const mesa_allocator *debug = mesa_debug_create(nullptr, nullptr);
  void *p = mesa_alloc2(debug, nullptr, 64, 16, MESA_ALLOC_SCOPE_OBJECT);
  check(p != nullptr && mesa_debug_report_leaks(debug) == 1, "the debug table reports a leak");
  mesa_free2(debug, nullptr, p);
  mesa_debug_destroy(debug);
  return failures == 0 ? 0 : 1;
}
