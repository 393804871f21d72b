/* batch.c - prompt lists to jobs (plain text, AUTOMATIC1111 "prompts from
 * file" lines, JSON Lines), shards, output names, the manifest, the PNG
 * integrity check. See batch.h. */
#include "cli/batch.h"
#include "text/extra_networks.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "common.h"
#include "sampling/scheduler.h"

#define MAX_EXPAND 10000 /* batch_size x n_iter of one line */

/* ------------------------------------------------------------- samplers */

static const struct {
    const char *name;
    sdc_sampler_kind kind;
} SAMPLER_NAMES[] = {
    {"ddim", SDC_SAMPLER_DDIM},          {"ddpm", SDC_SAMPLER_DDPM},
    {"euler", SDC_SAMPLER_EULER},        {"k_euler", SDC_SAMPLER_EULER},
    {"euler a", SDC_SAMPLER_EULER_A},    {"euler_a", SDC_SAMPLER_EULER_A},
    {"k_euler_a", SDC_SAMPLER_EULER_A},  {"k_euler_ancestral", SDC_SAMPLER_EULER_A},
    {"dpm++ 2m", SDC_SAMPLER_DPMPP_2M},  {"dpmpp_2m", SDC_SAMPLER_DPMPP_2M},
    {"k_dpmpp_2m", SDC_SAMPLER_DPMPP_2M},
};

sdc_status sdc_batch_sampler(const char *name, const char **sampler, int *karras) {
    char low[64];
    size_t n = name ? strlen(name) : 0;
    if (!name || n >= sizeof low) goto unknown;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    int k = 0;
    if (n > 7 && !strcmp(low + n - 7, " karras")) low[n - 7] = '\0', k = 1;
    else if (n > 7 && !strcmp(low + n - 7, "_karras")) low[n - 7] = '\0', k = 1;
    else if (!strcmp(low, "k_dpmpp_2m_ka")) strcpy(low, "dpmpp_2m"), k = 1;
    for (size_t i = 0; i < sizeof SAMPLER_NAMES / sizeof SAMPLER_NAMES[0]; i++) {
        if (!strcmp(low, SAMPLER_NAMES[i].name)) {
            *sampler = sdc_sampler_name(SAMPLER_NAMES[i].kind);
            *karras = k;
            return SDC_OK;
        }
    }
unknown:
    return sdc_fail(SDC_ERR_ARG,
                    "unknown sampler \"%s\" (choose one of: DDIM, DDPM, Euler, Euler a, DPM++ 2M, "
                    "DPM++ 2M Karras, Euler Karras, or sdc's ddim, ddpm, euler, euler_a, dpmpp_2m)",
                    name ? name : "(null)");
}

/* ---------------------------------------------------------------- shlex */

sdc_status sdc_batch_shlex(const char *line, char ***argv_out, int *argc_out) {
    size_t len = strlen(line);
    /* at most len / 2 + 1 tokens; all token text fits in len + tokens bytes */
    size_t max_tok = len / 2 + 2;
    char **argv = malloc(max_tok * sizeof(char *) + len + max_tok + 1);
    if (!argv) return sdc_fail(SDC_ERR_OOM, "out of memory splitting a line");
    char *buf = (char *)(argv + max_tok), *w = buf;
    int argc = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        char *tok = w;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
            if (*p == '\'') {
                const char *q = strchr(p + 1, '\'');
                if (!q) goto no_closing;
                memcpy(w, p + 1, (size_t)(q - p - 1));
                w += q - p - 1;
                p = q + 1;
            } else if (*p == '"') {
                p++;
                while (*p != '"') {
                    if (!*p) goto no_closing;
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                    else if (*p == '\\' && !p[1]) goto no_closing;
                    *w++ = *p++;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    free(argv);
                    return sdc_fail(SDC_ERR_FORMAT, "a backslash at the end of the line escapes nothing");
                }
                *w++ = p[1];
                p += 2;
            } else {
                *w++ = *p++;
            }
        }
        *w++ = '\0';
        argv[argc++] = tok;
    }
    *argv_out = argv;
    *argc_out = argc;
    return SDC_OK;
no_closing:
    free(argv);
    return sdc_fail(SDC_ERR_FORMAT, "unterminated quote");
}

