/* The object API through include/jitrt.h: this program writes small C
 * sources to a temp dir and compiles them with `cc -c` (and an archive
 * with `ar rcs`), then adds them with jitrt_tracker_add_object (from a
 * buffer), jitrt_tracker_add_object_file and jitrt_tracker_add_archive,
 * looks functions up and calls them, checks the errors for bad input (a
 * truncated buffer, another machine, a missing file, an undefined symbol, a
 * duplicate definition), and that removing the trackers returns the
 * session's code and data bytes to zero. */
#define _DEFAULT_SOURCE
#include "test_util.h"
#include <stdint.h>
#include <string.h>
#include <unistd.h>

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

static void run(const char *fmt, const char *a, const char *b) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  if (system(cmd) != 0) {
    fprintf(stderr, "command failed: %s\n", cmd);
    exit(2);
  }
}

/* Compiles dir/NAME.c to dir/NAME.o. */
static void compile(const char *name) {
  char src[512], obj[512];
  snprintf(src, sizeof src, "%s/%s.c", dir, name);
  snprintf(obj, sizeof obj, "%s/%s.o", dir, name);
  /* JITRT_TEST_CC: the compiler for the library's machine (the tests set
   * it to aarch64-linux-gnu-gcc for an aarch64 build). */
  const char *cc = getenv("JITRT_TEST_CC");
  char fmt[320];
  snprintf(fmt, sizeof fmt, "%s -O2 -c %%s -o %%s", cc && *cc ? cc : "cc");
  run(fmt, src, obj);
}

static char *path_of(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static uint8_t *read_file(const char *name, size_t *len) {
  FILE *f = fopen(path_of(name), "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", name);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)n);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "cannot read %s\n", name);
    exit(2);
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* Checks that err has `code` and that its message contains `needle`. */
static void check_err_msg(jitrt_error_t *err, jitrt_error_code_t code, const char *needle,
                          const char *what, int line) {
  int ok = err && jitrt_error_code(err) == code && strstr(jitrt_error_message(err), needle);
  tu_check(ok, what, __FILE__, line);
  if (!ok) {
    if (err)
      fprintf(stderr, "  got [%d] %s (wanted [%d] containing `%s`)\n", (int)jitrt_error_code(err),
              jitrt_error_message(err), (int)code, needle);
    else
      fprintf(stderr, "  got success (wanted [%d] containing `%s`)\n", (int)code, needle);
  }
  jitrt_error_free(err);
}
#define CHECK_ERR_MSG(expr, code, needle) check_err_msg((expr), (code), (needle), #expr, __LINE__)

static uint64_t lookup(jitrt_dylib_t *d, const char *name) {
  uint64_t addr = 0;
  jitrt_error_t *e = jitrt_lookup(d, name, &addr);
  if (e) {
    fprintf(stderr, "lookup %s: [%d] %s\n", name, (int)jitrt_error_code(e), jitrt_error_message(e));
    jitrt_error_free(e);
    tu_failed++;
    return 0;
  }
  tu_passed++;
  return addr;
}

typedef int (*int_int_fn)(int);
typedef int (*int_fn)(void);
typedef size_t (*len_fn)(const char *);

#define CALL_INT(addr, x) ((addr) ? ((int_int_fn)(uintptr_t)(addr))(x) : -12345)
#define CALL0(addr) ((addr) ? ((int_fn)(uintptr_t)(addr))() : -12345)

/* Constructors and destructors of JIT'd code report here. */
static int live_objects;
static void host_note(int delta) { live_objects += delta; }

static void check_stats_zero(jitrt_session_t *s, const char *when) {
  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  int ok = st.code_bytes == 0 && st.data_bytes == 0 && st.objects_linked == 0;
  tu_check(ok, when, __FILE__, __LINE__);
  if (!ok)
    fprintf(stderr, "  %s: code %llu data %llu objects %llu\n", when,
            (unsigned long long)st.code_bytes, (unsigned long long)st.data_bytes,
            (unsigned long long)st.objects_linked);
}

