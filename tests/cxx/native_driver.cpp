// The native reference for the C++ test: the same objects linked into an
// executable by the system linker. It runs what the JIT test runs, and
// prints the log at exit, after the objects' destructors ran (its printer
// is registered before any static constructor of theirs, so it runs last).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static std::vector<std::string> *lines;
extern "C" void cxx_log(const char *line) { lines->push_back(line); }
extern "C" int host_catch(void (*f)(int), int arg, char *msg, size_t n);
extern "C" int cxx_run(void);
extern "C" void cxx_throw(int code);

static void print_log() {
  for (auto &l : *lines)
    printf("%s\n", l.c_str());
  fflush(stdout);
}

__attribute__((constructor(101))) static void setup() {
  lines = new std::vector<std::string>;
  atexit(print_log);
}

int main() {
  int r = cxx_run();
  char msg[128];
  for (int code : {0, 5}) {
    int k = host_catch(cxx_throw, code, msg, sizeof msg);
    cxx_log(("host caught " + std::to_string(k) + " " + msg).c_str());
  }
  return r;
}
