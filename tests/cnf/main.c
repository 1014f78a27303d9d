/* main.c: the runner of tests/cnf. */
#include "cnf_testing.h"

int main(void) {
  static const char *const names[] = {"dyn conformance", "hutchinson", "probes",
                                      "ffjord reference", "activation", "precision"};
  static const test_entry *const tests[] = {conformance_tests, hutchinson_tests,
                                            probes_tests, ffjord_tests, act_tests,
                                            precision_tests};
  return run_suites(names, tests, sizeof names / sizeof names[0]);
}
