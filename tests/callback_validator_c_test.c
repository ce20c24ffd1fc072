/* The validator from C11: a correct caller gets no violation, a double free exactly one (and
 * the listener hears its line at once), and a table that is not a validator's is refused
 * without a crash. */
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/callback_validator.h"
#include "tests/support/c_check.h"

struct heard {
  int count;
  char line[256];
};

static void listen(void *context, const char *line) {
  struct heard *h = (struct heard *)context;
  h->count++;
  snprintf(h->line, sizeof h->line, "%s", line);
}

int main(void) {
  const mesa_allocator *checked = mesa_validator_create(mesa_libc_allocator());
  CHECK(checked != NULL);
  mesa_validator_set_call(checked, "c_driver_create");
  void *p = mesa_alloc2(NULL, checked, 64, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *q = mesa_alloc2(NULL, checked, 32, 8, MESA_ALLOC_SCOPE_COMMAND);
  CHECK(p != NULL && q != NULL);
  mesa_free2(NULL, checked, q);
  CHECK(mesa_validator_checkpoint(checked, 1u << MESA_ALLOC_SCOPE_COMMAND) == 0);
  CHECK(mesa_validator_violation_count(checked) == 0);

  struct heard h = {0, ""};
  mesa_validator_set_listener(checked, listen, &h);
  mesa_validator_set_call(checked, "c_driver_destroy");
  mesa_free2(NULL, checked, p);
  CHECK(h.count == 0);
  mesa_free2(NULL, checked, p); /* double free: reported, not passed on */
  CHECK(h.count == 1);
  CHECK(mesa_validator_violation_count(checked) == 1);
  char line[256];
  CHECK(mesa_validator_format(checked, 0, line, sizeof line) > 0);
  CHECK(strncmp(line, "free_freed_pointer in c_driver_destroy: free(", 45) == 0);
  CHECK(strcmp(h.line, line) == 0);
  mesa_validator_set_listener(checked, NULL, NULL);
  mesa_validator_set_listener(mesa_libc_allocator(), listen, &h); /* not a validator: ignored */
  /* A NULL buffer is taken as size 0: the length alone, nothing written. */
  CHECK(mesa_validator_format(checked, 0, NULL, sizeof line) == (int)strlen(line));
  CHECK(mesa_validator_format(checked, 1, line, sizeof line) == -1);
  CHECK(mesa_validator_checkpoint(checked, 0x1f) == 0);

  /* Not a validator's table: refused. */
  CHECK(mesa_validator_violation_count(mesa_libc_allocator()) == 0);
  CHECK(mesa_validator_format(mesa_libc_allocator(), 0, line, sizeof line) == -1);
  mesa_validator_destroy(mesa_libc_allocator());
  mesa_validator_destroy(checked);
  if (check_failures == 0) printf("callback_validator_c_test: all checks passed\n");
  return check_failures == 0 ? 0 : 1;
}
