/*
 * Driver for the zlib corpus program.
 *
 * Usage: zlib_driver OUTFILE
 *
 * Generates several kinds of data, compresses them at several levels with
 * compress2() and with streaming deflate (zlib, raw and gzip formats,
 * small output buffers), inflates them back, checks the round trips, runs
 * crc32/adler32 (and their combine functions) and a gzwrite/gzread file round
 * trip, and writes sizes and checksums to OUTFILE. Returns 0 when every round
 * trip matched, 1 otherwise.
 *
 * The libjitrt tests call main() inside the test process, so this file
 * never calls exit() and keeps no state between calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zlib.h"

static FILE *out;
static int failures;

static void fail(const char *what, const char *name, int level, int code) {
    fprintf(out, "MISMATCH %s %s level=%d code=%d\n", what, name, level, code);
    fprintf(stderr, "zlib_driver: %s failed for %s at level %d (code %d)\n", what, name, level,
            code);
    failures++;
}

struct sample {
    const char *name;
    unsigned char *data;
    size_t len;
};

static unsigned long long rng_state;

static unsigned rng(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

static unsigned char *make_text(size_t len) {
    static const char *const words[] = {"lorem", "ipsum", "dolor", "sit", "amet", "jit",
                                        "linker", "relocation", "symbol", "section", "\n"};
    unsigned char *p = malloc(len);
    size_t i = 0;
    while (p && i < len) {
        const char *w = words[rng() % 11];
        size_t n = strlen(w);
        size_t j;
        for (j = 0; j < n && i < len; j++)
            p[i++] = (unsigned char)w[j];
        if (i < len)
            p[i++] = ' ';
    }
    return p;
}

static unsigned char *make_random(size_t len) {
    unsigned char *p = malloc(len);
    size_t i;
    for (i = 0; p && i < len; i++)
        p[i] = (unsigned char)(rng() >> 5);
    return p;
}

static unsigned char *make_pattern(size_t len) {
    unsigned char *p = malloc(len);
    size_t i;
    for (i = 0; p && i < len; i++)
        p[i] = (unsigned char)((i / 1000) % 3 == 0 ? 0 : (i * i) % 251);
    return p;
}

/* Streaming deflate with a small output buffer; returns compressed length or 0. */
static size_t stream_deflate(const struct sample *s, int level, int window_bits, int strategy,
                             unsigned char *dst, size_t cap) {
    z_stream zs;
    unsigned char chunk[1024];
    size_t produced = 0, fed = 0;
    int rc, flush;

    memset(&zs, 0, sizeof zs);
    rc = deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, strategy);
    if (rc != Z_OK)
        return 0;
    do {
        size_t take = s->len - fed < 4093 ? s->len - fed : 4093;
        zs.next_in = s->data + fed;
        zs.avail_in = (uInt)take;
        fed += take;
        flush = fed == s->len ? Z_FINISH : Z_NO_FLUSH;
        do {
            size_t have;
            zs.next_out = chunk;
            zs.avail_out = sizeof chunk;
            rc = deflate(&zs, flush);
            if (rc == Z_STREAM_ERROR) {
                deflateEnd(&zs);
                return 0;
            }
            have = sizeof chunk - zs.avail_out;
            if (produced + have > cap) {
                deflateEnd(&zs);
                return 0;
            }
            memcpy(dst + produced, chunk, have);
            produced += have;
        } while (zs.avail_out == 0);
    } while (flush != Z_FINISH);
    rc = deflateEnd(&zs);
    return rc == Z_OK ? produced : 0;
}

/* Streaming inflate with a small output buffer; returns inflated length or (size_t)-1. */
static size_t stream_inflate(const unsigned char *src, size_t len, int window_bits,
                             unsigned char *dst, size_t cap) {
    z_stream zs;
    unsigned char chunk[777];
    size_t produced = 0;
    int rc;

    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, window_bits) != Z_OK)
        return (size_t)-1;
    zs.next_in = (unsigned char *)src;
    zs.avail_in = (uInt)len;
    do {
        size_t have;
        zs.next_out = chunk;
        zs.avail_out = sizeof chunk;
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&zs);
            return (size_t)-1;
        }
        have = sizeof chunk - zs.avail_out;
        if (produced + have > cap) {
            inflateEnd(&zs);
            return (size_t)-1;
        }
        memcpy(dst + produced, chunk, have);
        produced += have;
    } while (rc != Z_STREAM_END);
    inflateEnd(&zs);
    return produced;
}

