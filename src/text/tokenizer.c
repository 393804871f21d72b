/* tokenizer.c - CLIP byte-level BPE, id-exact with transformers' slow
 * CLIPTokenizer (4.46, with ftfy) as Stable Diffusion uses it.
 *
 * encode(text):
 *   1. split out added tokens, as PreTrainedTokenizer.tokenize does:
 *      "<|startoftext|>", "<|endoftext|>" and, for SD 2.x's pad token "!",
 *      the pad token itself (so "wow!!" ends in three "!" ids there);
 *   2. each other piece: ftfy.fix_text -> whitespace_clean -> lower
 *      (text_clean.c), then CLIP's pre-tokenizer pattern
 *        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|
 *        [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+          (IGNORECASE)
 *   3. each pre-token: UTF-8 bytes -> bytes_to_unicode symbols, "</w>" on
 *      the last, BPE merges by rank -> vocabulary ids.
 *
 * Symbols are vocabulary ids throughout BPE: every byte symbol and every
 * merge result is in the vocabulary, so merging id pairs is the same as
 * merging strings. */
#include "text/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>
#include <zlib.h>

#include "text/text_clean.h"

#define N_MERGES 48894 /* 49152 - 256 - 2: merges CLIP uses */

struct sdc_tokenizer {
    int n_vocab;
    char **pieces;      /* id -> UTF-8 piece (NULL for holes) */
    int32_t *vslots;    /* open addressing: piece -> id, -1 empty */
    uint32_t vmask;
    uint64_t *mkeys;    /* open addressing: (left << 32 | right) + 1, 0 empty */
    int32_t *mrank, *mout;
    uint32_t mmask;
    int n_merges;
    int byte_id[256], byte_id_w[256];
    int bos, eos, unk;
};

/* ---- small helpers ----------------------------------------------------- */

typedef struct { int *v; size_t n, cap; } ivec;

static sdc_status ivec_push(ivec *b, int x) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int *v = realloc(b->v, cap * sizeof *v);
        if (!v) return sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory for ids");
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
    return SDC_OK;
}

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 1024;
    while (c < n * 2) c *= 2;
    return c;
}

static int vocab_find(const sdc_tokenizer *t, const char *s, size_t n) {
    for (uint32_t h = hash_bytes(s, n) & t->vmask;; h = (h + 1) & t->vmask) {
        int32_t id = t->vslots[h];
        if (id < 0) return -1;
        const char *p = t->pieces[id];
        if (strlen(p) == n && !memcmp(p, s, n)) return id;
    }
}

/* CLIP's bytes_to_unicode(): byte b is shown as code point cps[b]; order[k]
 * is the byte behind vocabulary id k (printable bytes first). */
static void bytes_to_unicode(uint32_t cps[256], int order[256]) {
    int k = 0, extra = 0;
    bool printable[256] = {false};
    for (int b = 0; b < 256; b++) {
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                       (b >= 0xAE && b <= 0xFF);
        if (printable[b]) {
            cps[b] = (uint32_t)b;
            order[k++] = b;
        }
    }
    for (int b = 0; b < 256; b++) {
        if (printable[b]) continue;
        cps[b] = (uint32_t)(256 + extra++);
        order[k++] = b;
    }
}

void sdc_tokenizer_free(sdc_tokenizer *tok) {
    if (!tok) return;
    if (tok->pieces)
        for (int i = 0; i < tok->n_vocab; i++) free(tok->pieces[i]);
    free(tok->pieces);
    free(tok->vslots);
    free(tok->mkeys);
    free(tok->mrank);
    free(tok->mout);
    free(tok);
}

static sdc_status tok_new(int n_vocab, int n_merges, sdc_tokenizer **out) {
    sdc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
    t->n_vocab = n_vocab;
    t->vmask = pow2_at_least((size_t)n_vocab) - 1;
    t->mmask = pow2_at_least((size_t)n_merges) - 1;
    t->pieces = calloc((size_t)n_vocab, sizeof *t->pieces);
    t->vslots = malloc(((size_t)t->vmask + 1) * sizeof *t->vslots);
    t->mkeys = calloc((size_t)t->mmask + 1, sizeof *t->mkeys);
    t->mrank = malloc(((size_t)t->mmask + 1) * sizeof *t->mrank);
    t->mout = malloc(((size_t)t->mmask + 1) * sizeof *t->mout);
    if (!t->pieces || !t->vslots || !t->mkeys || !t->mrank || !t->mout) {
        sdc_tokenizer_free(t);
        return sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory for %d pieces",
                        n_vocab);
    }
    memset(t->vslots, 0xff, ((size_t)t->vmask + 1) * sizeof *t->vslots);
    *out = t;
    return SDC_OK;
}

