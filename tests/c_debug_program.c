/* A small C "driver" run by mesa_alloc_debug_test.sh under MESA_ALLOC_DEBUG. It allocates only
 * through mesa_alloc.h, so the environment decides which layers it runs on. */
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/mesa_alloc.h"

/* Leaks one 40-byte block; everything else is freed. Not inlined: the test looks for its name
 * in the allocation stack. */
__attribute__((noinline)) static void leak_some(void) {
  char *name = mesa_strdup("vertex shader");
  void *kept = mesa_malloc(40);
  memset(kept, 1, 40);
  void *grown = mesa_realloc(mesa_calloc(4, 8), 256);
  mesa_free(grown);
  mesa_free(name);
}

static int overrun(void) {
  volatile unsigned char *p = mesa_malloc(64);
  p[63] = 1;
  p[64] = 1; /* one past the end */
  mesa_free((void *)p);
  return 0;
}

static int underrun(void) {
  volatile unsigned char *p = mesa_malloc(64);
  p[0] = 1;
  p[-1] = 1; /* one before the start */
  mesa_free((void *)p);
  return 0;
}

/* Run only with MESA_ALLOC_DEBUG=quarantine: the freed block waits in the quarantine, so the
 * write lands in memory the debug layer still owns, and it finds it when it checks the
 * quarantine (at exit here, as nothing else is freed). */
static int write_after_free(void) {
  volatile unsigned char *p = mesa_malloc(64);
  mesa_free((void *)p);
  p[7] = 1;
  return 0;
}

/* Run only under a debug layer: the realloc is refused and reported. */
static int realloc_freed(void) {
  void *p = mesa_malloc(16);
  mesa_free(p);
  void *q = mesa_realloc(p, 32);
  return q == NULL ? 0 : 1;
}

static int try_allocations(int count, size_t size) {
  for (int i = 0; i < count; ++i) {
    void *p = mesa_malloc(size);
    if (p == NULL) {
      printf("allocation %d of %zu bytes failed\n", i, size);
      continue;
    }
    mesa_free(p);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "leak";
  if (strcmp(mode, "leak") == 0) {
    leak_some();
    puts("done");
    return 0;
  }
  if (strcmp(mode, "overrun") == 0) return overrun();
  if (strcmp(mode, "underrun") == 0) return underrun();
  if (strcmp(mode, "write_after_free") == 0) return write_after_free();
  if (strcmp(mode, "realloc_freed") == 0) return realloc_freed();
  if (strcmp(mode, "small") == 0) return try_allocations(3, 100);
  if (strcmp(mode, "large") == 0) return try_allocations(2, 5000);
  fprintf(stderr, "usage: %s leak|overrun|underrun|write_after_free|realloc_freed|small|large\n",
          argv[0]);
  return 2;
}
