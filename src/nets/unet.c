/* unet.c - SD U-Net forward on the backend interface (diffusers'
 * UNet2DConditionModel semantics; names as its keys). NHWC throughout. */
#include "nets/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWAP(a, b) do { sdc_buf t_ = (a); (a) = (b); (b) = t_; } while (0)

/* ---- loading ---------------------------------------------------------- */

static sdc_status transformer_load(sdc_loader *L, sdc_transformer *T, const char *p, int c,
                                   int heads, int depth, int ctx_dim) {
    char n[256], a[256], b[256], d[256];
    T->c = c;
    T->heads = heads;
    T->depth = depth;
    if (heads < 1 || c % heads)
        return sdc_fail(SDC_ERR_FORMAT, "%s: %d channels do not split into %d heads", p, c, heads);
#define NAME(buf, fmt, ...) (snprintf(buf, sizeof buf, "%s." fmt, p, __VA_ARGS__), buf)
    SDC_TRY(sdc_load_norm(L, &T->norm_w, &T->norm_b, c, NAME(n, "%s", "norm")));
    SDC_TRY(sdc_load_mat(L, &T->proj_in_w, c, c, NAME(n, "%s", "proj_in.weight")));
    SDC_TRY(sdc_load_vec(L, &T->proj_in_b, c, NAME(n, "%s", "proj_in.bias")));
    SDC_TRY(sdc_load_mat(L, &T->proj_out_w, c, c, NAME(n, "%s", "proj_out.weight")));
    SDC_TRY(sdc_load_vec(L, &T->proj_out_b, c, NAME(n, "%s", "proj_out.bias")));
    T->blocks = calloc((size_t)depth, sizeof *T->blocks);
    if (!T->blocks) return sdc_fail(SDC_ERR_OOM, "out of memory");
    for (int i = 0; i < depth; i++) {
        sdc_tblock *B = &T->blocks[i];
        const char *bp = "transformer_blocks";
        const int outs3[3] = {c, c, c}, outs2[2] = {c, c};
        const char *qkv[3] = {NAME(a, "%s.%d.attn1.to_q.weight", bp, i), NAME(b, "%s.%d.attn1.to_k.weight", bp, i),
                              NAME(d, "%s.%d.attn1.to_v.weight", bp, i)};
        SDC_TRY(sdc_load_mats_stacked(L, &B->qkv_w, 3, outs3, c, qkv));
        const char *kv[2] = {NAME(a, "%s.%d.attn2.to_k.weight", bp, i), NAME(b, "%s.%d.attn2.to_v.weight", bp, i)};
        SDC_TRY(sdc_load_mats_stacked(L, &B->kv2_w, 2, outs2, ctx_dim, kv));
        SDC_TRY(sdc_load_norm(L, &B->norm1_w, &B->norm1_b, c, NAME(n, "%s.%d.norm1", bp, i)));
        SDC_TRY(sdc_load_mat(L, &B->out1_w, c, c, NAME(n, "%s.%d.attn1.to_out.0.weight", bp, i)));
        SDC_TRY(sdc_load_vec(L, &B->out1_b, c, NAME(n, "%s.%d.attn1.to_out.0.bias", bp, i)));
        SDC_TRY(sdc_load_norm(L, &B->norm2_w, &B->norm2_b, c, NAME(n, "%s.%d.norm2", bp, i)));
        SDC_TRY(sdc_load_mat(L, &B->q2_w, c, c, NAME(n, "%s.%d.attn2.to_q.weight", bp, i)));
        SDC_TRY(sdc_load_mat(L, &B->out2_w, c, c, NAME(n, "%s.%d.attn2.to_out.0.weight", bp, i)));
        SDC_TRY(sdc_load_vec(L, &B->out2_b, c, NAME(n, "%s.%d.attn2.to_out.0.bias", bp, i)));
        SDC_TRY(sdc_load_norm(L, &B->norm3_w, &B->norm3_b, c, NAME(n, "%s.%d.norm3", bp, i)));
        SDC_TRY(sdc_load_mat(L, &B->ff1_w, 8 * c, c, NAME(n, "%s.%d.ff.net.0.proj.weight", bp, i)));
        SDC_TRY(sdc_load_vec(L, &B->ff1_b, 8 * c, NAME(n, "%s.%d.ff.net.0.proj.bias", bp, i)));
        SDC_TRY(sdc_load_mat(L, &B->ff2_w, c, 4 * c, NAME(n, "%s.%d.ff.net.2.weight", bp, i)));
        SDC_TRY(sdc_load_vec(L, &B->ff2_b, c, NAME(n, "%s.%d.ff.net.2.bias", bp, i)));
    }
#undef NAME
    return SDC_OK;
}

