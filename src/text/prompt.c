/* prompt.c - AUTOMATIC1111's prompt emphasis parser and chunker (prompt.h).
 *
 * The parser works on code points, so that the three Unicode classes of
 * A1111's Python regular expressions can be matched as Python 3.11's `re`
 * matches them:
 *   \s  str.isspace(): the 29 code points in is_space() below;
 *   \d  category Nd (Python's decimal digits; float() accepts them all);
 *   \w  categories L* and N*, plus '_' (str.isalnum() or '_').
 * Categories come from utf8proc (Unicode 15.0); the code points it assigns
 * that Python 3.11's Unicode 14.0 does not are excluded (k_unicode15). */
#include "text/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/text_clean.h"

/* ---- character classes ------------------------------------------------- */

/* Letters and digits new in Unicode 15.0 (utf8proc) that Python 3.11's
 * unicodedata (14.0) does not know: not \w, not \d for Python. */
static const struct { uint32_t lo, hi; } k_unicode15[] = {
    {0x1123F, 0x11240}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33},
    {0x11F50, 0x11F59}, {0x1342F, 0x1342F}, {0x13441, 0x13446}, {0x1B132, 0x1B132},
    {0x1B155, 0x1B155}, {0x1D2C0, 0x1D2D3}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D},
    {0x1E4D0, 0x1E4EB}, {0x1E4F0, 0x1E4F9}, {0x2B739, 0x2B739}, {0x31350, 0x323AF},
};

static bool unicode15_only(uint32_t cp) {
    for (size_t i = 0; i < sizeof k_unicode15 / sizeof k_unicode15[0]; i++)
        if (cp >= k_unicode15[i].lo && cp <= k_unicode15[i].hi) return true;
    return false;
}

/* Python's str.isspace() (= `re`'s \s for str patterns). */
static bool is_space(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static bool is_digit(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND &&
           !unicode15_only(cp);
}

/* The value of a \d code point. Unicode keeps every decimal digit in runs
 * of ten (0..9) that start on a zero, so the offset into its run of
 * consecutive Nd code points, mod 10, is the value (checked against
 * unicodedata.decimal for all of them). */
static int digit_value(uint32_t cp) {
    if (cp < 0x80) return (int)(cp - '0');
    uint32_t k = 0;
    while (k < cp && is_digit(cp - k - 1)) k++;
    return (int)(k % 10);
}

bool sdc_text_py_is_word(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               (cp >= '0' && cp <= '9') || cp == '_';
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return !unicode15_only(cp);
    default:
        return false;
    }
}

static bool is_word(uint32_t cp) { return sdc_text_py_is_word(cp); }

/* ---- the fragment list --------------------------------------------------
 * Every fragment's text is appended to one code point pool when the
 * fragment is created, so fragments are consecutive slices of the pool and
 * merging neighbours only extends a slice. */

typedef struct frag {
    size_t off, len;   /* slice of the pool */
    double w;
} frag;

typedef struct parser {
    sdc_u32vec pool;
    frag *f;
    size_t n, cap;
    size_t *round, *square;   /* bracket stacks: fragment counts at '(' / '[' */
    size_t n_round, n_square, cap_round, cap_square;
} parser;

static sdc_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return SDC_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return sdc_fail(SDC_ERR_OOM, "prompt: out of memory (%zu entries)", c);
    *p = q;
    *cap = c;
    return SDC_OK;
}

static sdc_status add_frag(parser *ps, const uint32_t *text, size_t len, double w) {
    SDC_TRY(grow((void **)&ps->f, &ps->cap, ps->n + 1, sizeof *ps->f));
    frag fr = {ps->pool.n, len, w};
    SDC_TRY(sdc_u32_append(&ps->pool, text, len));
    ps->f[ps->n++] = fr;
    return SDC_OK;
}

