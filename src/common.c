/* common.c - error messages, notices, half-precision conversion, clock. */
#include "common.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static _Thread_local char g_err[2048];

const char *sdc_last_error(void) { return g_err; }

sdc_status sdc_fail(sdc_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return code;
}

sdc_status sdc_fail_context(sdc_status code, const char *fmt, ...) {
    char prefix[1024], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof g_err - 3) n = sizeof g_err - 3;
    memcpy(g_err, prefix, n);
    g_err[n] = ':';
    g_err[n + 1] = ' ';
    size_t m = strlen(old), room = sizeof g_err - (n + 2) - 1;
    if (m > room) m = room;
    memcpy(g_err + n + 2, old, m);
    g_err[n + 2 + m] = '\0';
    return code;
}

void sdc_notice(const char *fmt, ...) {
    const char *q = getenv("SDC_QUIET");
    if (q && q[0] == '1') return;
    va_list ap;
    va_start(ap, fmt);
    fputs("sdc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

float sdc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float v = (float)man * 0x1p-24f;
            return sign ? -v : v;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t sdc_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal */
        float a;
        memcpy(&a, &ax, sizeof a);
        /* a * 2^24 rounded to nearest even is the subnormal mantissa */
        return sign | (uint16_t)lrintf(a * 0x1p24f);
    }
    uint32_t mant = ax + 0xc8000fffu + ((ax >> 13) & 1); /* rebias + RNE */
    return sign | (uint16_t)(mant >> 13);
}

float sdc_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t sdc_f32_to_bf16(float f) { return sdc_bf16_bits(f); }

double sdc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sdc_nchw_to_nhwc(const float *src, float *dst, int n, int c, int h, int w) {
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < h * w; p++)
                dst[((size_t)b * h * w + p) * c + ch] = src[((size_t)b * c + ch) * h * w + p];
}

void sdc_nhwc_to_nchw(const float *src, float *dst, int n, int c, int h, int w) {
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < h * w; p++)
                dst[((size_t)b * c + ch) * h * w + p] = src[((size_t)b * h * w + p) * c + ch];
}

typedef struct file_walk {
    const char *const *exts;
    int n_exts, max_depth, max_files, entries;
    char **p;
    int n, cap;
    bool truncated, oom;
} file_walk;

static bool has_ext(const char *name, const char *const *exts, int n_exts) {
    const size_t n = strlen(name);
    for (int i = 0; i < n_exts; i++) {
        const size_t e = strlen(exts[i]);
        if (n > e && !strcasecmp(name + n - e, exts[i])) return true;
    }
    return false;
}

static void walk(file_walk *w, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while (!w->truncated && !w->oom && (e = readdir(d)) != NULL) {
        if (++w->entries > 10 * w->max_files) {
            w->truncated = true;
            break;
        }
        if (e->d_name[0] == '.') continue;
        char path[4096];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path || stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth < w->max_depth) walk(w, path, depth + 1);
            continue;
        }
        if (!S_ISREG(sb.st_mode) || !has_ext(e->d_name, w->exts, w->n_exts)) continue;
        if (w->n == w->max_files) {
            w->truncated = true;
            break;
        }
        if (w->n == w->cap) {
            const int cap = w->cap ? 2 * w->cap : 64;
            char **np = realloc(w->p, (size_t)cap * sizeof *np);
            if (!np) {
                w->oom = true;
                break;
            }
            w->p = np, w->cap = cap;
        }
        if (!(w->p[w->n] = strdup(path))) w->oom = true;
        else w->n++;
    }
    closedir(d);
}

static int cmp_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void sdc_free_paths(char **paths, int n) {
    for (int i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
}

sdc_status sdc_list_files(const char *dir, const char *const *exts, int n_exts, int max_depth, int max_files,
                          char ***paths, int *n, bool *truncated) {
    *paths = NULL;
    *n = 0;
    if (truncated) *truncated = false;
    DIR *d = opendir(dir);
    if (!d) return sdc_fail(SDC_ERR_IO, "%s: cannot open the folder", dir);
    closedir(d);
    file_walk w = {.exts = exts, .n_exts = n_exts, .max_depth = max_depth, .max_files = max_files};
    walk(&w, dir, 0);
    if (w.oom) {
        sdc_free_paths(w.p, w.n);
        return sdc_fail(SDC_ERR_OOM, "out of memory listing %s", dir);
    }
    if (w.n) qsort(w.p, (size_t)w.n, sizeof *w.p, cmp_path);
    *paths = w.p;
    *n = w.n;
    if (truncated) *truncated = w.truncated;
    return SDC_OK;
}