static sdc_status load_all(sdc_loader *L, sdc_unet *u) {
    const sdc_unet_config *c = &u->cfg;
    const int nl = c->n_levels, nr = c->num_res_blocks, te = c->time_embed_dim, c0 = c->channels[0];
    char p[256];
    SDC_TRY(sdc_load_mat(L, &u->time_w1, te, c0, "time_embedding.linear_1.weight"));
    SDC_TRY(sdc_load_vec(L, &u->time_b1, te, "time_embedding.linear_1.bias"));
    SDC_TRY(sdc_load_mat(L, &u->time_w2, te, te, "time_embedding.linear_2.weight"));
    SDC_TRY(sdc_load_vec(L, &u->time_b2, te, "time_embedding.linear_2.bias"));
    if (c->add_in_dim) { /* SDXL's added embedding (label_emb.0 in the original names) */
        SDC_TRY(sdc_load_mat(L, &u->add_w1, te, c->add_in_dim, "add_embedding.linear_1.weight"));
        SDC_TRY(sdc_load_vec(L, &u->add_b1, te, "add_embedding.linear_1.bias"));
        SDC_TRY(sdc_load_mat(L, &u->add_w2, te, te, "add_embedding.linear_2.weight"));
        SDC_TRY(sdc_load_vec(L, &u->add_b2, te, "add_embedding.linear_2.bias"));
    }
    SDC_TRY(sdc_load_conv_bias(L, &u->conv_in_w, &u->conv_in_b, c0, c->in_channels, 3, "conv_in"));
    /* down: level l takes channels[l-1] (c0 at level 0) to channels[l] */
    int ch = c0;
    for (int l = 0; l < nl; l++) {
        sdc_unet_level *D = &u->down[l];
        D->n_res = nr;
        D->res = calloc((size_t)nr, sizeof *D->res);
        if (c->attn_depth[l]) D->attn = calloc((size_t)nr, sizeof *D->attn);
        if (!D->res || (c->attn_depth[l] && !D->attn)) return sdc_fail(SDC_ERR_OOM, "out of memory");
        for (int j = 0; j < nr; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", l, j);
            SDC_TRY(sdc_resnet_load(L, &D->res[j], p, j ? c->channels[l] : ch, c->channels[l], te));
            if (D->attn) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", l, j);
                SDC_TRY(transformer_load(L, &D->attn[j], p, c->channels[l], c->heads[l], c->attn_depth[l],
                                         c->context_dim));
            }
        }
        ch = c->channels[l];
        if (l + 1 < nl) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", l);
            SDC_TRY(sdc_load_conv_bias(L, &D->sample_w, &D->sample_b, ch, ch, 3, p));
        }
    }
    /* mid: attention with the deepest level's heads and depth (at least 1) */
    const int cm = c->channels[nl - 1];
    int mid_depth = 1;
    for (int l = nl - 1; l >= 0; l--)
        if (c->attn_depth[l]) {
            mid_depth = c->attn_depth[l];
            break;
        }
    SDC_TRY(sdc_resnet_load(L, &u->mid_res[0], "mid_block.resnets.0", cm, cm, te));
    SDC_TRY(transformer_load(L, &u->mid_attn, "mid_block.attentions.0", cm, c->heads[nl - 1], mid_depth,
                             c->context_dim));
    SDC_TRY(sdc_resnet_load(L, &u->mid_res[1], "mid_block.resnets.1", cm, cm, te));
    /* up: diffusers' up_blocks.i is level nl-1-i; each of its nr+1 resnets
     * takes the running channels plus a skip */
    int prev = cm;
    for (int i = 0; i < nl; i++) {
        const int l = nl - 1 - i, out = c->channels[l];
        sdc_unet_level *U = &u->up[l];
        U->n_res = nr + 1;
        U->res = calloc((size_t)nr + 1, sizeof *U->res);
        if (c->attn_depth[l]) U->attn = calloc((size_t)nr + 1, sizeof *U->attn);
        if (!U->res || (c->attn_depth[l] && !U->attn)) return sdc_fail(SDC_ERR_OOM, "out of memory");
        for (int j = 0; j <= nr; j++) {
            int skip = j < nr ? out : (l > 0 ? c->channels[l - 1] : c0);
            int cin = (j == 0 ? prev : out) + skip;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            SDC_TRY(sdc_resnet_load(L, &U->res[j], p, cin, out, te));
            if (U->attn) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                SDC_TRY(transformer_load(L, &U->attn[j], p, out, c->heads[l], c->attn_depth[l], c->context_dim));
            }
        }
        prev = out;
        if (l > 0) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            SDC_TRY(sdc_load_conv_bias(L, &U->sample_w, &U->sample_b, out, out, 3, p));
        }
    }
    SDC_TRY(sdc_load_norm(L, &u->norm_out_w, &u->norm_out_b, c0, "conv_norm_out"));
    return sdc_load_conv_bias(L, &u->conv_out_w, &u->conv_out_b, c->out_channels, c0, 3, "conv_out");
}

