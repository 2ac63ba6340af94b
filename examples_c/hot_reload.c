/* hot_reload: replace a plugin with a recompiled version, again and again,
 * without restarting the host and without leaking memory.
 *
 * Each round writes a new version of the plugin's source, compiles it
 * (`cc -c`, or $CC), and swaps it in:
 *
 *   1. a new resource tracker          jitrt_dylib_create_tracker
 *   2. the new object added under it   jitrt_tracker_add_object_file
 *   3. looked up (linked) and called   jitrt_lookup
 *   4. the previous version removed    jitrt_tracker_remove
 *
 * Removing a tracker removes everything added through it: its symbols,
 * code and data pages, unwind registrations, and runs its destructors.
 *
 * Both versions define the same symbols, and a dylib holds one definition
 * of a name at a time. So versions alternate between two dylibs ("slots"):
 * the new version is linked and running before the old one goes, and a
 * caller always has a working plugin_run.
 *
 * The JIT memory in use (jitrt_session_stats) is the same after every
 * round, and the process's resident set size stays flat.
 *
 * Usage: hot_reload [ROUNDS]   (default 30)
 *
 * Build and run (from the repository root, after `cargo build --release`):
 *   cc -Iinclude examples_c/hot_reload.c -Ltarget/release -ljitrt \
 *      -Wl,-rpath,$PWD/target/release -o hot_reload && ./hot_reload
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

/* Writes version `v` of the plugin to DIR/plugin-V.c and compiles it to
 * DIR/plugin-V.o (a new file each time: an added object file is mapped and
 * must not change while its tracker lives). */
static void compile_version(const char *dir, int v, char *obj, size_t obj_size) {
  char src[512], cmd[2048];
  snprintf(src, sizeof src, "%s/plugin-%d.c", dir, v);
  snprintf(obj, obj_size, "%s/plugin-%d.o", dir, v);
  FILE *f = fopen(src, "w");
  if (!f) {
    perror(src);
    exit(1);
  }
  fprintf(f,
          "#include <stdio.h>\n"
          "static int calls;\n"
          "static char buffer[64];\n"
          "int plugin_version(void) { return %d; }\n"
          "const char *plugin_run(void) {\n"
          "  snprintf(buffer, sizeof buffer, \"version %d, call %%d\", ++calls);\n"
          "  return buffer;\n"
          "}\n",
          v, v);
  fclose(f);
  const char *cc = getenv("CC");
  snprintf(cmd, sizeof cmd, "%s -c -o '%s' '%s'", cc && *cc ? cc : "cc", obj, src);
  if (system(cmd) != 0) {
    fprintf(stderr, "compiling %s failed\n", src);
    exit(1);
  }
  unlink(src);
}

/* Resident set size in KiB. */
static long rss_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 30;
  if (rounds < 3)
    rounds = 3;
  char dir[] = "/tmp/jitrt-hot-reload-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }

  jitrt_session_t *session = jitrt_session_new(NULL);
  if (!session)
    return 1;
  jitrt_dylib_t *slots[2];
  check(jitrt_session_create_dylib(session, "slot0", &slots[0]), "create slot0");
  check(jitrt_session_create_dylib(session, "slot1", &slots[1]), "create slot1");

  jitrt_tracker_t *old = NULL;
  char old_obj[600] = "";
  uint64_t mapped_first = 0, mapped_last = 0;
  long rss_first = 0, rss_last = 0;

  for (int v = 1; v <= rounds; v++) {
    char obj[600];
    compile_version(dir, v, obj, sizeof obj);

    /* 1-2: the new version under its own tracker, in the free slot. */
    jitrt_dylib_t *slot = slots[v % 2];
    jitrt_tracker_t *t = jitrt_dylib_create_tracker(slot);
    check(jitrt_tracker_add_object_file(t, obj), "add_object_file");

    /* 3: link it and call it. */
    uint64_t version_addr = 0, run_addr = 0;
    check(jitrt_lookup(slot, "plugin_version", &version_addr), "lookup plugin_version");
    check(jitrt_lookup(slot, "plugin_run", &run_addr), "lookup plugin_run");
    int (*plugin_version)(void) = (int (*)(void))(uintptr_t)version_addr;
    const char *(*plugin_run)(void) = (const char *(*)(void))(uintptr_t)run_addr;
    int got = plugin_version();
    const char *said = plugin_run();
    if (got != v) {
      fprintf(stderr, "round %d: plugin_version() returned %d\n", v, got);
      return 1;
    }
    if (v <= 3 || v == rounds)
      printf("round %d: plugin_version() = %d, plugin_run() = \"%s\"\n", v, got, said);

    /* 4: the previous version goes: code, data, symbols. Its object file
     * may be deleted now. */
    if (old) {
      check(jitrt_tracker_remove(old), "tracker_remove");
      jitrt_tracker_release(old);
      unlink(old_obj);
    }
    old = t;
    snprintf(old_obj, sizeof old_obj, "%s", obj);

    jitrt_stats_t st;
    jitrt_session_stats(session, &st);
    uint64_t mapped = st.code_bytes + st.data_bytes;
    if (v == 2) {
      mapped_first = mapped;
      rss_first = rss_kib();
    }
    if (v == rounds) {
      mapped_last = mapped;
      rss_last = rss_kib();
      printf("live objects: %llu, live trackers: %llu\n", (unsigned long long)st.objects_linked,
             (unsigned long long)st.trackers);
    }
  }

  printf("JIT memory mapped after round 2: %llu bytes, after round %d: %llu bytes\n",
         (unsigned long long)mapped_first, rounds, (unsigned long long)mapped_last);
  printf("resident set after round 2: %ld KiB, after round %d: %ld KiB\n", rss_first, rounds,
         rss_last);
  /* The JIT's own accounting must be exactly flat; the process's RSS may
   * wobble a little (stdio, the allocator, the compiler's child process). */
  int flat = mapped_first == mapped_last && rss_last - rss_first < 4096;
  printf("memory flat: %s\n", flat ? "yes" : "no");

  check(jitrt_tracker_remove(old), "tracker_remove");
  jitrt_tracker_release(old);
  unlink(old_obj);
  jitrt_session_free(session);
  rmdir(dir);
  return flat ? 0 : 1;
}
