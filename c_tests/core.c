/* The core ORC model through the C API: lookups waiting for emission,
 * units' unrequested symbols, aliases and re-exports, weak and strong
 * definitions, hidden symbols, generators, failures, cycles, result order
 * and accounting. */
#define _GNU_SOURCE
#include "test_util.h"
#include <dlfcn.h>
#include <math.h>
#include <string.h>

static jitrt_error_code_t lookup_code(jitrt_dylib_t *d, const char *name, uint64_t *out) {
  uint64_t a = 0;
  jitrt_error_t *e = jitrt_lookup(d, name, &a);
  jitrt_error_code_t c = e ? jitrt_error_code(e) : JITRT_OK;
  jitrt_error_free(e);
  if (out) *out = a;
  return c;
}

/* --- a lookup returns only once the symbol is emitted --------------------- */

static atomic_int emit_flag;

static void *late_emitter(void *p) {
  jitrt_mr_t *mr = p;
  tu_usleep(50000);
  jitrt_error_t *e = tu_resolve(mr);
  if (e) {
    jitrt_error_free(e);
    jitrt_mr_fail(mr);
    return NULL;
  }
  tu_usleep(50000); /* resolved but not emitted: the lookup must still wait */
  atomic_store(&emit_flag, 1);
  jitrt_error_free(jitrt_mr_notify_emitted(mr));
  return NULL;
}

static pthread_t late_thread;
static void start_late_emitter(tu_unit_t *u, jitrt_mr_t *mr) {
  (void)u;
  pthread_create(&late_thread, NULL, late_emitter, mr);
}

static void lookup_waits_for_emitted(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_default_tracker(d);
  tu_unit_t *u = tu_unit_new(TU_CUSTOM, "foo", NULL);
  u->on_materialize = start_late_emitter;
  CHECK_OK(tu_unit_define(t, u));
  atomic_store(&emit_flag, 0);
  uint64_t a = 0;
  CHECK_OK(jitrt_lookup(d, "foo", &a));
  CHECK(atomic_load(&emit_flag) == 1);
  CHECK(a == tu_addr("foo"));
  pthread_join(late_thread, NULL);

  /* the same, step by step with an asynchronous lookup */
  tu_unit_t *v = tu_unit_new(TU_HOLD, "bar", NULL);
  CHECK_OK(tu_unit_define(t, v));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(s, d, "bar", &w));
  jitrt_mr_t *mr = tu_unit_take_mr(v);
  CHECK(mr != NULL);
  if (mr) {
    CHECK(!tu_waiter_done(&w));
    CHECK_OK(tu_resolve(mr));
    tu_usleep(20000);
    CHECK(!tu_waiter_done(&w));
    CHECK_OK(jitrt_mr_notify_emitted(mr));
    CHECK(tu_waiter_wait(&w, 5000));
    CHECK(w.code == JITRT_OK && w.n == 1 && w.addrs[0] == tu_addr("bar"));
    CHECK(atomic_load(&w.calls) == 1);
  }
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&u->dropped) == 1 && atomic_load(&v->dropped) == 1);
  tu_waiter_destroy(&w);
  tu_unit_free(u);
  tu_unit_free(v);
}

/* --- a blocking lookup on a unit emitted from another thread -------------- */
static void lookup_thread_emit(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *u = tu_unit_new(TU_THREAD_EMIT, "foo", "bar", NULL);
  u->delay_us = 20000;
  CHECK_OK(tu_unit_define(t, u));
  const char *names[2] = {"bar", "foo"};
  uint64_t out[2] = {0, 0};
  CHECK_OK(jitrt_lookup_many(s, &d, 1, names, 2, out));
  CHECK(out[0] == tu_addr("bar") && out[1] == tu_addr("foo"));
  tu_wait_threads();
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&u->materialized) == 1 && atomic_load(&u->dropped) == 1);
  tu_unit_free(u);
}

/* --- unrequested symbols of a unit become ready too ----------------------- */
static void unrequested_symbols(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *u = tu_unit_new(TU_EMIT, "foo", "bar", NULL);
  CHECK_OK(tu_unit_define(t, u));
  CHECK(tu_found(d, "foo") == 1);
  CHECK(atomic_load(&u->materialized) == 1);
  CHECK(atomic_load(&u->mr_nsyms) == 2);
  CHECK(tu_found(d, "bar") == 1);
  CHECK(atomic_load(&u->materialized) == 1);
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&u->dropped) == 1);
  tu_unit_free(u);
}

