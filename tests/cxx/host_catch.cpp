// A host frame that catches what JIT code throws: built into a shared
// library the JIT test loads, and into the native driver.
#include <cstdio>
#include <cstring>
#include <stdexcept>

extern "C" int host_catch(void (*f)(int), int arg, char *msg, size_t n) {
  try {
    f(arg);
  } catch (const std::exception &e) {
    snprintf(msg, n, "%s", e.what());
    return 1;
  } catch (...) {
    snprintf(msg, n, "unknown");
    return 2;
  }
  snprintf(msg, n, "nothing thrown");
  return 0;
}