static void check_sample(const struct sample *s, unsigned char *buf, unsigned char *back,
                         size_t cap) {
    static const int levels[] = {0, 1, 6, 9};
    static const struct {
        const char *name;
        int bits, strategy;
    } formats[] = {{"zlib", 15, Z_DEFAULT_STRATEGY},
                   {"raw", -15, Z_DEFAULT_STRATEGY},
                   {"gzip", 15 + 16, Z_DEFAULT_STRATEGY},
                   {"gzip-filtered", 15 + 16, Z_FILTERED},
                   {"zlib-huffman", 12, Z_HUFFMAN_ONLY},
                   {"zlib-rle", 9, Z_RLE}};
    unsigned i, f;
    uLong crc = crc32(0L, Z_NULL, 0), adler = adler32(0L, Z_NULL, 0);
    size_t half = s->len / 2;

    crc = crc32(crc, s->data, (uInt)s->len);
    adler = adler32(adler, s->data, (uInt)s->len);
    fprintf(out, "%s: len=%lu crc32=%08lx adler32=%08lx bound=%lu\n", s->name,
            (unsigned long)s->len, crc, adler, (unsigned long)compressBound((uLong)s->len));
    {
        uLong c1 = crc32(0L, s->data, (uInt)half);
        uLong c2 = crc32(0L, s->data + half, (uInt)(s->len - half));
        uLong a1 = adler32(1L, s->data, (uInt)half);
        uLong a2 = adler32(1L, s->data + half, (uInt)(s->len - half));
        if (crc32_combine(c1, c2, (z_off_t)(s->len - half)) != crc)
            fail("crc32_combine", s->name, -1, 0);
        if (adler32_combine(a1, a2, (z_off_t)(s->len - half)) != adler)
            fail("adler32_combine", s->name, -1, 0);
    }

    for (i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        uLongf clen = (uLongf)cap, blen = (uLongf)cap;
        int rc = compress2(buf, &clen, s->data, (uLong)s->len, levels[i]);
        if (rc != Z_OK) {
            fail("compress2", s->name, levels[i], rc);
            continue;
        }
        rc = uncompress(back, &blen, buf, clen);
        if (rc != Z_OK || blen != s->len || memcmp(back, s->data, s->len) != 0)
            fail("uncompress", s->name, levels[i], rc);
        fprintf(out, "  compress2 level=%d size=%lu crc32(compressed)=%08lx\n", levels[i],
                (unsigned long)clen, crc32(0L, buf, (uInt)clen));

        for (f = 0; f < sizeof formats / sizeof formats[0]; f++) {
            size_t n = stream_deflate(s, levels[i], formats[f].bits, formats[f].strategy, buf, cap);
            size_t m;
            if (n == 0) {
                fail("deflate", s->name, levels[i], (int)f);
                continue;
            }
            /* gzip streams are inflated with automatic header detection. */
            m = stream_inflate(buf, n, formats[f].bits > 15 ? 15 + 32 : formats[f].bits, back,
                               cap);
            if (m != s->len || memcmp(back, s->data, s->len) != 0)
                fail("inflate", s->name, levels[i], (int)f);
            fprintf(out, "    %s size=%lu adler32(compressed)=%08lx\n", formats[f].name,
                    (unsigned long)n, adler32(1L, buf, (uInt)n));
        }
    }
}

