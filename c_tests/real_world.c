/* What real builds emit by default, through include/jitrt.h:
 *
 * - hidden thread-local storage reached from another object with the
 *   local-dynamic model (clang -fvisibility=hidden does this, and every Rust
 *   static library: std's thread_local! lives in another codegen unit than
 *   its users), used from threads started before and after the objects are
 *   linked, each thread seeing its own copy;
 * - initializers called as glibc calls them, with (argc, argv, envp).
 *
 * The sources are written to a temp dir and compiled with `cc -fPIC`. */
#define _DEFAULT_SOURCE
#include "test_util.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static char dir[256];

static void write_file(const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
}

static char *path_of(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* Compiles dir/NAME.c to dir/NAME.o with FLAGS, with JITRT_TEST_CC (the
 * compiler for the library's machine, set by the tests for another
 * machine's build) or cc. */
static void compile(const char *name, const char *flags) {
  const char *cc = getenv("JITRT_TEST_CC");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s -O2 -fPIC %s -c %s/%s.c -o %s/%s.o", cc && *cc ? cc : "cc", flags,
           dir, name, dir, name);
  if (system(cmd) != 0) {
    fprintf(stderr, "command failed: %s\n", cmd);
    exit(2);
  }
}

typedef int (*bump_fn)(void);

struct worker {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bump_fn bump; /* set when linked */
  int results[3];
};

/* Started before the objects are linked: waits for the function, then
 * bumps its own copy of the counter three times. */
static void *worker_main(void *arg) {
  struct worker *w = arg;
  pthread_mutex_lock(&w->lock);
  while (!w->bump) pthread_cond_wait(&w->cond, &w->lock);
  bump_fn bump = w->bump;
  pthread_mutex_unlock(&w->lock);
  for (int i = 0; i < 3; i++) w->results[i] = bump();
  return NULL;
}

static void check_thread_results(const int *r, const char *who) {
  /* `counter` starts at 1 in every thread. */
  int ok = r[0] == 2 && r[1] == 3 && r[2] == 4;
  if (!ok) fprintf(stderr, "%s: got %d %d %d, want 2 3 4\n", who, r[0], r[1], r[2]);
  CHECK(ok);
}

static int no_bump(void) { return 0; }

static int saved_argc;
static char **saved_argv;

static void tls_across_objects(void) {
  write_file("tls_a.c", "__attribute__((visibility(\"hidden\"))) __thread int counter = 1;\n"
                        "int tls_a_keep(void) { return counter; }\n");
  write_file("tls_b.c", "extern __attribute__((visibility(\"hidden\"))) __thread int counter;\n"
                        "int bump(void) { return ++counter; }\n");
  compile("tls_a", "");
  /* The model clang picks for -fvisibility=hidden, forced for gcc. */
  compile("tls_b", "-ftls-model=local-dynamic");

  struct worker early[2];
  pthread_t early_t[2];
  for (int i = 0; i < 2; i++) {
    memset(&early[i], 0, sizeof early[i]);
    pthread_mutex_init(&early[i].lock, NULL);
    pthread_cond_init(&early[i].cond, NULL);
    CHECK(pthread_create(&early_t[i], NULL, worker_main, &early[i]) == 0);
  }

  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "tls");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_add_object_file(t, path_of("tls_a.o")));
  CHECK_OK(jitrt_tracker_add_object_file(t, path_of("tls_b.o")));
  uint64_t addr = 0;
  CHECK_OK(jitrt_lookup(d, "bump", &addr));
  if (addr) {
    bump_fn bump = (bump_fn)(uintptr_t)addr;
    int mine[3];
    for (int i = 0; i < 3; i++) mine[i] = bump();
    check_thread_results(mine, "main thread");
    for (int i = 0; i < 2; i++) {
      pthread_mutex_lock(&early[i].lock);
      early[i].bump = bump;
      pthread_cond_signal(&early[i].cond);
      pthread_mutex_unlock(&early[i].lock);
    }
    struct worker late[2];
    pthread_t late_t[2];
    for (int i = 0; i < 2; i++) {
      memset(&late[i], 0, sizeof late[i]);
      pthread_mutex_init(&late[i].lock, NULL);
      pthread_cond_init(&late[i].cond, NULL);
      late[i].bump = bump;
      CHECK(pthread_create(&late_t[i], NULL, worker_main, &late[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
      pthread_join(early_t[i], NULL);
      pthread_join(late_t[i], NULL);
      check_thread_results(early[i].results, "thread started before linking");
      check_thread_results(late[i].results, "thread started after linking");
    }
    /* The main thread's copy kept counting on its own. */
    CHECK(bump() == 5);
  } else {
    /* The lookup failed (reported above): let the early threads end. */
    for (int i = 0; i < 2; i++) {
      pthread_mutex_lock(&early[i].lock);
      early[i].bump = no_bump;
      pthread_cond_signal(&early[i].cond);
      pthread_mutex_unlock(&early[i].lock);
      pthread_join(early_t[i], NULL);
    }
  }
  CHECK_OK(jitrt_tracker_remove(t));
  jitrt_tracker_release(t);
  jitrt_session_free(s);
}

static void constructor_arguments(void) {
  write_file("ctor_args.c",
             "static int seen_argc = -1;\n"
             "static char **seen_argv;\n"
             "static char **seen_envp;\n"
             "__attribute__((constructor)) static void g(int c, char **v, char **e) {\n"
             "  seen_argc = c; seen_argv = v; seen_envp = e;\n"
             "}\n"
             "int ctor_argc(void) { return seen_argc; }\n"
             "const char *ctor_argv(int i) { return seen_argv ? seen_argv[i] : 0; }\n"
             "char **ctor_envp(void) { return seen_envp; }\n");
  compile("ctor_args", "");
  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "ctor");
  jitrt_tracker_t *t = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_add_object_file(t, path_of("ctor_args.o")));
  uint64_t a_argc = 0, a_argv = 0, a_envp = 0;
  CHECK_OK(jitrt_lookup(d, "ctor_argc", &a_argc));
  CHECK_OK(jitrt_lookup(d, "ctor_argv", &a_argv));
  CHECK_OK(jitrt_lookup(d, "ctor_envp", &a_envp));
  if (a_argc && a_argv && a_envp) {
    int argc = ((int (*)(void))(uintptr_t)a_argc)();
    const char *(*argv_at)(int) = (const char *(*)(int))(uintptr_t)a_argv;
    char **envp = ((char **(*)(void))(uintptr_t)a_envp)();
    CHECK(argc == saved_argc);
    for (int i = 0; i < argc && i < saved_argc; i++) {
      const char *v = argv_at(i);
      CHECK(v && strcmp(v, saved_argv[i]) == 0);
    }
    CHECK(argc < 0 || argv_at(argc) == NULL);
    CHECK(envp == environ);
  }
  CHECK_OK(jitrt_tracker_remove(t));
  jitrt_tracker_release(t);
  jitrt_session_free(s);
}

int main(int argc, char **argv) {
  test_watchdog(120);
  saved_argc = argc;
  saved_argv = argv;
  snprintf(dir, sizeof dir, "/tmp/jitrt-real-world-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  tls_across_objects();
  constructor_arguments();
  const char *files[] = {"tls_a.c", "tls_a.o", "tls_b.c", "tls_b.o", "ctor_args.c", "ctor_args.o"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(path_of(files[i]));
  rmdir(dir);
  return test_summary();
}
