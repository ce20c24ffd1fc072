/* A tiny C program built against the INSTALLED mesa_alloc with nothing but
 * `pkg-config --cflags --libs mesa_alloc` (see installed_consumer_test.sh), poison.h forced on:
 * Mesa's macros through the default table, and a tracking table counting a component. */
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/u_memory.h"

struct pipe_screen {
  int id;
  char name[16];
};

int main(void) {
  struct pipe_screen *screen = CALLOC_STRUCT(pipe_screen);
  if (screen == NULL || screen->id != 0) return 1;
  strcpy(screen->name, "consumer");
  char *copy = mesa_strdup(screen->name);
  FREE(screen);

  const mesa_allocator *tracker = mesa_tracking_create(NULL, "consumer", NULL);
  void *block = mesa_alloc2(NULL, tracker, 100, 64, MESA_ALLOC_SCOPE_OBJECT);
  mesa_tracking_stats stats;
  mesa_tracking_get_stats(tracker, &stats);
  int ok = copy != NULL && strcmp(copy, "consumer") == 0 && block != NULL &&
           ((size_t)block & 63) == 0 && stats.bytes_in_use == 100 && stats.blocks_in_use == 1;
  mesa_free2(NULL, tracker, block);
  mesa_tracking_destroy(tracker);
  mesa_free(copy);
  printf("consumer.c: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