static void gzip_file_round_trip(const char *base, const struct sample *s) {
    char path[4096];
    char line[256];
    gzFile gz;
    unsigned char *back;
    int n, lines = 0;
    size_t total = 0;

    snprintf(path, sizeof path, "%s.gz", base);
    gz = gzopen(path, "wb9");
    if (!gz) {
        fail("gzopen(w)", s->name, 9, 0);
        return;
    }
    gzprintf(gz, "header line %d %s\n", 42, "gzprintf");
    gzputs(gz, "second line via gzputs\n");
    if (gzwrite(gz, s->data, (unsigned)s->len) != (int)s->len)
        fail("gzwrite", s->name, 9, 0);
    if (gzclose(gz) != Z_OK)
        fail("gzclose(w)", s->name, 9, 0);

    gz = gzopen(path, "rb");
    if (!gz) {
        fail("gzopen(r)", s->name, 9, 0);
        remove(path);
        return;
    }
    while (lines < 2 && gzgets(gz, line, sizeof line)) {
        fprintf(out, "gzgets: %s", line);
        lines++;
    }
    back = malloc(s->len + 1);
    while (back && (n = gzread(gz, back + total, (unsigned)(s->len + 1 - total))) > 0)
        total += (size_t)n;
    if (!back || total != s->len || memcmp(back, s->data, s->len) != 0 || !gzeof(gz))
        fail("gzread", s->name, 9, (int)total);
    fprintf(out, "gzfile: %lu bytes back, eof=%d\n", (unsigned long)total, gzeof(gz));
    free(back);
    gzclose(gz);
    remove(path);
}

int main(int argc, char **argv) {
    struct sample samples[5];
    size_t cap = 0, i, nsamples = sizeof samples / sizeof samples[0];
    unsigned char *buf, *back;

    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTFILE\n", argc > 0 ? argv[0] : "zlib_driver");
        return 2;
    }
    out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 2;
    }
    failures = 0;
    rng_state = 12345;

    fprintf(out, "== zlib driver: zlib %s (compile flags %lx)\n", zlibVersion(),
            (unsigned long)zlibCompileFlags());
    samples[0].name = "text";
    samples[0].len = 100000;
    samples[0].data = make_text(samples[0].len);
    samples[1].name = "random";
    samples[1].len = 65536;
    samples[1].data = make_random(samples[1].len);
    samples[2].name = "pattern";
    samples[2].len = 60000;
    samples[2].data = make_pattern(samples[2].len);
    samples[3].name = "zeros";
    samples[3].len = 100000;
    samples[3].data = calloc(samples[3].len, 1);
    samples[4].name = "one-byte";
    samples[4].len = 1;
    samples[4].data = malloc(1);
    if (samples[4].data)
        samples[4].data[0] = 'x';

    for (i = 0; i < nsamples; i++) {
        size_t b = 2 * samples[i].len + 4096; /* stored blocks of small windows */
        if (b > cap)
            cap = b;
    }
    buf = malloc(cap);
    back = malloc(cap);
    for (i = 0; i < nsamples; i++) {
        if (!samples[i].data || !buf || !back) {
            fprintf(stderr, "zlib_driver: out of memory\n");
            failures++;
            break;
        }
        check_sample(&samples[i], buf, back, cap);
    }
    if (!failures)
        gzip_file_round_trip(argv[1], &samples[0]);

    /* Corrupted input must be rejected. */
    {
        uLongf clen = (uLongf)cap, blen = (uLongf)cap;
        int rc;
        compress2(buf, &clen, samples[0].data, 5000, 6);
        buf[clen / 2] ^= 0x55;
        buf[clen / 2 + 1] ^= 0xaa;
        rc = uncompress(back, &blen, buf, clen);
        fprintf(out, "corrupted: rc=%d (%s)\n", rc, rc == Z_OK ? "accepted" : "rejected");
        if (rc == Z_OK)
            fail("corruption detection", "text", 6, rc);
    }

    for (i = 0; i < nsamples; i++)
        free(samples[i].data);
    free(buf);
    free(back);
    fprintf(out, "%s failures=%d\n", failures ? "ZLIB DRIVER FAILED" : "ZLIB DRIVER OK",
            failures);
    fclose(out);
    out = NULL;
    return failures ? 1 : 0;
}
