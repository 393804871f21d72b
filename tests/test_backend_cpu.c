/* test_backend_cpu.c - the CPU backend's ops against float64 loops written
 * out here, at the shapes the text encoder uses (77 tokens, 768/1024 wide,
 * head dims 40/64/80). Tolerance: fp32 vs float64, normwise relative error
 * (max|diff| / max|ref|) <= 1e-5. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "backend/cpu_isa.h"
#include "testutil.h"

#define TOL 1e-5


static void linear_case(int m, int k, int n, bool bias) {
    sdc_backend *be = test_cpu_backend();
    float *x = test_random((size_t)m * k, 1, 1.0f), *w = test_random((size_t)n * k, 2, 0.05f), *b = test_random(n, 3, 0.5f);
    float *y = malloc((size_t)m * n * sizeof(float));
    double *r = malloc((size_t)m * n * sizeof(double));
    cr_assert_eq(be->ops->linear(be, SDC_F32(y), SDC_F32(x), SDC_WEIGHT_F32(w), bias ? b : NULL, m, k, n), SDC_OK);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = bias ? b[j] : 0.0;
            for (int p = 0; p < k; p++) s += (double)x[(size_t)i * k + p] * w[(size_t)j * k + p];
            r[(size_t)i * n + j] = s;
        }
    check_close_f64(TOL, "linear", y, r, (size_t)m * n);
    free(x), free(w), free(b), free(y), free(r);
    sdc_backend_destroy(be);
}

Test(backend_cpu, linear_clip_qkv) { linear_case(77, 768, 2304, true); }

/* Half weights, as the CPU keeps fp16 and bf16 files' matrices: widened to
 * fp32 inside the product, so against float64 with the widened values the
 * tolerance is fp32's; one panel (CLIP's qkv) and several (k = 11520: a
 * 1280-channel 3x3 kernel's row) */
static void linear_half_case(int m, int k, int n, sdc_dtype t) {
    sdc_backend *be = test_cpu_backend();
    float *x = test_random((size_t)m * k, 1, 1.0f), *w = test_random((size_t)n * k, 2, 0.05f), *b = test_random(n, 3, 0.5f);
    float *y = malloc((size_t)m * n * sizeof(float));
    double *r = malloc((size_t)m * n * sizeof(double));
    sdc_weight hw = {.type = t};
    cr_assert_eq(be->ops->load_tensor(be, t, w, SDC_DT_F32, (size_t)n * k, &hw.p), SDC_OK, "%s", sdc_last_error());
    for (size_t i = 0; i < (size_t)n * k; i++) {
        const uint16_t h = ((uint16_t *)hw.p)[i];
        const float want = t == SDC_DT_F16 ? sdc_f16_to_f32(sdc_f32_to_f16(w[i])) : sdc_bf16_to_f32(sdc_f32_to_bf16(w[i]));
        w[i] = t == SDC_DT_F16 ? sdc_f16_to_f32(h) : sdc_bf16_to_f32(h);
        cr_assert(w[i] == want, "element %zu kept as %g, expected %g (round to nearest even)", i, (double)w[i],
                  (double)want);
    }
    cr_assert_eq(be->ops->linear(be, SDC_F32(y), SDC_F32(x), hw, b, m, k, n), SDC_OK, "%s", sdc_last_error());
#pragma omp parallel for
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = b[j];
            for (int p = 0; p < k; p++) s += (double)x[(size_t)i * k + p] * w[(size_t)j * k + p];
            r[(size_t)i * n + j] = s;
        }
    check_close_f64(TOL, "linear with half weights", y, r, (size_t)m * n);
    be->ops->free(be, hw.p);
    free(x), free(w), free(b), free(y), free(r);
    sdc_backend_destroy(be);
}

Test(backend_cpu, linear_half_weights) {
    linear_half_case(77, 768, 2304, SDC_DT_F16);
    linear_half_case(77, 768, 2304, SDC_DT_BF16);
    linear_half_case(64, 11520, 400, SDC_DT_F16);
}
Test(backend_cpu, linear_no_bias_odd) { linear_case(5, 33, 17, false); }

