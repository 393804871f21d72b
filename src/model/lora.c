/* lora.c - LoRA files: the index of a model's target names, parsing and
 * matching a file, the weight deltas (lora.h). */
#include "model/lora.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "model/names.h"

/* ---- the index: every name a file may give a target -------------------- */

typedef struct ix_entry {
    char *key;
    sdc_lora_target t;
} ix_entry;

struct sdc_lora_index {
    ix_entry *e;
    int n, cap;
    sdc_family family;
};

static sdc_status ix_add(sdc_lora_index *ix, const char *prefix, const char *path, bool underscores,
                         sdc_lora_target t) {
    if (ix->n == ix->cap) {
        int cap = ix->cap ? 2 * ix->cap : 1024;
        ix_entry *ne = realloc(ix->e, (size_t)cap * sizeof *ne);
        if (!ne) return sdc_fail(SDC_ERR_OOM, "out of memory");
        ix->e = ne;
        ix->cap = cap;
    }
    const size_t lp = strlen(prefix), ln = strlen(path);
    char *k = malloc(lp + ln + 1);
    if (!k) return sdc_fail(SDC_ERR_OOM, "out of memory");
    memcpy(k, prefix, lp);
    for (size_t i = 0; i <= ln; i++) k[lp + i] = underscores && path[i] == '.' ? '_' : path[i];
    ix->e[ix->n++] = (ix_entry){k, t};
    return SDC_OK;
}

/* "x.weight" -> "x" into out; false when name is no weight's */
static bool module_path(const char *name, char *out, size_t cap) {
    size_t n = strlen(name);
    if (n <= 7 || strcmp(name + n - 7, ".weight") || n - 7 >= cap) return false;
    memcpy(out, name, n - 7);
    out[n - 7] = '\0';
    return true;
}

static sdc_status index_unet(sdc_lora_index *ix, const sdc_model_files *m, const sdc_weight_set *set) {
    for (int i = 0; i < set->n_srcs; i++) {
        const sdc_weight_src *s = &set->srcs[i];
        char path[512], orig[512], opath[512];
        if (!module_path(s->name, path, sizeof path)) continue;
        const sdc_lora_target t = {s, 0, s->rows, false};
        SDC_TRY(ix_add(ix, "lora_unet_", path, true, t));
        SDC_TRY(ix_add(ix, "unet.", path, false, t));
        SDC_TRY(ix_add(ix, "", path, false, t)); /* attention processors' files: no prefix */
        if (sdc_unet_name_to_original(&m->config.unet, s->name, orig, sizeof orig) == SDC_OK &&
            module_path(orig, opath, sizeof opath))
            SDC_TRY(ix_add(ix, "lora_unet_", opath, true, t));
    }
    return SDC_OK;
}

/* One text encoder's names of a module: kohya's (prefix + path with '.' as
 * '_') and PEFT's (prefix + path). */
typedef struct text_prefixes {
    const char *kohya, *peft;
} text_prefixes;

static sdc_status index_text_path(sdc_lora_index *ix, const text_prefixes *px, const char *path, sdc_lora_target t) {
    SDC_TRY(ix_add(ix, px->kohya, path, true, t));
    return ix_add(ix, px->peft, path, false, t);
}

/* The encoder layers' matrices only: a transformers text_projection (SDXL's
 * second encoder in a diffusers folder) has no counterpart a LoRA could
 * name in OpenCLIP's layout (a bare parameter there, as A1111 sees it), so
 * both layouts accept the same keys. */
