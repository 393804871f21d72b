/* test_cpu_bf16.c - the CPU's bf16 products (--precision bf16;
 * backend_cpu_bf16.c), on AMX's tiles where this processor has them and
 * on the sgemm of rounded operands everywhere.
 *
 * The product itself is checked against float64 sums of the same
 * bf16-rounded operands: every product of two bf16 values is exact in
 * fp32, so what is left is fp32 summation: held to 1e-5 of the sum of
 * |x w| (k <= 333 here: ~sqrt(k) 2^-24 = 1e-6 for sums whose roundings
 * go either way, k 2^-24 = 2e-5 were every one of them to go the same
 * way).
 *
 * The networks are checked against the same float64 references as the
 * fp32 tests (tools/make_fixtures.py), with the error that rounding every
 * product's operands to bf16 gives (max_rel_err: the largest difference
 * over the largest reference value), measured on this machine's AMX and
 * on the rounded sgemm: tiny U-Net 6.1e-3 (F(2x2) and F(4x4) alike), VAE
 * decoder 7.1e-3 and 9.1e-3, text encoder 1.45e-2; full-size SD 1.5
 * (make test-full) U-Net 1.3e-2 and 1.2e-2, VAE decoder 1.5e-2 and
 * 1.75e-2. Tolerance 3e-2 for each, the CUDA backend's for bf16
 * (test_cuda_nets.c); and each must be above 1e-4, the fp32 tests'
 * tolerance, or the products were not rounded at all. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_cpu.h"
#include "backend/cpu_isa.h"
#include "nets/text_encoder.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "testutil.h"

#define GEMM_TOL 1e-5
#define NET_TOL 3e-2
#define ROUNDED_AT_LEAST 1e-4

/* the reference: fp32 -> bf16 -> fp32 by common.c's conversions (the
 * rounding itself checked value by value in cpu_bf16/rounding) */
static float sdc_bf16_round(float f) { return sdc_bf16_to_f32(sdc_f32_to_bf16(f)); }

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

Test(cpu_bf16, rounding) {
    /* to nearest, ties to even (bf16 keeps 8 significant bits) */
    cr_assert_eq(sdc_bf16_round(1.0f), 1.0f);
    cr_assert_eq(sdc_bf16_round(1.0f + 0x1p-8f), 1.0f);                  /* tie, even below */
    cr_assert_eq(sdc_bf16_round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);    /* tie, even above */
    cr_assert_eq(sdc_bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
    cr_assert_eq(sdc_bf16_round(-1.0f - 0x1p-9f), -1.0f);
    cr_assert_eq(sdc_bf16_round(bits(0x7f7f0000u)), bits(0x7f7f0000u)); /* bf16's largest */
    cr_assert_eq(sdc_bf16_round(bits(0x7f7fffffu)), INFINITY);         /* fp32's largest: past it */
    cr_assert_eq(sdc_bf16_round(-INFINITY), -INFINITY);
    cr_assert(isnan(sdc_bf16_round(NAN)));
    cr_assert(isnan(sdc_bf16_round(bits(0x7f800001u)))); /* a NaN whose payload is in the dropped bits */
    cr_assert_eq(sdc_bf16_round(bits(0x00010000u)), bits(0x00010000u)); /* subnormals kept */
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* one product with row strides past the widths (ldx = k + 3, ...) and
 * beta 0 or 1, against float64 sums of the rounded operands */
static void gemm_case(sdc_backend *be, int m, int n, int k, float beta, const char *path) {
    const int ldx = k + 3, ldw = k + 5, ldy = n + 7;
    unsigned s = (unsigned)(m * 131 + n * 7 + k);
    float *x = malloc((size_t)m * ldx * sizeof(float)), *w = malloc((size_t)n * ldw * sizeof(float));
    float *y = malloc((size_t)m * ldy * sizeof(float)), *y0 = malloc((size_t)m * ldy * sizeof(float));
    for (size_t i = 0; i < (size_t)m * ldx; i++) x[i] = frand(&s) * 3.0f;
    for (size_t i = 0; i < (size_t)n * ldw; i++) w[i] = frand(&s) * 0.1f;
    /* beta 0: y is not read (NaN there must not reach the result) */
    for (size_t i = 0; i < (size_t)m * ldy; i++) y0[i] = y[i] = beta == 0.0f ? NAN : frand(&s);
    cr_assert_eq(sdc_cpu_gemm_bf16(be, "test", m, n, k, x, ldx, w, ldw, beta, y, ldy), SDC_OK, "%s",
                 sdc_last_error());
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double sum = 0, mag = 0;
            for (int q = 0; q < k; q++) {
                const double t = (double)sdc_bf16_round(x[(size_t)i * ldx + q]) *
                                 (double)sdc_bf16_round(w[(size_t)j * ldw + q]);
                sum += t;
                mag += fabs(t);
            }
            const double want = sum + (beta == 0.0f ? 0.0 : beta * y0[(size_t)i * ldy + j]);
            const double got = y[(size_t)i * ldy + j];
            cr_assert(fabs(got - want) <= GEMM_TOL * (mag + 1.0), "%s %dx%dx%d beta %g: y[%d][%d] %.9g, want %.9g",
                      path, m, n, k, (double)beta, i, j, got, want);
        }
        /* the padding of y's rows is not written */
        for (int j = n; j < ldy; j++)
            cr_assert(!memcmp(&y[(size_t)i * ldy + j], &y0[(size_t)i * ldy + j], sizeof(float)), "%s: y[%d][%d] written",
                      path, i, j);
    }
    free(x), free(w), free(y), free(y0);
}

