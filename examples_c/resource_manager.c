/* resource_manager: your own resources, owned per tracker and freed with it.
 *
 * libjitrt's object linker keeps each tracker's code in a ResourceManager;
 * a host can do the same for whatever it allocates on behalf of JIT code
 * (buffers, handles, registrations). This example:
 *
 *   - registers a manager (jitrt_session_add_resource_manager) that keeps
 *     malloc'd buffers by tracker key and frees a key's buffers in
 *     handle_remove and moves them in handle_transfer;
 *   - defines two custom materialization units, each providing one symbol
 *     whose "materialization" allocates a buffer: the unit records it under
 *     its tracker's key with jitrt_mr_with_resource_key_do (atomic with
 *     respect to remove and transfer) and resolves the symbol to it;
 *   - looks the symbols up (which materializes them), transfers tracker t1
 *     to t2 (t2 now owns both buffers, t1 is defunct), and removes t2 (both
 *     buffers are freed, both symbols are gone).
 *
 * Rules from the header: handle_remove runs outside the session lock and
 * may call the session; handle_transfer runs under it and must not.
 * Managers hear about every removed tracker, also ones they never saw.
 *
 * Build and run (from the repository root, after `cargo build --release`):
 *   cc -Iinclude examples_c/resource_manager.c -Ltarget/release -ljitrt \
 *      -Wl,-rpath,$PWD/target/release -pthread -o resource_manager && ./resource_manager
 */
#include "jitrt.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(jitrt_error_t *err, const char *what) {
  if (err) {
    fprintf(stderr, "%s failed: %s\n", what, jitrt_error_message(err));
    jitrt_error_free(err);
    exit(1);
  }
}

/* ---- The resource manager: buffers by tracker key ---- */

#define MAX_BUFFERS 64

typedef struct {
  pthread_mutex_t mu; /* callbacks may run on any thread */
  struct {
    uint64_t key;
    void *buffer;
  } entries[MAX_BUFFERS];
  size_t n;
} registry_t;

/* Which tracker a key is, for printing (set by main). */
static uint64_t key_t1, key_t2;
static const char *label(uint64_t key) {
  return key == key_t1 ? "t1" : key == key_t2 ? "t2" : "another tracker";
}

static size_t count_for(registry_t *r, uint64_t key) {
  size_t c = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n; i++)
    c += r->entries[i].key == key;
  pthread_mutex_unlock(&r->mu);
  return c;
}

static jitrt_error_t *handle_remove(void *ctx, jitrt_dylib_t *d, uint64_t key) {
  (void)d;
  registry_t *r = ctx;
  size_t freed = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n;) {
    if (r->entries[i].key == key) {
      free(r->entries[i].buffer);
      r->entries[i] = r->entries[--r->n];
      freed++;
    } else {
      i++;
    }
  }
  pthread_mutex_unlock(&r->mu);
  if (freed)
    printf("manager: %s removed, freed %zu buffer(s)\n", label(key), freed);
  return NULL;
}

static void handle_transfer(void *ctx, jitrt_dylib_t *d, uint64_t dst, uint64_t src) {
  (void)d;
  registry_t *r = ctx;
  size_t moved = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n; i++) {
    if (r->entries[i].key == src) {
      r->entries[i].key = dst;
      moved++;
    }
  }
  pthread_mutex_unlock(&r->mu);
  printf("manager: %zu buffer(s) moved from %s to %s\n", moved, label(src), label(dst));
}

static void drop_manager(void *ctx) {
  (void)ctx;
  printf("manager: dropped\n");
}

/* ---- A materialization unit that allocates a buffer ---- */

typedef struct {
  registry_t *registry;
  size_t size;
  char name[32];
} buffer_unit_t;

typedef struct {
  registry_t *registry;
  void *buffer;
} record_t;

/* Runs under the session lock with the owning tracker's key. */
static void record(void *ctx, uint64_t key) {
  record_t *rec = ctx;
  registry_t *r = rec->registry;
  pthread_mutex_lock(&r->mu);
  if (r->n < MAX_BUFFERS) {
    r->entries[r->n].key = key;
    r->entries[r->n].buffer = rec->buffer;
    r->n++;
    rec->buffer = NULL; /* owned by the registry now */
  }
  pthread_mutex_unlock(&r->mu);
}

