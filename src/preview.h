/* preview.h - live previews during denoising (internal to the library):
 * a step's estimate of the final latents (the sampler's x0, from the
 * latents and the guided model output before the update), made RGB as
 * AUTOMATIC1111 does it, by its cheap projection or by TAESD's decoder,
 * and handed to sdc_gen_params.on_preview. The loop's own buffers are only
 * read: previews change nothing in the result. */
#ifndef SDC_PREVIEW_H
#define SDC_PREVIEW_H

#include "sdc.h"
#include "common.h"
#include "backend/backend.h"

struct sdc_plan;

/* The preview settings of p (sdc_check_gen_params; ctx may be NULL). */
sdc_status sdc_preview_check(const sdc_ctx *ctx, const sdc_gen_params *p);

/* Whether step `step` (counted from 1 among the steps that run) previews. */
bool sdc_preview_due(const sdc_gen_params *p, int step);

/* Step `step` of `steps`: x0 of the update u from x_dev and mo_dev, both
 * (lh, lw, C) fp32 in backend memory as they are before the update, to
 * RGB (pl's preview buffers for TAESD), brought to the image's size
 * (p->width x p->height) by nearest neighbour, to p->on_preview. */
sdc_status sdc_preview_emit(sdc_ctx *ctx, const struct sdc_plan *pl, const sdc_gen_params *p,
                            const sdc_latent_update *u, const float *x_dev, const float *mo_dev, int lh, int lw,
                            int step, int steps);

/* AUTOMATIC1111's cheap_approximation (modules/sd_vae_approx.py; SDXL's
 * coefficients when sdxl, else SD 1.x and 2.x's) of x0 (h, w, 4) NHWC,
 * then its 8-bit conversion: rgb (h, w, 3). */
void sdc_preview_cheap(const float *x0, int h, int w, bool sdxl, unsigned char *rgb);

/* A1111's 8-bit conversion of TAESD's output y (n values in about [0, 1]):
 * y * 2 - 1 (samples_to_images_tensor), then as the cheap one's. */
void sdc_preview_taesd_u8(const float *y, size_t n, unsigned char *rgb);

#endif
