#define _GNU_SOURCE
#include "test_util.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int tu_passed, tu_failed;

unsigned test_threads(void) {
  const char *t = getenv("JITRT_TEST_THREADS");
  return t ? (unsigned)atoi(t) : 0;
}

jitrt_session_t *test_session(void) {
  jitrt_session_options_t o = {0};
  o.num_threads = test_threads();
  jitrt_session_t *s = jitrt_session_new(&o);
  if (!s) {
    fprintf(stderr, "jitrt_session_new failed\n");
    abort();
  }
  return s;
}

jitrt_dylib_t *test_dylib(jitrt_session_t *s, const char *name) {
  jitrt_dylib_t *d = NULL;
  jitrt_error_t *e = jitrt_session_create_dylib(s, name, &d);
  if (e) {
    fprintf(stderr, "create_dylib %s: %s\n", name, jitrt_error_message(e));
    abort();
  }
  return d;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "watchdog: test hung\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  _exit(3);
}

void test_watchdog(unsigned seconds) {
  signal(SIGALRM, on_alarm);
  alarm(seconds);
}

int test_summary(void) {
  printf("%d passed, %d failed\n", tu_passed, tu_failed);
  return tu_failed ? 1 : 0;
}

void tu_check(int ok, const char *what, const char *file, int line) {
  if (ok) {
    tu_passed++;
  } else {
    tu_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  }
}

void tu_ok(jitrt_error_t *err, const char *what, const char *file, int line) {
  if (!err) {
    tu_passed++;
    return;
  }
  tu_failed++;
  fprintf(stderr, "%s:%d: %s failed: [%d] %s\n", file, line, what, (int)jitrt_error_code(err),
          jitrt_error_message(err));
  jitrt_error_free(err);
}

void tu_err(jitrt_error_t *err, jitrt_error_code_t code, const char *what, const char *file,
            int line) {
  if (err && jitrt_error_code(err) == code) {
    tu_passed++;
  } else {
    tu_failed++;
    if (err)
      fprintf(stderr, "%s:%d: %s: expected error %d, got [%d] %s\n", file, line, what, (int)code,
              (int)jitrt_error_code(err), jitrt_error_message(err));
    else
      fprintf(stderr, "%s:%d: %s: expected error %d, got success\n", file, line, what, (int)code);
  }
  jitrt_error_free(err);
}

/* ---- Helpers for the ORC-model tests. ---- */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

unsigned test_scaled(unsigned n) {
  const char *s = getenv("JITRT_TEST_SCALE");
  unsigned pct = s ? (unsigned)atoi(s) : 100;
  unsigned long long r = (unsigned long long)n * pct / 100;
  return r ? (unsigned)r : 1;
}

void tu_usleep(unsigned us) {
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

uint64_t tu_addr(const char *name) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return 0x100000000ull + ((h & 0xffffffffull) << 4);
}

void tu_waiter_init(tu_waiter_t *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->code = JITRT_OK;
}

void tu_waiter_destroy(tu_waiter_t *w) {
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}

void tu_lookup_done(void *ctx, jitrt_error_t *err, const uint64_t *addrs, size_t n) {
  tu_waiter_t *w = ctx;
  pthread_mutex_lock(&w->mu);
  if (err) {
    w->code = jitrt_error_code(err);
    snprintf(w->msg, sizeof w->msg, "%s", jitrt_error_message(err));
    jitrt_error_free(err);
  } else {
    w->code = JITRT_OK;
    w->n = n;
    for (size_t i = 0; i < n && i < 16; i++) w->addrs[i] = addrs[i];
  }
  atomic_fetch_add(&w->calls, 1);
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

int tu_waiter_wait(tu_waiter_t *w, unsigned ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (long)(ms % 1000) * 1000000;
  if (dl.tv_nsec >= 1000000000) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&w->mu);
  while (atomic_load(&w->calls) == 0) {
    if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT) break;
  }
  int done = atomic_load(&w->calls) > 0;
  pthread_mutex_unlock(&w->mu);
  return done;
}

int tu_waiter_done(tu_waiter_t *w) {
  pthread_mutex_lock(&w->mu);
  int d = atomic_load(&w->calls) > 0;
  pthread_mutex_unlock(&w->mu);
  return d;
}

jitrt_error_t *tu_lookup_async(jitrt_session_t *s, jitrt_dylib_t *d, const char *const *names,
                               size_t n, tu_waiter_t *w) {
  jitrt_dylib_t *order[1] = {d};
  return jitrt_lookup_async(s, order, 1, names, n, tu_lookup_done, w);
}

jitrt_error_t *tu_lookup_async1(jitrt_session_t *s, jitrt_dylib_t *d, const char *name,
                                tu_waiter_t *w) {
  const char *names[1] = {name};
  return tu_lookup_async(s, d, names, 1, w);
}

