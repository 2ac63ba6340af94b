/* Misuse of the C API: NULL for every handle and pointer, NULL to every
 * free/release, bad flags and options, defunct trackers, cross-dylib
 * transfers, and ending a session with lookups pending. None of it may
 * crash; each gives the documented error or result. */
#define _GNU_SOURCE
#include "test_util.h"
#include <string.h>
#include <unistd.h>

#define INVALID JITRT_ERR_INVALID_ARGUMENT

static atomic_int ctx_drops;
static void count_drop(void *ctx) {
  (void)ctx;
  atomic_fetch_add(&ctx_drops, 1);
}
static atomic_int done_calls;
static void count_done(void *ctx, jitrt_error_t *err, const uint64_t *a, size_t n) {
  (void)ctx;
  (void)a;
  (void)n;
  jitrt_error_free(err);
  atomic_fetch_add(&done_calls, 1);
}
static void noop_materialize(void *ctx, jitrt_mr_t *mr) {
  (void)ctx;
  jitrt_mr_fail(mr);
}
static jitrt_error_t *noop_gen(void *ctx, jitrt_dylib_t *d, const char *const *n, size_t k) {
  (void)ctx;
  (void)d;
  (void)n;
  (void)k;
  return NULL;
}
static void noop_key(void *ctx, uint64_t key) {
  (void)ctx;
  (void)key;
}
static void noop_report(void *ctx, const jitrt_error_t *e) {
  (void)ctx;
  (void)e;
}

static void error_new_unknown_code(void) {
  jitrt_error_t *e = jitrt_error_new((jitrt_error_code_t)999, "x");
  if (!e || jitrt_error_code(e) == JITRT_OK) _exit(1);
  jitrt_error_free(e);
  e = jitrt_error_new((jitrt_error_code_t)-1, "x");
  if (!e || jitrt_error_code(e) == JITRT_OK) _exit(1);
  jitrt_error_free(e);
}

static void errors_and_frees(void) {
  CHECK(jitrt_error_code(NULL) == INVALID);
  CHECK(jitrt_error_message(NULL) != NULL && strcmp(jitrt_error_message(NULL), "") == 0);
  jitrt_error_free(NULL);
  jitrt_error_t *e = jitrt_error_new(JITRT_OK, "x");
  CHECK(e != NULL && jitrt_error_code(e) == INVALID);
  jitrt_error_free(e);
  e = jitrt_error_new(JITRT_ERR_IO, NULL);
  CHECK(e != NULL && jitrt_error_code(e) == JITRT_ERR_IO && jitrt_error_message(e) != NULL);
  jitrt_error_free(e);
  e = jitrt_error_new(JITRT_ERR_CALLBACK, "a message");
  CHECK(e != NULL && strstr(jitrt_error_message(e), "a message") != NULL);
  jitrt_error_free(e);
  /* an unknown code (a C enum can hold any int): must not crash */
  CHECK(tu_survives(error_new_unknown_code));
  CHECK(jitrt_version() != NULL && strlen(jitrt_version()) > 0);
  jitrt_session_free(NULL);
  jitrt_tracker_release(NULL);
  jitrt_tracker_retain(NULL);
  jitrt_mr_fail(NULL);
}

static void session_null_args(void) {
  jitrt_session_t *s = jitrt_session_new(NULL); /* defaults */
  CHECK(s != NULL);
  jitrt_dylib_t *d = NULL;
  CHECK_ERR(jitrt_session_create_dylib(NULL, "x", &d), INVALID);
  CHECK_ERR(jitrt_session_create_dylib(s, NULL, &d), INVALID);
  CHECK_ERR(jitrt_session_create_dylib(s, "x", NULL), INVALID);
  CHECK(d == NULL);
  CHECK(jitrt_session_find_dylib(s, "x") == NULL); /* nothing was created */
  CHECK_OK(jitrt_session_create_dylib(s, "x", &d));
  CHECK(d != NULL);
  CHECK(jitrt_session_find_dylib(NULL, "x") == NULL);
  CHECK(jitrt_session_find_dylib(s, NULL) == NULL);
  jitrt_session_set_error_reporter(NULL, noop_report, NULL);
  jitrt_session_set_error_reporter(s, NULL, NULL);
  jitrt_stats_t st;
  memset(&st, 0xff, sizeof st);
  jitrt_session_stats(NULL, &st);
  CHECK(st.symbols == 0 && st.trackers == 0 && st.code_bytes == 0 && st.data_bytes == 0 &&
        st.objects_linked == 0);
  jitrt_session_stats(s, NULL);

  /* resource managers: drop runs also when registration fails */
  atomic_store(&ctx_drops, 0);
  jitrt_resource_manager_t rm = {NULL, NULL, NULL, count_drop};
  uint64_t id = 0;
  CHECK_ERR(jitrt_session_add_resource_manager(NULL, &rm, &id), INVALID);
  CHECK(atomic_load(&ctx_drops) == 1);
  CHECK_ERR(jitrt_session_add_resource_manager(s, NULL, &id), INVALID);
  CHECK_OK(jitrt_session_add_resource_manager(s, &rm, NULL)); /* id_out may be NULL */
  CHECK_OK(jitrt_session_add_resource_manager(s, &rm, &id));  /* all callbacks NULL is fine */
  CHECK_ERR(jitrt_session_remove_resource_manager(NULL, id), INVALID);
  CHECK_ERR(jitrt_session_remove_resource_manager(s, id + 1000), INVALID);
  CHECK_OK(jitrt_session_remove_resource_manager(s, id));
  CHECK(atomic_load(&ctx_drops) == 2);
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_remove(t)); /* a manager with NULL handle_remove */
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  CHECK(atomic_load(&ctx_drops) == 3);
}

