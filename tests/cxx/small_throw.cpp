// One small function whose exception crosses its own frame, with a
// cleanup on the way (a landing pad): its code, `.eh_frame` and
// `.gcc_except_table` together fit in one page.
#include <stdexcept>

static int cleanups;

struct Guard {
  ~Guard() { ++cleanups; }
};

extern "C" int small_cleanups(void) { return cleanups; }

extern "C" void small_throw(int code) {
  Guard g;
  if (code)
    throw std::runtime_error("small throw");
}
