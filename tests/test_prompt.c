/* test_prompt.c - AUTOMATIC1111's prompt syntax: emphasis weights, 75-token
 * chunks with the comma backtrack, BREAK.
 *
 * tests/fixtures/prompt_syntax.json (tools/fixtures_prompts.py) holds, for
 * every prompt of tools/prompt_syntax_corpus.json, the fragments of
 * parse_prompt_attention and the chunks of tokenize_line with SD 1.x's
 * padding (49407) and SD 2.x's (0). How they are compared:
 *   fragments  texts byte for byte; weights exactly: the fixture stores
 *              repr() of Python's double, strtod reads it back to the same
 *              double, and sdc's weight_f64 must be that double bit for bit
 *              (NaN matching NaN, -0.0 told from 0.0); the float weight
 *              must equal (float) of it;
 *   chunks     the number of chunks, all 77 ids exactly, all 77 weights
 *              exactly as float32 (the fixture stores the float32 values as
 *              exact doubles), and `weighted` == any weight != 1.0f.
 * Prompts A1111 rejects (float("1.2.3")) must be rejected. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "text/prompt.h"

#define BPE_GZ "weights/bpe_simple_vocab_16e6.txt.gz"
#define FIXTURE "tests/fixtures/prompt_syntax.json"
#define MIN_CORPUS 100

static sdc_tokenizer *load_tok(void) {
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe(BPE_GZ, &tok), SDC_OK, "%s", sdc_last_error());
    return tok;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (run tools/fixtures_prompts.py)", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n > 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A fixture number: a JSON number, or "inf" / "-inf" / "nan" / a repr(). */
static double json_num(const cJSON *v) {
    if (cJSON_IsNumber(v)) return v->valuedouble;
    cr_assert(cJSON_IsString(v), "fixture: expected a number");
    char *end = NULL;
    double d = strtod(v->valuestring, &end);
    cr_assert(end && *end == '\0', "fixture: bad number '%s'", v->valuestring);
    return d;
}

