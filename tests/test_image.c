/* test_image.c - image output: diffusers' float -> u8 conversion (numpy
 * rounding), PNG files with A1111's "parameters" text (tEXt / iTXt, CRCs,
 * read back by stb_image and, when installed, by PIL), atomic writes that
 * never leave partial or temporary files, the A1111 infotext, SHA-256. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

/* stb_image, file-local (static) so no stbi_ symbol can clash with another
 * object. This stb version declares stbi_set_unpremultiply_on_load_thread
 * without defining it, which GCC reports at the end of the file, so
 * -Wunused-function stays off for this file (not popped). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#include "image/image.h"
#include "st_write.h"

static char *g_dir;

static void setup(void) {
    g_dir = st_tmpdir();
    cr_assert_not_null(g_dir, "cannot create a temp dir");
}

static void teardown(void) {
    if (g_dir) {
        chmod(g_dir, 0700);
        st_rmtree(g_dir);
    }
    free(g_dir);
    g_dir = NULL;
}

TestSuite(image, .init = setup, .fini = teardown);

static char *tpath(const char *name) {
    char *p = st_path(g_dir, name);
    cr_assert_not_null(p);
    return p;
}

/* Number of entries in dir (without . and ..); *tmp counts "*.tmp" ones. */
static int count_entries(const char *dir, int *tmp) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    int n = 0, t = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        size_t l = strlen(e->d_name);
        if (l >= 4 && !strcmp(e->d_name + l - 4, ".tmp")) t++;
    }
    closedir(d);
    if (tmp) *tmp = t;
    return n;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static uint8_t *test_image(int w, int h, uint32_t seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    cr_assert_not_null(p);
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        /* smooth gradient plus noise, like a real image */
        p[i] = (uint8_t)((i / 3 % (size_t)w) * 2 + (i % 3) * 40 + (s >> 29));
    }
    return p;
}

static void hex(const uint8_t *d, char out[65]) { sdc_sha256_hex(d, out); }

/* A python with the module, for the optional cross-checks; NULL if none. */
static const char *python_with(const char *module) {
    static const char *cands[] = {"tools/.venv/bin/python", "python3"};
    static char cmd[256];
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        snprintf(cmd, sizeof cmd, "%s -c 'import %s' >/dev/null 2>&1",
                 cands[i], module);
        if (system(cmd) == 0) return cands[i];
    }
    return NULL;
}

/* ================================================================ SHA-256 */

static const struct {
    const char *msg;
    const char *hex;
} fips[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
     "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static void check_fips(bool hw) {
    sdc_sha256_use_hw(hw);
    uint8_t d[32];
    char h[65];
    for (size_t i = 0; i < sizeof fips / sizeof *fips; i++) {
        sdc_sha256(fips[i].msg, strlen(fips[i].msg), d);
        hex(d, h);
        cr_assert_str_eq(h, fips[i].hex, "vector %zu (hw=%d)", i, hw);
    }
    /* one million 'a', fed in uneven pieces */
    char *a = malloc(1000000);
    cr_assert_not_null(a);
    memset(a, 'a', 1000000);
    sdc_sha256(a, 1000000, d);
    hex(d, h);
    cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    sdc_sha256_ctx c;
    sdc_sha256_init(&c);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 + 1) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        sdc_sha256_update(&c, a + off, n);
    }
    sdc_sha256_final(&c, d);
    hex(d, h);
    cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

Test(image, sha256_fips_vectors_portable) { check_fips(false); }

Test(image, sha256_fips_vectors_default) {
    check_fips(true);
    cr_log_info("SHA-256 uses the %s code",
                sdc_sha256_use_hw(true) ? "SHA-NI" : "portable");
}

Test(image, sha256_both_implementations_agree_on_all_lengths) {
    uint8_t buf[700], d1[32], d2[32];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof buf; n++) {
        sdc_sha256_use_hw(false);
        sdc_sha256(buf, n, d1);
        sdc_sha256_use_hw(true);
        /* split at an odd point to exercise the partial-block path */
        sdc_sha256_ctx c;
        sdc_sha256_init(&c);
        sdc_sha256_update(&c, buf, n / 3);
        sdc_sha256_update(&c, buf + n / 3, n - n / 3);
        sdc_sha256_final(&c, d2);
        cr_assert_arr_eq(d1, d2, 32, "length %zu", n);
    }
}

