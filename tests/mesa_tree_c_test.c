/* A Mesa-style C file in a tree whose util/u_memory.h and util/os_memory.h were changed as
 * docs/MIGRATING.md (section 1) says (tests/mesa_tree): every allocation it makes, through
 * Mesa's macros and through the os_* functions Mesa code also calls directly (sparse_array.c,
 * crocus, nv30), reaches the default table; with poison.h on, and built with -Werror, so that
 * util/macros.h's CACHE_LINE_SIZE after mesa_alloc's is no redefinition. Exits non-zero on the
 * first failure. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/poison.h"
/* First, as new code in Mesa's tree may include it: the os_* names still come with the wrapped
 * util/os_memory.h below (they were defined only at a first inclusion that came through it). */
#include "mesa_alloc/u_memory.h"
#include "tests/support/c_check.h"
#include "tests/support/c_counting_table.h"
#include "util/u_memory.h"
/* After u_memory.h, as most Mesa files reach it (util/u_debug.h includes it). */
#include "util/macros.h"

struct sparse_node {
  EXCLUSIVE_CACHELINE(unsigned refcount);
  unsigned data[16];
};

int main(void) {
  struct c_counts counts = {0, 0, 0, 0};
  const mesa_allocator table = c_counting_table(&counts);
  const mesa_allocator *previous = mesa_set_default_allocator(&table);

  CHECK(CACHE_LINE_SIZE == 64 && MESA_CACHE_LINE_SIZE == CACHE_LINE_SIZE);
  struct sparse_node *node = os_malloc_aligned(sizeof(struct sparse_node), CACHE_LINE_SIZE);
  CHECK(node != NULL && ((uintptr_t)node & (CACHE_LINE_SIZE - 1)) == 0);
  unsigned *zeroed = os_calloc(16, sizeof(unsigned));
  CHECK(zeroed != NULL && zeroed[15] == 0);
  char *name = os_malloc(8);
  CHECK(name != NULL);
  memcpy(name, "crocus", 7);
  name = os_realloc(name, 8, 4096);
  CHECK(name != NULL && strcmp(name, "crocus") == 0);
  node = os_realloc_aligned(node, sizeof(struct sparse_node), 2 * sizeof(struct sparse_node), 128);
  CHECK(node != NULL && ((uintptr_t)node & 127) == 0);
  struct sparse_node *other = CALLOC_STRUCT_CL(sparse_node);
  CHECK(other != NULL && other->refcount == 0);
  CHECK(counts.allocs == 5 && counts.reallocs == 1);

  os_free_aligned(node);
  os_free(zeroed);
  os_free(name);
  FREE_CL(other);
  CHECK(counts.frees == 5); /* the four, and the block os_realloc_aligned moved from */

  CHECK(mesa_set_default_allocator(previous) == &table);
  if (check_failures == 0) printf("mesa_tree_c_test: all checks passed\n");
  return check_failures == 0 ? 0 : 1;
}
