/* c_driver_demo — runs the c_driver's frame loop on whatever allocator the process has (the
 * libc table, or the stack MESA_ALLOC_DEBUG builds, e.g. MESA_ALLOC_DEBUG=cookie,leaks,stats).
 * With --leak it also leaks one buffer on purpose, for MESA_ALLOC_DEBUG=leaks to report.
 *
 *   bazel run //examples/c_driver:c_driver_demo -- [frames] [--leak]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/c_driver/c_driver.h"

int main(int argc, char **argv) {
  const int frames = argc > 1 ? atoi(argv[1]) : 10;
  const int leak = argc > 2 && strcmp(argv[2], "--leak") == 0;
  uint64_t checksum = 0;
  if (drv_run_workload(frames, &checksum) != 0) {
    fprintf(stderr, "c_driver_demo: out of memory\n");
    return 1;
  }
  printf("c_driver_demo: %d frames, checksum %016llx\n", frames, (unsigned long long)checksum);
  if (leak) {
    struct drv_screen *screen = drv_screen_create("leaky");
    if (screen == NULL || drv_resource_create(screen, 1000) == NULL) return 1;
    printf("c_driver_demo: leaked a 1000-byte buffer and its screen\n");
  }
  return 0;
}
