/* weights.h - loading U-Net and VAE weights by their diffusers names from
 * either layout, converting to fp32 in backend memory. Convolution weights
 * are permuted from PyTorch's (cout, cin, k, k) to (cout, k, k, cin). Every
 * buffer is recorded so the model frees them in one call. */
#ifndef SDC_WEIGHTS_H
#define SDC_WEIGHTS_H

#include "model/model.h"

typedef enum sdc_component { SDC_COMP_UNET, SDC_COMP_VAE } sdc_component;

typedef struct sdc_weight_set {
    float **ptrs;   /* every buffer allocated for this model */
    int n, cap;
    size_t floats;  /* total size */
} sdc_weight_set;

typedef struct sdc_loader {
    const sdc_model_files *m;
    sdc_component comp;
    sdc_backend *be;
    sdc_weight_set *set;
    float *stage;        /* host staging, grown as needed */
    size_t stage_cap;    /* floats */
    unsigned char *used; /* per tensor of the component's file: read by this loader */
} sdc_loader;

void sdc_loader_init(sdc_loader *L, const sdc_model_files *m, sdc_component comp,
                     sdc_backend *be, sdc_weight_set *set);
void sdc_loader_done(sdc_loader *L);

/* Every tensor of the component (its file, under its prefix) was read: a
 * tensor left over is a part of the model sdc would silently skip (an
 * SDXL add_embedding, a class embedding, an extra block), so it is an
 * SDC_ERR_UNSUPPORTED error naming it. */
sdc_status sdc_loader_check_all_used(sdc_loader *L);

/* Whether the component has a tensor of this diffusers name. */
bool sdc_loader_has(sdc_loader *L, const char *name);

/* (n) vector */
sdc_status sdc_load_vec(sdc_loader *L, float **dst, int n, const char *name);
/* (out, in) matrix; a (out, in, 1, 1) 1x1 convolution is accepted too */
sdc_status sdc_load_mat(sdc_loader *L, float **dst, int out, int in, const char *name);
/* (cout, cin, k, k) convolution, stored (cout, k, k, cin) */
sdc_status sdc_load_conv(sdc_loader *L, float **dst, int cout, int cin, int k, const char *name);
/* Several (out_i, in) matrices stacked into one (sum out_i, in) buffer,
 * e.g. q, k and v into one projection. */
sdc_status sdc_load_mats_stacked(sdc_loader *L, float **dst, int n_mats, const int *outs, int in,
                                 const char *const *names);

/* Several (n_i) vectors stacked into one (sum n_i) buffer (biases of q, k, v). */
sdc_status sdc_load_vecs_stacked(sdc_loader *L, float **dst, int n_vecs, const int *ns, const char *const *names);

/* "<prefix>.weight" and "<prefix>.bias" of a convolution / of a norm. */
sdc_status sdc_load_conv_bias(sdc_loader *L, float **w, float **b, int cout, int cin, int k, const char *prefix);
sdc_status sdc_load_norm(sdc_loader *L, float **w, float **b, int n, const char *prefix);

void sdc_weight_set_free(sdc_weight_set *set, sdc_backend *be);

#endif
