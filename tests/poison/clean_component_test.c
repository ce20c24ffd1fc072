#include <stdio.h>
#include <string.h>

#include "mesa_alloc/u_memory.h"

char *clean_component_join(const char *a, const char *b);

int main(void) {
  char *s = clean_component_join("mesa", "_alloc");
  int ok = s != NULL && strcmp(s, "mesa_alloc") == 0;
  FREE(s);
  printf("clean_component_test: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
