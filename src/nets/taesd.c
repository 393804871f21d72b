/* taesd.c - TAESD's decoder (taesd.h): a strict loader and the forward on
 * the backend's ops (conv2d, activation, upsample_nearest). */
#include "nets/taesd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWAP(a, b) do { sdc_buf t_ = (a); (a) = (b); (b) = t_; } while (0)
#define MAX_WIDTH 1024 /* channels; the public weights have 64 */
#define MAX_LATENT 4096 /* latent pixels a side (a 32768-pixel image) */

/* the nn.Sequential indices of the blocks and of the convs after upsampling */
static const int BLOCK_AT[SDC_TAESD_BLOCKS] = {3, 4, 5, 8, 9, 10, 13, 14, 15, 18};
static const int UP_AT[SDC_TAESD_UPS] = {7, 12, 17};
#define N_TENSORS (2 + 6 * SDC_TAESD_BLOCKS + SDC_TAESD_UPS + 2)

typedef struct want {
    char name[24];
    int ndim;
    int64_t shape[4];
} want;

static void put(want *w, int *n, int ndim, int64_t a, int64_t b, const char *fmt, int i, int k) {
    want *x = &w[(*n)++];
    snprintf(x->name, sizeof x->name, fmt, i, k);
    x->ndim = ndim;
    const int64_t s[4] = {a, b, 3, 3};
    memcpy(x->shape, s, sizeof s);
}

/* every tensor of a decoder of width c for z latent channels, PyTorch's shapes */
static int expected(int c, int z, want *w) {
    int n = 0;
    put(w, &n, 4, c, z, "%d.weight", 1, 0);
    put(w, &n, 1, c, 0, "%d.bias", 1, 0);
    for (int i = 0; i < SDC_TAESD_BLOCKS; i++)
        for (int k = 0; k < 6; k += 2) {
            put(w, &n, 4, c, c, "%d.conv.%d.weight", BLOCK_AT[i], k);
            put(w, &n, 1, c, 0, "%d.conv.%d.bias", BLOCK_AT[i], k);
        }
    for (int i = 0; i < SDC_TAESD_UPS; i++) put(w, &n, 4, c, c, "%d.weight", UP_AT[i], 0);
    put(w, &n, 4, 3, c, "%d.weight", 19, 0);
    put(w, &n, 1, 3, 0, "%d.bias", 19, 0);
    return n;
}

static void shape_text(char *buf, size_t cap, int ndim, const int64_t *s) {
    buf[0] = '\0';
    for (int i = 0; i < ndim; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%lld", i ? ", " : "", (long long)s[i]);
}

/* What 1.weight says: the width and the latent channels; the file is
 * refused here when it is another network (TAESD's encoder, diffusers'
 * AutoencoderTiny) or for other latents. */
static sdc_status read_width(const sdc_st_file *f, int z, int *c) {
    const sdc_st_tensor *t = sdc_st_find(f, "1.weight");
    if (!t) {
        const char *hint = sdc_st_find(f, "0.weight") ? " (it has 0.weight: TAESD's encoder, taesd_encoder, "
                                                        "not its decoder?)"
                           : sdc_st_find_prefix(f, "decoder.layers.") ? " (diffusers' AutoencoderTiny names: "
                                                                          "give taesd_decoder.safetensors)"
                                                                        : "";
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor 1.weight is missing: not madebyollin/taesd's decoder "
                        "(taesd_decoder.safetensors)%s", f->path, hint);
    }
    if (t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > MAX_WIDTH || t->shape[2] != 3 || t->shape[3] != 3) {
        char got[96];
        shape_text(got, sizeof got, t->ndim, t->shape);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor 1.weight has shape (%s), expected (width, latent channels, "
                        "3, 3) with a width of 1 to %d", f->path, got, MAX_WIDTH);
    }
    if (t->shape[1] != z)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: a TAESD decoder for %lld latent channels (1.weight), and this "
                        "model's latents have %d", f->path, (long long)t->shape[1], z);
    *c = (int)t->shape[0];
    return SDC_OK;
}

