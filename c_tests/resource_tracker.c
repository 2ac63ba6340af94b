/* Resource trackers, after LLVM's ResourceTrackerTest
 * (llvm/unittests/ExecutionEngine/Orc/ResourceTrackerTest.cpp): removing and
 * transferring before, after and while materializing, clearing a dylib,
 * releasing the last reference, and the resource-manager lifecycle. */
#include "test_util.h"
#include <string.h>

static jitrt_session_t *S;
static jitrt_dylib_t *D;
static tu_rm_t RM;

static void setup(void) {
  S = test_session();
  D = test_dylib(S, "main");
  tu_rm_init(&RM);
  CHECK_OK(tu_rm_register(S, &RM, NULL));
}

static void teardown(void) {
  jitrt_session_free(S);
  CHECK(atomic_load(&RM.drops) == 1);
  tu_rm_destroy(&RM);
  S = NULL;
  D = NULL;
}

/* LLVM: BasicLifecycleAndResourceManagerLifecycle. A manager is dropped
 * when unregistered or when the session ends; managers hear about removals
 * in reverse order of registration. */
static void manager_lifecycle(void) {
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "d");
  tu_rm_t a, b, c;
  tu_rm_init(&a);
  tu_rm_init(&b);
  tu_rm_init(&c);
  uint64_t ida = 0, idb = 0, idc = 0;
  CHECK_OK(tu_rm_register(s, &a, &ida));
  CHECK_OK(tu_rm_register(s, &b, &idb));
  CHECK_OK(tu_rm_register(s, &c, &idc));
  CHECK(ida != idb && idb != idc && ida != idc);
  CHECK_OK(jitrt_session_remove_resource_manager(s, idc));
  CHECK(atomic_load(&c.drops) == 1);
  CHECK_ERR(jitrt_session_remove_resource_manager(s, idc), JITRT_ERR_INVALID_ARGUMENT);
  CHECK(atomic_load(&c.drops) == 1);

  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  uint64_t k = jitrt_tracker_key(t);
  CHECK_OK(jitrt_tracker_remove(t));
  /* every manager hears of every removed tracker, even one it never saw */
  CHECK(tu_rm_removed(&a, k) == 1);
  CHECK(tu_rm_removed(&b, k) == 1);
  CHECK(tu_rm_removed(&c, k) == 0);
  /* reverse order of registration: b before a */
  CHECK(b.seq_remove != 0 && a.seq_remove != 0 && b.seq_remove < a.seq_remove);
  jitrt_tracker_release(t);

  CHECK(atomic_load(&a.drops) == 0 && atomic_load(&b.drops) == 0);
  jitrt_session_free(s);
  CHECK(atomic_load(&a.drops) == 1 && atomic_load(&b.drops) == 1 && atomic_load(&c.drops) == 1);
  tu_rm_destroy(&a);
  tu_rm_destroy(&b);
  tu_rm_destroy(&c);
}

/* An error from handle_remove comes back from jitrt_tracker_remove, and the
 * tracker is still removed. */
static void manager_remove_error(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  jitrt_symbol_t sym = {"x", tu_addr("x"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &sym, 1));
  RM.fail_remove = JITRT_ERR_IO;
  jitrt_error_t *e = jitrt_tracker_remove(t);
  CHECK(e != NULL);
  CHECK(jitrt_error_code(e) == JITRT_ERR_CALLBACK || jitrt_error_code(e) == JITRT_ERR_IO);
  jitrt_error_free(e);
  RM.fail_remove = JITRT_OK;
  CHECK(jitrt_tracker_is_defunct(t));
  CHECK(tu_found(D, "x") == 0);
  jitrt_tracker_release(t);
  teardown();
}

/* LLVM: BasicDefineAndRemoveAllBeforeMaterializing. */
static void remove_before_materializing(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  uint64_t k = jitrt_tracker_key(t);
  tu_unit_t *u = tu_unit_new(TU_EMIT, "foo", NULL);
  u->rm = &RM;
  CHECK_OK(tu_unit_define(t, u));
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 1);
  CHECK(!jitrt_tracker_is_defunct(t));
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(jitrt_tracker_is_defunct(t));
  CHECK(tu_await(&u->dropped, 1));
  CHECK(atomic_load(&u->materialized) == 0);
  CHECK(tu_rm_removed(&RM, k) == 1);
  CHECK(tu_found(D, "foo") == 0);
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 0);
  /* the name is free again */
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(D);
  jitrt_symbol_t sym = {"foo", tu_addr("foo"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t2, &sym, 1));
  CHECK(tu_found(D, "foo") == 1);
  jitrt_tracker_release(t2);
  jitrt_tracker_release(t);
  teardown();
  CHECK(atomic_load(&u->materialized) == 0 && tu_await(&u->dropped, 1));
  tu_unit_free(u);
}

