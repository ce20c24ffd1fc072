/* fast_resources.h compiled as C11 (with poison.h on): every create/destroy pair used from C on
 * a counting parent table, which must see every block come back. Exits non-zero on failure. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/fast_resources.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/poison.h"
#include "tests/support/c_check.h"

static long live;

static void *count_alloc(void *user_data, size_t size, size_t alignment, mesa_alloc_scope scope) {
  void *p = mesa_libc_allocator()->alloc_fn(user_data, size, alignment, scope);
  if (p != NULL) live++;
  return p;
}

static void *count_realloc(void *user_data, void *ptr, size_t size, size_t alignment,
                           mesa_alloc_scope scope) {
  (void)user_data;
  (void)ptr;
  (void)size;
  (void)alignment;
  (void)scope;
  return NULL; /* the resources never reallocate through their parent */
}

static void count_free(void *user_data, void *ptr) {
  if (ptr != NULL) live--;
  mesa_libc_allocator()->free_fn(user_data, ptr);
}

static const mesa_allocator counting = {NULL, count_alloc, count_realloc, count_free, NULL, NULL};

/* Allocates and writes blocks of `size`, frees every other one; returns how many succeeded. */
static int churn(const mesa_allocator *table, size_t size, size_t alignment) {
  void *blocks[300];
  int ok = 0;
  for (int i = 0; i < 300; i++) {
    blocks[i] = mesa_alloc2(NULL, table, size, alignment, MESA_ALLOC_SCOPE_OBJECT);
    if (blocks[i] == NULL) continue;
    CHECK((uintptr_t)blocks[i] % alignment == 0);
    memset(blocks[i], i & 0xff, size);
    ok++;
  }
  for (int i = 0; i < 300; i += 2) mesa_free2(NULL, table, blocks[i]);
  return ok;
}

int main(void) {
  const mesa_allocator *arena = mesa_arena_create(&counting);
  CHECK(arena != NULL);
  CHECK(churn(arena, 100, 64) == 300);
  mesa_arena_release(arena);
  CHECK(churn(arena, 24, 8) == 300);
  mesa_arena_destroy(arena);
  CHECK(live == 0);

  const mesa_allocator *slab = mesa_slab_create(&counting, 48);
  CHECK(slab != NULL);
  CHECK(churn(slab, 48, 16) == 300);
  CHECK(mesa_alloc2(NULL, slab, 49, 8, MESA_ALLOC_SCOPE_OBJECT) == NULL);
  mesa_slab_destroy(slab);
  CHECK(live == 0);

  mesa_slab_parent *parent = mesa_slab_parent_create(&counting, 32);
  const mesa_allocator *child = mesa_slab_child_create(parent);
  CHECK(parent != NULL && child != NULL);
  CHECK(churn(child, 32, 16) == 300);
  void *block = mesa_alloc2(NULL, child, 32, 16, MESA_ALLOC_SCOPE_OBJECT);
  CHECK(block != NULL);
  mesa_slab_parent_free(parent, block); /* any thread, through the parent */
  mesa_slab_parent_free(parent, NULL);
  mesa_slab_parent_free(NULL, NULL);
  mesa_slab_child_destroy(child);
  mesa_slab_parent_destroy(parent);
  CHECK(live == 0);

  const mesa_allocator *pool = mesa_pool_create(&counting);
  CHECK(pool != NULL);
  CHECK(churn(pool, 200, 16) == 300);
  CHECK(churn(pool, 10000, 256) == 300);
  mesa_pool_destroy(pool);
  CHECK(live == 0);

  const mesa_allocator *spool = mesa_synchronized_pool_create(&counting);
  CHECK(spool != NULL);
  CHECK(churn(spool, 200, 16) == 300);
  mesa_synchronized_pool_destroy(spool);
  CHECK(live == 0);

  if (check_failures != 0) fprintf(stderr, "%d check(s) failed\n", check_failures);
  return check_failures != 0;
}