static void session_options(void) {
  jitrt_session_options_t o;
  memset(&o, 0, sizeof o);
  o.flags = 0x10; /* the first bit after the JITRT_SESSION_* flags */
  CHECK(jitrt_session_new(&o) == NULL);
  o.flags = JITRT_SESSION_DEBUGGER | 0x20;
  CHECK(jitrt_session_new(&o) == NULL);
  o.flags = JITRT_SESSION_DEBUGGER;
  jitrt_session_t *known = jitrt_session_new(&o);
  CHECK(known != NULL);
  jitrt_session_free(known);
  o.flags = JITRT_SESSION_SEPARATE_READONLY;
  known = jitrt_session_new(&o);
  CHECK(known != NULL);
  jitrt_session_free(known);
  o.flags = 0x80000000u;
  CHECK(jitrt_session_new(&o) == NULL);
  for (int i = 0; i < 6; i++) {
    memset(&o, 0, sizeof o);
    o.reserved[i] = 1;
    CHECK(jitrt_session_new(&o) == NULL);
  }
  memset(&o, 0, sizeof o);
  o.num_threads = 2;
  o.memory_reserve_bytes = 64u << 20;
  jitrt_session_t *s = jitrt_session_new(&o);
  CHECK(s != NULL);
  jitrt_session_free(s);
}

static void dylib_null_args(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_dylib_t *e = test_dylib(s, "e");
  CHECK_ERR(jitrt_dylib_set_link_order(NULL, &e, 1), INVALID);
  CHECK_ERR(jitrt_dylib_set_link_order(d, NULL, 1), INVALID);
  jitrt_dylib_t *with_null[2] = {e, NULL};
  CHECK_ERR(jitrt_dylib_set_link_order(d, with_null, 2), INVALID);
  CHECK_OK(jitrt_dylib_set_link_order(d, NULL, 0));
  CHECK(strcmp(jitrt_dylib_name(NULL), "") == 0);
  CHECK(strcmp(jitrt_dylib_name(d), "d") == 0);
  CHECK_ERR(jitrt_dylib_clear(NULL), INVALID);
  CHECK_ERR(jitrt_dylib_add_process_symbols(NULL), INVALID);
  CHECK_ERR(jitrt_dylib_add_dynamic_library(NULL, "libm.so.6"), INVALID);
  CHECK_ERR(jitrt_dylib_add_dynamic_library(d, NULL), INVALID);
  atomic_store(&ctx_drops, 0);
  CHECK_ERR(jitrt_dylib_add_generator(NULL, noop_gen, NULL, count_drop), INVALID);
  CHECK(atomic_load(&ctx_drops) == 1); /* drop runs right away on failure */
  CHECK_ERR(jitrt_dylib_add_generator(d, NULL, NULL, count_drop), INVALID);
  CHECK(atomic_load(&ctx_drops) == 2);
  CHECK_ERR(jitrt_dylib_add_generator(d, NULL, NULL, NULL), INVALID);
  CHECK_OK(jitrt_dylib_add_generator(d, noop_gen, NULL, NULL)); /* drop may be NULL */
  CHECK(jitrt_dylib_create_tracker(NULL) == NULL);
  CHECK(jitrt_dylib_default_tracker(NULL) == NULL);
  jitrt_symbol_t sym = {"x", 1, JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_define_absolute(NULL, &sym, 1), INVALID);
  CHECK_ERR(jitrt_define_absolute(d, NULL, 1), INVALID);
  CHECK_OK(jitrt_define_absolute(d, NULL, 0));
  uint64_t a = 0;
  CHECK_ERR(jitrt_lookup(d, "x", &a), JITRT_ERR_SYMBOL_NOT_FOUND);
  jitrt_session_free(s);
}

