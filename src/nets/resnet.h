/* resnet.h - the ResNet block (diffusers' ResnetBlock2D) the U-Net and the
 * VAE share: group norm + SiLU, 3x3 conv, the time embedding added per
 * channel (U-Net only), group norm + SiLU, 3x3 conv, plus the input or its
 * 1x1 projection. NHWC activations. */
#ifndef SDC_RESNET_H
#define SDC_RESNET_H

#include "model/weights.h"

typedef struct sdc_resnet {
    int cin, cout;
    float *norm1_w, *norm1_b;   /* (cin) */
    sdc_weight conv1_w; float *conv1_b;   /* (cout, 3, 3, cin), (cout) */
    sdc_weight temb_w; float *temb_b;     /* (cout, time_embed_dim), (cout); .p NULL in the VAE */
    float *norm2_w, *norm2_b;   /* (cout) */
    sdc_weight conv2_w; float *conv2_b;   /* (cout, 3, 3, cout), (cout) */
    sdc_weight short_w; float *short_b;   /* (cout, 1, 1, cin), (cout) when cin != cout, else .p NULL */
} sdc_resnet;

sdc_status sdc_resnet_load(sdc_loader *L, sdc_resnet *r, const char *prefix, int cin, int cout,
                           int temb_dim);
/* y = resnet(x), every buffer of one activation type: temb (batch,
 * temb_dim) is silu(time embedding) or no buffer; temb_proj (batch, cout)
 * scratch; tmp, tmp2 scratch of the activation's size; y distinct from x,
 * tmp, tmp2. */
sdc_status sdc_resnet_forward(sdc_backend *be, const sdc_resnet *r, sdc_buf y, sdc_buf x, sdc_buf temb,
                              int temb_dim, sdc_buf temb_proj, sdc_buf tmp, sdc_buf tmp2, int batch, int h, int w,
                              int groups, float eps);

/* Floating-point operations of one forward over px pixels (the convolutions). */
double sdc_resnet_flops(const sdc_resnet *r, double px);

#endif