/* Index pieces[] (all set) by content; a piece given twice is an error. */
static sdc_status tok_index(sdc_tokenizer *t, const char *file) {
    for (int id = 0; id < t->n_vocab; id++) {
        const char *p = t->pieces[id];
        if (!p) continue;
        size_t n = strlen(p);
        uint32_t h = hash_bytes(p, n) & t->vmask;
        while (t->vslots[h] >= 0) {
            if (!strcmp(t->pieces[t->vslots[h]], p))
                return sdc_fail(SDC_ERR_FORMAT, "%s: piece \"%s\" appears twice (ids %d "
                                "and %d)", file, p, t->vslots[h], id);
            h = (h + 1) & t->vmask;
        }
        t->vslots[h] = id;
    }
    uint32_t cps[256];
    int order[256];
    bytes_to_unicode(cps, order);
    for (int b = 0; b < 256; b++) {
        char s[16];
        int n = sdc_text_utf8_char(cps[b], s);
        t->byte_id[b] = vocab_find(t, s, (size_t)n);
        memcpy(s + n, "</w>", 4);
        t->byte_id_w[b] = vocab_find(t, s, (size_t)n + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0)
            return sdc_fail(SDC_ERR_FORMAT, "%s: the byte piece for 0x%02x (\"%.*s\" "
                            "and with </w>) is missing from the vocabulary",
                            file, b, n, s);
    }
    t->bos = vocab_find(t, "<|startoftext|>", 15);
    t->eos = vocab_find(t, "<|endoftext|>", 13);
    if (t->bos < 0 || t->eos < 0)
        return sdc_fail(SDC_ERR_FORMAT, "%s: <|startoftext|> or <|endoftext|> is "
                        "missing from the vocabulary", file);
    t->unk = t->eos;
    return SDC_OK;
}

/* Register merge `rank`: "left right" (a line of the merges file). */
static sdc_status tok_add_merge(sdc_tokenizer *t, const char *l, size_t ln,
                                const char *r, size_t rn, int rank,
                                const char *file, long line) {
    int a = vocab_find(t, l, ln), b = vocab_find(t, r, rn);
    char buf[2 * SDC_TOKENIZER_MAX_PIECE + 1];
    if (ln + rn >= sizeof buf)
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld: merge symbols are too long (%zu "
                        "bytes)", file, line, ln + rn);
    memcpy(buf, l, ln);
    memcpy(buf + ln, r, rn);
    int c = vocab_find(t, buf, ln + rn);
    if (a < 0 || b < 0 || c < 0)
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld: merge \"%.*s %.*s\": \"%.*s\" is "
                        "not in the vocabulary", file, line, (int)ln, l, (int)rn, r,
                        (int)(a < 0 ? ln : b < 0 ? rn : ln + rn),
                        a < 0 ? l : b < 0 ? r : buf);
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t h = hash_u64(key) & t->mmask;
    while (t->mkeys[h] && t->mkeys[h] != key) h = (h + 1) & t->mmask;
    if (!t->mkeys[h]) t->n_merges++;
    t->mkeys[h] = key; /* a repeated pair keeps its last rank, like dict() */
    t->mrank[h] = rank;
    t->mout[h] = c;
    return SDC_OK;
}

static bool merge_find(const sdc_tokenizer *t, int a, int b, int *rank, int *out) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t h = hash_u64(key) & t->mmask;; h = (h + 1) & t->mmask) {
        if (!t->mkeys[h]) return false;
        if (t->mkeys[h] == key) {
            *rank = t->mrank[h];
            *out = t->mout[h];
            return true;
        }
    }
}

/* ---- file reading ------------------------------------------------------ */

