/* test_tokenizer.c - the CLIP tokenizer against transformers' CLIPTokenizer.
 *
 * tests/fixtures/tokenizer_corpus.json (tools/fixtures_tokenizer.py) holds
 * reference ids for every prompt of tools/prompt_corpus.json with SD 1.x's
 * padding (<|endoftext|>, 49407) and SD 2.x's ("!", id 0, which is also an
 * added token there). Both loaders must reproduce all of them. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "text/tokenizer.h"

#define BPE_GZ "weights/bpe_simple_vocab_16e6.txt.gz"
#define CORPUS "tests/fixtures/tokenizer_corpus.json"
#define MIN_CORPUS 300

/* ---- helpers ----------------------------------------------------------- */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    cr_assert(buf);
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
        cr_assert(buf);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* The decompressed BPE file. */
static char *gunzip_bpe(size_t *len) {
    gzFile g = gzopen(BPE_GZ, "rb");
    cr_assert(g, "cannot open %s", BPE_GZ);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    int r;
    while ((r = gzread(g, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
    }
    cr_assert_eq(r, 0, "gzread %s failed", BPE_GZ);
    gzclose(g);
    *len = n;
    return buf;
}

static char g_tmpdir[64];

static const char *tmp_path(const char *name) {
    static char path[4][256];
    static int k;
    if (!g_tmpdir[0]) {
        strcpy(g_tmpdir, "/tmp/sdc_tok_XXXXXX");
        cr_assert(mkdtemp(g_tmpdir), "mkdtemp failed");
    }
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", g_tmpdir, name);
    return path[k];
}

static void cleanup_tmp(void) {
    if (!g_tmpdir[0]) return;
    static const char *names[] = {"vocab.json", "merges.txt", "bpe.txt", "trunc.gz",
                                  "bad_merges.txt", "bad_bpe.txt", "bad_vocab.json",
                                  "short_bpe.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(g_tmpdir);
    g_tmpdir[0] = '\0';
}

/* A transformers tokenizer folder's vocab.json + merges.txt built from the
 * BPE file the way CLIP does (the same layout tools/clip_vocab.py writes). */
static void write_hf_files(const sdc_tokenizer *tok, const char *vocab_path,
                           const char *merges_path) {
    cJSON *root = cJSON_CreateObject();
    cr_assert(root);
    for (int id = 0; id < sdc_tokenizer_vocab_size(tok); id++)
        cr_assert(cJSON_AddNumberToObject(root, sdc_tokenizer_piece(tok, id), id));
    char *json = cJSON_PrintUnformatted(root);
    cr_assert(json);
    spit(vocab_path, json, strlen(json));
    free(json);
    cJSON_Delete(root);

    size_t n;
    char *bpe = gunzip_bpe(&n);
    FILE *f = fopen(merges_path, "wb");
    cr_assert(f);
    fputs("#version: 0.2\n", f);
    const char *p = strchr(bpe, '\n') + 1;
    for (int k = 0; k < 48894; k++) {
        const char *e = memchr(p, '\n', (size_t)(bpe + n - p));
        cr_assert(e);
        fwrite(p, 1, (size_t)(e - p + 1), f);
        p = e + 1;
    }
    cr_assert_eq(fclose(f), 0);
    free(bpe);
}

/* text with 1-based line `lineno` replaced by `repl` (which ends in '\n'). */
static char *replace_line(const char *text, size_t n, int lineno, const char *repl,
                          size_t *out_n) {
    const char *a = text;
    for (int i = 1; i < lineno; i++) a = strchr(a, '\n') + 1;
    const char *b = strchr(a, '\n') + 1;
    size_t head = (size_t)(a - text), tail = n - (size_t)(b - text), r = strlen(repl);
    char *out = malloc(head + r + tail);
    cr_assert(out);
    memcpy(out, text, head);
    memcpy(out + head, repl, r);
    memcpy(out + head + r, b, tail);
    *out_n = head + r + tail;
    return out;
}

static sdc_tokenizer *load_bpe(void) {
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe(BPE_GZ, &tok), SDC_OK, "%s", sdc_last_error());
    return tok;
}

static void print_prompt(const char *p) {
    fputc('"', stderr);
    for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(stderr, "\\%c", *s);
        else if (*s < 0x20 || *s == 0x7f) fprintf(stderr, "\\x%02x", *s);
        else fputc(*s, stderr);
    }
    fputc('"', stderr);
}

static int ids_at(cJSON *arr, int i) { return cJSON_GetArrayItem(arr, i)->valueint; }

/* Every corpus prompt through `tok`: both pad variants, token counts and
 * dropped counts. Returns the number of mismatching prompts. */
static int check_corpus(sdc_tokenizer *tok, const char *label) {
    char *text = slurp(CORPUS, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert(root && cJSON_IsArray(root), "%s: expected a JSON array", CORPUS);
    int n = cJSON_GetArraySize(root);
    cr_assert_geq(n, MIN_CORPUS, "%s: only %d prompts (want >= %d)", CORPUS, n, MIN_CORPUS);
    int bad = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        const char *prompt = cJSON_GetObjectItem(e, "prompt")->valuestring;
        static const struct { const char *key, *count; int pad; } var[2] = {
            {"ids_sd1", "n_tokens", 49407}, {"ids_sd2", "n_tokens_sd2", 0}};
        bool ok = true;
        for (int v = 0; v < 2; v++) {
            cJSON *want = cJSON_GetObjectItem(e, var[v].key);
            int want_n = cJSON_GetObjectItem(e, var[v].count)->valueint;
            cr_assert_eq(cJSON_GetArraySize(want), SDC_CLIP_CTX);
            int got[SDC_CLIP_CTX], dropped = -1;
            sdc_status st = sdc_tokenizer_encode_padded(tok, prompt, var[v].pad, got,
                                                        SDC_CLIP_CTX, &dropped);
            if (st != SDC_OK) {
                fprintf(stderr, "[%s] %s: error %s for ", label, var[v].key, sdc_last_error());
                print_prompt(prompt);
                fputc('\n', stderr);
                ok = false;
                continue;
            }
            int pos = -1;
            for (int i = 0; i < SDC_CLIP_CTX && pos < 0; i++)
                if (got[i] != ids_at(want, i)) pos = i;
            if (pos >= 0) {
                fprintf(stderr, "[%s] %s mismatch at position %d (got %d, expected %d) for ",
                        label, var[v].key, pos, got[pos], ids_at(want, pos));
                print_prompt(prompt);
                fputc('\n', stderr);
                ok = false;
            }
            int want_dropped = want_n > SDC_CLIP_CTX - 2 ? want_n - (SDC_CLIP_CTX - 2) : 0;
            if (dropped != want_dropped) {
                fprintf(stderr, "[%s] %s: n_dropped %d, expected %d for ", label,
                        var[v].key, dropped, want_dropped);
                print_prompt(prompt);
                fputc('\n', stderr);
                ok = false;
            }
        }
        /* the unpadded count follows SD 1.x (only BOS/EOS are added tokens) */
        int n_out = -1, first[4];
        int want_n = cJSON_GetObjectItem(e, "n_tokens")->valueint;
        sdc_status st = sdc_tokenizer_encode(tok, prompt, first, 4, &n_out);
        if (st != SDC_OK || n_out != want_n) {
            fprintf(stderr, "[%s] n_tokens %d, expected %d for ", label, n_out, want_n);
            print_prompt(prompt);
            fputc('\n', stderr);
            ok = false;
        } else {
            cJSON *want = cJSON_GetObjectItem(e, "ids_sd1");
            for (int i = 0; i < 4 && i < n_out && i < SDC_CLIP_CTX - 2; i++)
                if (first[i] != ids_at(want, i + 1)) ok = false;
        }
        if (!ok) bad++;
    }
    fprintf(stderr, "[%s] %d/%d corpus prompts match\n", label, n - bad, n);
    cJSON_Delete(root);
    return bad;
}

/* ---- corpus ------------------------------------------------------------ */

Test(tokenizer, corpus_bpe_gz) {
    sdc_tokenizer *tok = load_bpe();
    cr_assert_eq(check_corpus(tok, "bpe.gz"), 0, "corpus mismatches (see stderr)");
    sdc_tokenizer_free(tok);
}

Test(tokenizer, corpus_hf_files) {
    sdc_tokenizer *bpe = load_bpe();
    const char *vocab = tmp_path("vocab.json"), *merges = tmp_path("merges.txt");
    write_hf_files(bpe, vocab, merges);
    sdc_tokenizer_free(bpe);
    sdc_tokenizer *tok = NULL;
    sdc_status st = sdc_tokenizer_load_hf(vocab, merges, &tok);
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_tokenizer_vocab_size(tok), 49408);
    int bad = check_corpus(tok, "hf");
    sdc_tokenizer_free(tok);
    cleanup_tmp();
    cr_assert_eq(bad, 0, "corpus mismatches (see stderr)");
}