Test(image, file_sha256_matches_sha256sum) {
    /* 9 MiB + 77 bytes: crosses the 4 MiB read chunks, ends mid-block */
    char *p = tpath("model.safetensors");
    size_t n = ((size_t)9 << 20) + 77;
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        b[i] = (uint8_t)(s >> 24);
    }
    cr_assert_eq(st_write_bytes(p, b, n), 0);

    uint8_t d[32];
    char h[65], ref[65] = "", cmd[1024];
    cr_assert_eq(sdc_file_sha256(p, d), SDC_OK, "%s", sdc_last_error());
    hex(d, h);

    uint8_t dm[32];
    char hm[65];
    sdc_sha256(b, n, dm);
    hex(dm, hm);
    cr_assert_str_eq(h, hm);

    snprintf(cmd, sizeof cmd, "sha256sum '%s' 2>/dev/null", p);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    int got = fscanf(f, "%64s", ref);
    int rc = pclose(f);
    if (got == 1 && rc == 0)
        cr_assert_str_eq(h, ref, "sha256sum says %s", ref);
    else
        fprintf(stderr, "image: sha256sum not available; compared with the in-memory hash\n");

    char short10[11];
    cr_assert_eq(sdc_file_sha256_short(p, short10), SDC_OK);
    cr_assert_eq(strlen(short10), 10);
    cr_assert_eq(strncmp(short10, h, 10), 0);

    /* an empty file hashes as "" */
    char *e = tpath("empty.bin");
    cr_assert_eq(st_write_bytes(e, "", 0), 0);
    cr_assert_eq(sdc_file_sha256_short(e, short10), SDC_OK);
    cr_assert_str_eq(short10, "e3b0c44298");
    free(b);
    free(p);
    free(e);
}

Test(image, file_sha256_errors_name_the_path) {
    char *p = tpath("missing.safetensors");
    char out[11];
    cr_assert_eq(sdc_file_sha256_short(p, out), SDC_ERR_IO);
    cr_assert_not_null(strstr(sdc_last_error(), p), "%s", sdc_last_error());
    cr_assert_eq(sdc_file_sha256_short(g_dir, out), SDC_ERR_IO);
    cr_assert_not_null(strstr(sdc_last_error(), g_dir), "%s", sdc_last_error());
    cr_assert_eq(sdc_file_sha256_short("", out), SDC_ERR_ARG);
    free(p);
}

/* ================================================================= to_u8 */

/* Expected bytes from diffusers' postprocess itself (torch
 * (x / 2 + 0.5).clamp(0, 1), numpy (x * 255).round().astype("uint8")):
 * the exact-half products 100.5, 126.5, 127.5, 128.5, 200.5, 253.5 and
 * 254.5 with their float neighbours, clamping and extremes. */
static const struct {
    uint32_t bits;
    uint8_t want;
} u8_cases[] = {
    {0xbe58d8d5u, 101}, {0xbe58d8d6u, 100}, {0xbe58d8d7u, 100},
    {0xbc00807cu, 126}, {0xbc00807du, 126}, {0xbc00807eu, 126},
    {0x80000000u, 128}, {0x00000000u, 128}, {0x00000001u, 128},
    {0x3c00807cu, 128}, {0x3c00807du, 128}, {0x3c00807eu, 128},
    {0x3f129291u, 200}, {0x3f129292u, 200}, {0x3f129293u, 201},
    {0x3f7cfcfau, 253}, {0x3f7cfcfbu, 254}, {0x3f7cfcfcu, 254},
    {0x3f7efefdu, 254}, {0x3f7efefeu, 254}, {0x3f7efeffu, 254},
    {0xbf800000u, 0},   {0x3f800000u, 255}, {0xbf800001u, 0},
    {0x3f800001u, 255}, {0x40000000u, 255}, {0xc0000000u, 0},
    {0x7149f2cau, 255}, {0xf149f2cau, 0},   {0x7f800000u, 255},
    {0xff800000u, 0},   {0x3f000000u, 191}, {0xbf000000u, 64},
    {0x3e800000u, 159}, {0xbf7efeffu, 0},   {0x80000001u, 128},
    {0x3b808081u, 128},
    /* NaN: numpy leaves astype(uint8) of NaN undefined; sdc says 0 */
    {0x7fc00000u, 0},   {0xffc00000u, 0},   {0x7f800001u, 0},
};

Test(image, to_u8_rounds_half_to_even_and_clamps) {
    size_t n = sizeof u8_cases / sizeof *u8_cases;
    /* one image 1 x n/3 (pad to a multiple of 3 with zeros) */
    int w = (int)((n + 2) / 3);
    float *x = calloc((size_t)w * 3, sizeof *x);
    uint8_t *rgb = malloc((size_t)w * 3);
    cr_assert(x && rgb);
    for (size_t i = 0; i < n; i++) memcpy(&x[i], &u8_cases[i].bits, 4);
    sdc_image_to_u8(x, 1, w, rgb);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(rgb[i], u8_cases[i].want, "x = %a (0x%08x): got %d, want %d",
                     (double)x[i], u8_cases[i].bits, rgb[i], u8_cases[i].want);
    free(x);
    free(rgb);
}

Test(image, to_u8_every_level_from_its_exact_value) {
    /* x = 2 * k / 255 - 1 decodes back to level k */
    float x[256 * 3];
    uint8_t rgb[256 * 3];
    for (int k = 0; k < 256; k++)
        for (int c = 0; c < 3; c++) x[3 * k + c] = 2.0f * (float)k / 255.0f - 1.0f;
    sdc_image_to_u8(x, 16, 16, rgb);
    for (int k = 0; k < 256; k++) cr_assert_eq(rgb[3 * k], k, "level %d", k);
}