static bool same_f64(double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

static bool same_f32(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return a == b;
}

/* Compares one prompt with its fixture entry; returns a description of
 * the first difference (static buffer) or NULL. */
static const char *check_entry(sdc_tokenizer *tok, const cJSON *e) {
    static char why[512];
    const char *prompt = cJSON_GetObjectItem(e, "prompt")->valuestring;
    sdc_prompt_fragment *fr = NULL;
    int nf = 0;
    sdc_status st = sdc_prompt_parse_attention(prompt, &fr, &nf);
    if (cJSON_IsTrue(cJSON_GetObjectItem(e, "error"))) {
        sdc_prompt p;
        sdc_status st2 = sdc_prompt_tokenize(tok, prompt, SDC_CLIP_EOS, &p);
        sdc_prompt_fragments_free(fr, nf);
        if (st == SDC_OK || st2 == SDC_OK) return "A1111 rejects this prompt; sdc accepted it";
        if (p.chunks || p.n_chunks) return "failed tokenize left chunks behind";
        return NULL;
    }
    if (st != SDC_OK) {
        snprintf(why, sizeof why, "parse failed: %s", sdc_last_error());
        return why;
    }
    const cJSON *frags = cJSON_GetObjectItem(e, "fragments");
    const char *bad = NULL;
    if (nf != cJSON_GetArraySize(frags)) {
        snprintf(why, sizeof why, "%d fragments, reference %d", nf, cJSON_GetArraySize(frags));
        bad = why;
    }
    for (int i = 0; !bad && i < nf; i++) {
        const cJSON *rf = cJSON_GetArrayItem(frags, i);
        const char *rt = cJSON_GetArrayItem(rf, 0)->valuestring;
        double rw = json_num(cJSON_GetArrayItem(rf, 1));
        if (strcmp(fr[i].text, rt)) {
            snprintf(why, sizeof why, "fragment %d text '%s', reference '%s'", i, fr[i].text, rt);
            bad = why;
        } else if (!same_f64(fr[i].weight_f64, rw) || !same_f32(fr[i].weight, (float)rw)) {
            snprintf(why, sizeof why, "fragment %d weight %.17g, reference %.17g", i,
                     fr[i].weight_f64, rw);
            bad = why;
        }
    }
    sdc_prompt_fragments_free(fr, nf);
    if (bad) return bad;

    const cJSON *wts = cJSON_GetObjectItem(e, "weights");
    static const struct { int pad; const char *key; } pads[] = {{SDC_CLIP_EOS, "ids_sd1"},
                                                                {0, "ids_sd2"}};
    for (int k = 0; k < 2; k++) {
        const cJSON *rids = cJSON_GetObjectItem(e, pads[k].key);
        sdc_prompt p;
        if (sdc_prompt_tokenize(tok, prompt, pads[k].pad, &p) != SDC_OK) {
            snprintf(why, sizeof why, "tokenize (pad %d) failed: %s", pads[k].pad,
                     sdc_last_error());
            return why;
        }
        bool any = false;
        if (p.n_chunks != cJSON_GetArraySize(rids)) {
            snprintf(why, sizeof why, "pad %d: %d chunks, reference %d", pads[k].pad,
                     p.n_chunks, cJSON_GetArraySize(rids));
            bad = why;
        }
        for (int c = 0; !bad && c < p.n_chunks; c++) {
            const cJSON *ri = cJSON_GetArrayItem(rids, c), *rw = cJSON_GetArrayItem(wts, c);
            if (cJSON_GetArraySize(ri) != 77 || (!cJSON_IsNull(rw) && cJSON_GetArraySize(rw) != 77))
                cr_assert_fail("fixture: chunk of the wrong length");
            for (int j = 0; !bad && j < 77; j++) {
                int id = cJSON_GetArrayItem(ri, j)->valueint;
                float w = cJSON_IsNull(rw) ? 1.0f : (float)json_num(cJSON_GetArrayItem(rw, j));
                any |= w != 1.0f;
                if (p.chunks[c].ids[j] != id) {
                    snprintf(why, sizeof why, "pad %d: chunk %d id %d is %d, reference %d",
                             pads[k].pad, c, j, p.chunks[c].ids[j], id);
                    bad = why;
                } else if (!same_f32(p.chunks[c].weights[j], w)) {
                    snprintf(why, sizeof why, "pad %d: chunk %d weight %d is %.9g, reference "
                             "%.9g", pads[k].pad, c, j, p.chunks[c].weights[j], w);
                    bad = why;
                }
            }
        }
        if (!bad && p.weighted != any) {
            snprintf(why, sizeof why, "weighted is %d, reference %d", p.weighted, any);
            bad = why;
        }
        sdc_prompt_free(&p);
        if (bad) return bad;
    }
    return NULL;
}

Test(prompt, corpus_matches_a1111) {
    char *json = slurp(FIXTURE);
    cJSON *root = cJSON_Parse(json);
    cr_assert(root, "cannot parse %s", FIXTURE);
    cr_assert_eq(cJSON_GetObjectItem(root, "chunk_length")->valueint, SDC_PROMPT_CHUNK_TOKENS);
    cr_assert_eq(cJSON_GetObjectItem(root, "comma_backtrack")->valueint,
                 SDC_PROMPT_COMMA_BACKTRACK);
    const cJSON *prompts = cJSON_GetObjectItem(root, "prompts");
    int n = cJSON_GetArraySize(prompts), ok = 0, shown = 0;
    cr_assert(n >= MIN_CORPUS, "only %d prompts in %s", n, FIXTURE);
    sdc_tokenizer *tok = load_tok();
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(prompts, i);
        const char *why = check_entry(tok, e);
        if (!why) {
            ok++;
        } else if (shown++ < 10) {
            cr_log_error("prompt %d '%s': %s", i,
                         cJSON_GetObjectItem(e, "prompt")->valuestring, why);
        }
    }
    sdc_tokenizer_free(tok);
    cJSON_Delete(root);
    free(json);
    cr_assert_eq(ok, n, "%d of %d prompts identical to the A1111 reference", ok, n);
}

/* ---- behaviour that does not need the fixture --------------------------- */

Test(prompt, plain_prompts_match_encode_padded) {
    static const char *plain[] = {
        "a photo of an astronaut riding a horse on mars",
        "a lighthouse on a cliff at dawn, oil painting",
        "portrait, 85mm lens, bokeh, style: photorealistic",
        "",
        "caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x99\x82",
        "a break in the clouds",
    };
    sdc_tokenizer *tok = load_tok();
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        for (int pad = 0; pad < 2; pad++) {
            int pad_id = pad ? 0 : SDC_CLIP_EOS, want[77], dropped = -1;
            cr_assert_eq(sdc_tokenizer_encode_padded(tok, plain[i], pad_id, want, 77, &dropped),
                         SDC_OK);
            cr_assert_eq(dropped, 0);
            sdc_prompt p;
            cr_assert_eq(sdc_prompt_tokenize(tok, plain[i], pad_id, &p), SDC_OK, "%s",
                         sdc_last_error());
            cr_assert_eq(p.n_chunks, 1, "'%s'", plain[i]);
            cr_assert_not(p.weighted, "'%s'", plain[i]);
            for (int j = 0; j < 77; j++) {
                cr_assert_eq(p.chunks[0].ids[j], want[j], "'%s' pad %d: id %d", plain[i],
                             pad_id, j);
                cr_assert_eq(p.chunks[0].weights[j], 1.0f);
            }
            sdc_prompt_free(&p);
        }
    }
    sdc_tokenizer_free(tok);
}

