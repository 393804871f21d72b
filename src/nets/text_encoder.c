/* text_encoder.c - CLIP text transformer on the backend interface. */
#include "nets/text_encoder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The loader with a name built printf-style. */
static sdc_status load_vec(sdc_loader *L, float **dst, int n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static sdc_status load_vec(sdc_loader *L, float **dst, int n, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return sdc_load_vec(L, dst, n, name);
}

static sdc_status load_mat(sdc_loader *L, sdc_weight *dst, int out, int in, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static sdc_status load_mat(sdc_loader *L, sdc_weight *dst, int out, int in, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return sdc_load_mat(L, dst, out, in, name);
}

/* q, k, v stored apart (transformers naming): stacked into one matrix. */
static sdc_status load_qkv_hf(sdc_loader *L, int l, int W, sdc_text_layer *ly) {
    static const char *const qkv[3] = {"q", "k", "v"};
    char w[3][256], b[3][256];
    for (int i = 0; i < 3; i++) {
        snprintf(w[i], sizeof w[i], "text_model.encoder.layers.%d.self_attn.%s_proj.weight", l, qkv[i]);
        snprintf(b[i], sizeof b[i], "text_model.encoder.layers.%d.self_attn.%s_proj.bias", l, qkv[i]);
    }
    const int outs[3] = {W, W, W};
    const char *const wn[3] = {w[0], w[1], w[2]}, *const bn[3] = {b[0], b[1], b[2]};
    SDC_TRY(sdc_load_mats_stacked(L, &ly->qkv_w, 3, outs, W, wn));
    return sdc_load_vecs_stacked(L, &ly->qkv_b, 3, outs, bn);
}

static sdc_status load_layer(sdc_loader *L, int l, const sdc_text_config *c, bool hf, sdc_text_layer *ly) {
    const int W = c->width, F = c->ff;
    if (hf) {
        const char *p = "text_model.encoder.layers";
        SDC_TRY(load_vec(L, &ly->ln1_w, W, "%s.%d.layer_norm1.weight", p, l));
        SDC_TRY(load_vec(L, &ly->ln1_b, W, "%s.%d.layer_norm1.bias", p, l));
        SDC_TRY(load_qkv_hf(L, l, W, ly));
        SDC_TRY(load_mat(L, &ly->out_w, W, W, "%s.%d.self_attn.out_proj.weight", p, l));
        SDC_TRY(load_vec(L, &ly->out_b, W, "%s.%d.self_attn.out_proj.bias", p, l));
        SDC_TRY(load_vec(L, &ly->ln2_w, W, "%s.%d.layer_norm2.weight", p, l));
        SDC_TRY(load_vec(L, &ly->ln2_b, W, "%s.%d.layer_norm2.bias", p, l));
        SDC_TRY(load_mat(L, &ly->fc1_w, F, W, "%s.%d.mlp.fc1.weight", p, l));
        SDC_TRY(load_vec(L, &ly->fc1_b, F, "%s.%d.mlp.fc1.bias", p, l));
        SDC_TRY(load_mat(L, &ly->fc2_w, W, F, "%s.%d.mlp.fc2.weight", p, l));
        SDC_TRY(load_vec(L, &ly->fc2_b, W, "%s.%d.mlp.fc2.bias", p, l));
    } else {
        const char *p = "transformer.resblocks";
        SDC_TRY(load_vec(L, &ly->ln1_w, W, "%s.%d.ln_1.weight", p, l));
        SDC_TRY(load_vec(L, &ly->ln1_b, W, "%s.%d.ln_1.bias", p, l));
        SDC_TRY(load_mat(L, &ly->qkv_w, 3 * W, W, "%s.%d.attn.in_proj_weight", p, l));
        SDC_TRY(load_vec(L, &ly->qkv_b, 3 * W, "%s.%d.attn.in_proj_bias", p, l));
        SDC_TRY(load_mat(L, &ly->out_w, W, W, "%s.%d.attn.out_proj.weight", p, l));
        SDC_TRY(load_vec(L, &ly->out_b, W, "%s.%d.attn.out_proj.bias", p, l));
        SDC_TRY(load_vec(L, &ly->ln2_w, W, "%s.%d.ln_2.weight", p, l));
        SDC_TRY(load_vec(L, &ly->ln2_b, W, "%s.%d.ln_2.bias", p, l));
        SDC_TRY(load_mat(L, &ly->fc1_w, F, W, "%s.%d.mlp.c_fc.weight", p, l));
        SDC_TRY(load_vec(L, &ly->fc1_b, F, "%s.%d.mlp.c_fc.bias", p, l));
        SDC_TRY(load_mat(L, &ly->fc2_w, W, F, "%s.%d.mlp.c_proj.weight", p, l));
        SDC_TRY(load_vec(L, &ly->fc2_b, W, "%s.%d.mlp.c_proj.bias", p, l));
    }
    return SDC_OK;
}

static sdc_status load_all(sdc_loader *L, sdc_text_encoder *te) {
    const sdc_text_config *c = &te->cfg;
    const int W = c->width;
    const bool hf = te->naming == SDC_TEXT_HF;
    SDC_TRY(sdc_load_host_table(L, &te->tok_emb, c->vocab, W,
                                hf ? "text_model.embeddings.token_embedding.weight" : "token_embedding.weight"));
    te->rows = malloc((size_t)c->max_pos * W * sizeof(float));
    if (!te->rows) return sdc_fail(SDC_ERR_OOM, "out of memory");
    SDC_TRY(sdc_load_table(L, &te->pos_emb, c->max_pos, W,
                           hf ? "text_model.embeddings.position_embedding.weight" : "positional_embedding"));
    SDC_TRY(sdc_load_vec(L, &te->lnf_w, W, hf ? "text_model.final_layer_norm.weight" : "ln_final.weight"));
    SDC_TRY(sdc_load_vec(L, &te->lnf_b, W, hf ? "text_model.final_layer_norm.bias" : "ln_final.bias"));
    for (int l = 0; l < c->layers; l++) SDC_TRY(load_layer(L, l, c, hf, &te->layers[l]));
    if (c->proj) /* SDXL's pooled output: transformers' (proj, width), OpenCLIP's (width, proj) */
        SDC_TRY(hf ? sdc_load_mat(L, &te->proj_w, c->proj, W, "text_projection.weight")
                   : sdc_load_mat_t(L, &te->proj_w, c->proj, W, "text_projection"));
    sdc_backend *be = L->be;
    const size_t T = (size_t)c->max_pos;
    sdc_buf *bufs[] = {&te->x, &te->h, &te->qkv, &te->attn, &te->mlp, &te->pooled};
    const size_t elems[] = {T * W, T * W, T * 3 * W, T * W, T * (size_t)c->ff, (size_t)(c->proj ? c->proj : 1)};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        float *p = NULL;
        SDC_TRY(be->ops->alloc(be, sdc_act_floats(te->act, elems[i]), &p));
        *bufs[i] = (sdc_buf){p, te->act};
    }
    return SDC_OK;
}

static sdc_status load_one(const sdc_model_files *m, sdc_backend *be, bool second, sdc_text_encoder **out) {
    *out = NULL;
    sdc_text_encoder *te = calloc(1, sizeof *te);
    if (!te) return sdc_fail(SDC_ERR_OOM, "text encoder: out of memory");
    te->cfg = second ? m->config.text2 : m->config.text;
    te->naming = second ? m->text2_naming : m->text_naming;
    te->be = be;
    /* fp32 activations whatever the weights' type (products round their
     * input to it): a prompt window is 77 tokens, so this costs next to
     * nothing, and the context every step of a render reads keeps fp32's
     * precision (in fp16 the final layer norm gave up to 5e-3 relative) */
    te->act = SDC_DT_F32;
    te->layers = calloc((size_t)te->cfg.layers, sizeof *te->layers);
    sdc_loader L;
    sdc_loader_init(&L, m, second ? SDC_COMP_TEXT2 : SDC_COMP_TEXT, be, &te->weights);
    sdc_status st = te->layers ? load_all(&L, te) : sdc_fail(SDC_ERR_OOM, "text encoder: out of memory");
    sdc_loader_done(&L);
    if (st != SDC_OK) {
        sdc_text_encoder_free(te);
        return st;
    }
    *out = te;
    return SDC_OK;
}

sdc_status sdc_text_encoder_load(const sdc_model_files *m, sdc_backend *be, sdc_text_encoder **out) {
    return load_one(m, be, false, out);
}

sdc_status sdc_text_encoder_load2(const sdc_model_files *m, sdc_backend *be, sdc_text_encoder **out) {
    if (!m->config.text2.width) return sdc_fail(SDC_ERR_ARG, "%s: the model has one text encoder", m->path);
    return load_one(m, be, true, out);
}

void sdc_text_encoder_free(sdc_text_encoder *te) {
    if (!te) return;
    sdc_backend *be = te->be;
    sdc_buf *bufs[] = {&te->x, &te->h, &te->qkv, &te->attn, &te->mlp, &te->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]->p) be->ops->free(be, bufs[i]->p);
    sdc_weight_set_free(&te->weights, be);
    free(te->rows);
    free(te->layers);
    free(te);
}