static void materialize(void *ctx, jitrt_mr_t *mr) {
  buffer_unit_t *u = ctx;
  record_t rec = {u->registry, calloc(1, u->size)};
  jitrt_symbol_t sym = {u->name, (uint64_t)(uintptr_t)rec.buffer, JITRT_SYMBOL_EXPORTED};
  /* Fails (and does not run `record`) if the tracker was removed. */
  jitrt_error_t *err = jitrt_mr_with_resource_key_do(mr, record, &rec);
  if (err || rec.buffer) {
    free(rec.buffer);
    jitrt_error_free(err);
    jitrt_mr_fail(mr);
    return;
  }
  printf("unit: materialized %s (%zu bytes)\n", u->name, u->size);
  err = jitrt_mr_notify_resolved(mr, &sym, 1);
  if (err) {
    jitrt_error_free(err);
    jitrt_mr_fail(mr);
    return;
  }
  jitrt_error_free(jitrt_mr_notify_emitted(mr)); /* consumes mr */
}

static void drop_unit(void *ctx) { free(ctx); }

/* Defines `name` under `t`: a buffer of `size` bytes, made on first lookup. */
static void define_buffer(jitrt_tracker_t *t, registry_t *r, const char *name, size_t size) {
  buffer_unit_t *u = calloc(1, sizeof *u);
  u->registry = r;
  u->size = size;
  snprintf(u->name, sizeof u->name, "%s", name);
  jitrt_symbol_t sym = {name, 0, JITRT_SYMBOL_EXPORTED};
  jitrt_custom_unit_t unit = {name, &sym, 1, u, materialize, NULL, drop_unit};
  check(jitrt_tracker_define_custom(t, &unit), "define_custom"); /* drop_unit runs on error */
}

static void show(registry_t *r, const char *when) {
  printf("%s: t1 owns %zu buffer(s), t2 owns %zu buffer(s)\n", when, count_for(r, key_t1),
         count_for(r, key_t2));
}

int main(void) {
  static registry_t registry = {.mu = PTHREAD_MUTEX_INITIALIZER};

  jitrt_session_t *session = jitrt_session_new(NULL);
  if (!session)
    return 1;
  jitrt_dylib_t *dylib = NULL;
  check(jitrt_session_create_dylib(session, "buffers", &dylib), "create_dylib");

  jitrt_resource_manager_t rm = {&registry, handle_remove, handle_transfer, drop_manager};
  uint64_t rm_id = 0;
  check(jitrt_session_add_resource_manager(session, &rm, &rm_id), "add_resource_manager");

  jitrt_tracker_t *t1 = jitrt_dylib_create_tracker(dylib);
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(dylib);
  key_t1 = jitrt_tracker_key(t1);
  key_t2 = jitrt_tracker_key(t2);

  define_buffer(t1, &registry, "input_buffer", 256);
  define_buffer(t2, &registry, "output_buffer", 1024);
  show(&registry, "defined (nothing materialized yet)");

  /* Lookups materialize the units, which allocate the buffers. */
  uint64_t in = 0, out = 0;
  check(jitrt_lookup(dylib, "input_buffer", &in), "lookup input_buffer");
  check(jitrt_lookup(dylib, "output_buffer", &out), "lookup output_buffer");
  strcpy((char *)(uintptr_t)in, "some input");
  snprintf((char *)(uintptr_t)out, 1024, "processed: %s", (char *)(uintptr_t)in);
  printf("output_buffer holds \"%s\"\n", (char *)(uintptr_t)out);
  show(&registry, "after lookups");

  /* t2 takes over everything t1 owns; t1 becomes defunct. */
  check(jitrt_tracker_transfer_to(t1, t2), "transfer_to");
  show(&registry, "after transfer");
  printf("t1 defunct: %s\n", jitrt_tracker_is_defunct(t1) ? "yes" : "no");

  /* Removing t2 frees both buffers and removes both symbols. */
  check(jitrt_tracker_remove(t2), "tracker_remove");
  show(&registry, "after remove");
  jitrt_error_t *err = jitrt_lookup(dylib, "input_buffer", &in);
  printf("lookup input_buffer after remove: %s\n",
         jitrt_error_code(err) == JITRT_ERR_SYMBOL_NOT_FOUND ? "symbol not found" : "unexpected");
  jitrt_error_free(err);

  jitrt_tracker_release(t1);
  jitrt_tracker_release(t2);
  check(jitrt_session_remove_resource_manager(session, rm_id), "remove_resource_manager");
  jitrt_session_free(session);
  printf("live buffers: %zu\n", registry.n);
  return registry.n == 0 ? 0 : 1;
}