Test(tokenizer, plain_text_bpe) {
    size_t n;
    char *bpe = gunzip_bpe(&n);
    const char *path = tmp_path("bpe.txt");
    spit(path, bpe, n);
    free(bpe);
    sdc_tokenizer *a = load_bpe(), *b = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe(path, &b), SDC_OK, "%s", sdc_last_error());
    const char *p = "a (cyberpunk:1.2) city, it's 8k &amp; ÉCOLE 東京 😀!!";
    int ia[SDC_CLIP_CTX], ib[SDC_CLIP_CTX];
    cr_assert_eq(sdc_tokenizer_encode_padded(a, p, 0, ia, SDC_CLIP_CTX, NULL), SDC_OK);
    cr_assert_eq(sdc_tokenizer_encode_padded(b, p, 0, ib, SDC_CLIP_CTX, NULL), SDC_OK);
    cr_assert_arr_eq(ia, ib, sizeof ia);
    sdc_tokenizer_free(a);
    sdc_tokenizer_free(b);
    cleanup_tmp();
}

/* ---- pieces, counts, truncation ------------------------------------------ */

Test(tokenizer, pieces) {
    sdc_tokenizer *tok = load_bpe();
    cr_assert_eq(sdc_tokenizer_vocab_size(tok), 49408);
    cr_assert_str_eq(sdc_tokenizer_piece(tok, SDC_CLIP_BOS), "<|startoftext|>");
    cr_assert_str_eq(sdc_tokenizer_piece(tok, SDC_CLIP_EOS), "<|endoftext|>");
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 0), "!");
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 256), "!</w>");
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 255), "\xc5\x83"); /* U+0143: byte 0xAD */
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 220), "\xc4\xa0"); /* U+0120: byte 0x20 */
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 512), "in");       /* first merge */
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 320), "a</w>");
    cr_assert_str_eq(sdc_tokenizer_piece(tok, 49405), "jekyll</w>"); /* last merge */
    cr_assert_null(sdc_tokenizer_piece(tok, -1));
    cr_assert_null(sdc_tokenizer_piece(tok, 49408));

    int ids[8], n = 0;
    cr_assert_eq(sdc_tokenizer_encode(tok, "a photo of a cat", ids, 8, &n), SDC_OK);
    int want[] = {320, 1125, 539, 320, 2368};
    cr_assert_eq(n, 5);
    cr_assert_arr_eq(ids, want, sizeof want);
    sdc_tokenizer_free(tok);
}

