// thread_local objects with destructors (registered with
// __cxa_thread_atexit), one at namespace scope and one in an inline
// function (a COMDAT group), plus a static object. Compiled with -fPIC.
#include <cstdio>

extern "C" void cxx_log(const char *line);

namespace {
void logf(const char *what, int id) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %d", what, id);
  cxx_log(buf);
}
} // namespace

struct Tracked {
  const char *what;
  int id = -1;
  explicit Tracked(const char *w) : what(w) {}
  ~Tracked() { logf(what, id); }
};

thread_local Tracked tl_global("tl dtor");

inline Tracked &tl_inline() {
  thread_local Tracked t("tl inline dtor");
  return t;
}

static Tracked static_obj("static dtor");

extern "C" int tl_touch(int id) {
  tl_global.id = id;
  tl_inline().id = id;
  static_obj.id = 0;
  return tl_global.id + tl_inline().id;
}
