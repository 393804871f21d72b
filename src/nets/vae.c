/* vae.c - KL-VAE decoder forward (diffusers' AutoencoderKL semantics). */
#include "nets/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWAP(a, b) do { sdc_buf t_ = (a); (a) = (b); (b) = t_; } while (0)
#define VAE_EPS 1e-6f

int sdc_vae_factor(const sdc_vae_config *c) { return 1 << (c->n_levels - 1); }

static int level_ch(const sdc_vae_config *c, int l) { return c->channels * c->channels_mult[l]; }

static sdc_status attn_load(sdc_loader *L, sdc_vae_attn *a, int c, const char *p) {
    char n[256], q[256], k[256], v[256];
    /* older diffusers files name them query/key/value/proj_attn */
    snprintf(n, sizeof n, "%s.to_q.weight", p);
    bool legacy = !sdc_loader_has(L, n);
    const char *nq = legacy ? "query" : "to_q", *nk = legacy ? "key" : "to_k", *nv = legacy ? "value" : "to_v",
               *no = legacy ? "proj_attn" : "to_out.0";
    const int outs[3] = {c, c, c};
    const char *names[3] = {q, k, v};
    a->c = c;
    snprintf(n, sizeof n, "%s.group_norm", p);
    SDC_TRY(sdc_load_norm(L, &a->norm_w, &a->norm_b, c, n));
    snprintf(q, sizeof q, "%s.%s.weight", p, nq);
    snprintf(k, sizeof k, "%s.%s.weight", p, nk);
    snprintf(v, sizeof v, "%s.%s.weight", p, nv);
    SDC_TRY(sdc_load_mats_stacked(L, &a->qkv_w, 3, outs, c, names));
    snprintf(q, sizeof q, "%s.%s.bias", p, nq);
    snprintf(k, sizeof k, "%s.%s.bias", p, nk);
    snprintf(v, sizeof v, "%s.%s.bias", p, nv);
    SDC_TRY(sdc_load_vecs_stacked(L, &a->qkv_b, 3, outs, names));
    snprintf(n, sizeof n, "%s.%s.weight", p, no);
    SDC_TRY(sdc_load_mat(L, &a->out_w, c, c, n));
    snprintf(n, sizeof n, "%s.%s.bias", p, no);
    return sdc_load_vec(L, &a->out_b, c, n);
}

static sdc_status load_all(sdc_loader *L, sdc_vae *v) {
    const sdc_vae_config *c = &v->cfg;
    const int nl = c->n_levels, z = c->z_channels, top = level_ch(c, nl - 1), c0 = level_ch(c, 0);
    char p[256];
    SDC_TRY(sdc_load_mat(L, &v->pq_w, z, z, "post_quant_conv.weight"));
    SDC_TRY(sdc_load_vec(L, &v->pq_b, z, "post_quant_conv.bias"));
    SDC_TRY(sdc_load_conv_bias(L, &v->conv_in_w, &v->conv_in_b, top, z, 3, "decoder.conv_in"));
    SDC_TRY(sdc_resnet_load(L, &v->mid_res[0], "decoder.mid_block.resnets.0", top, top, 0));
    SDC_TRY(attn_load(L, &v->mid_attn, top, "decoder.mid_block.attentions.0"));
    SDC_TRY(sdc_resnet_load(L, &v->mid_res[1], "decoder.mid_block.resnets.1", top, top, 0));
    int prev = top;
    for (int i = 0; i < nl; i++) {
        const int l = nl - 1 - i, out = level_ch(c, l);
        sdc_vae_up *U = &v->up[i];
        U->n_res = c->num_res_blocks + 1;
        U->res = calloc((size_t)U->n_res, sizeof *U->res);
        if (!U->res) return sdc_fail(SDC_ERR_OOM, "out of memory");
        for (int j = 0; j < U->n_res; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            SDC_TRY(sdc_resnet_load(L, &U->res[j], p, j ? out : prev, out, 0));
        }
        prev = out;
        if (l > 0) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            SDC_TRY(sdc_load_conv_bias(L, &U->up_w, &U->up_b, out, out, 3, p));
        }
    }
    SDC_TRY(sdc_load_norm(L, &v->norm_out_w, &v->norm_out_b, c0, "decoder.conv_norm_out"));
    return sdc_load_conv_bias(L, &v->conv_out_w, &v->conv_out_b, 3, c0, 3, "decoder.conv_out");
}

