/* extra_networks.c - <lora:NAME:W> tags (extra_networks.h). */
#include "text/extra_networks.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/prompt.h"

/* The code point at s (UTF-8), its length in *len; invalid bytes are one
 * byte each and no word character. */
static uint32_t cp_at(const unsigned char *s, int *len) {
    if (s[0] < 0x80) return *len = 1, s[0];
    int n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    uint32_t cp = n == 2 ? s[0] & 0x1Fu : n == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) n = 0;
        if (!n) break;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (!n) return *len = 1, 0xFFFFFFFFu;
    *len = n;
    return cp;
}

/* A tag <(\w+):([^>]+)> at s: its length, the type's length in *tl and the
 * args' start and length; 0 if none starts here. */
static size_t match_tag(const char *s, size_t *tl, const char **args, size_t *al) {
    if (*s != '<') return 0;
    const unsigned char *p = (const unsigned char *)s + 1;
    int len;
    while (*p && sdc_text_py_is_word(cp_at(p, &len))) p += len;
    *tl = (size_t)(p - (const unsigned char *)s) - 1;
    if (!*tl || *p != ':') return 0;
    const char *a = (const char *)p + 1, *e = strchr(a, '>');
    if (!e || e == a) return 0;
    *args = a;
    *al = (size_t)(e - a);
    return (size_t)(e + 1 - s);
}

bool sdc_py_float_parse(const char *s, double *out) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (!n || n > 64) return false;
    char b[72];
    memcpy(b, s, n);
    b[n] = '\0';
    const char *p = b + (b[0] == '+' || b[0] == '-');
    static const char *const words[] = {"inf", "infinity", "nan"};
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(p, words[i])) {
            *out = i < 2 ? (b[0] == '-' ? -INFINITY : INFINITY) : NAN;
            return true;
        }
    /* digits [. digits] | . digits, then [eE][+-]digits: what strtod reads
     * of these characters is exactly float()'s decimal syntax */
    int digits = 0;
    while (isdigit((unsigned char)*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) p++, digits++;
    }
    if (!digits) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return false;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p) return false;
    char *end;
    *out = strtod(b, &end);
    return *end == '\0';
}

void sdc_lora_refs_free(sdc_lora_ref *refs, int n) {
    for (int i = 0; refs && i < n; i++) free(refs[i].name);
    free(refs);
}

static sdc_status multiplier(const char *tag, const char *what, const char *v, double *out) {
    if (!sdc_py_float_parse(v, out))
        return sdc_fail(SDC_ERR_ARG, "prompt tag %s: %s multiplier \"%s\" is not a number", tag, what, v);
    if (!isfinite(*out))
        return sdc_fail(SDC_ERR_ARG, "prompt tag %s: %s multiplier %s is not finite", tag, what, v);
    return SDC_OK;
}

/* One <lora:args> tag (`tag` is its whole text, for messages). */
static sdc_status lora_args(const char *tag, char *args, sdc_lora_ref *r) {
    char *pos[8];
    int np = 0;
    const char *te = NULL, *unet = NULL;
    for (char *it = args, *next; it; it = next) {
        next = strchr(it, ':');
        if (next) *next++ = '\0';
        char *eq = strchr(it, '=');
        if (eq && !strchr(eq + 1, '=')) { /* named: Python's item.split('=', 2) has 2 parts */
            *eq = '\0';
            if (!strcmp(it, "te")) te = eq + 1;
            else if (!strcmp(it, "unet")) unet = eq + 1;
            else if (!strcmp(it, "dyn"))
                return sdc_fail(SDC_ERR_ARG, "prompt tag %s: dyn= (a dynamic LoRA dimension) is not supported", tag);
            else
                return sdc_fail(SDC_ERR_ARG, "prompt tag %s: unknown argument %s= (expected te= or unet=)", tag, it);
            continue;
        }
        if (np == 8) return sdc_fail(SDC_ERR_ARG, "prompt tag %s: too many ':' fields", tag);
        pos[np++] = it;
    }
    if (np == 0 || !*pos[0]) return sdc_fail(SDC_ERR_ARG, "prompt tag %s: no LoRA name", tag);
    if (np > 3)
        return sdc_fail(SDC_ERR_ARG, "prompt tag %s: expected <lora:NAME>, <lora:NAME:W> or <lora:NAME:TE_W:UNET_W>%s",
                        tag, np == 4 ? " (a fourth field, a dynamic dimension, is not supported)" : "");
    double w_te = 1.0, w_unet;
    if (np > 1) SDC_TRY(multiplier(tag, "text encoder", pos[1], &w_te));
    if (te) SDC_TRY(multiplier(tag, "te=", te, &w_te));
    w_unet = w_te;
    if (np > 2) SDC_TRY(multiplier(tag, "U-Net", pos[2], &w_unet));
    if (unet) SDC_TRY(multiplier(tag, "unet=", unet, &w_unet));
    r->name = strdup(pos[0]);
    if (!r->name) return sdc_fail(SDC_ERR_OOM, "out of memory");
    r->te = w_te;
    r->unet = w_unet;
    return SDC_OK;
}