/* The whole file plus a NUL byte, at most SDC_TOKENIZER_MAX_FILE bytes. */
static sdc_status read_file(const char *path, unsigned char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return sdc_fail(SDC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    bool too_big = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) &&
                   sb.st_size > SDC_TOKENIZER_MAX_FILE;
    if (too_big) { /* before reading any of it; the loop below bounds pipes */
        fclose(f);
        return sdc_fail(SDC_ERR_FORMAT, "%s: the file is larger than %d MiB, more than "
                        "any tokenizer file (CLIP's are about 1 MiB)", path,
                        SDC_TOKENIZER_MAX_FILE >> 20);
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= SDC_TOKENIZER_MAX_FILE) {
            too_big = fgetc(f) != EOF;
            break;
        }
        unsigned char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool err = buf && ferror(f);
    fclose(f);
    if (!buf) return sdc_fail(SDC_ERR_OOM, "%s: out of memory reading the file", path);
    if (err || too_big) {
        free(buf);
        if (too_big)
            return sdc_fail(SDC_ERR_FORMAT, "%s: the file is larger than %d MiB, more than "
                            "any tokenizer file (CLIP's are about 1 MiB)", path,
                            SDC_TOKENIZER_MAX_FILE >> 20);
        return sdc_fail(SDC_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SDC_OK;
}

/* Whole-file gunzip; plain (non-gzip) data is returned as is. */
static sdc_status gunzip(const char *path, unsigned char *in, size_t n,
                         unsigned char **data, size_t *len) {
    if (n < 2 || in[0] != 0x1f || in[1] != 0x8b) {
        *data = in;
        *len = n;
        return SDC_OK;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(in);
        return sdc_fail(SDC_ERR_OOM, "%s: zlib inflateInit2 failed", path);
    }
    size_t cap = n * 4 + 1024, out_n = 0;
    if (cap > SDC_TOKENIZER_MAX_FILE) cap = SDC_TOKENIZER_MAX_FILE;
    unsigned char *out = malloc(cap + 1);
    int rc = Z_OK;
    z.next_in = in;
    z.avail_in = (uInt)n;
    while (out && rc == Z_OK) {
        if (out_n == cap) {
            if (cap >= SDC_TOKENIZER_MAX_FILE) {
                rc = Z_MEM_ERROR;
                break;
            }
            size_t nc = cap * 2 < SDC_TOKENIZER_MAX_FILE ? cap * 2 : SDC_TOKENIZER_MAX_FILE;
            unsigned char *nb = realloc(out, nc + 1);
            if (!nb) {
                free(out);
                out = NULL;
                break;
            }
            out = nb;
            cap = nc;
        }
        z.next_out = out + out_n;
        z.avail_out = (uInt)(cap - out_n);
        rc = inflate(&z, Z_NO_FLUSH);
        out_n = cap - z.avail_out;
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break; /* input ran out */
        if (rc == Z_BUF_ERROR) rc = Z_OK;
    }
    const char *msg = z.msg;
    inflateEnd(&z);
    free(in);
    if (!out) return sdc_fail(SDC_ERR_OOM, "%s: out of memory decompressing", path);
    if (rc != Z_STREAM_END) {
        free(out);
        if (rc == Z_MEM_ERROR)
            return sdc_fail(SDC_ERR_FORMAT, "%s: decompresses to more than %d MiB, more "
                            "than any tokenizer file (CLIP's is 3 MiB)", path,
                            SDC_TOKENIZER_MAX_FILE >> 20);
        if (rc == Z_BUF_ERROR || rc == Z_OK)
            return sdc_fail(SDC_ERR_FORMAT, "%s: gzip data is truncated (after %zu "
                            "decompressed bytes)", path, out_n);
        return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt gzip data (%s)", path,
                        msg ? msg : "zlib error");
    }
    out[out_n] = '\0';
    *data = out;
    *len = out_n;
    return SDC_OK;
}

/* Length of the strict UTF-8 sequence at s (n bytes left), 0 if invalid
 * (overlong, surrogate, above U+10FFFF, truncated, a NUL byte). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || n < len) return 0;
    uint32_t cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* Byte offset of the first invalid UTF-8 (or NUL) in s[0..n), n if none. */
static size_t utf8_bad_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(u + i, n - i);
        if (!l) return i;
        i += l;
    }
    return n;
}

static bool merge_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* One line of a merges file: exactly two whitespace-separated symbols of
 * at most SDC_TOKENIZER_MAX_PIECE bytes each, valid UTF-8; else a message
 * naming file and line. */
static sdc_status merge_line(const char *file, long line, const char *s, size_t n,
                             const char **a, size_t *an, const char **b, size_t *bn) {
    size_t bad = utf8_bad_at(s, n);
    if (bad < n)
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld: %s at byte %zu of the line (a merges "
                        "file is UTF-8 text)", file, line,
                        s[bad] ? "invalid UTF-8" : "a NUL byte", bad + 1);
    const char *f[2] = {NULL, NULL};
    size_t fl[2] = {0, 0};
    int k = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && merge_space(s[i])) i++;
        if (i == n) break;
        size_t st = i;
        while (i < n && !merge_space(s[i])) i++;
        if (k == 2) {
            k = 3;
            break;
        }
        f[k] = s + st;
        fl[k++] = i - st;
    }
    if (k != 2)
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld: expected a merge \"left right\" (two "
                        "symbols), got \"%.*s\"%s", file, line, (int)(n > 60 ? 60 : n), s,
                        n > 60 ? "..." : "");
    for (int i = 0; i < 2; i++)
        if (fl[i] > SDC_TOKENIZER_MAX_PIECE)
            return sdc_fail(SDC_ERR_FORMAT, "%s:%ld: a merge symbol of %zu bytes (at most "
                            "%d)", file, line, fl[i], SDC_TOKENIZER_MAX_PIECE);
    *a = f[0], *an = fl[0], *b = f[1], *bn = fl[1];
    return SDC_OK;
}

/* ---- loaders ----------------------------------------------------------- */

