/* debug_resources.h compiled as C11 (with poison.h on): a debug table whose errors go to a C
 * handler that records them (kind, block, number, offset), leak reports through it, guard pages
 * asked for from C, the tracking tables' text and JSON reports read back, a debug table's shrink
 * over a full tracker's budget, and a logging table's flush. Exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L /* sigsetjmp */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* MESA_DEBUG_GUARD_AFTER from C: an overrun by one byte faults on the guard page, and the
 * handler is told (here it jumps back out of the fault; returning would retry the access). */
static sigjmp_buf g_after_fault;
static recorder g_guard_errors;

static void record_and_leave_the_fault(const mesa_debug_error *error, void *context) {
  record(error, context);
  siglongjmp(g_after_fault, 1);
}

static void guard_pages_from_c(void) {
  mesa_debug_options options;
  mesa_debug_options_init(&options);
  options.guard = MESA_DEBUG_GUARD_AFTER;
  options.handler = record_and_leave_the_fault;
  options.handler_context = &g_guard_errors;
  options.report_leaks_on_destroy = 0;
  const mesa_allocator *debug = mesa_debug_create(NULL, &options);
  CHECK(debug != NULL);
  volatile unsigned char *p = mesa_alloc2(NULL, debug, 64, 8, MESA_ALLOC_SCOPE_OBJECT);
  CHECK(p != NULL);
  p[63] = 1; /* the last byte is the block's */
  if (sigsetjmp(g_after_fault, 1) == 0) p[64] = 1;
  CHECK(g_guard_errors.count == 1);
  CHECK(g_guard_errors.errors[0].kind == MESA_DEBUG_BUFFER_OVERRUN);
  CHECK(g_guard_errors.errors[0].size == 64 && g_guard_errors.errors[0].offset == 64);
  mesa_free2(NULL, debug, (void *)p);
  CHECK(g_guard_errors.count == 1);
  mesa_debug_destroy(debug);
}

static long long file_size(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 ? (long long)s.st_size : -1;
}

/* mesa_logging_flush writes what the trace holds: the file grows from its 8-byte header by one
 * 48-byte record an event, and mesa_logging_destroy adds the end record. */
static void logging_flush(void) {
  const char *dir = getenv("TEST_TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/debug_resources_c_test.%ld.trace", dir != NULL ? dir : "/tmp",
           (long)getpid());
  const mesa_allocator *log = mesa_logging_create(NULL, path, 0);
  CHECK(log != NULL);
  void *p = mesa_alloc2(NULL, log, 24, 8, MESA_ALLOC_SCOPE_OBJECT);
  mesa_free2(NULL, log, p);
  CHECK(file_size(path) == 8);
  mesa_logging_flush(log);
  CHECK(file_size(path) == 8 + 2 * 48);
  mesa_logging_destroy(log);
  CHECK(file_size(path) > 8 + 2 * 48);
  remove(path);
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

/* A shrinking realloc through a debug table over a tracker whose budget is full: no new block
 * can be had, so the block shrinks where it is, as the tracker's own realloc does, and stays
 * checked: the leak report gives its new size, an overrun past its new end (or anywhere in the
 * bytes it gave up) is caught at free, and freeing gives the whole budget back. */
static void shrink_at_a_full_budget(void) {
  recorder r = {0};
  mesa_debug_options options;
  mesa_debug_options_init(&options);
  options.handler = record;
  options.handler_context = &r;
  options.report_leaks_on_destroy = 0;
  const mesa_allocator *budget = mesa_tracking_create(NULL, "budget", NULL);
  const mesa_allocator *debug = mesa_debug_create(budget, &options);
  CHECK(budget != NULL && debug != NULL);
  /* The debug table's live-block table comes from the tracker too: made before the limit. */
  mesa_free2(NULL, debug, mesa_alloc2(NULL, debug, 1, 8, MESA_ALLOC_SCOPE_OBJECT));
  mesa_tracking_stats empty, full, after;
  mesa_tracking_get_stats(budget, &empty);
  /* Four blocks of 1200 bytes, each with its 64-byte header and 16-byte canary. */
  mesa_tracking_set_limit(budget, empty.bytes_in_use + 4 * (64 + 1200 + 16));
  unsigned char *b[8];
  int n = 0;
  while (n < 8 && (b[n] = mesa_alloc2(NULL, debug, 1200, 8, MESA_ALLOC_SCOPE_OBJECT)) != NULL) {
    memset(b[n], 0x5a, 1200);
    n++;
  }
  CHECK(n == 4);
  mesa_tracking_get_stats(budget, &full);

  unsigned char *s = mesa_realloc2(NULL, debug, b[0], 300, 8, MESA_ALLOC_SCOPE_OBJECT);
  unsigned char *t = mesa_realloc2(NULL, debug, b[1], 300, 8, MESA_ALLOC_SCOPE_OBJECT);
  CHECK(s == b[0] && t == b[1]);
  if (s == NULL || t == NULL) return;
  int kept = 1;
  for (int i = 0; i < 300; i++) kept &= s[i] == 0x5a && t[i] == 0x5a;
  CHECK(kept);
  mesa_tracking_get_stats(budget, &after);
  CHECK(after.bytes_in_use == full.bytes_in_use); /* the upstream blocks are kept whole */

  CHECK(mesa_debug_report_leaks(debug) == 4);
  int shrunk_leaks = 0;
  for (int i = 0; i < r.count; i++) {
    CHECK(r.errors[i].kind == MESA_DEBUG_LEAK);
    if (r.errors[i].address == s || r.errors[i].address == t) {
      CHECK(r.errors[i].size == 300);
      shrunk_leaks++;
    }
  }
  CHECK(shrunk_leaks == 2);

  r.count = 0;
  s[300] = 0;  /* one past the new end */
  t[1000] = 0; /* in the bytes given up */
  mesa_free2(NULL, debug, s);
  mesa_free2(NULL, debug, t);
  CHECK(r.count == 2);
  CHECK(r.errors[0].kind == MESA_DEBUG_BUFFER_OVERRUN);
  CHECK(r.errors[0].address == s && r.errors[0].size == 300 && r.errors[0].offset == 300);
  CHECK(r.errors[1].kind == MESA_DEBUG_BUFFER_OVERRUN);
  CHECK(r.errors[1].address == t && r.errors[1].size == 300 && r.errors[1].offset == 1000);
  mesa_free2(NULL, debug, b[2]);
  mesa_free2(NULL, debug, b[3]);
  mesa_tracking_get_stats(budget, &after);
  CHECK(after.bytes_in_use == empty.bytes_in_use);
  mesa_debug_destroy(debug);
  mesa_tracking_get_stats(budget, &after);
  CHECK(after.bytes_in_use == 0);
  mesa_tracking_destroy(budget);
}

int main(void) {
  recording_handler();
  tracking_reports();
  shrink_at_a_full_budget();
  guard_pages_from_c();
  logging_flush();
  return check_failures == 0 ? 0 : 1;
}
