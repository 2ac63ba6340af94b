/* JIT code for tests/debug_perf.rs, compiled with -g -O0: gdb must stop in
 * jit_compute by name, show its lines, locals and the host frames below. */
int jit_counter = 7;

static int jit_helper(int v) {
  return v * 3;
}

int jit_compute(int x) {
  int local_y = x + jit_counter;
  int z = jit_helper(local_y);
  return z + 1;
}
