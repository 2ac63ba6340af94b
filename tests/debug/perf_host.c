/* A host for the perf test of tests/debug_perf.rs: links argv[1] with the
 * session flags argv[2] (decimal), runs jit_hot(argv[3]) and removes it. */
#include "jitrt.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: perf_host JIT_HOT.o FLAGS N\n");
    return 2;
  }
  jitrt_session_options_t o = {0};
  o.flags = (uint32_t)strtoul(argv[2], NULL, 10);
  jitrt_session_t *s = jitrt_session_new(&o);
  jitrt_dylib_t *d;
  jitrt_error_t *e = jitrt_session_create_dylib(s, "main", &d);
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  uint64_t a = 0;
  if (!e)
    e = jitrt_tracker_add_object_file(t, argv[1]);
  if (!e)
    e = jitrt_lookup(d, "jit_hot", &a);
  if (e) {
    fprintf(stderr, "%s\n", jitrt_error_message(e));
    return 1;
  }
  long r = ((long (*)(long))(uintptr_t)a)(strtol(argv[3], NULL, 10));
  printf("pid %ld\njit_hot %llx %ld\n", (long)getpid(), (unsigned long long)a, r);
  jitrt_tracker_remove(t);
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  return 0;
}