sdc_status sdc_tokenizer_load_bpe(const char *path, sdc_tokenizer **out) {
    if (!path || !out) return sdc_fail(SDC_ERR_ARG, "sdc_tokenizer_load_bpe: NULL argument");
    *out = NULL;
    unsigned char *raw = NULL, *text = NULL;
    size_t raw_n = 0, n = 0;
    SDC_TRY(read_file(path, &raw, &raw_n));
    SDC_TRY(gunzip(path, raw, raw_n, &text, &n));

    /* line 0 is a header; lines 1..N_MERGES are the merges CLIP uses */
    const char **ml = malloc(N_MERGES * sizeof *ml);
    size_t *mlen = malloc(N_MERGES * sizeof *mlen);
    if (!ml || !mlen) {
        free(ml);
        free(mlen);
        free(text);
        return sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
    }
    size_t pos = 0;
    long line = 0;
    int nm = 0;
    while (pos < n && nm < N_MERGES) {
        const char *s = (const char *)text + pos;
        const char *e = memchr(s, '\n', n - pos);
        size_t len = e ? (size_t)(e - s) : n - pos;
        if (line > 0) {
            ml[nm] = s;
            mlen[nm++] = len;
        }
        line++;
        pos += len + 1;
    }
    if (nm < N_MERGES) {
        free(ml);
        free(mlen);
        free(text);
        return sdc_fail(SDC_ERR_FORMAT, "%s: expected a header line and %d merge "
                        "lines, found %d merge lines", path, N_MERGES, nm);
    }

    /* pieces: 256 bytes, 256 bytes + </w>, one per merge, 2 specials */
    sdc_tokenizer *t = NULL;
    sdc_status st = tok_new(512 + N_MERGES + 2, N_MERGES, &t);
    uint32_t cps[256];
    int order[256];
    bytes_to_unicode(cps, order);
    for (int k = 0; k < 256 && st == SDC_OK; k++) {
        char s[16];
        int len = sdc_text_utf8_char(cps[order[k]], s);
        memcpy(s + len, "</w>", 5);
        t->pieces[k] = strndup(s, (size_t)len);
        t->pieces[256 + k] = strdup(s);
        if (!t->pieces[k] || !t->pieces[256 + k])
            st = sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
    }
    for (int k = 0; k < N_MERGES && st == SDC_OK; k++) {
        const char *a, *b;
        size_t an, bn;
        st = merge_line(path, k + 2, ml[k], mlen[k], &a, &an, &b, &bn);
        if (st != SDC_OK) break;
        char *p = malloc(an + bn + 1);
        if (!p) {
            st = sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
            break;
        }
        memcpy(p, a, an);
        memcpy(p + an, b, bn);
        p[an + bn] = '\0';
        t->pieces[512 + k] = p;
    }
    if (st == SDC_OK) {
        t->pieces[512 + N_MERGES] = strdup("<|startoftext|>");
        t->pieces[512 + N_MERGES + 1] = strdup("<|endoftext|>");
        if (!t->pieces[512 + N_MERGES] || !t->pieces[512 + N_MERGES + 1])
            st = sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
    }
    if (st == SDC_OK) st = tok_index(t, path);
    for (int k = 0; k < N_MERGES && st == SDC_OK; k++) {
        const char *a, *b;
        size_t an, bn;
        st = merge_line(path, k + 2, ml[k], mlen[k], &a, &an, &b, &bn);
        if (st == SDC_OK) st = tok_add_merge(t, a, an, b, bn, k, path, k + 2);
    }
    free(ml);
    free(mlen);
    free(text);
    if (st != SDC_OK) {
        sdc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SDC_OK;
}

/* 1-based line and column of byte off of text. */
static void text_pos(const unsigned char *text, size_t off, long *line, long *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') (*line)++, *col = 1;
        else (*col)++;
    }
}

static const char *json_type(const cJSON *it) {
    return cJSON_IsString(it) ? "a string" : cJSON_IsNumber(it) ? "a number"
         : cJSON_IsBool(it) ? "a boolean" : cJSON_IsNull(it) ? "null"
         : cJSON_IsArray(it) ? "an array" : cJSON_IsObject(it) ? "an object" : "nothing";
}

/* vocab.json (NUL-terminated text of n bytes) -> t->pieces: a JSON object
 * of n_vocab piece -> id entries, ids exactly 0 .. n_vocab - 1. */