/* --- aliases in the same dylib, and chains of them ------------------------ */
static void aliases(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t c = {"c", 0x1234560, JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE};
  CHECK_OK(jitrt_tracker_define_absolute(t, &c, 1));
  jitrt_alias_t al = {"foo_alias", "c", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, &al, 1));
  uint64_t a = 0;
  CHECK(lookup_code(d, "foo_alias", &a) == JITRT_OK && a == 0x1234560);

  /* a -> b -> c, defined in separate calls */
  jitrt_alias_t b = {"b", "c", JITRT_SYMBOL_EXPORTED};
  jitrt_alias_t aa = {"a", "b", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, &aa, 1));
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, &b, 1));
  a = 0;
  CHECK(lookup_code(d, "a", &a) == JITRT_OK && a == 0x1234560);
  a = 0;
  CHECK(lookup_code(d, "b", &a) == JITRT_OK && a == 0x1234560);

  /* x -> y -> z -> c in one call, looked up at the head first */
  jitrt_alias_t chain[3] = {{"x", "y", JITRT_SYMBOL_EXPORTED},
                            {"y", "z", JITRT_SYMBOL_EXPORTED},
                            {"z", "c", JITRT_SYMBOL_EXPORTED}};
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, chain, 3));
  a = 0;
  CHECK(lookup_code(d, "x", &a) == JITRT_OK && a == 0x1234560);
  a = 0;
  CHECK(lookup_code(d, "z", &a) == JITRT_OK && a == 0x1234560);

  /* an alias of a lazily materialized unit's symbol */
  tu_unit_t *u = tu_unit_new(TU_EMIT, "lazy", NULL);
  CHECK_OK(tu_unit_define(t, u));
  jitrt_alias_t l = {"lazy_alias", "lazy", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, &l, 1));
  CHECK(atomic_load(&u->materialized) == 0);
  a = 0;
  CHECK(lookup_code(d, "lazy_alias", &a) == JITRT_OK && a == tu_addr("lazy"));
  CHECK(atomic_load(&u->materialized) == 1);

  /* an alias whose target does not exist fails, the session survives */
  jitrt_alias_t m = {"dangling", "nowhere", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, &m, 1));
  jitrt_error_code_t code = lookup_code(d, "dangling", NULL);
  CHECK(code == JITRT_ERR_MATERIALIZATION_FAILED || code == JITRT_ERR_SYMBOL_NOT_FOUND);

  /* a cycle of aliases looked up as a whole fails instead of hanging (a
   * lookup of just one of them waits forever, as in ORC: not tested) */
  jitrt_alias_t cyc[2] = {{"p", "q", JITRT_SYMBOL_EXPORTED}, {"q", "p", JITRT_SYMBOL_EXPORTED}};
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, cyc, 2));
  const char *pq[2] = {"p", "q"};
  uint64_t pq_out[2];
  jitrt_error_t *pq_err = jitrt_lookup_many(s, &d, 1, pq, 2, pq_out);
  CHECK(pq_err != NULL);
  jitrt_error_free(pq_err);

  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&u->dropped) == 1);
  tu_unit_free(u);
}

/* --- re-exports materialize only what is asked ---------------------------- */
static atomic_int reexport_mats;

static void reexports(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *src = test_dylib(s, "src");
  jitrt_dylib_t *dst = test_dylib(s, "dst");
  jitrt_tracker_t *ts = jitrt_dylib_create_tracker(src);
  jitrt_tracker_t *td = jitrt_dylib_create_tracker(dst);
  tu_unit_t *uf = tu_unit_new(TU_EMIT, "foo", NULL);
  tu_unit_t *ub = tu_unit_new(TU_EMIT, "bar", NULL);
  uf->mat_counter = &reexport_mats;
  ub->mat_counter = &reexport_mats;
  CHECK_OK(tu_unit_define(ts, uf));
  CHECK_OK(tu_unit_define(ts, ub));
  jitrt_symbol_t hidden = {"hid", 0x5550, JITRT_SYMBOL_CALLABLE};
  CHECK_OK(jitrt_tracker_define_absolute(ts, &hidden, 1));
  jitrt_alias_t re[3] = {{"foo_r", "foo", JITRT_SYMBOL_EXPORTED},
                         {"bar_r", "bar", JITRT_SYMBOL_EXPORTED},
                         {"hid_r", "hid", JITRT_SYMBOL_EXPORTED}};
  CHECK_OK(jitrt_tracker_define_aliases(td, src, re, 3));
  CHECK(atomic_load(&reexport_mats) == 0);
  uint64_t a = 0;
  CHECK(lookup_code(dst, "foo_r", &a) == JITRT_OK && a == tu_addr("foo"));
  CHECK(atomic_load(&uf->materialized) == 1);
  CHECK(atomic_load(&ub->materialized) == 0);
  CHECK(atomic_load(&reexport_mats) == 1);
  a = 0;
  CHECK(lookup_code(dst, "bar_r", &a) == JITRT_OK && a == tu_addr("bar"));
  CHECK(atomic_load(&ub->materialized) == 1);
  CHECK(atomic_load(&reexport_mats) == 2);
  /* a re-export matches only exported symbols of its source */
  jitrt_error_code_t code = lookup_code(dst, "hid_r", NULL);
  CHECK(code == JITRT_ERR_MATERIALIZATION_FAILED || code == JITRT_ERR_SYMBOL_NOT_FOUND);
  /* the re-exported names are not in src, the originals not in dst */
  CHECK(tu_found(src, "foo_r") == 0);
  CHECK(tu_found(dst, "foo") == 0);
  /* removing the re-exports leaves the source alone */
  CHECK_OK(jitrt_tracker_remove(td));
  CHECK(tu_found(dst, "foo_r") == 0);
  CHECK(tu_found(src, "foo") == 1);
  jitrt_tracker_release(ts);
  jitrt_tracker_release(td);
  jitrt_session_free(s);
  CHECK(atomic_load(&uf->dropped) == 1 && atomic_load(&ub->dropped) == 1);
  tu_unit_free(uf);
  tu_unit_free(ub);
}

/* --- the error reporter hears about failures nobody returns ---------------- */
static atomic_int reported;
static jitrt_error_code_t reported_code;
static void reporter(void *ctx, const jitrt_error_t *err) {
  (void)ctx;
  reported_code = jitrt_error_code(err);
  CHECK(strlen(jitrt_error_message(err)) > 0);
  atomic_fetch_add(&reported, 1);
}