/* LLVM: BasicDefineAndRemoveAllAfterMaterializing. */
static void remove_after_materializing(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  uint64_t k = jitrt_tracker_key(t);
  tu_unit_t *u = tu_unit_new(TU_EMIT, "foo", NULL);
  u->rm = &RM;
  CHECK_OK(tu_unit_define(t, u));
  CHECK(tu_found(D, "foo") == 1);
  CHECK(atomic_load(&u->materialized) == 1);
  CHECK(atomic_load(&u->key) == k);
  CHECK(tu_rm_live(&RM, k) == 1);
  CHECK(tu_rm_removed(&RM, k) == 0);
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(tu_rm_removed(&RM, k) == 1);
  CHECK(tu_rm_live(&RM, k) == 0);
  CHECK(tu_found(D, "foo") == 0);
  CHECK(tu_await(&u->dropped, 1));
  jitrt_tracker_release(t);
  teardown();
  CHECK(atomic_load(&u->materialized) == 1 && tu_await(&u->dropped, 1));
  tu_unit_free(u);
}

static int key_fn_runs;
static void key_fn(void *ctx, uint64_t key) {
  *(uint64_t *)ctx = key;
  key_fn_runs++;
}

/* LLVM: BasicDefineAndRemoveAllWhileMaterializing. */
static void remove_while_materializing(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  uint64_t k = jitrt_tracker_key(t);
  tu_unit_t *u = tu_unit_new(TU_HOLD, "foo", "bar", NULL);
  u->rm = &RM;
  CHECK_OK(tu_unit_define(t, u));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(S, D, "foo", &w));
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  CHECK(mr != NULL);
  if (!mr) return;
  CHECK(jitrt_mr_dylib(mr) == D);
  CHECK(jitrt_mr_num_symbols(mr) == 2);
  uint64_t key = 0;
  key_fn_runs = 0;
  CHECK_OK(jitrt_mr_with_resource_key_do(mr, key_fn, &key));
  CHECK(key == k && key_fn_runs == 1);
  CHECK(!tu_waiter_done(&w));

  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(tu_rm_removed(&RM, k) == 1);
  CHECK(tu_rm_live(&RM, k) == 0);
  /* the waiting lookup fails */
  CHECK(tu_waiter_wait(&w, 5000));
  CHECK(w.code == JITRT_ERR_MATERIALIZATION_FAILED);
  CHECK(atomic_load(&w.calls) == 1);
  /* every operation on the responsibility now reports a defunct tracker */
  jitrt_symbol_t syms[2] = {{"foo", tu_addr("foo"), JITRT_SYMBOL_EXPORTED},
                            {"bar", tu_addr("bar"), JITRT_SYMBOL_EXPORTED}};
  CHECK_ERR(jitrt_mr_notify_resolved(mr, syms, 2), JITRT_ERR_TRACKER_DEFUNCT);
  key_fn_runs = 0;
  CHECK_ERR(jitrt_mr_with_resource_key_do(mr, key_fn, &key), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK(key_fn_runs == 0);
  const char *dep = "foo";
  jitrt_error_t *e = jitrt_mr_add_dependencies(mr, D, &dep, 1);
  CHECK(e == NULL || jitrt_error_code(e) == JITRT_ERR_TRACKER_DEFUNCT);
  jitrt_error_free(e);
  CHECK_ERR(jitrt_mr_notify_emitted(mr), JITRT_ERR_TRACKER_DEFUNCT); /* consumes mr */
  CHECK(tu_found(D, "foo") == 0);
  CHECK(tu_found(D, "bar") == 0);
  CHECK(tu_rm_live(&RM, k) == 0);
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 0);

  /* the same with jitrt_mr_fail: a no-op after the removal */
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(D);
  tu_unit_t *u2 = tu_unit_new(TU_HOLD, "foo", NULL);
  CHECK_OK(tu_unit_define(t2, u2));
  tu_waiter_t w2;
  tu_waiter_init(&w2);
  CHECK_OK(tu_lookup_async1(S, D, "foo", &w2));
  jitrt_mr_t *mr2 = tu_unit_take_mr(u2);
  CHECK(mr2 != NULL);
  CHECK_OK(jitrt_tracker_remove(t2));
  CHECK(tu_waiter_wait(&w2, 5000));
  CHECK(w2.code == JITRT_ERR_MATERIALIZATION_FAILED);
  if (mr2) jitrt_mr_fail(mr2);
  CHECK(atomic_load(&w2.calls) == 1);
  CHECK(tu_found(D, "foo") == 0);
  /* and the name can be defined again under another tracker */
  jitrt_tracker_t *t3 = jitrt_dylib_create_tracker(D);
  tu_unit_t *u3 = tu_unit_new(TU_EMIT, "foo", NULL);
  CHECK_OK(tu_unit_define(t3, u3));
  CHECK(tu_found(D, "foo") == 1);

  jitrt_tracker_release(t);
  jitrt_tracker_release(t2);
  jitrt_tracker_release(t3);
  teardown();
  CHECK(tu_await(&u->dropped, 1) && tu_await(&u2->dropped, 1));
  CHECK(tu_await(&u3->dropped, 1));
  tu_waiter_destroy(&w);
  tu_waiter_destroy(&w2);
  tu_unit_free(u);
  tu_unit_free(u2);
  tu_unit_free(u3);
}