static sdc_status parse_vocab(const char *file, const unsigned char *text, size_t n,
                              sdc_tokenizer **out) {
    long line, col;
    const unsigned char *nul = memchr(text, 0, n);
    if (nul) {
        text_pos(text, (size_t)(nul - text), &line, &col);
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld:%ld: a NUL byte (a JSON file has none)",
                        file, line, col);
    }
    size_t bad = utf8_bad_at((const char *)text, n);
    if (bad < n) {
        text_pos(text, bad, &line, &col);
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld:%ld: invalid UTF-8 (a JSON file is UTF-8 "
                        "text)", file, line, col);
    }
    /* cJSON decodes \u0000 into a NUL that would cut the piece short */
    for (size_t i = 0; i + 1 < n; i++) {
        if (text[i] != '\\') continue;
        if (text[i + 1] == 'u' && i + 6 <= n && !memcmp(text + i + 2, "0000", 4)) {
            text_pos(text, i, &line, &col);
            return sdc_fail(SDC_ERR_FORMAT, "%s:%ld:%ld: \\u0000 in a string (a piece "
                            "cannot hold a NUL character)", file, line, col);
        }
        i++; /* skip the escaped character */
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)text, n + 1, &end, true);
    if (!root) {
        size_t off = end && end >= (const char *)text && end <= (const char *)text + n
                         ? (size_t)(end - (const char *)text) : 0;
        text_pos(text, off, &line, &col);
        return sdc_fail(SDC_ERR_FORMAT, "%s:%ld:%ld: invalid JSON%s (expected one object "
                        "mapping pieces to ids)", file, line, col,
                        off >= n ? " (the file ends early)" : "");
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sdc_fail(SDC_ERR_FORMAT, "%s: expected a JSON object mapping pieces to ids, "
                        "found %s", file, json_type(root));
    }
    long count = 0;
    for (cJSON *it = root->child; it; it = it->next) count++;
    sdc_status st = SDC_OK;
    if (count == 0)
        st = sdc_fail(SDC_ERR_FORMAT, "%s: the vocabulary is empty", file);
    else if (count > SDC_TOKENIZER_MAX_VOCAB)
        st = sdc_fail(SDC_ERR_FORMAT, "%s: %ld entries; a vocabulary has at most %d (CLIP's "
                      "has 49408)", file, count, SDC_TOKENIZER_MAX_VOCAB);
    for (cJSON *it = root->child; it && st == SDC_OK; it = it->next) {
        const char *k = it->string ? it->string : "";
        size_t kn = strlen(k);
        double d = it->valuedouble;
        if (kn == 0)
            st = sdc_fail(SDC_ERR_FORMAT, "%s: an entry with an empty piece (\"\")", file);
        else if (kn > SDC_TOKENIZER_MAX_PIECE)
            st = sdc_fail(SDC_ERR_FORMAT, "%s: piece \"%.40s...\" is %zu bytes (at most %d)",
                          file, k, kn, SDC_TOKENIZER_MAX_PIECE);
        else if (!cJSON_IsNumber(it))
            st = sdc_fail(SDC_ERR_FORMAT, "%s: piece \"%s\": expected an integer id, found "
                          "%s", file, k, json_type(it));
        else if (!(d >= 0 && d < (double)count) || d != (double)(long)d)
            st = sdc_fail(SDC_ERR_FORMAT, "%s: piece \"%s\": id %.17g is not an integer "
                          "from 0 to %ld (the vocabulary has %ld entries, so its ids are "
                          "0 to %ld)", file, k, d, count - 1, count, count - 1);
    }
    sdc_tokenizer *t = NULL;
    if (st == SDC_OK) st = tok_new((int)count, N_MERGES, &t);
    for (cJSON *it = root->child; it && st == SDC_OK; it = it->next) {
        int id = (int)it->valuedouble;
        if (t->pieces[id]) {
            st = sdc_fail(SDC_ERR_FORMAT, "%s: id %d is given to both \"%s\" and \"%s\" "
                          "(ids must be unique: each of 0 to %ld once)", file, id,
                          t->pieces[id], it->string, count - 1);
            break;
        }
        t->pieces[id] = strdup(it->string);
        if (!t->pieces[id]) st = sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
    }
    cJSON_Delete(root);
    if (st == SDC_OK) st = tok_index(t, file);
    if (st != SDC_OK) {
        sdc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SDC_OK;
}

static bool ascii_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* merges.txt as transformers reads it: read().strip().split("\n")[1:48895],
 * each line "left right". */
static sdc_status parse_merges(sdc_tokenizer *t, const char *file, const unsigned char *text,
                               size_t n) {
    size_t pos = 0;
    long line = 1;
    while (pos < n && ascii_space(text[pos])) line += text[pos++] == '\n';
    while (n > pos && ascii_space(text[n - 1])) n--;
    int k = 0;
    for (long idx = 0; pos < n && k < N_MERGES; idx++, line++) {
        const unsigned char *nl = memchr(text + pos, '\n', n - pos);
        size_t e = nl ? (size_t)(nl - text) : n;
        if (idx > 0) { /* line 0 after the strip: the "#version" header */
            const char *a, *b;
            size_t an, bn;
            SDC_TRY(merge_line(file, line, (const char *)text + pos, e - pos, &a, &an, &b,
                               &bn));
            SDC_TRY(tok_add_merge(t, a, an, b, bn, k++, file, line));
        }
        pos = e + 1;
    }
    if (k < N_MERGES)
        sdc_notice("%s: only %d merges (CLIP has %d); ids will differ from Stable "
                   "Diffusion's", file, k, N_MERGES);
    return SDC_OK;
}

