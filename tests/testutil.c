/* testutil.c - shared helpers for the Criterion suite. */
#include "testutil.h"

#include "backend/backend.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double max_rel_err(const float *a, const float *b, size_t n, size_t *worst) {
    double max_diff = 0.0, max_ref = 0.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > max_diff || isnan(d)) max_diff = isnan(d) ? INFINITY : d, w = i;
        if (fabs((double)b[i]) > max_ref) max_ref = fabs((double)b[i]);
    }
    if (worst) *worst = w;
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

double max_rel_err_f64(const float *a, const double *b, size_t n, size_t *worst) {
    double max_diff = 0.0, max_ref = 0.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > max_diff || isnan(d)) max_diff = isnan(d) ? INFINITY : d, w = i;
        if (fabs(b[i]) > max_ref) max_ref = fabs(b[i]);
    }
    if (worst) *worst = w;
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

void print_mismatches(const char *what, const float *a, const float *b, size_t n,
                      double tol, int limit) {
    double max_ref = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > max_ref) max_ref = fabs((double)b[i]);
    int shown = 0;
    for (size_t i = 0; i < n && shown < limit; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= tol * max_ref)) {
            fprintf(stderr, "  %s[%zu]: got %.8g, expected %.8g (|diff| %.3g, max|ref| %.3g)\n",
                    what, i, (double)a[i], (double)b[i], d, max_ref);
            shown++;
        }
    }
}

float *ref_tensor(const sdc_st_file *f, const char *name, size_t *numel) {
    const sdc_st_tensor *t = sdc_st_find(f, name);
    cr_assert(t, "%s: reference tensor %s missing", f->path, name);
    float *x = malloc((size_t)t->numel * sizeof(float));
    cr_assert(x);
    cr_assert_eq(sdc_st_to_f32(f, t, x), SDC_OK, "%s", sdc_last_error());
    if (numel) *numel = (size_t)t->numel;
    return x;
}

void ref_ids(const sdc_st_tensor *ids, int p, int out[77]) {
    cr_assert(ids && ids->ndim == 2 && ids->shape[1] == 77 && p >= 0 && p < ids->shape[0]);
    for (int t = 0; t < 77; t++) {
        int64_t v;
        memcpy(&v, (const char *)ids->data + ((size_t)p * 77 + t) * 8, 8);
        out[t] = (int)v;
    }
}

bool full_tests_enabled(void) {
    const char *e = getenv("SDC_TEST_FULL");
    return e && e[0] == '1';
}

void fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
        x[i] = scale * (2.0f * (float)((s >> 40) * 0x1p-24) - 1.0f);
    }
}

const char *sdc_cli_path(void) {
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 8);
    cr_assert(n > 0, "cannot read /proc/self/exe");
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    cr_assert(slash);
    strcpy(slash + 1, "sdc");
    return path;
}

sdc_backend *test_cpu_backend(void) {
    sdc_backend *be = NULL;
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK, "%s", sdc_last_error());
    return be;
}

float *test_random(size_t n, uint64_t seed, float scale) {
    float *x = malloc(n * sizeof(float));
    cr_assert(x);
    fill_uniform(x, n, seed, scale);
    return x;
}

void check_close_f64(double tol, const char *what, const float *got, const double *ref, size_t n) {
    size_t worst;
    double e = max_rel_err_f64(got, ref, n, &worst);
    cr_assert(e <= tol, "%s: max rel err %.3g > %.0e at %zu (got %.8g, ref %.8g)", what, e, tol, worst,
              (double)got[worst], ref[worst]);
}

char *test_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        fclose(f);
        return NULL;
    }
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}