/* The whole file against the expected list before anything is read. */
static sdc_status check_file(const sdc_st_file *f, int c, int z) {
    want w[N_TENSORS];
    const int n = expected(c, z, w);
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        int k = 0;
        while (k < n && strcmp(w[k].name, t->name)) k++;
        if (k == n)
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s is not part of madebyollin/taesd's decoder "
                            "(taesd_decoder.safetensors has %d tensors, 1.weight to 19.bias)", f->path, t->name,
                            N_TENSORS);
        if (t->dtype != SDC_DT_F16 && t->dtype != SDC_DT_F32)
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s is %s, expected F16 or F32", f->path, t->name,
                            sdc_dtype_name(t->dtype));
        bool ok = t->ndim == w[k].ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == w[k].shape[d];
        if (!ok) {
            char got[96], exp[96];
            shape_text(got, sizeof got, t->ndim, t->shape);
            shape_text(exp, sizeof exp, w[k].ndim, w[k].shape);
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s has shape (%s), expected (%s) for a decoder %d channels "
                            "wide (1.weight)", f->path, t->name, got, exp, c);
        }
    }
    for (int k = 0; k < n; k++)
        if (!sdc_st_find(f, w[k].name))
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s is missing (madebyollin/taesd's decoder has %d tensors)",
                            f->path, w[k].name, N_TENSORS);
    return SDC_OK;
}

static sdc_status load_all(sdc_loader *L, sdc_taesd *t) {
    const int c = t->c;
    char p[32];
    SDC_TRY(sdc_load_conv_bias(L, &t->in_w, &t->in_b, c, t->z, 3, "1"));
    for (int i = 0; i < SDC_TAESD_BLOCKS; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "%d.conv.%d", BLOCK_AT[i], 2 * k);
            SDC_TRY(sdc_load_conv_bias(L, &t->block[i].w[k], &t->block[i].b[k], c, c, 3, p));
        }
    for (int i = 0; i < SDC_TAESD_UPS; i++) {
        snprintf(p, sizeof p, "%d.weight", UP_AT[i]);
        SDC_TRY(sdc_load_conv(L, &t->up_w[i], c, c, 3, p));
    }
    return sdc_load_conv_bias(L, &t->out_w, &t->out_b, 3, c, 3, "19");
}

sdc_status sdc_taesd_load(const char *path, int z_channels, sdc_backend *be, sdc_taesd **out) {
    *out = NULL;
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "TAESD decoder: no file given");
    sdc_st_file *f = NULL;
    SDC_TRY(sdc_st_open(path, &f));
    sdc_taesd *t = calloc(1, sizeof *t);
    sdc_status st = t ? read_width(f, z_channels, &t->c) : sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK) st = check_file(f, t->c, z_channels);
    if (st == SDC_OK) {
        t->z = z_channels;
        t->be = be;
        t->act = be->weight_type; /* activations in the weights' type */
        sdc_loader L;
        sdc_loader_init_file(&L, f, "TAESD decoder", be, &t->weights);
        st = load_all(&L, t);
        sdc_loader_done(&L);
    }
    sdc_st_close(f); /* the weights are the backend's copies now */
    if (st != SDC_OK) {
        sdc_taesd_free(t);
        return st;
    }
    *out = t;
    return SDC_OK;
}

static void free_state(sdc_taesd *t) {
    if (t->arena && !t->arena_ext) t->be->ops->free(t->be, t->arena);
    t->arena = NULL;
    t->arena_cap = 0;
    t->arena_ext = false;
    for (int i = 0; i < 3; i++) t->buf[i] = SDC_NO_BUF;
    t->st_h = t->st_w = 0;
}

void sdc_taesd_free(sdc_taesd *t) {
    if (!t) return;
    if (t->be) {
        free_state(t);
        sdc_weight_set_free(&t->weights, t->be);
    }
    free(t);
}

/* floats of one work buffer: c channels at the output's size */
static size_t stride_floats(const sdc_taesd *t, int h, int w) {
    const size_t px = (size_t)h * SDC_TAESD_SCALE * w * SDC_TAESD_SCALE;
    return (sdc_act_floats(t->act, px * (size_t)t->c) + 63) & ~(size_t)63;
}

sdc_net_memory sdc_taesd_memory(const sdc_taesd *t, int h, int w) {
    sdc_net_memory m = {3 * stride_floats(t, h, w), 0};
    return m;
}

void sdc_taesd_use_memory(sdc_taesd *t, float *activations, sdc_net_memory m) {
    free_state(t);
    if (!activations) return;
    t->arena = activations;
    t->arena_cap = m.activations;
    t->arena_ext = true;
}

