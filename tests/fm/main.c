/* main.c: the runner of tests/fm. */
#include "fm_tests.h"

int main(void) {
  static const char *const names[] = {"assignment", "per-row times", "flow matching"};
  static const test_entry *const tests[] = {assign_tests, rows_tests, fm_tests};
  return run_suites(names, tests, sizeof names / sizeof names[0]);
}
