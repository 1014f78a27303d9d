/* suites.h: the suites of the tests/core runner. */
#ifndef CNF_TESTS_CORE_SUITES_H
#define CNF_TESTS_CORE_SUITES_H

#include "test_util.h"

extern const test_entry errors_tests[];
extern const test_entry options_tests[];
extern const test_entry alloc_tests[];

#endif
