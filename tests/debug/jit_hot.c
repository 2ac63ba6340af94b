/* A hot loop for the perf test: most samples land in jit_hot. */
long jit_hot(long n) {
  volatile long s = 0;
  for (long i = 0; i < n; i++)
    s += i ^ (s >> 3);
  return s;
}
