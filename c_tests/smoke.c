/* The shortest useful path through the API: a session, a dylib, an absolute
 * symbol, a lookup, a remove, and a few error codes. */
#include "test_util.h"
#include <string.h>

static int answer(void) { return 42; }

int main(void) {
  test_watchdog(60);
  CHECK(strlen(jitrt_version()) > 0);
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "main");
  CHECK(strcmp(jitrt_dylib_name(d), "main") == 0);
  CHECK(jitrt_session_find_dylib(s, "main") == d);
  CHECK(jitrt_session_find_dylib(s, "nope") == NULL);

  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  CHECK(t != NULL);
  CHECK(jitrt_tracker_dylib(t) == d);
  CHECK(jitrt_tracker_key(t) != 0);
  jitrt_symbol_t sym = {"answer", (uint64_t)(uintptr_t)&answer,
                        JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE};
  CHECK_OK(jitrt_tracker_define_absolute(t, &sym, 1));
  uint64_t addr = 0;
  CHECK_OK(jitrt_lookup(d, "answer", &addr));
  CHECK(addr == (uint64_t)(uintptr_t)&answer);
  int (*fn)(void) = (int (*)(void))(uintptr_t)addr;
  CHECK(fn() == 42);

  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 1);

  CHECK_ERR(jitrt_tracker_define_absolute(t, &sym, 1), JITRT_ERR_DUPLICATE_DEFINITION);
  CHECK_OK(jitrt_tracker_remove(t));
  CHECK(jitrt_tracker_is_defunct(t));
  CHECK_ERR(jitrt_lookup(d, "answer", &addr), JITRT_ERR_SYMBOL_NOT_FOUND);
  CHECK_ERR(jitrt_tracker_define_absolute(t, &sym, 1), JITRT_ERR_TRACKER_DEFUNCT);
  CHECK_OK(jitrt_tracker_remove(t)); /* a no-op */
  jitrt_tracker_release(t);

  CHECK_ERR(jitrt_lookup(NULL, "x", &addr), JITRT_ERR_INVALID_ARGUMENT);
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 0);
  jitrt_session_free(s);
  return test_summary();
}