static void error_reporter(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *src = test_dylib(s, "src");
  jitrt_dylib_t *dst = test_dylib(s, "dst");
  jitrt_session_set_error_reporter(s, reporter, NULL);
  jitrt_tracker_t *td = jitrt_dylib_create_tracker(dst);
  jitrt_alias_t re = {"missing_r", "missing", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(td, src, &re, 1));
  atomic_store(&reported, 0);
  jitrt_error_code_t code = lookup_code(dst, "missing_r", NULL);
  CHECK(code == JITRT_ERR_MATERIALIZATION_FAILED || code == JITRT_ERR_SYMBOL_NOT_FOUND);
  CHECK(atomic_load(&reported) >= 1);
  /* a later lookup of the failed symbol fails without another report */
  code = lookup_code(dst, "missing_r", NULL);
  CHECK(code == JITRT_ERR_MATERIALIZATION_FAILED);
  /* clearing the reporter */
  jitrt_session_set_error_reporter(s, NULL, NULL);
  jitrt_alias_t re2 = {"missing2_r", "missing2", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(td, src, &re2, 1));
  int before = atomic_load(&reported);
  code = lookup_code(dst, "missing2_r", NULL);
  CHECK(code != JITRT_OK);
  CHECK(atomic_load(&reported) == before);
  jitrt_tracker_release(td);
  jitrt_session_free(s);
}

/* --- weak definitions overridden by strong ones ---------------------------- */
static void weak_overridden(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *w = tu_unit_new(TU_EMIT, "foo", "bar", NULL);
  w->syms[0].flags |= JITRT_SYMBOL_WEAK;
  w->syms[1].flags |= JITRT_SYMBOL_WEAK;
  CHECK_OK(tu_unit_define(t, w));
  jitrt_symbol_t strong = {"foo", 0x777770, JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &strong, 1));
  CHECK(atomic_load(&w->discarded) == 1);
  CHECK(strcmp(w->last_discarded, "foo") == 0);
  uint64_t a = 0;
  CHECK(lookup_code(d, "foo", &a) == JITRT_OK && a == 0x777770);
  CHECK(atomic_load(&w->materialized) == 0);
  CHECK(tu_found(d, "bar") == 1);
  CHECK(atomic_load(&w->materialized) == 1);
  CHECK(atomic_load(&w->mr_nsyms) == 1); /* foo is not among its symbols any more */

  /* a unit whose symbols are all overridden is dropped without running */
  tu_unit_t *all = tu_unit_new(TU_EMIT, "baz", NULL);
  all->syms[0].flags |= JITRT_SYMBOL_WEAK;
  CHECK_OK(tu_unit_define(t, all));
  tu_unit_t *strong_unit = tu_unit_new(TU_EMIT, "baz", NULL);
  CHECK_OK(tu_unit_define(t, strong_unit));
  CHECK(atomic_load(&all->discarded) == 1 && strcmp(all->last_discarded, "baz") == 0);
  CHECK(atomic_load(&all->dropped) == 1);
  CHECK(atomic_load(&all->materialized) == 0);
  CHECK(tu_found(d, "baz") == 1);
  CHECK(atomic_load(&strong_unit->materialized) == 1);

  /* a weak definition arriving after a strong one is discarded at once */
  tu_unit_t *late = tu_unit_new(TU_EMIT, "foo", "qux", NULL);
  late->syms[0].flags |= JITRT_SYMBOL_WEAK;
  CHECK_OK(tu_unit_define(t, late));
  CHECK(atomic_load(&late->discarded) == 1 && strcmp(late->last_discarded, "foo") == 0);
  a = 0;
  CHECK(lookup_code(d, "foo", &a) == JITRT_OK && a == 0x777770);
  CHECK(tu_found(d, "qux") == 1);
  CHECK(atomic_load(&late->mr_nsyms) == 1);
  tu_unit_t *late2 = tu_unit_new(TU_EMIT, "foo", NULL);
  late2->syms[0].flags |= JITRT_SYMBOL_WEAK;
  CHECK_OK(tu_unit_define(t, late2));
  CHECK(atomic_load(&late2->discarded) == 1 && atomic_load(&late2->dropped) == 1);
  CHECK(atomic_load(&late2->materialized) == 0);

  /* a weak absolute symbol: overridable before it is looked up ... */
  jitrt_symbol_t wabs = {"wabs", 0x10, JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_WEAK};
  CHECK_OK(jitrt_tracker_define_absolute(t, &wabs, 1));
  jitrt_symbol_t sabs = {"wabs", 0x20, JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &sabs, 1));
  a = 0;
  CHECK(lookup_code(d, "wabs", &a) == JITRT_OK && a == 0x20);
  /* ... but not after (it is materialized: a duplicate, as in ORC) */
  jitrt_symbol_t w2 = {"wabs2", 0x30, JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_WEAK};
  CHECK_OK(jitrt_tracker_define_absolute(t, &w2, 1));
  a = 0;
  CHECK(lookup_code(d, "wabs2", &a) == JITRT_OK && a == 0x30);
  jitrt_symbol_t s2 = {"wabs2", 0x40, JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_absolute(t, &s2, 1), JITRT_ERR_DUPLICATE_DEFINITION);
  a = 0;
  CHECK(lookup_code(d, "wabs2", &a) == JITRT_OK && a == 0x30);

  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  /* foo, bar, baz, qux, wabs, wabs2 */
  CHECK(st.symbols == 6);

  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&w->dropped) == 1 && atomic_load(&strong_unit->dropped) == 1);
  CHECK(atomic_load(&late->dropped) == 1);
  tu_unit_free(w);
  tu_unit_free(all);
  tu_unit_free(strong_unit);
  tu_unit_free(late);
  tu_unit_free(late2);
}

