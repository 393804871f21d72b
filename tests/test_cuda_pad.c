/* test_cuda_pad.c - convolution kernels in the CUDA backend's padded
 * layout (load_conv: cin and cout padded with zeros to multiples of 8, the
 * layout tensor-core loads take). Each case is checked against the CPU
 * backend's unpadded convolution: fp32 weights within 1e-5 normwise
 * relative (fp32 against fp32, different summation orders); fp16 weights
 * against the same fp16 weights unpadded on the same device within 1e-5
 * (the same fp16 products, accumulated in fp32, plus zeros). The cases
 * are the SD shapes that need padding, small: conv_in's 4 input channels,
 * the U-Net's 4 and the VAE's 3 output channels, the VAE encoder's 3 input
 * channels, a 1x1 and a stride-2 convolution with odd counts, and one
 * whose counts need no padding (its kernel is uploaded as it is). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda_testutil.h"
#include "testutil.h"

static int up8(int v) { return (v + 7) / 8 * 8; }

static float *get(sdc_backend *be, const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    cr_assert_eq(be->ops->download(be, h, d, n), SDC_OK, "%s", sdc_last_error());
    return h;
}

/* the padded fp32 kernel holds the source at [o][t][c] and zeros elsewhere */
static void check_layout(sdc_backend *g, sdc_weight w, const float *src, int cout, int k, int cin) {
    const int op = up8(cout), cp = up8(cin), kk = k * k;
    cr_assert_eq(w.chan_pad, 8, "load_conv's layout pads to 8");
    float *h = get(g, w.p, (size_t)op * kk * cp);
    for (int o = 0; o < op; o++)
        for (int t = 0; t < kk; t++)
            for (int c = 0; c < cp; c++) {
                const float want = o < cout && c < cin ? src[((size_t)o * kk + t) * cin + c] : 0.0f;
                cr_assert_eq(h[((size_t)o * kk + t) * cp + c], want, "padded kernel at out %d tap %d in %d", o, t, c);
            }
    free(h);
}

static void pad_case(int n, int h, int w, int cin, int cout, int k, int stride, int pad) {
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    const int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    const size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * ho * wo * cout, nw = (size_t)cout * k * k * cin;
    float *x = test_random(nx, 11, 1.0f), *wt = test_random(nw, 12, 0.1f), *b = test_random(cout, 13, 0.5f);
    float *r = test_random(ny, 14, 1.0f), *y = malloc(ny * sizeof(float));
    float *dx = dev(g, x, nx), *db = dev(g, b, cout), *dr = dev(g, r, ny), *dy = NULL, *dy2 = NULL;
    cr_assert_eq(g->ops->alloc(g, ny, &dy), SDC_OK);
    cr_assert_eq(g->ops->alloc(g, ny, &dy2), SDC_OK);
    char what[128];
    snprintf(what, sizeof what, "padded conv %dx%dx%dx%d->%d k%d s%d p%d", n, h, w, cin, cout, k, stride, pad);

    /* fp32: against the CPU */
    sdc_weight w32;
    cr_assert_eq(g->ops->load_conv(g, SDC_DT_F32, wt, SDC_DT_F32, cout, k, cin, &w32), SDC_OK, "%s",
                 sdc_last_error());
    check_layout(g, w32, wt, cout, k, cin);
    c->ops->conv2d(c, SDC_F32(y), SDC_F32(x), SDC_WEIGHT_F32(wt), b, SDC_F32(r), n, h, w, cin, cout, k, stride, pad);
    cr_assert_eq(g->ops->conv2d(g, SDC_F32(dy), SDC_F32(dx), w32, db, SDC_F32(dr), n, h, w, cin, cout, k, stride, pad), SDC_OK, "%s",
                 sdc_last_error());
    float *got = get(g, dy, ny);
    double e = max_rel_err(got, y, ny, NULL);
    cr_assert(e <= 1e-5, "%s fp32: max rel err %.3g against the CPU", what, e);
    fprintf(stderr, "cuda %s fp32: max rel err %.2e\n", what, e);
    free(got);

    /* fp16: padded against unpadded, the same half weights */
    sdc_weight w16, u16 = {.type = SDC_DT_F16};
    cr_assert_eq(g->ops->load_conv(g, SDC_DT_F16, wt, SDC_DT_F32, cout, k, cin, &w16), SDC_OK, "%s",
                 sdc_last_error());
    cr_assert_eq(g->ops->load_tensor(g, SDC_DT_F16, wt, SDC_DT_F32, nw, &u16.p), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(g->ops->conv2d(g, SDC_F32(dy), SDC_F32(dx), w16, db, SDC_F32(dr), n, h, w, cin, cout, k, stride, pad), SDC_OK, "%s",
                 sdc_last_error());
    cr_assert_eq(g->ops->conv2d(g, SDC_F32(dy2), SDC_F32(dx), u16, db, SDC_F32(dr), n, h, w, cin, cout, k, stride, pad), SDC_OK, "%s",
                 sdc_last_error());
    float *padded = get(g, dy, ny), *plain = get(g, dy2, ny);
    e = max_rel_err(padded, plain, ny, NULL);
    cr_assert(e <= 1e-5, "%s fp16: max rel err %.3g padded against unpadded", what, e);
    fprintf(stderr, "cuda %s fp16: max rel err %.2e against unpadded\n", what, e);
    free(padded), free(plain);

    free(x), free(wt), free(b), free(r), free(y);
    float *bufs[] = {dx, db, dr, dy, dy2, w32.p, w16.p, u16.p};
    for (int i = 0; i < 8; i++) g->ops->free(g, bufs[i]);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

Test(cuda, conv_padded_channels, .timeout = 300) {
    need_device();
    if (small_shapes()) {
        pad_case(2, 9, 7, 4, 12, 3, 1, 1);  /* conv_in: 4 -> c0 */
        pad_case(2, 6, 5, 16, 4, 3, 1, 1);  /* the U-Net's conv_out: -> 4 */
        pad_case(1, 12, 10, 8, 3, 3, 1, 1); /* the VAE's conv_out: -> 3 */
        pad_case(1, 12, 10, 3, 8, 3, 1, 1); /* the VAE encoder's conv_in: 3 -> */
        pad_case(1, 5, 6, 5, 6, 1, 1, 0);   /* 1x1, odd both ways */
        pad_case(1, 9, 8, 3, 5, 3, 2, 1);   /* stride 2, odd both ways */
        pad_case(1, 6, 5, 16, 8, 3, 1, 1);  /* multiples of 8 already: kept as given */
    } else {
        pad_case(2, 64, 64, 4, 320, 3, 1, 1);
        pad_case(2, 64, 64, 320, 4, 3, 1, 1);
        pad_case(1, 512, 512, 128, 3, 3, 1, 1);
        pad_case(1, 512, 512, 3, 128, 3, 1, 1);
    }
}
