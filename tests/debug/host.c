/* A host for tests/debug_perf.rs: links jit_fn.o and jit_plain.o (argv[1],
 * argv[2]) with the session flags in argv[3] (decimal), looks their
 * functions up with the prefix argv[4] if given (`_` for Mach-O objects,
 * whose symbols keep the C compiler's underscore), calls them through
 * a host frame, removes them, then calls host_after_remove (where gdb
 * checks the JIT code is gone). Prints its pid and the functions'
 * addresses. */
#include "jitrt.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

uintptr_t jit_addr;
uintptr_t plain_addr;

__attribute__((noinline)) void host_after_remove(void) {
  __asm__ volatile("");
}

__attribute__((noinline)) int host_call(int (*f)(int), int v) {
  int r = f(v);
  __asm__ volatile("");
  return r;
}

static void check(jitrt_error_t *e, const char *what) {
  if (e) {
    fprintf(stderr, "%s: %s\n", what, jitrt_error_message(e));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: host JIT_FN.o JIT_PLAIN.o FLAGS [SYMBOL_PREFIX]\n");
    return 2;
  }
  jitrt_session_options_t o = {0};
  o.flags = (uint32_t)strtoul(argv[3], NULL, 10);
  jitrt_session_t *s = jitrt_session_new(&o);
  if (!s) {
    fprintf(stderr, "session options rejected\n");
    return 1;
  }
  jitrt_dylib_t *d;
  check(jitrt_session_create_dylib(s, "main", &d), "create dylib");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  check(jitrt_tracker_add_object_file(t, argv[1]), "add jit_fn.o");
  check(jitrt_tracker_add_object_file(t, argv[2]), "add jit_plain.o");
  const char *prefix = argc > 4 ? argv[4] : "";
  char compute_name[64], plain_name[64];
  snprintf(compute_name, sizeof compute_name, "%sjit_compute", prefix);
  snprintf(plain_name, sizeof plain_name, "%sjit_plain", prefix);
  uint64_t a, p;
  check(jitrt_lookup(d, compute_name, &a), "lookup jit_compute");
  check(jitrt_lookup(d, plain_name, &p), "lookup jit_plain");
  jit_addr = (uintptr_t)a;
  plain_addr = (uintptr_t)p;
  int r = host_call((int (*)(int))(uintptr_t)a, 5);
  int q = host_call((int (*)(int))(uintptr_t)p, 20);
  printf("pid %ld\njit_compute %llx\njit_plain %llx\nresults %d %d\n", (long)getpid(),
         (unsigned long long)a, (unsigned long long)p, r, q);
  fflush(stdout);
  check(jitrt_tracker_remove(t), "remove");
  host_after_remove();
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  return r == 37 && q == 41 ? 0 : 1;
}
