/* taesd.h - madebyollin/taesd's decoder (Tiny AutoEncoder for Stable
 * Diffusion): a latent to an RGB image 8 times its size, in about [0, 1],
 * for live previews. taesd.py's Decoder, whose nn.Sequential indices are
 * the file's key names (taesd_decoder.safetensors):
 *
 *   0  Clamp: tanh(x / 3) * 3       1  conv z -> c, 2 ReLU
 *   3, 4, 5    Block(c, c)          6  2x nearest upsample, 7 conv (no bias)
 *   8, 9, 10   Block(c, c)          11 upsample, 12 conv (no bias)
 *   13, 14, 15 Block(c, c)          16 upsample, 17 conv (no bias)
 *   18         Block(c, c)          19 conv c -> 3
 *
 * Block(c, c) = relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x); every conv
 * 3x3, padding 1. c is 64 in the public weights; it is read from the file,
 * so a smaller random model (the tests') loads as well. Activations NHWC,
 * in the weights' type (backend->weight_type when loaded). */
#ifndef SDC_TAESD_H
#define SDC_TAESD_H

#include "model/weights.h"

#define SDC_TAESD_BLOCKS 10
#define SDC_TAESD_UPS 3
#define SDC_TAESD_SCALE 8 /* output pixels per latent pixel, each way */

typedef struct sdc_taesd_block {
    sdc_weight w[3]; float *b[3];    /* (c, 3, 3, c), (c) each: "<i>.conv.0", "<i>.conv.2", "<i>.conv.4" */
} sdc_taesd_block;

typedef struct sdc_taesd {
    int c, z;                        /* channel width (64 in the public weights), latent channels (4) */
    sdc_backend *be;                 /* not owned */
    sdc_weight_set weights;
    sdc_weight in_w; float *in_b;    /* (c, 3, 3, z), (c): "1" */
    sdc_taesd_block block[SDC_TAESD_BLOCKS]; /* "3" "4" "5" "8" "9" "10" "13" "14" "15" "18" */
    sdc_weight up_w[SDC_TAESD_UPS];  /* (c, 3, 3, c): "7" "12" "17", after each upsample */
    sdc_weight out_w; float *out_b;  /* (3, 3, 3, c), (3): "19" */
    sdc_dtype act;                   /* the activations' type: the weights' */
    int st_h, st_w;                  /* latent size the buffers are laid out for */
    sdc_buf buf[3];                  /* work buffers, (8h, 8w, c) each, carved from the arena */
    float *arena;                    /* (sdc_taesd_use_memory) while large enough, else its own */
    size_t arena_cap;                /* floats */
    bool arena_ext;
} sdc_taesd;

/* Load taesd_decoder.safetensors for latents of z_channels channels, every
 * tensor checked before any is read: present with its shape, F16 or F32,
 * none unknown; errors name the file and the tensor. */
sdc_status sdc_taesd_load(const char *path, int z_channels, sdc_backend *be, sdc_taesd **out);
void sdc_taesd_free(sdc_taesd *t);

/* Planned memory, as the VAE's (vae.h): the activations of a decode of an
 * h x w latent in floats, then a region of that size to use instead of
 * its own (NULL: its own again). */
sdc_net_memory sdc_taesd_memory(const sdc_taesd *t, int h, int w);
void sdc_taesd_use_memory(sdc_taesd *t, float *activations, sdc_net_memory m);

/* rgb (1, 8h, 8w, 3) = decoder(z (1, h, w, z_channels)), both fp32 in
 * backend memory; z is the latent as the U-Net sees it (no scale factor),
 * rgb in about [0, 1], not clamped. */
sdc_status sdc_taesd_decode(sdc_taesd *t, const float *z, int h, int w, float *rgb);

#endif
