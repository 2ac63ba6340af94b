/* Concurrency: many threads defining, looking up, transferring and removing
 * at once; removal racing asynchronous lookups whose units materialize on
 * other threads. Every lookup completes exactly once, every unit is dropped
 * exactly once, nothing hangs (watchdog) or leaks (balanced counters).
 * JITRT_TEST_SCALE (percent) shortens the loops, e.g. under valgrind. */
#include "test_util.h"
#include <string.h>

#define NWORKERS 8
static jitrt_session_t *S;
static jitrt_dylib_t *D;
static atomic_int stop_readers;
static atomic_int failures; /* checks failed on worker threads */

#define TCHECK(c)                                                          \
  do {                                                                     \
    if (!(c)) {                                                            \
      atomic_fetch_add(&failures, 1);                                      \
      fprintf(stderr, "%s:%d: thread check failed: %s\n", __FILE__, __LINE__, #c); \
    }                                                                      \
  } while (0)

static jitrt_error_code_t take(jitrt_error_t *e) {
  jitrt_error_code_t c = e ? jitrt_error_code(e) : JITRT_OK;
  if (e && c != JITRT_ERR_SYMBOL_NOT_FOUND && c != JITRT_ERR_MATERIALIZATION_FAILED &&
      c != JITRT_ERR_DUPLICATE_DEFINITION && c != JITRT_ERR_TRACKER_DEFUNCT)
    fprintf(stderr, "  error [%d] %s\n", (int)c, jitrt_error_message(e));
  jitrt_error_free(e);
  return c;
}

/* --- define / lookup / remove from 8 threads ------------------------------ */
static unsigned ROUNDS;
static atomic_int unit_drops, units_made;

static void *churn(void *p) {
  int id = (int)(intptr_t)p;
  char n1[32], n2[32];
  for (unsigned r = 0; r < ROUNDS; r++) {
    snprintf(n1, sizeof n1, "w%d_r%u_a", id, r);
    snprintf(n2, sizeof n2, "w%d_r%u_u", id, r);
    jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
    TCHECK(t != NULL);
    jitrt_symbol_t sym = {n1, tu_addr(n1), JITRT_SYMBOL_EXPORTED};
    TCHECK(take(jitrt_tracker_define_absolute(t, &sym, 1)) == JITRT_OK);
    tu_unit_t *u = tu_unit_new(TU_EMIT, n2, NULL);
    u->free_on_drop = 1;
    u->drop_counter = &unit_drops;
    atomic_fetch_add(&units_made, 1);
    TCHECK(take(tu_unit_define(t, u)) == JITRT_OK);
    uint64_t a = 0;
    TCHECK(take(jitrt_lookup(D, n1, &a)) == JITRT_OK && a == tu_addr(n1));
    if (r % 2 == 0) {
      a = 0;
      TCHECK(take(jitrt_lookup(D, n2, &a)) == JITRT_OK && a == tu_addr(n2));
    }
    switch (r % 3) {
    case 0:
      TCHECK(take(jitrt_tracker_remove(t)) == JITRT_OK);
      TCHECK(take(jitrt_lookup(D, n1, &a)) == JITRT_ERR_SYMBOL_NOT_FOUND);
      TCHECK(take(jitrt_lookup(D, n2, &a)) == JITRT_ERR_SYMBOL_NOT_FOUND);
      jitrt_tracker_release(t);
      break;
    case 1: {
      /* transfer to a second tracker, then remove that */
      jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(D);
      TCHECK(take(jitrt_tracker_transfer_to(t, t2)) == JITRT_OK);
      jitrt_tracker_release(t);
      TCHECK(take(jitrt_lookup(D, n2, &a)) == JITRT_OK);
      TCHECK(take(jitrt_tracker_remove(t2)) == JITRT_OK);
      TCHECK(take(jitrt_lookup(D, n1, &a)) == JITRT_ERR_SYMBOL_NOT_FOUND);
      jitrt_tracker_release(t2);
      break;
    }
    case 2:
      /* remove and release racing nothing but the other threads */
      jitrt_tracker_release(t); /* moves to the default tracker ... */
      {
        jitrt_tracker_t *dt = jitrt_dylib_default_tracker(D);
        (void)dt;
        jitrt_tracker_release(dt);
      }
      /* ... so it is still there; take it away by hand */
      TCHECK(take(jitrt_lookup(D, n1, &a)) == JITRT_OK);
      {
        /* redefine under a fresh tracker is a duplicate while it lives */
        jitrt_tracker_t *t3 = jitrt_dylib_create_tracker(D);
        TCHECK(take(jitrt_tracker_define_absolute(t3, &sym, 1)) == JITRT_ERR_DUPLICATE_DEFINITION);
        TCHECK(take(jitrt_tracker_remove(t3)) == JITRT_OK);
        jitrt_tracker_release(t3);
      }
      /* these names live in the default tracker until the session ends */
      break;
    }
  }
  return NULL;
}

/* Readers of shared symbols while everything else churns. */
static const char *shared_names[4] = {"shared0", "shared1", "shared2", "shared3"};
static void *reader(void *p) {
  (void)p;
  unsigned n = 0;
  while (!atomic_load(&stop_readers)) {
    const char *nm = shared_names[n++ % 4];
    uint64_t a = 0;
    TCHECK(take(jitrt_lookup(D, nm, &a)) == JITRT_OK && a == tu_addr(nm));
    uint64_t out[4];
    TCHECK(take(jitrt_lookup_many(S, &D, 1, shared_names, 4, out)) == JITRT_OK &&
           out[3] == tu_addr("shared3"));
  }
  return NULL;
}

static void many_threads_churn(void) {
  S = test_session();
  D = test_dylib(S, "main");
  ROUNDS = test_scaled(3000);
  atomic_store(&unit_drops, 0);
  atomic_store(&units_made, 0);
  atomic_store(&stop_readers, 0);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(D);
  /* shared symbols: two absolute, two lazily materialized (once) */
  jitrt_symbol_t sh[2] = {{"shared0", tu_addr("shared0"), JITRT_SYMBOL_EXPORTED},
                          {"shared1", tu_addr("shared1"), JITRT_SYMBOL_EXPORTED}};
  CHECK_OK(jitrt_tracker_define_absolute(dt, sh, 2));
  tu_unit_t *su = tu_unit_new(TU_SLEEP_EMIT, "shared2", "shared3", NULL);
  su->delay_us = 2000;
  CHECK_OK(tu_unit_define(dt, su));
  jitrt_tracker_release(dt);

  pthread_t th[NWORKERS], rd[2];
  for (int i = 0; i < 2; i++) pthread_create(&rd[i], NULL, reader, NULL);
  for (int i = 0; i < NWORKERS; i++) pthread_create(&th[i], NULL, churn, (void *)(intptr_t)i);
  for (int i = 0; i < NWORKERS; i++) pthread_join(th[i], NULL);
  atomic_store(&stop_readers, 1);
  for (int i = 0; i < 2; i++) pthread_join(rd[i], NULL);
  CHECK(atomic_load(&su->materialized) == 1);
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  /* what is left: the shared symbols and case-2 rounds' symbols */
  CHECK(st.symbols >= 4);
  jitrt_session_free(S);
  CHECK(atomic_load(&unit_drops) == atomic_load(&units_made));
  CHECK(atomic_load(&su->dropped) == 1);
  tu_unit_free(su);
}

/* --- removal racing asynchronous lookups ---------------------------------- */
static atomic_int race_drops[4096];
static void *race_thread(void *p) {
  int id = (int)(intptr_t)p;
  unsigned n = test_scaled(300);
  if (n > 1000) n = 1000;
  tu_waiter_t *w = calloc(n, sizeof *w);
  char name[48];
  for (unsigned r = 0; r < n; r++) {
    int slot = id * 1000 + (int)r;
    snprintf(name, sizeof name, "race%d_%u", id, r);
    jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
    int mode = r % 3 == 0 ? TU_SLEEP_EMIT : TU_THREAD_EMIT;
    tu_unit_t *u = tu_unit_new(mode, name, "other", NULL);
    snprintf(u->names[1], sizeof u->names[1], "%s_b", name);
    u->delay_us = (r * 37) % 400;
    u->free_on_drop = 1;
    u->drop_counter = &race_drops[slot];
    TCHECK(take(tu_unit_define(t, u)) == JITRT_OK);
    tu_waiter_init(&w[r]);
    TCHECK(take(tu_lookup_async1(S, D, name, &w[r])) == JITRT_OK);
    if (r % 4 == 0) {
      /* a second lookup of the same unit */
      char nb[64];
      snprintf(nb, sizeof nb, "%s_b", name);
      uint64_t a = 0;
      jitrt_error_code_t c = take(jitrt_lookup(D, nb, &a));
      TCHECK(c == JITRT_OK || c == JITRT_ERR_MATERIALIZATION_FAILED);
    }
    tu_usleep((r * 53) % 300);
    if (r % 5 == 0) {
      jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(D);
      jitrt_error_code_t c = take(jitrt_tracker_transfer_to(t, t2));
      TCHECK(c == JITRT_OK);
      TCHECK(take(jitrt_tracker_remove(t2)) == JITRT_OK);
      jitrt_tracker_release(t2);
    } else {
      TCHECK(take(jitrt_tracker_remove(t)) == JITRT_OK);
    }
    jitrt_tracker_release(t);
  }
  for (unsigned r = 0; r < n; r++) {
    TCHECK(tu_waiter_wait(&w[r], 10000));
    TCHECK(atomic_load(&w[r].calls) == 1);
    TCHECK(w[r].code == JITRT_OK || w[r].code == JITRT_ERR_MATERIALIZATION_FAILED);
  }
  tu_wait_threads();
  for (unsigned r = 0; r < n; r++) {
    TCHECK(atomic_load(&w[r].calls) == 1);
    tu_waiter_destroy(&w[r]);
  }
  free(w);
  return (void *)(intptr_t)n;
}

static void removal_races_lookups(void) {
  S = test_session();
  D = test_dylib(S, "main");
  for (int i = 0; i < 4096; i++) atomic_store(&race_drops[i], 0);
  int alloc0 = atomic_load(&tu_units_alloc), drop0 = atomic_load(&tu_units_dropped);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, race_thread, (void *)(intptr_t)i);
  unsigned n = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    n = (unsigned)(intptr_t)r;
  }
  tu_wait_threads();
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 0);
  jitrt_session_free(S);
  int bad = 0;
  for (int i = 0; i < 4; i++)
    for (unsigned r = 0; r < n; r++) bad += atomic_load(&race_drops[i * 1000 + (int)r]) != 1;
  CHECK(bad == 0);
  CHECK(atomic_load(&tu_units_alloc) - alloc0 == atomic_load(&tu_units_dropped) - drop0);
}