Test(backend_cpu, layer_norm_two_pass) {
    /* a large common offset: single-pass E[x^2]-E[x]^2 in fp32 fails here */
    const int m = 77, n = 1024;
    sdc_backend *be = test_cpu_backend();
    float *x = test_random((size_t)m * n, 4, 1.0f), *g = test_random(n, 5, 1.0f), *b = test_random(n, 6, 1.0f);
    for (size_t i = 0; i < (size_t)m * n; i++) x[i] += 3000.0f;
    float *y = malloc((size_t)m * n * sizeof(float));
    double *r = malloc((size_t)m * n * sizeof(double));
    cr_assert_eq(be->ops->layer_norm(be, SDC_F32(y), SDC_F32(x), g, b, m, n, 1e-5f), SDC_OK);
    for (int i = 0; i < m; i++) {
        double mu = 0, var = 0;
        for (int j = 0; j < n; j++) mu += x[(size_t)i * n + j];
        mu /= n;
        for (int j = 0; j < n; j++) var += pow(x[(size_t)i * n + j] - mu, 2);
        var /= n;
        for (int j = 0; j < n; j++)
            r[(size_t)i * n + j] = (x[(size_t)i * n + j] - mu) / sqrt(var + 1e-5) * g[j] + b[j];
    }
    check_close_f64(TOL, "layer_norm", y, r, (size_t)m * n);
    free(x), free(g), free(b), free(y), free(r);
    sdc_backend_destroy(be);
}

static void attention_case(int batch, int heads, int tq, int tk, int hd, bool causal) {
    sdc_backend *be = test_cpu_backend();
    const int width = heads * hd, qs = 3 * width, kvs = 2 * width + 8; /* strided rows */
    float *q = test_random((size_t)batch * tq * qs, 7, 2.0f), *kv = test_random((size_t)batch * tk * kvs, 8, 2.0f);
    const float *k = kv, *v = kv + width;
    float *o = malloc((size_t)batch * tq * width * sizeof(float));
    double *r = calloc((size_t)batch * tq * width, sizeof(double)), *s = malloc((size_t)tk * sizeof(double));
    cr_assert_eq(be->ops->attention(be, SDC_F32(o), SDC_F32(q), SDC_F32(k), SDC_F32(v), batch, heads, tq, tk, hd, qs, kvs, causal), SDC_OK);
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < tq; i++) {
                int nk = causal ? (i + 1 < tk ? i + 1 : tk) : tk;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < nk; j++) {
                    double d = 0;
                    for (int c = 0; c < hd; c++)
                        d += (double)q[((size_t)b * tq + i) * qs + h * hd + c] *
                             k[((size_t)b * tk + j) * kvs + h * hd + c];
                    s[j] = d / sqrt((double)hd);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < nk; j++) sum += (s[j] = exp(s[j] - mx));
                for (int j = 0; j < nk; j++)
                    for (int c = 0; c < hd; c++)
                        r[((size_t)b * tq + i) * width + h * hd + c] +=
                            s[j] / sum * v[((size_t)b * tk + j) * kvs + h * hd + c];
            }
    check_close_f64(TOL, "attention", o, r, (size_t)batch * tq * width);
    free(q), free(kv), free(o), free(r), free(s);
    sdc_backend_destroy(be);
}

Test(backend_cpu, attention_causal_clip) { attention_case(1, 12, 77, 77, 64, true); }
Test(backend_cpu, attention_cross_hd40) { attention_case(2, 8, 64, 77, 40, false); }
Test(backend_cpu, attention_self_hd80) { attention_case(2, 4, 100, 100, 80, false); }
/* 256 keys or more without a mask: the flash-style kernel. The U-Net's
 * 40-wide heads (one pass of 48 columns), 80 (48 + 32), SD 2.x's 64
 * (48 + 16); key and query counts off the blocks (333 keys: a partial
 * chunk; 301 queries: a partial block); the VAE's one 512-wide head */
/* Each case runs with every instruction set this processor has (cpu_isa.h:
 * the 16-wide AVX-512 variant, the 8-wide AVX2 and base ones); on a machine
 * without AVX-512 the wide variant is not reachable and is not run. */
static void flash_case_every_isa(int batch, int heads, int tq, int tk, int hd) {
    const sdc_cpu_isa best = sdc_cpu_isa_detect();
    for (int isa = SDC_ISA_BASE; isa <= (int)best; isa++) {
        cr_assert(sdc_cpu_isa_force((sdc_cpu_isa)isa));
        cr_assert_eq(sdc_cpu_isa_active(), (sdc_cpu_isa)isa);
        attention_case(batch, heads, tq, tk, hd, false);
    }
    cr_assert(sdc_cpu_isa_force(best));
}
Test(backend_cpu, attention_flash_hd40) { flash_case_every_isa(2, 2, 1024, 1024, 40); }
Test(backend_cpu, attention_flash_odd) {
    flash_case_every_isa(1, 3, 301, 333, 80);
    flash_case_every_isa(2, 1, 77, 256, 64);
}
Test(backend_cpu, attention_flash_vae) { flash_case_every_isa(1, 1, 256, 256, 512); }
/* NaN in a query row comes out as NaN in that row only, by every variant
 * (the vector exp keeps NaN, the row maximum skips it) */