/* Removing the tracker while the unit's materialize is still running on
 * another thread (resolve done, emit pending). */
static void remove_while_resolved(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  tu_unit_t *u = tu_unit_new(TU_HOLD, "foo", NULL);
  CHECK_OK(tu_unit_define(t, u));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(S, D, "foo", &w));
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  CHECK(mr != NULL);
  if (!mr) return;
  CHECK_OK(tu_resolve(mr));
  CHECK(!tu_waiter_done(&w)); /* client lookups wait for emission */
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(tu_waiter_wait(&w, 5000));
  CHECK(w.code == JITRT_ERR_MATERIALIZATION_FAILED);
  CHECK_ERR(jitrt_mr_notify_emitted(mr), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK(tu_found(D, "foo") == 0);
  jitrt_tracker_release(t);
  teardown();
  CHECK(tu_await(&u->dropped, 1));
  tu_waiter_destroy(&w);
  tu_unit_free(u);
}

/* LLVM: JITDylibClear. */
static void dylib_clear(void) {
  setup();
  jitrt_dylib_t *other = test_dylib(S, "other");
  jitrt_symbol_t keep = {"keep", tu_addr("keep"), JITRT_SYMBOL_EXPORTED};
  jitrt_tracker_t *ot = jitrt_dylib_default_tracker(other);
  CHECK_OK(jitrt_tracker_define_absolute(ot, &keep, 1));

  jitrt_tracker_t *t1 = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(D);
  uint64_t k1 = jitrt_tracker_key(t1), k2 = jitrt_tracker_key(t2), kd = jitrt_tracker_key(dt);
  tu_unit_t *u1 = tu_unit_new(TU_EMIT, "a", NULL); /* materialized before clear */
  tu_unit_t *u2 = tu_unit_new(TU_EMIT, "b", NULL); /* never materialized */
  u1->rm = &RM;
  CHECK_OK(tu_unit_define(t1, u1));
  CHECK_OK(tu_unit_define(t2, u2));
  jitrt_symbol_t c = {"c", tu_addr("c"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(dt, &c, 1));
  CHECK(tu_found(D, "a") == 1);
  CHECK(tu_found(D, "c") == 1);
  CHECK(tu_rm_live(&RM, k1) == 1);

  CHECK_OK(jitrt_dylib_clear(D));
  CHECK(jitrt_tracker_is_defunct(t1) && jitrt_tracker_is_defunct(t2) && jitrt_tracker_is_defunct(dt));
  CHECK(tu_rm_removed(&RM, k1) == 1 && tu_rm_removed(&RM, k2) == 1 && tu_rm_removed(&RM, kd) == 1);
  CHECK(tu_rm_live(&RM, k1) == 0);
  CHECK(tu_found(D, "a") == 0 && tu_found(D, "b") == 0 && tu_found(D, "c") == 0);
  CHECK(tu_await(&u1->dropped, 1) && tu_await(&u2->dropped, 1));
  CHECK(atomic_load(&u2->materialized) == 0);
  /* the other dylib is untouched */
  CHECK(!jitrt_tracker_is_defunct(ot));
  CHECK(tu_found(other, "keep") == 1);
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 1);
  /* the dylib stays usable, with a new default tracker */
  jitrt_tracker_t *nd = jitrt_dylib_default_tracker(D);
  CHECK(nd != NULL && !jitrt_tracker_is_defunct(nd));
  CHECK(jitrt_tracker_key(nd) != kd);
  CHECK_OK(jitrt_tracker_define_absolute(nd, &c, 1));
  CHECK(tu_found(D, "c") == 1);
  /* clearing an empty dylib is fine too */
  CHECK_OK(jitrt_dylib_clear(other));
  CHECK_OK(jitrt_dylib_clear(other));
  CHECK(tu_found(other, "keep") == 0);

  jitrt_tracker_release(nd);
  jitrt_tracker_release(t1);
  jitrt_tracker_release(t2);
  jitrt_tracker_release(dt);
  jitrt_tracker_release(ot);
  teardown();
  tu_unit_free(u1);
  tu_unit_free(u2);
}