/* --- sessions created and freed with work in flight, from many threads --- */
static void *session_churn(void *p) {
  (void)p;
  unsigned n = test_scaled(40);
  for (unsigned i = 0; i < n; i++) {
    jitrt_session_t *s = test_session();
    jitrt_dylib_t *d = test_dylib(s, "d");
    jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
    tu_waiter_t w[4];
    for (int k = 0; k < 4; k++) {
      char nm[16];
      snprintf(nm, sizeof nm, "s%d", k);
      tu_unit_t *u = tu_unit_new(k % 2 ? TU_THREAD_EMIT : TU_SLEEP_EMIT, nm, NULL);
      u->delay_us = 100 * (unsigned)k;
      u->free_on_drop = 1;
      TCHECK(take(tu_unit_define(t, u)) == JITRT_OK);
      tu_waiter_init(&w[k]);
      TCHECK(take(tu_lookup_async1(s, d, nm, &w[k])) == JITRT_OK);
    }
    if (i % 2) TCHECK(take(jitrt_tracker_remove(t)) == JITRT_OK);
    jitrt_session_free(s);
    jitrt_tracker_release(t);
    for (int k = 0; k < 4; k++) {
      TCHECK(tu_waiter_wait(&w[k], 10000));
      TCHECK(atomic_load(&w[k].calls) == 1);
      tu_waiter_destroy(&w[k]);
    }
  }
  return NULL;
}