sdc_status sdc_extra_networks_parse(const char *prompt, char **stripped, sdc_lora_ref **refs, int *n) {
    *stripped = NULL;
    *refs = NULL;
    *n = 0;
    if (!prompt) prompt = "";
    const size_t len = strlen(prompt);
    char *out = malloc(len + 1);
    if (!out) return sdc_fail(SDC_ERR_OOM, "out of memory");
    size_t o = 0;
    sdc_lora_ref *r = NULL;
    int nr = 0, cap = 0;
    sdc_status st = SDC_OK;
    for (size_t i = 0; i < len && st == SDC_OK;) {
        size_t tl = 0, al = 0;
        const char *args = NULL;
        size_t m = match_tag(prompt + i, &tl, &args, &al);
        if (!m) {
            out[o++] = prompt[i++];
            continue;
        }
        char tag[160];
        snprintf(tag, sizeof tag, "%.*s%s", (int)(m < 120 ? m : 120), prompt + i, m < 120 ? "" : "...");
        const char *type = prompt + i + 1;
        const bool lora = (tl == 4 && !memcmp(type, "lora", 4)) || (tl == 4 && !memcmp(type, "lyco", 4));
        if (!lora) {
            st = sdc_fail(SDC_ERR_ARG, "prompt tag %s: sdc applies <lora:NAME:W> tags only, not <%.*s:...>", tag,
                          (int)tl, type);
            break;
        }
        if (nr == cap) {
            cap = cap ? 2 * cap : 4;
            sdc_lora_ref *nrp = realloc(r, (size_t)cap * sizeof *nrp);
            if (!nrp) {
                st = sdc_fail(SDC_ERR_OOM, "out of memory");
                break;
            }
            r = nrp;
        }
        char *a = strndup(args, al);
        if (!a) {
            st = sdc_fail(SDC_ERR_OOM, "out of memory");
            break;
        }
        memset(&r[nr], 0, sizeof r[nr]);
        st = lora_args(tag, a, &r[nr]);
        free(a);
        if (st == SDC_OK) nr++;
        i += m;
    }
    if (st != SDC_OK) {
        free(out);
        sdc_lora_refs_free(r, nr);
        return st;
    }
    out[o] = '\0';
    *stripped = out;
    *refs = r;
    *n = nr;
    return SDC_OK;
}

sdc_status sdc_lora_ref_parse_arg(const char *arg, sdc_lora_ref *out) {
    memset(out, 0, sizeof *out);
    if (!arg || !*arg) return sdc_fail(SDC_ERR_ARG, "--lora: expected FILE[:W] or FILE:TE_W:UNET_W");
    char *s = strdup(arg);
    if (!s) return sdc_fail(SDC_ERR_OOM, "out of memory");
    double w[2];
    int nw = 0;
    for (char *c; nw < 2 && (c = strrchr(s, ':')) != NULL && sdc_py_float_parse(c + 1, &w[nw]);) {
        if (!isfinite(w[nw])) {
            free(s);
            return sdc_fail(SDC_ERR_ARG, "--lora %s: the multiplier is not finite", arg);
        }
        nw++;
        *c = '\0';
    }
    if (!*s) {
        free(s);
        return sdc_fail(SDC_ERR_ARG, "--lora %s: no file", arg);
    }
    out->name = s;
    out->te = nw == 2 ? w[1] : nw == 1 ? w[0] : 1.0;
    out->unet = nw ? w[0] : 1.0;
    return SDC_OK;
}