Test(image, to_u8_matches_numpy_on_a_million_values) {
    const char *py = python_with("numpy");
    if (!py) {
        /* Criterion's exit status counts a logged warning as a failure */
        fprintf(stderr, "SKIP: no python3 with numpy (make fixtures installs one): cross-check skipped\n");
        cr_skip_test("no python3 with numpy");
    }
    const int h = 500, w = 700;
    size_t n = (size_t)h * w * 3;
    float *x = malloc(n * sizeof *x);
    uint8_t *rgb = malloc(n);
    cr_assert(x && rgb);
    uint32_t s = 99;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        if (i % 2) /* dense near the half-level boundaries */
            x[i] = 2.0f * (((float)(s >> 24) + 0.5f) / 255.0f) - 1.0f +
                   (float)((int)(s & 0xff) - 128) * 1e-8f;
        else
            x[i] = ((float)(s >> 8) / 16777216.0f) * 2.4f - 1.2f;
    }
    sdc_image_to_u8(x, h, w, rgb);
    char *in = tpath("x.f32"), *out = tpath("u8.bin"), cmd[2048];
    cr_assert_eq(st_write_bytes(in, x, n * sizeof *x), 0);
    snprintf(cmd, sizeof cmd,
             "%s -c 'import numpy as np, sys; x = np.fromfile(sys.argv[1], "
             "np.float32); v = np.clip(x / np.float32(2) + np.float32(0.5), 0, 1); "
             "(v * 255).round().astype(\"uint8\").tofile(sys.argv[2])' '%s' '%s'",
             py, in, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    size_t m;
    unsigned char *ref = slurp(out, &m);
    cr_assert_eq(m, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (rgb[i] != ref[i] && bad++ < 5)
            cr_log_error("x[%zu] = %.9g: sdc %d, numpy %d", i, (double)x[i],
                         rgb[i], ref[i]);
    cr_assert_eq(bad, 0, "%zu of %zu bytes differ from numpy", bad, n);
    free(ref);
    free(in);
    free(out);
    free(x);
    free(rgb);
}

/* =================================================================== PNG */

typedef struct {
    char type[5];
    uint32_t len;
    size_t off; /* of the data */
} chunk_info;

/* Walk the chunks of a PNG in memory, asserting the structure: signature,
 * IHDR first, valid CRCs, IDAT present, IEND last. Returns the count. */
static int walk_png(const unsigned char *b, size_t n, chunk_info *ci, int max) {
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    cr_assert_geq(n, 8);
    cr_assert_eq(memcmp(b, sig, 8), 0, "bad PNG signature");
    size_t off = 8;
    int k = 0, idat = 0;
    bool iend = false;
    while (off < n) {
        cr_assert(!iend, "data after IEND");
        cr_assert_leq(off + 12, n, "truncated chunk header");
        uint32_t len = (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 |
                       (uint32_t)b[off + 2] << 8 | b[off + 3];
        cr_assert_leq(off + 12 + (size_t)len, n, "chunk runs past the end");
        const unsigned char *cb = b + off + 8 + len;
        uint32_t stored = (uint32_t)cb[0] << 24 | (uint32_t)cb[1] << 16 |
                          (uint32_t)cb[2] << 8 | cb[3];
        uint32_t crc = (uint32_t)crc32(0L, b + off + 4, len + 4);
        char type[5];
        memcpy(type, b + off + 4, 4);
        type[4] = 0;
        cr_assert_eq(stored, crc, "CRC mismatch in chunk %d (%s)", k, type);
        if (k == 0) cr_assert(!strcmp(type, "IHDR") && len == 13);
        if (!strcmp(type, "IDAT")) idat++;
        if (!strcmp(type, "IEND")) iend = true;
        if (k < max) {
            memcpy(ci[k].type, type, 5);
            ci[k].len = len;
            ci[k].off = off + 8;
        }
        k++;
        off += 12 + len;
    }
    cr_assert(iend, "no IEND chunk");
    cr_assert_gt(idat, 0, "no IDAT chunk");
    return k;
}

static void check_pixels(const char *path, const uint8_t *rgb, int w, int h) {
    int x, y, c;
    unsigned char *px = stbi_load(path, &x, &y, &c, 0);
    cr_assert_not_null(px, "stb_image cannot read %s: %s", path,
                       stbi_failure_reason());
    cr_assert_eq(x, w);
    cr_assert_eq(y, h);
    cr_assert_eq(c, 3);
    cr_assert_arr_eq(px, rgb, (size_t)w * h * 3, "pixels differ");
    stbi_image_free(px);
}

/* Write, then read back pixels and text; return the chunk type right after
 * IHDR ("" if none) in after_ihdr. */
static void round_trip(const char *name, const char *text, const char *want_type,
                       int w, int h) {
    char *p = tpath(name);
    uint8_t *rgb = test_image(w, h, (uint32_t)w);
    sdc_status st = sdc_png_write(p, rgb, w, h, text);
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    check_pixels(p, rgb, w, h);

    size_t n;
    unsigned char *b = slurp(p, &n);
    chunk_info ci[64];
    int k = walk_png(b, n, ci, 64);
    int ntext = 0;
    for (int i = 0; i < k && i < 64; i++)
        if (!strcmp(ci[i].type, "tEXt") || !strcmp(ci[i].type, "iTXt") ||
            !strcmp(ci[i].type, "zTXt"))
            ntext++;
    if (want_type) {
        cr_assert_eq(ntext, 1);
        cr_assert_str_eq(ci[1].type, want_type, "chunk after IHDR is %s",
                         ci[1].type);
        cr_assert_eq(memcmp(b + ci[1].off, "parameters\0", 11), 0);
        if (!strcmp(want_type, "iTXt")) /* uncompressed, no lang / tkey */
            cr_assert_eq(memcmp(b + ci[1].off + 11, "\0\0\0\0", 4), 0);
    } else {
        cr_assert_eq(ntext, 0);
    }
    /* in memory: the same bytes, the same text read back from them; a
     * truncated copy is an error naming the buffer */
    unsigned char *mem = NULL;
    size_t mlen = 0;
    cr_assert_eq(sdc_png_encode("upload", rgb, w, h, text, &mem, &mlen), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(mlen, n, "in memory %zu bytes, on disk %zu", mlen, n);
    cr_assert_eq(memcmp(mem, b, n), 0, "the PNG in memory is not the file's bytes");
    char *from_mem = (char *)1;
    cr_assert_eq(sdc_png_parameters_mem("upload", mem, mlen, &from_mem), SDC_OK, "%s", sdc_last_error());
    if (text) cr_assert_str_eq(from_mem, text);
    else cr_assert_null(from_mem);
    free(from_mem);
    cr_assert_eq(sdc_png_parameters_mem("upload", mem, mlen - 5, &from_mem), SDC_ERR_FORMAT);
    cr_assert(strstr(sdc_last_error(), "upload: truncated PNG"), "%s", sdc_last_error());
    cr_assert_null(from_mem);
    cr_assert_eq(sdc_png_parameters_mem("upload", "GIF89a", 6, &from_mem), SDC_ERR_FORMAT);
    free(mem);
    free(b);

    char *got = (char *)1;
    st = sdc_png_read_parameters(p, &got);
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    if (text) {
        cr_assert_not_null(got);
        cr_assert_str_eq(got, text);
    } else {
        cr_assert_null(got);
    }
    free(got);
    int tmp;
    count_entries(g_dir, &tmp);
    cr_assert_eq(tmp, 0, "temporary files left behind");
    free(rgb);
    free(p);
}

Test(image, png_round_trip_ascii_parameters_in_text_chunk) {
    round_trip("a.png",
               "a photograph of an astronaut riding a horse\n"
               "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
               "Size: 64x48",
               "tEXt", 64, 48);
}

Test(image, png_round_trip_latin1_stays_text_chunk) {
    /* é, ©, ÿ are Latin-1: PIL writes them in tEXt as single bytes */
    const char *t = "caf\xc3\xa9 \xc2\xa9 \xc3\xbf";
    round_trip("l.png", t, "tEXt", 5, 7);
    char *p = tpath("l.png");
    size_t n;
    unsigned char *b = slurp(p, &n);
    /* keyword NUL "caf" 0xE9 " " 0xA9 " " 0xFF */
    cr_assert_eq(memcmp(b + 33 + 8 + 11, "caf\xe9 \xa9 \xff", 8), 0);
    cr_assert_eq(b[33 + 3], 19); /* data length: 11 + 8 */
    free(b);
    free(p);
}

Test(image, png_round_trip_utf8_parameters_in_itxt_chunk) {
    round_trip("u.png",
               "\xe5\xaf\x8c\xe5\xa3\xab\xe5\xb1\xb1\xe3\x81\xa8\xe6\xa1\x9c, "
               "\xf0\x9f\x8c\xb8\xf0\x9f\x97\xbb watercolor\n"
               "Negative prompt: blurry\nSteps: 30",
               "iTXt", 33, 17);
}

Test(image, png_without_parameters_has_no_text_chunk) {
    round_trip("n.png", NULL, NULL, 1, 1);
}

Test(image, png_empty_parameters_are_an_empty_text) {
    round_trip("e.png", "", "tEXt", 3, 2);
}

Test(image, png_large_image_round_trip) {
    round_trip("big.png", "x", "tEXt", 512, 512);
}

Test(image, png_readable_by_pil_with_parameters) {
    const char *py = python_with("PIL");
    if (!py) {
        fprintf(stderr, "SKIP: no python3 with PIL (make fixtures installs one): structure checked by walk_png only\n");
        cr_skip_test("no python3 with PIL");
    }
    const char *texts[2] = {"plain, ascii: text\nSteps: 20",
                            "\xe7\x8c\xab \xf0\x9f\x90\x88 caf\xc3\xa9"};
    for (int i = 0; i < 2; i++) {
        char name[32], cmd[2048];
        snprintf(name, sizeof name, "pil%d.png", i);
        char *p = tpath(name), *t = tpath("pil.txt");
        uint8_t *rgb = test_image(40, 30, 5);
        cr_assert_eq(sdc_png_write(p, rgb, 40, 30, texts[i]), SDC_OK);
        cr_assert_eq(st_write_bytes(t, texts[i], strlen(texts[i])), 0);
        snprintf(cmd, sizeof cmd,
                 "%s -c 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); "
                 "im.load(); want = open(sys.argv[2], encoding=\"utf-8\").read(); "
                 "assert im.size == (40, 30) and im.mode == \"RGB\", im; "
                 "assert im.info[\"parameters\"] == want, repr(im.info)' '%s' '%s'",
                 py, p, t);
        cr_assert_eq(system(cmd), 0, "PIL rejects %s", p);
        free(rgb);
        free(p);
        free(t);
    }
}

Test(image, png_rejects_invalid_utf8_parameters) {
    char *p = tpath("bad.png");
    uint8_t px[3] = {1, 2, 3};
    cr_assert_eq(sdc_png_write(p, px, 1, 1, "ok \xff\xfe"), SDC_ERR_ARG);
    cr_assert_not_null(strstr(sdc_last_error(), p), "%s", sdc_last_error());
    cr_assert_eq(sdc_png_write(p, px, 1, 1, "\xed\xa0\x80"), SDC_ERR_ARG);
    cr_assert_eq(count_entries(g_dir, NULL), 0, "a file was left behind");
    free(p);
}

Test(image, png_rejects_bad_arguments) {
    char *p = tpath("x.png");
    uint8_t px[3] = {0};
    cr_assert_eq(sdc_png_write(p, px, 0, 1, NULL), SDC_ERR_ARG);
    cr_assert_not_null(strstr(sdc_last_error(), p));
    cr_assert_eq(sdc_png_write(p, NULL, 1, 1, NULL), SDC_ERR_ARG);
    cr_assert_eq(sdc_png_write("", px, 1, 1, NULL), SDC_ERR_ARG);
    cr_assert_eq(sdc_png_write(NULL, px, 1, 1, NULL), SDC_ERR_ARG);
    cr_assert_eq(count_entries(g_dir, NULL), 0);
    free(p);
}

/* Build a PNG in memory from our writer, with an extra chunk spliced in
 * after IHDR. */
static unsigned char *png_with_chunk(const char *type, const void *data,
                                     uint32_t len, size_t *n) {
    char *p = tpath("base.png");
    uint8_t px[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10, 11};
    cr_assert_eq(sdc_png_write(p, px, 2, 2, NULL), SDC_OK);
    size_t bn;
    unsigned char *b = slurp(p, &bn);
    unsigned char *o = malloc(bn + 12 + len);
    cr_assert_not_null(o);
    memcpy(o, b, 33);
    unsigned char *c = o + 33;
    c[0] = (unsigned char)(len >> 24);
    c[1] = (unsigned char)(len >> 16);
    c[2] = (unsigned char)(len >> 8);
    c[3] = (unsigned char)len;
    memcpy(c + 4, type, 4);
    memcpy(c + 8, data, len);
    uint32_t crc = (uint32_t)crc32(0L, c + 4, len + 4);
    c[8 + len] = (unsigned char)(crc >> 24);
    c[9 + len] = (unsigned char)(crc >> 16);
    c[10 + len] = (unsigned char)(crc >> 8);
    c[11 + len] = (unsigned char)crc;
    memcpy(c + 12 + len, b + 33, bn - 33);
    *n = bn + 12 + len;
    free(b);
    unlink(p);
    free(p);
    return o;
}

static char *read_params_of(const char *name, const unsigned char *b, size_t n) {
    char *p = tpath(name);
    cr_assert_eq(st_write_bytes(p, b, n), 0);
    char *got = NULL;
    cr_assert_eq(sdc_png_read_parameters(p, &got), SDC_OK, "%s",
                 sdc_last_error());
    free(p);
    return got;
}

Test(image, png_reads_compressed_text_chunks) {
    const char *text = "compressed \xe2\x9c\x93, Steps: 20";
    unsigned char z[256], d[512];
    uLongf zl = sizeof z;
    cr_assert_eq(compress(z, &zl, (const Bytef *)text, strlen(text)), Z_OK);

    /* iTXt, compression flag 1 */
    size_t dl = 0;
    memcpy(d, "parameters\0\1\0en\0\0", 17);
    dl = 17;
    memcpy(d + dl, z, zl);
    dl += zl;
    size_t n;
    unsigned char *b = png_with_chunk("iTXt", d, (uint32_t)dl, &n);
    walk_png(b, n, NULL, 0);
    char *got = read_params_of("itxt_z.png", b, n);
    cr_assert_str_eq(got, text);
    free(got);
    free(b);

    /* zTXt (Latin-1) */
    const char *lat = "z caf\xe9";
    zl = sizeof z;
    cr_assert_eq(compress(z, &zl, (const Bytef *)lat, strlen(lat)), Z_OK);
    memcpy(d, "parameters\0\0", 12);
    memcpy(d + 12, z, zl);
    b = png_with_chunk("zTXt", d, (uint32_t)(12 + zl), &n);
    got = read_params_of("ztxt.png", b, n);
    cr_assert_str_eq(got, "z caf\xc3\xa9");
    free(got);
    free(b);

    /* another keyword only: no parameters */
    b = png_with_chunk("tEXt", "Software\0sdc", 12, &n);
    got = read_params_of("other.png", b, n);
    cr_assert_null(got);
    free(b);
}

static void expect_read_fail(const char *name, const unsigned char *b, size_t n,
                             sdc_status code, const char *needle) {
    char *p = tpath(name);
    cr_assert_eq(st_write_bytes(p, b, n), 0);
    char *got = (char *)1;
    sdc_status st = sdc_png_read_parameters(p, &got);
    const char *msg = sdc_last_error();
    cr_assert_eq(st, code, "%s: status %d, message %s", name, (int)st, msg);
    cr_assert_null(got);
    cr_assert_not_null(strstr(msg, p), "message lacks the path: %s", msg);
    if (needle)
        cr_assert_not_null(strstr(msg, needle), "message lacks '%s': %s",
                           needle, msg);
    free(p);
}

Test(image, png_read_rejects_malformed_files) {
    char *p = tpath("good.png");
    uint8_t *rgb = test_image(16, 16, 1);
    cr_assert_eq(sdc_png_write(p, rgb, 16, 16, "hello, world"), SDC_OK);
    size_t n;
    unsigned char *b = slurp(p, &n);

    expect_read_fail("nosig.png", (const unsigned char *)"GIF89a....", 10,
                     SDC_ERR_FORMAT, "signature");
    expect_read_fail("empty.png", b, 0, SDC_ERR_FORMAT, "signature");

    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    c[33 + 8 + 12] ^= 1; /* a byte of the text */
    expect_read_fail("crc.png", c, n, SDC_ERR_FORMAT, "CRC");

    expect_read_fail("trunc.png", b, n - 20, SDC_ERR_FORMAT, "truncated");
    expect_read_fail("noend.png", b, n - 12, SDC_ERR_FORMAT, "IEND");

    memcpy(c, b, n);
    c[8] = 0x80; /* IHDR length >= 2^31 */
    expect_read_fail("len.png", c, n, SDC_ERR_FORMAT, "length");

    memcpy(c, b, n);
    memcpy(c + 12, "IDAT", 4); /* first chunk not IHDR */
    expect_read_fail("first.png", c, n, SDC_ERR_FORMAT, "IHDR");

    char *missing = tpath("missing.png");
    char *got = (char *)1;
    cr_assert_eq(sdc_png_read_parameters(missing, &got), SDC_ERR_IO);
    cr_assert_null(got);
    cr_assert_not_null(strstr(sdc_last_error(), missing));
    free(missing);
    free(c);
    free(b);
    free(rgb);
    free(p);
}

/* ============================================================ atomicity */

Test(image, png_write_into_missing_folder_fails_and_leaves_nothing) {
    char *p = tpath("no/such/folder/out.png");
    uint8_t *rgb = test_image(8, 8, 2);
    sdc_status st = sdc_png_write(p, rgb, 8, 8, "x");
    cr_assert_eq(st, SDC_ERR_IO);
    const char *msg = sdc_last_error();
    cr_assert_not_null(strstr(msg, p), "message lacks the path: %s", msg);
    cr_assert_not_null(strstr(msg, "does not exist"), "%s", msg);
    cr_assert_eq(count_entries(g_dir, NULL), 0);
    free(rgb);
    free(p);
}

Test(image, png_write_onto_a_folder_fails_and_leaves_no_temp) {
    char *p = tpath("sub");
    cr_assert_eq(mkdir(p, 0755), 0);
    char *inner = tpath("sub/keep");
    cr_assert_eq(st_write_bytes(inner, "k", 1), 0);
    uint8_t *rgb = test_image(8, 8, 3);
    cr_assert_eq(sdc_png_write(p, rgb, 8, 8, NULL), SDC_ERR_IO);
    cr_assert_not_null(strstr(sdc_last_error(), p), "%s", sdc_last_error());
    int tmp;
    cr_assert_eq(count_entries(g_dir, &tmp), 1);
    cr_assert_eq(tmp, 0);
    cr_assert_eq(count_entries(p, NULL), 1);
    free(rgb);
    free(inner);
    free(p);
}

Test(image, png_write_replaces_an_existing_file) {
    char *p = tpath("out.png");
    cr_assert_eq(st_write_bytes(p, "old contents", 12), 0);
    uint8_t *a = test_image(20, 10, 4), *b = test_image(10, 20, 5);
    cr_assert_eq(sdc_png_write(p, a, 20, 10, "first"), SDC_OK);
    check_pixels(p, a, 20, 10);
    cr_assert_eq(sdc_png_write(p, b, 10, 20, "second"), SDC_OK);
    check_pixels(p, b, 10, 20);
    char *got = NULL;
    cr_assert_eq(sdc_png_read_parameters(p, &got), SDC_OK);
    cr_assert_str_eq(got, "second");
    free(got);
    int tmp;
    cr_assert_eq(count_entries(g_dir, &tmp), 1);
    cr_assert_eq(tmp, 0);
    free(a);
    free(b);
    free(p);
}

Test(image, png_failed_write_keeps_the_old_file) {
    char *p = tpath("keep.png");
    uint8_t *old = test_image(16, 16, 6);
    cr_assert_eq(sdc_png_write(p, old, 16, 16, "old"), SDC_OK);
    size_t n0;
    unsigned char *before = slurp(p, &n0);

    /* A file size limit makes write() fail part way (EFBIG) - as a full
     * disk would. */
    int w = 256, h = 256;
    uint8_t *rgb = test_image(w, h, 7);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 1000;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    sdc_status st = sdc_png_write(p, rgb, w, h, "new");
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", sdc_last_error());
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);

    cr_assert_eq(st, SDC_ERR_IO, "status %d: %s", (int)st, msg);
    cr_assert_not_null(strstr(msg, p), "message lacks the path: %s", msg);
    size_t n1;
    unsigned char *after = slurp(p, &n1);
    cr_assert_eq(n1, n0);
    cr_assert_arr_eq(after, before, n0, "the old file was changed");
    int tmp;
    cr_assert_eq(count_entries(g_dir, &tmp), 1);
    cr_assert_eq(tmp, 0, "temporary file left behind");
    free(after);
    free(before);
    free(rgb);
    free(old);
    free(p);
}

Test(image, png_write_with_a_name_near_name_max) {
    /* 250 characters: fits NAME_MAX but "name.XXXXXX.tmp" would not */
    char name[251];
    memset(name, 'n', 246);
    memcpy(name + 246, ".png", 5);
    char *p = tpath(name);
    uint8_t px[6] = {1, 2, 3, 4, 5, 6};
    cr_assert_eq(sdc_png_write(p, px, 2, 1, "long"), SDC_OK, "%s",
                 sdc_last_error());
    check_pixels(p, px, 2, 1);
    int tmp;
    cr_assert_eq(count_entries(g_dir, &tmp), 1);
    cr_assert_eq(tmp, 0);
    free(p);
}

Test(image, png_write_into_read_only_folder_fails) {
    if (geteuid() == 0) {
        cr_log_info("running as root: permissions are not enforced, skipped");
        return;
    }
    char *d = tpath("ro");
    cr_assert_eq(mkdir(d, 0555), 0);
    char *p = tpath("ro/out.png");
    uint8_t px[3] = {1, 2, 3};
    cr_assert_eq(sdc_png_write(p, px, 1, 1, NULL), SDC_ERR_IO);
    cr_assert_not_null(strstr(sdc_last_error(), p), "%s", sdc_last_error());
    chmod(d, 0755);
    cr_assert_eq(count_entries(d, NULL), 0);
    free(p);
    free(d);
}

Test(image, png_file_mode_follows_umask_and_relative_paths_work) {
    mode_t old = umask(022);
    char *p = tpath("mode.png");
    uint8_t px[3] = {1, 2, 3};
    cr_assert_eq(sdc_png_write(p, px, 1, 1, NULL), SDC_OK);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0644, "mode %o", sb.st_mode & 0777);

    char cwd[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(g_dir), 0);
    sdc_status st = sdc_png_write("rel.png", px, 1, 1, "r");
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    char *r = tpath("rel.png");
    check_pixels(r, px, 1, 1);
    umask(old);
    free(r);
    free(p);
}

/* ============================================================= infotext */

static sdc_infotext base_info(void) {
    sdc_infotext t = {
        .prompt = "a photograph of an astronaut riding a horse",
        .negative_prompt = NULL,
        .steps = 20,
        .sampler = "Euler a",
        .cfg_scale = 7.5f,
        .seed = 42,
        .width = 512,
        .height = 512,
        .model_hash = "6ce0161689",
        .model_name = "v1-5-pruned-emaonly",
    };
    return t;
}

static void expect_info(const sdc_infotext *t, const char *want) {
    char *s = sdc_infotext_format(t);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, want);
    free(s);
}