static void tracker_null_args(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  CHECK(jitrt_tracker_dylib(NULL) == NULL);
  CHECK(jitrt_tracker_key(NULL) == 0);
  CHECK(jitrt_tracker_is_defunct(NULL));
  CHECK_ERR(jitrt_tracker_transfer_to(NULL, t), INVALID);
  CHECK_ERR(jitrt_tracker_transfer_to(t, NULL), INVALID);
  CHECK_ERR(jitrt_tracker_transfer_to(NULL, NULL), INVALID);
  CHECK_ERR(jitrt_tracker_remove(NULL), INVALID);
  CHECK(!jitrt_tracker_is_defunct(t));

  jitrt_symbol_t sym = {"x", 1, JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_absolute(NULL, &sym, 1), INVALID);
  CHECK_ERR(jitrt_tracker_define_absolute(t, NULL, 1), INVALID);
  CHECK_OK(jitrt_tracker_define_absolute(t, NULL, 0));
  jitrt_symbol_t two[2] = {{"ok1", 1, JITRT_SYMBOL_EXPORTED}, {NULL, 2, JITRT_SYMBOL_EXPORTED}};
  CHECK_ERR(jitrt_tracker_define_absolute(t, two, 2), INVALID);
  uint64_t a = 0;
  CHECK_ERR(jitrt_lookup(d, "ok1", &a), JITRT_ERR_SYMBOL_NOT_FOUND); /* nothing added */

  /* invalid flag bits */
  uint32_t bad_flags[3] = {8, 0x100, 0x80000000u};
  for (int i = 0; i < 3; i++) {
    jitrt_symbol_t b[2] = {{"fine", 1, JITRT_SYMBOL_EXPORTED},
                           {"bad", 2, JITRT_SYMBOL_EXPORTED | bad_flags[i]}};
    CHECK_ERR(jitrt_tracker_define_absolute(t, b, 2), INVALID);
    CHECK_ERR(jitrt_lookup(d, "fine", &a), JITRT_ERR_SYMBOL_NOT_FOUND);
    jitrt_alias_t al = {"al", "fine", bad_flags[i]};
    CHECK_ERR(jitrt_tracker_define_aliases(t, NULL, &al, 1), INVALID);
    atomic_store(&ctx_drops, 0);
    jitrt_custom_unit_t cu = {"u", b, 2, NULL, noop_materialize, NULL, count_drop};
    CHECK_ERR(jitrt_tracker_define_custom(t, &cu), INVALID);
    CHECK(atomic_load(&ctx_drops) == 1);
  }
  /* the same name twice in one set */
  jitrt_symbol_t twice[2] = {{"tw", 1, JITRT_SYMBOL_EXPORTED}, {"tw", 2, JITRT_SYMBOL_EXPORTED}};
  jitrt_error_t *e = jitrt_tracker_define_absolute(t, twice, 2);
  CHECK(e != NULL);
  jitrt_error_free(e);
  CHECK_ERR(jitrt_lookup(d, "tw", &a), JITRT_ERR_SYMBOL_NOT_FOUND);

  /* aliases */
  jitrt_alias_t al = {"al", "x", JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_aliases(NULL, NULL, &al, 1), INVALID);
  CHECK_ERR(jitrt_tracker_define_aliases(t, NULL, NULL, 1), INVALID);
  CHECK_OK(jitrt_tracker_define_aliases(t, NULL, NULL, 0));
  jitrt_alias_t nn = {NULL, "x", JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_aliases(t, NULL, &nn, 1), INVALID);
  jitrt_alias_t nt = {"al", NULL, JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_aliases(t, NULL, &nt, 1), INVALID);
  CHECK_ERR(jitrt_lookup(d, "al", &a), JITRT_ERR_SYMBOL_NOT_FOUND);

  /* custom units: on error the unit's drop runs before the call returns */
  jitrt_symbol_t us = {"u1", 0, JITRT_SYMBOL_EXPORTED};
  atomic_store(&ctx_drops, 0);
  jitrt_custom_unit_t cu = {"u", &us, 1, NULL, noop_materialize, NULL, count_drop};
  CHECK_ERR(jitrt_tracker_define_custom(NULL, &cu), INVALID);
  CHECK(atomic_load(&ctx_drops) == 1);
  CHECK_ERR(jitrt_tracker_define_custom(t, NULL), INVALID);
  jitrt_custom_unit_t nomat = {"u", &us, 1, NULL, NULL, NULL, count_drop};
  CHECK_ERR(jitrt_tracker_define_custom(t, &nomat), INVALID);
  CHECK(atomic_load(&ctx_drops) == 2);
  jitrt_custom_unit_t nosyms = {"u", NULL, 1, NULL, noop_materialize, NULL, count_drop};
  CHECK_ERR(jitrt_tracker_define_custom(t, &nosyms), INVALID);
  CHECK(atomic_load(&ctx_drops) == 3);
  jitrt_symbol_t nullname = {NULL, 0, JITRT_SYMBOL_EXPORTED};
  jitrt_custom_unit_t nname = {"u", &nullname, 1, NULL, noop_materialize, NULL, count_drop};
  CHECK_ERR(jitrt_tracker_define_custom(t, &nname), INVALID);
  CHECK(atomic_load(&ctx_drops) == 4);
  jitrt_custom_unit_t dup = {"u", twice, 2, NULL, noop_materialize, NULL, count_drop};
  e = jitrt_tracker_define_custom(t, &dup);
  CHECK(e != NULL);
  jitrt_error_free(e);
  CHECK(atomic_load(&ctx_drops) == 5);
  /* NULL unit name and NULL drop/discard are fine; no symbols is fine */
  jitrt_custom_unit_t anon = {NULL, &us, 1, NULL, noop_materialize, NULL, NULL};
  CHECK_OK(jitrt_tracker_define_custom(t, &anon));
  jitrt_custom_unit_t empty = {"empty", NULL, 0, NULL, noop_materialize, NULL, count_drop};
  e = jitrt_tracker_define_custom(t, &empty);
  jitrt_error_free(e);
  CHECK(atomic_load(&ctx_drops) == 6); /* dropped now (nothing to wait for) or on error */
  CHECK_ERR(jitrt_lookup(d, "u1", &a), JITRT_ERR_MATERIALIZATION_FAILED);

  jitrt_tracker_release(t);
  jitrt_session_free(s);
}