Test(tokenizer, truncation_and_counts) {
    sdc_tokenizer *tok = load_bpe();
    char prompt[2048] = "";
    for (int i = 0; i < 100; i++) strcat(prompt, "cat ");
    int n = -1, ids[SDC_CLIP_CTX], dropped = -1, few[3];
    cr_assert_eq(sdc_tokenizer_encode(tok, prompt, few, 3, &n), SDC_OK);
    cr_assert_eq(n, 100, "full count %d", n);
    cr_assert_eq(few[0], 2368);
    cr_assert_eq(sdc_tokenizer_encode(tok, prompt, NULL, 0, &n), SDC_OK);
    cr_assert_eq(n, 100);
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, prompt, SDC_CLIP_EOS, ids, SDC_CLIP_CTX,
                                             &dropped), SDC_OK);
    cr_assert_eq(dropped, 25);
    cr_assert_eq(ids[0], SDC_CLIP_BOS);
    cr_assert_eq(ids[75], 2368);
    cr_assert_eq(ids[76], SDC_CLIP_EOS);

    /* exactly 75 tokens: nothing dropped, EOS last */
    prompt[0] = '\0';
    for (int i = 0; i < 75; i++) strcat(prompt, "cat ");
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, prompt, 0, ids, SDC_CLIP_CTX, &dropped), SDC_OK);
    cr_assert_eq(dropped, 0);
    cr_assert_eq(ids[76], SDC_CLIP_EOS);

    /* short output: BOS, EOS, padding; NULL n_dropped is fine */
    int small[4];
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, "", 0, small, 4, NULL), SDC_OK);
    int want_small[] = {SDC_CLIP_BOS, SDC_CLIP_EOS, 0, 0};
    cr_assert_arr_eq(small, want_small, sizeof small);
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, "red", SDC_CLIP_EOS, small, 2, &dropped), SDC_OK);
    cr_assert_eq(small[0], SDC_CLIP_BOS);
    cr_assert_eq(small[1], SDC_CLIP_EOS);
    cr_assert_eq(dropped, 1);

    /* SD 2.x's pad token "!" is an added token: "hi!!" ends in three ids 0 */
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, "hi!!!", 0, ids, SDC_CLIP_CTX, NULL), SDC_OK);
    cr_assert_eq(ids[2], 0);
    cr_assert_eq(ids[3], 0);
    cr_assert_eq(ids[4], 0);
    cr_assert_eq(ids[5], SDC_CLIP_EOS);
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, "hi!!!", SDC_CLIP_EOS, ids, SDC_CLIP_CTX,
                                             NULL), SDC_OK);
    cr_assert_eq(ids[2], 995); /* "!!!</w>" */
    cr_assert_eq(ids[3], SDC_CLIP_EOS);
    sdc_tokenizer_free(tok);
}