static sdc_status index_text(sdc_lora_index *ix, sdc_text_naming naming, const sdc_weight_set *set,
                             const text_prefixes *px) {
    for (int i = 0; i < set->n_srcs; i++) {
        const sdc_weight_src *s = &set->srcs[i];
        char path[512], tail[64];
        int layer = -1;
        sdc_lora_target t = {s, 0, s->rows, true};
        if (naming == SDC_TEXT_HF) {
            if (!strncmp(s->name, "text_model.encoder.layers.", 26) && module_path(s->name, path, sizeof path))
                SDC_TRY(index_text_path(ix, px, path, t));
            continue;
        }
        /* OpenCLIP: transformers' names of the same modules, q, k and v
         * being thirds of in_proj */
        if (sscanf(s->name, "transformer.resblocks.%d.%63s", &layer, tail) != 2) continue;
        if (!strcmp(tail, "attn.in_proj_weight")) {
            static const char qkv[3] = {'q', 'k', 'v'};
            t.rows = s->rows / 3;
            for (int p = 0; p < 3; p++) {
                t.row0 = p * t.rows;
                snprintf(path, sizeof path, "text_model.encoder.layers.%d.self_attn.%c_proj", layer, qkv[p]);
                SDC_TRY(index_text_path(ix, px, path, t));
            }
            continue;
        }
        const char *hf = !strcmp(tail, "attn.out_proj.weight") ? "self_attn.out_proj"
                         : !strcmp(tail, "mlp.c_fc.weight")    ? "mlp.fc1"
                         : !strcmp(tail, "mlp.c_proj.weight")  ? "mlp.fc2"
                                                               : NULL;
        if (!hf) continue;
        snprintf(path, sizeof path, "text_model.encoder.layers.%d.%s", layer, hf);
        SDC_TRY(index_text_path(ix, px, path, t));
    }
    return SDC_OK;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const ix_entry *)a)->key, ((const ix_entry *)b)->key);
}

sdc_status sdc_lora_index_build2(const sdc_model_files *m, const sdc_weight_set *text, const sdc_weight_set *text2,
                                 const sdc_weight_set *unet, sdc_lora_index **out) {
    *out = NULL;
    const bool xl = m->config.family == SDC_FAMILY_SDXL;
    if (xl != (text2 != NULL))
        return sdc_fail(SDC_ERR_ARG, "LoRA index: %s", xl ? "an SDXL model needs its second text encoder's weights"
                                                          : "a model of one text encoder given a second one's weights");
    sdc_lora_index *ix = calloc(1, sizeof *ix);
    if (!ix) return sdc_fail(SDC_ERR_OOM, "out of memory");
    ix->family = m->config.family;
    /* kohya names SDXL's encoders lora_te1_ / lora_te2_ (SD 1.x / 2.x's one
     * lora_te_), diffusers text_encoder. / text_encoder_2.; A1111 reads
     * lora_te_ on no SDXL encoder */
    static const text_prefixes one = {"lora_te_", "text_encoder."}, first = {"lora_te1_", "text_encoder."},
                               second = {"lora_te2_", "text_encoder_2."};
    sdc_status st = index_unet(ix, m, unet);
    if (st == SDC_OK) st = index_text(ix, m->text_naming, text, xl ? &first : &one);
    if (st == SDC_OK && xl) st = index_text(ix, m->text2_naming, text2, &second);
    if (st != SDC_OK) {
        sdc_lora_index_free(ix);
        return st;
    }
    if (ix->n > 1) qsort(ix->e, (size_t)ix->n, sizeof *ix->e, cmp_entry);
    *out = ix;
    return SDC_OK;
}

sdc_status sdc_lora_index_build(const sdc_model_files *m, const sdc_weight_set *text, const sdc_weight_set *unet,
                                sdc_lora_index **out) {
    return sdc_lora_index_build2(m, text, NULL, unet, out);
}

void sdc_lora_index_free(sdc_lora_index *ix) {
    if (!ix) return;
    for (int i = 0; i < ix->n; i++) free(ix->e[i].key);
    free(ix->e);
    free(ix);
}

static const ix_entry *ix_find(const sdc_lora_index *ix, const char *key) {
    ix_entry k = {(char *)key, {0}};
    return ix->n ? bsearch(&k, ix->e, (size_t)ix->n, sizeof *ix->e, cmp_entry) : NULL;
}

