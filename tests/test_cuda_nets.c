/* test_cuda_nets.c - each network on the CUDA backend in fp16 and bf16
 * (weights and activations in that type) against the references of
 * tools/make_fixtures.py: diffusers / transformers in float64 on the same
 * fp16-rounded weights, the references the CPU backend meets within 1e-4
 * (test_unet.c, test_vae.c, test_text_encoder.c). On the emulated device
 * in make test, on a GPU where there is one.
 *
 * The error is testutil's max_rel_err (largest difference over the largest
 * reference value). Stated tolerances, fp16 4e-3 and bf16 3e-2 for every
 * network, with a margin over what the emulated device measured: U-Net
 * SD 1.x fp16 1.1e-3, bf16 1.4e-2; SD 2.x fp16 3.0e-3, and bf16 3.7e-2
 * against a stated 5e-2 (2.5e-2 with cuBLAS for convolution and attention:
 * in bf16 an fp32 sum in another order rounds a few outputs the other way,
 * and SD 2.x's tiny U-Net carries that further); VAE decoder fp16
 * 1.3e-3, bf16 1.1e-2; VAE encoder fp16 1.3e-3, bf16 1.4e-2; the text
 * encoder (fp32 activations, weights in the half type) fp16 1.1e-3, bf16
 * 2.1e-2. fp16 keeps 11
 * significant bits, bf16 8: each rounding is up to 2^-11 or 2^-8
 * relative, and a network is a few dozen ops in a row; bf16 weights are
 * also a coarser copy of the fp16-rounded weights the references use. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "model/model.h"
#include "nets/text_encoder.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "testutil.h"

static const sdc_dtype HALF[2] = {SDC_DT_F16, SDC_DT_BF16};
static const double TOL[2] = {4e-3, 3e-2};

static const char *tn(sdc_dtype t) { return t == SDC_DT_F16 ? "fp16" : "bf16"; }

/* the device's result (n floats at d) against want */
static double check_tol(sdc_backend *g, const char *what, sdc_dtype t, const float *d, const float *want, size_t n,
                        void (*layout)(const float *, float *, int, int, int, int), const int *shape, double tol) {
    float *h = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    cr_assert_eq(g->ops->download(g, h, d, n), SDC_OK, "%s", sdc_last_error());
    if (layout) layout(h, got, shape[0], shape[1], shape[2], shape[3]);
    else memcpy(got, h, n * sizeof(float));
    const double e = max_rel_err(got, want, n, NULL);
    if (!(e <= tol)) print_mismatches(what, got, want, n, tol, 5);
    cr_assert(e <= tol, "%s %s: max rel err %.3g > %.0e", what, tn(t), e, tol);
    fprintf(stderr, "cuda nets %s %s: max rel err %.2e\n", what, tn(t), e);
    free(h), free(got);
    return e;
}

static double check(sdc_backend *g, const char *what, sdc_dtype t, const float *d, const float *want, size_t n,
                    void (*layout)(const float *, float *, int, int, int, int), const int *shape) {
    return check_tol(g, what, t, d, want, n, layout, shape, TOL[t == SDC_DT_F16 ? 0 : 1]);
}

static sdc_backend *typed_gpu(sdc_dtype t) {
    sdc_backend *g = gpu_mem(0);
    g->weight_type = t; /* what sdc_load sets from --precision */
    return g;
}

/* SD 1.x and SD 2.x (linear projections, per-level heads, v-prediction's
 * upcast attention: scores are fp32 here always) */
