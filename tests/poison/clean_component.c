/* Built with mesa_alloc/poison.h forced on (mesa_cc_library): allocates only through mesa_alloc. */
#include <string.h>

#include "mesa_alloc/u_memory.h"

char *clean_component_join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *out = MALLOC(la + lb + 1);
  if (out == NULL) return NULL;
  memcpy(out, a, la);
  memcpy(out + la, b, lb + 1);
  return out;
}