static void gemm_shapes(const char *path) {
    sdc_backend *be = NULL;
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    /* whole tiles; every kind of tail (rows, columns, k); one row; k below a tile step; several column chunks */
    const int shapes[][3] = {{64, 64, 64}, {33, 47, 70}, {1, 17, 31}, {5, 3, 1}, {96, 600, 96}, {40, 20, 333}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int b = 0; b < 2; b++) gemm_case(be, shapes[i][0], shapes[i][1], shapes[i][2], (float)b, path);
    sdc_backend_destroy(be);
}

Test(cpu_bf16, gemm_every_path) {
    if (sdc_cpu_amx_force(true)) {
        cr_assert(sdc_cpu_amx_active() == (!SDC_ISA_X86 || sdc_cpu_isa_active() == SDC_ISA_AVX512));
        gemm_shapes("amx");
    } else {
        fprintf(stderr, "cpu_bf16: no AMX on this processor; its path not run\n");
    }
    cr_assert(sdc_cpu_amx_force(false));
    cr_assert(!sdc_cpu_amx_active());
    /* the rounding and packing loops at every instruction set this processor has */
    const sdc_cpu_isa best = sdc_cpu_isa_detect();
    for (int isa = SDC_ISA_BASE; isa <= (int)best; isa++) {
        cr_assert(sdc_cpu_isa_force((sdc_cpu_isa)isa));
        char path[64];
        snprintf(path, sizeof path, "rounded sgemm, %s", sdc_cpu_isa_name((sdc_cpu_isa)isa));
        gemm_shapes(path);
    }
    cr_assert(sdc_cpu_isa_force(best));
    /* AMX is off while a lower level than AVX-512 is forced, and back after */
    if (sdc_cpu_amx_force(true) && best > SDC_ISA_BASE) {
        cr_assert(sdc_cpu_isa_force(SDC_ISA_AVX2));
        cr_assert(!sdc_cpu_amx_active());
        cr_assert(sdc_cpu_isa_force(best));
        cr_assert(sdc_cpu_amx_active());
    }
}

/* A NaN in x reaches exactly the outputs of its row */
Test(cpu_bf16, nan_stays_in_its_row) {
    for (int amx = 1; amx >= 0; amx--) {
        if (!sdc_cpu_amx_force(amx)) continue;
        sdc_backend *be = NULL;
        cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
        enum { M = 40, N = 36, K = 64 };
        static float x[M * K], w[N * K], y[M * N];
        for (int i = 0; i < M * K; i++) x[i] = 0.5f;
        for (int i = 0; i < N * K; i++) w[i] = 0.25f;
        x[17 * K + 9] = NAN;
        cr_assert_eq(sdc_cpu_gemm_bf16(be, "test", M, N, K, x, K, w, K, 0.0f, y, N), SDC_OK);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                if (i == 17) cr_assert(isnan(y[i * N + j]), "amx %d: y[17][%d] %g", amx, j, (double)y[i * N + j]);
                else cr_assert_eq(y[i * N + j], 8.0f, "amx %d: y[%d][%d] %g", amx, i, j, (double)y[i * N + j]);
        sdc_backend_destroy(be);
    }
}

