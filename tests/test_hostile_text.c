/* test_hostile_text.c - hostile text-side input: tokenizer files, prompts,
 * prompt lists and PNG files, which users get from anywhere.
 *
 * Each test is either an input one of the fuzz targets in fuzz/ found (a
 * crash, an out-of-bounds access, undefined behaviour, a broken promise:
 * the test says which target and what it was), or a limit or strictness
 * rule that tokenizer.h, image.h and batch.h promise for untrusted input
 * (a file that is refused before it costs memory or time, a message that
 * names the file and the line, key or byte). A few of the first kind fail
 * only under a sanitizer (make sanitize): the old code read a few bytes
 * past a buffer without any other sign. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "cli/batch.h"
#include "image/image.h"
#include "text/prompt.h"
#include "st_write.h"
#include "text/tokenizer.h"

#define BPE_GZ "weights/bpe_simple_vocab_16e6.txt.gz"

static char *g_dir;

static void setup(void) {
    g_dir = st_tmpdir();
    cr_assert_not_null(g_dir, "cannot create a temp dir");
}

static void teardown(void) {
    if (g_dir) st_rmtree(g_dir);
    free(g_dir);
}

TestSuite(hostile_text, .init = setup, .fini = teardown, .timeout = 20);

/* ---- helpers ------------------------------------------------------------ */

/* g_dir/name (a few live at once). */
static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static const char *put(const char *name, const void *data, size_t n) {
    const char *p = tpath(name);
    cr_assert_eq(st_write_bytes(p, data, n), 0, "cannot write %s", p);
    return p;
}

static const char *put_str(const char *name, const char *s) { return put(name, s, strlen(s)); }

/* A file of n zero bytes that takes no disk space. */
static const char *put_sparse(const char *name, off_t n) {
    const char *p = tpath(name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, n) == 0 && close(fd) == 0, "cannot make %s", p);
    return p;
}

#define assert_msg(needle)                                                          \
    cr_assert_not_null(strstr(sdc_last_error(), (needle)), "message lacks \"%s\": %s", \
                       (needle), sdc_last_error())

/* CLIP's bytes_to_unicode: the UTF-8 of byte b's symbol, in vocabulary
 * order (id k is the piece of byte order[k]). */
static void byte_symbols(char sym[256][8], int order[256]) {
    int k = 0, extra = 0;
    unsigned cp[256];
    bool printable[256];
    for (int b = 0; b < 256; b++) {
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (printable[b]) cp[b] = (unsigned)b, order[k++] = b;
    }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) cp[b] = 256u + (unsigned)extra++, order[k++] = b;
    for (int b = 0; b < 256; b++) {
        unsigned c = cp[b];
        if (c < 0x80) sym[b][0] = (char)c, sym[b][1] = 0;
        else sym[b][0] = (char)(0xC0 | c >> 6), sym[b][1] = (char)(0x80 | (c & 0x3F)), sym[b][2] = 0;
    }
}

/* A minimal CLIP-style vocab.json, one entry per line: line 1 "{", lines
 * 2..513 the 512 byte pieces (ids 0..511), line 514 <|startoftext|> (512),
 * line 515 <|endoftext|> (513), then `extra` (lines 516..), then "}". */
static char *vocab_text(const char *extra) {
    char sym[256][8];
    int order[256];
    byte_symbols(sym, order);
    size_t cap = 64 * 1024 + strlen(extra), n = 0;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    n += (size_t)snprintf(s + n, cap - n, "{\n");
    for (int id = 0; id < 512; id++) {
        const char *p = sym[order[id % 256]];
        const char *esc = !strcmp(p, "\"") ? "\\\"" : !strcmp(p, "\\") ? "\\\\" : p;
        n += (size_t)snprintf(s + n, cap - n, "  \"%s%s\": %d,\n", esc, id < 256 ? "" : "</w>", id);
    }
    n += (size_t)snprintf(s + n, cap - n, "  \"<|startoftext|>\": 512,\n  \"<|endoftext|>\": 513%s\n%s\n}\n",
                          *extra ? "," : "", extra);
    return s;
}