/* ---- parsing a file ------------------------------------------------------ */

enum part { P_DOWN, P_UP, P_MID, P_ALPHA, P_SCALE, P_W1A, P_W1B, P_W2A, P_W2B, P_T1, P_T2, P_COUNT };

static const struct {
    const char *suffix;
    enum part part;
} k_parts[] = {
    {".lora_down.weight", P_DOWN}, {".lora_up.weight", P_UP},   {".lora_mid.weight", P_MID},
    {".lora_A.weight", P_DOWN},    {".lora_B.weight", P_UP},    {".alpha", P_ALPHA},
    /* diffusers' older layouts: convert_state_dict_to_diffusers' (U-Net and
     * text encoder), and the attention processors' (..._lora.down.weight) */
    {".lora.down.weight", P_DOWN}, {".lora.up.weight", P_UP},
    {".lora_linear_layer.down.weight", P_DOWN}, {".lora_linear_layer.up.weight", P_UP},
    {"_lora.down.weight", P_DOWN}, {"_lora.up.weight", P_UP},
    {".scale", P_SCALE},           {".hada_w1_a", P_W1A},       {".hada_w1_b", P_W1B},
    {".hada_w2_a", P_W2A},         {".hada_w2_b", P_W2B},       {".hada_t1", P_T1},
    {".hada_t2", P_T2},
};
static const char *const k_part_names[P_COUNT] = {"lora_down (lora_A)", "lora_up (lora_B)", "lora_mid", "alpha", "scale",
                                                  "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1",
                                                  "hada_t2"};

/* What a tensor of another kind of network is, for the message. */
static const char *other_kind(const char *name) {
    if (!strncmp(name, "bundle_emb.", 11)) return "a textual-inversion embedding bundled in the LoRA file";
    if (strstr(name, ".lokr_")) return "a LyCORIS LoKr module";
    if (strstr(name, ".dora_scale") || strstr(name, "lora_magnitude_vector")) return "a DoRA module";
    if (strstr(name, ".oft_") || strstr(name, ".oft_blocks")) return "an OFT module";
    if (strstr(name, ".diff") || strstr(name, ".w_norm") || strstr(name, ".b_norm")) return "a full-weight module";
    if (strstr(name, ".lora_up.bias") || strstr(name, ".lora_down.bias") || strstr(name, ".lora_B.bias"))
        return "a LoRA bias";
    return NULL;
}

/* An attention processor's key names its module: "...attn1.processor.to_q"
 * is "...attn1.to_q", "...processor.to_out" is "...to_out.0" (in place:
 * never longer). */
static void processor_key(char *key) {
    char *p = strstr(key, ".processor.to_");
    if (!p) return;
    static const char *const from[4] = {"q", "k", "v", "out"}, *const to[4] = {"q", "k", "v", "out.0"};
    const char *tail = p + 14;
    for (int i = 0; i < 4; i++)
        if (!strcmp(tail, from[i])) {
            sprintf(p, ".to_%s", to[i]);
            return;
        }
}

typedef struct piece {
    const char *key;       /* module key (a copy) */
    enum part part;
    const sdc_st_tensor *t;
} piece;

static int cmp_piece(const void *a, const void *b) {
    const piece *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (int)x->part - (int)y->part;
}