Test(backend_cpu, attention_flash_nan) {
    const int tq = 16, tk = 300, hd = 40;
    for (int isa = SDC_ISA_BASE; isa <= (int)sdc_cpu_isa_detect(); isa++) {
        cr_assert(sdc_cpu_isa_force((sdc_cpu_isa)isa));
        sdc_backend *be = test_cpu_backend();
        float *q = test_random((size_t)tq * hd, 11, 1.0f), *kv = test_random((size_t)tk * 2 * hd, 12, 1.0f);
        float *o = malloc((size_t)tq * hd * sizeof(float));
        q[3 * hd + 7] = NAN;
        cr_assert_eq(be->ops->attention(be, SDC_F32(o), SDC_F32(q), SDC_F32(kv), SDC_F32(kv + hd), 1, 1, tq, tk,
                                        hd, hd, 2 * hd, false),
                     SDC_OK);
        for (int i = 0; i < tq; i++)
            for (int c = 0; c < hd; c++)
                cr_assert_eq(isnan(o[i * hd + c]) != 0, i == 3, "%s: row %d column %d: %g",
                             sdc_cpu_isa_name((sdc_cpu_isa)isa), i, c, o[i * hd + c]);
        free(q), free(kv), free(o);
        sdc_backend_destroy(be);
    }
}
/* the level in use: never above the processor's; the names */
Test(backend_cpu, isa_levels) {
    const sdc_cpu_isa best = sdc_cpu_isa_detect();
    cr_assert_leq(sdc_cpu_isa_active(), best);
    if (best < SDC_ISA_AVX512) {
        cr_assert_not(sdc_cpu_isa_force(SDC_ISA_AVX512));
        cr_assert_leq(sdc_cpu_isa_active(), best);
    }
    cr_assert(sdc_cpu_isa_force(SDC_ISA_BASE));
    cr_assert_eq(sdc_cpu_isa_active(), SDC_ISA_BASE);
    cr_assert(sdc_cpu_isa_force(best));
    cr_assert_str_eq(sdc_cpu_isa_name(SDC_ISA_AVX512), "avx512");
    cr_assert_str_eq(sdc_cpu_isa_name(SDC_ISA_AVX2), "avx2");
    cr_assert_str_eq(sdc_cpu_isa_name(SDC_ISA_BASE), "base");
}

Test(backend_cpu, activations) {
    const size_t n = 4096;
    sdc_backend *be = test_cpu_backend();
    float *x = test_random(n, 9, 6.0f), *y = malloc(n * sizeof(float));
    double *r = malloc(n * sizeof(double));
    const sdc_act acts[] = {SDC_ACT_GELU, SDC_ACT_QUICK_GELU, SDC_ACT_SILU, SDC_ACT_RELU, SDC_ACT_TANH3,
                            SDC_ACT_NONE};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        cr_assert_eq(be->ops->activation(be, SDC_F32(y), SDC_F32(x), n, acts[a]), SDC_OK);
        for (size_t i = 0; i < n; i++) {
            double v = x[i];
            r[i] = acts[a] == SDC_ACT_GELU         ? 0.5 * v * (1.0 + erf(v / sqrt(2.0)))
                   : acts[a] == SDC_ACT_QUICK_GELU ? v / (1.0 + exp(-1.702 * v))
                   : acts[a] == SDC_ACT_SILU       ? v / (1.0 + exp(-v))
                   : acts[a] == SDC_ACT_RELU       ? (v < 0 ? 0.0 : v)
                   : acts[a] == SDC_ACT_TANH3      ? tanh(v / 3.0) * 3.0
                                                   : v;
        }
        check_close_f64(TOL, "activation", y, r, n);
    }
    free(x), free(y), free(r);
    sdc_backend_destroy(be);
}

Test(backend_cpu, add) {
    const size_t n = 7 * 16 + 3;
    sdc_backend *be = test_cpu_backend();
    float *a = test_random(n, 10, 1.0f), *b = test_random(n, 11, 1.0f), *y = malloc(n * sizeof(float));
    cr_assert_eq(be->ops->add(be, SDC_F32(y), SDC_F32(a), SDC_F32(b), n), SDC_OK);
    for (size_t i = 0; i < n; i++) cr_assert_eq(y[i], a[i] + b[i]); /* one fp32 addition: exact */
    cr_assert_eq(be->ops->add(be, SDC_F32(b), SDC_F32(a), SDC_F32(a), n), SDC_OK); /* y may alias a and b */
    cr_assert_eq(be->ops->add(be, SDC_F32(a), SDC_F32(a), SDC_F32(a), n), SDC_OK);
    for (size_t i = 0; i < n; i++) cr_assert_eq(a[i], b[i]);
    free(a), free(b), free(y);
    sdc_backend_destroy(be);
}