/* ---- resource manager ---- */
atomic_int tu_rm_seq;

void tu_rm_init(tu_rm_t *rm) {
  memset(rm, 0, sizeof *rm);
  pthread_mutex_init(&rm->mu, NULL);
}

void tu_rm_destroy(tu_rm_t *rm) { pthread_mutex_destroy(&rm->mu); }

static jitrt_error_t *tu_rm_handle_remove(void *ctx, jitrt_dylib_t *d, uint64_t key) {
  (void)d;
  tu_rm_t *rm = ctx;
  pthread_mutex_lock(&rm->mu);
  if (rm->nremoved < TU_RM_MAX) rm->removed[rm->nremoved++] = key;
  for (int i = 0; i < rm->nres; i++)
    if (rm->res_key[i] == key) rm->res_live[i] = 0;
  rm->seq_remove = atomic_fetch_add(&tu_rm_seq, 1) + 1;
  jitrt_error_code_t f = rm->fail_remove;
  pthread_mutex_unlock(&rm->mu);
  return f ? jitrt_error_new(f, "tu_rm: asked to fail") : NULL;
}

static void tu_rm_handle_transfer(void *ctx, jitrt_dylib_t *d, uint64_t dst, uint64_t src) {
  (void)d;
  tu_rm_t *rm = ctx;
  pthread_mutex_lock(&rm->mu);
  if (rm->ntransfers < TU_RM_MAX) {
    rm->tr_dst[rm->ntransfers] = dst;
    rm->tr_src[rm->ntransfers] = src;
    rm->ntransfers++;
  }
  for (int i = 0; i < rm->nres; i++)
    if (rm->res_key[i] == src) rm->res_key[i] = dst;
  pthread_mutex_unlock(&rm->mu);
}

static void tu_rm_drop(void *ctx) {
  tu_rm_t *rm = ctx;
  atomic_fetch_add(&rm->drops, 1);
}

jitrt_error_t *tu_rm_register(jitrt_session_t *s, tu_rm_t *rm, uint64_t *id) {
  jitrt_resource_manager_t m = {rm, tu_rm_handle_remove, tu_rm_handle_transfer, tu_rm_drop};
  return jitrt_session_add_resource_manager(s, &m, id);
}

void tu_rm_add(tu_rm_t *rm, uint64_t key) {
  pthread_mutex_lock(&rm->mu);
  if (rm->nres < TU_RM_MAX) {
    rm->res_key[rm->nres] = key;
    rm->res_live[rm->nres] = 1;
    rm->nres++;
  }
  pthread_mutex_unlock(&rm->mu);
}

int tu_rm_live(tu_rm_t *rm, uint64_t key) {
  int n = 0;
  pthread_mutex_lock(&rm->mu);
  for (int i = 0; i < rm->nres; i++) n += rm->res_key[i] == key && rm->res_live[i];
  pthread_mutex_unlock(&rm->mu);
  return n;
}

int tu_rm_removed(tu_rm_t *rm, uint64_t key) {
  int n = 0;
  pthread_mutex_lock(&rm->mu);
  for (int i = 0; i < rm->nremoved; i++) n += rm->removed[i] == key;
  pthread_mutex_unlock(&rm->mu);
  return n;
}

int tu_rm_transferred(tu_rm_t *rm, uint64_t dst, uint64_t src) {
  int n = 0;
  pthread_mutex_lock(&rm->mu);
  for (int i = 0; i < rm->ntransfers; i++) n += rm->tr_dst[i] == dst && rm->tr_src[i] == src;
  pthread_mutex_unlock(&rm->mu);
  return n;
}

/* ---- custom units ---- */
atomic_int tu_threads_running;
atomic_int tu_units_alloc, tu_units_dropped;

tu_unit_t *tu_unit_new(int mode, ...) {
  tu_unit_t *u = calloc(1, sizeof *u);
  if (!u) abort();
  u->mode = mode;
  va_list ap;
  va_start(ap, mode);
  const char *n;
  while ((n = va_arg(ap, const char *)) != NULL) {
    if (u->nsyms == TU_MAX_SYMS) abort();
    snprintf(u->names[u->nsyms], sizeof u->names[0], "%s", n);
    u->syms[u->nsyms].name = u->names[u->nsyms];
    u->syms[u->nsyms].address = 0;
    u->syms[u->nsyms].flags = JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE;
    u->nsyms++;
  }
  va_end(ap);
  atomic_fetch_add(&tu_units_alloc, 1);
  return u;
}

void tu_unit_free(tu_unit_t *u) { free(u); }

