/* The C API and the u_memory.h macros compiled as C11: proves the headers are C, and exercises
 * them from C with the default and a custom table. Exits non-zero on the first failure. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/poison.h"
#include "mesa_alloc/u_memory.h"
#include "tests/support/c_check.h"

struct counter {
  int allocs, reallocs, frees;
};

static void *count_alloc(void *user_data, size_t size, size_t alignment, mesa_alloc_scope scope) {
  struct counter *c = user_data;
  c->allocs++;
  return mesa_libc_allocator()->alloc_fn(NULL, size, alignment, scope);
}

static int refuse_reallocs;

static void *count_realloc(void *user_data, void *ptr, size_t size, size_t alignment,
                           mesa_alloc_scope scope) {
  struct counter *c = user_data;
  c->reallocs++;
  if (refuse_reallocs) return NULL;
  return mesa_libc_allocator()->realloc_fn(NULL, ptr, size, alignment, scope);
}

static void count_free(void *user_data, void *ptr) {
  struct counter *c = user_data;
  if (ptr) c->frees++;
  mesa_libc_allocator()->free_fn(NULL, ptr);
}

static size_t refused_size;

static void *refuse_alloc(void *user_data, size_t size, size_t alignment, mesa_alloc_scope scope) {
  (void)user_data, (void)alignment, (void)scope;
  refused_size = size;
  return NULL;
}

struct screen {
  int id;
  float scale;
};

struct shader {
  int length;
  char code[];
};

int main(void) {
  struct counter counts = {0, 0, 0};
  const mesa_allocator table = {&counts, count_alloc, count_realloc, count_free, NULL, NULL};
  const mesa_allocator *previous = mesa_set_default_allocator(&table);

  struct screen *s = CALLOC_STRUCT(screen);
  CHECK(s != NULL && s->id == 0 && s->scale == 0.0f);
  struct screen *m = MALLOC_STRUCT(screen);
  CHECK(m != NULL);
  struct shader *sh = CALLOC_VARIANT_LENGTH_STRUCT(shader, 64);
  CHECK(sh != NULL && sh->code[63] == 0);
  char *buf = MALLOC(8);
  memcpy(buf, "abcdefg", 8);
  buf = REALLOC(buf, 8, 4096);
  CHECK(buf != NULL && strcmp(buf, "abcdefg") == 0);
  float *weights = align_malloc(100 * sizeof(float), 64);
  CHECK(weights != NULL && ((uintptr_t)weights & 63) == 0);
  weights = align_realloc(weights, 100 * sizeof(float), 5000 * sizeof(float), 64);
  CHECK(weights != NULL && ((uintptr_t)weights & 63) == 0);
  double *zeros = align_calloc(32 * sizeof(double), 128);
  CHECK(zeros != NULL && zeros[31] == 0.0 && ((uintptr_t)zeros & 127) == 0);
  int *dup = mem_dup(&counts.allocs, sizeof(int));
  CHECK(dup != NULL && *dup == 7); /* copied after its own MALLOC counted */
  char *name = mesa_strdup("lavapipe");
  CHECK(name != NULL && strcmp(name, "lavapipe") == 0);
  CHECK(CALLOC(SIZE_MAX, 2) == NULL);

  CHECK(counts.allocs == 8);
  CHECK(counts.reallocs == 2);

  FREE(s);
  FREE(m);
  FREE(sh);
  FREE(buf);
  align_free(weights);
  align_free(zeros);
  FREE(dup);
  mesa_free(name);
  FREE(NULL);
  CHECK(counts.frees == 8);

  void *p = mesa_alloc2(NULL, &table, 16, 16, MESA_ALLOC_SCOPE_CACHE);
  mesa_free2(&table, NULL, p);
  CHECK(counts.allocs == 9 && counts.frees == 9);
  CHECK(mem_dup(NULL, 16) == NULL && mem_dup(NULL, 0) == NULL); /* NULL in, NULL out */
  void *empty = mem_dup(&table, 0);                             /* a zero-size block */
  CHECK(empty != NULL && counts.allocs == 10);
  FREE(empty);

  /* Mesa's cache-line names: aligned to CACHE_LINE_SIZE, through the same table. */
  struct counter {
    EXCLUSIVE_CACHELINE(unsigned value);
    EXCLUSIVE_CACHELINE(unsigned other);
  };
  CHECK(sizeof(struct counter) == 2 * CACHE_LINE_SIZE);
  CHECK(MESA_CACHE_LINE_SIZE == CACHE_LINE_SIZE);
  CHECK(Offset(struct counter, other) == CACHE_LINE_SIZE);
  struct counter *c = CALLOC_STRUCT_CL(counter);
  CHECK(c != NULL && ((uintptr_t)c & (CACHE_LINE_SIZE - 1)) == 0 && c->value == 0);
  struct screen *cl = MALLOC_STRUCT_CL(screen);
  CHECK(cl != NULL && ((uintptr_t)cl & (CACHE_LINE_SIZE - 1)) == 0);
  CHECK(counts.allocs == 12);
  FREE_CL(c);
  FREE_CL(cl);
  CHECK(counts.frees == 12);

  /* align_realloc keeps Mesa's rules (os_realloc_aligned): the old block is freed whether or
   * not the new one could be had, so Mesa code that drops its pointer on NULL does not leak,
   * and a new size of 0 gives a new zero-size block. */
  float *doomed = align_malloc(64, 64);
  const int frees_before = counts.frees;
  refuse_reallocs = 1;
  CHECK(align_realloc(doomed, 64, 4096, 64) == NULL);
  refuse_reallocs = 0;
  CHECK(counts.frees == frees_before + 1);
  float *emptied = align_malloc(64, 64);
  emptied = align_realloc(emptied, 64, 0, 64);
  CHECK(emptied != NULL && ((uintptr_t)emptied & 63) == 0 && counts.frees == frees_before + 2);
  align_free(emptied);

  /* A variable length that overflows the total asks for SIZE_MAX (which fails) instead of
   * wrapping to a short block. (A table that refuses: ASan aborts on malloc(SIZE_MAX).) */
  const mesa_allocator refusing = {NULL, refuse_alloc, count_realloc, count_free, NULL, NULL};
  mesa_set_default_allocator(&refusing);
  CHECK(CALLOC_VARIANT_LENGTH_STRUCT(shader, SIZE_MAX - 2) == NULL);
  CHECK(refused_size == SIZE_MAX);

  CHECK(mesa_set_default_allocator(previous) == &refusing);
  if (check_failures == 0) printf("c_api_c_test: all checks passed\n");
  return check_failures == 0 ? 0 : 1;
}
