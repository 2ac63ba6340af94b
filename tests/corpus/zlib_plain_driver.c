/*
 * A zlib driver that makes no variadic calls (for arm64 Mach-O code run on
 * Linux: Apple's arm64 convention passes variadic arguments on the stack,
 * Linux's in registers, so such code cannot call the host's printf).
 *
 * Usage: zlib_plain_driver OUTFILE
 *
 * Generates text, random and repetitive data, compresses it with
 * compress2() at several levels and with streaming deflate (zlib, raw and
 * gzip formats, small output buffers, a preset dictionary), inflates it
 * back, checks the round trips, runs crc32/adler32 and their combine
 * functions, and writes sizes and checksums to OUTFILE, formatting numbers
 * itself and writing with fwrite. Returns 0 when every round trip matched.
 * No gz* file functions: they call open() with a mode and snprintf.
 *
 * The libjitrt tests call main() inside the test process: no exit(), no
 * state kept between calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zlib.h"

static char report[16384];
static size_t used;
static int failures;

static void put(const char *s) {
    size_t n = strlen(s);
    if (used + n < sizeof report) {
        memcpy(report + used, s, n);
        used += n;
    }
}

static void put_num(unsigned long long v, unsigned base) {
    char buf[24];
    int i = sizeof buf - 1;
    buf[i] = 0;
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && i > 0);
    put(buf + i);
}

static void field(const char *name, unsigned long long v, unsigned base) {
    put(" ");
    put(name);
    put("=");
    put_num(v, base);
}

static void fail(const char *what, const char *name, int code) {
    put("MISMATCH ");
    put(what);
    put(" ");
    put(name);
    field("code", (unsigned long long)(code < 0 ? -code : code), 10);
    put("\n");
    failures++;
}

static unsigned long long rng_state;

static unsigned rng(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

static unsigned char *make(int kind, size_t len) {
    static const char *const words[] = {"lorem", "ipsum", "dolor", "sit", "amet", "jit",
                                        "linker", "page21", "pageoff12", "branch26", "\n"};
    unsigned char *p = malloc(len);
    size_t i = 0;
    if (!p)
        return p;
    while (i < len) {
        if (kind == 0) {
            const char *w = words[rng() % 11];
            size_t n = strlen(w), j;
            for (j = 0; j < n && i < len; j++)
                p[i++] = (unsigned char)w[j];
            if (i < len)
                p[i++] = ' ';
        } else if (kind == 1) {
            p[i++] = (unsigned char)rng();
        } else {
            p[i] = (unsigned char)("abcabcabd"[i % 9] + (i / 4096));
            i++;
        }
    }
    return p;
}

static void stream(const char *name, const unsigned char *data, size_t len, int window,
                   int with_dict) {
    static const unsigned char dict[] = "lorem ipsum dolor sit amet linker";
    size_t cap = compressBound(len) + 64, have = 0, back = 0;
    unsigned char *comp = malloc(cap), *round = malloc(len + 1);
    z_stream s;
    int rc;
    if (!comp || !round) {
        fail("malloc", name, 0);
        free(comp);
        free(round);
        return;
    }
    memset(&s, 0, sizeof s);
    rc = deflateInit2(&s, 6, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY);
    if (rc == Z_OK && with_dict)
        rc = deflateSetDictionary(&s, dict, sizeof dict - 1);
    if (rc != Z_OK) {
        fail("deflateInit2", name, rc);
        goto done;
    }
    s.next_in = (unsigned char *)data;
    s.avail_in = (uInt)len;
    do {
        s.next_out = comp + have;
        s.avail_out = (uInt)(cap - have < 777 ? cap - have : 777);
        rc = deflate(&s, Z_FINISH);
        have = (size_t)(s.next_out - comp);
    } while (rc == Z_OK || rc == Z_BUF_ERROR);
    deflateEnd(&s);
    if (rc != Z_STREAM_END) {
        fail("deflate", name, rc);
        goto done;
    }
    memset(&s, 0, sizeof s);
    rc = inflateInit2(&s, window);
    if (rc != Z_OK) {
        fail("inflateInit2", name, rc);
        goto done;
    }
    s.next_in = comp;
    s.avail_in = (uInt)have;
    do {
        s.next_out = round + back;
        s.avail_out = (uInt)(len + 1 - back < 501 ? len + 1 - back : 501);
        rc = inflate(&s, Z_NO_FLUSH);
        if (rc == Z_NEED_DICT && with_dict)
            rc = inflateSetDictionary(&s, dict, sizeof dict - 1);
        back = (size_t)(s.next_out - round);
    } while (rc == Z_OK);
    inflateEnd(&s);
    if (rc != Z_STREAM_END || back != len || memcmp(round, data, len) != 0)
        fail("inflate", name, rc);
    put("  stream");
    field("window", (unsigned long long)(window < 0 ? 100 - window : window), 10);
    field("dict", (unsigned long long)with_dict, 10);
    field("size", have, 10);
    field("crc32", crc32(0, comp, (uInt)have), 16);
    put("\n");
done:
    free(comp);
    free(round);
}

int main(int argc, char **argv) {
    static const int levels[] = {0, 1, 6, 9};
    static const size_t sizes[] = {0, 1, 4096, 100000};
    static const char *const kinds[] = {"text", "random", "repeat"};
    FILE *out;
    int k, z, l;
    used = 0;
    failures = 0;
    rng_state = 0x1234;
    if (argc < 2)
        return 2;
    put("== zlib plain driver: zlib ");
    put(zlibVersion());
    field("flags", zlibCompileFlags(), 16);
    put("\n");
    for (k = 0; k < 3; k++) {
        for (z = 0; z < 4; z++) {
            size_t len = sizes[z];
            unsigned char *data = make(k, len ? len : 1);
            uLong a = adler32(1, data, (uInt)len), c = crc32(0, data, (uInt)len);
            char name[32];
            if (!data) {
                fail("malloc", kinds[k], 0);
                continue;
            }
            strcpy(name, kinds[k]);
            put(name);
            field("len", len, 10);
            field("crc32", c, 16);
            field("adler32", a, 16);
            field("bound", compressBound(len), 10);
            if (len > 1) {
                size_t h = len / 3;
                uLong c1 = crc32(0, data, (uInt)h), c2 = crc32(0, data + h, (uInt)(len - h));
                uLong a1 = adler32(1, data, (uInt)h), a2 = adler32(1, data + h, (uInt)(len - h));
                if (crc32_combine(c1, c2, (z_off_t)(len - h)) != c ||
                    adler32_combine(a1, a2, (z_off_t)(len - h)) != a)
                    fail("combine", name, 0);
            }
            put("\n");
            for (l = 0; l < 4; l++) {
                uLongf clen = compressBound(len), rlen = len;
                unsigned char *comp = malloc(clen), *round = malloc(len + 1);
                int rc = comp && round ? compress2(comp, &clen, data, len, levels[l]) : Z_MEM_ERROR;
                if (rc == Z_OK)
                    rc = uncompress(round, &rlen, comp, clen);
                if (rc != Z_OK || rlen != len || memcmp(round, data, len) != 0)
                    fail("compress2", name, rc);
                else {
                    put("  compress2");
                    field("level", (unsigned long long)levels[l], 10);
                    field("size", clen, 10);
                    field("crc32", crc32(0, comp, (uInt)clen), 16);
                    put("\n");
                }
                free(comp);
                free(round);
            }
            if (len) {
                stream(name, data, len, 15, 0);
                stream(name, data, len, -15, 0);
                stream(name, data, len, 31, 0);
                stream(name, data, len, 15, 1);
            }
            free(data);
        }
    }
    put(failures ? "ZLIB PLAIN DRIVER FAILED" : "ZLIB PLAIN DRIVER OK");
    field("failures", (unsigned long long)failures, 10);
    put("\n");
    out = fopen(argv[1], "w");
    if (!out)
        return 2;
    fwrite(report, 1, used, out);
    fclose(out);
    return failures != 0;
}