static sdc_status encoder_load(sdc_loader *L, const sdc_vae_config *c, sdc_vae_encoder *e) {
    const int nl = c->n_levels, z = c->z_channels, top = level_ch(c, nl - 1), c0 = level_ch(c, 0);
    char p[256];
    SDC_TRY(sdc_load_conv_bias(L, &e->conv_in_w, &e->conv_in_b, c0, 3, 3, "encoder.conv_in"));
    int prev = c0;
    for (int l = 0; l < nl; l++) {
        sdc_vae_down *D = &e->down[l];
        const int out = level_ch(c, l);
        D->n_res = c->num_res_blocks;
        D->res = calloc((size_t)D->n_res, sizeof *D->res);
        if (!D->res) return sdc_fail(SDC_ERR_OOM, "out of memory");
        for (int j = 0; j < D->n_res; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", l, j);
            SDC_TRY(sdc_resnet_load(L, &D->res[j], p, j ? out : prev, out, 0));
        }
        prev = out;
        if (l + 1 < nl) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", l);
            SDC_TRY(sdc_load_conv_bias(L, &D->down_w, &D->down_b, out, out, 3, p));
        }
    }
    SDC_TRY(sdc_resnet_load(L, &e->mid_res[0], "encoder.mid_block.resnets.0", top, top, 0));
    SDC_TRY(attn_load(L, &e->mid_attn, top, "encoder.mid_block.attentions.0"));
    SDC_TRY(sdc_resnet_load(L, &e->mid_res[1], "encoder.mid_block.resnets.1", top, top, 0));
    SDC_TRY(sdc_load_norm(L, &e->norm_out_w, &e->norm_out_b, top, "encoder.conv_norm_out"));
    SDC_TRY(sdc_load_conv_bias(L, &e->conv_out_w, &e->conv_out_b, 2 * z, top, 3, "encoder.conv_out"));
    SDC_TRY(sdc_load_mat(L, &e->quant_w, 2 * z, 2 * z, "quant_conv.weight"));
    return sdc_load_vec(L, &e->quant_b, 2 * z, "quant_conv.bias");
}