/* ---------------------------------------------------------------- lines */

/* What one line says; unset fields take the defaults. */
typedef struct line_opts {
    const char *prompt, *negative; /* point into the line's storage */
    bool has_prompt, has_negative, has_seed, has_steps, has_cfg, has_w, has_h, has_strength;
    const char *init, *mask;       /* image to image: as the line writes them */
    double strength;
    unsigned long long seed;
    int steps, width, height, batch_size, n_iter;
    float cfg;
    const char *sampler; /* NULL: the default */
    int karras;
} line_opts;

static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    while (isspace((unsigned char)*s)) s++;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno) return false;
    while (isspace((unsigned char)*end)) end++;
    if (*end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static bool parse_seed(const char *s, unsigned long long *out, bool *given) {
    char *end;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '-') {
        int v;
        if (!parse_int(s, -1, -1, &v)) return false;
        *given = false; /* -1: A1111's "random", here base seed + index */
        return true;
    }
    if (!isdigit((unsigned char)*s) && *s != '+') return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno) return false;
    *out = v;
    *given = true;
    return true;
}

static bool parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* One key = value; false with a reason in err. */
static bool set_key(line_opts *o, const char *key, const char *val, char *err, size_t cap) {
    if (!strcmp(key, "prompt")) o->prompt = val, o->has_prompt = true;
    else if (!strcmp(key, "negative_prompt")) o->negative = val, o->has_negative = true;
    else if (!strcmp(key, "seed")) {
        if (!parse_seed(val, &o->seed, &o->has_seed))
            return snprintf(err, cap, "seed \"%s\": expected -1 (none) or 0 to 18446744073709551615", val), false;
    } else if (!strcmp(key, "steps")) {
        if (!parse_int(val, -1000000000, 1000000000, &o->steps))
            return snprintf(err, cap, "steps \"%s\": expected a whole number", val), false;
        o->has_steps = true;
    } else if (!strcmp(key, "width") || !strcmp(key, "height")) {
        int *dst = key[0] == 'w' ? &o->width : &o->height;
        if (!parse_int(val, -1000000000, 1000000000, dst))
            return snprintf(err, cap, "%s \"%s\": expected a whole number", key, val), false;
        *(key[0] == 'w' ? &o->has_w : &o->has_h) = true;
    } else if (!strcmp(key, "cfg_scale")) {
        if (!parse_float(val, &o->cfg)) return snprintf(err, cap, "cfg_scale \"%s\": expected a number", val), false;
        o->has_cfg = true;
    } else if (!strcmp(key, "init_image") || !strcmp(key, "mask")) {
        if (!*val) return snprintf(err, cap, "%s: an empty path", key), false;
        *(key[0] == 'i' ? &o->init : &o->mask) = val;
    } else if (!strcmp(key, "denoising_strength")) {
        char *end;
        errno = 0;
        o->strength = strtod(val, &end);
        if (end == val || *end || errno || !(o->strength > 0.0) || o->strength > 1.0)
            return snprintf(err, cap, "denoising_strength \"%s\": expected a number more than 0 and at most 1", val),
                   false;
        o->has_strength = true;
    } else if (!strcmp(key, "sampler_name")) {
        if (sdc_batch_sampler(val, &o->sampler, &o->karras) != SDC_OK)
            return snprintf(err, cap, "%s", sdc_last_error()), false;
    } else if (!strcmp(key, "batch_size") || !strcmp(key, "n_iter")) {
        if (!parse_int(val, 1, MAX_EXPAND, key[0] == 'b' ? &o->batch_size : &o->n_iter))
            return snprintf(err, cap, "%s \"%s\": expected a whole number from 1 to %d", key, val, MAX_EXPAND),
                   false;
    } else if (!strcmp(key, "outpath_samples") || !strcmp(key, "outpath_grids") ||
               !strcmp(key, "prompt_for_display") || !strcmp(key, "do_not_save_samples") ||
               !strcmp(key, "do_not_save_grid")) {
        /* where and whether A1111 saves: sdc writes every job to OUTDIR */
    } else if (!strcmp(key, "restore_faces") || !strcmp(key, "tiling")) {
        if (!strcmp(val, "true")) return snprintf(err, cap, "%s is not supported by sdc", key), false;
    } else if (!strcmp(key, "styles") || !strcmp(key, "subseed") || !strcmp(key, "subseed_strength") ||
               !strcmp(key, "seed_resize_from_h") || !strcmp(key, "seed_resize_from_w") ||
               !strcmp(key, "sampler_index")) {
        return snprintf(err, cap, "%s is not supported by sdc", key), false;
    } else {
        return snprintf(err, cap, "unknown key \"%s\"", key), false;
    }
    return true;
}

