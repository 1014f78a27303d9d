/* fm_tests.h: the suites of tests/fm. */
#ifndef CNF_FM_TESTS_H
#define CNF_FM_TESTS_H

#include "test_util.h"

extern const test_entry assign_tests[];
extern const test_entry rows_tests[];
extern const test_entry fm_tests[];

#endif /* CNF_FM_TESTS_H */