Test(image, infotext_plain) {
    sdc_infotext t = base_info();
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512, Model hash: 6ce0161689, "
                    "Model: v1-5-pruned-emaonly");
    t.negative_prompt = ""; /* empty: no line */
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512, Model hash: 6ce0161689, "
                    "Model: v1-5-pruned-emaonly");
}

Test(image, infotext_with_negative_prompt) {
    sdc_infotext t = base_info();
    t.prompt = "masterpiece, (red fox:1.2), snow";
    t.negative_prompt = "blurry, lowres";
    t.sampler = "DDIM";
    t.steps = 50;
    t.cfg_scale = 7.0f;
    t.seed = 4294967295u;
    t.width = 768;
    t.height = 512;
    expect_info(&t, "masterpiece, (red fox:1.2), snow\n"
                    "Negative prompt: blurry, lowres\n"
                    "Steps: 50, Sampler: DDIM, CFG scale: 7, Seed: 4294967295, "
                    "Size: 768x512, Model hash: 6ce0161689, "
                    "Model: v1-5-pruned-emaonly");
}

Test(image, infotext_quotes_values_as_json) {
    sdc_infotext t = base_info();
    t.model_name = "my,model";
    t.model_hash = NULL;
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512, Model: \"my,model\"");
    t.model_name = "v2:768";
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512, Model: \"v2:768\"");
    /* json.dumps(..., ensure_ascii=False): quotes, backslashes, control
     * characters escaped; non-ASCII kept; a '"' alone is not quoted */
    t.model_name = "a \"b\"\\c,\n\t\x01 \xc3\xa9\x7f";
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512, Model: "
                    "\"a \\\"b\\\"\\\\c,\\n\\t\\u0001 \xc3\xa9\x7f\"");
    t.model_name = "say \"hi\"";
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512, Model: say \"hi\"");
}