static sdc_status push_pos(size_t **stack, size_t *n, size_t *cap, size_t pos) {
    SDC_TRY(grow((void **)stack, cap, *n + 1, sizeof **stack));
    (*stack)[(*n)++] = pos;
    return SDC_OK;
}

/* multiply_range: res[p][1] *= m for p from start to the end. */
static void multiply_range(parser *ps, size_t start, double m) {
    for (size_t p = start; p < ps->n; p++) ps->f[p].w *= m;
}

static const uint32_t k_break[5] = {'B', 'R', 'E', 'A', 'K'};

/* A BREAK keyword at t[k]: "BREAK" with \b on both sides (within t). */
static bool break_at(const uint32_t *t, size_t n, size_t k) {
    if (k + 5 > n || memcmp(t + k, k_break, sizeof k_break)) return false;
    if (k > 0 && is_word(t[k - 1])) return false;
    return k + 5 == n || !is_word(t[k + 5]);
}

/* The plain-text branch: re.split(r"\s*\bBREAK\b\s*", text), each part a
 * fragment of weight 1.0 with a ("BREAK", -1) fragment between parts. */
static sdc_status add_text(parser *ps, const uint32_t *t, size_t n) {
    size_t part = 0;   /* start of the current part (= end of the last match) */
    for (size_t k = 0; k < n; k++) {
        if (t[k] != 'B' || !break_at(t, n, k)) continue;
        size_t s = k, e = k + 5;
        while (s > part && is_space(t[s - 1])) s--;
        while (e < n && is_space(t[e])) e++;
        SDC_TRY(add_frag(ps, t + part, s - part, 1.0));
        SDC_TRY(add_frag(ps, k_break, 5, -1.0));
        part = e;
        k = e - 1;
    }
    return add_frag(ps, t + part, n - part, 1.0);
}

/* Python's float() of a [+-]?[.\d]+ match: at most one '.', at least one
 * digit, any Unicode decimal digits. Written as ASCII digits with a decimal
 * exponent ("1.25" -> "125e-2"), so that strtod's correct rounding gives
 * Python's value whatever the C locale's decimal point is. */
static sdc_status parse_weight(const uint32_t *v, size_t n, size_t at, double *out) {
    char *buf = malloc(n + 32);
    if (!buf) return sdc_fail(SDC_ERR_OOM, "prompt: out of memory");
    size_t b = 0, i = 0, dots = 0, digits = 0, frac = 0;
    if (n && (v[0] == '+' || v[0] == '-')) buf[b++] = (char)v[i++];
    for (; i < n; i++) {
        if (v[i] == '.') {
            dots++;
        } else {
            buf[b++] = (char)('0' + digit_value(v[i]));
            digits++;
            if (dots) frac++;
        }
    }
    if (dots > 1 || digits == 0) {
        free(buf);
        char shown[64];
        size_t k = 0;
        for (size_t j = 0; j < n && k + 5 < sizeof shown; j++)
            k += (size_t)sdc_text_utf8_char(v[j], shown + k);
        shown[k] = '\0';
        return sdc_fail(SDC_ERR_ARG, "prompt: the emphasis weight '%s%s' (character %zu) "
                        "is not a number (AUTOMATIC1111 fails on it too)",
                        shown, k + 5 >= sizeof shown ? "..." : "", at);
    }
    snprintf(buf + b, 32, "e-%zu", frac);
    *out = strtod(buf, NULL);
    free(buf);
    return SDC_OK;
}

/* The weight alternative :\s*([+-]?[.\d]+)\s*\) at v[i] (v[i] == ':').
 * Returns the length of the match (0: none) and the group's slice. */
static size_t match_weight(const uint32_t *v, size_t n, size_t i, size_t *g0, size_t *g1) {
    size_t j = i + 1;
    while (j < n && is_space(v[j])) j++;
    *g0 = j;
    if (j < n && (v[j] == '+' || v[j] == '-')) j++;
    size_t d = j;
    while (j < n && (v[j] == '.' || is_digit(v[j]))) j++;
    if (j == d) return 0;
    *g1 = j;
    while (j < n && is_space(v[j])) j++;
    if (j >= n || v[j] != ')') return 0;
    return j + 1 - i;
}