/* AUTOMATIC1111's cmdargs(): --prompt and --negative_prompt take every
 * following word up to the next "--" word, joined by spaces; other options
 * take exactly one word. The joined prompts and the other values are
 * written into `store` (the words' own memory is freed on return). */
static bool parse_a1111(const char *line, line_opts *o, char **store, char *err, size_t cap) {
    char **argv;
    int argc;
    if (sdc_batch_shlex(line, &argv, &argc) != SDC_OK) return snprintf(err, cap, "%s", sdc_last_error()), false;
    *store = malloc(strlen(line) + 2);
    if (!*store) return free(argv), snprintf(err, cap, "out of memory"), false;
    char *w = *store;
    bool ok = true;
    for (int pos = 0; pos < argc && ok;) {
        const char *a = argv[pos];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, cap, "expected an option starting with \"--\", got \"%s\"", a);
            ok = false;
        } else if (pos + 1 >= argc) {
            snprintf(err, cap, "%s: missing value", a);
            ok = false;
        } else if (!strcmp(a, "--prompt") || !strcmp(a, "--negative_prompt")) {
            char *start = w;
            w += sprintf(w, "%s", argv[++pos]);
            for (pos++; pos < argc && strncmp(argv[pos], "--", 2) != 0; pos++) w += sprintf(w, " %s", argv[pos]);
            w++;
            ok = set_key(o, a + 2, start, err, cap);
        } else { /* copied too: a path (init_image, mask) is kept past argv */
            char *start = w;
            w += sprintf(w, "%s", argv[pos + 1]) + 1;
            ok = set_key(o, a + 2, start, err, cap);
            pos += 2;
        }
    }
    free(argv);
    return ok;
}

/* A JSON object with the same keys; numbers and booleans become text for
 * set_key (whole numbers exactly), prompts must be strings. */
static bool parse_json(const char *line, line_opts *o, cJSON **root, char *err, size_t cap) {
    const char *end = NULL;
    *root = cJSON_ParseWithOpts(line, &end, true);
    if (!*root) {
        snprintf(err, cap, "bad JSON at column %d", end ? (int)(end - line) + 1 : 1);
        return false;
    }
    if (!cJSON_IsObject(*root)) return snprintf(err, cap, "bad JSON: expected an object"), false;
    for (cJSON *it = (*root)->child; it; it = it->next) {
        char num[64];
        const char *val;
        bool is_prompt = !strcmp(it->string, "prompt") || !strcmp(it->string, "negative_prompt");
        if (cJSON_IsString(it)) {
            val = it->valuestring;
        } else if (is_prompt) {
            return snprintf(err, cap, "%s: expected a string", it->string), false;
        } else if (cJSON_IsBool(it)) {
            val = cJSON_IsTrue(it) ? "true" : "false";
        } else if (cJSON_IsNumber(it)) {
            double v = it->valuedouble;
            if (v == floor(v) && fabs(v) < 9.007199254740992e15) snprintf(num, sizeof num, "%.0f", v);
            else snprintf(num, sizeof num, "%.17g", v);
            val = num;
        } else {
            return snprintf(err, cap, "%s: expected a string, a number or a boolean", it->string), false;
        }
        if (!set_key(o, it->string, val, err, cap)) return false;
    }
    return true;
}

static bool valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xC2) || (n == 3 && *p > 0xF4)) return false;
        unsigned cp = n ? *p & (0x3F >> n) : *p;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        p += n + 1;
    }
    return true;
}

typedef struct grow {
    sdc_batch_list *l;
    int cap;
} grow;