jitrt_error_t *tu_resolve(jitrt_mr_t *mr) {
  size_t n = jitrt_mr_num_symbols(mr);
  jitrt_symbol_t syms[TU_MAX_SYMS * 2];
  if (n > TU_MAX_SYMS * 2) n = TU_MAX_SYMS * 2;
  for (size_t i = 0; i < n; i++) {
    const char *name = jitrt_mr_symbol_name(mr, i);
    syms[i].name = name;
    syms[i].address = name ? tu_addr(name) : 0;
    syms[i].flags = JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE;
  }
  return jitrt_mr_notify_resolved(mr, syms, n);
}

jitrt_error_t *tu_resolve_emit(jitrt_mr_t *mr) {
  jitrt_error_t *e = tu_resolve(mr);
  if (e) {
    jitrt_mr_fail(mr);
    return e;
  }
  return jitrt_mr_notify_emitted(mr);
}

typedef struct {
  jitrt_mr_t *mr;
  unsigned delay_us;
} tu_thread_arg;

static void *tu_emit_thread(void *p) {
  tu_thread_arg a = *(tu_thread_arg *)p;
  free(p);
  if (a.delay_us) tu_usleep(a.delay_us);
  jitrt_error_free(tu_resolve_emit(a.mr));
  atomic_fetch_sub(&tu_threads_running, 1);
  return NULL;
}

void tu_wait_threads(void) {
  while (atomic_load(&tu_threads_running) > 0) tu_usleep(1000);
}

static void tu_key_cb(void *ctx, uint64_t key) {
  tu_unit_t *u = ctx;
  atomic_store(&u->key, key);
  if (u->rm) tu_rm_add(u->rm, key);
}

static void tu_unit_materialize(void *ctx, jitrt_mr_t *mr) {
  tu_unit_t *u = ctx;
  atomic_fetch_add(&u->materialized, 1);
  if (u->mat_counter) atomic_fetch_add(u->mat_counter, 1);
  atomic_store(&u->mr_nsyms, (int)jitrt_mr_num_symbols(mr));
  if (u->rm) jitrt_error_free(jitrt_mr_with_resource_key_do(mr, tu_key_cb, u));
  switch (u->mode) {
  case TU_EMIT:
    jitrt_error_free(tu_resolve_emit(mr));
    break;
  case TU_HOLD:
    atomic_store(&u->held, mr);
    break;
  case TU_FAIL:
    jitrt_mr_fail(mr);
    break;
  case TU_THREAD_EMIT: {
    tu_thread_arg *a = malloc(sizeof *a);
    if (!a) abort();
    a->mr = mr;
    a->delay_us = u->delay_us;
    pthread_t th;
    atomic_fetch_add(&tu_threads_running, 1);
    if (pthread_create(&th, NULL, tu_emit_thread, a) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      abort();
    }
    pthread_detach(th);
    break;
  }
  case TU_SLEEP_EMIT:
    if (u->delay_us) tu_usleep(u->delay_us);
    jitrt_error_free(tu_resolve_emit(mr));
    break;
  case TU_CUSTOM:
    u->on_materialize(u, mr);
    break;
  }
}

static void tu_unit_discard(void *ctx, jitrt_dylib_t *d, const char *name) {
  (void)d;
  tu_unit_t *u = ctx;
  snprintf(u->last_discarded, sizeof u->last_discarded, "%s", name);
  atomic_fetch_add(&u->discarded, 1);
}

static void tu_unit_drop(void *ctx) {
  tu_unit_t *u = ctx;
  atomic_fetch_add(&tu_units_dropped, 1);
  if (u->drop_counter) atomic_fetch_add(u->drop_counter, 1);
  if (u->free_on_drop) {
    free(u);
    return;
  }
  atomic_fetch_add(&u->dropped, 1);
}

jitrt_error_t *tu_unit_define(jitrt_tracker_t *t, tu_unit_t *u) {
  jitrt_custom_unit_t cu = {u->names[0], u->syms,          u->nsyms,    u,
                            tu_unit_materialize, tu_unit_discard, tu_unit_drop};
  return jitrt_tracker_define_custom(t, &cu);
}

jitrt_mr_t *tu_unit_take_mr(tu_unit_t *u) {
  for (int i = 0; i < 5000; i++) {
    jitrt_mr_t *mr = atomic_exchange(&u->held, NULL);
    if (mr) return mr;
    tu_usleep(1000);
  }
  return NULL;
}

int tu_survives(void (*fn)(void)) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    fn();
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int tu_await(atomic_int *c, int want) {
  for (int i = 0; i < 5000 && atomic_load(c) < want; i++) tu_usleep(1000);
  return atomic_load(c) == want;
}

int tu_found(jitrt_dylib_t *d, const char *name) {
  uint64_t a = 0;
  jitrt_error_t *e = jitrt_lookup(d, name, &a);
  if (e) {
    jitrt_error_code_t c = jitrt_error_code(e);
    jitrt_error_free(e);
    return c == JITRT_ERR_SYMBOL_NOT_FOUND ? 0 : -(int)c;
  }
  return a == tu_addr(name) ? 1 : -100;
}