sdc_status sdc_text_encoder_run(sdc_text_encoder *te, const int *ids,
                                int n_tokens, int n_layers, bool final_norm,
                                float *out) {
    return sdc_text_encoder_run_with(te, ids, n_tokens, n_layers, final_norm, NULL, NULL, 0, out);
}

sdc_status sdc_text_encoder_run_with(sdc_text_encoder *te, const int *ids, int n_tokens, int n_layers,
                                     bool final_norm, const int *pos, const float *const *rows, int n_rows,
                                     float *out) {
    return sdc_text_encoder_run_pooled(te, ids, n_tokens, n_layers, final_norm, pos, rows, n_rows, out, -1, NULL);
}

/* x = layer l(x) */
static sdc_status layer_forward(sdc_text_encoder *te, int l, int T) {
    const sdc_text_config *c = &te->cfg;
    const sdc_backend_ops *op = te->be->ops;
    sdc_backend *be = te->be;
    const int W = c->width, H = c->heads;
    const sdc_text_layer *ly = &te->layers[l];
    /* x = x + out_proj(attention(ln1(x))) */
    SDC_TRY(op->layer_norm(be, te->h, te->x, ly->ln1_w, ly->ln1_b, T, W, c->eps));
    SDC_TRY(op->linear(be, te->qkv, te->h, ly->qkv_w, ly->qkv_b, T, W, 3 * W));
    SDC_TRY(op->attention(be, te->attn, te->qkv, sdc_at(te->qkv, W), sdc_at(te->qkv, 2 * (size_t)W), 1, H, T, T,
                          W / H, 3 * W, 3 * W, true));
    SDC_TRY(op->linear(be, te->h, te->attn, ly->out_w, ly->out_b, T, W, W));
    SDC_TRY(op->add(be, te->x, te->x, te->h, (size_t)T * W));
    /* x = x + fc2(act(fc1(ln2(x)))) */
    SDC_TRY(op->layer_norm(be, te->h, te->x, ly->ln2_w, ly->ln2_b, T, W, c->eps));
    SDC_TRY(op->linear(be, te->mlp, te->h, ly->fc1_w, ly->fc1_b, T, W, c->ff));
    SDC_TRY(op->activation(be, te->mlp, te->mlp, (size_t)T * c->ff, c->act));
    SDC_TRY(op->linear(be, te->h, te->mlp, ly->fc2_w, ly->fc2_b, T, c->ff, W));
    return op->add(be, te->x, te->x, te->h, (size_t)T * W);
}

