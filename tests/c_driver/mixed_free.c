/* A driver file that mixes allocators, the bug that got Gallium's debug allocator switched off:
 * a block from libc's malloc released with FREE. Built like the c_driver (poison.h forced on)
 * it does not compile: malloc is poisoned. Built with the opt-out (MESA_ALLOC_ALLOW_LIBC) it
 * compiles and even appears to work on the libc default, but MESA_ALLOC_DEBUG=cookie stops it
 * at the FREE with "mesa_alloc: invalid free". See mixed_free_test.sh. */
#include <stdio.h>
#include <stdlib.h>

#include "mesa_alloc/u_memory.h"

struct drv_query {
  int id;
  unsigned long long result;
};

int main(void) {
  struct drv_query *query = malloc(sizeof(*query)); /* should be CALLOC_STRUCT(drv_query) */
  if (query == NULL) return 1;
  query->id = 7;
  query->result = 0;
  printf("mixed_free: freeing a malloc'd query with FREE\n");
  fflush(stdout);
  FREE(query);
  printf("mixed_free: survived\n");
  return 0;
}
