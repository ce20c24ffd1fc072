/* debug_resources.h compiled as C11 (with poison.h on): a debug table whose errors go to a C
 * handler that records them (kind, block, number, offset), leak reports through it, and the
 * tracking tables' text and JSON reports read back. Exits non-zero on failure. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mesa_alloc/debug_resources.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/poison.h"
#include "tests/support/c_check.h"

/* The parent table: libc, remembering its live blocks so that the test can see which were held
 * back and give them back at the end. */
static void *parent_blocks[64];

static void *parent_alloc(void *user_data, size_t size, size_t alignment, mesa_alloc_scope scope) {
  void *p = mesa_libc_allocator()->alloc_fn(user_data, size, alignment, scope);
  for (int i = 0; p != NULL && i < 64; i++) {
    if (parent_blocks[i] == NULL) {
      parent_blocks[i] = p;
      return p;
    }
  }
  CHECK(p == NULL); /* more than 64 live blocks: the test is wrong */
  return p;
}

static void *parent_realloc(void *user_data, void *ptr, size_t size, size_t alignment,
                            mesa_alloc_scope scope) {
  (void)user_data;
  (void)ptr;
  (void)size;
  (void)alignment;
  (void)scope;
  return NULL; /* a debug table never reallocates through its parent */
}

static void parent_free(void *user_data, void *ptr) {
  for (int i = 0; ptr != NULL && i < 64; i++) {
    if (parent_blocks[i] == ptr) parent_blocks[i] = NULL;
  }
  mesa_libc_allocator()->free_fn(user_data, ptr);
}

static const mesa_allocator parent = {NULL, parent_alloc, parent_realloc, parent_free, NULL, NULL};

static int parent_live(void) {
  int n = 0;
  for (int i = 0; i < 64; i++) n += parent_blocks[i] != NULL;
  return n;
}

typedef struct recorder {
  int count;
  mesa_debug_error errors[8];
  char details[8][160];
} recorder;

static void record(const mesa_debug_error *error, void *context) {
  recorder *r = (recorder *)context;
  if (r->count == 8) return;
  r->errors[r->count] = *error;
  snprintf(r->details[r->count], sizeof r->details[0], "%s", error->detail);
  r->errors[r->count].detail = r->details[r->count];
  r->count++;
}

static void recording_handler(void) {
  recorder r = {0};
  mesa_debug_options options;
  mesa_debug_options_init(&options);
  CHECK(options.handler == NULL && options.handler_context == NULL);
  options.handler = record;
  options.handler_context = &r;
  options.report_leaks_on_destroy = 0;
  const mesa_allocator *debug = mesa_debug_create(&parent, &options);
  CHECK(debug != NULL);

  unsigned char *a = mesa_alloc2(NULL, debug, 24, 8, MESA_ALLOC_SCOPE_OBJECT);
  mesa_free2(NULL, debug, a);
  mesa_free2(NULL, debug, a); /* double free */
  unsigned char *b = mesa_alloc2(NULL, debug, 40, 8, MESA_ALLOC_SCOPE_OBJECT);
  b[40] = 0; /* overrun by one byte */
  mesa_free2(NULL, debug, b);
  unsigned char *c = mesa_alloc2(NULL, debug, 16, 8, MESA_ALLOC_SCOPE_OBJECT);
  c[-12] ^= 0x40; /* underrun into the header, past the magic */
  mesa_free2(NULL, debug, c);
  void *kept = mesa_alloc2(NULL, debug, 7, 1, MESA_ALLOC_SCOPE_COMMAND);
  CHECK(mesa_debug_report_leaks(debug) == 1);

  CHECK(r.count == 4);
  CHECK(r.errors[0].kind == MESA_DEBUG_DOUBLE_FREE);
  CHECK(r.errors[0].address == a && r.errors[0].size == 24 && r.errors[0].allocation == 1);
  CHECK(r.errors[1].kind == MESA_DEBUG_BUFFER_OVERRUN);
  CHECK(r.errors[1].address == b && r.errors[1].offset == 40 && r.errors[1].allocation == 2);
  CHECK(r.errors[2].kind == MESA_DEBUG_BUFFER_UNDERRUN);
  CHECK(r.errors[2].address == c && r.errors[2].offset == -12 && r.errors[2].allocation == 3);
  CHECK(strstr(r.details[2], "offset -12") != NULL);
  CHECK(r.errors[3].kind == MESA_DEBUG_LEAK);
  CHECK(r.errors[3].address == kept && r.errors[3].size == 7 && r.errors[3].allocation == 4);
  mesa_free2(NULL, debug, kept);
  mesa_debug_destroy(debug);
  /* Only the block with the damaged header was held back (not freed through it). */
  CHECK(parent_live() == 1);
  for (int i = 0; i < 64; i++) parent_free(NULL, parent_blocks[i]);
}

/* The whole of `f` as a string (at most size - 1 bytes). */
static void read_back(FILE *f, char *text, size_t size) {
  rewind(f);
  size_t n = fread(text, 1, size - 1, f);
  text[n] = '\0';
}

static void tracking_reports(void) {
  const mesa_allocator *driver = mesa_tracking_create(NULL, "driver", NULL);
  const mesa_allocator *compiler = mesa_tracking_create(NULL, "compiler", driver);
  CHECK(driver != NULL && compiler != NULL);
  void *p = mesa_alloc2(NULL, compiler, 100, 8, MESA_ALLOC_SCOPE_DEVICE);
  CHECK(p != NULL);

  static char text[4096];
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (f == NULL) return;
  mesa_tracking_print_report(driver, f);
  read_back(f, text, sizeof text);
  /* A header line, then one row per tracker, the child indented under its parent. */
  CHECK(strncmp(text, "tracker ", 8) == 0);
  const char *driver_row = strstr(text, "\ndriver ");
  const char *compiler_row = strstr(text, "\n  compiler ");
  CHECK(driver_row != NULL && compiler_row != NULL && driver_row < compiler_row);
  int bytes_in_use = -1;
  if (compiler_row != NULL) sscanf(compiler_row, " compiler %d", &bytes_in_use);
  CHECK(bytes_in_use == 100);
  fclose(f);

  f = tmpfile();
  CHECK(f != NULL);
  if (f == NULL) return;
  mesa_tracking_print_json(driver, f);
  read_back(f, text, sizeof text);
  CHECK(strncmp(text, "{\"name\":\"driver\",\"bytes_in_use\":100,", 36) == 0);
  CHECK(strstr(text, "\"children\":[{\"name\":\"compiler\",\"bytes_in_use\":100,") != NULL);
  CHECK(strstr(text, "\"device\":{\"bytes_in_use\":100,\"blocks_in_use\":1,") != NULL);
  fclose(f);

  mesa_free2(NULL, compiler, p);
  mesa_tracking_destroy(compiler);
  mesa_tracking_destroy(driver);
}

int main(void) {
  recording_handler();
  tracking_reports();
  return check_failures == 0 ? 0 : 1;
}