/* --- duplicate strong definitions: all or nothing -------------------------- */
static void duplicate_definition(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t xy[2] = {{"x", tu_addr("x"), JITRT_SYMBOL_EXPORTED},
                          {"y", tu_addr("y"), JITRT_SYMBOL_EXPORTED}};
  CHECK_OK(jitrt_tracker_define_absolute(t, xy, 2));
  jitrt_symbol_t zy[2] = {{"z", tu_addr("z"), JITRT_SYMBOL_EXPORTED},
                          {"y", 0x999990, JITRT_SYMBOL_EXPORTED}};
  CHECK_ERR(jitrt_tracker_define_absolute(t, zy, 2), JITRT_ERR_DUPLICATE_DEFINITION);
  CHECK(tu_found(d, "z") == 0);
  CHECK(tu_found(d, "y") == 1);
  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 2);

  /* the same through another tracker of the same dylib */
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(d);
  CHECK_ERR(jitrt_tracker_define_absolute(t2, zy, 2), JITRT_ERR_DUPLICATE_DEFINITION);
  CHECK(tu_found(d, "z") == 0);

  /* a custom unit: rejected, dropped before the call returns, never run */
  tu_unit_t *u = tu_unit_new(TU_EMIT, "w", "x", NULL);
  CHECK_ERR(tu_unit_define(t2, u), JITRT_ERR_DUPLICATE_DEFINITION);
  CHECK(atomic_load(&u->dropped) == 1 && atomic_load(&u->materialized) == 0);
  CHECK(tu_found(d, "w") == 0);

  /* clash with an unmaterialized unit */
  tu_unit_t *v = tu_unit_new(TU_EMIT, "v", NULL);
  CHECK_OK(tu_unit_define(t, v));
  jitrt_symbol_t vv[2] = {{"v2", 1, JITRT_SYMBOL_EXPORTED}, {"v", 2, JITRT_SYMBOL_EXPORTED}};
  CHECK_ERR(jitrt_tracker_define_absolute(t2, vv, 2), JITRT_ERR_DUPLICATE_DEFINITION);
  CHECK(tu_found(d, "v2") == 0);
  CHECK(tu_found(d, "v") == 1);

  /* aliases clash the same way */
  jitrt_alias_t al[2] = {{"al_ok", "x", JITRT_SYMBOL_EXPORTED}, {"y", "x", JITRT_SYMBOL_EXPORTED}};
  CHECK_ERR(jitrt_tracker_define_aliases(t2, NULL, al, 2), JITRT_ERR_DUPLICATE_DEFINITION);
  CHECK(tu_found(d, "al_ok") == 0);

  /* the same name in another dylib is fine */
  jitrt_dylib_t *o = test_dylib(s, "other");
  jitrt_tracker_t *to = jitrt_dylib_create_tracker(o);
  CHECK_OK(jitrt_tracker_define_absolute(to, xy, 2));
  /* a dylib name is unique */
  jitrt_dylib_t *dup = NULL;
  jitrt_error_t *e = jitrt_session_create_dylib(s, "other", &dup);
  CHECK(e != NULL && dup == NULL);
  jitrt_error_free(e);

  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 5);
  jitrt_tracker_release(t);
  jitrt_tracker_release(t2);
  jitrt_tracker_release(to);
  jitrt_session_free(s);
  CHECK(atomic_load(&v->dropped) == 1 && atomic_load(&u->dropped) == 1);
  tu_unit_free(u);
  tu_unit_free(v);
}

/* --- hidden symbols -------------------------------------------------------- */
static void hidden_symbols(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *a = test_dylib(s, "A");
  jitrt_dylib_t *b = test_dylib(s, "B");
  CHECK_OK(jitrt_dylib_set_link_order(b, &a, 1));
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(a);
  jitrt_symbol_t syms[2] = {{"h", tu_addr("h"), JITRT_SYMBOL_CALLABLE},
                            {"e", tu_addr("e"), JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE}};
  CHECK_OK(jitrt_tracker_define_absolute(t, syms, 2));
  tu_unit_t *u = tu_unit_new(TU_EMIT, "hu", NULL);
  u->syms[0].flags = JITRT_SYMBOL_CALLABLE; /* hidden, lazily materialized */
  CHECK_OK(tu_unit_define(t, u));
  CHECK(tu_found(b, "h") == 0);
  CHECK(tu_found(b, "hu") == 0);
  CHECK(atomic_load(&u->materialized) == 0);
  CHECK(tu_found(b, "e") == 1);
  CHECK(tu_found(a, "h") == 1);
  CHECK(tu_found(a, "hu") == 1);
  /* search orders: the first dylib matches all, the others exported only */
  jitrt_dylib_t *ba[2] = {b, a}, *ab[2] = {a, b};
  const char *h = "h";
  uint64_t out = 0;
  CHECK_ERR(jitrt_lookup_many(s, ba, 2, &h, 1, &out), JITRT_ERR_SYMBOL_NOT_FOUND);
  CHECK_OK(jitrt_lookup_many(s, ab, 2, &h, 1, &out));
  CHECK(out == tu_addr("h"));
  /* a symbol in B shadows A's */
  jitrt_tracker_t *tb = jitrt_dylib_create_tracker(b);
  jitrt_symbol_t eb = {"e", 0xbbbb0, JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(tb, &eb, 1));
  uint64_t addr = 0;
  CHECK(lookup_code(b, "e", &addr) == JITRT_OK && addr == 0xbbbb0);
  /* link order lists b itself: skipped */
  jitrt_dylib_t *self_order[2] = {b, a};
  CHECK_OK(jitrt_dylib_set_link_order(b, self_order, 2));
  CHECK(tu_found(b, "h") == 0);
  CHECK_OK(jitrt_dylib_set_link_order(b, NULL, 0));
  jitrt_symbol_t only_a = {"only_a", tu_addr("only_a"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &only_a, 1));
  CHECK(tu_found(b, "only_a") == 0);
  jitrt_tracker_release(t);
  jitrt_tracker_release(tb);
  jitrt_session_free(s);
  CHECK(atomic_load(&u->dropped) == 1);
  tu_unit_free(u);
}