Test(tokenizer, load_time) {
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        sdc_tokenizer *tok = load_bpe();
        clock_gettime(CLOCK_MONOTONIC, &b);
        sdc_tokenizer_free(tok);
        double dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        if (dt < best) best = dt;
    }
    cr_assert_lt(best, 0.5, "loading %s took %.3f s", BPE_GZ, best);
}

/* ---- errors ------------------------------------------------------------ */

Test(tokenizer, error_missing_file) {
    sdc_tokenizer *tok = (sdc_tokenizer *)1;
    cr_assert_eq(sdc_tokenizer_load_bpe("no/such/bpe.txt.gz", &tok), SDC_ERR_IO);
    cr_assert_null(tok);
    cr_assert(strstr(sdc_last_error(), "no/such/bpe.txt.gz"), "%s", sdc_last_error());
    cr_assert_eq(sdc_tokenizer_load_hf("no/such/vocab.json", "no/such/merges.txt", &tok),
                 SDC_ERR_IO);
    cr_assert(strstr(sdc_last_error(), "no/such/vocab.json"), "%s", sdc_last_error());
}

Test(tokenizer, error_truncated_gz) {
    size_t n;
    char *gz = slurp(BPE_GZ, &n);
    const char *path = tmp_path("trunc.gz");
    spit(path, gz, n / 2);
    free(gz);
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe(path, &tok), SDC_ERR_FORMAT);
    cr_assert_null(tok);
    cr_assert(strstr(sdc_last_error(), path), "%s", sdc_last_error());
    cr_assert(strstr(sdc_last_error(), "truncated"), "%s", sdc_last_error());
    cleanup_tmp();
}