static void lookup_null_args(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_symbol_t sym = {"x", 0x40, JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_define_absolute(d, &sym, 1));
  uint64_t a = 7;
  CHECK_ERR(jitrt_lookup(NULL, "x", &a), INVALID);
  CHECK_ERR(jitrt_lookup(d, NULL, &a), INVALID);
  CHECK_ERR(jitrt_lookup(d, "x", NULL), INVALID);
  CHECK(a == 7); /* outputs are written only on success */
  CHECK_ERR(jitrt_lookup(d, "nope", &a), JITRT_ERR_SYMBOL_NOT_FOUND);
  CHECK(a == 7);

  const char *names[2] = {"x", "x"};
  const char *with_null[2] = {"x", NULL};
  jitrt_dylib_t *order_null[2] = {d, NULL};
  uint64_t out[2] = {7, 7};
  CHECK_ERR(jitrt_lookup_many(NULL, &d, 1, names, 2, out), INVALID);
  CHECK_ERR(jitrt_lookup_many(s, NULL, 1, names, 2, out), INVALID);
  CHECK_ERR(jitrt_lookup_many(s, &d, 0, names, 2, out), INVALID);
  CHECK_ERR(jitrt_lookup_many(s, order_null, 2, names, 2, out), INVALID);
  CHECK_ERR(jitrt_lookup_many(s, &d, 1, NULL, 2, out), INVALID);
  CHECK_ERR(jitrt_lookup_many(s, &d, 1, with_null, 2, out), INVALID);
  CHECK_ERR(jitrt_lookup_many(s, &d, 1, names, 2, NULL), INVALID);
  CHECK(out[0] == 7 && out[1] == 7);
  CHECK_OK(jitrt_lookup_many(s, &d, 1, names, 2, out));
  CHECK(out[0] == 0x40 && out[1] == 0x40);

  atomic_store(&done_calls, 0);
  CHECK_ERR(jitrt_lookup_async(NULL, &d, 1, names, 2, count_done, NULL), INVALID);
  CHECK_ERR(jitrt_lookup_async(s, NULL, 1, names, 2, count_done, NULL), INVALID);
  CHECK_ERR(jitrt_lookup_async(s, &d, 0, names, 2, count_done, NULL), INVALID);
  CHECK_ERR(jitrt_lookup_async(s, order_null, 2, names, 2, count_done, NULL), INVALID);
  CHECK_ERR(jitrt_lookup_async(s, &d, 1, NULL, 2, count_done, NULL), INVALID);
  CHECK_ERR(jitrt_lookup_async(s, &d, 1, with_null, 2, count_done, NULL), INVALID);
  CHECK_ERR(jitrt_lookup_async(s, &d, 1, names, 2, NULL, NULL), INVALID);
  CHECK(atomic_load(&done_calls) == 0); /* done is not called when it returns an error */
  CHECK_OK(jitrt_lookup_async(s, &d, 1, names, 2, count_done, NULL));
  for (int i = 0; i < 5000 && atomic_load(&done_calls) == 0; i++) tu_usleep(1000);
  CHECK(atomic_load(&done_calls) == 1);
  jitrt_session_free(s);
}