/* --- generators ------------------------------------------------------------ */
typedef struct {
  atomic_int calls, drops, names_seen;
  int fail;
} gen_ctx;

static jitrt_error_t *gen_fn(void *ctx, jitrt_dylib_t *d, const char *const *names, size_t n) {
  gen_ctx *g = ctx;
  atomic_fetch_add(&g->calls, 1);
  atomic_fetch_add(&g->names_seen, (int)n);
  if (g->fail) return jitrt_error_new(JITRT_ERR_IO, "generator says no");
  for (size_t i = 0; i < n; i++) {
    if (strncmp(names[i], "gen_", 4) == 0) {
      jitrt_symbol_t sym = {names[i], tu_addr(names[i]), JITRT_SYMBOL_EXPORTED};
      jitrt_error_t *e = jitrt_define_absolute(d, &sym, 1);
      if (e) return e;
    }
  }
  return NULL;
}

static void gen_drop(void *ctx) {
  gen_ctx *g = ctx;
  atomic_fetch_add(&g->drops, 1);
}

static void generators(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_dylib_t *user = test_dylib(s, "user");
  CHECK_OK(jitrt_dylib_set_link_order(user, &d, 1));
  static gen_ctx g;
  memset(&g, 0, sizeof g);
  CHECK_OK(jitrt_dylib_add_generator(d, gen_fn, &g, gen_drop));
  CHECK(tu_found(d, "gen_x") == 1);
  CHECK(atomic_load(&g.calls) == 1);
  CHECK(tu_found(d, "gen_x") == 1); /* now in the table: not asked again */
  CHECK(atomic_load(&g.calls) == 1);
  CHECK(tu_found(d, "other") == 0);
  CHECK(atomic_load(&g.calls) == 2);
  /* through the link order */
  CHECK(tu_found(user, "gen_y") == 1);
  /* several names at once: the generator sees only the missing ones */
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t here = {"here", tu_addr("here"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &here, 1));
  int seen = atomic_load(&g.names_seen);
  const char *names[3] = {"gen_a", "here", "gen_b"};
  uint64_t out[3] = {0};
  CHECK_OK(jitrt_lookup_many(s, &d, 1, names, 3, out));
  CHECK(out[0] == tu_addr("gen_a") && out[1] == tu_addr("here") && out[2] == tu_addr("gen_b"));
  CHECK(atomic_load(&g.names_seen) - seen == 2);
  /* the generated symbols live under the default tracker */
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(d);
  CHECK_OK(jitrt_tracker_remove(dt));
  int calls = atomic_load(&g.calls);
  CHECK(tu_found(d, "gen_a") == 1); /* generated again */
  CHECK(atomic_load(&g.calls) == calls + 1);
  CHECK(tu_found(d, "here") == 1);
  /* a generator's error reaches the lookup */
  g.fail = 1;
  jitrt_error_code_t code = lookup_code(d, "gen_fail", NULL);
  CHECK(code == JITRT_ERR_CALLBACK || code == JITRT_ERR_IO);
  g.fail = 0;
  /* asynchronous lookups ask generators too */
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(s, d, "gen_async", &w));
  CHECK(tu_waiter_wait(&w, 5000));
  CHECK(w.code == JITRT_OK && w.addrs[0] == tu_addr("gen_async"));
  tu_waiter_destroy(&w);

  jitrt_tracker_release(t);
  jitrt_tracker_release(dt);
  CHECK(atomic_load(&g.drops) == 0);
  jitrt_session_free(s);
  CHECK(atomic_load(&g.drops) == 1);
}

static void process_symbols(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  CHECK_OK(jitrt_dylib_add_process_symbols(d));
  uint64_t a = 0;
  CHECK(lookup_code(d, "strlen", &a) == JITRT_OK);
  CHECK(a == (uint64_t)(uintptr_t)&strlen);
  CHECK(a == (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "strlen"));
  if (a) {
    size_t (*f)(const char *) = (size_t(*)(const char *))(uintptr_t)a;
    CHECK(f("hello") == 5);
  }
  a = 0;
  CHECK(lookup_code(d, "getenv", &a) == JITRT_OK && a == (uint64_t)(uintptr_t)&getenv);
  /* a function of this program (linked with -rdynamic) */
  a = 0;
  CHECK(lookup_code(d, "tu_addr", &a) == JITRT_OK && a == (uint64_t)(uintptr_t)&tu_addr);
  CHECK(lookup_code(d, "no_such_symbol_anywhere_42", NULL) == JITRT_ERR_SYMBOL_NOT_FOUND);
  /* the process generator defines into the default tracker: removable */
  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 3);
  CHECK_OK(jitrt_dylib_clear(d));
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 0);
  a = 0;
  CHECK(lookup_code(d, "strlen", &a) == JITRT_OK && a == (uint64_t)(uintptr_t)&strlen);
  jitrt_session_free(s);
}

