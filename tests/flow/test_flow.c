/* test_flow.c: the runner of tests/flow. */
#include "test_util.h"

extern const test_entry density_tests[];
extern const test_entry model_file_tests[];

int main(void) {
  const char *const names[] = {"density", "model_file"};
  const test_entry *const tests[] = {density_tests, model_file_tests};
  return run_suites(names, tests, sizeof names / sizeof names[0]);
}
