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
/* Looks `name` up in d: 1 if it resolves to tu_addr(name), 0 if it is not
 * found, -100 for another address, -code for any other error. */
int tu_found(jitrt_dylib_t *d, const char *name);
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



/* ---- Helpers for the ORC-model tests (resource_tracker, core, misuse,
 * threads). ---- */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* An integer scale from JITRT_TEST_SCALE (percent, default 100), for making
 * long-running loops shorter under valgrind: returns n * scale / 100, >= 1. */
unsigned test_scaled(unsigned n);
/* Sleeps `us` microseconds. */
void tu_usleep(unsigned us);
/* The fake address every custom unit resolves `name` to (never 0). */
uint64_t tu_addr(const char *name);

/* An asynchronous lookup's result, filled by tu_lookup_done. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int calls;           /* how many times done ran (must be 1) */
  jitrt_error_code_t code;    /* JITRT_OK on success */
  char msg[256];
  uint64_t addrs[16];
  size_t n;
} tu_waiter_t;
void tu_waiter_init(tu_waiter_t *w);
void tu_waiter_destroy(tu_waiter_t *w);
/* A jitrt_lookup_done_fn with a tu_waiter_t as ctx. */
void tu_lookup_done(void *ctx, jitrt_error_t *err, const uint64_t *addrs, size_t n);
/* Waits up to `ms` for the lookup; returns 1 if it completed. */
int tu_waiter_wait(tu_waiter_t *w, unsigned ms);
int tu_waiter_done(tu_waiter_t *w);
/* jitrt_lookup_async of names in {d} with tu_lookup_done. */
jitrt_error_t *tu_lookup_async(jitrt_session_t *s, jitrt_dylib_t *d, const char *const *names,
                               size_t n, tu_waiter_t *w);
jitrt_error_t *tu_lookup_async1(jitrt_session_t *s, jitrt_dylib_t *d, const char *name,
                                tu_waiter_t *w);

/* A resource manager that keeps a list of resources by key. */
#define TU_RM_MAX 1024
typedef struct {
  pthread_mutex_t mu;
  uint64_t res_key[TU_RM_MAX];
  int res_live[TU_RM_MAX];
  int nres;
  uint64_t removed[TU_RM_MAX];
  int nremoved;
  uint64_t tr_dst[TU_RM_MAX], tr_src[TU_RM_MAX];
  int ntransfers;
  atomic_int drops;
  int seq_remove; /* order stamp of the last handle_remove (see tu_rm_seq) */
  jitrt_error_code_t fail_remove; /* if set, handle_remove returns this error */
} tu_rm_t;
extern atomic_int tu_rm_seq;
void tu_rm_init(tu_rm_t *rm);
void tu_rm_destroy(tu_rm_t *rm);
/* Registers rm with s (callbacks below). */
jitrt_error_t *tu_rm_register(jitrt_session_t *s, tu_rm_t *rm, uint64_t *id);
/* Records one resource under key (a with_resource_key_do callback body). */
void tu_rm_add(tu_rm_t *rm, uint64_t key);
/* Live resources under key. */
int tu_rm_live(tu_rm_t *rm, uint64_t key);
/* How many times handle_remove saw key. */
int tu_rm_removed(tu_rm_t *rm, uint64_t key);
/* How many times handle_transfer saw (dst, src). */
int tu_rm_transferred(tu_rm_t *rm, uint64_t dst, uint64_t src);

/* A custom materialization unit driven by a mode. */
enum {
  TU_EMIT,        /* resolve all its symbols to tu_addr(name) and emit, at once */
  TU_HOLD,        /* keep the mr for the test (tu_unit_take_mr) */
  TU_FAIL,        /* jitrt_mr_fail at once */
  TU_THREAD_EMIT, /* a new thread sleeps delay_us, then resolves and emits */
  TU_SLEEP_EMIT,  /* sleep delay_us inside materialize, then resolve and emit */
  TU_CUSTOM,      /* call on_materialize */
};
#define TU_MAX_SYMS 8
typedef struct tu_unit {
  int mode;
  unsigned delay_us;
  size_t nsyms;
  jitrt_symbol_t syms[TU_MAX_SYMS];
  char names[TU_MAX_SYMS][64];
  atomic_int materialized, dropped, discarded;
  char last_discarded[64];
  _Atomic(jitrt_mr_t *) held;
  atomic_int mr_nsyms;        /* jitrt_mr_num_symbols seen in materialize */
  atomic_uint_fast64_t key;   /* key seen by with_resource_key_do (if rm) */
  tu_rm_t *rm;                /* if set, materialize records a resource under its key */
  atomic_int *drop_counter;   /* if set, incremented by drop */
  atomic_int *mat_counter;    /* if set, incremented by materialize */
  int free_on_drop;           /* drop frees the unit */
  void (*on_materialize)(struct tu_unit *u, jitrt_mr_t *mr);
  void *user;
  int id;
} tu_unit_t;
/* A heap unit with `mode` and the NULL-terminated names (exported,
 * callable). Free with tu_unit_free after its drop ran (or free_on_drop). */
tu_unit_t *tu_unit_new(int mode, ...);
void tu_unit_free(tu_unit_t *u);
jitrt_error_t *tu_unit_define(jitrt_tracker_t *t, tu_unit_t *u);
/* Waits (up to 5 s) for the held mr and takes it; NULL on timeout. */
jitrt_mr_t *tu_unit_take_mr(tu_unit_t *u);
/* Resolves every symbol of mr to tu_addr(name), then emits (mr consumed).
 * If resolving fails, fails the mr and returns that error. */
jitrt_error_t *tu_resolve_emit(jitrt_mr_t *mr);
/* Resolves every symbol of mr to tu_addr(name). */
jitrt_error_t *tu_resolve(jitrt_mr_t *mr);
/* Threads started by TU_THREAD_EMIT units still running. */
extern atomic_int tu_threads_running;
/* Waits until no TU_THREAD_EMIT thread runs. */
void tu_wait_threads(void);
/* Counters of all tu_units: allocated and freed/dropped. */
extern atomic_int tu_units_alloc, tu_units_dropped;
/* Waits (up to 5 s) until *c >= want; returns 1 if then *c == want. A
 * unit's drop runs after its materialize returns, which on a pool worker may
 * be a little after the lookup it served completed. */
int tu_await(atomic_int *c, int want);
/* Runs fn in a forked child; 1 if it returned normally (no crash). For a
 * check that would otherwise take the whole program down. */
int tu_survives(void (*fn)(void));
/* Runs one scenario function, naming it on stderr first (so a hang or a
 * crash shows where it happened). */
#define TU_RUN(f)                          \
  do {                                     \
    fprintf(stderr, "-- %s\n", #f);        \
    f();                                   \
  } while (0)
#endif