/* LLVM: BasicDefineAndExplicitTransferBeforeMaterializing. */
static void transfer_before_materializing(void) {
  setup();
  jitrt_tracker_t *src = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *dst = jitrt_dylib_create_tracker(D);
  uint64_t ks = jitrt_tracker_key(src), kd = jitrt_tracker_key(dst);
  tu_unit_t *u = tu_unit_new(TU_EMIT, "foo", NULL);
  u->rm = &RM;
  CHECK_OK(tu_unit_define(src, u));
  CHECK_OK(jitrt_tracker_transfer_to(src, dst));
  CHECK(tu_rm_transferred(&RM, kd, ks) == 1);
  CHECK(jitrt_tracker_is_defunct(src));
  CHECK(!jitrt_tracker_is_defunct(dst));
  /* removing the (defunct) source is a no-op */
  CHECK_OK(jitrt_tracker_remove(src));
  CHECK(tu_found(D, "foo") == 1);
  CHECK(atomic_load(&u->key) == kd);
  CHECK(tu_rm_live(&RM, kd) == 1);
  CHECK_OK(jitrt_tracker_remove(dst));
  CHECK(tu_rm_removed(&RM, kd) == 1);
  CHECK(tu_rm_live(&RM, kd) == 0);
  CHECK(tu_found(D, "foo") == 0);
  CHECK(tu_await(&u->dropped, 1));

  /* transferring before materializing, then removing dst before
   * materializing: the unit is dropped without running */
  jitrt_tracker_t *a = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *b = jitrt_dylib_create_tracker(D);
  tu_unit_t *v = tu_unit_new(TU_EMIT, "bar", NULL);
  CHECK_OK(tu_unit_define(a, v));
  CHECK_OK(jitrt_tracker_transfer_to(a, b));
  CHECK_OK(jitrt_tracker_remove(b));
  CHECK(atomic_load(&v->materialized) == 0 && tu_await(&v->dropped, 1));
  CHECK(tu_found(D, "bar") == 0);

  jitrt_tracker_release(src);
  jitrt_tracker_release(dst);
  jitrt_tracker_release(a);
  jitrt_tracker_release(b);
  teardown();
  tu_unit_free(u);
  tu_unit_free(v);
}

/* LLVM: BasicDefineAndExplicitTransferAfterMaterializing. */
static void transfer_after_materializing(void) {
  setup();
  jitrt_tracker_t *src = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *dst = jitrt_dylib_create_tracker(D);
  uint64_t ks = jitrt_tracker_key(src), kd = jitrt_tracker_key(dst);
  tu_unit_t *u = tu_unit_new(TU_EMIT, "foo", NULL);
  u->rm = &RM;
  CHECK_OK(tu_unit_define(src, u));
  jitrt_symbol_t abs = {"abs", tu_addr("abs"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(src, &abs, 1));
  CHECK(tu_found(D, "foo") == 1);
  CHECK(tu_rm_live(&RM, ks) == 1);
  CHECK_OK(jitrt_tracker_transfer_to(src, dst));
  CHECK(tu_rm_transferred(&RM, kd, ks) == 1);
  CHECK(tu_rm_live(&RM, ks) == 0 && tu_rm_live(&RM, kd) == 1);
  CHECK(jitrt_tracker_is_defunct(src));
  CHECK_OK(jitrt_tracker_remove(src)); /* no-op */
  CHECK(tu_rm_removed(&RM, kd) == 0);
  CHECK(tu_found(D, "foo") == 1 && tu_found(D, "abs") == 1);
  CHECK_OK(jitrt_tracker_remove(dst));
  CHECK(tu_rm_removed(&RM, kd) == 1);
  CHECK(tu_rm_live(&RM, kd) == 0);
  CHECK(tu_found(D, "foo") == 0 && tu_found(D, "abs") == 0);
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 0);
  jitrt_tracker_release(src);
  jitrt_tracker_release(dst);
  teardown();
  tu_unit_free(u);
}