static sdc_batch_job *push_job(grow *g, int line) {
    sdc_batch_list *l = g->l;
    if (l->n == g->cap) {
        int nc = g->cap ? g->cap * 2 : 64;
        sdc_batch_job *nj = realloc(l->jobs, (size_t)nc * sizeof *nj);
        if (!nj) return NULL;
        l->jobs = nj, g->cap = nc;
    }
    sdc_batch_job *j = &l->jobs[l->n];
    memset(j, 0, sizeof *j);
    j->index = l->n++;
    j->line = line;
    return j;
}

/* path as a line writes it, relative to the folder of the list `source`
 * (absolute paths as they are); malloc'd */
static char *beside(const char *source, const char *path) {
    const char *slash = strrchr(source, '/');
    if (path[0] == '/' || !slash) return strdup(path);
    size_t n = (size_t)(slash - source) + 1 + strlen(path) + 1;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%.*s/%s", (int)(slash - source), source, path);
    return out;
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* Parse one stripped, non-empty line into jobs. false only for OOM. */
static bool add_line(grow *g, const char *line, int lineno, const char *source, const sdc_batch_defaults *d) {
    line_opts o;
    memset(&o, 0, sizeof o);
    o.batch_size = o.n_iter = 1;
    o.karras = -1;
    char err[512] = "", *store = NULL;
    cJSON *root = NULL;
    bool ok;
    if (!valid_utf8(line)) ok = false, snprintf(err, sizeof err, "not valid UTF-8");
    else if (line[0] == '{') ok = parse_json(line, &o, &root, err, sizeof err);
    else if (line[0] == '-' && line[1] == '-') ok = parse_a1111(line, &o, &store, err, sizeof err);
    else ok = true, o.prompt = line, o.has_prompt = true;
    if (ok && !o.has_prompt) ok = false, snprintf(err, sizeof err, "no prompt");

    sdc_gen_params gen = d->gen;
    gen.prompt = o.prompt;
    if (o.has_negative) gen.negative_prompt = o.negative;
    if (o.has_steps) gen.steps = o.steps;
    if (o.has_w) gen.width = o.width;
    if (o.has_h) gen.height = o.height;
    if (o.has_cfg) gen.cfg_scale = o.cfg;
    if (o.sampler) {
        sdc_sampler_kind kind;
        gen.sampler = o.sampler;
        gen.karras = o.karras == 1 ||
                     (d->gen.karras && sdc_sampler_parse(o.sampler, &kind) == SDC_OK && sdc_sampler_supports_karras(kind));
    }
    gen.on_step = NULL, gen.user = NULL;
    if (o.has_strength) gen.strength = o.strength;
    const char *init = o.init ? o.init : o.mask ? NULL : d->init_image, *mask = o.init || o.mask ? o.mask : d->mask;
    if (ok && mask && !init) ok = false, snprintf(err, sizeof err, "a mask without an init_image");
    if (ok && o.has_strength && !init)
        ok = false, snprintf(err, sizeof err, "denoising_strength without an init_image");
    if (ok && init && sdc_sampler_first_step(gen.steps, gen.strength, gen.a1111_steps) < 0)
        ok = false, snprintf(err, sizeof err, "denoising_strength %g of %d steps runs no step", gen.strength,
                             gen.steps);
    if (ok && sdc_check_gen_params(NULL, &gen) != SDC_OK) ok = false, snprintf(err, sizeof err, "%s", sdc_last_error());

    bool mem = true;
    int count = ok ? o.batch_size * o.n_iter : 1;
    if (count > MAX_EXPAND) {
        ok = false, count = 1;
        snprintf(err, sizeof err, "batch_size x n_iter = %d: at most %d", o.batch_size * o.n_iter, MAX_EXPAND);
    } else if (ok && g->l->n + count > SDC_BATCH_MAX_JOBS) {
        /* a short line can ask for 10000 jobs: bound what a list costs */
        ok = false, count = 1;
        snprintf(err, sizeof err, "the list would have more than %d jobs with this line's %d", SDC_BATCH_MAX_JOBS,
                 o.batch_size * o.n_iter);
    }
    for (int i = 0; i < count && mem; i++) {
        sdc_batch_job *j = push_job(g, lineno);
        if (!j) {
            mem = false;
            break;
        }
        if (!ok) {
            size_t n = strlen(source) + strlen(err) + 32;
            j->error = malloc(n);
            if (!j->error) mem = false;
            else snprintf(j->error, n, "%s:%d: %s", source, lineno, err);
            j->gen = d->gen;
            j->gen.prompt = j->gen.negative_prompt = NULL;
            j->gen.seed = d->base_seed + (unsigned long long)j->index;
            j->gen.prompt = dup_or_null(line); /* for the manifest */
            if (!j->gen.prompt) mem = false;
            break;
        }
        j->gen = gen;
        j->seed_given = o.has_seed;
        j->gen.seed = o.has_seed ? o.seed + (unsigned long long)i : d->base_seed + (unsigned long long)j->index;
        j->gen.prompt = dup_or_null(gen.prompt);
        j->gen.negative_prompt = dup_or_null(gen.negative_prompt);
        if (!j->gen.prompt || (gen.negative_prompt && !j->gen.negative_prompt)) mem = false;
        /* the line's paths are relative to the list's folder; the defaults are as given */
        j->init_image = o.init ? beside(source, init) : dup_or_null(init);
        j->mask = o.mask ? beside(source, mask) : dup_or_null(mask);
        if ((init && !j->init_image) || (mask && !j->mask)) mem = false;
    }
    cJSON_Delete(root);
    free(store);
    return mem;
}

sdc_status sdc_batch_parse(const char *text, size_t len, const char *source, const sdc_batch_defaults *d,
                           sdc_batch_list *out) {
    memset(out, 0, sizeof *out);
    grow g = {out, 0};
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3; /* UTF-8 BOM */
    char *buf = NULL;
    size_t cap = 0;
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *s = text + pos;
        pos += n + 1;
        lineno++;
        while (n && isspace((unsigned char)*s)) s++, n--;
        while (n && isspace((unsigned char)s[n - 1])) n--;
        if (!n || *s == '#') continue;
        if (n + 1 > cap) {
            free(buf);
            cap = n + 1;
            if (!(buf = malloc(cap))) goto oom;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (strlen(buf) != n) {
            sdc_batch_job *j = push_job(&g, lineno); /* a NUL byte in the line */
            if (!j) goto oom;
            j->gen = d->gen;
            j->gen.negative_prompt = NULL;
            j->gen.seed = d->base_seed + (unsigned long long)j->index;
            size_t m = strlen(source) + 64;
            j->error = malloc(m);
            j->gen.prompt = strdup("");
            if (!j->error || !j->gen.prompt) goto oom;
            snprintf(j->error, m, "%s:%d: a NUL byte in the line", source, lineno);
            continue;
        }
        if (!add_line(&g, buf, lineno, source, d)) goto oom;
    }
    free(buf);
    return SDC_OK;
oom:
    free(buf);
    sdc_batch_list_free(out);
    return sdc_fail(SDC_ERR_OOM, "out of memory reading %s", source);
}

sdc_status sdc_batch_parse_file(const char *path, const sdc_batch_defaults *d, sdc_batch_list *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return sdc_fail(SDC_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    bool too_big = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > SDC_BATCH_MAX_FILE;
    if (too_big) { /* before reading any of it; the loop below bounds pipes */
        fclose(f);
        return sdc_fail(SDC_ERR_FORMAT, "%s: larger than %d MiB; a prompt list is at most that", path,
                        SDC_BATCH_MAX_FILE >> 20);
    }
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    for (;;) {
        if (!text) {
            fclose(f);
            return sdc_fail(SDC_ERR_OOM, "out of memory reading %s", path);
        }
        n += fread(text + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= SDC_BATCH_MAX_FILE) {
            too_big = fgetc(f) != EOF;
            break;
        }
        char *t = realloc(text, cap * 2);
        if (!t) free(text);
        text = t, cap *= 2;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || too_big) {
        free(text);
        if (too_big)
            return sdc_fail(SDC_ERR_FORMAT, "%s: larger than %d MiB; a prompt list is at most that", path,
                            SDC_BATCH_MAX_FILE >> 20);
        return sdc_fail(SDC_ERR_IO, "%s: read error", path);
    }
    sdc_status st = sdc_batch_parse(text, n, path, d, out);
    free(text);
    return st;
}

void sdc_batch_list_free(sdc_batch_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) {
        free((char *)l->jobs[i].gen.prompt);
        free((char *)l->jobs[i].gen.negative_prompt);
        free(l->jobs[i].error);
        free(l->jobs[i].init_image);
        free(l->jobs[i].mask);
    }
    free(l->jobs);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------- shards, names */

sdc_status sdc_batch_parse_shard(const char *s, int *k, int *n) {
    const char *slash = s ? strchr(s, '/') : NULL;
    char ks[32];
    if (slash && (size_t)(slash - s) < sizeof ks) {
        memcpy(ks, s, (size_t)(slash - s));
        ks[slash - s] = '\0';
        if (parse_int(ks, 1, 1000000, k) && parse_int(slash + 1, 1, 1000000, n) && *k <= *n) return SDC_OK;
    }
    return sdc_fail(SDC_ERR_ARG, "--shard %s: expected K/N with 1 <= K <= N (e.g. 2/4)", s ? s : "(null)");
}

void sdc_batch_slug(const char *prompt, char out[41]) {
    size_t n = 0;
    bool dash = false;
    for (const unsigned char *p = (const unsigned char *)(prompt ? prompt : ""); *p && n < 40; p++) {
        if (isalnum(*p) && *p < 0x80) {
            if (dash && n) out[n++] = '-';
            if (n < 40) out[n++] = (char)tolower(*p);
            dash = false;
        } else {
            dash = true;
        }
    }
    while (n && out[n - 1] == '-') n--;
    out[n] = '\0';
}

void sdc_batch_filename(const sdc_batch_job *j, char *out, size_t cap) {
    char slug[41];
    sdc_batch_slug(j->gen.prompt, slug);
    snprintf(out, cap, "%05d-%llu%s%s.png", j->index, j->gen.seed, slug[0] ? "-" : "", slug);
}

/* The same <lora:...> tags (names and multipliers, in order) in both prompts. */
static bool same_loras(const char *pa, const char *pb) {
    char *sa = NULL, *sb = NULL;
    sdc_lora_ref *ra = NULL, *rb = NULL;
    int na = 0, nb = 0;
    bool same = sdc_extra_networks_parse(pa, &sa, &ra, &na) == SDC_OK &&
                sdc_extra_networks_parse(pb, &sb, &rb, &nb) == SDC_OK && na == nb;
    for (int i = 0; same && i < na; i++)
        same = !strcmp(ra[i].name, rb[i].name) && ra[i].te == rb[i].te && ra[i].unet == rb[i].unet;
    free(sa), free(sb);
    sdc_lora_refs_free(ra, na);
    sdc_lora_refs_free(rb, nb);
    return same;
}

bool sdc_batch_same_settings(const sdc_gen_params *a, const sdc_gen_params *b) {
    const char *sa = a->sampler ? a->sampler : "ddim", *sb = b->sampler ? b->sampler : "ddim";
    bool same_spacing = (!a->spacing && !b->spacing) || (a->spacing && b->spacing && !strcmp(a->spacing, b->spacing));
    /* image to image: the same strength (the steps that run), and never mixed with text to image */
    bool same_init = !a->init_rgb == !b->init_rgb &&
                     (!a->init_rgb || (a->strength == b->strength && a->a1111_steps == b->a1111_steps));
    bool same_files = a->n_loras == b->n_loras;
    for (int i = 0; same_files && i < a->n_loras; i++)
        same_files = !strcmp(a->loras[i].path, b->loras[i].path) && a->loras[i].te_weight == b->loras[i].te_weight &&
                     a->loras[i].unet_weight == b->loras[i].unet_weight;
    return a->width == b->width && a->height == b->height && a->steps == b->steps && !strcmp(sa, sb) &&
           a->karras == b->karras && same_spacing && a->eta == b->eta && same_init && same_files &&
           same_loras(a->prompt, b->prompt);
}

/* ------------------------------------------------------------ PNG check */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool png_check(FILE *f) {
    unsigned char hdr[8], *data = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    uint64_t left = (uint64_t)sb.st_size; /* bytes after the signature, below */
    if (left < 8 || fread(hdr, 1, 8, f) != 8 || memcmp(hdr, "\x89PNG\r\n\x1a\n", 8)) return false;
    left -= 8;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return false;
    unsigned char sink[1 << 14];
    uint64_t expect = 0, got = 0;
    bool ok = false, first = true, ended = false;
    for (;;) {
        unsigned char ch[8];
        if (left < 12 || fread(ch, 1, 8, f) != 8) break;
        uint32_t len = be32(ch);
        /* no allocation for a chunk the file cannot hold */
        if (len > (1u << 30) || len > left - 12) break;
        left -= 12 + (uint64_t)len;
        unsigned char *d = realloc(data, len + 4 + 1);
        if (!d) break;
        data = d;
        memcpy(data, ch + 4, 4);
        unsigned char crc[4];
        if (fread(data + 4, 1, len, f) != len || fread(crc, 1, 4, f) != 4) break;
        if (crc32(crc32(0, NULL, 0), data, len + 4) != be32(crc)) break;
        if (first != !memcmp(data, "IHDR", 4)) break;
        if (first) {
            static const int CHANNELS[7] = {1, 0, 3, 1, 2, 0, 4};
            if (len != 13) break; /* before reading its fields: data holds len + 4 bytes */
            unsigned w = be32(data + 4), h = be32(data + 8), depth = data[12], type = data[13];
            if (!w || !h || type > 6 || !CHANNELS[type] || data[16] /* interlace */) break;
            expect = (uint64_t)h * (1 + ((uint64_t)w * CHANNELS[type] * depth + 7) / 8);
            first = false;
        } else if (!memcmp(data, "IDAT", 4)) {
            z.next_in = data + 4;
            z.avail_in = len;
            while (z.avail_in && !ended) {
                z.next_out = sink;
                z.avail_out = sizeof sink;
                int r = inflate(&z, Z_NO_FLUSH);
                got += sizeof sink - z.avail_out;
                if (r == Z_STREAM_END) ended = true;
                else if (r != Z_OK) goto done;
            }
        } else if (!memcmp(data, "IEND", 4)) {
            ok = ended && got == expect && fgetc(f) == EOF;
            break;
        }
    }
done:
    inflateEnd(&z);
    free(data);
    return ok;
}

bool sdc_batch_png_ok(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = png_check(f);
    fclose(f);
    return ok;
}

int sdc_batch_remove_temp(const char *dir, int k, int n) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        size_t len = strlen(s);
        /* NNNNN-...png.XXXXXX.tmp */
        if (len < 5 + 16 || strcmp(s + len - 4, ".tmp") || strncmp(s + len - 15, ".png.", 5)) continue;
        char *end;
        errno = 0;
        long idx = strtol(s, &end, 10);
        if (end - s < 5 || *end != '-' || errno || idx < 0 || idx > 1000000000L) continue;
        if (!sdc_batch_in_shard((int)idx, k, n)) continue;
        size_t dl = strlen(dir);
        char *path = malloc(dl + len + 2);
        if (!path) break;
        sprintf(path, "%s/%s", dir, s);
        if (unlink(path) == 0) removed++;
        free(path);
    }
    closedir(d);
    return removed;
}