sdc_status sdc_text_encoder_run_pooled(sdc_text_encoder *te, const int *ids, int n_tokens, int n_layers,
                                       bool final_norm, const int *pos, const float *const *rows, int n_rows,
                                       float *out, int pool_at, float *pooled) {
    const sdc_text_config *c = &te->cfg;
    const sdc_backend_ops *op = te->be->ops;
    sdc_backend *be = te->be;
    const int T = n_tokens, W = c->width;
    if (T < 1 || T > c->max_pos)
        return sdc_fail(SDC_ERR_ARG, "text encoder: %d tokens, expected 1..%d", T, c->max_pos);
    if (n_layers < 0 || n_layers > c->layers)
        return sdc_fail(SDC_ERR_ARG, "text encoder: %d layers requested, the model has %d",
                        n_layers, c->layers);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab)
            return sdc_fail(SDC_ERR_ARG, "text encoder: token id %d at position %d is outside "
                            "the vocabulary (0..%d)", ids[t], t, c->vocab - 1);
    /* x = token embeddings (rows of the host table, widened exactly) +
     * position embeddings, in fp32 as nn.Embedding's sum */
    for (int t = 0; t < T; t++) sdc_host_table_row(&te->tok_emb, ids[t], te->rows + (size_t)t * W);
    SDC_TRY(op->upload(be, te->x.p, te->rows, (size_t)T * W)); /* fp32 activations (te->act) */
    SDC_TRY(op->add(be, te->x, te->x, SDC_F32(te->pos_emb), (size_t)T * W));
    for (int i = 0; i < n_rows; i++) { /* x[p] = row + position embedding p */
        if (pos[i] < 0 || pos[i] >= T)
            return sdc_fail(SDC_ERR_ARG, "text encoder: an embedding vector at position %d of %d", pos[i], T);
        float *xp = (float *)te->x.p + (size_t)pos[i] * W; /* fp32 activations (te->act) */
        SDC_TRY(op->upload(be, xp, rows[i], (size_t)W));
        SDC_TRY(op->add(be, SDC_F32(xp), SDC_F32(xp), SDC_F32(te->pos_emb + (size_t)pos[i] * W), (size_t)W));
    }
    for (int l = 0; l < n_layers; l++) SDC_TRY(layer_forward(te, l, T));
    sdc_buf last = te->x;
    if (final_norm) {
        SDC_TRY(op->layer_norm(be, te->h, te->x, te->lnf_w, te->lnf_b, T, W, c->eps));
        last = te->h;
    }
    if (out) SDC_TRY(op->download(be, out, last.p, (size_t)T * W)); /* fp32 activations (te->act) */
    if (!pooled) return SDC_OK;
    /* the pooled output: every layer, the final layer norm, the row at
     * pool_at, projected (CLIPTextModelWithProjection's text_embeds) */
    if (!c->proj || pool_at < 0 || pool_at >= T)
        return sdc_fail(SDC_ERR_ARG, "text encoder: no pooled output (projection %d, token %d of %d)", c->proj,
                        pool_at, T);
    for (int l = n_layers; l < c->layers; l++) SDC_TRY(layer_forward(te, l, T));
    const sdc_buf row = sdc_at(te->x, (size_t)pool_at * W);
    SDC_TRY(op->layer_norm(be, te->h, row, te->lnf_w, te->lnf_b, 1, W, c->eps));
    SDC_TRY(op->linear(be, te->pooled, te->h, te->proj_w, NULL, 1, W, c->proj));
    return op->download(be, pooled, te->pooled.p, (size_t)c->proj);
}