static void dynamic_library(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  CHECK_OK(jitrt_dylib_add_dynamic_library(d, "libm.so.6"));
  uint64_t a = 0;
  CHECK(lookup_code(d, "cos", &a) == JITRT_OK && a != 0);
  if (a) {
    double (*f)(double) = (double (*)(double))(uintptr_t)a;
    CHECK(f(0.0) == 1.0);
  }
  /* not the whole process: a symbol only this program defines is not found
   * (dlsym on libm's handle searches libm and its dependencies) */
  CHECK(lookup_code(d, "tu_addr", NULL) == JITRT_ERR_SYMBOL_NOT_FOUND);
  jitrt_error_t *e = jitrt_dylib_add_dynamic_library(d, "/nonexistent/libnothing.so");
  CHECK(e != NULL && jitrt_error_code(e) == JITRT_ERR_IO);
  if (e) CHECK(strlen(jitrt_error_message(e)) > 0);
  jitrt_error_free(e);
  CHECK_ERR(jitrt_dylib_add_dynamic_library(d, "libnothing_at_all.so"), JITRT_ERR_IO);
  /* still works after the failures */
  CHECK(lookup_code(d, "sin", &a) == JITRT_OK);
  jitrt_session_free(s);
}

/* --- a failure reaches every waiting lookup and later ones ---------------- */
static void failure_reaches_waiters(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *u = tu_unit_new(TU_HOLD, "f", "g", NULL);
  CHECK_OK(tu_unit_define(t, u));
  jitrt_symbol_t ok = {"ok", tu_addr("ok"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &ok, 1));
  tu_waiter_t w[4];
  for (int i = 0; i < 4; i++) tu_waiter_init(&w[i]);
  CHECK_OK(tu_lookup_async1(s, d, "f", &w[0]));
  CHECK_OK(tu_lookup_async1(s, d, "g", &w[1]));
  const char *both[2] = {"ok", "f"};
  CHECK_OK(tu_lookup_async(s, d, both, 2, &w[2]));
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  CHECK(mr != NULL);
  CHECK_OK(tu_lookup_async1(s, d, "f", &w[3])); /* registered while materializing */
  for (int i = 0; i < 4; i++) CHECK(!tu_waiter_done(&w[i]));
  CHECK(atomic_load(&u->materialized) == 1);
  if (mr) jitrt_mr_fail(mr);
  for (int i = 0; i < 4; i++) {
    CHECK(tu_waiter_wait(&w[i], 5000));
    CHECK(w[i].code == JITRT_ERR_MATERIALIZATION_FAILED);
    CHECK(atomic_load(&w[i].calls) == 1);
  }
  CHECK(lookup_code(d, "f", NULL) == JITRT_ERR_MATERIALIZATION_FAILED);
  CHECK(lookup_code(d, "g", NULL) == JITRT_ERR_MATERIALIZATION_FAILED);
  CHECK(tu_found(d, "ok") == 1);
  CHECK(atomic_load(&u->materialized) == 1);
  /* failing at once from materialize */
  tu_unit_t *v = tu_unit_new(TU_FAIL, "ff", NULL);
  CHECK_OK(tu_unit_define(t, v));
  CHECK(lookup_code(d, "ff", NULL) == JITRT_ERR_MATERIALIZATION_FAILED);
  /* failed symbols go with their tracker */
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(lookup_code(d, "f", NULL) == JITRT_ERR_SYMBOL_NOT_FOUND);
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&u->dropped) == 1 && atomic_load(&v->dropped) == 1);
  for (int i = 0; i < 4; i++) tu_waiter_destroy(&w[i]);
  tu_unit_free(u);
  tu_unit_free(v);
}

/* A symbol that depends on a failed one fails too. */
static tu_unit_t *dep_fail_b;
static jitrt_dylib_t *dep_fail_d;
static void depends_on_b(tu_unit_t *u, jitrt_mr_t *mr) {
  (void)u;
  const char *b = "b";
  CHECK_OK(jitrt_mr_add_dependencies(mr, dep_fail_d, &b, 1));
  jitrt_error_free(tu_resolve_emit(mr));
}

static void failure_propagates_to_dependants(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  dep_fail_d = d;
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *a = tu_unit_new(TU_CUSTOM, "a", NULL);
  a->on_materialize = depends_on_b;
  dep_fail_b = tu_unit_new(TU_HOLD, "b", NULL);
  CHECK_OK(tu_unit_define(t, a));
  CHECK_OK(tu_unit_define(t, dep_fail_b));
  tu_waiter_t wb, wa;
  tu_waiter_init(&wa);
  tu_waiter_init(&wb);
  CHECK_OK(tu_lookup_async1(s, d, "b", &wb));
  jitrt_mr_t *mr = tu_unit_take_mr(dep_fail_b);
  CHECK(mr != NULL);
  CHECK_OK(tu_lookup_async1(s, d, "a", &wa));
  /* a is emitted but waits for b */
  tu_usleep(20000);
  CHECK(!tu_waiter_done(&wa));
  CHECK(atomic_load(&a->materialized) == 1);
  if (mr) jitrt_mr_fail(mr);
  CHECK(tu_waiter_wait(&wa, 5000) && tu_waiter_wait(&wb, 5000));
  CHECK(wa.code == JITRT_ERR_MATERIALIZATION_FAILED);
  CHECK(wb.code == JITRT_ERR_MATERIALIZATION_FAILED);
  CHECK(lookup_code(d, "a", NULL) == JITRT_ERR_MATERIALIZATION_FAILED);
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  tu_waiter_destroy(&wa);
  tu_waiter_destroy(&wb);
  tu_unit_free(a);
  tu_unit_free(dep_fail_b);
}