/* LLVM: BasicDefineAndExplicitTransferWhileMaterializing. */
static void transfer_while_materializing(void) {
  setup();
  jitrt_tracker_t *src = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *dst = jitrt_dylib_create_tracker(D);
  uint64_t ks = jitrt_tracker_key(src), kd = jitrt_tracker_key(dst);
  tu_unit_t *u = tu_unit_new(TU_HOLD, "foo", NULL);
  CHECK_OK(tu_unit_define(src, u));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(S, D, "foo", &w));
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  CHECK(mr != NULL);
  if (!mr) return;
  uint64_t key = 0;
  CHECK_OK(jitrt_mr_with_resource_key_do(mr, key_fn, &key));
  CHECK(key == ks);
  CHECK_OK(jitrt_tracker_transfer_to(src, dst));
  CHECK(tu_rm_transferred(&RM, kd, ks) == 1);
  key = 0;
  CHECK_OK(jitrt_mr_with_resource_key_do(mr, key_fn, &key));
  CHECK(key == kd);
  tu_rm_add(&RM, key);
  CHECK_OK(jitrt_tracker_remove(src)); /* defunct: no-op, the mr survives */
  CHECK(!tu_waiter_done(&w));
  CHECK_OK(tu_resolve_emit(mr));
  CHECK(tu_waiter_wait(&w, 5000));
  CHECK(w.code == JITRT_OK && w.n == 1 && w.addrs[0] == tu_addr("foo"));
  CHECK(tu_found(D, "foo") == 1);
  CHECK_OK(jitrt_tracker_remove(dst));
  CHECK(tu_rm_live(&RM, kd) == 0);
  CHECK(tu_found(D, "foo") == 0);

  /* transfer while materializing, then remove dst: the mr is defunct */
  jitrt_tracker_t *a = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *b = jitrt_dylib_create_tracker(D);
  tu_unit_t *v = tu_unit_new(TU_HOLD, "bar", NULL);
  CHECK_OK(tu_unit_define(a, v));
  tu_waiter_t w2;
  tu_waiter_init(&w2);
  CHECK_OK(tu_lookup_async1(S, D, "bar", &w2));
  jitrt_mr_t *mr2 = tu_unit_take_mr(v);
  CHECK(mr2 != NULL);
  CHECK_OK(jitrt_tracker_transfer_to(a, b));
  CHECK_OK(jitrt_tracker_remove(b));
  CHECK(tu_waiter_wait(&w2, 5000));
  CHECK(w2.code == JITRT_ERR_MATERIALIZATION_FAILED);
  if (mr2) CHECK_ERR(tu_resolve_emit(mr2), JITRT_ERR_TRACKER_DEFUNCT);

  jitrt_tracker_release(src);
  jitrt_tracker_release(dst);
  jitrt_tracker_release(a);
  jitrt_tracker_release(b);
  teardown();
  CHECK(tu_await(&u->dropped, 1) && tu_await(&v->dropped, 1));
  tu_waiter_destroy(&w);
  tu_waiter_destroy(&w2);
  tu_unit_free(u);
  tu_unit_free(v);
}

/* Transfers chain: a -> b -> default; everything ends up under the final
 * tracker, and transferring to itself does nothing. */
