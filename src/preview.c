/* preview.c - live previews (preview.h). */
#include "preview.h"

#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "nets/taesd.h"
#include "plan.h"

#define PREVIEW_EVERY_MAX 1000 /* the most steps a render has */

sdc_status sdc_preview_check(const sdc_ctx *ctx, const sdc_gen_params *p) {
    if (!p->on_preview) return SDC_OK;
    if (p->preview_every < 1 || p->preview_every > PREVIEW_EVERY_MAX)
        return sdc_fail(SDC_ERR_ARG, "preview every %d steps: expected 1 to %d", p->preview_every,
                        PREVIEW_EVERY_MAX);
    if (p->preview != SDC_PREVIEW_CHEAP && p->preview != SDC_PREVIEW_TAESD)
        return sdc_fail(SDC_ERR_ARG, "preview method %d: expected SDC_PREVIEW_CHEAP or SDC_PREVIEW_TAESD",
                        (int)p->preview);
    if (!ctx) return SDC_OK;
    if (p->preview == SDC_PREVIEW_TAESD && !ctx->taesd)
        return sdc_fail(SDC_ERR_ARG, "TAESD previews: no TAESD decoder was loaded (sdc_params.taesd_path, "
                        "--taesd FILE)");
    if (p->preview == SDC_PREVIEW_CHEAP && ctx->model->config.vae.z_channels != 4)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "the cheap preview mixes 4 latent channels and this model's latents "
                        "have %d", ctx->model->config.vae.z_channels);
    return SDC_OK;
}

bool sdc_preview_due(const sdc_gen_params *p, int step) {
    return p->on_preview && p->preview_every > 0 && step % p->preview_every == 0;
}

/* modules/sd_samplers_common.py single_sample_to_image, in float32 one
 * operation at a time as torch runs them (-std=c11 implies
 * -ffp-contract=off): x * 0.5 + 0.5, clamped to [0, 1], 255. * x, then
 * .to(torch.uint8), which truncates. NaN (undefined there) gives 0. */
static unsigned char a1111_u8(float x) {
    float v = x * 0.5f + 0.5f;
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v > 1.0f) v = 1.0f;
    return (unsigned char)(255.0f * v);
}

/* sd_vae_approx.py's coefficients: latent channel k to R, G, B; SD 1.x
 * and 2.x, then its is_sdxl branch */
static const float CHEAP[2][4][3] = {{
                                         {0.298f, 0.207f, 0.208f},
                                         {0.187f, 0.286f, 0.173f},
                                         {-0.158f, 0.189f, 0.264f},
                                         {-0.184f, -0.271f, -0.473f},
                                     },
                                     {
                                         {0.3448f, 0.4168f, 0.4395f},
                                         {-0.1953f, -0.0290f, 0.0250f},
                                         {0.1074f, 0.0886f, -0.0163f},
                                         {-0.3730f, -0.2499f, -0.2088f},
                                     }};

void sdc_preview_cheap(const float *x0, int h, int w, bool sdxl, unsigned char *rgb) {
    const float(*k)[3] = CHEAP[sdxl ? 1 : 0];
    const size_t px = (size_t)h * w;
    for (size_t i = 0; i < px; i++) {
        const float *l = x0 + 4 * i;
        for (int c = 0; c < 3; c++) {
            float v = l[0] * k[0][c];
            for (int j = 1; j < 4; j++) v += l[j] * k[j][c];
            rgb[3 * i + c] = a1111_u8(v);
        }
    }
}

void sdc_preview_taesd_u8(const float *y, size_t n, unsigned char *rgb) {
    for (size_t i = 0; i < n; i++) rgb[i] = a1111_u8(y[i] * 2.0f - 1.0f);
}

/* x0 (lh, lw, C) host -> TAESD on the backend -> rgb (8 lh, 8 lw, 3); y:
 * host floats of that size */
static sdc_status taesd_rgb(sdc_ctx *ctx, const sdc_plan *pl, const float *x0, int lh, int lw, float *y,
                            unsigned char *rgb) {
    sdc_backend *be = ctx->be;
    const size_t n = (size_t)lh * lw * ctx->taesd->z;
    const size_t m = (size_t)lh * SDC_TAESD_SCALE * lw * SDC_TAESD_SCALE * 3;
    SDC_TRY(be->ops->upload(be, pl->pv_z, x0, n));
    SDC_TRY(sdc_taesd_decode(ctx->taesd, pl->pv_z, lh, lw, pl->pv_rgb));
    SDC_TRY(be->ops->download(be, y, pl->pv_rgb, m));
    sdc_preview_taesd_u8(y, m, rgb);
    return SDC_OK;
}

/* src (sh, sw, 3) -> dst (dh, dw, 3), nearest as PyTorch's
 * F.interpolate(mode="nearest"): source index floor(dst * in / out) */
static void nearest(const unsigned char *src, int sh, int sw, unsigned char *dst, int dh, int dw) {
    for (int y = 0; y < dh; y++) {
        const unsigned char *row = src + (size_t)((int64_t)y * sh / dh) * sw * 3;
        for (int x = 0; x < dw; x++)
            memcpy(dst + ((size_t)y * dw + x) * 3, row + (size_t)((int64_t)x * sw / dw) * 3, 3);
    }
}

sdc_status sdc_preview_emit(sdc_ctx *ctx, const sdc_plan *pl, const sdc_gen_params *p,
                            const sdc_latent_update *u, const float *x_dev, const float *mo_dev, int lh, int lw,
                            int step, int steps) {
    sdc_backend *be = ctx->be;
    const bool taesd = p->preview == SDC_PREVIEW_TAESD;
    const int C = ctx->model->config.vae.z_channels, s = taesd ? SDC_TAESD_SCALE : 1;
    const int W = p->width, H = p->height; /* the image's: a multiple of the latent's */
    const size_t n = (size_t)lh * lw * C, m = (size_t)lh * s * lw * s * 3;
    float *x = malloc(n * sizeof(float)), *mo = malloc(n * sizeof(float)), *x0 = malloc(n * sizeof(float));
    float *y = taesd ? malloc(m * sizeof(float)) : NULL;
    unsigned char *rgb = malloc(m), *out = malloc((size_t)W * H * 3);
    sdc_status st = x && mo && x0 && rgb && out && (y || !taesd) ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK) st = be->ops->download(be, x, x_dev, n);
    if (st == SDC_OK) st = be->ops->download(be, mo, mo_dev, n);
    if (st == SDC_OK) {
        sdc_latent_update_x0(u, x, mo, x0, n);
        if (taesd) st = taesd_rgb(ctx, pl, x0, lh, lw, y, rgb);
        else sdc_preview_cheap(x0, lh, lw, ctx->model->config.family == SDC_FAMILY_SDXL, rgb);
    }
    if (st == SDC_OK) { /* at the image's size, so that it lines up with it */
        nearest(rgb, lh * s, lw * s, out, H, W);
        p->on_preview(step, steps, out, W, H, p->user);
    }
    free(x), free(mo), free(x0), free(y), free(rgb), free(out);
    return st;
}
