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

static int usage(const char *program) {
  fprintf(stderr, "usage: %s [frames (0 to 1000000, default 10)] [--leak]\n", program);
  return 2;
}

int main(int argc, char **argv) {
  int frames = 10;
  int leak = 0, frames_given = 0;
  for (int i = 1; i < argc; ++i) {
    char *end;
    if (strcmp(argv[i], "--leak") == 0) {
      leak = 1;
      continue;
    }
    const long n = strtol(argv[i], &end, 10);
    if (frames_given || end == argv[i] || *end != '\0' || n < 0 || n > 1000000)
      return usage(argv[0]);
    frames = (int)n;
    frames_given = 1;
  }
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
