/* A small test harness for the C API tests: checks that count and report,
 * and helpers shared by the test programs. Every program prints
 * "N passed, M failed" and exits non-zero when anything failed. */
#ifndef JITRT_TEST_UTIL_H
#define JITRT_TEST_UTIL_H

#include "jitrt.h"
#include <stdio.h>
#include <stdlib.h>

extern int tu_passed, tu_failed;

/* Materialization threads for this run (JITRT_TEST_THREADS, default 0). */
unsigned test_threads(void);
/* A session with test_threads() workers; aborts if it cannot be made. */
jitrt_session_t *test_session(void);
/* A dylib in s; aborts on failure. */
jitrt_dylib_t *test_dylib(jitrt_session_t *s, const char *name);
/* Kills the process after `seconds` (a hang is a failure). */
void test_watchdog(unsigned seconds);
/* Prints the summary line; returns the exit status. */
int test_summary(void);
/* Records one check. */
void tu_check(int ok, const char *what, const char *file, int line);
/* Checks that err is NULL (frees it otherwise). */
void tu_ok(jitrt_error_t *err, const char *what, const char *file, int line);
/* Checks that err has `code` (and frees it). */
void tu_err(jitrt_error_t *err, jitrt_error_code_t code, const char *what, const char *file, int line);

#define CHECK(cond) tu_check(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_OK(expr) tu_ok((expr), #expr, __FILE__, __LINE__)
#define CHECK_ERR(expr, code) tu_err((expr), (code), #expr, __FILE__, __LINE__)

#endif