Test(tokenizer, error_bad_merges) {
    sdc_tokenizer *bpe = load_bpe();
    const char *vocab = tmp_path("vocab.json"), *merges = tmp_path("merges.txt");
    write_hf_files(bpe, vocab, merges);
    sdc_tokenizer_free(bpe);

    /* line 4 of merges.txt: three symbols, then unknown symbols */
    size_t n, bad_n;
    char *text = slurp(merges, &n);
    const char *bad_path = tmp_path("bad_merges.txt");
    char want[300];
    snprintf(want, sizeof want, "%s:4:", bad_path);
    static const char *garbage[] = {"this is garbage\n", "\n", "zzqqzzqq xxqqxxqq\n"};
    sdc_tokenizer *tok = NULL;
    for (int g = 0; g < 3; g++) {
        char *bad = replace_line(text, n, 4, garbage[g], &bad_n);
        spit(bad_path, bad, bad_n);
        free(bad);
        cr_assert_eq(sdc_tokenizer_load_hf(vocab, bad_path, &tok), SDC_ERR_FORMAT);
        cr_assert_null(tok);
        cr_assert(strstr(sdc_last_error(), want), "%s", sdc_last_error());
    }
    free(text);

    /* the same garbage in a plain-text BPE file (line 1 is the header) */
    const char *bad_bpe = tmp_path("bad_bpe.txt");
    size_t bn;
    char *bpe_text = gunzip_bpe(&bn);
    char *bad = replace_line(bpe_text, bn, 3, "x y z\n", &bad_n);
    spit(bad_bpe, bad, bad_n);
    free(bad);
    cr_assert_eq(sdc_tokenizer_load_bpe(bad_bpe, &tok), SDC_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:3:", bad_bpe);
    cr_assert(strstr(sdc_last_error(), want), "%s", sdc_last_error());

    /* too few merges */
    const char *short_bpe = tmp_path("short_bpe.txt");
    spit(short_bpe, bpe_text, 1000);
    cr_assert_eq(sdc_tokenizer_load_bpe(short_bpe, &tok), SDC_ERR_FORMAT);
    cr_assert(strstr(sdc_last_error(), short_bpe), "%s", sdc_last_error());
    free(bpe_text);

    /* vocab.json that is not an object of ids */
    const char *bad_vocab = tmp_path("bad_vocab.json");
    spit(bad_vocab, "{\"a\": \"x\"}", 10);
    cr_assert_eq(sdc_tokenizer_load_hf(bad_vocab, merges, &tok), SDC_ERR_FORMAT);
    cr_assert(strstr(sdc_last_error(), bad_vocab), "%s", sdc_last_error());
    spit(bad_vocab, "[1, 2", 5);
    cr_assert_eq(sdc_tokenizer_load_hf(bad_vocab, merges, &tok), SDC_ERR_FORMAT);
    cr_assert(strstr(sdc_last_error(), bad_vocab), "%s", sdc_last_error());
    spit(bad_vocab, "{\"a\": 0}", 8);
    cr_assert_eq(sdc_tokenizer_load_hf(bad_vocab, merges, &tok), SDC_ERR_FORMAT);
    cr_assert(strstr(sdc_last_error(), bad_vocab), "%s", sdc_last_error());

    cleanup_tmp();
}

Test(tokenizer, error_bad_arguments) {
    sdc_tokenizer *tok = load_bpe();
    int ids[SDC_CLIP_CTX], n;
    cr_assert_eq(sdc_tokenizer_encode(tok, "caf\xc3", ids, SDC_CLIP_CTX, &n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "UTF-8"), "%s", sdc_last_error());
    cr_assert_eq(sdc_tokenizer_encode(tok, "\xed\xa0\x80", ids, SDC_CLIP_CTX, &n), SDC_ERR_ARG);
    cr_assert_eq(sdc_tokenizer_encode(tok, "\xc0\xaf", ids, SDC_CLIP_CTX, &n), SDC_ERR_ARG);
    cr_assert_eq(sdc_tokenizer_encode(tok, NULL, ids, SDC_CLIP_CTX, &n), SDC_ERR_ARG);
    cr_assert_eq(sdc_tokenizer_encode(tok, "x", NULL, 5, &n), SDC_ERR_ARG);
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, "x", 49408, ids, SDC_CLIP_CTX, NULL),
                 SDC_ERR_ARG);
    cr_assert_eq(sdc_tokenizer_encode_padded(tok, "x", 0, ids, 1, NULL), SDC_ERR_ARG);
    sdc_tokenizer_free(tok);
    sdc_tokenizer_free(NULL);
}