Test(prompt, weights_and_breaks) {
    sdc_prompt_fragment *f = NULL;
    int n = 0;
    cr_assert_eq(sdc_prompt_parse_attention("a (red:1.3) [car], night BREAK rain", &f, &n),
                 SDC_OK);
    /* ("a ", 1), ("red", 1.3), (" ", 1), ("car", 1/1.1), (", night", 1),
     * ("BREAK", -1), ("rain", 1) */
    cr_assert_eq(n, 7);
    cr_assert_str_eq(f[1].text, "red");
    cr_assert_eq(f[1].weight_f64, 1.3);
    cr_assert_eq(f[1].weight, 1.3f);
    cr_assert_str_eq(f[2].text, " ");
    cr_assert_eq(f[3].weight_f64, 1 / 1.1);
    cr_assert_str_eq(f[5].text, "BREAK");
    cr_assert_eq(f[5].weight_f64, -1.0);
    cr_assert_str_eq(f[6].text, "rain");
    sdc_prompt_fragments_free(f, n);

    sdc_tokenizer *tok = load_tok();
    sdc_prompt p;
    cr_assert_eq(sdc_prompt_tokenize(tok, "a (red:1.3) car BREAK rain", 0, &p), SDC_OK);
    cr_assert_eq(p.n_chunks, 2);
    cr_assert(p.weighted);
    cr_assert_eq(p.chunks[0].weights[2], 1.3f);
    cr_assert_eq(p.chunks[0].ids[4], SDC_CLIP_EOS);
    cr_assert_eq(p.chunks[0].ids[5], 0);
    cr_assert_eq(p.chunks[1].ids[0], SDC_CLIP_BOS);
    cr_assert_eq(p.chunks[1].ids[2], SDC_CLIP_EOS);
    sdc_prompt_free(&p);
    sdc_tokenizer_free(tok);
}

Test(prompt, bad_arguments) {
    sdc_tokenizer *tok = load_tok();
    sdc_prompt p;
    sdc_prompt_fragment *f = NULL;
    int n = 0;
    cr_assert_eq(sdc_prompt_tokenize(tok, "a", -1, &p), SDC_ERR_ARG);
    cr_assert_eq(sdc_prompt_tokenize(tok, "a", 49408, &p), SDC_ERR_ARG);
    cr_assert_eq(sdc_prompt_tokenize(tok, NULL, 0, &p), SDC_ERR_ARG);
    cr_assert_eq(sdc_prompt_tokenize(NULL, "a", 0, &p), SDC_ERR_ARG);
    cr_assert_eq(sdc_prompt_parse_attention(NULL, &f, &n), SDC_ERR_ARG);
    cr_assert_eq(sdc_prompt_parse_attention("(a:1.2.3)", &f, &n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "1.2.3"), "%s", sdc_last_error());
    cr_assert_null(f);
    cr_assert_eq(n, 0);
    sdc_prompt_free(NULL);
    sdc_prompt_fragments_free(NULL, 0);
    sdc_tokenizer_free(tok);
}

/* ---- pathological inputs: iterative, bounded, never a crash ------------- */

static double parse_and_tokenize(sdc_tokenizer *tok, const char *text, sdc_status want,
                                 int *n_frag, int *n_chunks) {
    double t0 = sdc_now();
    sdc_prompt_fragment *f = NULL;
    int n = 0;
    cr_assert_eq(sdc_prompt_parse_attention(text, &f, &n), want, "%s", sdc_last_error());
    sdc_prompt p;
    cr_assert_eq(sdc_prompt_tokenize(tok, text, 0, &p), want, "%s", sdc_last_error());
    if (n_frag) *n_frag = n;
    if (n_chunks) *n_chunks = p.n_chunks;
    if (want == SDC_OK) {
        cr_assert(n >= 1 && p.n_chunks >= 1);
        for (int c = 0; c < p.n_chunks; c++) {
            cr_assert_eq(p.chunks[c].ids[0], SDC_CLIP_BOS);
            cr_assert(p.chunks[c].ids[76] == SDC_CLIP_EOS || p.chunks[c].ids[76] == 0);
        }
    } else {
        cr_assert_null(f);
        cr_assert_null(p.chunks);
    }
    sdc_prompt_fragments_free(f, n);
    sdc_prompt_free(&p);
    return sdc_now() - t0;
}

static char *repeat(const char *unit, int times, const char *middle, const char *tail) {
    size_t u = strlen(unit), m = strlen(middle), t = strlen(tail);
    char *s = malloc(u * (size_t)times + m + t + 1), *q = s;
    cr_assert(s);
    for (int i = 0; i < times; i++, q += u) memcpy(q, unit, u);
    memcpy(q, middle, m);
    memcpy(q + m, tail, t + 1);
    return s;
}