/* ------------------------------------------------------------- manifest */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap + (size_t)k) * 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np, b->cap = nc;
    }
}

/* "key": "escaped string" (or null) */
static void sb_str(sbuf *b, const char *key, const char *s) {
    sb_add(b, ",\"%s\":", key);
    if (!s) {
        sb_add(b, "null");
        return;
    }
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_add(b, "\\%c", *p);
        else if (*p == '\n') sb_add(b, "\\n");
        else if (*p == '\t') sb_add(b, "\\t");
        else if (*p == '\r') sb_add(b, "\\r");
        else if (*p < 0x20 || *p == 0x7f) sb_add(b, "\\u%04x", *p);
        else sb_add(b, "%c", *p);
    }
    sb_add(b, "\"");
}

/* The shortest decimal that reads back as the same number: a float when
 * single, else a double. */
static void sb_num(sbuf *b, const char *key, double v, bool single) {
    char s[32];
    for (int prec = 1; prec <= (single ? 9 : 17); prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (single ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v) break;
    }
    sb_add(b, ",\"%s\":%s", key, s);
}

char *sdc_batch_manifest_line(const sdc_batch_job *j, const sdc_batch_result *r, const sdc_batch_run *run) {
    sbuf b = {malloc(1024), 0, 1024, false};
    if (!b.p) return NULL;
    char file[128], shard[32], when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(shard, sizeof shard, "%d/%d", run->shard_k, run->shard_n);
    sdc_batch_filename(j, file, sizeof file);
    sb_add(&b, "{\"job\":%d,\"line\":%d", j->index, j->line);
    sb_str(&b, "source", run->source);
    sb_str(&b, "file", j->error ? NULL : file);
    sb_str(&b, "status", r->status);
    sb_str(&b, "error", r->error);
    sb_str(&b, "prompt", j->gen.prompt);
    sb_str(&b, "negative_prompt", j->error ? NULL : j->gen.negative_prompt ? j->gen.negative_prompt : "");
    if (j->error) sb_add(&b, ",\"seed\":null");
    else sb_add(&b, ",\"seed\":%llu", j->gen.seed);
    sb_add(&b, ",\"base_seed\":%llu", run->base_seed);
    if (!j->error) {
        sb_add(&b, ",\"steps\":%d", j->gen.steps);
        sb_str(&b, "sampler", j->gen.sampler ? j->gen.sampler : "ddim");
        sb_add(&b, ",\"karras\":%s", j->gen.karras ? "true" : "false");
        sb_str(&b, "spacing", j->gen.spacing);
        sb_num(&b, "cfg_scale", j->gen.cfg_scale, true);
        sb_add(&b, ",\"width\":%d,\"height\":%d", j->gen.width, j->gen.height);
        sb_num(&b, "eta", j->gen.eta, true);
        if (j->init_image) {
            sb_str(&b, "init_image", j->init_image);
            sb_str(&b, "mask", j->mask);
            sb_num(&b, "denoising_strength", j->gen.strength, false);
        }
    }
    sb_add(&b, ",\"clip_skip\":%d", run->clip_skip);
    sb_str(&b, "model", run->model);
    sb_str(&b, "shard", shard);
    sb_add(&b, ",\"group_size\":%d,\"seconds\":%.4f,\"seconds_encode\":%.4f,\"seconds_denoise\":%.4f,"
           "\"seconds_decode\":%.4f,\"seconds_lora\":%.4f",
           r->group_size, r->seconds, r->seconds_encode, r->seconds_denoise, r->seconds_decode, r->seconds_lora);
    sb_str(&b, "time", when);
    sb_add(&b, "}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

sdc_status sdc_batch_manifest_open(const char *path, int *fd) {
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (*fd < 0) return sdc_fail(SDC_ERR_IO, "%s: %s", path, strerror(errno));
    return SDC_OK;
}

sdc_status sdc_batch_manifest_append(int fd, const char *line) {
    size_t n = strlen(line);
    char *buf = malloc(n + 1);
    if (!buf) return sdc_fail(SDC_ERR_OOM, "out of memory writing the manifest");
    memcpy(buf, line, n);
    buf[n] = '\n';
    ssize_t w = write(fd, buf, n + 1);
    int err = errno;
    free(buf);
    if (w != (ssize_t)(n + 1)) return sdc_fail(SDC_ERR_IO, "manifest: write failed: %s", w < 0 ? strerror(err) : "short write");
    if (fsync(fd) != 0) return sdc_fail(SDC_ERR_IO, "manifest: fsync failed: %s", strerror(errno));
    return SDC_OK;
}

/* The unsigned integer after "key": in a line the writer above produced
 * (a key in quotes followed by ':' cannot occur inside an escaped string). */
static bool find_u64(const char *line, const char *key, unsigned long long *v) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p || !isdigit((unsigned char)p[strlen(pat)])) return false;
    *v = strtoull(p + strlen(pat), NULL, 10);
    return true;
}

sdc_status sdc_batch_manifest_base_seed(const char *path, int k, int n, unsigned long long *seed, bool *found) {
    *found = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return SDC_OK;
        return sdc_fail(SDC_ERR_IO, "%s: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        unsigned long long job, s;
        if (line[0] != '{' || line[len - 1] != '\n') continue; /* a line cut short */
        if (!find_u64(line, "job", &job) || !find_u64(line, "base_seed", &s)) continue;
        if (job > 1000000000ULL || !sdc_batch_in_shard((int)job, k, n)) continue;
        *seed = s;
        *found = true;
    }
    free(line);
    fclose(f);
    return SDC_OK;
}
