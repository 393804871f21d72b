/* infotext.c - AUTOMATIC1111's infotext (the PNG "parameters" text):
 * sdc_infotext_format (image.h). Moved out of image.c unchanged. */
#include "image/image.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- infotext */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A1111's quote(): a value with ',', '\n' or ':' becomes
 * json.dumps(value, ensure_ascii=False); others are written as they are. */
static void sb_quoted(sbuf *b, const char *v) {
    if (!strpbrk(v, ",\n:")) {
        sb_puts(b, v);
        return;
    }
    sb_put(b, "\"", 1);
    for (const char *s = v; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (c < 0x20)
                sb_printf(b, "\\u%04x", c);
            else
                sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

void sdc_py_float_repr(double v, bool single, char *out, size_t n) {
    if (isnan(v)) {
        snprintf(out, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v < 0 ? "-inf" : "inf");
        return;
    }
    char sci[40];
    for (int prec = 1; prec <= (single ? 9 : 17); prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        if (single ? strtof(sci, NULL) == (float)v : strtod(sci, NULL) == v) break;
    }
    /* sci = [-]d[.ddd]e[+-]XX: collect the digits and the exponent */
    char digits[24];
    int nd = 0;
    const char *s = sci;
    bool neg = *s == '-';
    if (neg) s++;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < 17) digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    char *o = out, *lim = out + n - 1;
#define PUTC(ch) do { if (o < lim) *o++ = (ch); } while (0)
    if (neg) PUTC('-');
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            PUTC('0');
            PUTC('.');
            for (int i = -1; i > exp; i--) PUTC('0');
            for (int i = 0; i < nd; i++) PUTC(digits[i]);
        } else {
            for (int i = 0; i <= exp; i++) PUTC(i < nd ? digits[i] : '0');
            PUTC('.');
            if (nd > exp + 1)
                for (int i = exp + 1; i < nd; i++) PUTC(digits[i]);
            else
                PUTC('0');
        }
        *o = '\0';
    } else {
        PUTC(digits[0]);
        if (nd > 1) {
            PUTC('.');
            for (int i = 1; i < nd; i++) PUTC(digits[i]);
        }
        *o = '\0';
        size_t used = (size_t)(o - out);
        snprintf(o, n - used, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
    }
#undef PUTC
}

/* The CFG scale as the web UI's value prints in Python: an integral value
 * arrives as an int ("7"); otherwise its float repr, to float precision. */
static void format_cfg(float v, char *out, size_t n) {
    if (v == truncf(v) && fabsf(v) < 1e15f) {
        snprintf(out, n, "%lld", (long long)v);
        return;
    }
    sdc_py_float_repr(v, true, out, n);
}

/* Byte length of the Python whitespace character (str.isspace) starting at
 * s[0..n), 0 if none. */
static size_t ws_at(const unsigned char *s, size_t n) {
    if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0D) || s[0] == ' ' ||
                   (s[0] >= 0x1C && s[0] <= 0x1F)))
        return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n >= 3) {
        uint32_t cp = (uint32_t)(s[0] & 0x0F) << 12 |
                      (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 &&
            (s[2] & 0xC0) == 0x80 &&
            (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
             cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000))
            return 3;
    }
    return 0;
}

/* Python's str.strip() in place on UTF-8. */
static void py_strip(char *str) {
    unsigned char *s = (unsigned char *)str;
    size_t n = strlen(str), a = 0, l;
    while (a < n && (l = ws_at(s + a, n - a))) a += l;
    for (bool more = true; more && n > a;) {
        more = false;
        for (size_t k = 1; k <= 3 && k <= n - a; k++) {
            if (ws_at(s + n - k, k) == k) {
                n -= k;
                more = true;
                break;
            }
        }
    }
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

static bool set(const char *s) { return s && *s; }

char *sdc_infotext_format(const sdc_infotext *t) {
    if (!t) return NULL;
    sbuf b = {0};
    sb_puts(&b, t->prompt ? t->prompt : "");
    if (set(t->negative_prompt)) {
        sb_puts(&b, "\nNegative prompt: ");
        sb_puts(&b, t->negative_prompt);
    }
    sb_printf(&b, "\nSteps: %d", t->steps);
    if (set(t->sampler)) {
        sb_puts(&b, ", Sampler: ");
        sb_quoted(&b, t->sampler);
    }
    if (set(t->schedule_type)) {
        sb_puts(&b, ", Schedule type: ");
        sb_quoted(&b, t->schedule_type);
    }
    char cfg[48];
    format_cfg(t->cfg_scale, cfg, sizeof cfg);
    sb_printf(&b, ", CFG scale: %s, Seed: %llu, Size: %dx%d", cfg,
              (unsigned long long)t->seed, t->width, t->height);
    if (set(t->model_hash)) {
        sb_puts(&b, ", Model hash: ");
        sb_quoted(&b, t->model_hash);
    }
    if (set(t->model_name)) {
        sb_puts(&b, ", Model: ");
        sb_quoted(&b, t->model_name);
    }
    if (set(t->vae_hash)) { /* A1111 writes these right after the model */
        sb_puts(&b, ", VAE hash: ");
        sb_quoted(&b, t->vae_hash);
    }
    if (set(t->vae_name)) {
        sb_puts(&b, ", VAE: ");
        sb_quoted(&b, t->vae_name);
    }
    if (set(t->extra)) {
        sb_puts(&b, ", ");
        sb_puts(&b, t->extra);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    py_strip(b.p);
    return b.p;
}