/* attention of rounded q, k, v in float64 (exact softmax), out[b][i][h d + c] */
static void attention_ref(double *out, const float *q, const float *k, const float *v, int batch, int heads, int tq,
                          int tk, int d, int q_stride, int kv_stride) {
    double *p = malloc((size_t)tk * sizeof(double));
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < tq; i++) {
                const float *qi = q + ((size_t)b * tq + i) * q_stride + (size_t)h * d;
                double sum = 0;
                for (int j = 0; j < tk; j++) {
                    const float *kj = k + ((size_t)b * tk + j) * kv_stride + (size_t)h * d;
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += (double)sdc_bf16_round(qi[c]) * sdc_bf16_round(kj[c]);
                    p[j] = dot / sqrt((double)d);
                }
                /* the kernel's order: 128 keys at a time, the running maximum,
                 * each chunk's probabilities rounded to bf16 for P V (their
                 * sum unrounded) */
                double *o = out + ((size_t)b * tq + i) * heads * d + (size_t)h * d, run = -INFINITY;
                for (int c = 0; c < d; c++) o[c] = 0;
                for (int j0 = 0; j0 < tk; j0 += 128) {
                    const int nk = tk - j0 < 128 ? tk - j0 : 128;
                    double mn = run;
                    for (int j = j0; j < j0 + nk; j++) mn = fmax(mn, p[j]);
                    const double alpha = run == -INFINITY ? 0.0 : exp(run - mn);
                    sum *= alpha;
                    for (int c = 0; c < d; c++) o[c] *= alpha;
                    for (int j = j0; j < j0 + nk; j++) {
                        const double e = exp(p[j] - mn);
                        sum += e;
                        const double pr = sdc_bf16_round((float)e);
                        const float *vj = v + ((size_t)b * tk + j) * kv_stride + (size_t)h * d;
                        for (int c = 0; c < d; c++) o[c] += pr * sdc_bf16_round(vj[c]);
                    }
                    run = mn;
                }
                for (int c = 0; c < d; c++) o[c] /= sum;
            }
    free(p);
}

/* The attention op with attention_bf16 set, on AMX, against float64
 * attention on the rounded q, k, v taken in the kernel's order (its P
 * rounded to bf16 per chunk of 128 keys): within 2e-5 max|v| (measured
 * 2.3e-7; where the fp32 exponent and float64's round to different bf16
 * values, a probability moves by 2^-8 of itself). The U-Net's 40 and
 * 160-wide heads, SDXL's 64, the VAE's one 512-wide head; tails of queries
 * (not a multiple of 16) and keys (not of 128). A NaN in one query reaches
 * its row of the output and no other. Without AMX the op must give the
 * fp32 flash kernel's result. */
