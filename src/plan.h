/* plan.h - planned memory of a render (internal to the library).
 *
 * A group of jobs rendered together has one shape: batch (images, doubled
 * with guidance), latent size, context length, steps. For that shape every
 * buffer of backend memory the render touches after the text encoder is
 * laid out once in one arena, sized by a dry run of the backend:
 *
 *   [ U-Net activations | the VAE's (the same bytes: it runs after the steps)
 *     | TAESD's, when loaded (it runs between the steps, for previews) ]
 *   [ U-Net state: the context's keys and values, the time embeddings ]
 *   [ the loop's buffers: context, latents, model input and output, noise,
 *     DPM++'s data predictions; one image's latents and pixels to decode ]
 *   [ the backend's scratch: im2col blocks, attention scores, statistics,
 *     half copies of operands, as the dry run found them ]
 *
 * Once planned, no op allocates: the next group of the same shape reuses
 * the plan as it is. The text encoder's few buffers do not depend on the
 * shape and are its own, made when the model loads. */
#ifndef SDC_PLAN_H
#define SDC_PLAN_H

#include "sdc.h"
#include "backend/backend.h"

typedef struct sdc_plan {
    /* the shape it was planned for */
    int batch, images, lh, lw, tokens, steps;
    bool encode;             /* image to image: the VAE encodes too */
    sdc_vae_tiling tiling;   /* the VAE tiling asked for, and its tile (pixels) */
    int tile_size;
    int tile;                /* the VAE's tile in pixels as planned; 0: it runs untiled */
    float *arena;            /* the one allocation */
    size_t floats;           /* its size, scratch included */
    size_t scratch_bytes;    /* the backend's part, from the dry run */
    sdc_net_memory unet, vae, taesd; /* taesd: none without a TAESD decoder loaded */
    float *ctx;              /* (batch, tokens, context_dim) the uploaded context */
    float *x;                /* (images, lh, lw, C) the latents (C: the VAE's latent channels) */
    float *in;               /* (batch, lh, lw, Cin) the U-Net's input (Cin = C, or 2C + 1 for an
                                inpainting U-Net: latents, mask, masked image's latents) */
    float *eps;              /* (batch, lh, lw, C) the U-Net's output */
    float *noise;            /* (images, lh, lw, C) an ancestral step's noise */
    float *x0[2];            /* (images, lh, lw, C) DPM++'s data predictions */
    float *cond;             /* (images, lh, lw, Cin - C) an inpainting U-Net's extra input; NULL when Cin = C */
    float *z;                /* (lh, lw, C) one image's latents / scale factor; tiled, then each tile's */
    float *img;              /* (f lh, f lw, 3) its pixels (also the image to encode); tiled,
                                (min(tile, f lh), min(tile, f lw), 3): each tile's */
    float *mom;              /* (lh, lw, 2C) the encoder's moments: mean, log-variance; tiled, each tile's */
    /* with a TAESD decoder loaded (previews; its activations share the
     * U-Net's bytes: it runs between steps); NULL otherwise */
    float *pv_z;             /* (lh, lw, C) a step's x0 estimate */
    float *pv_rgb;           /* (8 lh, 8 lw, 3) its decoded pixels */
} sdc_plan;

/* The plan for this shape: ctx's current one when it matches, else a new
 * one (the old released first). The VAE tiles (tile_px, valid for the
 * model) as `tiling` says; AUTO plans it untiled first and tiles when that
 * plan is larger than the memory the backend has available, or cannot be
 * allocated. */
sdc_status sdc_plan_render(sdc_ctx *ctx, int batch, int images, int lh, int lw, int tokens, int steps,
                           bool encode, sdc_vae_tiling tiling, int tile_px, const sdc_plan **out);
/* Give the arena back; the U-Net, the VAE and the backend go back to
 * memory of their own. */
void sdc_plan_release(sdc_ctx *ctx);

#endif