int main(void) {
  test_watchdog(120);
  snprintf(dir, sizeof dir, "/tmp/jitrt-objects-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  write_file("a.c", "extern int b_twice(int);\n"
                    "int a_value = 40;\n"
                    "int a_add(int x) { return x + a_value; }\n"
                    "int a_calls_b(int x) { return b_twice(x) + 1; }\n");
  write_file("b.c", "#include <string.h>\n"
                    "static int calls;\n"
                    "int b_twice(int x) { calls++; return 2 * x; }\n"
                    "int b_calls(void) { return calls; }\n"
                    "size_t b_len(const char *s) { return strlen(s); }\n");
  write_file("lib1.c", "int lib_one(void) { return 1; }\n");
  write_file("lib2.c", "extern int lib_one(void);\n"
                       "int lib_two(void) { return lib_one() + 1; }\n");
  write_file("lib3.c", "int lib_unused(void) { return 3; }\n");
  write_file("undef.c", "extern int undefined_in_jitrt_test(void);\n"
                        "int call_undef(void) { return undefined_in_jitrt_test() + 1; }\n");
  write_file("ctor.c", "extern void host_note(int);\n"
                       "__attribute__((constructor)) static void up(void) { host_note(1); }\n"
                       "__attribute__((destructor)) static void down(void) { host_note(-1); }\n"
                       "int ctor_value(void) { return 7; }\n");
  const char *names[] = {"a", "b", "lib1", "lib2", "lib3", "undef", "ctor"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) compile(names[i]);
  {
    char lib[512], objs[1024];
    snprintf(lib, sizeof lib, "%s/libx.a", dir);
    snprintf(objs, sizeof objs, "%s/lib1.o %s/lib2.o %s/lib3.o", dir, dir, dir);
    run("ar rcs %s %s", lib, objs);
  }

  jitrt_session_t *s = test_session();
  jitrt_dylib_t *d = test_dylib(s, "objects");
  size_t alen = 0;
  uint8_t *abuf = read_file("a.o", &alen);

  /* a.o from a buffer (freed at once: the library copies it), b.o from a
   * file, each under its own tracker; a calls b. */
  jitrt_tracker_t *ta = jitrt_dylib_create_tracker(d);
  jitrt_tracker_t *tb = jitrt_dylib_create_tracker(d);
  uint8_t *copy = malloc(alen);
  memcpy(copy, abuf, alen);
  CHECK_OK(jitrt_tracker_add_object(ta, copy, alen, "a.o"));
  memset(copy, 0xcc, alen);
  free(copy);
  CHECK_OK(jitrt_tracker_add_object_file(tb, path_of("b.o")));
  jitrt_stats_t st;
  jitrt_session_stats(s, &st);
  CHECK(st.objects_linked == 0); /* linked lazily */
  CHECK(st.symbols >= 5);
  uint64_t a_calls_b = lookup(d, "a_calls_b");
  CHECK(CALL_INT(a_calls_b, 20) == 41);
  CHECK(CALL_INT(lookup(d, "a_add"), 2) == 42);
  CHECK(CALL0(lookup(d, "b_calls")) == 1);
  uint64_t b_len = lookup(d, "b_len");
  CHECK(b_len && ((len_fn)(uintptr_t)b_len)("seven!!") == 7);
  uint64_t a_value = lookup(d, "a_value");
  CHECK(a_value && *(int *)(uintptr_t)a_value == 40);
  jitrt_session_stats(s, &st);
  CHECK(st.objects_linked == 2);
  CHECK(st.code_bytes > 0 && st.data_bytes > 0);

  /* A duplicate definition adds nothing. */
  jitrt_tracker_t *tdup = jitrt_dylib_create_tracker(d);
  uint64_t symbols_before = st.symbols;
  CHECK_ERR_MSG(jitrt_tracker_add_object(tdup, abuf, alen, "again.o"),
                JITRT_ERR_DUPLICATE_DEFINITION, "a_");
  CHECK_ERR(jitrt_tracker_add_object_file(tdup, path_of("b.o")), JITRT_ERR_DUPLICATE_DEFINITION);
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == symbols_before);
  CHECK_OK(jitrt_tracker_remove(tdup));
  jitrt_tracker_release(tdup);
  CHECK(CALL_INT(a_calls_b, 1) == 3);

  /* Bad input: a truncated buffer, another machine, no file, not an
   * archive, NULL handles. */
  jitrt_tracker_t *tbad = jitrt_dylib_create_tracker(d);
  CHECK_ERR_MSG(jitrt_tracker_add_object(tbad, abuf, alen / 2, "half.o"),
                JITRT_ERR_MALFORMED_OBJECT, "half.o");
  CHECK_ERR(jitrt_tracker_add_object(tbad, abuf, 10, "ten.o"), JITRT_ERR_MALFORMED_OBJECT);
  CHECK_ERR(jitrt_tracker_add_object(tbad, abuf, alen - 1, "short.o"),
            JITRT_ERR_MALFORMED_OBJECT);
  uint8_t *arm = malloc(alen);
  memcpy(arm, abuf, alen);
  /* The other machine than the library's: EM_AARCH64 or EM_X86_64. */
#if defined(__aarch64__)
  arm[18] = 62; /* EM_X86_64 */
  const char *other = "x86-64";
#else
  arm[18] = 183; /* EM_AARCH64 */
  const char *other = "aarch64";
