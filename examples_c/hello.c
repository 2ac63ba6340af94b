/* hello: the smallest libjitrt host.
 *
 * It compiles a C file to a relocatable object with the system compiler
 * (`cc -c`, or $CC), adds the object to a dylib of a JIT session, looks up
 * two functions (which links the object into this process) and calls them.
 *
 *   1. jitrt_session_new          a session: owns dylibs, code, threads
 *   2. jitrt_session_create_dylib a named symbol table to add code to
 *   3. jitrt_tracker_add_object_file
 *                                 adds the object under the dylib's default
 *                                 tracker; nothing is linked yet
 *   4. jitrt_lookup               links the object on first use, runs its
 *                                 constructors, returns the address
 *   5. jitrt_session_free         removes all code and frees everything
 *
 * The object's undefined symbols (printf here) resolve from the dylib, then
 * its link order, then the host process (libc).
 *
 * Build and run, after `./install.sh` (README.md; for a prefix outside the
 * system's paths, set PKG_CONFIG_PATH and add -Wl,-rpath,PREFIX/lib):
 *   cc examples_c/hello.c $(pkg-config --cflags --libs jitrt) -o hello && ./hello
 * or from the repository root, after `cargo build --release`:
 *   cc -Iinclude examples_c/hello.c -Ltarget/release -ljitrt \
 *      -Wl,-rpath,$PWD/target/release -o hello && ./hello
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "jitrt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The code we compile and load at run time. */
static const char *PLUGIN_SOURCE =
    "#include <stdio.h>\n"
    "int add(int a, int b) { return a + b; }\n"
    "void greet(const char *who) {\n"
    "  printf(\"hello, %s, from JIT-linked code\\n\", who);\n"
    "}\n";

/* Every fallible libjitrt call returns NULL or an error we own. */
static void check(jitrt_error_t *err, const char *what) {
  if (err) {
    fprintf(stderr, "%s failed: %s (code %d)\n", what, jitrt_error_message(err),
            (int)jitrt_error_code(err));
    jitrt_error_free(err);
    exit(1);
  }
}

/* Writes `source` to DIR/plugin.c and compiles it to DIR/plugin.o. */
static void compile(const char *dir, const char *source, char *obj, size_t obj_size) {
  char src[512], cmd[2048];
  snprintf(src, sizeof src, "%s/plugin.c", dir);
  snprintf(obj, obj_size, "%s/plugin.o", dir);
  FILE *f = fopen(src, "w");
  if (!f || fputs(source, f) < 0 || fclose(f) != 0) {
    perror(src);
    exit(1);
  }
  const char *cc = getenv("CC");
  snprintf(cmd, sizeof cmd, "%s -c -o '%s' '%s'", cc && *cc ? cc : "cc", obj, src);
  if (system(cmd) != 0) {
    fprintf(stderr, "compiling %s failed\n", src);
    exit(1);
  }
  unlink(src);
}

int main(void) {
  char dir[] = "/tmp/jitrt-hello-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char obj[600];
  compile(dir, PLUGIN_SOURCE, obj, sizeof obj);
  printf("compiled %s\n", "plugin.c");

  /* NULL options: defaults (materialize on the calling thread). */
  jitrt_session_t *session = jitrt_session_new(NULL);
  if (!session) {
    fprintf(stderr, "jitrt_session_new failed\n");
    return 1;
  }
  jitrt_dylib_t *dylib = NULL;
  check(jitrt_session_create_dylib(session, "main", &dylib), "create_dylib");

  /* Add the object under the dylib's default tracker (a new reference,
   * which we release: the dylib keeps the tracker alive). The object file
   * is memory-mapped; keep it until the code is removed. */
  jitrt_tracker_t *tracker = jitrt_dylib_default_tracker(dylib);
  check(jitrt_tracker_add_object_file(tracker, obj), "add_object_file");
  jitrt_tracker_release(tracker);
  printf("added plugin.o\n");

  /* Look the functions up: the first lookup links the object. */
  uint64_t add_addr = 0, greet_addr = 0;
  check(jitrt_lookup(dylib, "add", &add_addr), "lookup add");
  check(jitrt_lookup(dylib, "greet", &greet_addr), "lookup greet");

  int (*add)(int, int) = (int (*)(int, int))(uintptr_t)add_addr;
  void (*greet)(const char *) = (void (*)(const char *))(uintptr_t)greet_addr;
  printf("add(2, 3) = %d\n", add(2, 3));
  greet("world");

  jitrt_stats_t stats;
  jitrt_session_stats(session, &stats);
  printf("objects linked: %llu\n", (unsigned long long)stats.objects_linked);

  /* Removes the code (running destructors) and frees the session. */
  jitrt_session_free(session);
  unlink(obj);
  rmdir(dir);
  printf("done\n");
  return 0;
}