sdc_status sdc_tokenizer_load_hf(const char *vocab_json, const char *merges_txt,
                                 sdc_tokenizer **out) {
    if (!vocab_json || !merges_txt || !out)
        return sdc_fail(SDC_ERR_ARG, "sdc_tokenizer_load_hf: NULL argument");
    *out = NULL;
    unsigned char *text = NULL;
    size_t n = 0;
    SDC_TRY(read_file(vocab_json, &text, &n));
    sdc_tokenizer *t = NULL;
    sdc_status st = parse_vocab(vocab_json, text, n, &t);
    free(text);
    text = NULL;
    if (st == SDC_OK) st = read_file(merges_txt, &text, &n);
    if (st == SDC_OK) st = parse_merges(t, merges_txt, text, n);
    free(text);
    if (st != SDC_OK) {
        sdc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SDC_OK;
}

int sdc_tokenizer_vocab_size(const sdc_tokenizer *tok) { return tok ? tok->n_vocab : 0; }

const char *sdc_tokenizer_piece(const sdc_tokenizer *tok, int id) {
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    return tok->pieces[id];
}

int sdc_tokenizer_bos(const sdc_tokenizer *tok) { return tok ? tok->bos : -1; }
int sdc_tokenizer_eos(const sdc_tokenizer *tok) { return tok ? tok->eos : -1; }

/* ---- pre-tokenizer classes --------------------------------------------- */

/* Character classes of CLIP's pre-tokenizer pattern
 *   ...|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+   (IGNORECASE)
 * CH_NONE: matched by none of the branches (U+0345 under IGNORECASE), so
 * the pattern skips it like whitespace. */
enum { CH_SPACE, CH_LETTER, CH_NUMBER, CH_OTHER, CH_NONE };

/* Letters and numbers added in Unicode 16.0: the regex module knows them,
 * utf8proc 2.8 (Unicode 15.0) does not. */
static const struct { uint32_t lo, hi; char cls; } k_regex_new[] = {
    {0x1C89, 0x1C8A, 'L'}, {0xA7CB, 0xA7CD, 'L'}, {0xA7DA, 0xA7DC, 'L'},
    {0x105C0, 0x105F3, 'L'}, {0x10D40, 0x10D49, 'N'}, {0x10D4A, 0x10D65, 'L'},
    {0x10D6F, 0x10D85, 'L'}, {0x10EC2, 0x10EC4, 'L'}, {0x11380, 0x11389, 'L'},
    {0x1138B, 0x1138B, 'L'}, {0x1138E, 0x1138E, 'L'}, {0x11390, 0x113B5, 'L'},
    {0x113B7, 0x113B7, 'L'}, {0x113D1, 0x113D1, 'L'}, {0x113D3, 0x113D3, 'L'},
    {0x116D0, 0x116E3, 'N'}, {0x11BC0, 0x11BE0, 'L'}, {0x11BF0, 0x11BF9, 'N'},
    {0x13460, 0x143FA, 'L'}, {0x16100, 0x1611D, 'L'}, {0x16130, 0x16139, 'N'},
    {0x16D40, 0x16D6C, 'L'}, {0x16D70, 0x16D79, 'N'}, {0x18CFF, 0x18CFF, 'L'},
    {0x1CCF0, 0x1CCF9, 'N'}, {0x1E5D0, 0x1E5ED, 'L'}, {0x1E5F0, 0x1E5F0, 'L'},
    {0x1E5F1, 0x1E5FA, 'N'}, {0x2EBF0, 0x2EE5D, 'L'},
};

static int char_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CH_LETTER;
        if (cp >= '0' && cp <= '9') return CH_NUMBER;
        if (sdc_text_is_space(cp)) return CH_SPACE;
        return CH_OTHER;
    }
    if (sdc_text_is_space(cp)) return CH_SPACE;
    if (cp == 0x345) return CH_NONE; /* case-folds to a letter, is Mn */
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CH_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CH_NUMBER;
    case UTF8PROC_CATEGORY_CN:
        for (size_t i = 0; i < sizeof k_regex_new / sizeof k_regex_new[0]; i++)
            if (cp >= k_regex_new[i].lo && cp <= k_regex_new[i].hi)
                return k_regex_new[i].cls == 'L' ? CH_LETTER : CH_NUMBER;
        return CH_OTHER;
    default:
        return CH_OTHER;
    }
}

/* ---- encoding ---------------------------------------------------------- */

/* BPE of one pre-token's UTF-8 bytes; appends ids. CLIP's loop, as its
 * Python runs it: find the adjacent pair of lowest rank, merge every
 * occurrence of it left to right, repeat. Quadratic in the pre-token's
 * length, so only for short ones (and as the reference for tests). */