static void shape_str(const sdc_st_tensor *t, char *out, size_t cap) {
    out[0] = '\0';
    for (int i = 0; i < t->ndim; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
}

/* A message on a module's tensor that does not fit its weight. */
static sdc_status misfit(const sdc_lora_file *l, const char *key, const sdc_st_tensor *t, const char *why,
                         const sdc_lora_target *tg) {
    char got[96];
    shape_str(t, got, sizeof got);
    const sdc_weight_src *s = tg->src;
    char k[32] = "";
    if (s->k > 1) snprintf(k, sizeof k, ", %d, %d", s->k, s->k);
    (void)key;
    return sdc_fail(SDC_ERR_FORMAT, "%s: %s has shape (%s), which does not fit the model's %s (%d, %d%s): %s (a LoRA "
                    "for another model family?)", l->path, t->name, got, s->name, tg->rows, s->cols, k, why);
}

static sdc_status check_plain(const sdc_lora_file *l, sdc_lora_module *m, const piece *pc[P_COUNT]) {
    const sdc_lora_target *tg = &m->target;
    const int64_t R = tg->rows, C = tg->src->cols, kk = tg->src->k ? (int64_t)tg->src->k * tg->src->k : 1;
    m->up = pc[P_UP]->t, m->down = pc[P_DOWN]->t, m->mid = pc[P_MID] ? pc[P_MID]->t : NULL;
    if (m->up->ndim < 1 || m->up->shape[0] != R || !(m->up->ndim == 2 || m->up->ndim == 4) ||
        (m->up->ndim == 4 && (m->up->shape[2] != 1 || m->up->shape[3] != 1)))
        return misfit(l, m->key, m->up, "expected (out, rank) or (out, rank, 1, 1)", tg);
    const int64_t r_up = m->up->shape[1];
    const int64_t rd = m->down->ndim >= 1 ? m->down->shape[0] : 0;
    if (r_up < 1 || rd < 1 || (m->down->ndim != 2 && m->down->ndim != 4))
        return misfit(l, m->key, m->down, "expected (rank, in) or (rank, in, k, k)", tg);
    if (!m->mid) {
        if (rd != r_up || m->down->numel != rd * C * kk)
            return misfit(l, m->key, m->down, "expected (rank, in[, k, k]) with lora_up's rank", tg);
    } else {
        const sdc_st_tensor *mid = m->mid;
        if (tg->src->k < 1 || mid->ndim != 4 || mid->shape[0] != r_up || mid->shape[1] != rd ||
            mid->shape[2] != tg->src->k || mid->shape[3] != tg->src->k)
            return misfit(l, m->key, mid, "expected (up's rank, down's rank, k, k) of a convolution", tg);
        if (m->down->numel != rd * C) return misfit(l, m->key, m->down, "expected (rank, in[, 1, 1])", tg);
    }
    m->rank = (int)rd;
    return SDC_OK;
}

/* one factor of a LoHa: (wa, wb[, t]) fits (R, C * kk) */
static sdc_status check_hada(const sdc_lora_file *l, sdc_lora_module *m, const sdc_st_tensor *wa,
                             const sdc_st_tensor *wb, const sdc_st_tensor *t) {
    const sdc_lora_target *tg = &m->target;
    const int64_t R = tg->rows, C = tg->src->cols, kk = tg->src->k ? (int64_t)tg->src->k * tg->src->k : 1;
    if (wb->ndim < 2) return misfit(l, m->key, wb, "expected (rank, in[, k, k])", tg);
    const int64_t r = wb->shape[0];
    if (!t) {
        if (wa->ndim != 2 || wa->shape[0] != R)
            return misfit(l, m->key, wa, "expected (out, rank)", tg);
        if (wa->shape[1] != r || wb->numel != r * C * kk)
            return misfit(l, m->key, wb, "expected (rank, in * k * k) with hada_w*_a's rank", tg);
        return SDC_OK;
    }
    if (tg->src->k < 1 || t->ndim != 4 || t->shape[1] != r || t->shape[2] != tg->src->k || t->shape[3] != tg->src->k)
        return misfit(l, m->key, t, "expected (rank, rank, k, k) of a convolution", tg);
    if (wa->ndim != 2 || wa->shape[0] != t->shape[0] || wa->shape[1] != R)
        return misfit(l, m->key, wa, "expected (rank, out) with hada_t", tg);
    if (wb->ndim != 2 || wb->shape[1] != C) return misfit(l, m->key, wb, "expected (rank, in) with hada_t", tg);
    return SDC_OK;
}

static sdc_status scalar(const sdc_lora_file *l, const sdc_st_tensor *t, double *out) {
    float v = 0.0f;
    if (t->numel != 1 || !sdc_dtype_is_float(t->dtype))
        return sdc_fail(SDC_ERR_FORMAT, "%s: %s: expected one float, got %lld %s values", l->path, t->name,
                        (long long)t->numel, sdc_dtype_name(t->dtype));
    SDC_TRY(sdc_st_to_f32(l->f, t, &v));
    *out = v;
    return SDC_OK;
}

/* One module: its pieces pc[part] (NULL: absent) matched to tg. */
static sdc_status build_module(const sdc_lora_file *l, sdc_lora_module *m, const piece *pc[P_COUNT]) {
    const bool plain = pc[P_UP] || pc[P_DOWN] || pc[P_MID];
    const bool hada = pc[P_W1A] || pc[P_W1B] || pc[P_W2A] || pc[P_W2B] || pc[P_T1] || pc[P_T2];
    if (plain && hada)
        return sdc_fail(SDC_ERR_FORMAT, "%s: module %s mixes LoRA (lora_up/lora_down) and LoHa (hada_*) tensors",
                        l->path, m->key);
    static const enum part need_plain[] = {P_UP, P_DOWN}, need_hada[] = {P_W1A, P_W1B, P_W2A, P_W2B};
    const enum part *need = plain ? need_plain : need_hada;
    const int n_need = plain ? 2 : hada ? 4 : 0;
    if (!n_need)
        return sdc_fail(SDC_ERR_FORMAT, "%s: module %s has only alpha/scale, no lora_up/lora_down or hada_* tensors",
                        l->path, m->key);
    for (int i = 0; i < n_need; i++)
        if (!pc[need[i]])
            return sdc_fail(SDC_ERR_FORMAT, "%s: module %s has no %s tensor", l->path, m->key, k_part_names[need[i]]);
    for (int p = 0; p < P_COUNT; p++)
        if (pc[p] && !sdc_dtype_is_float(pc[p]->t->dtype))
            return sdc_fail(SDC_ERR_FORMAT, "%s: %s: %s values, expected floats", l->path, pc[p]->t->name,
                            sdc_dtype_name(pc[p]->t->dtype));
    if (plain) {
        m->kind = SDC_LORA_PLAIN;
        SDC_TRY(check_plain(l, m, pc));
    } else {
        m->kind = SDC_LORA_LOHA;
        m->w1a = pc[P_W1A]->t, m->w1b = pc[P_W1B]->t, m->w2a = pc[P_W2A]->t, m->w2b = pc[P_W2B]->t;
        m->t1 = pc[P_T1] ? pc[P_T1]->t : NULL, m->t2 = pc[P_T2] ? pc[P_T2]->t : NULL;
        SDC_TRY(check_hada(l, m, m->w1a, m->w1b, m->t1));
        SDC_TRY(check_hada(l, m, m->w2a, m->w2b, m->t2));
        m->rank = (int)m->w1b->shape[0];
    }
    m->scale = 1.0;
    if (pc[P_SCALE]) {
        SDC_TRY(scalar(l, pc[P_SCALE]->t, &m->scale));
    } else if (pc[P_ALPHA]) {
        double alpha = 1.0;
        SDC_TRY(scalar(l, pc[P_ALPHA]->t, &alpha));
        m->scale = alpha / m->rank;
    }
    return SDC_OK;
}

/* Another family's LoRA, told by its keys (*key: the telling one; *hint:
 * what the model's own keys would be, or ""), or NULL. */
static const char *family_of_keys(const sdc_st_file *f, sdc_family model, const char **key, const char **hint) {
    const bool xl = model == SDC_FAMILY_SDXL;
    *hint = "";
    for (int i = 0; i < f->n_tensors; i++) {
        const char *n = f->tensors[i].name;
        *key = n;
        if (!xl && (!strncmp(n, "lora_te1_", 9) || !strncmp(n, "lora_te2_", 9) || strstr(n, "label_emb") ||
                    strstr(n, "add_embedding") || !strncmp(n, "text_encoder_2.", 15)))
            return "SDXL";
        /* kohya's one text encoder; on SDXL, A1111 matches it to neither */
        if (xl && !strncmp(n, "lora_te_", 8)) {
            *hint = " (SDXL's text encoders are lora_te1_ and lora_te2_)";
            return "SD 1.x or 2.x";
        }
        if (!strncmp(n, "lora_transformer_", 17) || !strncmp(n, "transformer.", 12) || strstr(n, "double_blocks"))
            return "a transformer model (SD3, Flux)";
    }
    return NULL;
}

static sdc_status parse(sdc_lora_file *l, const sdc_lora_index *ix) {
    const sdc_st_file *f = l->f;
    const char *key = NULL, *hint = NULL, *other = family_of_keys(f, ix->family, &key, &hint);
    if (other)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: a LoRA for %s (keys such as %s), not for this %s model%s", l->path,
                        other, key, sdc_family_name(ix->family), hint);
    if (f->n_tensors == 0) return sdc_fail(SDC_ERR_FORMAT, "%s: no tensors: not a LoRA file", l->path);
    piece *pcs = calloc((size_t)f->n_tensors, sizeof *pcs);
    l->keys = calloc((size_t)f->n_tensors, sizeof *l->keys);
    if (!pcs || !l->keys) {
        free(pcs);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    sdc_status st = SDC_OK;
    for (int i = 0; st == SDC_OK && i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        const size_t n = strlen(name);
        int which = -1;
        for (size_t k = 0; k < sizeof k_parts / sizeof k_parts[0]; k++) {
            size_t ls = strlen(k_parts[k].suffix);
            if (n > ls && !strcmp(name + n - ls, k_parts[k].suffix)) {
                which = (int)k;
                break;
            }
        }
        if (which < 0) {
            const char *kind = other_kind(name);
            st = kind ? sdc_fail(SDC_ERR_UNSUPPORTED, "%s: tensor %s is %s, which sdc does not apply", l->path, name,
                                 kind)
                      : sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s is no part of a LoRA (expected names ending in "
                                 ".lora_down.weight, .lora_up.weight, .lora_mid.weight, .alpha, .lora_A.weight, "
                                 ".lora_B.weight, .lora.down.weight, .lora.up.weight or .hada_*)", l->path, name);
            break;
        }
        l->keys[i] = strndup(name, n - strlen(k_parts[which].suffix));
        if (!l->keys[i]) st = sdc_fail(SDC_ERR_OOM, "out of memory");
        else processor_key(l->keys[i]);
        pcs[i] = (piece){l->keys[i], k_parts[which].part, &f->tensors[i]};
    }
    if (st == SDC_OK) qsort(pcs, (size_t)f->n_tensors, sizeof *pcs, cmp_piece);
    int n_mods = 0, unmatched = 0;
    const char *first_unmatched = NULL;
    if (st == SDC_OK && !(l->mods = calloc((size_t)f->n_tensors, sizeof *l->mods)))
        st = sdc_fail(SDC_ERR_OOM, "out of memory");
    for (int i = 0; st == SDC_OK && i < f->n_tensors;) {
        int j = i;
        const piece *pc[P_COUNT] = {0};
        for (; j < f->n_tensors && !strcmp(pcs[j].key, pcs[i].key); j++) {
            if (pc[pcs[j].part])
                st = sdc_fail(SDC_ERR_FORMAT, "%s: module %s has two %s tensors (%s and %s)", l->path, pcs[i].key,
                              k_part_names[pcs[j].part], pc[pcs[j].part]->t->name, pcs[j].t->name);
            pc[pcs[j].part] = &pcs[j];
        }
        const ix_entry *e = st == SDC_OK ? ix_find(ix, pcs[i].key) : NULL;
        if (st == SDC_OK && !e) {
            if (!unmatched++) first_unmatched = pcs[i].key;
        } else if (st == SDC_OK) {
            sdc_lora_module *m = &l->mods[n_mods];
            m->key = pcs[i].key;
            m->target = e->t;
            st = build_module(l, m, pc);
            for (int k = 0; st == SDC_OK && k < n_mods; k++)
                if (l->mods[k].target.src == m->target.src && l->mods[k].target.row0 == m->target.row0)
                    st = sdc_fail(SDC_ERR_FORMAT, "%s: modules %s and %s change the same weight (%s)", l->path,
                                  l->mods[k].key, m->key, m->target.src->name);
            if (st == SDC_OK) {
                n_mods++;
                if (m->target.te) l->n_te++;
                else l->n_unet++;
            }
        }
        i = j;
    }
    if (st == SDC_OK && unmatched && !n_mods)
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: no module of this LoRA names a weight of the %s model (%d module%s, "
                      "the first %s): a LoRA for another model family?", l->path, sdc_family_name(ix->family),
                      unmatched, unmatched > 1 ? "s" : "", first_unmatched);
    else if (st == SDC_OK && unmatched)
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: module %s%s names no weight of the %s model (%d of %d modules do not "
                      "match; %d do)", l->path, first_unmatched, unmatched > 1 ? " and others" : "",
                      sdc_family_name(ix->family), unmatched, unmatched + n_mods, n_mods);
    l->n_mods = n_mods;
    free(pcs);
    return st;
}

sdc_status sdc_lora_open(const char *path, const sdc_lora_index *ix, sdc_lora_file **out) {
    *out = NULL;
    if (!path || !ix) return sdc_fail(SDC_ERR_ARG, "sdc_lora_open: NULL argument");
    sdc_lora_file *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    sdc_status st = sdc_st_open(path, &l->f);
    if (st == SDC_OK) st = parse(l, ix);
    if (st != SDC_OK) {
        sdc_lora_close(l);
        return st;
    }
    *out = l;
    return SDC_OK;
}

void sdc_lora_close(sdc_lora_file *l) {
    if (!l) return;
    if (l->keys && l->f)
        for (int i = 0; i < l->f->n_tensors; i++) free(l->keys[i]);
    free(l->keys);
    free(l->mods);
    sdc_st_close(l->f);
    free(l->path);
    free(l);
}

/* ---- deltas --------------------------------------------------------------- */

static sdc_status load_f32(const sdc_lora_file *l, const sdc_st_tensor *t, float **out) {
    *out = malloc((size_t)t->numel * sizeof(float));
    if (!*out) return sdc_fail(SDC_ERR_OOM, "out of memory reading %s", t->name);
    sdc_status st = sdc_st_to_f32(l->f, t, *out);
    if (st != SDC_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

/* out (r, C * kk) = the contraction of core (r, r2, kk) with b (r2, C) over
 * its second index: out[i, j * kk + q] = sum_m core[i, m, q] b[m, j]
 * (lora_mid with down; hada_t with hada_w*_b). */
static void contract_core(const float *core, const float *b, int r, int r2, int C, int kk, float *out) {
    memset(out, 0, (size_t)r * C * kk * sizeof *out);
    for (int i = 0; i < r; i++)
        for (int m = 0; m < r2; m++)
            for (int j = 0; j < C; j++) {
                const float bj = b[(size_t)m * C + j];
                const float *cm = core + ((size_t)i * r2 + m) * kk;
                float *o = out + ((size_t)i * C + j) * kk;
                for (int q = 0; q < kk; q++) o[q] += cm[q] * bj;
            }
}

/* d (R, N) = one LoHa factor: wa @ wb, or wa^T @ (t contracted with wb) */
static sdc_status hada_factor(const sdc_lora_file *l, const sdc_st_tensor *ta, const sdc_st_tensor *tb,
                              const sdc_st_tensor *tt, int R, int C, int kk, float *d) {
    float *a = NULL, *b = NULL, *t = NULL, *tmp = NULL;
    const int N = C * kk;
    sdc_status st = load_f32(l, ta, &a);
    if (st == SDC_OK) st = load_f32(l, tb, &b);
    if (st == SDC_OK && tt) st = load_f32(l, tt, &t);
    if (st == SDC_OK && !tt) {
        const int r = (int)tb->shape[0];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, N, r, 1.0f, a, r, b, N, 0.0f, d, N);
    } else if (st == SDC_OK) {
        const int r = (int)tt->shape[0], r2 = (int)tt->shape[1];
        tmp = malloc((size_t)r * N * sizeof *tmp);
        if (!tmp) st = sdc_fail(SDC_ERR_OOM, "out of memory");
        else {
            contract_core(t, b, r, r2, C, kk, tmp);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, N, r, 1.0f, a, R, tmp, N, 0.0f, d, N);
        }
    }
    free(a), free(b), free(t), free(tmp);
    return st;
}

sdc_status sdc_lora_add_delta(const sdc_lora_file *l, const sdc_lora_module *m, double s, float *w) {
    const sdc_weight_src *src = m->target.src;
    const int R = m->target.rows, C = src->cols, kk = src->k ? src->k * src->k : 1, N = C * kk;
    sdc_status st = SDC_OK;
    if (m->kind == SDC_LORA_PLAIN) {
        float *up = NULL, *down = NULL, *mid = NULL, *core = NULL;
        const int r = (int)m->up->shape[1];
        st = load_f32(l, m->up, &up);
        if (st == SDC_OK) st = load_f32(l, m->down, &down);
        if (st == SDC_OK && m->mid) st = load_f32(l, m->mid, &mid);
        if (st == SDC_OK && m->mid) {
            core = malloc((size_t)r * N * sizeof *core);
            if (!core) st = sdc_fail(SDC_ERR_OOM, "out of memory");
            else contract_core(mid, down, r, (int)m->down->shape[0], C, kk, core);
        }
        if (st == SDC_OK) /* w += s * up @ (down, or mid contracted with down) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, N, r, (float)s, up, r, core ? core : down, N,
                        1.0f, w, N);
        free(up), free(down), free(mid), free(core);
        return st;
    }
    float *d1 = malloc((size_t)R * N * sizeof *d1), *d2 = malloc((size_t)R * N * sizeof *d2);
    if (!d1 || !d2) st = sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK) st = hada_factor(l, m->w1a, m->w1b, m->t1, R, C, kk, d1);
    if (st == SDC_OK) st = hada_factor(l, m->w2a, m->w2b, m->t2, R, C, kk, d2);
    if (st == SDC_OK) {
        const float fs = (float)s;
        for (size_t i = 0; i < (size_t)R * N; i++) w[i] += fs * (d1[i] * d2[i]);
    }
    free(d1), free(d2);
    return st;
}

sdc_status sdc_lora_file_hash(sdc_lora_file *l) {
    if (l->hash[0]) return SDC_OK;
    const char *meta = sdc_st_meta(l->f, "sshs_model_hash");
    if (meta && *meta) {
        snprintf(l->hash, sizeof l->hash, "%.12s", meta);
        return SDC_OK;
    }
    /* the addnet hash: SHA-256 of everything after the 8-byte length and the header */
    const unsigned char *p = l->f->map;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | p[i];
    sdc_sha256_ctx c;
    sdc_sha256_init(&c);
    sdc_sha256_update(&c, p + 8 + hl, l->f->map_size - 8 - (size_t)hl);
    uint8_t d[32];
    char hex[65];
    sdc_sha256_final(&c, d);
    sdc_sha256_hex(d, hex);
    memcpy(l->hash, hex, 12);
    l->hash[12] = '\0';
    return SDC_OK;
}