#endif
  arm[19] = 0;
  CHECK_ERR_MSG(jitrt_tracker_add_object(tbad, arm, alen, "arm.o"), JITRT_ERR_UNSUPPORTED,
                other);
  free(arm);
  CHECK_ERR(jitrt_tracker_add_object_file(tbad, "/nonexistent/jitrt/x.o"), JITRT_ERR_IO);
  CHECK_ERR(jitrt_tracker_add_archive(tbad, path_of("a.o")), JITRT_ERR_MALFORMED_OBJECT);
  CHECK_ERR(jitrt_tracker_add_object(NULL, abuf, alen, "x.o"), JITRT_ERR_INVALID_ARGUMENT);
  CHECK_ERR(jitrt_tracker_add_object_file(tbad, NULL), JITRT_ERR_INVALID_ARGUMENT);
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == symbols_before);
  CHECK_OK(jitrt_tracker_remove(tbad));
  jitrt_tracker_release(tbad);

  /* An undefined symbol: SYMBOL_NOT_FOUND naming it and the object; the
   * dylib stays usable. */
  jitrt_tracker_t *tu = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_add_object_file(tu, path_of("undef.o")));
  uint64_t addr = 0;
  CHECK_ERR_MSG(jitrt_lookup(d, "call_undef", &addr), JITRT_ERR_SYMBOL_NOT_FOUND,
                "undefined_in_jitrt_test");
  CHECK_ERR_MSG(jitrt_lookup(d, "call_undef", &addr), JITRT_ERR_SYMBOL_NOT_FOUND, "undef.o");
  CHECK_OK(jitrt_tracker_remove(tu));
  jitrt_tracker_release(tu);
  jitrt_session_stats(s, &st);
  CHECK(st.objects_linked == 2);
  CHECK(CALL_INT(a_calls_b, 5) == 11);

  /* An archive: only the members a lookup needs are linked. */
  jitrt_tracker_t *tar = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_add_archive(tar, path_of("libx.a")));
  CHECK(CALL0(lookup(d, "lib_two")) == 2);
  jitrt_session_stats(s, &st);
  CHECK(st.objects_linked == 4); /* a, b, lib2, lib1; not lib3 */

  /* Constructors run before the lookup returns, destructors at remove. */
  jitrt_tracker_t *tc = jitrt_dylib_create_tracker(d);
  jitrt_symbol_t note = {"host_note", (uint64_t)(uintptr_t)&host_note,
                         JITRT_SYMBOL_EXPORTED | JITRT_SYMBOL_CALLABLE};
  CHECK_OK(jitrt_tracker_define_absolute(tc, &note, 1));
  CHECK_OK(jitrt_tracker_add_object_file(tc, path_of("ctor.o")));
  CHECK(live_objects == 0);
  CHECK(CALL0(lookup(d, "ctor_value")) == 7);
  CHECK(live_objects == 1);
  CHECK_OK(jitrt_tracker_remove(tc));
  CHECK(live_objects == 0);
  jitrt_tracker_release(tc);

  /* Remove everything: all code and data unmapped, lookups fail. */
  CHECK_OK(jitrt_tracker_remove(tar));
  CHECK_ERR(jitrt_lookup(d, "lib_two", &addr), JITRT_ERR_SYMBOL_NOT_FOUND);
  CHECK_ERR(jitrt_lookup(d, "lib_unused", &addr), JITRT_ERR_SYMBOL_NOT_FOUND);
  jitrt_tracker_release(tar);
  CHECK_OK(jitrt_tracker_remove(ta));
  CHECK_OK(jitrt_tracker_remove(tb));
  CHECK_ERR(jitrt_lookup(d, "a_calls_b", &addr), JITRT_ERR_SYMBOL_NOT_FOUND);
  check_stats_zero(s, "all trackers removed");
  jitrt_tracker_release(ta);
  jitrt_tracker_release(tb);

  /* The same dylib links the same objects again. */
  jitrt_tracker_t *t2 = jitrt_dylib_create_tracker(d);
  CHECK_OK(jitrt_tracker_add_object(t2, abuf, alen, "a.o"));
  CHECK_OK(jitrt_tracker_add_object_file(t2, path_of("b.o")));
  CHECK(CALL_INT(lookup(d, "a_calls_b"), 50) == 101);
  CHECK_OK(jitrt_dylib_clear(d));
  check_stats_zero(s, "dylib cleared");
  jitrt_tracker_release(t2);
  jitrt_session_stats(s, &st);
  CHECK(st.symbols == 0);

  free(abuf);
  jitrt_session_free(s);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char n[64];
    snprintf(n, sizeof n, "%s.c", names[i]);
    unlink(path_of(n));
    snprintf(n, sizeof n, "%s.o", names[i]);
    unlink(path_of(n));
  }
  unlink(path_of("libx.a"));
  rmdir(dir);
  return test_summary();
}