static sdc_status bpe_naive(const sdc_tokenizer *t, const unsigned char *b, size_t n,
                            int *sym, ivec *ids) {
    for (size_t i = 0; i < n; i++)
        sym[i] = i + 1 < n ? t->byte_id[b[i]] : t->byte_id_w[b[i]];
    while (n > 1) {
        int best = -1, first = 0, second = 0, merged = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int r, o;
            if (merge_find(t, sym[i], sym[i + 1], &r, &o) && (best < 0 || r < best)) {
                best = r;
                first = sym[i];
                second = sym[i + 1];
                merged = o;
            }
        }
        if (best < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (sym[i] == first && i + 1 < n && sym[i + 1] == second) {
                sym[w++] = merged;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        n = w;
    }
    for (size_t i = 0; i < n; i++) SDC_TRY(ivec_push(ids, sym[i]));
    return SDC_OK;
}

/* A mergeable adjacent pair: symbols a, b at node pos (b at next[pos]). */
typedef struct bpe_cand {
    int rank, pos, a, b;
} bpe_cand;

static bool cand_less(const bpe_cand *x, const bpe_cand *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i && cand_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const sdc_tokenizer *t, bpe_cand *h, size_t *nh, const int *sym,
                      int pos, int next) {
    int r, o;
    if (merge_find(t, sym[pos], sym[next], &r, &o))
        heap_push(h, nh, (bpe_cand){r, pos, sym[pos], sym[next]});
}

#define BPE_NAIVE_MAX 32 /* pre-tokens up to this many bytes take the naive loop */

/* The same result in O(n log n): the symbols are a linked list, the
 * mergeable pairs a heap ordered by (rank, position). All pairs of the
 * lowest rank are taken in one pass, left to right, each checked against
 * the list as it is by then (so overlapping ones, "a a a", merge as the
 * loop above merges them); the pairs the pass creates enter the heap after
 * it, as the loop above only sees them in its next round. A pair of a rank
 * never reappears: a merge only makes a longer, different symbol. */
static sdc_status bpe(const sdc_tokenizer *t, const unsigned char *b, size_t n,
                      int *sym, ivec *ids) {
    if (n <= BPE_NAIVE_MAX) return bpe_naive(t, b, n, sym, ids);
    if (n > (size_t)INT32_MAX / 4)
        return sdc_fail(SDC_ERR_ARG, "tokenizer: a word of %zu bytes is too long", n);
    int *nxt = malloc(n * 3 * sizeof *nxt);
    bpe_cand *h = malloc(n * 3 * sizeof *h);
    if (!nxt || !h) {
        free(nxt);
        free(h);
        return sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory for a %zu-byte word", n);
    }
    int *prv = nxt + n, *merged = nxt + 2 * n;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = i + 1 < n ? t->byte_id[b[i]] : t->byte_id_w[b[i]];
        nxt[i] = (int)i + 1;
        prv[i] = (int)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, h, &nh, sym, (int)i, (int)i + 1);
    while (nh) {
        int rank = h[0].rank, out = -1;
        size_t nm = 0;
        while (nh && h[0].rank == rank) {
            bpe_cand c = heap_pop(h, &nh);
            int q = nxt[c.pos];
            if (sym[c.pos] != c.a || q >= (int)n || sym[q] != c.b) continue; /* stale */
            if (out < 0) {
                int r;
                merge_find(t, c.a, c.b, &r, &out);
            }
            sym[c.pos] = out;
            sym[q] = -1;
            nxt[c.pos] = nxt[q];
            if (nxt[q] < (int)n) prv[nxt[q]] = c.pos;
            merged[nm++] = c.pos;
        }
        for (size_t k = 0; k < nm; k++) {
            int p = merged[k];
            if (prv[p] >= 0) push_pair(t, h, &nh, sym, prv[p], p);
            if (nxt[p] < (int)n) push_pair(t, h, &nh, sym, p, nxt[p]);
        }
    }
    sdc_status st = SDC_OK;
    for (int i = 0; i < (int)n && st == SDC_OK; i = nxt[i]) st = ivec_push(ids, sym[i]);
    free(nxt);
    free(h);
    return st;
}

/* c matches lower-case ASCII pattern character p under the regex module's
 * IGNORECASE (only 's' has a non-ASCII variant, U+017F). */
static bool ci_eq(uint32_t c, char p) {
    if (c == (uint32_t)p) return true;
    if (p >= 'a' && p <= 'z' && c == (uint32_t)(p - 32)) return true;
    return p == 's' && c == 0x17F;
}

static size_t ci_match(const uint32_t *v, size_t n, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (k >= n || !ci_eq(v[k], lit[k])) return 0;
    return k;
}

static bool exact(const uint32_t *v, size_t n, const char *lit) {
    size_t k = 0;
    for (; k < n && lit[k]; k++)
        if (v[k] != (uint32_t)lit[k]) return false;
    return k == n && !lit[k];
}

/* _tokenize() of one piece of text between added tokens. */
static sdc_status tokenize_text(const sdc_tokenizer *t, const uint32_t *in, size_t n,
                                bool naive, ivec *ids) {
    sdc_u32vec fixed = {0}, low = {0};
    char *bytes = NULL;
    int *sym = NULL;
    sdc_status st = sdc_text_ftfy(in, n, &fixed);
    if (st == SDC_OK) st = sdc_text_clean_lower(fixed.v, fixed.n, &low);
    if (st == SDC_OK && low.n) {
        bytes = malloc(low.n * 4);
        sym = malloc(low.n * 4 * sizeof *sym);
        if (!bytes || !sym) st = sdc_fail(SDC_ERR_OOM, "tokenizer: out of memory");
    }
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    const uint32_t *v = low.v;
    size_t i = 0;
    while (st == SDC_OK && i < low.n) {
        size_t len = 0;
        int special = -1;
        if (v[i] == '<') {
            if ((len = ci_match(v + i, low.n - i, "<|startoftext|>")))
                special = exact(v + i, len, "<|startoftext|>") ? t->bos : -1;
            else if ((len = ci_match(v + i, low.n - i, "<|endoftext|>")))
                special = exact(v + i, len, "<|endoftext|>") ? t->eos : -1;
        } else if (v[i] == '\'') {
            for (size_t c = 0; c < 7 && !len; c++)
                len = ci_match(v + i, low.n - i, contractions[c]);
        }
        if (!len) {
            int cls = char_class(v[i]);
            if (cls == CH_SPACE || cls == CH_NONE) {
                i++;
                continue;
            }
            len = 1;
            if (cls != CH_NUMBER)
                while (i + len < low.n && char_class(v[i + len]) == cls) len++;
        }
        if (special >= 0) {
            st = ivec_push(ids, special);
        } else {
            size_t nb = 0;
            for (size_t k = 0; k < len; k++)
                nb += (size_t)sdc_text_utf8_char(v[i + k], bytes + nb);
            st = naive ? bpe_naive(t, (const unsigned char *)bytes, nb, sym, ids)
                       : bpe(t, (const unsigned char *)bytes, nb, sym, ids);
        }
        i += len;
    }
    free(bytes);
    free(sym);
    sdc_u32_free(&fixed);
    sdc_u32_free(&low);
    return st;
}