Test(prompt, ten_thousand_characters) {
    static const char *pieces[] = {"(red:1.2) ", "[car], ", "night ", "BREAK ", "rain, ",
                                   "((glow)) ", "\\(x\\) ", "a:b ", "(deep [nest", ")] ",
                                   "caf\xc3\xa9 ", "wow!!! "};
    char *s = malloc(10001);
    cr_assert(s);
    size_t n = 0;
    for (int k = 0; n < 10000; k++) {
        const char *p = pieces[(k * 7) % 12];
        size_t l = strlen(p);
        if (n + l > 10000) l = 10000 - n;
        memcpy(s + n, p, l);
        n += l;
    }
    s[n] = '\0';
    sdc_tokenizer *tok = load_tok();
    int nf = 0, nc = 0;
    double t = parse_and_tokenize(tok, s, SDC_OK, &nf, &nc);
    cr_assert_lt(t, 1.0, "10,000 characters took %.2f s", t);
    cr_assert_gt(nc, 10);
    free(s);
    sdc_tokenizer_free(tok);
}

Test(prompt, deep_nesting_is_iterative) {
    sdc_tokenizer *tok = load_tok();
    /* 1,000 nested round brackets, closed: one fragment, 1.1 applied 1,000
     * times in double (overflows float32 to inf, as torch would) */
    char *s = repeat("(", 1000, "a", ""), *closed = NULL;
    size_t len = strlen(s);
    closed = malloc(len + 1001);
    cr_assert(closed);
    memcpy(closed, s, len);
    memset(closed + len, ')', 1000);
    closed[len + 1000] = '\0';
    double want = 1.0;
    for (int i = 0; i < 1000; i++) want *= 1.1;
    const char *texts[] = {s, closed};
    for (int k = 0; k < 2; k++) {
        sdc_prompt_fragment *f = NULL;
        int n = 0;
        double t0 = sdc_now();
        cr_assert_eq(sdc_prompt_parse_attention(texts[k], &f, &n), SDC_OK);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(f[0].text, "a");
        cr_assert_eq(f[0].weight_f64, want);
        cr_assert(isinf(f[0].weight));
        sdc_prompt_fragments_free(f, n);
        double t = parse_and_tokenize(tok, texts[k], SDC_OK, NULL, NULL) + sdc_now() - t0;
        cr_assert_lt(t, 1.0, "took %.2f s", t);
    }
    free(s);
    free(closed);
    /* 1,000 unclosed brackets over 1,000 fragments: 10^6 multiplications */
    s = repeat("(a:", 1000, "", "");
    cr_assert_lt(parse_and_tokenize(tok, s, SDC_OK, NULL, NULL), 1.0);
    free(s);
    s = repeat("[", 1000, "a", "");
    cr_assert_lt(parse_and_tokenize(tok, s, SDC_OK, NULL, NULL), 1.0);
    free(s);
    sdc_tokenizer_free(tok);
}

Test(prompt, unbalanced_closing) {
    sdc_tokenizer *tok = load_tok();
    char *s = repeat(")", 1000, "a", "]]]]");
    sdc_prompt_fragment *f = NULL;
    int n = 0;
    cr_assert_eq(sdc_prompt_parse_attention(s, &f, &n), SDC_OK);
    cr_assert_eq(n, 1);   /* literal brackets, merged into one fragment */
    cr_assert_eq(strlen(f[0].text), 1005);
    cr_assert_eq(f[0].weight_f64, 1.0);
    sdc_prompt_fragments_free(f, n);
    cr_assert_lt(parse_and_tokenize(tok, s, SDC_OK, NULL, NULL), 1.0);
    free(s);
    s = repeat("BREAK ", 1000, "", "");
    int nc = 0;
    cr_assert_lt(parse_and_tokenize(tok, s, SDC_OK, NULL, &nc), 1.0);
    cr_assert_eq(nc, 1000);
    free(s);
    sdc_tokenizer_free(tok);
}

Test(prompt, invalid_utf8_is_an_error) {
    static const char *bad[] = {"\xff", "a (b:1.2) \xc3", "\xc0\xaf", "\xed\xa0\x80 x",
                                "(\xf4\x90\x80\x80)", "caf\xe9"};
    sdc_tokenizer *tok = load_tok();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse_and_tokenize(tok, bad[i], SDC_ERR_ARG, NULL, NULL);
        cr_assert(strstr(sdc_last_error(), "UTF-8"), "%s", sdc_last_error());
    }
    sdc_tokenizer_free(tok);
}
