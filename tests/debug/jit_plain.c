/* JIT code compiled without -g: it still registers its symbols. */
int jit_plain(int x) {
  return x * 2 + 1;
}