/* tokenize(): split on added tokens (longest first), then _tokenize() the
 * text between them. extra/extra_id: one more added token (SD 2.x's pad). */
static sdc_status encode_all(const sdc_tokenizer *t, const char *text,
                             const char *extra, int extra_id, bool naive, ivec *ids) {
    if (!t || !text) return sdc_fail(SDC_ERR_ARG, "tokenizer: NULL tokenizer or text");
    sdc_u32vec cps = {0}, lit[3] = {{0}};
    const char *lits[3] = {"<|startoftext|>", "<|endoftext|>", extra};
    int lit_id[3] = {t->bos, t->eos, extra_id};
    int n_lit = extra ? 3 : 2;
    sdc_status st = sdc_text_from_utf8(text, strlen(text), &cps);
    for (int k = 0; k < n_lit && st == SDC_OK; k++)
        st = sdc_text_from_utf8(lits[k], strlen(lits[k]), &lit[k]);
    size_t start = 0, i = 0;
    while (st == SDC_OK && i < cps.n) {
        int hit = -1;
        for (int k = 0; k < n_lit; k++) {
            if (lit[k].n == 0 || i + lit[k].n > cps.n) continue;
            if (memcmp(cps.v + i, lit[k].v, lit[k].n * sizeof *cps.v)) continue;
            if (hit < 0 || lit[k].n > lit[hit].n) hit = k;
        }
        if (hit < 0) {
            i++;
            continue;
        }
        if (i > start) st = tokenize_text(t, cps.v + start, i - start, naive, ids);
        if (st == SDC_OK) st = ivec_push(ids, lit_id[hit]);
        i += lit[hit].n;
        start = i;
    }
    if (st == SDC_OK && cps.n > start)
        st = tokenize_text(t, cps.v + start, cps.n - start, naive, ids);
    sdc_u32_free(&cps);
    for (int k = 0; k < 3; k++) sdc_u32_free(&lit[k]);
    return st;
}

static sdc_status encode(sdc_tokenizer *tok, const char *text, int *ids, int max_ids,
                         int *n_out, bool naive) {
    if (max_ids < 0 || (max_ids > 0 && !ids))
        return sdc_fail(SDC_ERR_ARG, "sdc_tokenizer_encode: bad output buffer "
                        "(max_ids %d)", max_ids);
    ivec v = {0};
    sdc_status st = encode_all(tok, text, NULL, -1, naive, &v);
    if (st == SDC_OK) {
        size_t m = v.n < (size_t)max_ids ? v.n : (size_t)max_ids;
        if (m) memcpy(ids, v.v, m * sizeof *ids);
        if (n_out) *n_out = (int)v.n;
    }
    free(v.v);
    return st;
}

sdc_status sdc_tokenizer_encode(sdc_tokenizer *tok, const char *text,
                                int *ids, int max_ids, int *n_out) {
    return encode(tok, text, ids, max_ids, n_out, false);
}

sdc_status sdc_tokenizer_encode_reference(sdc_tokenizer *tok, const char *text,
                                          int *ids, int max_ids, int *n_out) {
    return encode(tok, text, ids, max_ids, n_out, true);
}

sdc_status sdc_tokenizer_encode_padded(sdc_tokenizer *tok, const char *text,
                                       int pad_id, int *ids, int n_ids,
                                       int *n_dropped) {
    if (!tok || !ids || n_ids < 2)
        return sdc_fail(SDC_ERR_ARG, "sdc_tokenizer_encode_padded: need a tokenizer "
                        "and room for at least BOS and EOS (n_ids %d)", n_ids);
    const char *pad = sdc_tokenizer_piece(tok, pad_id);
    if (!pad)
        return sdc_fail(SDC_ERR_ARG, "sdc_tokenizer_encode_padded: pad id %d is not "
                        "in the vocabulary", pad_id);
    /* a pad token other than BOS/EOS is one more added token (SD 2.x's "!") */
    bool extra = pad_id != tok->bos && pad_id != tok->eos;
    ivec v = {0};
    sdc_status st = encode_all(tok, text, extra ? pad : NULL, pad_id, false, &v);
    if (st == SDC_OK) {
        size_t room = (size_t)n_ids - 2, m = v.n < room ? v.n : room;
        ids[0] = tok->bos;
        if (m) memcpy(ids + 1, v.v, m * sizeof *ids);
        ids[1 + m] = tok->eos;
        for (size_t k = m + 2; k < (size_t)n_ids; k++) ids[k] = pad_id;
        if (n_dropped) *n_dropped = (int)(v.n - m);
    }
    free(v.v);
    return st;
}