static sdc_status load_tok(const char *extra, const char *merges, sdc_tokenizer **tok) {
    char *v = vocab_text(extra);
    put_str("vocab.json", v);
    free(v);
    put_str("merges.txt", merges);
    *tok = (sdc_tokenizer *)1;
    sdc_status st = sdc_tokenizer_load_hf(tpath("vocab.json"), tpath("merges.txt"), tok);
    if (st != SDC_OK) cr_assert_null(*tok);
    return st;
}

/* The vocabulary above plus "ab</w>" (514) and its merge. */
static sdc_tokenizer *tiny_tokenizer(void) {
    sdc_tokenizer *tok;
    sdc_status st = load_tok("  \"ab</w>\": 514", "#version: 0.2\na b</w>\n", &tok);
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    return tok;
}

/* One PNG chunk with its length and CRC. */
static size_t chunk(unsigned char *out, const char *type, const void *data, uint32_t len) {
    out[0] = (unsigned char)(len >> 24), out[1] = (unsigned char)(len >> 16);
    out[2] = (unsigned char)(len >> 8), out[3] = (unsigned char)len;
    memcpy(out + 4, type, 4);
    if (len) memcpy(out + 8, data, len);
    uint32_t c = (uint32_t)crc32(0L, out + 4, len + 4);
    unsigned char *p = out + 8 + len;
    p[0] = (unsigned char)(c >> 24), p[1] = (unsigned char)(c >> 16);
    p[2] = (unsigned char)(c >> 8), p[3] = (unsigned char)c;
    return 12 + (size_t)len;
}

/* A 1x1 grey 8-bit PNG with `extra` chunk bytes after IHDR. */
static size_t tiny_png(unsigned char *out, uint32_t w, uint32_t h, const void *extra, size_t extra_n) {
    size_t n = 0;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    n += 8;
    unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16), (unsigned char)(w >> 8),
                              (unsigned char)w, (unsigned char)(h >> 24), (unsigned char)(h >> 16),
                              (unsigned char)(h >> 8), (unsigned char)h, 8, 0, 0, 0, 0};
    n += chunk(out + n, "IHDR", ihdr, 13);
    if (extra_n) memcpy(out + n, extra, extra_n);
    n += extra_n;
    unsigned char raw[2] = {0, 0x80}, z[64];
    uLongf zn = sizeof z;
    cr_assert_eq(compress(z, &zn, raw, 2), Z_OK);
    n += chunk(out + n, "IDAT", z, (uint32_t)zn);
    n += chunk(out + n, "IEND", NULL, 0);
    return n;
}

/* Run f() with the address space limited to what is mapped now plus
 * `slack` bytes, so an allocation of more fails; not under ASan, whose
 * shadow memory needs far more address space than any limit allows. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static sdc_status with_memory_limit(size_t slack, sdc_status (*f)(void *), void *arg) {
    struct rlimit saved, lim;
    long pages = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    bool limit = !UNDER_ASAN && fp && fscanf(fp, "%ld", &pages) == 1 &&
                 getrlimit(RLIMIT_AS, &saved) == 0;
    if (fp) fclose(fp);
    if (limit) {
        lim = saved;
        lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + slack;
        limit = setrlimit(RLIMIT_AS, &lim) == 0;
    }
    sdc_status st = f(arg);
    if (limit) cr_assert_eq(setrlimit(RLIMIT_AS, &saved), 0);
    return st;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- tokenizer files: vocab.json ---------------------------------------- */

Test(hostile_text, tokenizer_minimal_vocab_loads) {
    sdc_tokenizer *tok = tiny_tokenizer();
    cr_assert_eq(sdc_tokenizer_vocab_size(tok), 515);
    cr_assert_eq(sdc_tokenizer_bos(tok), 512);
    cr_assert_eq(sdc_tokenizer_eos(tok), 513);
    int ids[4], n = 0;
    cr_assert_eq(sdc_tokenizer_encode(tok, "ab", ids, 4, &n), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 514);
    sdc_tokenizer_free(tok);
}