sdc_status sdc_unet_load(const sdc_model_files *m, sdc_backend *be, sdc_unet **out) {
    *out = NULL;
    const sdc_unet_config *c = &m->config.unet;
    if (c->n_levels < 1 || c->n_levels > SDC_MAX_LEVELS || c->num_res_blocks < 1 ||
        c->num_res_blocks > SDC_LIMIT_RES_BLOCKS || c->context_dim < 1 || c->norm_groups < 1)
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: U-Net configuration not understood (%d levels, %d res blocks, context %d)",
                        m->path, c->n_levels, c->num_res_blocks, c->context_dim);
    sdc_unet *u = calloc(1, sizeof *u);
    if (!u) return sdc_fail(SDC_ERR_OOM, "out of memory");
    u->cfg = *c;
    u->be = be;
    u->act = be->weight_type; /* activations in the weights' type */
    sdc_loader L;
    sdc_loader_init(&L, m, SDC_COMP_UNET, be, &u->weights);
    sdc_status st = load_all(&L, u);
    if (st == SDC_OK) st = sdc_loader_check_all_used(&L);
    sdc_loader_done(&L);
    if (st != SDC_OK) {
        sdc_unet_free(u);
        return st;
    }
    *out = u;
    return SDC_OK;
}

static void free_state(sdc_unet *u) {
    if (u->arena && !u->arena_ext) u->be->ops->free(u->be, u->arena);
    u->arena = NULL;
    u->arena_cap = 0;
    u->arena_ext = false;
    sdc_buf *bufs[] = {&u->buf[0], &u->buf[1], &u->buf[2], &u->buf[3], &u->buf[4], &u->skips,
                       &u->temb, &u->temb_proj, &u->tsin, &u->temb_tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = SDC_NO_BUF;
    u->st_batch = 0;
}

void sdc_unet_free(sdc_unet *u) {
    if (!u) return;
    free_state(u);
    if (u->kv && !u->kv_ext) u->be->ops->free(u->be, u->kv);
    if (u->temb_table && !u->temb_ext) u->be->ops->free(u->be, u->temb_table);
    sdc_weight_set_free(&u->weights, u->be);
    for (int l = 0; l < SDC_MAX_LEVELS; l++) {
        sdc_unet_level *lv[2] = {&u->down[l], &u->up[l]};
        for (int k = 0; k < 2; k++) {
            for (int j = 0; lv[k]->attn && j < lv[k]->n_res; j++) free(lv[k]->attn[j].blocks);
            free(lv[k]->attn);
            free(lv[k]->res);
        }
    }
    free(u->mid_attn.blocks);
    free(u);
}

/* ---- forward ---------------------------------------------------------- */

/* the context's keys and values (set_context), in the activations' type */
static sdc_buf kv_buf(const sdc_unet *u) { return (sdc_buf){u->kv, u->act}; }

/* x (batch, h*w, c) updated in place: x = proj_out(blocks(proj_in(gn(x)))) + x.
 * Scratch: H (c), A (4c), Q (3c), F (8c) per pixel. */
static sdc_status transformer_forward(sdc_unet *u, const sdc_transformer *T, sdc_buf x, int batch,
                                      int hw, sdc_buf H, sdc_buf A, sdc_buf Q, sdc_buf F) {
    sdc_backend *be = u->be;
    const sdc_backend_ops *op = be->ops;
    const int c = T->c, P = batch * hw, d = c / T->heads, tokens = u->kv_tokens;
    SDC_TRY(op->group_norm(be, A, x, T->norm_w, T->norm_b, batch, hw, c, u->cfg.norm_groups, 1e-6f, false));
    SDC_TRY(op->linear(be, H, A, T->proj_in_w, T->proj_in_b, P, c, c));
    for (int i = 0; i < T->depth; i++) {
        const sdc_tblock *B = &T->blocks[i];
        /* self-attention */
        SDC_TRY(op->layer_norm(be, A, H, B->norm1_w, B->norm1_b, P, c, 1e-5f));
        SDC_TRY(op->linear(be, Q, A, B->qkv_w, NULL, P, c, 3 * c));
        be->attention_bf16 = B->qkv_w.bf16;
        SDC_TRY(op->attention(be, A, Q, sdc_at(Q, c), sdc_at(Q, 2 * (size_t)c), batch, T->heads, hw, hw, d, 3 * c,
                              3 * c, false));
        SDC_TRY(op->linear(be, Q, A, B->out1_w, B->out1_b, P, c, c));
        SDC_TRY(op->add(be, H, H, Q, (size_t)P * c));
        /* cross-attention on the text context */
        SDC_TRY(op->layer_norm(be, A, H, B->norm2_w, B->norm2_b, P, c, 1e-5f));
        SDC_TRY(op->linear(be, Q, A, B->q2_w, NULL, P, c, c));
        const sdc_buf kv = sdc_at(kv_buf(u), u->kv_cursor); /* (batch, tokens, 2c): this block's */
        u->kv_cursor += (size_t)batch * tokens * 2 * c;
        SDC_TRY(op->attention(be, A, Q, kv, sdc_at(kv, c), batch, T->heads, hw, tokens, d, c, 2 * c, false));
        SDC_TRY(op->linear(be, Q, A, B->out2_w, B->out2_b, P, c, c));
        SDC_TRY(op->add(be, H, H, Q, (size_t)P * c));
        /* GEGLU feed-forward */
        SDC_TRY(op->layer_norm(be, A, H, B->norm3_w, B->norm3_b, P, c, 1e-5f));
        SDC_TRY(op->linear(be, F, A, B->ff1_w, B->ff1_b, P, c, 8 * c));
        SDC_TRY(op->geglu(be, A, F, P, 4 * c));
        SDC_TRY(op->linear(be, Q, A, B->ff2_w, B->ff2_b, P, 4 * c, c));
        SDC_TRY(op->add(be, H, H, Q, (size_t)P * c));
        u->flops += 2.0 * P * c * c * (3 + 1 + 1 + 1 + 8 + 4) + 4.0 * batch * (double)hw * hw * c + 4.0 * batch * (double)hw * tokens * c;
    }
    SDC_TRY(op->linear(be, A, H, T->proj_out_w, T->proj_out_b, P, c, c));
    u->flops += 4.0 * P * c * c;
    return op->add(be, x, x, A, (size_t)P * c);
}

/* Per level: spatial size after each downsampler (stride 2, padding 1). */
static void level_sizes(const sdc_unet_config *c, int h, int w, int *hs, int *ws) {
    hs[0] = h;
    ws[0] = w;
    for (int l = 1; l < c->n_levels; l++) {
        hs[l] = (hs[l - 1] - 1) / 2 + 1;
        ws[l] = (ws[l - 1] - 1) / 2 + 1;
    }
}

#define N_ACT 10 /* the activation buffers of a forward */

/* The activations' layout for (batch, h, w): each buffer's size in
 * elements, the total in floats (each rounded up to 256 bytes) returned. */
static size_t act_layout(const sdc_unet *u, int batch, int h, int w, size_t *work_out, size_t sizes[N_ACT]) {
    const sdc_unet_config *c = &u->cfg;
    int hs[SDC_MAX_LEVELS], ws[SDC_MAX_LEVELS], cmax = 0;
    level_sizes(c, h, w, hs, ws);
    size_t work = 0, skips = (size_t)batch * h * w * c->channels[0];
    for (int l = 0; l < c->n_levels; l++) {
        size_t px = (size_t)batch * hs[l] * ws[l];
        int cl = c->channels[l], cn = l + 1 < c->n_levels ? c->channels[l + 1] : cl;
        int cp = l > 0 ? c->channels[l - 1] : cl;
        size_t need = px * (size_t)(8 * cl);
        int cat = (cn > cl ? cn : cl) + (cp > cl ? cp : cl);
        if (px * (size_t)cat > need) need = px * (size_t)cat;
        if (need > work) work = need;
        skips += px * cl * (size_t)c->num_res_blocks;
        if (l + 1 < c->n_levels) skips += (size_t)batch * hs[l + 1] * ws[l + 1] * cl;
        if (cl > cmax) cmax = cl;
    }
    const size_t small = (size_t)batch * c->time_embed_dim;
    /* buf[0..4], skips, temb, temb_tmp, temb_proj, tsin */
    const size_t sz[N_ACT] = {work, work, work, work, work, skips, small, small, (size_t)batch * cmax,
                              (size_t)batch * c->channels[0]};
    size_t total = 0;
    for (int i = 0; i < N_ACT; i++) {
        sizes[i] = sz[i];
        total += (sdc_act_floats(u->act, sz[i]) + 63) & ~(size_t)63;
    }
    *work_out = work;
    return total;
}

static sdc_status ensure_state(sdc_unet *u, int batch, int h, int w) {
    if (u->st_batch == batch && u->st_h == h && u->st_w == w) return SDC_OK;
    size_t sizes[N_ACT], work = 0;
    const size_t total = act_layout(u, batch, h, w, &work, sizes);
    if (!u->arena_ext || total > u->arena_cap) { /* the caller's region is too small: the U-Net's own */
        free_state(u);
        SDC_TRY(u->be->ops->alloc(u->be, total, &u->arena));
        u->arena_cap = total;
    }
    u->work = work;
    /* every activation of a forward in one arena, laid out once per shape */
    sdc_buf *bufs[N_ACT] = {&u->buf[0], &u->buf[1], &u->buf[2], &u->buf[3], &u->buf[4], &u->skips,
                            &u->temb, &u->temb_tmp, &u->temb_proj, &u->tsin};
    size_t off = 0;
    for (int i = 0; i < N_ACT; i++) {
        *bufs[i] = (sdc_buf){u->arena + off, u->act}; /* 256-byte aligned */
        off += (sdc_act_floats(u->act, sizes[i]) + 63) & ~(size_t)63;
    }
    u->st_batch = batch;
    u->st_h = h;
    u->st_w = w;
    return SDC_OK;
}

/* The transformers in the order a forward runs them: down levels, mid,
 * up levels deepest first. */
static int transformers_in_order(sdc_unet *u, sdc_transformer **out) {
    const sdc_unet_config *c = &u->cfg;
    int n = 0;
    for (int l = 0; l < c->n_levels; l++)
        for (int j = 0; u->down[l].attn && j < u->down[l].n_res; j++) out[n++] = &u->down[l].attn[j];
    out[n++] = &u->mid_attn;
    for (int l = c->n_levels - 1; l >= 0; l--)
        for (int j = 0; u->up[l].attn && j < u->up[l].n_res; j++) out[n++] = &u->up[l].attn[j];
    return n;
}

/* elements of every cross-attention's keys and values for (batch, tokens) */
static size_t kv_elems(sdc_unet *u, int batch, int tokens) {
    sdc_transformer *ts[SDC_MAX_LEVELS * (SDC_LIMIT_RES_BLOCKS + 1) * 2 + 1];
    const int nt = transformers_in_order(u, ts);
    size_t total = 0;
    for (int i = 0; i < nt; i++) total += (size_t)ts[i]->depth * batch * tokens * 2 * ts[i]->c;
    return total;
}

/* floats of the keys and values alone, 256-byte aligned: where the
 * converted context starts */
static size_t kv_only_floats(sdc_unet *u, int batch, int tokens) {
    return (sdc_act_floats(u->act, kv_elems(u, batch, tokens)) + 63) & ~(size_t)63;
}

/* floats of the keys and values and, for activations other than fp32, of
 * the context in their type after them (where the added embedding's
 * buffers start) */
static size_t kv_ctx_floats(sdc_unet *u, int batch, int tokens) {
    const size_t kv = kv_only_floats(u, batch, tokens);
    if (u->act == SDC_DT_F32) return kv;
    return kv + ((sdc_act_floats(u->act, (size_t)batch * tokens * u->cfg.context_dim) + 63) & ~(size_t)63);
}

/* SDXL's added embedding, after the context: its input (batch, add_in)
 * fp32, the hidden and output (batch, temb) fp32, the output in the
 * activations' type (batch, temb) */
static size_t add_floats(const sdc_unet *u, int batch) {
    if (!u->cfg.add_in_dim) return 0;
    const size_t b = (size_t)batch, te = (size_t)u->cfg.time_embed_dim;
    return ((b * u->cfg.add_in_dim + 63) & ~(size_t)63) + 2 * ((b * te + 63) & ~(size_t)63) +
           ((sdc_act_floats(u->act, b * te) + 63) & ~(size_t)63);
}

static size_t kv_floats(sdc_unet *u, int batch, int tokens) {
    return kv_ctx_floats(u, batch, tokens) + add_floats(u, batch);
}

static sdc_buf temb_row(const sdc_unet *u, size_t step, size_t row) {
    return sdc_at((sdc_buf){u->temb_table, u->act}, step * row);
}

/* *p: at least n floats, in the caller's region (*ext) while it is large
 * enough, else the U-Net's own, reallocated when it must grow */
static sdc_status ensure_buf(sdc_unet *u, float **p, size_t *cap, bool *ext, size_t n) {
    if (*p && *cap >= n) return SDC_OK;
    if (*p && !*ext) u->be->ops->free(u->be, *p);
    *p = NULL;
    *cap = 0;
    *ext = false;
    SDC_TRY(u->be->ops->alloc(u->be, n, p));
    *cap = n;
    return SDC_OK;
}

sdc_net_memory sdc_unet_memory(sdc_unet *u, int batch, int h, int w, int tokens, int steps) {
    size_t sizes[N_ACT], work;
    sdc_net_memory m = {act_layout(u, batch, h, w, &work, sizes), 0};
    m.state = ((kv_floats(u, batch, tokens) + 63) & ~(size_t)63) +
              sdc_act_floats(u->act, (size_t)steps * batch * u->cfg.time_embed_dim);
    return m;
}

void sdc_unet_use_memory(sdc_unet *u, float *act, float *state, sdc_net_memory m, int batch, int tokens) {
    free_state(u);
    if (u->kv && !u->kv_ext) u->be->ops->free(u->be, u->kv);
    if (u->temb_table && !u->temb_ext) u->be->ops->free(u->be, u->temb_table);
    u->kv = u->temb_table = NULL;
    u->kv_cap = u->temb_cap = 0;
    u->kv_ext = u->temb_ext = false;
    u->kv_batch = u->kv_tokens = 0;
    u->add_batch = 0;
    u->temb_steps = u->temb_batch = 0;
    if (act) {
        u->arena = act;
        u->arena_cap = m.activations;
        u->arena_ext = true;
    }
    if (state) {
        const size_t kv = (kv_floats(u, batch, tokens) + 63) & ~(size_t)63;
        u->kv = state;
        u->kv_cap = kv;
        u->temb_table = state + kv;
        u->temb_cap = m.state - kv;
        u->kv_ext = u->temb_ext = true;
    }
}

sdc_status sdc_unet_set_context(sdc_unet *u, const float *context, int batch, int tokens) {
    sdc_backend *be = u->be;
    if (batch < 1 || tokens < 1) return sdc_fail(SDC_ERR_ARG, "unet: bad context shape batch=%d tokens=%d", batch, tokens);
    sdc_transformer *ts[SDC_MAX_LEVELS * (SDC_LIMIT_RES_BLOCKS + 1) * 2 + 1];
    const int nt = transformers_in_order(u, ts);
    u->kv_batch = u->kv_tokens = 0;
    u->add_batch = 0;
    SDC_TRY(ensure_buf(u, &u->kv, &u->kv_cap, &u->kv_ext, kv_floats(u, batch, tokens)));
    /* the context in the activations' type, after the keys and values */
    sdc_buf ctx = SDC_F32(context);
    if (u->act != SDC_DT_F32) {
        ctx = (sdc_buf){u->kv + kv_only_floats(u, batch, tokens), u->act};
        SDC_TRY(be->ops->convert(be, ctx, SDC_F32(context), (size_t)batch * tokens * u->cfg.context_dim));
    }
    /* each cross-attention's k and v of the context, once for the job */
    size_t off = 0;
    for (int i = 0; i < nt; i++)
        for (int d = 0; d < ts[i]->depth; d++) {
            SDC_TRY(be->ops->linear(be, sdc_at(kv_buf(u), off), ctx, ts[i]->blocks[d].kv2_w, NULL, batch * tokens,
                                    u->cfg.context_dim, 2 * ts[i]->c));
            off += (size_t)batch * tokens * 2 * ts[i]->c;
        }
    u->kv_batch = batch;
    u->kv_tokens = tokens;
    return SDC_OK;
}

sdc_status sdc_unet_set_added(sdc_unet *u, const float *pooled, const double *time_ids, int batch) {
    const sdc_unet_config *c = &u->cfg;
    sdc_backend *be = u->be;
    const sdc_backend_ops *op = be->ops;
    if (!c->add_in_dim) return sdc_fail(SDC_ERR_ARG, "unet: this U-Net has no added embedding");
    if (!u->kv || u->kv_batch != batch)
        return sdc_fail(SDC_ERR_ARG, "unet: the added embedding of a batch of %d before its context "
                        "(sdc_unet_set_context)", batch);
    const int te = c->time_embed_dim, in = c->add_in_dim, P = in - c->n_time_ids * c->add_time_dim;
    const size_t b = (size_t)batch;
    float *x = u->kv + kv_ctx_floats(u, batch, u->kv_tokens);
    float *hid = x + ((b * in + 63) & ~(size_t)63);
    float *out = hid + ((b * te + 63) & ~(size_t)63);
    u->add_emb = (sdc_buf){out + ((b * te + 63) & ~(size_t)63), u->act};
    /* [pooled, Fourier(time id 0), ..., Fourier(time id n-1)] per row */
    for (int r = 0; r < batch; r++) {
        float *row = x + (size_t)r * in;
        SDC_TRY(op->upload(be, row, pooled + (size_t)r * P, (size_t)P));
        for (int k = 0; k < c->n_time_ids; k++)
            SDC_TRY(op->timestep_embedding(be, SDC_F32(row + P + (size_t)k * c->add_time_dim), 1, c->add_time_dim,
                                           time_ids[(size_t)r * c->n_time_ids + k]));
    }
    SDC_TRY(op->linear(be, SDC_F32(hid), SDC_F32(x), u->add_w1, u->add_b1, batch, in, te));
    SDC_TRY(op->activation(be, SDC_F32(hid), SDC_F32(hid), b * te, SDC_ACT_SILU));
    SDC_TRY(op->linear(be, SDC_F32(out), SDC_F32(hid), u->add_w2, u->add_b2, batch, te, te));
    if (u->act == SDC_DT_F32) SDC_TRY(op->copy(be, u->add_emb, SDC_F32(out), b * te));
    else SDC_TRY(op->convert(be, u->add_emb, SDC_F32(out), b * te));
    u->add_batch = batch;
    return SDC_OK;
}

sdc_status sdc_unet_forward(sdc_unet *u, const float *x, int batch, int h, int w, double t,
                            const float *context, int tokens, float *out) {
    SDC_TRY(sdc_unet_set_context(u, context, batch, tokens));
    return sdc_unet_run(u, x, batch, h, w, t, out);
}

/* out (batch, time_embed_dim) = silu(linear_2(silu(linear_1(sinusoid(t))))
 * (+ SDXL's added embedding, before the last silu)) */
static sdc_status time_embedding(sdc_unet *u, int batch, double t, sdc_buf out) {
    sdc_backend *be = u->be;
    const sdc_backend_ops *op = be->ops;
    const int te = u->cfg.time_embed_dim, c0 = u->cfg.channels[0];
    if (u->cfg.add_in_dim && u->add_batch != batch)
        return sdc_fail(SDC_ERR_ARG, "unet: an SDXL U-Net needs its added embedding (pooled text, size "
                        "conditioning) for a batch of %d (sdc_unet_set_added)", batch);
    SDC_TRY(op->timestep_embedding(be, u->tsin, batch, c0, t));
    SDC_TRY(op->linear(be, u->temb_tmp, u->tsin, u->time_w1, u->time_b1, batch, c0, te));
    SDC_TRY(op->activation(be, u->temb_tmp, u->temb_tmp, (size_t)batch * te, SDC_ACT_SILU));
    SDC_TRY(op->linear(be, out, u->temb_tmp, u->time_w2, u->time_b2, batch, te, te));
    if (u->cfg.add_in_dim) SDC_TRY(op->add(be, out, out, u->add_emb, (size_t)batch * te));
    return op->activation(be, out, out, (size_t)batch * te, SDC_ACT_SILU);
}

sdc_status sdc_unet_prepare(sdc_unet *u, int batch, int h, int w, double t) {
    if (batch < 1 || h < 1 || w < 1)
        return sdc_fail(SDC_ERR_ARG, "unet: bad input shape batch=%d %dx%d", batch, h, w);
    if (!u->kv || u->kv_batch != batch)
        return sdc_fail(SDC_ERR_ARG, "unet: no context set for a batch of %d (sdc_unet_set_context)", batch);
    SDC_TRY(ensure_state(u, batch, h, w));
    return time_embedding(u, batch, t, u->temb);
}

sdc_status sdc_unet_set_schedule(sdc_unet *u, int batch, int h, int w, const double *t, int steps) {
    if (steps < 1 || batch < 1 || h < 1 || w < 1)
        return sdc_fail(SDC_ERR_ARG, "unet: schedule of %d steps for batch %d at %dx%d", steps, batch, h, w);
    SDC_TRY(ensure_state(u, batch, h, w));
    const size_t row = (size_t)batch * u->cfg.time_embed_dim;
    u->temb_steps = u->temb_batch = 0;
    SDC_TRY(ensure_buf(u, &u->temb_table, &u->temb_cap, &u->temb_ext, sdc_act_floats(u->act, (size_t)steps * row)));
    for (int i = 0; i < steps; i++) SDC_TRY(time_embedding(u, batch, t[i], temb_row(u, (size_t)i, row)));
    u->temb_steps = steps;
    u->temb_batch = batch;
    return SDC_OK;
}

sdc_status sdc_unet_prepare_step(sdc_unet *u, int batch, int h, int w, int step) {
    if (!u->temb_table || u->temb_batch != (size_t)batch || step < 0 || (size_t)step >= u->temb_steps)
        return sdc_fail(SDC_ERR_ARG, "unet: step %d of a schedule not set for a batch of %d (sdc_unet_set_schedule)",
                        step, batch);
    if (!u->kv || u->kv_batch != batch)
        return sdc_fail(SDC_ERR_ARG, "unet: no context set for a batch of %d (sdc_unet_set_context)", batch);
    SDC_TRY(ensure_state(u, batch, h, w));
    const size_t row = (size_t)batch * u->cfg.time_embed_dim;
    return u->be->ops->copy(u->be, u->temb, temb_row(u, (size_t)step, row), row);
}

sdc_status sdc_unet_run(sdc_unet *u, const float *x, int batch, int h, int w, double t, float *out) {
    SDC_TRY(sdc_unet_prepare(u, batch, h, w, t));
    return sdc_unet_body(u, x, batch, h, w, out);
}

sdc_status sdc_unet_body(sdc_unet *u, const float *x, int batch, int h, int w, float *out) {
    const sdc_unet_config *c = &u->cfg;
    sdc_backend *be = u->be;
    const sdc_backend_ops *op = be->ops;
    const int nl = c->n_levels, te = c->time_embed_dim, c0 = c->channels[0], G = c->norm_groups;
    if (u->st_batch != batch || u->st_h != h || u->st_w != w || u->kv_batch != batch)
        return sdc_fail(SDC_ERR_ARG, "unet: batch %d at %dx%d not prepared (sdc_unet_prepare)", batch, h, w);
    const int tokens = u->kv_tokens;
    u->kv_cursor = 0;
    /* the context's k and v: computed once per job by sdc_unet_set_context */
    u->flops = 0;
    {
        sdc_transformer *ts[SDC_MAX_LEVELS * (SDC_LIMIT_RES_BLOCKS + 1) * 2 + 1];
        const int nt = transformers_in_order(u, ts);
        for (int i = 0; i < nt; i++)
            u->flops += 2.0 * ts[i]->depth * batch * tokens * c->context_dim * 2 * ts[i]->c;
    }
    int hs[SDC_MAX_LEVELS], ws[SDC_MAX_LEVELS];
    level_sizes(c, h, w, hs, ws);

    /* u->temb: the time embedding, from sdc_unet_prepare or _prepare_step */

    sdc_buf cur = u->buf[0], spare = u->buf[1], t2 = u->buf[2], t3 = u->buf[3], t4 = u->buf[4];
    /* skip connections: a stack of (buffer, channels) */
    sdc_buf skip_ptr[SDC_MAX_SKIPS];
    int skip_c[SDC_MAX_SKIPS], n_skip = 0;
    size_t skip_off = 0;
    if (c->n_levels > SDC_MAX_LEVELS || c->num_res_blocks > SDC_LIMIT_RES_BLOCKS)
        return sdc_fail(SDC_ERR_ARG, "unet: %d levels of %d res blocks, more than sdc's limits (%d, %d)", c->n_levels,
                        c->num_res_blocks, SDC_MAX_LEVELS, SDC_LIMIT_RES_BLOCKS);
#define PUSH(buf, px, ch)                                                            \
    do {                                                                             \
        skip_ptr[n_skip] = sdc_at(u->skips, skip_off);                               \
        skip_c[n_skip] = (ch);                                                       \
        SDC_TRY(op->copy(be, skip_ptr[n_skip], (buf), (size_t)(px) * (ch)));         \
        skip_off += (size_t)(px) * (ch);                                             \
        n_skip++;                                                                    \
    } while (0)

    /* the fp32 latents in the activations' type (t4 is free until the
     * first transformer) */
    sdc_buf xin = SDC_F32(x);
    if (u->act != SDC_DT_F32) {
        xin = t4;
        SDC_TRY(op->convert(be, xin, SDC_F32(x), (size_t)batch * h * w * c->in_channels));
    }
    SDC_TRY(op->conv2d(be, cur, xin, u->conv_in_w, u->conv_in_b, SDC_NO_BUF, batch, h, w, c->in_channels, c0, 3, 1,
                       1));
    u->flops += 2.0 * batch * h * w * 9.0 * c->in_channels * c0;
    PUSH(cur, batch * h * w, c0);
    for (int l = 0; l < nl; l++) {
        const sdc_unet_level *D = &u->down[l];
        const int px = batch * hs[l] * ws[l];
        for (int j = 0; j < D->n_res; j++) {
            SDC_TRY(sdc_resnet_forward(be, &D->res[j], spare, cur, u->temb, te, u->temb_proj, t2, t3, batch,
                                       hs[l], ws[l], G, 1e-5f));
            u->flops += sdc_resnet_flops(&D->res[j], px);
            SWAP(cur, spare);
            if (D->attn)
                SDC_TRY(transformer_forward(u, &D->attn[j], cur, batch, hs[l] * ws[l], spare, t2, t3, t4));
            PUSH(cur, px, c->channels[l]);
        }
        if (D->sample_w.p) {
            SDC_TRY(op->conv2d(be, spare, cur, D->sample_w, D->sample_b, SDC_NO_BUF, batch, hs[l], ws[l],
                               c->channels[l], c->channels[l], 3, 2, 1));
            u->flops += 2.0 * batch * hs[l + 1] * ws[l + 1] * 9.0 * c->channels[l] * c->channels[l];
            SWAP(cur, spare);
            PUSH(cur, batch * hs[l + 1] * ws[l + 1], c->channels[l]);
        }
    }
#undef PUSH
    {
        const int L = nl - 1, px = batch * hs[L] * ws[L];
        SDC_TRY(sdc_resnet_forward(be, &u->mid_res[0], spare, cur, u->temb, te, u->temb_proj, t2, t3, batch, hs[L],
                                   ws[L], G, 1e-5f));
        SWAP(cur, spare);
        SDC_TRY(transformer_forward(u, &u->mid_attn, cur, batch, hs[L] * ws[L], spare, t2, t3, t4));
        SDC_TRY(sdc_resnet_forward(be, &u->mid_res[1], spare, cur, u->temb, te, u->temb_proj, t2, t3, batch, hs[L],
                                   ws[L], G, 1e-5f));
        SWAP(cur, spare);
        u->flops += sdc_resnet_flops(&u->mid_res[0], px) + sdc_resnet_flops(&u->mid_res[1], px);
    }
    int ch = c->channels[nl - 1];
    for (int l = nl - 1; l >= 0; l--) {
        const sdc_unet_level *U = &u->up[l];
        const int px = batch * hs[l] * ws[l];
        for (int j = 0; j < U->n_res; j++) {
            n_skip--;
            SDC_TRY(op->concat_channels(be, spare, cur, skip_ptr[n_skip], (size_t)px, ch, skip_c[n_skip]));
            SWAP(cur, spare);
            SDC_TRY(sdc_resnet_forward(be, &U->res[j], spare, cur, u->temb, te, u->temb_proj, t2, t3, batch, hs[l],
                                       ws[l], G, 1e-5f));
            u->flops += sdc_resnet_flops(&U->res[j], px);
            SWAP(cur, spare);
            ch = U->res[j].cout;
            if (U->attn)
                SDC_TRY(transformer_forward(u, &U->attn[j], cur, batch, hs[l] * ws[l], spare, t2, t3, t4));
        }
        if (U->sample_w.p) { /* nearest 2x to the next skip's size, then a 3x3 conv */
            SDC_TRY(op->upsample_nearest(be, t2, cur, batch, hs[l], ws[l], ch, hs[l - 1], ws[l - 1]));
            SDC_TRY(op->conv2d(be, cur, t2, U->sample_w, U->sample_b, SDC_NO_BUF, batch, hs[l - 1], ws[l - 1], ch, ch,
                               3, 1, 1));
            u->flops += 2.0 * batch * hs[l - 1] * ws[l - 1] * 9.0 * ch * ch;
        }
    }
    SDC_TRY(op->group_norm(be, t2, cur, u->norm_out_w, u->norm_out_b, batch, h * w, c0, G, 1e-5f, true));
    u->flops += 2.0 * batch * h * w * 9.0 * c0 * c->out_channels;
    if (u->act == SDC_DT_F32)
        return op->conv2d(be, SDC_F32(out), t2, u->conv_out_w, u->conv_out_b, SDC_NO_BUF, batch, h, w, c0,
                          c->out_channels, 3, 1, 1);
    SDC_TRY(op->conv2d(be, t3, t2, u->conv_out_w, u->conv_out_b, SDC_NO_BUF, batch, h, w, c0, c->out_channels, 3, 1,
                       1));
    return op->convert(be, SDC_F32(out), t3, (size_t)batch * h * w * c->out_channels);
}