/* --- circular dependencies become ready together ------------------------- */
static jitrt_session_t *cyc_s;
static jitrt_dylib_t *cyc_d;
static tu_waiter_t cyc_w[2];

static void cyc_materialize(tu_unit_t *u, jitrt_mr_t *mr) {
  const char *other = u->user;
  int idx = other[0] == 'b' ? 0 : 1;
  /* look the other symbol up (starting its unit) and record the use */
  CHECK_OK(tu_lookup_async1(cyc_s, cyc_d, other, &cyc_w[idx]));
  CHECK_OK(jitrt_mr_add_dependencies(mr, cyc_d, &other, 1));
  CHECK_OK(tu_resolve_emit(mr));
}

static void circular_dependencies(void) {
  cyc_s = test_session();
  cyc_d = test_dylib(cyc_s, "main");
  tu_waiter_init(&cyc_w[0]);
  tu_waiter_init(&cyc_w[1]);
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(cyc_d);
  tu_unit_t *a = tu_unit_new(TU_CUSTOM, "a", NULL);
  tu_unit_t *b = tu_unit_new(TU_CUSTOM, "b", NULL);
  a->on_materialize = cyc_materialize;
  a->user = "b";
  b->on_materialize = cyc_materialize;
  b->user = "a";
  CHECK_OK(tu_unit_define(t, a));
  CHECK_OK(tu_unit_define(t, b));
  const char *names[2] = {"a", "b"};
  uint64_t out[2] = {0, 0};
  CHECK_OK(jitrt_lookup_many(cyc_s, &cyc_d, 1, names, 2, out));
  CHECK(out[0] == tu_addr("a") && out[1] == tu_addr("b"));
  CHECK(tu_waiter_wait(&cyc_w[0], 5000) && tu_waiter_wait(&cyc_w[1], 5000));
  CHECK(cyc_w[0].code == JITRT_OK && cyc_w[1].code == JITRT_OK);
  CHECK(atomic_load(&cyc_w[0].calls) == 1 && atomic_load(&cyc_w[1].calls) == 1);
  CHECK(atomic_load(&a->materialized) == 1 && atomic_load(&b->materialized) == 1);

  /* a cycle of three looked up at one end, with a blocking lookup */
  tu_waiter_destroy(&cyc_w[0]);
  tu_waiter_destroy(&cyc_w[1]);
  jitrt_tracker_release(t);
  jitrt_session_free(cyc_s);
  CHECK(atomic_load(&a->dropped) == 1 && atomic_load(&b->dropped) == 1);
  tu_unit_free(a);
  tu_unit_free(b);
}

/* Three units in a ring, each emitting from its own thread after adding a
 * dependency on the next: a lookup of one of them completes with all. */
static jitrt_dylib_t *ring_d;
static jitrt_session_t *ring_s;
static tu_waiter_t ring_w[3];
static void ring_materialize(tu_unit_t *u, jitrt_mr_t *mr) {
  const char *next = u->user;
  CHECK_OK(tu_lookup_async1(ring_s, ring_d, next, &ring_w[u->id]));
  CHECK_OK(jitrt_mr_add_dependencies(mr, ring_d, &next, 1));
  /* emit later, from another thread */
  u->mode = TU_THREAD_EMIT;
  u->on_materialize = NULL;
  atomic_store(&u->held, mr);
}

static void *ring_emit(void *p) {
  tu_unit_t *u = p;
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  if (mr) jitrt_error_free(tu_resolve_emit(mr));
  return NULL;
}

static void circular_three_threads(void) {
  ring_s = test_session();
  ring_d = test_dylib(ring_s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(ring_d);
  const char *names[3] = {"r0", "r1", "r2"};
  tu_unit_t *u[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    tu_waiter_init(&ring_w[i]);
    u[i] = tu_unit_new(TU_CUSTOM, names[i], NULL);
    u[i]->on_materialize = ring_materialize;
    u[i]->user = (void *)names[(i + 1) % 3];
    u[i]->id = i;
    CHECK_OK(tu_unit_define(t, u[i]));
  }
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, ring_emit, u[i]);
  uint64_t a = 0;
  CHECK(lookup_code(ring_d, "r0", &a) == JITRT_OK && a == tu_addr("r0"));
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 3; i++) {
    CHECK(tu_waiter_wait(&ring_w[i], 5000));
    CHECK(ring_w[i].code == JITRT_OK);
    CHECK(atomic_load(&u[i]->materialized) == 1);
  }
  CHECK(tu_found(ring_d, "r1") == 1 && tu_found(ring_d, "r2") == 1);
  jitrt_tracker_release(t);
  jitrt_session_free(ring_s);
  for (int i = 0; i < 3; i++) {
    CHECK(atomic_load(&u[i]->dropped) == 1);
    tu_waiter_destroy(&ring_w[i]);
    tu_unit_free(u[i]);
  }
}