Test(hostile_text, tokenizer_vocab_id_out_of_range) {
    /* the old loader made a vocabulary of 601 ids with 86 holes */
    sdc_tokenizer *tok;
    cr_assert_eq(load_tok("  \"ab</w>\": 600", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    assert_msg(tpath("vocab.json"));
    assert_msg("\"ab</w>\"");
    assert_msg("0 to 514");
}

Test(hostile_text, tokenizer_vocab_id_twice) {
    sdc_tokenizer *tok;
    cr_assert_eq(load_tok("  \"ab</w>\": 7", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    assert_msg(tpath("vocab.json"));
    assert_msg("id 7 is given to both");
}

Test(hostile_text, tokenizer_vocab_piece_twice) {
    /* JSON allows a key twice; a vocabulary does not */
    sdc_tokenizer *tok;
    cr_assert_eq(load_tok("  \"a\": 514", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    assert_msg(tpath("vocab.json"));
    assert_msg("piece \"a\" appears twice");
}

Test(hostile_text, tokenizer_vocab_ids_must_be_integers) {
    static const char *bad[] = {"  \"ab</w>\": 514.5", "  \"ab</w>\": \"514\"", "  \"ab</w>\": -1",
                                "  \"ab</w>\": 1e400", "  \"ab</w>\": null", "  \"ab</w>\": [514]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sdc_tokenizer *tok;
        cr_assert_eq(load_tok(bad[i], "#version: 0.2\n", &tok), SDC_ERR_FORMAT, "%s", bad[i]);
        assert_msg(tpath("vocab.json"));
        assert_msg("\"ab</w>\"");
    }
}

Test(hostile_text, tokenizer_vocab_json_errors_have_line_and_column) {
    sdc_tokenizer *tok;
    /* line 516 is the first line after <|endoftext|> (see vocab_text) */
    cr_assert_eq(load_tok("  \"ab</w>\": 514,,", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s:516:", tpath("vocab.json"));
    assert_msg(want);
    assert_msg("invalid JSON");

    /* something after the object */
    char *v = vocab_text("");
    size_t n = strlen(v);
    char *w = malloc(n + 8);
    cr_assert_not_null(w);
    memcpy(w, v, n);
    memcpy(w + n, "{}\n", 4);
    put_str("vocab.json", w);
    put_str("merges.txt", "#version: 0.2\n");
    cr_assert_eq(sdc_tokenizer_load_hf(tpath("vocab.json"), tpath("merges.txt"), &tok), SDC_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:518:1:", tpath("vocab.json"));
    assert_msg(want);
    free(v);
    free(w);

    /* not an object, empty, nothing */
    static const struct { const char *text, *msg; } cases[] = {
        {"[1, 2]", "found an array"}, {"{}", "empty"}, {"", "invalid JSON"}, {"\"x\"", "found a string"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_str("vocab.json", cases[i].text);
        cr_assert_eq(sdc_tokenizer_load_hf(tpath("vocab.json"), tpath("merges.txt"), &tok), SDC_ERR_FORMAT);
        assert_msg(tpath("vocab.json"));
        assert_msg(cases[i].msg);
    }
}

Test(hostile_text, tokenizer_vocab_pieces_are_bounded_text) {
    sdc_tokenizer *tok;
    cr_assert_eq(load_tok("  \"\": 514", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    assert_msg("empty piece");

    char extra[400] = "  \"";
    memset(extra + 3, 'q', 300);
    strcpy(extra + 303, "\": 514");
    cr_assert_eq(load_tok(extra, "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    assert_msg("300 bytes (at most 256)");

    /* "a\u0000b" would have become the piece "a" (cut at the NUL) */
    cr_assert_eq(load_tok("  \"q\\u0000b\": 514", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s:516:", tpath("vocab.json"));
    assert_msg(want);
    assert_msg("\\u0000");

    cr_assert_eq(load_tok("  \"q\xff\": 514", "#version: 0.2\n", &tok), SDC_ERR_FORMAT);
    assert_msg(want);
    assert_msg("invalid UTF-8");
}

Test(hostile_text, tokenizer_files_are_bounded) {
    /* 17 MiB of zeros: refused before it is read (the old loader read it
     * all and then failed on the JSON) */
    const char *big = put_sparse("big.json", (off_t)17 << 20);
    put_str("merges.txt", "#version: 0.2\n");
    sdc_tokenizer *tok = (sdc_tokenizer *)1;
    cr_assert_eq(sdc_tokenizer_load_hf(big, tpath("merges.txt"), &tok), SDC_ERR_FORMAT);
    cr_assert_null(tok);
    assert_msg(big);
    assert_msg("16 MiB");
    char *v = vocab_text("");
    put_str("vocab.json", v);
    free(v);
    cr_assert_eq(sdc_tokenizer_load_hf(tpath("vocab.json"), big, &tok), SDC_ERR_FORMAT);
    assert_msg(big);
    assert_msg("16 MiB");
}

Test(hostile_text, tokenizer_bpe_gzip_bomb) {
    /* 17 MiB of 'a' in a 17 KB .gz: the old loader inflated all of it */
    const char *p = tpath("bomb.txt.gz");
    gzFile g = gzopen(p, "wb1");
    cr_assert_not_null(g);
    static char block[1 << 16];
    memset(block, 'a', sizeof block);
    for (int i = 0; i < 17 * 16; i++) cr_assert_eq(gzwrite(g, block, sizeof block), (int)sizeof block);
    cr_assert_eq(gzclose(g), Z_OK);
    sdc_tokenizer *tok = (sdc_tokenizer *)1;
    cr_assert_eq(sdc_tokenizer_load_bpe(p, &tok), SDC_ERR_FORMAT);
    cr_assert_null(tok);
    assert_msg(p);
    assert_msg("more than 16 MiB");
}

/* ---- tokenizer files: merges.txt ---------------------------------------- */

Test(hostile_text, tokenizer_merges_lines_are_strict) {
#define CASE(text, where, what) {text, sizeof text - 1, where, what}
    static const struct { const char *merges; size_t n; const char *where, *what; } cases[] = {
        CASE("#version: 0.2\na b</w>\nq\x00q z\n", ":3:", "a NUL byte"),
        CASE("#version: 0.2\na b</w>\nq\xc3 z\n", ":3:", "invalid UTF-8"),
        /* a lone CR does not end a line (transformers splits on "\n") */
        CASE("#version: 0.2\na b</w>\rq z\n", ":2:", "two symbols"),
        /* line numbers count the blank lines the strip() removes */
        CASE("\n\n#version: 0.2\na b</w>\nzz zz\n", ":5:", "not in the vocabulary"),
        CASE("#version: 0.2\r\na b</w>\r\n\r\nq q\r\n", ":3:", "two symbols"),
    };
#undef CASE
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *v = vocab_text("  \"ab</w>\": 514");
        put_str("vocab.json", v);
        free(v);
        put("merges.txt", cases[i].merges, cases[i].n);
        sdc_tokenizer *tok = (sdc_tokenizer *)1;
        cr_assert_eq(sdc_tokenizer_load_hf(tpath("vocab.json"), tpath("merges.txt"), &tok), SDC_ERR_FORMAT,
                     "case %zu loaded", i);
        cr_assert_null(tok);
        char want[600];
        snprintf(want, sizeof want, "%s%s", tpath("merges.txt"), cases[i].where);
        assert_msg(want);
        assert_msg(cases[i].what);
    }

    /* a symbol longer than any piece may be */
    char m[600] = "#version: 0.2\n";
    memset(m + 14, 'a', 300);
    strcpy(m + 314, " b\n");
    sdc_tokenizer *tok;
    cr_assert_eq(load_tok("  \"ab</w>\": 514", m, &tok), SDC_ERR_FORMAT);
    assert_msg("300 bytes (at most 256)");

    /* CRLF line ends and no final newline are fine */
    cr_assert_eq(load_tok("  \"ab</w>\": 514", "#version: 0.2\r\na b</w>", &tok), SDC_OK, "%s",
                 sdc_last_error());
    sdc_tokenizer_free(tok);
}

/* ---- prompts -------------------------------------------------------------- */

Test(hostile_text, prompt_all_empty_fragments) {
    /* fuzz_prompt, UBSan: with no text at all (""), or only a lone
     * backslash, the code point pool stayed NULL and the parser computed
     * NULL + 0 ("applying zero offset to null pointer") */
    static const char *prompts[] = {"", "\\", "()", "[\\]"};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        sdc_prompt_fragment *f = NULL;
        int n = 0;
        cr_assert_eq(sdc_prompt_parse_attention(prompts[i], &f, &n), SDC_OK, "%s", sdc_last_error());
        cr_assert_geq(n, 1, "\"%s\"", prompts[i]);
        for (int k = 0; k < n; k++) cr_assert_not_null(f[k].text);
        if (i < 2) {
            cr_assert_eq(n, 1);
            cr_assert_str_eq(f[0].text, "");
            cr_assert_eq(f[0].weight_f64, 1.0);
        }
        sdc_prompt_fragments_free(f, n);
    }
}

Test(hostile_text, prompt_chunks_use_the_tokenizers_special_ids) {
    /* fuzz_tokenizer: with a vocab.json whose <|startoftext|> and
     * <|endoftext|> are not CLIP's 49406 and 49407, the chunks still held
     * 49406 and 49407, ids outside the vocabulary */
    sdc_tokenizer *tok = tiny_tokenizer();
    int nv = sdc_tokenizer_vocab_size(tok);
    int pads[2] = {sdc_tokenizer_eos(tok), 3};
    for (int k = 0; k < 2; k++) {
        sdc_prompt p;
        cr_assert_eq(sdc_prompt_tokenize(tok, "ab, (ab:1.2) BREAK ab", pads[k], &p), SDC_OK, "%s",
                     sdc_last_error());
        cr_assert_eq(p.n_chunks, 2);
        for (int c = 0; c < p.n_chunks; c++) {
            cr_assert_eq(p.chunks[c].ids[0], 512);
            for (int i = 0; i < SDC_CLIP_CTX; i++)
                cr_assert(p.chunks[c].ids[i] >= 0 && p.chunks[c].ids[i] < nv, "chunk %d id %d = %d", c, i,
                          p.chunks[c].ids[i]);
        }
        cr_assert_eq(p.chunks[0].ids[1], 514);
        cr_assert_eq(p.chunks[0].ids[4], 513, "EOS after the 3 tokens");
        cr_assert_eq(p.chunks[0].ids[5], pads[k]);
        sdc_prompt_free(&p);
    }
    sdc_tokenizer_free(tok);
}

Test(hostile_text, tokenizer_long_word_is_not_quadratic) {
    /* CLIP's BPE loop is quadratic in a word's length: one word of 100,000
     * letters took 11 s (a megabyte: hours); now it is O(n log n) and
     * gives the same ids as the loop */
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe(BPE_GZ, &tok), SDC_OK, "%s", sdc_last_error());
    size_t n = 100000;
    char *w = malloc(n + 1);
    cr_assert_not_null(w);
    uint64_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        w[i] = (char)('a' + (x >> 33) % 26);
    }
    w[n] = '\0';
    int count = 0;
    double t0 = now();
    cr_assert_eq(sdc_tokenizer_encode(tok, w, NULL, 0, &count), SDC_OK, "%s", sdc_last_error());
    double dt = now() - t0;
    cr_assert_gt(count, 10000);
    cr_assert_lt(dt, 1.0, "a %zu-letter word took %.2f s", n, dt);

    /* the same ids as CLIP's loop, on words long enough for the new path */
    static int a[4000], b[4000];
    for (size_t len = 33; len <= 3000; len = len * 3 / 2) {
        char keep = w[len];
        w[len] = '\0';
        int na = 0, nb = 0;
        cr_assert_eq(sdc_tokenizer_encode(tok, w, a, 4000, &na), SDC_OK);
        cr_assert_eq(sdc_tokenizer_encode_reference(tok, w, b, 4000, &nb), SDC_OK);
        cr_assert_eq(na, nb, "length %zu: %d vs %d ids", len, na, nb);
        cr_assert_arr_eq(a, b, (size_t)na * sizeof *a, "length %zu", len);
        w[len] = keep;
    }
    free(w);
    sdc_tokenizer_free(tok);
}

/* ---- PNG files ------------------------------------------------------------ */

Test(hostile_text, png_ok_ihdr_shorter_than_13_bytes) {
    /* fuzz_png, ASan: sdc_batch_png_ok read IHDR's 13 bytes of fields from
     * a chunk that had 0 (heap-buffer-overflow in png_check); the file is
     * the fuzzer's: a signature and an empty IHDR with a valid CRC */
    static const unsigned char crash[20] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0,
                                            'I',  'H', 'D', 'R', 0xa8, 0xa1, 0xae, 0x0a};
    const char *p = put("short_ihdr.png", crash, sizeof crash);
    cr_assert_not(sdc_batch_png_ok(p));
    char *text = (char *)1;
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_ERR_FORMAT);
    cr_assert_null(text);
    assert_msg("not IHDR (length 13)");
    uint8_t *rgb = (uint8_t *)1;
    int w = -1, h = -1;
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &w, &h), SDC_ERR_FORMAT);
    cr_assert(rgb == NULL && w == 0 && h == 0);
    assert_msg(p);
}

Test(hostile_text, png_itxt_parameters_must_be_utf8) {
    /* fuzz_png: sdc_png_read_parameters promised UTF-8 but returned iTXt
     * text as it was ("\xe6" + "c": invalid) */
    unsigned char itxt[64], png[256];
    static const char body[] = "parameters\0\0\0\0\0\xe6" "cN";
    size_t k = chunk(itxt, "iTXt", body, sizeof body - 1);
    const char *p = put("itxt.png", png, tiny_png(png, 1, 1, itxt, k));
    char *text = (char *)1;
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_ERR_FORMAT);
    cr_assert_null(text);
    assert_msg(p);
    assert_msg("iTXt chunk at byte 33");
    assert_msg("invalid UTF-8 at byte 1");

    /* valid UTF-8 is read */
    static const char good[] = "parameters\0\0\0\0\0\xc3\xa9t\xc3\xa9";
    k = chunk(itxt, "iTXt", good, sizeof good - 1);
    p = put("itxt_ok.png", png, tiny_png(png, 1, 1, itxt, k));
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert_str_eq(text, "\xc3\xa9t\xc3\xa9");
    free(text);
    cr_assert(sdc_batch_png_ok(p));
}

Test(hostile_text, png_empty_text_chunk_is_skipped) {
    /* fuzz_png (UBSan): an empty tEXt chunk passed a NULL pointer to memchr */
    unsigned char text_chunk[16], png[256];
    for (int t = 0; t < 3; t++) {
        static const char *const types[] = {"tEXt", "zTXt", "iTXt"};
        size_t k = chunk(text_chunk, types[t], "", 0);
        const char *p = put("empty.png", png, tiny_png(png, 1, 1, text_chunk, k));
        char *text = (char *)1;
        cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_OK, "%s: %s", types[t], sdc_last_error());
        cr_assert_null(text);
    }
}

Test(hostile_text, png_text_with_nul_is_an_error) {
    unsigned char t[64], png[256];
    static const char body[] = "parameters\0ab\0cd";
    size_t k = chunk(t, "tEXt", body, sizeof body - 1);
    const char *p = put("nul.png", png, tiny_png(png, 1, 1, t, k));
    char *text = (char *)1;
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_ERR_FORMAT);
    cr_assert_null(text);
    assert_msg("NUL byte");
}

static sdc_status read_params(void *path) {
    char *text = NULL;
    sdc_status st = sdc_png_read_parameters(path, &text);
    free(text);
    return st;
}

Test(hostile_text, png_text_chunks_are_bounded) {
    /* a tEXt chunk that says it is 200 MB in a 70-byte file: refused as
     * truncated before any of it is allocated (the old reader allocated
     * the 200 MB first, so under a 64 MiB limit it ran out of memory) */
    unsigned char png[256];
    size_t n = tiny_png(png, 1, 1, NULL, 0);
    static const unsigned char head[8] = {0x0b, 0xeb, 0xc2, 0x00, 't', 'E', 'X', 't'};
    memmove(png + 33 + 8, png + 33, n - 33);
    memcpy(png + 33, head, 8);
    const char *p = put("huge_text.png", png, n + 8);
    sdc_status st = with_memory_limit((size_t)64 << 20, read_params, (void *)p);
    cr_assert_eq(st, SDC_ERR_FORMAT, "status %d: %s", (int)st, sdc_last_error());
    assert_msg("truncated PNG");
    cr_assert_not(sdc_batch_png_ok(p));

    /* a zTXt chunk that inflates to 17 MiB (the old limit was 256 MiB) */
    size_t raw_n = (size_t)17 << 20;
    unsigned char *raw = calloc(raw_n, 1), *z = malloc(1 << 20), *big = malloc((1 << 20) + 512);
    cr_assert(raw && z && big);
    memset(raw, 'a', raw_n);
    memcpy(z, "parameters\0\0", 12);
    uLongf zn = (1 << 20) - 12;
    cr_assert_eq(compress2(z + 12, &zn, raw, raw_n, 1), Z_OK);
    unsigned char *ch = malloc(zn + 12 + 12);
    cr_assert_not_null(ch);
    size_t k = chunk(ch, "zTXt", z, (uint32_t)(zn + 12));
    p = put("bomb.png", big, tiny_png(big, 1, 1, ch, k));
    char *text = (char *)1;
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_ERR_FORMAT);
    cr_assert_null(text);
    assert_msg("more than 16 MiB");
    free(raw), free(z), free(big), free(ch);
}

Test(hostile_text, image_jpeg_bad_huffman_table_is_refused) {
    /* fuzz_png, UBSan: stb_image 2.27's JPEG decoder (Debian 12's
     * libstb-dev) wrote past h->size[257] in stbi__build_huffman for this
     * DHT segment (code counts adding up to more than 256); JPEG now goes
     * to libjpeg-turbo, whose warning about the bytes before that segment
     * is an error for sdc. The input is the fuzzer's. */
    static const char b64[] =
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wCEABALDA4MChAODQ4SERATGCgaGBYRAQMRAf/EAaIAAAEFAQEBAQEBAAAAAAAAAAAB"
        "AgMEBQYHCAkK+AsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBka"
        "JSYnKCkqNDU2Nzg5OkNERUZHSElKU1R4AVdYWVpjZGVmZ2hpanN0dXZ3eHl6wMnp3gH/xAGiAAABBQEAQHrk6pIk/9k=";
    unsigned char bytes[256];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *c = b64; *c && *c != '='; c++) {
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        acc = acc << 6 | (unsigned)(strchr(alpha, *c) - alpha);
        bits += 6;
        if (bits >= 8) bits -= 8, bytes[n++] = (unsigned char)(acc >> bits);
    }
    cr_assert_eq(n, 212);
    const char *p = put("crash.jpg", bytes, n);
    uint8_t *rgb = (uint8_t *)1;
    int w = -1, h = -1;
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &w, &h), SDC_ERR_FORMAT);
    cr_assert(rgb == NULL && w == 0 && h == 0);
    assert_msg(p);
    assert_msg("corrupt JPEG: Corrupt JPEG data: 40 extraneous bytes before marker 0xc4");
}

Test(hostile_text, image_read_rgb_reads_pngs_and_checks_them) {
    /* what sdc_png_write writes reads back exactly */
    int w = 5, h = 3;
    uint8_t px[5 * 3 * 3];
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)(i * 17);
    const char *p = tpath("rt.png");
    cr_assert_eq(sdc_png_write(p, px, w, h, "a prompt"), SDC_OK, "%s", sdc_last_error());
    uint8_t *rgb = NULL;
    int rw = 0, rh = 0;
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_OK, "%s", sdc_last_error());
    cr_assert(rw == w && rh == h);
    cr_assert_arr_eq(rgb, px, sizeof px);
    free(rgb);

    /* grey 1x1: R = G = B */
    unsigned char png[300];
    size_t n = tiny_png(png, 1, 1, NULL, 0);
    p = put("grey.png", png, n);
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_OK, "%s", sdc_last_error());
    cr_assert(rw == 1 && rh == 1 && rgb[0] == 0x80 && rgb[1] == 0x80 && rgb[2] == 0x80);
    free(rgb);

    /* over the size limit, judged from IHDR before decoding */
    p = put("wide.png", png, tiny_png(png, SDC_IMAGE_MAX_SIDE + 1, 1, NULL, 0));
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_ERR_UNSUPPORTED);
    assert_msg("8193x1");
    assert_msg("8192x8192");

    /* framing: data after IEND, a bad CRC, an unknown critical chunk */
    n = tiny_png(png, 1, 1, NULL, 0);
    memcpy(png + n, "junk", 4);
    p = put("trailing.png", png, n + 4);
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_ERR_FORMAT);
    assert_msg("after the IEND chunk");
    n = tiny_png(png, 1, 1, NULL, 0);
    png[n - 1] ^= 1;
    p = put("crc.png", png, n);
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_ERR_FORMAT);
    assert_msg("CRC mismatch in chunk IEND");
    unsigned char c[16];
    size_t k = chunk(c, "ABCD", NULL, 0);
    p = put("critical.png", png, tiny_png(png, 1, 1, c, k));
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_ERR_FORMAT);
    assert_msg("critical chunk ABCD at byte 33");
    p = put_str("text.png", "not a picture");
    cr_assert_eq(sdc_image_read_rgb(p, &rgb, &rw, &rh), SDC_ERR_UNSUPPORTED);
    assert_msg("not a PNG or JPEG image (the file starts with 6e 6f 74 20");
    cr_assert_eq(sdc_image_read_rgb(tpath("missing.png"), &rgb, &rw, &rh), SDC_ERR_IO);
    assert_msg("missing.png");
}

