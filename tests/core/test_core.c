/* test_core.c: the runner of tests/core. */
#include "suites.h"

int main(void) {
  const char *const names[] = {"errors", "options", "alloc"};
  const test_entry *const tests[] = {errors_tests, options_tests, alloc_tests};
  return run_suites(names, tests, sizeof names / sizeof names[0]);
}