Test(cuda_nets, unet) {
    const char *models[2] = {FIXTURES "/tiny_sd1.safetensors", FIXTURES "/tiny_sd2.safetensors"};
    const char *refs[2] = {FIXTURES "/unet_tiny_sd1_ref.safetensors", FIXTURES "/unet_tiny_sd2_ref.safetensors"};
    for (int k = 0; k < 4; k++) {
        sdc_backend *g = typed_gpu(HALF[k % 2]);
        sdc_model_files *m = NULL;
        sdc_st_file *ref = NULL;
        sdc_unet *u = NULL;
        cr_assert_eq(sdc_model_open(models[k / 2], &m), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_st_open(refs[k / 2], &ref), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_unet_load(m, g, &u), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(u->act, HALF[k % 2]);
        size_t n_ctx;
        float *ctx = ref_tensor(ref, "context", &n_ctx), *dctx = dev(g, ctx, n_ctx);
        for (int i = 0; i < 2; i++) {
            char xn[16], on[16], tname[16];
            snprintf(xn, sizeof xn, "x%d", i);
            snprintf(on, sizeof on, "out%d", i);
            snprintf(tname, sizeof tname, "t%d", i);
            const sdc_st_tensor *xt = sdc_st_find(ref, xn);
            cr_assert(xt && xt->ndim == 4);
            const int shape[4] = {(int)xt->shape[0], (int)xt->shape[1], (int)xt->shape[2], (int)xt->shape[3]};
            size_t n;
            float *x = ref_tensor(ref, xn, &n), *want = ref_tensor(ref, on, NULL), *xh = malloc(n * sizeof(float));
            sdc_nchw_to_nhwc(x, xh, shape[0], shape[1], shape[2], shape[3]);
            float *dx = dev(g, xh, n), *dout = NULL;
            cr_assert_eq(g->ops->alloc(g, n, &dout), SDC_OK);
            cr_assert_eq(sdc_unet_forward(u, dx, shape[0], shape[2], shape[3], atof(sdc_st_meta(ref, tname)), dctx,
                                          77, dout),
                         SDC_OK, "%s", sdc_last_error());
            char what[48];
            snprintf(what, sizeof what, "unet sd%d %s", k / 2 + 1, on);
            /* bf16 on SD 2.x: 5e-2 (see the top) */
            const double tol = k == 3 ? 5e-2 : TOL[k % 2];
            check_tol(g, what, HALF[k % 2], dout, want, n, sdc_nhwc_to_nchw, shape, tol);
            g->ops->free(g, dx), g->ops->free(g, dout);
            free(x), free(want), free(xh);
        }
        g->ops->free(g, dctx);
        free(ctx);
        sdc_unet_free(u);
        sdc_st_close(ref);
        sdc_model_close(m);
        sdc_backend_destroy(g);
    }
}

/* decode: image from z; encode: mean from x (the reference's tensors) */
static void vae_case(sdc_backend *g, sdc_vae *v, const sdc_st_file *ref, sdc_dtype t, bool decode) {
    const char *in_name = decode ? "z" : "x", *out_name = decode ? "image" : "mean";
    const sdc_st_tensor *it = sdc_st_find(ref, in_name), *ot = sdc_st_find(ref, out_name);
    cr_assert(it && ot);
    const int C = (int)it->shape[1], H = (int)it->shape[2], W = (int)it->shape[3];
    const int oshape[4] = {1, (int)ot->shape[1], (int)ot->shape[2], (int)ot->shape[3]};
    size_t ni, no;
    float *in = ref_tensor(ref, in_name, &ni), *want = ref_tensor(ref, out_name, &no);
    float *ih = malloc(ni * sizeof(float));
    sdc_nchw_to_nhwc(in, ih, 1, C, H, W);
    float *din = dev(g, ih, ni), *dout = NULL;
    cr_assert_eq(g->ops->alloc(g, no, &dout), SDC_OK);
    cr_assert_eq(decode ? sdc_vae_decode(v, din, H, W, dout) : sdc_vae_encode(v, din, H, W, dout), SDC_OK, "%s",
                 sdc_last_error());
    check(g, decode ? "vae decode" : "vae encode", t, dout, want, no, sdc_nhwc_to_nchw, oshape);
    g->ops->free(g, din), g->ops->free(g, dout);
    free(in), free(want), free(ih);
}

Test(cuda_nets, vae) {
    for (int k = 0; k < 2; k++) {
        sdc_backend *g = typed_gpu(HALF[k]);
        sdc_model_files *m = NULL;
        sdc_st_file *ref = NULL;
        sdc_vae *v = NULL;
        cr_assert_eq(sdc_model_open(FIXTURES "/tiny_sd1.safetensors", &m), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_st_open(FIXTURES "/vae_tiny_sd1_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_vae_load(m, g, &v), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(v->act, HALF[k]);
        vae_case(g, v, ref, HALF[k], true);
        vae_case(g, v, ref, HALF[k], false);
        sdc_vae_free(v);
        sdc_st_close(ref);
        sdc_model_close(m);
        sdc_backend_destroy(g);
    }
}

Test(cuda_nets, text_encoder) {
    for (int k = 0; k < 2; k++) {
        sdc_backend *g = typed_gpu(HALF[k]);
        sdc_model_files *m = NULL;
        sdc_st_file *ref = NULL;
        sdc_text_encoder *te = NULL;
        cr_assert_eq(sdc_model_open(FIXTURES "/tiny_sd1.safetensors", &m), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_st_open(FIXTURES "/te_tiny_sd1_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_text_encoder_load(m, g, &te), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(te->act, SDC_DT_F32); /* fp32 activations, weights in HALF[k] */
        const sdc_text_config *c = &te->cfg;
        const sdc_st_tensor *ids_t = sdc_st_find(ref, "ids");
        cr_assert(ids_t && ids_t->ndim == 2 && ids_t->shape[1] == 77);
        const int P = (int)ids_t->shape[0], T = 77, W = c->width;
        float *last = ref_tensor(ref, "last", NULL), *out = malloc((size_t)T * W * sizeof(float));
        float *dout = NULL; /* the host result goes through the device for check() */
        cr_assert_eq(g->ops->alloc(g, (size_t)T * W, &dout), SDC_OK);
        for (int p = 0; p < P; p++) {
            int ids[77];
            ref_ids(ids_t, p, ids);
            cr_assert_eq(sdc_text_encoder_run(te, ids, T, c->layers, true, out), SDC_OK, "%s", sdc_last_error());
            cr_assert_eq(g->ops->upload(g, dout, out, (size_t)T * W), SDC_OK);
            char what[48];
            snprintf(what, sizeof what, "text encoder last[%d]", p);
            check(g, what, HALF[k], dout, last + (size_t)p * T * W, (size_t)T * W, NULL, NULL);
        }
        g->ops->free(g, dout);
        free(last), free(out);
        sdc_text_encoder_free(te);
        sdc_st_close(ref);
        sdc_model_close(m);
        sdc_backend_destroy(g);
    }
}