/* --- results come in the order of the names ------------------------------ */
static void result_order(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t syms[3] = {{"z", tu_addr("z"), JITRT_SYMBOL_EXPORTED},
                            {"a", tu_addr("a"), JITRT_SYMBOL_EXPORTED},
                            {"m", tu_addr("m"), JITRT_SYMBOL_EXPORTED}};
  CHECK_OK(jitrt_tracker_define_absolute(t, syms, 3));
  tu_unit_t *u1 = tu_unit_new(TU_HOLD, "u1", NULL);
  tu_unit_t *u2 = tu_unit_new(TU_THREAD_EMIT, "u2", NULL);
  u2->delay_us = 10000;
  CHECK_OK(tu_unit_define(t, u1));
  CHECK_OK(tu_unit_define(t, u2));
  const char *names[6] = {"m", "u1", "z", "u2", "a", "m"};
  uint64_t out[6] = {0};
  const char *sync_names[4] = {"m", "z", "a", "m"};
  CHECK_OK(jitrt_lookup_many(s, &d, 1, sync_names, 4, out));
  CHECK(out[0] == tu_addr("m") && out[1] == tu_addr("z") && out[2] == tu_addr("a") &&
        out[3] == tu_addr("m"));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async(s, d, names, 6, &w));
  jitrt_mr_t *mr = tu_unit_take_mr(u1);
  CHECK(mr != NULL);
  tu_usleep(30000); /* u2 done first */
  if (mr) CHECK_OK(tu_resolve_emit(mr));
  CHECK(tu_waiter_wait(&w, 5000));
  CHECK(w.code == JITRT_OK && w.n == 6);
  for (int i = 0; i < 6; i++) CHECK(w.addrs[i] == tu_addr(names[i]));
  /* no names: an empty result */
  CHECK_OK(jitrt_lookup_many(s, &d, 1, NULL, 0, NULL));
  tu_waiter_t w0;
  tu_waiter_init(&w0);
  CHECK_OK(tu_lookup_async(s, d, NULL, 0, &w0));
  CHECK(tu_waiter_wait(&w0, 5000));
  CHECK(w0.code == JITRT_OK && w0.n == 0 && atomic_load(&w0.calls) == 1);
  /* a missing name fails the whole lookup */
  const char *bad[2] = {"m", "missing"};
  CHECK_ERR(jitrt_lookup_many(s, &d, 1, bad, 2, out), JITRT_ERR_SYMBOL_NOT_FOUND);
  tu_waiter_t wb;
  tu_waiter_init(&wb);
  CHECK_OK(tu_lookup_async(s, d, bad, 2, &wb));
  CHECK(tu_waiter_wait(&wb, 5000));
  CHECK(wb.code == JITRT_ERR_SYMBOL_NOT_FOUND && atomic_load(&wb.calls) == 1);
  tu_wait_threads();
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  tu_waiter_destroy(&w);
  tu_waiter_destroy(&w0);
  tu_waiter_destroy(&wb);
  tu_unit_free(u1);
  tu_unit_free(u2);
}

/* --- accounting -------------------------------------------------------- */
static void stats(void) {
  jitrt_session_t *s = test_session();
  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 0 && st.trackers == 0 && st.code_bytes == 0 && st.data_bytes == 0 &&
        st.objects_linked == 0);
  jitrt_dylib_t *d = test_dylib(s, "main");
  jitrt_tracker_t *t1 = jitrt_dylib_create_tracker(d);
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(d);
  jitrt_session_stats(s, &st);
  CHECK(st.trackers == 2);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(d);
  jitrt_session_stats(s, &st);
  CHECK(st.trackers == 3);
  jitrt_symbol_t syms[2] = {{"a", 1, JITRT_SYMBOL_EXPORTED}, {"b", 2, 0}};
  CHECK_OK(jitrt_tracker_define_absolute(t1, syms, 2));
  tu_unit_t *u = tu_unit_new(TU_EMIT, "c", "d", "e", NULL);
  CHECK_OK(tu_unit_define(t2, u));
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 5);
  CHECK(tu_found(d, "d") == 1);
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 5);
  CHECK_OK(jitrt_tracker_transfer_to(t1, t2));
  jitrt_session_stats(s, &st);
  CHECK(st.trackers == 2 && st.symbols == 5);
  CHECK_OK(jitrt_tracker_remove(t2));
  jitrt_session_stats(s, &st);
  CHECK(st.trackers == 1 && st.symbols == 0);
  CHECK_OK(jitrt_tracker_remove(dt));
  jitrt_session_stats(s, &st);
  CHECK(st.trackers == 0);
  jitrt_tracker_release(t1);
  jitrt_tracker_release(t2);
  jitrt_tracker_release(dt);
  jitrt_session_free(s);
  tu_unit_free(u);
}

int main(void) {
  test_watchdog(90);
  TU_RUN(lookup_waits_for_emitted);
  TU_RUN(lookup_thread_emit);
  TU_RUN(unrequested_symbols);
  TU_RUN(aliases);
  TU_RUN(reexports);
  TU_RUN(error_reporter);
  TU_RUN(weak_overridden);
  TU_RUN(duplicate_definition);
  TU_RUN(hidden_symbols);
  TU_RUN(generators);
  TU_RUN(process_symbols);
  TU_RUN(dynamic_library);
  TU_RUN(failure_reaches_waiters);
  TU_RUN(failure_propagates_to_dependants);
  TU_RUN(circular_dependencies);
  TU_RUN(circular_three_threads);
  TU_RUN(result_order);
  TU_RUN(stats);
  return test_summary();
}