sdc_status sdc_vae_load(const sdc_model_files *m, sdc_backend *be, sdc_vae **out) {
    *out = NULL;
    const sdc_vae_config *c = &m->config.vae;
    if (c->n_levels < 1 || c->channels < 1 || c->z_channels < 1 || c->norm_groups < 1)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: VAE configuration not understood", m->path);
    sdc_vae *v = calloc(1, sizeof *v);
    if (!v) return sdc_fail(SDC_ERR_OOM, "out of memory");
    v->cfg = *c;
    v->be = be;
    v->act = be->weight_type; /* activations in the weights' type */
    sdc_loader L;
    sdc_loader_init(&L, m, SDC_COMP_VAE, be, &v->weights);
    sdc_status st = load_all(&L, v);
    if (st == SDC_OK && c->has_encoder) {
        v->enc = calloc(1, sizeof *v->enc);
        st = v->enc ? encoder_load(&L, c, v->enc) : sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    sdc_loader_done(&L);
    if (st != SDC_OK) {
        sdc_vae_free(v);
        return st;
    }
    *out = v;
    return SDC_OK;
}

static void free_state(sdc_vae *v) {
    if (v->arena && !v->arena_ext) v->be->ops->free(v->be, v->arena);
    v->arena = NULL;
    v->arena_cap = 0;
    v->arena_ext = false;
    for (int i = 0; i < 4; i++) v->buf[i] = SDC_NO_BUF;
    v->st_h = v->st_w = 0;
}

void sdc_vae_free(sdc_vae *v) {
    if (!v) return;
    free_state(v);
    if (v->enc) {
        for (int i = 0; i < SDC_MAX_LEVELS; i++) free(v->enc->down[i].res);
        free(v->enc);
    }
    sdc_weight_set_free(&v->weights, v->be);
    for (int i = 0; i < SDC_MAX_LEVELS; i++) free(v->up[i].res);
    free(v);
}

/* The elements each of the four work buffers needs for an h x w latent,
 * found by walking sdc_vae_decode's (and the encoder's) sequence of ops:
 * which buffer each writes and how much. Sized by role, not all four as
 * the largest: at 512x512 the full-resolution level needs two buffers of
 * 256 channels (the upsampler's input to its conv and the first ResNet's
 * input) and two of 128, 768 MB instead of 1 GB in fp32. A buffer an op
 * overruns would corrupt its neighbour, so tests put
 * canaries between them and decode and encode every shipped layout
 * (tests/test_vae_memory.c). */
typedef struct walk {
    size_t need[4];
    int cur, spare, t2, t3; /* which buffer has each role now */
} walk;

static void put(walk *k, int b, size_t n) {
    if (n > k->need[b]) k->need[b] = n;
}

/* sdc_resnet_forward(y = spare, x = cur, tmp = t2, tmp2 = t3), then the
 * caller's SWAP(cur, spare) */
static void walk_res(walk *k, size_t hw, const sdc_resnet *r) {
    put(k, k->t2, hw * (size_t)(r->cin > r->cout ? r->cin : r->cout)); /* norm1's output, the shortcut's */
    put(k, k->t3, hw * (size_t)r->cout);
    put(k, k->spare, hw * (size_t)r->cout);
    const int t = k->cur;
    k->cur = k->spare, k->spare = t;
}

/* attn_forward(x = cur, A = t2, Q = t3) */
static void walk_attn(walk *k, size_t hw, int c) {
    put(k, k->t2, hw * (size_t)c);
    put(k, k->t3, hw * 3 * (size_t)c);
}

static void work_needs(const sdc_vae *v, int h, int w, size_t need[4]) {
    const sdc_vae_config *c = &v->cfg;
    const int nl = c->n_levels, zc = c->z_channels, top = level_ch(c, nl - 1);
    const bool f32 = v->act == SDC_DT_F32;
    walk k = {{0}, 0, 1, 2, 3};
    size_t hw = (size_t)h * w;
    int ch = top;
    if (!f32) put(&k, k.t3, hw * zc);
    put(&k, k.t2, hw * zc);
    put(&k, k.cur, hw * top);
    walk_res(&k, hw, &v->mid_res[0]);
    walk_attn(&k, hw, top);
    walk_res(&k, hw, &v->mid_res[1]);
    for (int i = 0; i < nl; i++) {
        const sdc_vae_up *U = &v->up[i];
        for (int j = 0; j < U->n_res; j++) {
            walk_res(&k, hw, &U->res[j]);
            ch = U->res[j].cout;
        }
        if (U->up_w.p) {
            hw *= 4;
            put(&k, k.t2, hw * ch);
            put(&k, k.cur, hw * ch);
        }
    }
    put(&k, k.t2, hw * ch);
    if (!f32) put(&k, k.t3, hw * 3);
    if (v->enc) { /* the encoder starts from the buffers' first roles again */
        const sdc_vae_encoder *e = v->enc;
        int H = h * sdc_vae_factor(c), W = w * sdc_vae_factor(c);
        walk q = {{k.need[0], k.need[1], k.need[2], k.need[3]}, 0, 1, 2, 3};
        ch = level_ch(c, 0);
        if (!f32) put(&q, q.t3, (size_t)H * W * 3);
        put(&q, q.cur, (size_t)H * W * ch);
        for (int l = 0; l < nl; l++) {
            const sdc_vae_down *D = &e->down[l];
            for (int j = 0; j < D->n_res; j++) {
                walk_res(&q, (size_t)H * W, &D->res[j]);
                ch = D->res[j].cout;
            }
            if (D->down_w.p) {
                put(&q, q.t2, (size_t)(H + 1) * (W + 1) * ch);
                H /= 2, W /= 2;
                put(&q, q.cur, (size_t)H * W * ch);
            }
        }
        walk_res(&q, (size_t)H * W, &e->mid_res[0]);
        walk_attn(&q, (size_t)H * W, ch);
        walk_res(&q, (size_t)H * W, &e->mid_res[1]);
        put(&q, q.t2, (size_t)H * W * ch);
        put(&q, q.t3, (size_t)H * W * 2 * zc);
        if (!f32) put(&q, q.t2, (size_t)H * W * 2 * zc);
        memcpy(k.need, q.need, sizeof k.need);
    }
    memcpy(need, k.need, sizeof k.need);
}

/* one buffer's floats in the arena: its elements in the activations'
 * type and the canary gap tests ask for right behind them, rounded up so
 * that the next buffer starts 256-byte aligned */
static size_t slot_floats(const sdc_vae *v, size_t elems) {
    return (sdc_act_floats(v->act, elems) + v->canary + 63) & ~(size_t)63;
}

#define CANARY (-12345.5f)

static float *canary_at(const sdc_vae *v, int i) {
    return (float *)v->buf[i].p + sdc_act_floats(v->act, v->buf_elems[i]);
}

static sdc_status fill_canary(sdc_vae *v, int i) {
    float *gap = malloc(v->canary * sizeof(float));
    if (!gap) return sdc_fail(SDC_ERR_OOM, "out of memory");
    for (size_t j = 0; j < v->canary; j++) gap[j] = CANARY;
    sdc_status st = v->be->ops->upload(v->be, canary_at(v, i), gap, v->canary);
    free(gap);
    return st;
}

int sdc_vae_canaries_hit(sdc_vae *v) {
    float *gap = malloc(v->canary * sizeof(float));
    int hit = -1;
    for (int i = 0; gap && i < 4 && hit < 0 && v->buf[i].p; i++) {
        if (v->be->ops->download(v->be, gap, canary_at(v, i), v->canary) != SDC_OK) hit = i;
        for (size_t j = 0; j < v->canary && hit < 0; j++)
            if (gap[j] != CANARY) hit = i;
    }
    free(gap);
    return gap ? hit : 4;
}

sdc_net_memory sdc_vae_memory(const sdc_vae *v, int h, int w) {
    size_t need[4], total = 0;
    work_needs(v, h, w, need);
    for (int i = 0; i < 4; i++) total += slot_floats(v, need[i]);
    return (sdc_net_memory){total, 0};
}

void sdc_vae_use_memory(sdc_vae *v, float *activations, sdc_net_memory m) {
    free_state(v);
    if (!activations) return;
    v->arena = activations;
    v->arena_cap = m.activations;
    v->arena_ext = true;
}

static sdc_status ensure_state(sdc_vae *v, int h, int w) {
    if (v->st_h == h && v->st_w == w) return SDC_OK;
    size_t need[4], total = 0;
    work_needs(v, h, w, need);
    for (int i = 0; i < 4; i++) total += slot_floats(v, need[i]);
    if (!v->arena_ext || total > v->arena_cap) { /* the caller's region is too small: the VAE's own */
        free_state(v);
        SDC_TRY(v->be->ops->alloc(v->be, total, &v->arena));
        v->arena_cap = total;
    }
    /* the four work buffers in one arena, laid out once per latent size */
    for (size_t i = 0, off = 0; i < 4; off += slot_floats(v, need[i]), i++) {
        v->buf[i] = (sdc_buf){v->arena + off, v->act};
        v->buf_elems[i] = need[i];
        if (v->canary) SDC_TRY(fill_canary(v, (int)i));
    }
    v->st_h = h;
    v->st_w = w;
    return SDC_OK;
}

/* x (hw, c) += out(attention(qkv(gn(x)))), one head */
static sdc_status attn_forward(sdc_vae *v, const sdc_vae_attn *a, sdc_buf x, int hw, sdc_buf A, sdc_buf Q) {
    const sdc_backend_ops *op = v->be->ops;
    const int c = a->c;
    SDC_TRY(op->group_norm(v->be, A, x, a->norm_w, a->norm_b, 1, hw, c, v->cfg.norm_groups, VAE_EPS, false));
    SDC_TRY(op->linear(v->be, Q, A, a->qkv_w, a->qkv_b, hw, c, 3 * c));
    v->be->attention_bf16 = a->qkv_w.bf16;
    SDC_TRY(op->attention(v->be, A, Q, sdc_at(Q, c), sdc_at(Q, 2 * (size_t)c), 1, 1, hw, hw, c, 3 * c, 3 * c, false));
    SDC_TRY(op->linear(v->be, Q, A, a->out_w, a->out_b, hw, c, c));
    return op->add(v->be, x, x, Q, (size_t)hw * c);
}

sdc_status sdc_vae_decode(sdc_vae *v, const float *z, int h, int w, float *image) {
    const sdc_vae_config *c = &v->cfg;
    sdc_backend *be = v->be;
    const sdc_backend_ops *op = be->ops;
    const int nl = c->n_levels, zc = c->z_channels, G = c->norm_groups, top = level_ch(c, nl - 1);
    if (h < 1 || w < 1) return sdc_fail(SDC_ERR_ARG, "vae: bad latent size %dx%d", h, w);
    SDC_TRY(ensure_state(v, h, w));
    sdc_buf cur = v->buf[0], spare = v->buf[1], t2 = v->buf[2], t3 = v->buf[3];
    sdc_buf zin = SDC_F32(z); /* the fp32 latent in the activations' type */
    if (v->act != SDC_DT_F32) {
        zin = t3;
        SDC_TRY(op->convert(be, zin, SDC_F32(z), (size_t)h * w * zc));
    }
    SDC_TRY(op->linear(be, t2, zin, v->pq_w, v->pq_b, h * w, zc, zc));
    SDC_TRY(op->conv2d(be, cur, t2, v->conv_in_w, v->conv_in_b, SDC_NO_BUF, 1, h, w, zc, top, 3, 1, 1));
    SDC_TRY(sdc_resnet_forward(be, &v->mid_res[0], spare, cur, SDC_NO_BUF, 0, SDC_NO_BUF, t2, t3, 1, h, w, G, VAE_EPS));
    SWAP(cur, spare);
    SDC_TRY(attn_forward(v, &v->mid_attn, cur, h * w, t2, t3));
    SDC_TRY(sdc_resnet_forward(be, &v->mid_res[1], spare, cur, SDC_NO_BUF, 0, SDC_NO_BUF, t2, t3, 1, h, w, G, VAE_EPS));
    SWAP(cur, spare);
    int ch = top;
    for (int i = 0; i < nl; i++) {
        const sdc_vae_up *U = &v->up[i];
        for (int j = 0; j < U->n_res; j++) {
            SDC_TRY(sdc_resnet_forward(be, &U->res[j], spare, cur, SDC_NO_BUF, 0, SDC_NO_BUF, t2, t3, 1, h, w, G,
                                       VAE_EPS));
            SWAP(cur, spare);
            ch = U->res[j].cout;
        }
        if (U->up_w.p) {
            SDC_TRY(op->upsample_nearest(be, t2, cur, 1, h, w, ch, 2 * h, 2 * w));
            h *= 2;
            w *= 2;
            SDC_TRY(op->conv2d(be, cur, t2, U->up_w, U->up_b, SDC_NO_BUF, 1, h, w, ch, ch, 3, 1, 1));
        }
    }
    SDC_TRY(op->group_norm(be, t2, cur, v->norm_out_w, v->norm_out_b, 1, h * w, ch, G, VAE_EPS, true));
    if (v->act == SDC_DT_F32)
        return op->conv2d(be, SDC_F32(image), t2, v->conv_out_w, v->conv_out_b, SDC_NO_BUF, 1, h, w, ch, 3, 3, 1, 1);
    SDC_TRY(op->conv2d(be, t3, t2, v->conv_out_w, v->conv_out_b, SDC_NO_BUF, 1, h, w, ch, 3, 3, 1, 1));
    return op->convert(be, SDC_F32(image), t3, (size_t)h * w * 3);
}

/* The encoder into out: the mean (zc channels) or both moments (2 zc). */
static sdc_status encode(sdc_vae *v, const float *image, int H, int W, float *out, bool moments) {
    const sdc_vae_config *c = &v->cfg;
    const sdc_vae_encoder *e = v->enc;
    sdc_backend *be = v->be;
    const sdc_backend_ops *op = be->ops;
    const int nl = c->n_levels, zc = c->z_channels, G = c->norm_groups, f = sdc_vae_factor(c);
    if (!e) return sdc_fail(SDC_ERR_UNSUPPORTED, "this model's VAE has no encoder");
    if (H < f || W < f || H % f || W % f)
        return sdc_fail(SDC_ERR_ARG, "vae encode: %dx%d is not a multiple of %d", W, H, f);
    SDC_TRY(ensure_state(v, H / f, W / f));
    sdc_buf cur = v->buf[0], spare = v->buf[1], t2 = v->buf[2], t3 = v->buf[3];
    int h = H, w = W, ch = level_ch(c, 0);
    sdc_buf in = SDC_F32(image); /* the fp32 image in the activations' type */
    if (v->act != SDC_DT_F32) {
        in = t3;
        SDC_TRY(op->convert(be, in, SDC_F32(image), (size_t)H * W * 3));
    }
    SDC_TRY(op->conv2d(be, cur, in, e->conv_in_w, e->conv_in_b, SDC_NO_BUF, 1, h, w, 3, ch, 3, 1, 1));
    for (int l = 0; l < nl; l++) {
        const sdc_vae_down *D = &e->down[l];
        for (int j = 0; j < D->n_res; j++) {
            SDC_TRY(sdc_resnet_forward(be, &D->res[j], spare, cur, SDC_NO_BUF, 0, SDC_NO_BUF, t2, t3, 1, h, w, G,
                                       VAE_EPS));
            SWAP(cur, spare);
            ch = D->res[j].cout;
        }
        if (D->down_w.p) { /* diffusers pads right and bottom by one, then a stride-2 conv */
            SDC_TRY(op->pad(be, t2, cur, 1, h, w, ch, 0, 1, 0, 1));
            SDC_TRY(op->conv2d(be, cur, t2, D->down_w, D->down_b, SDC_NO_BUF, 1, h + 1, w + 1, ch, ch, 3, 2, 0));
            h /= 2;
            w /= 2;
        }
    }
    SDC_TRY(sdc_resnet_forward(be, &e->mid_res[0], spare, cur, SDC_NO_BUF, 0, SDC_NO_BUF, t2, t3, 1, h, w, G, VAE_EPS));
    SWAP(cur, spare);
    SDC_TRY(attn_forward(v, &e->mid_attn, cur, h * w, t2, t3));
    SDC_TRY(sdc_resnet_forward(be, &e->mid_res[1], spare, cur, SDC_NO_BUF, 0, SDC_NO_BUF, t2, t3, 1, h, w, G, VAE_EPS));
    SWAP(cur, spare);
    SDC_TRY(op->group_norm(be, t2, cur, e->norm_out_w, e->norm_out_b, 1, h * w, ch, G, VAE_EPS, true));
    SDC_TRY(op->conv2d(be, t3, t2, e->conv_out_w, e->conv_out_b, SDC_NO_BUF, 1, h, w, ch, 2 * zc, 3, 1, 1));
    /* moments = quant_conv(h); the mean is the first z channels (the
     * leading rows of quant_conv's weight), the log-variance the rest */
    const int nout = moments ? 2 * zc : zc;
    if (v->act == SDC_DT_F32) return op->linear(be, SDC_F32(out), t3, e->quant_w, e->quant_b, h * w, 2 * zc, nout);
    SDC_TRY(op->linear(be, t2, t3, e->quant_w, e->quant_b, h * w, 2 * zc, nout));
    return op->convert(be, SDC_F32(out), t2, (size_t)h * w * nout);
}

sdc_status sdc_vae_encode(sdc_vae *v, const float *image, int H, int W, float *mean) {
    return encode(v, image, H, W, mean, false);
}

sdc_status sdc_vae_encode_moments(sdc_vae *v, const float *image, int H, int W, float *moments) {
    return encode(v, image, H, W, moments, true);
}
