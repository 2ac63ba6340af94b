// C++ JIT code for tests/debug_perf.rs (built with -g -O0): an exception
// thrown in JIT code, caught in JIT code, and thrown through into the host.
#include <stdexcept>

extern "C" int jit_thrower(int x) {
  if (x > 0)
    throw std::runtime_error("boom");
  return x;
}

extern "C" int jit_catcher(int x) {
  try {
    return jit_thrower(x);
  } catch (const std::exception &) {
    return -1;
  }
}
