/* c_check — the CHECK macro of the C11 tests (the tests/ files ending in _c_test.c).
 *
 * What it is for: a C test has no GoogleTest; CHECK(cond) prints file:line and the failed
 * condition to stderr and counts it in check_failures, and the test's main() returns non-zero
 * when check_failures is not zero. It does not stop the test.
 *
 * What it costs: nothing beyond the condition. One test translation unit per binary (the
 * counter is a static in the including file).
 *
 * Example:
 *   #include "tests/support/c_check.h"
 *   int main(void) {
 *     CHECK(mesa_libc_allocator() != NULL);
 *     return check_failures == 0 ? 0 : 1;
 *   }
 */
#ifndef MESA_ALLOC_TESTS_SUPPORT_C_CHECK_H_
#define MESA_ALLOC_TESTS_SUPPORT_C_CHECK_H_

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      check_failures++;                                                        \
    }                                                                          \
  } while (0)

#endif /* MESA_ALLOC_TESTS_SUPPORT_C_CHECK_H_ */
