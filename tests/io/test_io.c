/* test_io.c: the runner of tests/io. */
#include "test_util.h"

extern const test_entry csv_tests[];
extern const test_entry files_tests[];
extern const test_entry npy_tests[];

int main(void) {
  const char *const names[] = {"csv", "files", "npy"};
  const test_entry *const tests[] = {csv_tests, files_tests, npy_tests};
  return run_suites(names, tests, sizeof names / sizeof names[0]);
}
