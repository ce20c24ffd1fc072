// A driver-like shared module for two_copies_test: a whole copy of mesa_alloc linked in
// statically, used through a small C interface, as a Vulkan driver (an ICD) would be. The test
// loads two such modules side by side with RTLD_LOCAL, as the Vulkan loader loads RADV and ANV.
#include <cstddef>
#include <memory_resource>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/synchronized_pool_resource.h"

extern "C" {

void *driver_pool_create() {
  return new mesa::synchronized_pool_resource(std::pmr::new_delete_resource());
}

void *driver_pool_allocate(void *pool, std::size_t bytes) {
  return static_cast<mesa::synchronized_pool_resource *>(pool)->allocate(bytes, 8);
}

void driver_pool_deallocate(void *pool, void *p, std::size_t bytes) {
  static_cast<mesa::synchronized_pool_resource *>(pool)->deallocate(p, bytes, 8);
}

void driver_pool_destroy(void *pool) {
  delete static_cast<mesa::synchronized_pool_resource *>(pool);
}

// A C table over a synchronized pool (a c_handle, told apart from other tables by a per-copy
// tag).
const mesa_allocator *driver_table_create() {
  return mesa_synchronized_pool_create(mesa_default_allocator());
}

void driver_table_destroy(const mesa_allocator *table) { mesa_synchronized_pool_destroy(table); }

const mesa_allocator *driver_set_default_allocator(const mesa_allocator *table) {
  return mesa_set_default_allocator(table);
}

void *driver_malloc(std::size_t bytes) { return mesa_malloc(bytes); }

void driver_free(void *p) { mesa_free(p); }

// A tracking table used on the calling thread (which takes a shard of its counters), as a driver
// tracks each device; 0 when every byte came back.
int driver_tracking_roundtrip() {
  const mesa_allocator *tracker = mesa_tracking_create(nullptr, "device", nullptr);
  if (tracker == nullptr) return -1;
  mesa_free2(nullptr, tracker, mesa_alloc2(nullptr, tracker, 64, 8, MESA_ALLOC_SCOPE_DEVICE));
  mesa_tracking_stats stats;
  mesa_tracking_get_stats(tracker, &stats);
  mesa_tracking_destroy(tracker);
  return stats.bytes_in_use == 0 && stats.total_allocations == 1 ? 0 : 1;
}

}  // extern "C"
