/*
 * What a Mach-O object brings besides code, in one program for
 * tests/link_macho_corpus.rs: constructors (`__mod_init_func`),
 * handlers registered with atexit() and __cxa_atexit() (the linker's own,
 * with the object's `___dso_handle`: they run when the object is removed), `__cstring`,
 * literal pools and `__const` tables (of numbers and of pointers),
 * `__data`, `__bss`, a common symbol, a weak definition, a switch's jump
 * table, a callback the host's qsort() calls, libm, and errno through
 * macOS's `__error()`.
 *
 * Usage: macho_features_driver OUTFILE
 *
 * No variadic calls (Apple's arm64 convention passes variadic arguments on
 * the stack, Linux's in registers): numbers are formatted here and written
 * with fwrite. Returns 0. Called in-process by the tests: keeps no state
 * between calls except what the constructors set.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DEFINE_EXIT_COUNTER
int exit_counter;
#else
extern int exit_counter; /* the JIT test host's */
#endif

static char report[8192];
static size_t used;

static void put(const char *s) {
    size_t n = strlen(s);
    if (used + n < sizeof report) {
        memcpy(report + used, s, n);
        used += n;
    }
}

static void put_num(long long v) {
    char buf[24];
    int i = sizeof buf - 1;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u && i > 1);
    if (v < 0)
        buf[--i] = '-';
    put(buf + i);
}

static void line(const char *name, long long v) {
    put(name);
    put(" = ");
    put_num(v);
    put("\n");
}

static int ctor_value;

static void count_exit(void) { exit_counter += 1; }

/* What C++ registers for a static object's destructor: a handler with an
 * argument, under this object's own `__dso_handle`. */
extern int __cxa_atexit(void (*)(void *), void *, void *);
extern void *__dso_handle;
static int exit_step = 10;
static void count_exit_by(void *step) { exit_counter += *(int *)step; }

/* The order of two constructors of one file is unspecified (clang -O2
 * folds the second into a static value as if it ran first): each sets its
 * own bit. */
__attribute__((constructor)) static void first_constructor(void) {
    ctor_value |= 1;
    atexit(count_exit);
    __cxa_atexit(count_exit_by, &exit_step, &__dso_handle);
}

__attribute__((constructor)) static void second_constructor(void) { ctor_value |= 2; }

int common_counter;
int initialized = 1234;
static char zeroed[3000];

__attribute__((weak)) int weak_answer(void) { return 7; }

static const double coeffs[] = {1.5, -2.25, 3.125, 0.001, 17.0};
static const char *const names[] = {"zero", "one", "two", "three", "four", "five"};

static int descending(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

__attribute__((noinline)) static long classify(int x) {
    switch (x) {
    case 0: return 11;
    case 1: return 23;
    case 2: return 37;
    case 3: return 41;
    case 4: return 59;
    case 5: return 61;
    case 6: return 73;
    case 7: return 89;
    default: return -1;
    }
}

int main(int argc, char **argv) {
    int values[16];
    double acc = 0, x = 1.25;
    long long sum = 0;
    size_t i;
    char *end;
    long big;
    FILE *out;
    used = 0;
    if (argc < 2)
        return 2;
    line("constructors", ctor_value);
    line("initialized", initialized);
    initialized += 1;
    for (i = 0; i < sizeof zeroed; i++)
        sum += zeroed[i];
    line("bss", sum);
    common_counter += 5;
    line("common", common_counter);
    common_counter = 0;
    line("weak", weak_answer());
    for (i = 0; i < sizeof coeffs / sizeof coeffs[0]; i++)
        acc += coeffs[i] * pow(x, (double)i);
    line("polynomial*1e6", llround(acc * 1e6));
    line("hypot*1e6", llround(hypot(3.0, 4.5) * 1e6));
    for (i = 0; i < 6; i++) {
        put(names[i]);
        put(" ");
    }
    put("\n");
    for (i = 0; i < 16; i++)
        values[i] = (int)((i * 7919u) % 101u) - 50;
    qsort(values, 16, sizeof values[0], descending);
    for (i = 0; i < 16; i++) {
        put_num(values[i]);
        put(i + 1 < 16 ? "," : "\n");
    }
    sum = 0;
    for (i = 0; i < 10; i++)
        sum = sum * 3 + classify((int)i);
    line("switch", sum);
    errno = 0;
    big = strtol("999999999999999999999999", &end, 10);
    line("strtol", big);
    line("erange", errno == ERANGE);
    line("consumed", *end == 0);
    put("MACHO FEATURES OK\n");
    out = fopen(argv[1], "w");
    if (!out)
        return 2;
    fwrite(report, 1, used, out);
    fclose(out);
    return 0;
}