static void mr_null_args(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *u = tu_unit_new(TU_HOLD, "m", NULL);
  CHECK_OK(tu_unit_define(t, u));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(s, d, "m", &w));
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  CHECK(mr != NULL);

  CHECK(jitrt_mr_dylib(NULL) == NULL);
  CHECK(jitrt_mr_num_symbols(NULL) == 0);
  CHECK(jitrt_mr_symbol_name(NULL, 0) == NULL);
  CHECK_ERR(jitrt_mr_with_resource_key_do(NULL, noop_key, NULL), INVALID);
  jitrt_symbol_t sym = {"m", tu_addr("m"), JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_mr_notify_resolved(NULL, &sym, 1), INVALID);
  const char *dep = "m";
  CHECK_ERR(jitrt_mr_add_dependencies(NULL, d, &dep, 1), INVALID);
  CHECK_ERR(jitrt_mr_notify_emitted(NULL), INVALID);
  jitrt_mr_fail(NULL);
  if (mr) {
    CHECK(jitrt_mr_symbol_name(mr, 0) != NULL && strcmp(jitrt_mr_symbol_name(mr, 0), "m") == 0);
    CHECK(jitrt_mr_symbol_name(mr, 1) == NULL);
    CHECK(jitrt_mr_symbol_name(mr, (size_t)-1) == NULL);
    CHECK_ERR(jitrt_mr_with_resource_key_do(mr, NULL, NULL), INVALID);
    CHECK_ERR(jitrt_mr_notify_resolved(mr, NULL, 1), INVALID);
    CHECK_ERR(jitrt_mr_add_dependencies(mr, NULL, &dep, 1), INVALID);
    CHECK_ERR(jitrt_mr_add_dependencies(mr, d, NULL, 1), INVALID);
    const char *nulldep = NULL;
    CHECK_ERR(jitrt_mr_add_dependencies(mr, d, &nulldep, 1), INVALID);
    jitrt_symbol_t nn = {NULL, 1, JITRT_SYMBOL_EXPORTED};
    CHECK_ERR(jitrt_mr_notify_resolved(mr, &nn, 1), INVALID);
    /* a symbol that is not this unit's */
    jitrt_symbol_t other = {"not_mine", 1, JITRT_SYMBOL_EXPORTED};
    jitrt_error_t *e = jitrt_mr_notify_resolved(mr, &other, 1);
    CHECK(e != NULL);
    jitrt_error_free(e);
    CHECK(!tu_waiter_done(&w));
    CHECK_OK(jitrt_mr_notify_resolved(mr, NULL, 0));
    /* resolving twice is an error; emitting before resolving all too */
    CHECK_OK(jitrt_mr_notify_resolved(mr, &sym, 1));
    e = jitrt_mr_notify_resolved(mr, &sym, 1);
    CHECK(e != NULL);
    jitrt_error_free(e);
    CHECK_OK(jitrt_mr_notify_emitted(mr));
    CHECK(tu_waiter_wait(&w, 5000) && w.code == JITRT_OK);
  }
  /* emitting without resolving fails the unit's symbols */
  tu_unit_t *v = tu_unit_new(TU_HOLD, "n", NULL);
  CHECK_OK(tu_unit_define(t, v));
  tu_waiter_t w2;
  tu_waiter_init(&w2);
  CHECK_OK(tu_lookup_async1(s, d, "n", &w2));
  jitrt_mr_t *mr2 = tu_unit_take_mr(v);
  if (mr2) {
    jitrt_error_t *e = jitrt_mr_notify_emitted(mr2);
    CHECK(e != NULL);
    jitrt_error_free(e);
    CHECK(tu_waiter_wait(&w2, 5000));
    CHECK(w2.code == JITRT_ERR_MATERIALIZATION_FAILED);
  }
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  tu_waiter_destroy(&w);
  tu_waiter_destroy(&w2);
  tu_unit_free(u);
  tu_unit_free(v);
}