Test(cpu_bf16, attention) {
    const int shapes[][4] = {{2, 2, 70, 300}, {1, 3, 33, 256}, {1, 1, 17, 260}, {2, 1, 40, 257}};
    const int dims[] = {40, 64, 160, 512};
    for (int t = 0; t < 4; t++) {
        const int batch = shapes[t][0], heads = shapes[t][1], tq = shapes[t][2], tk = shapes[t][3], d = dims[t];
        const int c = heads * d, q_stride = 3 * c, kv_stride = 2 * c + 5;
        unsigned s = 99u + (unsigned)t;
        float *q = malloc((size_t)batch * tq * q_stride * sizeof(float));
        float *kv = malloc((size_t)batch * tk * kv_stride * sizeof(float));
        float *out = malloc((size_t)batch * tq * c * sizeof(float)), *ref32 = malloc((size_t)batch * tq * c * sizeof(float));
        double *want = malloc((size_t)batch * tq * c * sizeof(double));
        for (size_t i = 0; i < (size_t)batch * tq * q_stride; i++) q[i] = frand(&s) * 2.0f;
        double vmax = 0;
        for (size_t i = 0; i < (size_t)batch * tk * kv_stride; i++) {
            kv[i] = frand(&s) * 2.0f;
            vmax = fmax(vmax, fabs(kv[i]));
        }
        const float *k = kv, *v = kv + c;
        sdc_backend *be = NULL;
        cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
        be->attention_bf16 = true;
        if (sdc_cpu_amx_force(true)) {
            cr_assert_eq(sdc_cpu_attention(be, SDC_F32(out), SDC_F32(q), SDC_F32(k), SDC_F32(v), batch, heads, tq, tk,
                                           d, q_stride, kv_stride, false), SDC_OK, "%s", sdc_last_error());
            attention_ref(want, q, k, v, batch, heads, tq, tk, d, q_stride, kv_stride);
            double worst = 0;
            for (size_t i = 0; i < (size_t)batch * tq * c; i++) worst = fmax(worst, fabs(out[i] - want[i]));
            cr_assert(worst <= 2e-5 * vmax, "d %d: bf16 attention off by %.3g > 2e-5 max|v| = %.3g", d, worst,
                      2e-5 * vmax);
            fprintf(stderr, "cpu_bf16 attention (amx) d %d: max |error| %.2e of max|v| %.2f\n", d, worst, vmax);
            q[(size_t)5 * q_stride + 3] = NAN; /* image 0, query 5, head 0 */
            cr_assert_eq(sdc_cpu_attention(be, SDC_F32(out), SDC_F32(q), SDC_F32(k), SDC_F32(v), batch, heads, tq, tk,
                                           d, q_stride, kv_stride, false), SDC_OK);
            for (int i = 0; i < tq; i++)
                for (int j = 0; j < c; j++)
                    cr_assert(isnan(out[(size_t)i * c + j]) == (i == 5 && j < d), "d %d: NaN at query 5 gave out[%d][%d] %g",
                              d, i, j, (double)out[(size_t)i * c + j]);
            q[(size_t)5 * q_stride + 3] = 0.5f;
        }
        cr_assert(sdc_cpu_amx_force(false));
        cr_assert_eq(sdc_cpu_attention(be, SDC_F32(out), SDC_F32(q), SDC_F32(k), SDC_F32(v), batch, heads, tq, tk, d,
                                       q_stride, kv_stride, false), SDC_OK);
        cr_assert_eq(sdc_cpu_flash_attention(be, ref32, q, k, v, batch, heads, tq, tk, d, q_stride, kv_stride), SDC_OK);
        cr_assert(!memcmp(out, ref32, (size_t)batch * tq * c * sizeof(float)), "d %d: not the fp32 kernel's", d);
        sdc_backend_destroy(be);
        free(q), free(kv), free(out), free(ref32), free(want);
    }
}

static double check_net(const char *what, const float *got, const float *want, size_t n) {
    const double e = max_rel_err(got, want, n, NULL);
    if (!(e <= NET_TOL)) print_mismatches(what, got, want, n, NET_TOL, 5);
    cr_assert(e <= NET_TOL, "%s: max rel err %.3g > %.0e", what, e, NET_TOL);
    cr_assert(e > ROUNDED_AT_LEAST, "%s: max rel err %.3g, fp32's: were the products rounded to bf16?", what, e);
    fprintf(stderr, "cpu_bf16 %s (%s): max rel err %.2e\n", what, sdc_cpu_amx_active() ? "amx" : "rounded sgemm", e);
    return e;
}

static sdc_backend *bf16_backend(bool wino4) {
    sdc_backend *be = NULL;
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    be->products_bf16 = true;
    if (wino4) ((sdc_cpu_impl *)be->impl)->wino4_tiles = 0;
    return be;
}

