/* init_image.h - the inputs of image to image and inpainting, made on the
 * host before a render (internal to the library): the init image and the
 * mask brought to the output size, as diffusers' VaeImageProcessor gives
 * them to the pipeline, and the draws of diffusers' prepare_latents /
 * prepare_mask_latents from the encoder's moments. */
#ifndef SDC_INIT_IMAGE_H
#define SDC_INIT_IMAGE_H

#include "sdc.h"
#include "common.h"

/* Largest side of an init image or mask, pixels (as the PNG reader's). */
#define SDC_INIT_MAX_SIDE 8192

/* What a job starts from, at the output size W x H (latent w x h = W/f x H/f). */
typedef struct sdc_init_inputs {
    int W, H;
    float *image;        /* (H, W, 3) NHWC in [-1, 1]: 2 (px / 255) - 1, float32 as numpy; NULL without one */
    float *masked;       /* (H, W, 3) image * (mask < 0.5); NULL without a mask */
    float *mask;         /* (H, W) the binarised mask, 0 or 1; NULL without one */
    unsigned char *rgb;  /* (H, W, 3) the image at the output size (the overlay's original) */
    unsigned char *soft; /* (H, W) the mask before binarising (blurred when mask_blur) */
    /* what the result is composited with (AUTOMATIC1111's overlay), when
     * mask_blur or "only masked" ask for it; NULL otherwise */
    int W0, H0;          /* the result's size: W x H, or the init image's with "only masked" */
    unsigned char *orig_rgb; /* (H0, W0, 3) the original */
    unsigned char *overlay;  /* (H0, W0) its alpha is 255 - this */
    bool full_res;       /* "only masked": the render is the box, pasted back */
    int box[4];          /* x1, y1, x2, y2 (exclusive) of the box in the init image */
} sdc_init_inputs;

/* The inputs of job p at W x H. p->init_rgb may be NULL (text to image
 * with an inpainting model: nothing to make). Errors name the image and
 * what was expected. */
sdc_status sdc_init_inputs_make(const sdc_gen_params *p, int W, int H, sdc_init_inputs *out);
void sdc_init_inputs_free(sdc_init_inputs *in);

/* The result of a job with an overlay: the render pasted back into the
 * whole image ("only masked") and the original composited over it through
 * the mask; img's pixels and size replaced. Nothing to do without one. */
sdc_status sdc_init_finish(const sdc_init_inputs *in, sdc_image *img);

/* The latent mask: torch's F.interpolate(mask, (h, w)) nearest, mask
 * (H, W) -> out (h, w), src = floor(dst * in / out). */
void sdc_mask_to_latent(const float *mask, int H, int W, float *out, int h, int w);

/* A sample of the encoder's latent distribution, as diffusers'
 * DiagonalGaussianDistribution.sample(generator) then * scale:
 * moments (h, w, 2C) NHWC (mean, log-variance), eps (C, h, w) NCHW the
 * generator's normals; out (C, h, w) NCHW = scale (mean + exp(0.5
 * clamp(logvar, -30, 20)) eps), float32. */
void sdc_latent_sample(const float *moments, const float *eps, int C, int h, int w, float scale, float *out);

/* Composite the original back over the result through the soft mask, as
 * AUTOMATIC1111's overlay does: out = orig where the mask is 0, the
 * result where it is 255, alpha compositing in between (8-bit, as PIL's
 * alpha_composite). */
void sdc_overlay(unsigned char *rgb, const unsigned char *orig, const unsigned char *soft, int W, int H);

#endif