static void sessions_in_parallel(void) {
  int alloc0 = atomic_load(&tu_units_alloc), drop0 = atomic_load(&tu_units_dropped);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, session_churn, NULL);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  tu_wait_threads();
  CHECK(atomic_load(&tu_units_alloc) - alloc0 == atomic_load(&tu_units_dropped) - drop0);
}

/* --- with_resource_key_do racing transfer and remove ---------------------- */
static tu_rm_t KRM;
static void krm_add(void *ctx, uint64_t key) {
  (void)ctx;
  tu_rm_add(&KRM, key);
}
static void *key_emitter(void *p) {
  tu_unit_t *u = p;
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  if (!mr) return NULL;
  tu_usleep(u->delay_us);
  jitrt_error_t *e = jitrt_mr_with_resource_key_do(mr, krm_add, NULL);
  jitrt_error_code_t c = take(e);
  TCHECK(c == JITRT_OK || c == JITRT_ERR_TRACKER_DEFUNCT);
  c = take(tu_resolve_emit(mr));
  TCHECK(c == JITRT_OK || c == JITRT_ERR_TRACKER_DEFUNCT);
  return NULL;
}

static void key_do_races_transfer(void) {
  S = test_session();
  D = test_dylib(S, "main");
  tu_rm_init(&KRM);
  CHECK_OK(tu_rm_register(S, &KRM, NULL));
  unsigned n = test_scaled(300);
  if (n > TU_RM_MAX) n = TU_RM_MAX;
  int bad = 0;
  for (unsigned r = 0; r < n; r++) {
    char name[32];
    snprintf(name, sizeof name, "k%u", r);
    jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
    jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(D);
    tu_unit_t *u = tu_unit_new(TU_HOLD, name, NULL);
    u->delay_us = (r * 31) % 200;
    CHECK_OK(tu_unit_define(t, u));
    tu_waiter_t w;
    tu_waiter_init(&w);
    CHECK_OK(tu_lookup_async1(S, D, name, &w));
    pthread_t th;
    pthread_create(&th, NULL, key_emitter, u);
    tu_usleep((r * 17) % 200);
    CHECK_OK(jitrt_tracker_transfer_to(t, t2));
    if (r % 2) tu_usleep(100);
    CHECK_OK(jitrt_tracker_remove(t2));
    pthread_join(th, NULL);
    CHECK(tu_waiter_wait(&w, 5000));
    bad += !(w.code == JITRT_OK || w.code == JITRT_ERR_MATERIALIZATION_FAILED);
    bad += tu_rm_live(&KRM, jitrt_tracker_key(t)) + tu_rm_live(&KRM, jitrt_tracker_key(t2));
    tu_waiter_destroy(&w);
    jitrt_tracker_release(t);
    jitrt_tracker_release(t2);
    CHECK(tu_await(&u->dropped, 1));
    tu_unit_free(u);
  }
  CHECK(bad == 0);
  int live = 0;
  for (int i = 0; i < KRM.nres; i++) live += KRM.res_live[i];
  CHECK(live == 0);
  jitrt_session_free(S);
  tu_rm_destroy(&KRM);
}

int main(void) {
  test_watchdog(100);
  TU_RUN(many_threads_churn);
  TU_RUN(removal_races_lookups);
  TU_RUN(sessions_in_parallel);
  TU_RUN(key_do_races_transfer);
  CHECK(atomic_load(&failures) == 0);
  return test_summary();
}
