/*
 * The checks of the C and C++ test programs (tests/c_programs.rs builds
 * them; this file is found beside the program that includes it).
 *
 * EXPECT(cond), and EXPECT_RC(call, want) for a call's turn_result, print
 * where a check failed and count it in `failures`, then go on: main
 * returns non-zero when any failed. In C a failed check also prints
 * turn_last_error(); C++ programs get their errors as exceptions.
 *
 * FAIL(fmt, ...) prints its message and a newline on standard error and
 * returns 1 from the calling function.
 */
#ifndef TURN_TESTS_CHECK_H
#define TURN_TESTS_CHECK_H

#include <stdio.h>

#include "turn.h"

/* Programs that only FAIL count nothing. */
static int failures __attribute__((unused)) = 0;

#ifdef __cplusplus
#define EXPECT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)
#else
#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: expected %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, turn_last_error());                      \
            failures++;                                                       \
        }                                                                     \
    } while (0)
#endif

#define EXPECT_RC(call, want)                                                 \
    do {                                                                      \
        turn_result got_ = (call);                                            \
        if (got_ != (want)) {                                                 \
            fprintf(stderr, "%s:%d: %s gave %s, expected %s (%s)\n",          \
                    __FILE__, __LINE__, #call, turn_result_str(got_),         \
                    turn_result_str(want), turn_last_error());                \
            failures++;                                                       \
        }                                                                     \
    } while (0)

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

#endif
