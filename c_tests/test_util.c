#include "test_util.h"
#include <signal.h>
#include <unistd.h>

int tu_passed, tu_failed;

unsigned test_threads(void) {
  const char *t = getenv("JITRT_TEST_THREADS");
  return t ? (unsigned)atoi(t) : 0;
}

jitrt_session_t *test_session(void) {
  jitrt_session_options_t o = {0};
  o.num_threads = test_threads();
  jitrt_session_t *s = jitrt_session_new(&o);
  if (!s) {
    fprintf(stderr, "jitrt_session_new failed\n");
    abort();
  }
  return s;
}

jitrt_dylib_t *test_dylib(jitrt_session_t *s, const char *name) {
  jitrt_dylib_t *d = NULL;
  jitrt_error_t *e = jitrt_session_create_dylib(s, name, &d);
  if (e) {
    fprintf(stderr, "create_dylib %s: %s\n", name, jitrt_error_message(e));
    abort();
  }
  return d;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "watchdog: test hung\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  _exit(3);
}

void test_watchdog(unsigned seconds) {
  signal(SIGALRM, on_alarm);
  alarm(seconds);
}

int test_summary(void) {
  printf("%d passed, %d failed\n", tu_passed, tu_failed);
  return tu_failed ? 1 : 0;
}

void tu_check(int ok, const char *what, const char *file, int line) {
  if (ok) {
    tu_passed++;
  } else {
    tu_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  }
}

void tu_ok(jitrt_error_t *err, const char *what, const char *file, int line) {
  if (!err) {
    tu_passed++;
    return;
  }
  tu_failed++;
  fprintf(stderr, "%s:%d: %s failed: [%d] %s\n", file, line, what, (int)jitrt_error_code(err),
          jitrt_error_message(err));
  jitrt_error_free(err);
}

void tu_err(jitrt_error_t *err, jitrt_error_code_t code, const char *what, const char *file,
            int line) {
  if (err && jitrt_error_code(err) == code) {
    tu_passed++;
  } else {
    tu_failed++;
    if (err)
      fprintf(stderr, "%s:%d: %s: expected error %d, got [%d] %s\n", file, line, what, (int)code,
              (int)jitrt_error_code(err), jitrt_error_message(err));
    else
      fprintf(stderr, "%s:%d: %s: expected error %d, got success\n", file, line, what, (int)code);
  }
  jitrt_error_free(err);
}
