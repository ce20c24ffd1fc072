/* c_counting_table — a mesa_allocator for the C11 tests that counts its calls.
 *
 * What it is for: proving from C that a call reached a given table (the default, say). Each
 * alloc, realloc and free of a non-NULL block is counted in a struct c_counts, the user data;
 * the blocks come from the libc table. Setting refuse_allocs makes alloc return NULL.
 *
 * What it costs: nothing beyond libc. One test translation unit per binary (static functions).
 *
 * Example:
 *   #include "tests/support/c_counting_table.h"
 *   struct c_counts counts = {0, 0, 0, 0};
 *   const mesa_allocator table = c_counting_table(&counts);
 *   mesa_free2(NULL, &table, mesa_alloc2(NULL, &table, 16, 16, MESA_ALLOC_SCOPE_OBJECT));
 *   CHECK(counts.allocs == 1 && counts.frees == 1);
 */
#ifndef MESA_ALLOC_TESTS_SUPPORT_C_COUNTING_TABLE_H_
#define MESA_ALLOC_TESTS_SUPPORT_C_COUNTING_TABLE_H_

#include <stddef.h>

#include "mesa_alloc/mesa_alloc.h"

struct c_counts {
  int allocs, reallocs, frees;
  int refuse_allocs; /* non-zero: alloc returns NULL (still counted) */
};

static void *c_counting_alloc(void *user_data, size_t size, size_t alignment,
                              mesa_alloc_scope scope) {
  struct c_counts *c = (struct c_counts *)user_data;
  c->allocs++;
  if (c->refuse_allocs) return NULL;
  return mesa_libc_allocator()->alloc_fn(NULL, size, alignment, scope);
}

static void *c_counting_realloc(void *user_data, void *ptr, size_t size, size_t alignment,
                                mesa_alloc_scope scope) {
  struct c_counts *c = (struct c_counts *)user_data;
  c->reallocs++;
  return mesa_libc_allocator()->realloc_fn(NULL, ptr, size, alignment, scope);
}

static void c_counting_free(void *user_data, void *ptr) {
  struct c_counts *c = (struct c_counts *)user_data;
  if (ptr) c->frees++;
  mesa_libc_allocator()->free_fn(NULL, ptr);
}

static inline mesa_allocator c_counting_table(struct c_counts *counts) {
  const mesa_allocator table = {counts, c_counting_alloc, c_counting_realloc, c_counting_free, NULL,
                                NULL};
  return table;
}

#endif /* MESA_ALLOC_TESTS_SUPPORT_C_COUNTING_TABLE_H_ */