static void cross_dylib_transfer(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *a = test_dylib(s, "a");
  jitrt_dylib_t *b = test_dylib(s, "b");
  tu_rm_t rm;
  tu_rm_init(&rm);
  CHECK_OK(tu_rm_register(s, &rm, NULL));
  jitrt_tracker_t *ta = jitrt_dylib_create_tracker(a);
  jitrt_tracker_t *tb = jitrt_dylib_create_tracker(b);
  jitrt_symbol_t sa = {"sa", tu_addr("sa"), JITRT_SYMBOL_EXPORTED};
  jitrt_symbol_t sb = {"sb", tu_addr("sb"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(ta, &sa, 1));
  CHECK_OK(jitrt_tracker_define_absolute(tb, &sb, 1));
  CHECK_ERR(jitrt_tracker_transfer_to(ta, tb), INVALID);
  CHECK_ERR(jitrt_tracker_transfer_to(tb, ta), INVALID);
  CHECK(!jitrt_tracker_is_defunct(ta) && !jitrt_tracker_is_defunct(tb));
  CHECK(rm.ntransfers == 0);
  uint64_t x = 0;
  CHECK_OK(jitrt_lookup(a, "sa", &x));
  CHECK_OK(jitrt_lookup(b, "sb", &x));
  CHECK_OK(jitrt_tracker_remove(tb));
  CHECK_OK(jitrt_lookup(a, "sa", &x));
  CHECK_ERR(jitrt_lookup(b, "sb", &x), JITRT_ERR_SYMBOL_NOT_FOUND);

  /* another session's tracker and dylib */
  jitrt_session_t *s2 = test_session();
  jitrt_dylib_t *c = test_dylib(s2, "a");
  jitrt_tracker_t *tc = jitrt_dylib_create_tracker(c);
  jitrt_error_t *e = jitrt_tracker_transfer_to(ta, tc);
  CHECK(e != NULL && (jitrt_error_code(e) == INVALID || jitrt_error_code(e) == JITRT_ERR_TRACKER_DEFUNCT));
  jitrt_error_free(e);
  CHECK(!jitrt_tracker_is_defunct(ta) && !jitrt_tracker_is_defunct(tc));
  jitrt_dylib_t *mixed[2] = {a, c};
  const char *n = "sa";
  CHECK_ERR(jitrt_lookup_many(s, mixed, 2, &n, 1, &x), INVALID);
  CHECK_ERR(jitrt_dylib_set_link_order(a, &c, 1), INVALID);
  jitrt_alias_t al = {"re", "sa", JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_aliases(tc, a, &al, 1), INVALID);
  CHECK_OK(jitrt_lookup(a, "sa", &x));
  jitrt_tracker_release(tc);
  jitrt_session_free(s2);

  jitrt_tracker_release(ta);
  jitrt_tracker_release(tb);
  jitrt_session_free(s);
  tu_rm_destroy(&rm);
}

static void defunct_trackers(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  jitrt_tracker_t *live = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t sym = {"x", 1, JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &sym, 1));
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(jitrt_tracker_is_defunct(t));
  CHECK(jitrt_tracker_dylib(t) == d); /* still answers */
  CHECK(jitrt_tracker_key(t) != 0);
  CHECK_ERR(jitrt_tracker_define_absolute(t, &sym, 1), JITRT_ERR_TRACKER_DEFUNCT);
  jitrt_alias_t al = {"al", "x", JITRT_SYMBOL_EXPORTED};
  CHECK_ERR(jitrt_tracker_define_aliases(t, NULL, &al, 1), JITRT_ERR_TRACKER_DEFUNCT);
  atomic_store(&ctx_drops, 0);
  jitrt_custom_unit_t cu = {"u", &sym, 1, NULL, noop_materialize, NULL, count_drop};
  CHECK_ERR(jitrt_tracker_define_custom(t, &cu), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK(atomic_load(&ctx_drops) == 1);
  CHECK_ERR(jitrt_tracker_transfer_to(t, live), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK_ERR(jitrt_tracker_transfer_to(live, t), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK(!jitrt_tracker_is_defunct(live));
  /* double remove is a no-op */
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK_OK(jitrt_tracker_remove(t));
  uint64_t a = 0;
  CHECK_ERR(jitrt_lookup(d, "x", &a), JITRT_ERR_SYMBOL_NOT_FOUND);
  /* transferred away: defunct as well */
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_transfer_to(t2, live));
  CHECK(jitrt_tracker_is_defunct(t2));
  CHECK_ERR(jitrt_tracker_define_absolute(t2, &sym, 1), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK_OK(jitrt_tracker_remove(t2));
  /* a retained tracker stays valid as a handle */
  jitrt_tracker_retain(t);
  jitrt_tracker_release(t);
  CHECK(jitrt_tracker_is_defunct(t));
  jitrt_tracker_release(t);
  jitrt_tracker_release(t2);
  jitrt_tracker_release(live);

  /* trackers outlive their session as handles: defunct, and releasable */
  jitrt_tracker_t *late = jitrt_dylib_create_tracker(d);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(d);
  CHECK_OK(jitrt_tracker_define_absolute(late, &sym, 1));
  jitrt_session_free(s);
  CHECK(jitrt_tracker_is_defunct(late));
  CHECK(jitrt_tracker_key(late) != 0);
  jitrt_error_t *e = jitrt_tracker_define_absolute(late, &sym, 1);
  CHECK(e != NULL && (jitrt_error_code(e) == JITRT_ERR_SESSION_ENDED ||
                      jitrt_error_code(e) == JITRT_ERR_TRACKER_DEFUNCT));
  jitrt_error_free(e);
  e = jitrt_tracker_remove(late);
  CHECK(e == NULL || jitrt_error_code(e) == JITRT_ERR_SESSION_ENDED);
  jitrt_error_free(e);
  jitrt_tracker_release(late);
  jitrt_tracker_release(dt);
}

/* Freeing a session with lookups pending: they complete with an error, and
 * every context is dropped exactly once. */
static atomic_int unit_drops, gen_drops, rm_drops;
static void unit_drop(void *ctx) {
  (void)ctx;
  atomic_fetch_add(&unit_drops, 1);
}
static void gen_drop(void *ctx) {
  (void)ctx;
  atomic_fetch_add(&gen_drops, 1);
}
static void rm_drop(void *ctx) {
  (void)ctx;
  atomic_fetch_add(&rm_drops, 1);
}
static jitrt_mr_t *_Atomic stashed[4];
static atomic_int nstashed;
static void stash_materialize(void *ctx, jitrt_mr_t *mr) {
  (void)ctx;
  atomic_store(&stashed[atomic_fetch_add(&nstashed, 1)], mr);
}

static void free_with_pending_lookups(void) {
  atomic_store(&unit_drops, 0);
  atomic_store(&gen_drops, 0);
  atomic_store(&rm_drops, 0);
  atomic_store(&nstashed, 0);
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_dylib_t *d2 = test_dylib(s, "d2");
  CHECK_OK(jitrt_dylib_add_generator(d, noop_gen, NULL, gen_drop));
  CHECK_OK(jitrt_dylib_add_generator(d2, noop_gen, NULL, gen_drop));
  jitrt_resource_manager_t rm = {NULL, NULL, NULL, rm_drop};
  CHECK_OK(jitrt_session_add_resource_manager(s, &rm, NULL));
  CHECK_OK(jitrt_session_add_resource_manager(s, &rm, NULL));
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t s1 = {"never", 0, JITRT_SYMBOL_EXPORTED};
  jitrt_symbol_t s2 = {"never2", 0, JITRT_SYMBOL_EXPORTED};
  jitrt_symbol_t s3 = {"unlooked", 0, JITRT_SYMBOL_EXPORTED};
  jitrt_custom_unit_t u1 = {"u1", &s1, 1, NULL, stash_materialize, NULL, unit_drop};
  jitrt_custom_unit_t u2 = {"u2", &s2, 1, NULL, stash_materialize, NULL, unit_drop};
  jitrt_custom_unit_t u3 = {"u3", &s3, 1, NULL, stash_materialize, NULL, unit_drop};
  CHECK_OK(jitrt_tracker_define_custom(t, &u1));
  CHECK_OK(jitrt_tracker_define_custom(t, &u2));
  CHECK_OK(jitrt_tracker_define_custom(t, &u3)); /* never materialized */
  tu_waiter_t w[5];
  for (int i = 0; i < 5; i++) tu_waiter_init(&w[i]);
  CHECK_OK(tu_lookup_async1(s, d, "never", &w[0]));
  CHECK_OK(tu_lookup_async1(s, d, "never", &w[1]));
  CHECK_OK(tu_lookup_async1(s, d, "never2", &w[2]));
  const char *both[2] = {"never", "never2"};
  CHECK_OK(tu_lookup_async(s, d, both, 2, &w[3]));
  /* a re-export waiting on "never" */
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(d2);
  jitrt_alias_t al = {"never_r", "never", JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_aliases(t2, d, &al, 1));
  CHECK_OK(tu_lookup_async1(s, d2, "never_r", &w[4]));
  for (int i = 0; i < 5000 && atomic_load(&nstashed) < 2; i++) tu_usleep(1000);
  CHECK(atomic_load(&nstashed) == 2);
  for (int i = 0; i < 5; i++) CHECK(!tu_waiter_done(&w[i]));

  jitrt_session_free(s);
  for (int i = 0; i < 5; i++) {
    CHECK(atomic_load(&w[i].calls) == 1);
    CHECK(w[i].code == JITRT_ERR_SESSION_ENDED || w[i].code == JITRT_ERR_MATERIALIZATION_FAILED);
  }
  CHECK(atomic_load(&unit_drops) == 3);
  CHECK(atomic_load(&gen_drops) == 2);
  CHECK(atomic_load(&rm_drops) == 2);
  /* the held responsibilities are still owned by the "unit": ending them
   * after the session is gone must not crash */
  for (int i = 0; i < atomic_load(&nstashed); i++) {
    jitrt_mr_t *mr = atomic_load(&stashed[i]);
    if (i == 0) {
      jitrt_mr_fail(mr);
    } else {
      jitrt_error_t *e = tu_resolve_emit(mr);
      CHECK(e != NULL);
      jitrt_error_free(e);
    }
  }
  CHECK(atomic_load(&unit_drops) == 3);
  CHECK(atomic_load(&gen_drops) == 2);
  CHECK(atomic_load(&rm_drops) == 2);
  for (int i = 0; i < 5; i++) CHECK(atomic_load(&w[i].calls) == 1);
  jitrt_tracker_release(t);
  jitrt_tracker_release(t2);
  for (int i = 0; i < 5; i++) tu_waiter_destroy(&w[i]);
}

/* Freeing a session while units materialize on threads of their own. */
static void free_while_materializing(void) {
  atomic_store(&unit_drops, 0);
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  tu_unit_t *u[8];
  tu_waiter_t w[8];
  char names[8][8];
  for (int i = 0; i < 8; i++) {
    snprintf(names[i], sizeof names[i], "s%d", i);
    u[i] = tu_unit_new(i % 2 ? TU_THREAD_EMIT : TU_SLEEP_EMIT, names[i], NULL);
    u[i]->delay_us = 20000;
    u[i]->drop_counter = &unit_drops;
    CHECK_OK(tu_unit_define(t, u[i]));
    tu_waiter_init(&w[i]);
    CHECK_OK(tu_lookup_async1(s, d, names[i], &w[i]));
  }
  jitrt_session_free(s);
  tu_wait_threads();
  for (int i = 0; i < 8; i++) {
    CHECK(tu_waiter_wait(&w[i], 5000));
    CHECK(atomic_load(&w[i].calls) == 1);
    CHECK(w[i].code == JITRT_OK || w[i].code == JITRT_ERR_SESSION_ENDED ||
          w[i].code == JITRT_ERR_MATERIALIZATION_FAILED);
    CHECK(atomic_load(&u[i]->dropped) == 1);
    tu_waiter_destroy(&w[i]);
    tu_unit_free(u[i]);
  }
  CHECK(atomic_load(&unit_drops) == 8);
  jitrt_tracker_release(t);
}

int main(void) {
  test_watchdog(60);
  TU_RUN(errors_and_frees);
  TU_RUN(session_null_args);
  TU_RUN(session_options);
  TU_RUN(dylib_null_args);
  TU_RUN(tracker_null_args);
  TU_RUN(lookup_null_args);
  TU_RUN(mr_null_args);
  TU_RUN(cross_dylib_transfer);
  TU_RUN(defunct_trackers);
  TU_RUN(free_with_pending_lookups);
  TU_RUN(free_while_materializing);
  return test_summary();
}