static bool special(uint32_t c) {
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

/* parse_prompt_attention on code points; leaves merged fragments in ps. */
static sdc_status parse(parser *ps, const uint32_t *v, size_t n) {
    const double round_mult = 1.1, square_mult = 1 / 1.1;
    size_t i = 0;
    while (i < n) {
        uint32_t c = v[i];
        if (c == '\\') {
            /* \( \) \[ \] \\ give the character; a lone '\' gives "" */
            bool esc = i + 1 < n && (v[i + 1] == '(' || v[i + 1] == ')' || v[i + 1] == '[' ||
                                     v[i + 1] == ']' || v[i + 1] == '\\');
            SDC_TRY(add_frag(ps, v + i + 1, esc ? 1 : 0, 1.0));
            i += esc ? 2 : 1;
        } else if (c == '(') {
            SDC_TRY(push_pos(&ps->round, &ps->n_round, &ps->cap_round, ps->n));
            i++;
        } else if (c == '[') {
            SDC_TRY(push_pos(&ps->square, &ps->n_square, &ps->cap_square, ps->n));
            i++;
        } else if (c == ':') {
            size_t g0 = 0, g1 = 0, len = match_weight(v, n, i, &g0, &g1);
            if (len && ps->n_round) {
                double w = 1.0;
                SDC_TRY(parse_weight(v + g0, g1 - g0, g0, &w));
                multiply_range(ps, ps->round[--ps->n_round], w);
            } else {
                /* unmatched weight: its whole text; else a lone ':' */
                SDC_TRY(add_frag(ps, v + i, len ? len : 1, 1.0));
            }
            i += len ? len : 1;
        } else if (c == ')' || c == ']') {
            if (c == ')' && ps->n_round)
                multiply_range(ps, ps->round[--ps->n_round], round_mult);
            else if (c == ']' && ps->n_square)
                multiply_range(ps, ps->square[--ps->n_square], square_mult);
            else
                SDC_TRY(add_frag(ps, v + i, 1, 1.0));
            i++;
        } else {
            size_t j = i;
            while (j < n && !special(v[j])) j++;
            SDC_TRY(add_text(ps, v + i, j - i));
            i = j;
        }
    }
    for (size_t k = 0; k < ps->n_round; k++) multiply_range(ps, ps->round[k], round_mult);
    for (size_t k = 0; k < ps->n_square; k++) multiply_range(ps, ps->square[k], square_mult);
    if (ps->n == 0) SDC_TRY(add_frag(ps, NULL, 0, 1.0));
    /* merge runs of identical weights (Python ==: NaN never, -0.0 == 0.0) */
    size_t m = 0;
    for (size_t k = 1; k < ps->n; k++) {
        if (ps->f[m].w == ps->f[k].w)
            ps->f[m].len += ps->f[k].len;   /* slices are consecutive */
        else
            ps->f[++m] = ps->f[k];
    }
    ps->n = m + 1;
    return SDC_OK;
}

/* A fragment's code points. The pool stays NULL while every fragment is
 * empty ("" or "\\"), and NULL + 0 is undefined in C. */
static const uint32_t *frag_text(const parser *ps, const frag *f) {
    static const uint32_t none[1] = {0};
    return ps->pool.v ? ps->pool.v + f->off : none;
}

static void parser_free(parser *ps) {
    sdc_u32_free(&ps->pool);
    free(ps->f);
    free(ps->round);
    free(ps->square);
    memset(ps, 0, sizeof *ps);
}

static sdc_status parse_utf8(const char *text, parser *ps) {
    memset(ps, 0, sizeof *ps);
    if (!text) return sdc_fail(SDC_ERR_ARG, "prompt: NULL text");
    sdc_u32vec cps = {0};
    sdc_status st = sdc_text_from_utf8(text, strlen(text), &cps);
    if (st != SDC_OK) {
        sdc_u32_free(&cps);
        return sdc_fail_context(st, "prompt");
    }
    st = parse(ps, cps.v, cps.n);
    sdc_u32_free(&cps);
    if (st != SDC_OK) parser_free(ps);
    return st;
}

/* ---- fragments out ------------------------------------------------------ */

void sdc_prompt_fragments_free(sdc_prompt_fragment *f, int n) {
    if (!f) return;
    for (int i = 0; i < n; i++) free(f[i].text);
    free(f);
}

static char *to_utf8(const uint32_t *v, size_t n) {
    char *s = malloc(n * 4 + 1);
    if (!s) return NULL;
    size_t b = 0;
    for (size_t i = 0; i < n; i++) b += (size_t)sdc_text_utf8_char(v[i], s + b);
    s[b] = '\0';
    return s;
}

sdc_status sdc_prompt_parse_attention(const char *text, sdc_prompt_fragment **out, int *n_out) {
    if (!out || !n_out) return sdc_fail(SDC_ERR_ARG, "prompt: NULL output");
    *out = NULL;
    *n_out = 0;
    parser ps;
    SDC_TRY(parse_utf8(text, &ps));
    if (ps.n > (size_t)1 << 30) {
        parser_free(&ps);
        return sdc_fail(SDC_ERR_ARG, "prompt: too many fragments");
    }
    sdc_prompt_fragment *f = calloc(ps.n, sizeof *f);
    sdc_status st = f ? SDC_OK : sdc_fail(SDC_ERR_OOM, "prompt: out of memory");
    for (size_t i = 0; st == SDC_OK && i < ps.n; i++) {
        f[i].text = to_utf8(frag_text(&ps, &ps.f[i]), ps.f[i].len);
        f[i].weight_f64 = ps.f[i].w;
        f[i].weight = (float)ps.f[i].w;
        if (!f[i].text) st = sdc_fail(SDC_ERR_OOM, "prompt: out of memory");
    }
    if (st == SDC_OK) {
        *out = f;
        *n_out = (int)ps.n;
    } else {
        sdc_prompt_fragments_free(f, (int)ps.n);
    }
    parser_free(&ps);
    return st;
}

/* ---- chunks (tokenize_line) -------------------------------------------- */

typedef struct chunker {
    sdc_prompt *p;
    size_t fix_cap;
    size_t cap;
    int bos, eos;     /* the tokenizer's (49406, 49407 in CLIP's vocabulary) */
    int ids[SDC_PROMPT_CHUNK_TOKENS];
    float w[SDC_PROMPT_CHUNK_TOKENS];
    int n;            /* tokens in the current chunk */
    int last_comma;   /* index of the chunk's last comma, -1: none */
} chunker;

/* next_chunk(): pad the current chunk with EOS to 75 tokens (weight 1.0),
 * wrap it in BOS ... EOS, append it, start an empty one. BOS and EOS are
 * the tokenizer's ids, not CLIP's constants: a vocab.json may put them
 * elsewhere, and every id in a chunk must be one of its vocabulary. */
static sdc_status next_chunk(chunker *c) {
    sdc_prompt *p = c->p;
    SDC_TRY(grow((void **)&p->chunks, &c->cap, (size_t)p->n_chunks + 1, sizeof *p->chunks));
    sdc_prompt_chunk *ch = &p->chunks[p->n_chunks++];
    ch->ids[0] = c->bos;
    ch->weights[0] = 1.0f;
    for (int k = 0; k < SDC_PROMPT_CHUNK_TOKENS; k++) {
        ch->ids[1 + k] = k < c->n ? c->ids[k] : c->eos;
        ch->weights[1 + k] = k < c->n ? c->w[k] : 1.0f;
    }
    ch->ids[SDC_CLIP_CTX - 1] = c->eos;
    ch->weights[SDC_CLIP_CTX - 1] = 1.0f;
    c->n = 0;
    c->last_comma = -1;
    return SDC_OK;
}

/* The loop body of tokenize_line before a token (or an embedding starting
 * with it) is added: the comma backtrack, a full chunk closed. */
static sdc_status before_token(chunker *c, int token, int comma) {
    if (token == comma) {
        c->last_comma = c->n;
    } else if (c->n == SDC_PROMPT_CHUNK_TOKENS && c->last_comma != -1 &&
               c->n - c->last_comma <= SDC_PROMPT_COMMA_BACKTRACK) {
        /* move what follows the last comma into the next chunk */
        int at = c->last_comma + 1, nr = c->n - at;
        int rid[SDC_PROMPT_CHUNK_TOKENS];
        float rw[SDC_PROMPT_CHUNK_TOKENS];
        memcpy(rid, c->ids + at, (size_t)nr * sizeof *rid);
        memcpy(rw, c->w + at, (size_t)nr * sizeof *rw);
        c->n = at;
        SDC_TRY(next_chunk(c));
        memcpy(c->ids, rid, (size_t)nr * sizeof *rid);
        memcpy(c->w, rw, (size_t)nr * sizeof *rw);
        c->n = nr;
    }
    if (c->n == SDC_PROMPT_CHUNK_TOKENS) SDC_TRY(next_chunk(c));
    return SDC_OK;
}

/* One token of a fragment with weight w. */
static sdc_status add_token(chunker *c, int token, int comma, float w) {
    SDC_TRY(before_token(c, token, comma));
    c->ids[c->n] = token;
    c->w[c->n] = w;
    c->n++;
    return SDC_OK;
}

/* Embedding e (n_vecs placeholder tokens, id 0) at the chunk's end, moved
 * to the next chunk when it does not fit (A1111's tokenize_line; the fix
 * stays with the chunk it was made in, as A1111's does when a comma
 * backtrack later moves its placeholders on). */
static sdc_status add_embedding(chunker *c, int e, int n_vecs, float w) {
    if (c->n + n_vecs > SDC_PROMPT_CHUNK_TOKENS) SDC_TRY(next_chunk(c));
    sdc_prompt *p = c->p;
    SDC_TRY(grow((void **)&p->fixes, &c->fix_cap, (size_t)p->n_fixes + 1, sizeof *p->fixes));
    p->fixes[p->n_fixes++] = (sdc_prompt_fix){.chunk = p->n_chunks, .offset = c->n, .emb = e};
    for (int k = 0; k < n_vecs; k++) {
        c->ids[c->n] = 0;
        c->w[c->n] = w;
        c->n++;
    }
    return SDC_OK;
}

/* The id of ",</w>" (267 in CLIP's vocabulary), -1 if absent. */
static int comma_id(const sdc_tokenizer *tok) {
    const char *s = sdc_tokenizer_piece(tok, 267);
    if (s && !strcmp(s, ",</w>")) return 267;
    for (int id = 0; id < sdc_tokenizer_vocab_size(tok); id++) {
        const char *p = sdc_tokenizer_piece(tok, id);
        if (p && !strcmp(p, ",</w>")) return id;
    }
    return -1;
}

/* sdc_tokenizer_encode into a growing buffer. */
static sdc_status encode(sdc_tokenizer *tok, const char *text, int **ids, size_t *cap,
                         int *n) {
    size_t want = strlen(text) * 2 + 16;
    if (want > *cap) SDC_TRY(grow((void **)ids, cap, want, sizeof **ids));
    int got = 0;
    SDC_TRY(sdc_tokenizer_encode(tok, text, *ids, (int)(*cap < 0x40000000 ? *cap : 0x40000000),
                                 &got));
    if ((size_t)got > *cap) {
        SDC_TRY(grow((void **)ids, cap, (size_t)got, sizeof **ids));
        SDC_TRY(sdc_tokenizer_encode(tok, text, *ids, got, &got));
    }
    *n = got;
    return SDC_OK;
}

void sdc_prompt_free(sdc_prompt *p) {
    if (!p) return;
    free(p->chunks);
    free(p->fixes);
    memset(p, 0, sizeof *p);
}

sdc_status sdc_prompt_tokenize(sdc_tokenizer *tok, const char *text, int pad_id, sdc_prompt *out) {
    return sdc_prompt_tokenize_ti(tok, text, pad_id, NULL, out);
}

sdc_status sdc_prompt_tokenize_ti(sdc_tokenizer *tok, const char *text, int pad_id, const sdc_embedding_db *db,
                                  sdc_prompt *out) {
    if (!out) return sdc_fail(SDC_ERR_ARG, "prompt: NULL output");
    memset(out, 0, sizeof *out);
    if (!tok) return sdc_fail(SDC_ERR_ARG, "prompt: NULL tokenizer");
    if (pad_id < 0 || pad_id >= sdc_tokenizer_vocab_size(tok))
        return sdc_fail(SDC_ERR_ARG, "prompt: pad id %d is not in the vocabulary", pad_id);
    int comma = comma_id(tok);
    parser ps;
    SDC_TRY(parse_utf8(text, &ps));

    chunker c = {.p = out, .last_comma = -1, .bos = sdc_tokenizer_bos(tok),
                 .eos = sdc_tokenizer_eos(tok)};
    int *ids = NULL;
    size_t ids_cap = 0;
    char *s = NULL;
    sdc_status st = SDC_OK;
    for (size_t i = 0; st == SDC_OK && i < ps.n; i++) {
        const frag *f = &ps.f[i];
        const uint32_t *t = frag_text(&ps, f);
        if (f->w == -1.0 && f->len == 5 && !memcmp(t, k_break, sizeof k_break)) {
            st = next_chunk(&c);
            continue;
        }
        free(s);
        s = to_utf8(t, f->len);
        if (!s) {
            st = sdc_fail(SDC_ERR_OOM, "prompt: out of memory");
            break;
        }
        int n = 0;
        st = encode(tok, s, &ids, &ids_cap, &n);
        for (int k = 0; st == SDC_OK && k < n;) {
            const int e = db ? sdc_embeddings_match(db, ids, n, k) : -1;
            if (e < 0) {
                st = add_token(&c, ids[k++], comma, (float)f->w);
                continue;
            }
            const sdc_embedding *em = &db->e[e];
            if (em->error) {
                st = sdc_fail(SDC_ERR_ARG, "%s", em->error);
                break;
            }
            st = before_token(&c, ids[k], comma);
            if (st == SDC_OK) st = add_embedding(&c, e, em->n_vecs, (float)f->w);
            k += em->n_ids;
        }
    }
    if (st == SDC_OK && (c.n > 0 || out->n_chunks == 0)) st = next_chunk(&c);
    free(s);
    free(ids);
    parser_free(&ps);
    if (st != SDC_OK) {
        sdc_prompt_free(out);
        return st;
    }
    for (int k = 0; k < out->n_chunks; k++) {
        sdc_prompt_chunk *ch = &out->chunks[k];
        /* process_tokens: SD 2.x pads after the chunk's first EOS */
        if (pad_id != c.eos) {
            int e = 0;
            while (ch->ids[e] != c.eos) e++;   /* ids[76] is EOS */
            for (int j = e + 1; j < SDC_CLIP_CTX; j++) ch->ids[j] = pad_id;
        }
        for (int j = 0; j < SDC_CLIP_CTX; j++)
            if (ch->weights[j] != 1.0f) out->weighted = true;
    }
    return SDC_OK;
}
