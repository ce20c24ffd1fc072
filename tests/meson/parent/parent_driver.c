/* The parent project's program: Mesa's macros and a vk_alloc2-style call, from the subproject. */
#include <stdio.h>

#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/u_memory.h"

struct pipe_context {
  int id;
};

int main(void) {
  struct pipe_context *ctx = CALLOC_STRUCT(pipe_context);
  void *aligned = mesa_alloc2(mesa_default_allocator(), NULL, 256, 256, MESA_ALLOC_SCOPE_DEVICE);
  int ok = ctx != NULL && ctx->id == 0 && aligned != NULL && ((size_t)aligned & 255) == 0;
  mesa_free2(mesa_default_allocator(), NULL, aligned);
  FREE(ctx);
  printf("parent_driver: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