/* ---- prompt lists --------------------------------------------------------- */

Test(hostile_text, batch_list_is_bounded) {
    /* a 52-byte line asks for 10,000 jobs; 101 of them would ask for
     * 1,010,000: the line that goes past the limit, and every line after
     * it, becomes a bad line (with its index, as any bad line) */
    const char *line = "{\"prompt\": \"a\", \"batch_size\": 100, \"n_iter\": 100}\n";
    size_t ln = strlen(line), lines = SDC_BATCH_MAX_JOBS / 10000 + 1;
    char *text = malloc(ln * lines + 8);
    cr_assert_not_null(text);
    for (size_t i = 0; i < lines; i++) memcpy(text + i * ln, line, ln);
    memcpy(text + ln * lines, "last\n", 6);
    sdc_batch_defaults d = {.gen = sdc_gen_params_default(), .base_seed = 1};
    sdc_batch_list l;
    cr_assert_eq(sdc_batch_parse(text, strlen(text), "list.txt", &d, &l), SDC_OK);
    cr_assert_eq(l.n, SDC_BATCH_MAX_JOBS + 1 + 1);
    const sdc_batch_job *bad = &l.jobs[SDC_BATCH_MAX_JOBS];
    cr_assert_not_null(bad->error);
    cr_assert_eq(bad->line, (int)lines);
    char want[64];
    snprintf(want, sizeof want, "list.txt:%zu: the list would have more than", lines);
    cr_assert_not_null(strstr(bad->error, want), "%s", bad->error);
    cr_assert_not_null(l.jobs[SDC_BATCH_MAX_JOBS + 1].error, "the limit holds for the lines after it");
    cr_assert_null(l.jobs[SDC_BATCH_MAX_JOBS - 1].error);
    sdc_batch_list_free(&l);
    free(text);

    /* a file over 256 MiB is refused before it is read */
    const char *big = put_sparse("big.txt", ((off_t)SDC_BATCH_MAX_FILE) + 1);
    cr_assert_eq(sdc_batch_parse_file(big, &d, &l), SDC_ERR_FORMAT);
    assert_msg(big);
    assert_msg("256 MiB");
    cr_assert_eq(l.n, 0);
}
