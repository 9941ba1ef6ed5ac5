/* Shared by the C test programs: CHECK(cond, fmt, ...) reports a failure with
 * the library's last error message and counts it in `failures`. */
#ifndef NNK_TEST_CHECK_H
#define NNK_TEST_CHECK_H
#include "nnkern.h"
#include <stdio.h>

static int failures = 0;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, " [last error: %s]\n", nnk_last_error_message()); \
            failures++;                                                       \
        }                                                                     \
    } while (0)

#endif