static void unet_run(const char *model, const char *reference, bool wino4) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_unet *u = NULL;
    cr_assert_eq(sdc_model_open(model, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(reference, &ref), SDC_OK, "%s", sdc_last_error());
    sdc_backend *be = bf16_backend(wino4);
    cr_assert_eq(sdc_unet_load(m, be, &u), SDC_OK, "%s", sdc_last_error());
    float *ctx = ref_tensor(ref, "context", NULL);
    const sdc_st_tensor *xt = sdc_st_find(ref, "x0");
    cr_assert(xt && xt->ndim == 4);
    const int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[2], W = (int)xt->shape[3];
    size_t n;
    float *x = ref_tensor(ref, "x0", &n), *want = ref_tensor(ref, "out0", NULL);
    float *xh = malloc(n * sizeof(float)), *yh = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    sdc_nchw_to_nhwc(x, xh, B, C, H, W);
    cr_assert_eq(sdc_unet_forward(u, xh, B, H, W, atof(sdc_st_meta(ref, "t0")), ctx, 77, yh), SDC_OK, "%s",
                 sdc_last_error());
    sdc_nhwc_to_nchw(yh, y, B, C, H, W);
    char what[256];
    snprintf(what, sizeof what, "%s unet%s", model, wino4 ? ", Winograd F(4x4)" : "");
    check_net(what, y, want, n);
    free(ctx), free(x), free(want), free(xh), free(yh), free(y);
    sdc_unet_free(u);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

static void vae_run(const char *model, const char *reference) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_vae *v = NULL;
    cr_assert_eq(sdc_model_open(model, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(reference, &ref), SDC_OK, "%s", sdc_last_error());
    sdc_backend *be = bf16_backend(false);
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *zt = sdc_st_find(ref, "z"), *it = sdc_st_find(ref, "image");
    cr_assert(zt && it);
    const int C = (int)zt->shape[1], H = (int)zt->shape[2], W = (int)zt->shape[3];
    const int IH = (int)it->shape[2], IW = (int)it->shape[3];
    size_t nz, ni;
    float *z = ref_tensor(ref, "z", &nz), *want = ref_tensor(ref, "image", &ni);
    float *zh = malloc(nz * sizeof(float)), *ih = malloc(ni * sizeof(float)), *img = malloc(ni * sizeof(float));
    sdc_nchw_to_nhwc(z, zh, 1, C, H, W);
    cr_assert_eq(sdc_vae_decode(v, zh, H, W, ih), SDC_OK, "%s", sdc_last_error());
    sdc_nhwc_to_nchw(ih, img, 1, 3, IH, IW);
    char what[256];
    snprintf(what, sizeof what, "%s vae decoder", model);
    check_net(what, img, want, ni);
    free(z), free(want), free(zh), free(ih), free(img);
    sdc_vae_free(v);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

static void text_case(void) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_text_encoder *te = NULL;
    cr_assert_eq(sdc_model_open(FIXTURES "/tiny_sd1.safetensors", &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(FIXTURES "/te_tiny_sd1_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    sdc_backend *be = bf16_backend(false);
    cr_assert_eq(sdc_text_encoder_load(m, be, &te), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *ids_t = sdc_st_find(ref, "ids");
    cr_assert(ids_t && ids_t->ndim == 2 && ids_t->shape[1] == 77);
    const int W = te->cfg.width;
    float *last = ref_tensor(ref, "last", NULL), *out = malloc((size_t)77 * W * sizeof(float));
    int ids[77];
    ref_ids(ids_t, 0, ids);
    cr_assert_eq(sdc_text_encoder_run(te, ids, 77, te->cfg.layers, true, out), SDC_OK, "%s", sdc_last_error());
    check_net("text encoder", out, last, (size_t)77 * W);
    free(last), free(out);
    sdc_text_encoder_free(te);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

/* each network on AMX where there is one, and on the rounded sgemm */
static void every_path(void (*run)(void)) {
    if (sdc_cpu_amx_force(true)) run();
    cr_assert(sdc_cpu_amx_force(false));
    run();
}
static void unet_f2(void) { unet_run(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/unet_tiny_sd1_ref.safetensors", false); }
static void unet_f4(void) { unet_run(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/unet_tiny_sd1_ref.safetensors", true); }
static void vae_case(void) { vae_run(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/vae_tiny_sd1_ref.safetensors"); }
Test(cpu_bf16, unet) { every_path(unet_f2); }
Test(cpu_bf16, unet_winograd_4x4) { every_path(unet_f4); }
Test(cpu_bf16, vae_decoder) { every_path(vae_case); }
Test(cpu_bf16, text_encoder) { every_path(text_case); }

/* full-size SD 1.5 (make test-full), on whichever path this processor takes */
Test(full, cpu_bf16_unet_sd15, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    unet_run(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/unet_full_sd1_ref.safetensors", false);
}
Test(full, cpu_bf16_vae_sd15, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    vae_run(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/vae_full_sd1_ref.safetensors");
}