static sdc_status ensure_state(sdc_taesd *t, int h, int w) {
    if (t->st_h == h && t->st_w == w) return SDC_OK;
    const size_t stride = stride_floats(t, h, w);
    if (!t->arena_ext || 3 * stride > t->arena_cap) { /* the caller's region is too small: its own */
        free_state(t);
        SDC_TRY(t->be->ops->alloc(t->be, 3 * stride, &t->arena));
        t->arena_cap = 3 * stride;
    }
    for (int i = 0; i < 3; i++) t->buf[i] = (sdc_buf){t->arena + (size_t)i * stride, t->act};
    t->st_h = h;
    t->st_w = w;
    return SDC_OK;
}

/* a (h, w, c) -> relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x) into y;
 * tmp scratch; x, y, tmp distinct */
static sdc_status block(sdc_taesd *t, const sdc_taesd_block *b, sdc_buf y, sdc_buf x, sdc_buf tmp, int h, int w) {
    sdc_backend *be = t->be;
    const sdc_backend_ops *op = be->ops;
    const int c = t->c;
    const size_t n = (size_t)h * w * c;
    SDC_TRY(op->conv2d(be, y, x, b->w[0], b->b[0], SDC_NO_BUF, 1, h, w, c, c, 3, 1, 1));
    SDC_TRY(op->activation(be, y, y, n, SDC_ACT_RELU));
    SDC_TRY(op->conv2d(be, tmp, y, b->w[1], b->b[1], SDC_NO_BUF, 1, h, w, c, c, 3, 1, 1));
    SDC_TRY(op->activation(be, tmp, tmp, n, SDC_ACT_RELU));
    SDC_TRY(op->conv2d(be, y, tmp, b->w[2], b->b[2], x, 1, h, w, c, c, 3, 1, 1)); /* the skip: identity */
    return op->activation(be, y, y, n, SDC_ACT_RELU);
}

sdc_status sdc_taesd_decode(sdc_taesd *t, const float *z, int h, int w, float *rgb) {
    sdc_backend *be = t->be;
    const sdc_backend_ops *op = be->ops;
    const int c = t->c;
    if (h < 1 || w < 1 || h > MAX_LATENT || w > MAX_LATENT)
        return sdc_fail(SDC_ERR_ARG, "TAESD decode: latent size %dx%d (expected 1 to %d a side)", w, h, MAX_LATENT);
    SDC_TRY(ensure_state(t, h, w));
    sdc_buf cur = t->buf[0], a = t->buf[1], b = t->buf[2];
    /* 0: Clamp, in the activations' type (the latent converted first) */
    const size_t nz = (size_t)h * w * t->z;
    if (t->act == SDC_DT_F32) SDC_TRY(op->activation(be, a, SDC_F32(z), nz, SDC_ACT_TANH3));
    else {
        SDC_TRY(op->convert(be, a, SDC_F32(z), nz));
        SDC_TRY(op->activation(be, a, a, nz, SDC_ACT_TANH3));
    }
    /* 1, 2: conv, ReLU */
    SDC_TRY(op->conv2d(be, cur, a, t->in_w, t->in_b, SDC_NO_BUF, 1, h, w, t->z, c, 3, 1, 1));
    SDC_TRY(op->activation(be, cur, cur, (size_t)h * w * c, SDC_ACT_RELU));
    /* three levels of three blocks, each followed by upsample and conv; the last block */
    for (int i = 0; i < SDC_TAESD_BLOCKS; i++) {
        SDC_TRY(block(t, &t->block[i], a, cur, b, h, w));
        SWAP(cur, a);
        if (i % 3 != 2) continue;
        const int u = i / 3;
        SDC_TRY(op->upsample_nearest(be, a, cur, 1, h, w, c, 2 * h, 2 * w));
        h *= 2;
        w *= 2;
        SDC_TRY(op->conv2d(be, cur, a, t->up_w[u], NULL, SDC_NO_BUF, 1, h, w, c, c, 3, 1, 1));
    }
    /* 19: conv to RGB, fp32 */
    if (t->act == SDC_DT_F32)
        return op->conv2d(be, SDC_F32(rgb), cur, t->out_w, t->out_b, SDC_NO_BUF, 1, h, w, c, 3, 3, 1, 1);
    SDC_TRY(op->conv2d(be, a, cur, t->out_w, t->out_b, SDC_NO_BUF, 1, h, w, c, 3, 3, 1, 1));
    return op->convert(be, SDC_F32(rgb), a, (size_t)h * w * 3);
}
