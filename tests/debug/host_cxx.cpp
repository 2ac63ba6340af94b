// A C++ host for tests/debug_perf.rs: links jit_throw.o (argv[1]) with
// the session flags argv[2], then has an exception thrown in JIT code
// caught in JIT code, and one thrown through JIT code into this host.
#include "jitrt.h"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

extern "C" __attribute__((noinline)) int host_calls_jit(int (*f)(int), int v) {
  int r = f(v);
  __asm__ volatile("");
  return r;
}

static void check(jitrt_error_t *e, const char *what) {
  if (e) {
    std::fprintf(stderr, "%s: %s\n", what, jitrt_error_message(e));
    std::exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  jitrt_session_options_t o = {};
  o.flags = (uint32_t)std::strtoul(argv[2], nullptr, 10);
  jitrt_session_t *s = jitrt_session_new(&o);
  jitrt_dylib_t *d;
  check(jitrt_session_create_dylib(s, "main", &d), "create dylib");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  check(jitrt_tracker_add_object_file(t, argv[1]), "add");
  uint64_t catcher, thrower;
  check(jitrt_lookup(d, "jit_catcher", &catcher), "lookup jit_catcher");
  check(jitrt_lookup(d, "jit_thrower", &thrower), "lookup jit_thrower");
  int r = host_calls_jit((int (*)(int))(uintptr_t)catcher, 1);
  int caught = 0;
  try {
    host_calls_jit((int (*)(int))(uintptr_t)thrower, 2);
  } catch (const std::runtime_error &) {
    caught = 1;
  }
  std::printf("results %d %d\n", r, caught);
  check(jitrt_tracker_remove(t), "remove");
  jitrt_tracker_release(t);
  jitrt_session_free(s);
  return r == -1 && caught ? 0 : 1;
}
