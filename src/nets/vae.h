/* vae.h - the KL-VAE decoder (diffusers' AutoencoderKL.decode: post_quant_conv
 * then Decoder) on the backend interface. NHWC; names as diffusers' keys. */
#ifndef SDC_VAE_H
#define SDC_VAE_H

#include "nets/resnet.h"

typedef struct sdc_vae_attn {    /* mid-block attention: one head as wide as the channels */
    int c;
    float *norm_w, *norm_b;      /* (c) group norm, eps 1e-6 */
    sdc_weight qkv_w; float *qkv_b;        /* (3c, c), (3c): to_q, to_k, to_v stacked */
    sdc_weight out_w; float *out_b;        /* (c, c), (c): to_out.0 */
} sdc_vae_attn;

typedef struct sdc_vae_up {
    int n_res;                   /* num_res_blocks + 1 */
    sdc_resnet *res;
    sdc_weight up_w; float *up_b;          /* conv after 2x nearest upsampling; .p NULL at the last block */
} sdc_vae_up;

typedef struct sdc_vae_down {
    int n_res;                   /* num_res_blocks */
    sdc_resnet *res;
    sdc_weight down_w; float *down_b;      /* stride-2 conv after (0,1,0,1) padding; .p NULL at the last block */
} sdc_vae_down;

typedef struct sdc_vae_encoder {
    sdc_weight conv_in_w; float *conv_in_b;   /* (c0, 3, 3, 3) */
    sdc_vae_down down[SDC_MAX_LEVELS];
    sdc_resnet mid_res[2];
    sdc_vae_attn mid_attn;
    float *norm_out_w, *norm_out_b; /* (c_top) */
    sdc_weight conv_out_w; float *conv_out_b; /* (2z, 3, 3, c_top): mean and log-variance */
    sdc_weight quant_w; float *quant_b;       /* (2z, 2z): quant_conv */
} sdc_vae_encoder;

typedef struct sdc_vae {
    sdc_vae_config cfg;
    sdc_backend *be;             /* not owned */
    sdc_weight_set weights;
    sdc_weight pq_w; float *pq_b;          /* (z, z), (z): post_quant_conv */
    sdc_weight conv_in_w; float *conv_in_b;   /* (c_top, 3, 3, z) */
    sdc_resnet mid_res[2];
    sdc_vae_attn mid_attn;
    sdc_vae_up up[SDC_MAX_LEVELS];  /* up[i] = diffusers' decoder.up_blocks.i (deepest first) */
    float *norm_out_w, *norm_out_b; /* (c0) */
    sdc_weight conv_out_w; float *conv_out_b; /* (3, 3, 3, c0), (3) */
    sdc_vae_encoder *enc;        /* NULL when the file has no encoder */
    sdc_dtype act;               /* the activations' type: the weights' (entry points take fp32) */
    int st_h, st_w;              /* latent size the buffers are sized for */
    sdc_buf buf[4];              /* work buffers carved from one arena: the caller's */
    float *arena;                /* (sdc_vae_use_memory) while large enough, else the VAE's own */
    size_t arena_cap;            /* floats */
    bool arena_ext;
    size_t buf_elems[4];         /* elements each of buf holds (sized by role: vae.c's work_needs) */
    size_t canary;               /* tests: floats of a gap behind each buffer (0) */
} sdc_vae;

sdc_status sdc_vae_load(const sdc_model_files *m, sdc_backend *be, sdc_vae **out);
void sdc_vae_free(sdc_vae *v);

/* Image size for a latent of h x w: the decoder upsamples n_levels - 1 times. */
int sdc_vae_factor(const sdc_vae_config *c);

/* Planned memory: the activations of a decode (or encode) of an h x w
 * latent, in floats (the VAE keeps no state); then a region of the
 * caller's backend memory of that size (256-byte aligned) to use instead
 * of its own, or NULL for its own again. */
sdc_net_memory sdc_vae_memory(const sdc_vae *v, int h, int w);
/* Tests: with v->canary floats set before the first call, a gap of them
 * behind each work buffer, filled with a pattern; the first buffer whose
 * gap no longer holds it (an op wrote past the buffer), or -1. */
int sdc_vae_canaries_hit(sdc_vae *v);
void sdc_vae_use_memory(sdc_vae *v, float *activations, sdc_net_memory m);

/* image (1, h * f, w * f, 3) = decode(z (1, h, w, z_channels)), both fp32
 * in backend memory; z is the latent already divided by the scale factor. */
sdc_status sdc_vae_decode(sdc_vae *v, const float *z, int h, int w, float *image);

/* mean (1, H/f, W/f, z_channels) of the latent distribution of image
 * (1, H, W, 3) in [-1, 1], both fp32 in backend memory (AutoencoderKL.encode(x).latent_dist.mean, before
 * the scale factor); H and W multiples of the factor. */
sdc_status sdc_vae_encode(sdc_vae *v, const float *image, int H, int W, float *mean);
/* Both moments of that distribution, moments (1, H/f, W/f, 2 z_channels):
 * the mean, then the log-variance (unclamped), per pixel. */
sdc_status sdc_vae_encode_moments(sdc_vae *v, const float *image, int H, int W, float *moments);

#endif
