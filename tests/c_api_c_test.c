/* The C API and the u_memory.h macros compiled as C11: proves the headers are C, and exercises
 * them from C with the default and a custom table. Exits non-zero on the first failure. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/poison.h"
#include "mesa_alloc/u_memory.h"
#include "tests/support/c_check.h"
#include "tests/support/c_counting_table.h"

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
  struct c_counts counts = {0, 0, 0, 0};
  const mesa_allocator table = c_counting_table(&counts);
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
  CHECK(dup != NULL && *dup == 8); /* copied after its own MALLOC counted */
  char *name = mesa_strdup("lavapipe");
  CHECK(name != NULL && strcmp(name, "lavapipe") == 0);
  CHECK(CALLOC(SIZE_MAX, 2) == NULL);

  CHECK(counts.allocs == 9); /* align_realloc allocates, copies and frees, as Mesa's */
  CHECK(counts.reallocs == 1 && counts.frees == 1);

  FREE(s);
  FREE(m);
  FREE(sh);
  FREE(buf);
  align_free(weights);
  align_free(zeros);
  FREE(dup);
  mesa_free(name);
  FREE(NULL);
  CHECK(counts.frees == 9);

  void *p = mesa_alloc2(NULL, &table, 16, 16, MESA_ALLOC_SCOPE_CACHE);
  mesa_free2(&table, NULL, p);
  CHECK(counts.allocs == 10 && counts.frees == 10);
  CHECK(mem_dup(NULL, 16) == NULL); /* Mesa's would read address 0 */
  void *empty = mem_dup(&table, 0); /* a zero-size block */
  CHECK(empty != NULL && counts.allocs == 11);
  FREE(empty);
  void *empty_array = mem_dup(NULL, 0); /* Mesa's: an empty array's copy is a block too */
  CHECK(empty_array != NULL && counts.allocs == 12);
  FREE(empty_array);

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
  CHECK(counts.allocs == 14);
  FREE_CL(c);
  FREE_CL(cl);
  CHECK(counts.frees == 14);

  /* align_realloc keeps Mesa's rules (os_realloc_aligned): the old block is freed whether or
   * not the new one could be had, so Mesa code that drops its pointer on NULL does not leak,
   * and a new size of 0 gives a new zero-size block. */
  float *doomed = align_malloc(64, 64);
  const int frees_before = counts.frees;
  counts.refuse_allocs = 1;
  CHECK(align_realloc(doomed, 64, 4096, 64) == NULL);
  counts.refuse_allocs = 0;
  CHECK(counts.frees == frees_before + 1);
  float *emptied = align_malloc(64, 64);
  emptied = align_realloc(emptied, 64, 0, 64);
  CHECK(emptied != NULL && ((uintptr_t)emptied & 63) == 0 && counts.frees == frees_before + 2);
  align_free(emptied);
  /* It copies min(old size, new size) bytes into a new block of the new alignment, and never
   * reallocates: a realloc to another alignment is one Vulkan forbids a driver to make. */
  unsigned char *bytes = align_malloc(16, 16);
  memset(bytes, 7, 16);
  const int reallocs_before = counts.reallocs;
  bytes = align_realloc(bytes, 16, 4096, 256);
  CHECK(bytes != NULL && ((uintptr_t)bytes & 255) == 0 && bytes[0] == 7 && bytes[15] == 7);
  bytes = align_realloc(bytes, 4096, 8, 32);
  CHECK(bytes != NULL && ((uintptr_t)bytes & 31) == 0 && bytes[7] == 7);
  CHECK(counts.reallocs == reallocs_before);
  align_free(bytes);
  /* Mesa's alignment rule: rounded up to a multiple of sizeof(void *) first, so 3 works (as
   * sizeof(void *)); 12 works on 64-bit (as 16) and fails on 32-bit (12, no power of two), and
   * 24 fails on 64-bit, as they do in Mesa. */
  void *odd = align_malloc(40, 3);
  CHECK(odd != NULL && ((uintptr_t)odd & (sizeof(void *) - 1)) == 0);
  align_free(odd);
  void *twelve = align_calloc(40, 12);
  if (sizeof(void *) == 8) {
    CHECK(twelve != NULL && ((uintptr_t)twelve & 15) == 0);
    CHECK(align_malloc(40, 24) == NULL);
  } else {
    CHECK(twelve == NULL);
  }
  align_free(twelve);

  /* A variable length that overflows the total asks for SIZE_MAX (which fails) instead of
   * wrapping to a short block. (A table that refuses: ASan aborts on malloc(SIZE_MAX).) */
  const mesa_allocator *libc = mesa_libc_allocator();
  const mesa_allocator refusing = {NULL, refuse_alloc, libc->realloc_fn, libc->free_fn, NULL, NULL};
  mesa_set_default_allocator(&refusing);
  CHECK(CALLOC_VARIANT_LENGTH_STRUCT(shader, SIZE_MAX - 2) == NULL);
  CHECK(refused_size == SIZE_MAX);

  CHECK(mesa_set_default_allocator(previous) == &refusing);
  if (check_failures == 0) printf("c_api_c_test: all checks passed\n");
  return check_failures == 0 ? 0 : 1;
}