Test(image, infotext_schedule_type_and_extras) {
    sdc_infotext t = base_info();
    t.sampler = "DPM++ 2M";
    t.schedule_type = "Karras";
    t.cfg_scale = 12.25f;
    t.seed = 1234567890123ull;
    t.extra = "Clip skip: 2, ENSD: 31337";
    expect_info(&t, "a photograph of an astronaut riding a horse\n"
                    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
                    "CFG scale: 12.25, Seed: 1234567890123, Size: 512x512, "
                    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
                    "Clip skip: 2, ENSD: 31337");
}

Test(image, infotext_strips_and_handles_empty_prompt) {
    sdc_infotext t = base_info();
    t.prompt = "";
    t.model_hash = NULL;
    t.model_name = NULL;
    expect_info(&t, "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512");
    t.prompt = NULL;
    t.negative_prompt = "ugly";
    expect_info(&t, "Negative prompt: ugly\nSteps: 20, Sampler: Euler a, "
                    "CFG scale: 7.5, Seed: 42, Size: 512x512");
    /* leading whitespace of the whole text goes (str.strip), inner stays;
     * U+3000 (ideographic space) is whitespace to Python */
    t.prompt = " \t\xe3\x80\x80line one  \nline two ";
    t.negative_prompt = NULL;
    expect_info(&t, "line one  \nline two \nSteps: 20, Sampler: Euler a, "
                    "CFG scale: 7.5, Seed: 42, Size: 512x512");
    t.prompt = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80";
    expect_info(&t, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
                    "Size: 512x512");
}