static void transfer_chain_and_self(void) {
  setup();
  jitrt_tracker_t *a = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *b = jitrt_dylib_create_tracker(D);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(D);
  jitrt_symbol_t sa = {"sa", tu_addr("sa"), JITRT_SYMBOL_EXPORTED};
  jitrt_symbol_t sb = {"sb", tu_addr("sb"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(a, &sa, 1));
  CHECK_OK(jitrt_tracker_define_absolute(b, &sb, 1));
  CHECK_OK(jitrt_tracker_transfer_to(a, a));
  CHECK(!jitrt_tracker_is_defunct(a));
  CHECK(tu_rm_transferred(&RM, jitrt_tracker_key(a), jitrt_tracker_key(a)) == 0);
  CHECK_OK(jitrt_tracker_transfer_to(a, b));
  CHECK_OK(jitrt_tracker_transfer_to(b, dt));
  CHECK(jitrt_tracker_is_defunct(a) && jitrt_tracker_is_defunct(b));
  CHECK(tu_found(D, "sa") == 1 && tu_found(D, "sb") == 1);
  /* transferring from or to a defunct tracker */
  CHECK_ERR(jitrt_tracker_transfer_to(a, dt), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK_ERR(jitrt_tracker_transfer_to(dt, b), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK(!jitrt_tracker_is_defunct(dt));
  CHECK_OK(jitrt_tracker_remove(dt));
  CHECK(tu_found(D, "sa") == 0 && tu_found(D, "sb") == 0);
  jitrt_tracker_release(a);
  jitrt_tracker_release(b);
  jitrt_tracker_release(dt);
  teardown();
}

/* Releasing the last reference of a live tracker moves its resources to the
 * default tracker. */
static void release_moves_to_default(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  uint64_t kt = jitrt_tracker_key(t);
  tu_unit_t *m = tu_unit_new(TU_EMIT, "mat", NULL);   /* materialized before release */
  tu_unit_t *l = tu_unit_new(TU_EMIT, "later", NULL); /* materialized after */
  m->rm = &RM;
  l->rm = &RM;
  CHECK_OK(tu_unit_define(t, m));
  CHECK_OK(tu_unit_define(t, l));
  jitrt_symbol_t abs = {"abs", tu_addr("abs"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(t, &abs, 1));
  CHECK(tu_found(D, "mat") == 1);
  CHECK(tu_rm_live(&RM, kt) == 1);

  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  uint64_t trackers_before = st.trackers;

  jitrt_tracker_retain(t);
  jitrt_tracker_release(t); /* not the last reference: nothing happens */
  CHECK(!jitrt_tracker_is_defunct(t));
  CHECK(tu_rm_live(&RM, kt) == 1);
  jitrt_tracker_release(t); /* the last one */

  CHECK(tu_rm_removed(&RM, kt) == 0);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(D);
  uint64_t kd = jitrt_tracker_key(dt);
  CHECK(kd != kt);
  CHECK(tu_rm_transferred(&RM, kd, kt) == 1);
  CHECK(tu_rm_live(&RM, kd) == 1);
  CHECK(tu_found(D, "mat") == 1 && tu_found(D, "abs") == 1);
  CHECK(tu_found(D, "later") == 1);
  CHECK(atomic_load(&l->key) == kd);
  CHECK(tu_rm_live(&RM, kd) == 2);
  jitrt_session_stats(S, &st);
  /* t is gone; the default tracker may have been created for it */
  CHECK(st.trackers <= trackers_before);
  CHECK(st.symbols == 3);

  /* removing the default tracker removes them */
  CHECK_OK(jitrt_tracker_remove(dt));
  CHECK(jitrt_tracker_is_defunct(dt));
  CHECK(tu_rm_removed(&RM, kd) == 1);
  CHECK(tu_rm_live(&RM, kd) == 0);
  CHECK(tu_found(D, "mat") == 0 && tu_found(D, "abs") == 0 && tu_found(D, "later") == 0);
  CHECK(tu_await(&m->dropped, 1) && tu_await(&l->dropped, 1));
  /* and a new default tracker is made afterwards, with a different key */
  jitrt_tracker_t *nd = jitrt_dylib_default_tracker(D);
  CHECK(nd != NULL && !jitrt_tracker_is_defunct(nd));
  CHECK(jitrt_tracker_key(nd) != kd && jitrt_tracker_key(nd) != kt);
  jitrt_tracker_t *nd2 = jitrt_dylib_default_tracker(D);
  CHECK(jitrt_tracker_key(nd2) == jitrt_tracker_key(nd));
  jitrt_tracker_release(nd2);
  CHECK_OK(jitrt_tracker_define_absolute(nd, &abs, 1));
  CHECK(tu_found(D, "abs") == 1);

  /* releasing a defunct tracker's last reference changes nothing */
  jitrt_tracker_t *x = jitrt_dylib_create_tracker(D);
  jitrt_symbol_t sx = {"sx", tu_addr("sx"), JITRT_SYMBOL_EXPORTED};
  CHECK_OK(jitrt_tracker_define_absolute(x, &sx, 1));
  CHECK_OK(jitrt_tracker_remove(x));
  int before = RM.ntransfers;
  jitrt_tracker_release(x);
  CHECK(RM.ntransfers == before);
  CHECK(tu_found(D, "sx") == 0);

  jitrt_tracker_release(nd);
  jitrt_tracker_release(dt);
  teardown();
  tu_unit_free(m);
  tu_unit_free(l);
}

/* Releasing the last reference while a unit of the tracker materializes:
 * it finishes under the default tracker. */
static void release_while_materializing(void) {
  setup();
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  uint64_t kt = jitrt_tracker_key(t);
  tu_unit_t *u = tu_unit_new(TU_HOLD, "foo", NULL);
  CHECK_OK(tu_unit_define(t, u));
  tu_waiter_t w;
  tu_waiter_init(&w);
  CHECK_OK(tu_lookup_async1(S, D, "foo", &w));
  jitrt_mr_t *mr = tu_unit_take_mr(u);
  CHECK(mr != NULL);
  if (!mr) return;
  jitrt_tracker_release(t);
  jitrt_tracker_t *dt = jitrt_dylib_default_tracker(D);
  uint64_t kd = jitrt_tracker_key(dt), key = 0;
  CHECK(kd != kt);
  CHECK_OK(jitrt_mr_with_resource_key_do(mr, key_fn, &key));
  CHECK(key == kd);
  CHECK_OK(tu_resolve_emit(mr));
  CHECK(tu_waiter_wait(&w, 5000));
  CHECK(w.code == JITRT_OK);
  CHECK_OK(jitrt_tracker_remove(dt));
  CHECK(tu_found(D, "foo") == 0);
  jitrt_tracker_release(dt);
  teardown();
  CHECK(tu_await(&u->dropped, 1));
  tu_waiter_destroy(&w);
  tu_unit_free(u);
}

/* A tracker can be reused for many additions; removing it removes all. */
static void tracker_reuse_and_stats(void) {
  setup();
  jitrt_stats_t st;
  jitrt_session_stats(S, &st);
  uint64_t t0 = st.trackers;
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(D);
  jitrt_session_stats(S, &st);
  CHECK(st.trackers == t0 + 1);
  char names[10][8];
  tu_unit_t *units[5];
  for (int i = 0; i < 10; i++) {
    snprintf(names[i], sizeof names[i], "s%d", i);
    if (i < 5) {
      jitrt_symbol_t sym = {names[i], tu_addr(names[i]), JITRT_SYMBOL_EXPORTED};
      CHECK_OK(jitrt_tracker_define_absolute(t, &sym, 1));
    } else {
      units[i - 5] = tu_unit_new(TU_EMIT, names[i], NULL);
      CHECK_OK(tu_unit_define(t, units[i - 5]));
    }
  }
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 10);
  CHECK(tu_found(D, "s7") == 1);
  CHECK_OK(jitrt_tracker_remove(t));
  jitrt_session_stats(S, &st);
  CHECK(st.symbols == 0);
  CHECK(st.trackers == t0);
  for (int i = 0; i < 10; i++) CHECK(tu_found(D, names[i]) == 0);
  for (int i = 0; i < 5; i++) {
    CHECK(tu_await(&units[i]->dropped, 1));
    CHECK(atomic_load(&units[i]->materialized) == (i == 2));
  }
  jitrt_tracker_release(t);
  teardown();
  for (int i = 0; i < 5; i++) tu_unit_free(units[i]);
}

int main(void) {
  test_watchdog(60);
  TU_RUN(manager_lifecycle);
  TU_RUN(manager_remove_error);
  TU_RUN(remove_before_materializing);
  TU_RUN(remove_after_materializing);
  TU_RUN(remove_while_materializing);
  TU_RUN(remove_while_resolved);
  TU_RUN(dylib_clear);
  TU_RUN(transfer_before_materializing);
  TU_RUN(transfer_after_materializing);
  TU_RUN(transfer_while_materializing);
  TU_RUN(transfer_chain_and_self);
  TU_RUN(release_moves_to_default);
  TU_RUN(release_while_materializing);
  TU_RUN(tracker_reuse_and_stats);
  return test_summary();
}
