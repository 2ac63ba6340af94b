/* dylibs: several symbol tables, link order, re-exports, hidden symbols.
 *
 * A dylib (JITDylib) is a namespace of symbols, like a shared library:
 *
 *   - libmath    math.o: square() and cube(), both calling helper(), which
 *                is hidden (__attribute__((visibility("hidden")))): usable by
 *                the code of its own dylib, invisible to others.
 *   - fastmath   fastmath.o: another square() (a "patched" one).
 *   - app1       app.o, link order [libmath]
 *   - app2       the same app.o, link order [fastmath, libmath]
 *
 * An object's undefined symbols are searched in its own dylib (all
 * symbols), then its dylib's link order in order (exported symbols only),
 * then the host process. So app1's square() is libmath's, app2's is
 * fastmath's: the first dylib in the link order that exports a name wins.
 *
 * jitrt_lookup(d, name) searches the same way. A re-export
 * (jitrt_tracker_define_aliases with a source dylib) makes a symbol of
 * another dylib available under a name of this one; it matches exported
 * symbols only, so hidden ones cannot be re-exported: the alias is
 * defined, but materializing it fails when it is looked up.
 *
 * Build and run (from the repository root, after `cargo build --release`):
 *   cc -Iinclude examples_c/dylibs.c -Ltarget/release -ljitrt \
 *      -Wl,-rpath,$PWD/target/release -o dylibs && ./dylibs
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "jitrt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void check(jitrt_error_t *err, const char *what) {
  if (err) {
    fprintf(stderr, "%s failed: %s\n", what, jitrt_error_message(err));
    jitrt_error_free(err);
    exit(1);
  }
}

static char dir[] = "/tmp/jitrt-dylibs-XXXXXX";

/* Writes DIR/NAME.c and compiles it to DIR/NAME.o (path in `obj`). */
static void compile(const char *name, const char *source, char *obj, size_t obj_size) {
  char src[512], cmd[2048];
  snprintf(src, sizeof src, "%s/%s.c", dir, name);
  snprintf(obj, obj_size, "%s/%s.o", dir, name);
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

static jitrt_dylib_t *dylib(jitrt_session_t *s, const char *name) {
  jitrt_dylib_t *d = NULL;
  check(jitrt_session_create_dylib(s, name, &d), "create_dylib");
  return d;
}

/* Adds an object file to d under d's default tracker. */
static void add(jitrt_dylib_t *d, const char *obj) {
  jitrt_tracker_t *t = jitrt_dylib_default_tracker(d);
  check(jitrt_tracker_add_object_file(t, obj), "add_object_file");
  jitrt_tracker_release(t);
}

static int (*fn(jitrt_dylib_t *d, const char *name))(int) {
  uint64_t addr = 0;
  check(jitrt_lookup(d, name, &addr), name);
  return (int (*)(int))(uintptr_t)addr;
}

/* "found", or what went wrong, for lookups that may fail. */
static const char *try_lookup(jitrt_dylib_t *d, const char *name) {
  uint64_t addr = 0;
  jitrt_error_t *err = jitrt_lookup(d, name, &addr);
  if (!err)
    return "found";
  jitrt_error_code_t code = jitrt_error_code(err);
  fprintf(stderr, "(lookup %s: %s)\n", name, jitrt_error_message(err));
  jitrt_error_free(err);
  switch (code) {
  case JITRT_ERR_SYMBOL_NOT_FOUND:
    return "not found";
  case JITRT_ERR_MATERIALIZATION_FAILED:
    return "failed to materialize";
  default:
    return "failed";
  }
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char math_o[600], fast_o[600], app_o[600];
  compile("math",
          "__attribute__((visibility(\"hidden\"))) int helper(int x) { return x * x; }\n"
          "int square(int x) { return helper(x); }\n"
          "int cube(int x) { return helper(x) * x; }\n",
          math_o, sizeof math_o);
  compile("fastmath", "int square(int x) { return x * x + 1000; }\n", fast_o, sizeof fast_o);
  compile("app",
          "int square(int);\n"
          "int cube(int);\n"
          "int app_square(int x) { return square(x); }\n"
          "int app_cube(int x) { return cube(x); }\n",
          app_o, sizeof app_o);

  jitrt_session_t *s = jitrt_session_new(NULL);
  if (!s)
    return 1;
  jitrt_dylib_t *libmath = dylib(s, "libmath");
  jitrt_dylib_t *fastmath = dylib(s, "fastmath");
  jitrt_dylib_t *app1 = dylib(s, "app1");
  jitrt_dylib_t *app2 = dylib(s, "app2");
  add(libmath, math_o);
  add(fastmath, fast_o);
  add(app1, app_o);
  add(app2, app_o); /* the same object, linked separately in each dylib */

  /* Link order: where a dylib's code finds what it does not define. */
  jitrt_dylib_t *order1[] = {libmath};
  jitrt_dylib_t *order2[] = {fastmath, libmath};
  check(jitrt_dylib_set_link_order(app1, order1, 1), "set_link_order app1");
  check(jitrt_dylib_set_link_order(app2, order2, 2), "set_link_order app2");

  printf("app1 (link order libmath): app_square(7) = %d, app_cube(3) = %d\n",
         fn(app1, "app_square")(7), fn(app1, "app_cube")(3));
  printf("app2 (link order fastmath, libmath): app_square(7) = %d, app_cube(3) = %d\n",
         fn(app2, "app_square")(7), fn(app2, "app_cube")(3));

  /* Hidden symbols: visible in their own dylib only. */
  printf("helper looked up in libmath: %s\n", try_lookup(libmath, "helper"));
  printf("helper looked up in app1: %s\n", try_lookup(app1, "helper"));

  /* Re-exports: app1 offers libmath's square as math_square. */
  jitrt_tracker_t *t = jitrt_dylib_default_tracker(app1);
  jitrt_alias_t reexports[] = {
      {"math_square", "square", JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE},
      {"math_helper", "helper", JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE},
  };
  check(jitrt_tracker_define_aliases(t, libmath, reexports, 2), "define_aliases");
  jitrt_tracker_release(t);
  printf("app1 math_square is libmath square: %s\n",
         fn(app1, "math_square") == fn(libmath, "square") ? "yes" : "no");
  printf("app1 math_square(5) = %d\n", fn(app1, "math_square")(5));
  printf("app1 math_helper (re-export of a hidden symbol): %s\n",
         try_lookup(app1, "math_helper"));

  jitrt_session_free(s);
  unlink(math_o);
  unlink(fast_o);
  unlink(app_o);
  rmdir(dir);
  return 0;
}