Test(image, infotext_cfg_scale_as_python_prints_it) {
    static const struct {
        float v;
        const char *s;
    } cases[] = {
        {7.0f, "7"},       {7.5f, "7.5"},     {0.1f, "0.1"},
        {3.3f, "3.3"},     {12.25f, "12.25"}, {1.0f, "1"},
        {0.0f, "0"},       {1e-5f, "1e-05"},  {0.0001f, "0.0001"},
        {1.1f, "1.1"},     {30.0f, "30"},     {2.45f, "2.45"},
        {-1.5f, "-1.5"},   {1.5e20f, "1.5e+20"},
    };
    sdc_infotext t = base_info();
    t.model_hash = t.model_name = NULL;
    t.prompt = "p";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        t.cfg_scale = cases[i].v;
        char want[256];
        snprintf(want, sizeof want, "p\nSteps: 20, Sampler: Euler a, "
                 "CFG scale: %s, Seed: 42, Size: 512x512", cases[i].s);
        expect_info(&t, want);
    }
}

Test(image, infotext_in_png_round_trip) {
    sdc_infotext t = base_info();
    t.prompt = "\xe6\xa1\x9c\xe3\x81\xae\xe6\x9c\xa8, watercolor \xf0\x9f\x8c\xb8";
    t.negative_prompt = "lowres";
    char *s = sdc_infotext_format(&t);
    cr_assert_not_null(s);
    char *p = tpath("info.png");
    uint8_t *rgb = test_image(8, 8, 8);
    cr_assert_eq(sdc_png_write(p, rgb, 8, 8, s), SDC_OK);
    char *got = NULL;
    cr_assert_eq(sdc_png_read_parameters(p, &got), SDC_OK);
    cr_assert_str_eq(got, s);
    free(got);
    free(rgb);
    free(p);
    free(s);
}
