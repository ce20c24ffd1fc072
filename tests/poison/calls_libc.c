/* Fixture for poison_test.sh: calls every poisoned function. With mesa_alloc/poison.h
 * force-included this must NOT compile; with MESA_ALLOC_ALLOW_LIBC it must. */
#include <stdlib.h>
#include <string.h>

int main(void) {
  void *a = malloc(16);
  void *b = calloc(2, 8);
  a = realloc(a, 32);
  char *c = strdup("x");
  char *d = strndup("xy", 1);
  void *e = aligned_alloc(64, 64);
  void *f = NULL;
  int r = posix_memalign(&f, 64, 64);
  free(a);
  free(b);
  free(c);
  free(d);
  free(e);
  free(f);
  return r;
}
