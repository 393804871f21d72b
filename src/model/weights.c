/* weights.c - U-Net / VAE weights by diffusers name, from either layout. */
#include "model/weights.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/names.h"

void sdc_loader_init(sdc_loader *L, const sdc_model_files *m, sdc_component comp,
                     sdc_backend *be, sdc_weight_set *set) {
    memset(L, 0, sizeof *L);
    L->m = m;
    L->comp = comp;
    L->be = be;
    L->set = set;
    const char *no = getenv("SDC_NO_MMAP");
    L->in_place = be->weights_as_stored && !(no && *no && strcmp(no, "0") != 0);
}

void sdc_loader_init_file(sdc_loader *L, const sdc_st_file *f, const char *what, sdc_backend *be,
                          sdc_weight_set *set) {
    memset(L, 0, sizeof *L);
    L->comp = SDC_COMP_FILE;
    L->file = f;
    L->what = what;
    L->be = be;
    L->set = set;
}

void sdc_loader_done(sdc_loader *L) {
    free(L->stage);
    free(L->used);
    L->stage = NULL;
    L->used = NULL;
    L->stage_cap = 0;
}

static const sdc_st_file *comp_file(const sdc_loader *L) {
    if (L->comp == SDC_COMP_FILE) return L->file;
    if (L->comp == SDC_COMP_TEXT2) return L->m->text2_file;
    return L->comp == SDC_COMP_UNET ? L->m->unet_file : L->comp == SDC_COMP_VAE ? L->m->vae_file : L->m->text_file;
}

static const char *comp_prefix(const sdc_loader *L) {
    if (L->comp == SDC_COMP_FILE) return "";
    if (L->comp == SDC_COMP_TEXT2) return L->m->text2_prefix;
    return L->comp == SDC_COMP_UNET ? L->m->unet_prefix : L->comp == SDC_COMP_VAE ? L->m->vae_prefix
                                                                                   : L->m->text_prefix;
}

static const char *comp_what(const sdc_loader *L) {
    if (L->comp == SDC_COMP_FILE) return L->what;
    if (L->comp == SDC_COMP_TEXT2) return "second text encoder";
    return L->comp == SDC_COMP_UNET ? "U-Net" : L->comp == SDC_COMP_VAE ? "VAE" : "text encoder";
}

static sdc_status mark_used(sdc_loader *L, const sdc_st_tensor *t) {
    const sdc_st_file *f = comp_file(L);
    if (!L->used && !(L->used = calloc((size_t)f->n_tensors + 1, 1)))
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    L->used[t - f->tensors] = 1;
    return SDC_OK;
}

sdc_status sdc_loader_check_all_used(sdc_loader *L) {
    const sdc_st_file *f = comp_file(L);
    const char *prefix = comp_prefix(L);
    const char *what = comp_what(L);
    size_t n = strlen(prefix);
    int left = 0;
    const char *first = NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, prefix, n) == 0 && !(L->used && L->used[i])) {
            if (!first) first = f->tensors[i].name;
            left++;
        }
    if (!left) return SDC_OK;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: %s tensor %s%s is not part of the SD 1.x / 2.x / XL %s that sdc runs (%d such "
                    "tensor%s): the model has parts sdc does not implement", f->path, what, first,
                    left > 1 ? " and others" : "", what, left, left > 1 ? "s" : "");
}

/* The tensor for a diffusers name, or NULL; *full gets the name looked up. */
static const sdc_st_tensor *lookup(sdc_loader *L, const char *name, char *full, size_t cap) {
    const sdc_model_files *m = L->m;
    if (L->comp == SDC_COMP_FILE) {
        snprintf(full, cap, "%s", name);
        return sdc_st_find(L->file, name);
    }
    if (L->comp == SDC_COMP_TEXT || L->comp == SDC_COMP_TEXT2) { /* the text encoders' own names */
        snprintf(full, cap, "%s%s", comp_prefix(L), name);
        return sdc_st_find(comp_file(L), full);
    }
    const bool unet = L->comp == SDC_COMP_UNET;
    const sdc_st_file *f = unet ? m->unet_file : m->vae_file;
    const char *prefix = unet ? m->unet_prefix : m->vae_prefix;
    bool diffusers = unet ? m->unet_diffusers_names : m->vae_diffusers_names;
    char orig[512];
    if (diffusers) {
        snprintf(full, cap, "%s%s", prefix, name);
    } else {
        sdc_status st = unet ? sdc_unet_name_to_original(&m->config.unet, name, orig, sizeof orig)
                             : sdc_vae_name_to_original(&m->config.vae, name, orig, sizeof orig);
        if (st != SDC_OK) {
            snprintf(full, cap, "%s%s", prefix, name);
            return NULL;
        }
        snprintf(full, cap, "%s%s", prefix, orig);
    }
    return sdc_st_find(f, full);
}

bool sdc_loader_has(sdc_loader *L, const char *name) {
    char full[640];
    return lookup(L, name, full, sizeof full) != NULL;
}

static sdc_status stage(sdc_loader *L, size_t bytes) {
    if (L->stage_cap >= bytes) return SDC_OK;
    free(L->stage);
    L->stage = malloc(bytes ? bytes : 1);
    L->stage_cap = L->stage ? bytes : 0;
    return L->stage ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory staging a tensor of %zu bytes", bytes);
}

static sdc_status record(sdc_loader *L, void *p, size_t bytes) {
    sdc_weight_set *s = L->set;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        void **np = realloc(s->ptrs, (size_t)cap * sizeof *np);
        if (!np) {
            L->be->ops->free(L->be, p);
            return sdc_fail(SDC_ERR_OOM, "out of memory");
        }
        s->ptrs = np;
        s->cap = cap;
    }
    s->ptrs[s->n++] = p;
    s->bytes += bytes;
    return SDC_OK;
}

static size_t dtype_bytes(sdc_dtype t) { return t == SDC_DT_F32 ? 4 : 2; }

/* Remember where a matrix (k 0) or kernel came from (sdc_weight_src). */
static sdc_status record_src(sdc_loader *L, const char *name, const sdc_st_tensor *t, sdc_weight w, int row0,
                             int rows, int cols, int k, bool in_place) {
    sdc_weight_set *s = L->set;
    if (s->n_srcs == s->cap_srcs) {
        int cap = s->cap_srcs ? 2 * s->cap_srcs : 256;
        sdc_weight_src *np = realloc(s->srcs, (size_t)cap * sizeof *np);
        if (!np) return sdc_fail(SDC_ERR_OOM, "out of memory");
        s->srcs = np;
        s->cap_srcs = cap;
    }
    char *copy = strdup(name);
    if (!copy) return sdc_fail(SDC_ERR_OOM, "out of memory");
    s->srcs[s->n_srcs++] = (sdc_weight_src){.name = copy, .file = comp_file(L), .t = t, .w = w, .row0 = row0,
                                            .rows = rows, .cols = cols, .k = k, .in_place = in_place};
    return SDC_OK;
}

/* The staged tensor (stage, of stage_type) into backend memory as `type`. */
static sdc_status upload(sdc_loader *L, void **dst, sdc_dtype type, sdc_dtype stage_type, size_t n) {
    void *p = NULL;
    SDC_TRY(L->be->ops->load_tensor(L->be, type, L->stage, stage_type, n, &p));
    SDC_TRY(record(L, p, n * dtype_bytes(type)));
    *dst = p;
    return SDC_OK;
}

/* The type a matrix or kernel staged as `staged` is kept in: the file's
 * own on a backend that keeps weights as stored (the CPU), else the one
 * the backend computes with. */
static sdc_dtype mat_type(const sdc_loader *L, sdc_dtype staged) {
    return L->be->weights_as_stored ? staged : L->be->weight_type;
}

/* A file type the stage keeps as it is (on a little-endian host, as the
 * file is little-endian); any other float type is staged as F32. */
static sdc_dtype stage_type_of(sdc_dtype t) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (t == SDC_DT_F32 || t == SDC_DT_F16 || t == SDC_DT_BF16) return t;
#else
    (void)t;
#endif
    return SDC_DT_F32;
}

/* Find `name` and check its shape. dims: expected shape; allow_1x1: a
 * matrix may be a (out, in, 1, 1) convolution; a vector may be (1, n) in
 * the text encoder. */
static sdc_status find(sdc_loader *L, const char *name, const int64_t *dims, int ndim, bool allow_1x1,
                       const sdc_st_tensor **out) {
    char full[640];
    const sdc_st_tensor *t = lookup(L, name, full, sizeof full);
    const sdc_st_file *f = comp_file(L);
    const char *what = comp_what(L);
    if (!t) return sdc_fail(SDC_ERR_FORMAT, "%s: %s tensor %s is missing", f->path, what, full);
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok && allow_1x1 && ndim == 2 && t->ndim == 4)
        ok = t->shape[0] == dims[0] && t->shape[1] == dims[1] && t->shape[2] == 1 && t->shape[3] == 1;
    if (!ok && (L->comp == SDC_COMP_TEXT || L->comp == SDC_COMP_TEXT2) && ndim == 1 && t->ndim == 2) /* OpenCLIP's (1, n) vectors */
        ok = t->shape[0] == 1 && t->shape[1] == dims[0];
    if (!ok) {
        char got[128] = "", want[128] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "", (long long)dims[i]);
        return sdc_fail(SDC_ERR_FORMAT, "%s: %s tensor %s has shape (%s), expected (%s)", f->path, what,
                        full, got, want);
    }
    SDC_TRY(mark_used(L, t));
    *out = t;
    return SDC_OK;
}

/* Where table t can be read in place: its view, when the loader reads in
 * place, the type is one the backend keeps as stored and the elements
 * are aligned; not read in now (a row is read when it is used). */
static const void *in_place_table(sdc_loader *L, const sdc_st_tensor *t) {
    if (!L->in_place || stage_type_of(t->dtype) != t->dtype) return NULL;
    const char *v = sdc_st_view(comp_file(L), t);
    return v && (uintptr_t)v % sdc_dtype_size(t->dtype) == 0 ? v : NULL;
}

/* Where tensors ts[0..n) can be read in place as one weight: the file's
 * view of the first, when the loader reads in place, the type is one the
 * backend keeps as stored, the elements are aligned and the tensors lie
 * one after the other in the file; else NULL (they are copied). The view
 * is read in now, so that loading, not the first product, pays for it. */
static const void *in_place_view(sdc_loader *L, const sdc_st_tensor *const *ts, int n) {
    const sdc_st_file *f = comp_file(L);
    const char *v = in_place_table(L, ts[0]);
    if (!v) return NULL;
    size_t bytes = ts[0]->nbytes;
    for (int i = 1; i < n; i++) {
        if (ts[i]->dtype != ts[0]->dtype || (const char *)ts[i]->data != (const char *)ts[0]->data + bytes)
            return NULL;
        bytes += ts[i]->nbytes;
    }
    sdc_st_populate(f, v, bytes);
    L->set->in_place_bytes += bytes;
    return v;
}

/* t's elements into dst as `type` (its own, or F32); then its pages go. */
static sdc_status stage_tensor(sdc_loader *L, const sdc_st_tensor *t, sdc_dtype type, unsigned char *dst) {
    const sdc_st_file *f = comp_file(L);
    if (type == t->dtype) memcpy(dst, t->data, t->nbytes);
    else SDC_TRY(sdc_st_to_f32(f, t, (float *)dst));
    sdc_st_drop_tensor_pages(f, t); /* the file's pages do not count twice */
    return SDC_OK;
}

/* the n tensors ts (found and shape-checked) one after the other in the
 * stage, in one type: theirs if they share it, else fp32 */
static sdc_status stage_stack(sdc_loader *L, int n, const sdc_st_tensor *const *ts, sdc_dtype *type, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)ts[i]->numel;
    sdc_dtype ty = stage_type_of(ts[0]->dtype);
    for (int i = 1; i < n; i++)
        if (stage_type_of(ts[i]->dtype) != ty) ty = SDC_DT_F32;
    SDC_TRY(stage(L, total * dtype_bytes(ty)));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        SDC_TRY(stage_tensor(L, ts[i], ty, L->stage + off * dtype_bytes(ty)));
        off += (size_t)ts[i]->numel;
    }
    *type = ty;
    *count = total;
    return SDC_OK;
}

/* Read tensors names[0..n) of shapes (rows_i, cols) (cols 0: vectors) one
 * after the other into the stage, in one type: the file's when they share
 * a type the stage keeps, else F32. *count gets the elements staged. */
static sdc_status read_stack(sdc_loader *L, int n, const int *rows, int cols, const char *const *names,
                             bool allow_1x1, sdc_dtype *type, size_t *count, const sdc_st_tensor **ts) {
    if (n < 1 || n > 8) return sdc_fail(SDC_ERR_ARG, "read_stack: %d tensors", n);
    for (int i = 0; i < n; i++) {
        int64_t d[2] = {rows[i], cols};
        SDC_TRY(find(L, names[i], d, cols ? 2 : 1, allow_1x1, &ts[i]));
    }
    return stage_stack(L, n, ts, type, count);
}

sdc_status sdc_load_vec(sdc_loader *L, float **dst, int n, const char *name) {
    sdc_dtype ty;
    size_t count;
    const sdc_st_tensor *ts[1];
    SDC_TRY(read_stack(L, 1, &n, 0, &name, false, &ty, &count, ts));
    return upload(L, (void **)dst, SDC_DT_F32, ty, count);
}

sdc_status sdc_load_table(sdc_loader *L, float **dst, int rows, int cols, const char *name) {
    sdc_dtype ty;
    size_t count;
    const sdc_st_tensor *ts[1];
    SDC_TRY(read_stack(L, 1, &rows, cols, &name, false, &ty, &count, ts));
    return upload(L, (void **)dst, SDC_DT_F32, ty, count);
}

sdc_status sdc_load_host_table(sdc_loader *L, sdc_host_table *dst, int rows, int cols, const char *name) {
    const sdc_st_tensor *t;
    const int64_t d[2] = {rows, cols};
    SDC_TRY(find(L, name, d, 2, false, &t));
    *dst = (sdc_host_table){.p = in_place_table(L, t), .type = stage_type_of(t->dtype), .rows = rows, .cols = cols};
    if (dst->p) return SDC_OK;
    sdc_weight_set *s = L->set;
    if (s->n_host == s->cap_host) {
        const int cap = s->cap_host ? 2 * s->cap_host : 4;
        void **np = realloc(s->host, (size_t)cap * sizeof *np);
        if (!np) return sdc_fail(SDC_ERR_OOM, "out of memory");
        s->host = np;
        s->cap_host = cap;
    }
    const size_t bytes = (size_t)t->numel * dtype_bytes(dst->type);
    unsigned char *copy = malloc(bytes ? bytes : 1);
    if (!copy) return sdc_fail(SDC_ERR_OOM, "out of memory for the %zu-byte table %s", bytes, name);
    s->host[s->n_host++] = copy;
    SDC_TRY(stage_tensor(L, t, dst->type, copy));
    dst->p = copy;
    return SDC_OK;
}

void sdc_host_table_row(const sdc_host_table *t, int row, float *out) {
    const size_t at = (size_t)row * (size_t)t->cols;
    if (t->type == SDC_DT_F32) {
        memcpy(out, (const float *)t->p + at, (size_t)t->cols * sizeof(float));
        return;
    }
    const uint16_t *h = (const uint16_t *)t->p + at;
    for (int i = 0; i < t->cols; i++) out[i] = t->type == SDC_DT_F16 ? sdc_f16_to_f32(h[i]) : sdc_bf16_to_f32(h[i]);
}

sdc_status sdc_load_mat(sdc_loader *L, sdc_weight *dst, int out, int in, const char *name) {
    return sdc_load_mats_stacked(L, dst, 1, &out, in, &name);
}

sdc_status sdc_load_mat_t(sdc_loader *L, sdc_weight *dst, int out, int in, const char *name) {
    sdc_dtype ty;
    size_t count;
    const sdc_st_tensor *ts[1];
    SDC_TRY(read_stack(L, 1, &in, out, &name, false, &ty, &count, ts));
    const size_t eb = dtype_bytes(ty);
    unsigned char *tr = malloc(count * eb);
    if (!tr) return sdc_fail(SDC_ERR_OOM, "out of memory transposing %s", name);
    for (int i = 0; i < in; i++) /* (in, out) -> (out, in), element by element in the staged type */
        for (int o = 0; o < out; o++)
            memcpy(tr + ((size_t)o * in + i) * eb, L->stage + ((size_t)i * out + o) * eb, eb);
    memcpy(L->stage, tr, count * eb);
    free(tr);
    dst->type = mat_type(L, ty);
    dst->chan_pad = 0;
    dst->pt_taps = 0;
    dst->bf16 = L->be->products_bf16;
    return upload(L, &dst->p, dst->type, ty, count);
}

sdc_status sdc_load_mats_stacked(sdc_loader *L, sdc_weight *dst, int n_mats, const int *outs, int in,
                                 const char *const *names) {
    if (n_mats < 1 || n_mats > 8) return sdc_fail(SDC_ERR_ARG, "sdc_load_mats_stacked: %d matrices", n_mats);
    const sdc_st_tensor *ts[8];
    for (int i = 0; i < n_mats; i++) {
        int64_t d[2] = {outs[i], in};
        SDC_TRY(find(L, names[i], d, 2, true, &ts[i]));
    }
    const void *view = in_place_view(L, ts, n_mats);
    if (view) {
        *dst = (sdc_weight){.p = (void *)view, .type = ts[0]->dtype, .bf16 = L->be->products_bf16};
    } else {
        sdc_dtype ty;
        size_t count;
        SDC_TRY(stage_stack(L, n_mats, ts, &ty, &count));
        dst->type = mat_type(L, ty);
        dst->chan_pad = 0;
        dst->pt_taps = 0;
        dst->bf16 = L->be->products_bf16;
        SDC_TRY(upload(L, &dst->p, dst->type, ty, count));
    }
    for (int i = 0, row = 0; i < n_mats; row += outs[i], i++)
        SDC_TRY(record_src(L, names[i], ts[i], *dst, row, outs[i], in, 0, view != NULL));
    return SDC_OK;
}

sdc_status sdc_load_vecs_stacked(sdc_loader *L, float **dst, int n_vecs, const int *ns, const char *const *names) {
    sdc_dtype ty;
    size_t count;
    const sdc_st_tensor *ts[8];
    SDC_TRY(read_stack(L, n_vecs, ns, 0, names, false, &ty, &count, ts));
    return upload(L, (void **)dst, SDC_DT_F32, ty, count);
}

/* (cout, cin, ky, kx) -> (cout, ky, kx, cin), elements of type T */
#define PERMUTE_CONV(T, dst, src)                                                                    \
    do {                                                                                             \
        const T *s_ = (const T *)(src);                                                              \
        T *d_ = (T *)(dst);                                                                          \
        for (int o = 0; o < cout; o++)                                                               \
            for (int i = 0; i < cin; i++)                                                            \
                for (int t = 0; t < k * k; t++)                                                      \
                    d_[((size_t)o * k * k + t) * cin + i] = s_[((size_t)o * cin + i) * k * k + t];   \
    } while (0)

sdc_status sdc_load_conv(sdc_loader *L, sdc_weight *dst, int cout, int cin, int k, const char *name) {
    int64_t d[4] = {cout, cin, k, k};
    const size_t n = (size_t)cout * cin * k * k;
    const sdc_st_tensor *t;
    SDC_TRY(find(L, name, d, 4, false, &t));
    const void *view = in_place_view(L, &t, 1);
    if (view) { /* PyTorch's (cout, cin, k, k), which the CPU reads as it is */
        *dst = (sdc_weight){.p = (void *)view, .type = t->dtype, .pt_taps = k > 1 ? k * k : 0,
                            .bf16 = L->be->products_bf16};
        return record_src(L, name, t, *dst, 0, cout, cin, k, true);
    }
    const sdc_dtype ty = stage_type_of(t->dtype);
    const size_t es = dtype_bytes(ty);
    SDC_TRY(stage(L, 2 * n * es));
    unsigned char *src = L->stage + n * es;
    SDC_TRY(stage_tensor(L, t, ty, src));
    if (es == 4) PERMUTE_CONV(uint32_t, L->stage, src);
    else PERMUTE_CONV(uint16_t, L->stage, src);
    /* the backend lays it out as it computes best (CUDA pads channels) */
    SDC_TRY(L->be->ops->load_conv(L->be, mat_type(L, ty), L->stage, ty, cout, k, cin, dst));
    dst->bf16 = L->be->products_bf16;
    const int q = dst->chan_pad > 1 ? dst->chan_pad : 1;
    const size_t padded = (size_t)((cout + q - 1) / q * q) * k * k * ((cin + q - 1) / q * q);
    SDC_TRY(record(L, dst->p, padded * dtype_bytes(dst->type)));
    return record_src(L, name, t, *dst, 0, cout, cin, k, false);
}

sdc_status sdc_load_conv_bias(sdc_loader *L, sdc_weight *w, float **b, int cout, int cin, int k, const char *prefix) {
    char n[512];
    snprintf(n, sizeof n, "%s.weight", prefix);
    SDC_TRY(sdc_load_conv(L, w, cout, cin, k, n));
    snprintf(n, sizeof n, "%s.bias", prefix);
    return sdc_load_vec(L, b, cout, n);
}

sdc_status sdc_load_norm(sdc_loader *L, float **w, float **b, int n_ch, const char *prefix) {
    char n[512];
    snprintf(n, sizeof n, "%s.weight", prefix);
    SDC_TRY(sdc_load_vec(L, w, n_ch, n));
    snprintf(n, sizeof n, "%s.bias", prefix);
    return sdc_load_vec(L, b, n_ch, n);
}

void sdc_weight_set_free(sdc_weight_set *set, sdc_backend *be) {
    for (int i = 0; i < set->n; i++) be->ops->free(be, (float *)set->ptrs[i]);
    for (int i = 0; i < set->n_host; i++) free(set->host[i]);
    free(set->host);
    for (int i = 0; i < set->n_srcs; i++) free(set->srcs[i].name);
    free(set->srcs);
    free(set->ptrs);
    memset(set, 0, sizeof *set);
}

sdc_status sdc_weight_read_original(const sdc_weight_src *src, float *pt) {
    return sdc_st_to_f32(src->file, src->t, pt);
}

sdc_status sdc_weight_store(sdc_backend *be, const sdc_weight_src *src, const float *pt, float *scratch) {
    if (src->in_place) /* sdc_widen_for_merges reloads such weights into memory of their own first */
        return sdc_fail(SDC_ERR_ARG, "%s: the weight is read in place from the model file and cannot be rewritten",
                        src->name);
    const sdc_dtype type = src->w.type;
    const int cout = src->rows, cin = src->cols, k = src->k;
    const sdc_buf whole = {src->w.p, type};
    if (k > 0) { /* (cout, cin, k, k) -> (cout, k, k, cin) */
#pragma omp parallel for schedule(static)
        for (int o = 0; o < cout; o++) /* PERMUTE_CONV, a row of kernels per thread */
            for (int i = 0; i < cin; i++)
                for (int t = 0; t < k * k; t++)
                    scratch[((size_t)o * k * k + t) * cin + i] = pt[((size_t)o * cin + i) * k * k + t];
        pt = scratch;
        if (be->ops->store_tensor && src->w.chan_pad <= 1)
            return be->ops->store_tensor(be, whole, pt, (size_t)cout * k * k * cin);
    } else if (be->ops->store_tensor) {
        return be->ops->store_tensor(be, sdc_at(whole, (size_t)src->row0 * cin), pt, (size_t)cout * cin);
    }
    /* into new memory laid out as at load (CUDA pads kernels), then copied */
    sdc_weight tmp = {0};
    size_t n;
    if (k > 0) {
        SDC_TRY(be->ops->load_conv(be, type, pt, SDC_DT_F32, cout, k, cin, &tmp));
        if (tmp.chan_pad != src->w.chan_pad) {
            be->ops->free(be, tmp.p);
            return sdc_fail(SDC_ERR_BACKEND, "%s: the backend laid the kernel out differently than at load", src->name);
        }
        const int q = tmp.chan_pad > 1 ? tmp.chan_pad : 1;
        n = (size_t)((cout + q - 1) / q * q) * k * k * ((cin + q - 1) / q * q);
    } else {
        n = (size_t)cout * cin;
        SDC_TRY(be->ops->load_tensor(be, type, pt, SDC_DT_F32, n, &tmp.p));
    }
    const sdc_buf dst = sdc_at(whole, (size_t)src->row0 * cin);
    sdc_status st = be->ops->copy(be, dst, (sdc_buf){tmp.p, type}, n);
    be->ops->free(be, tmp.p);
    return st;
}
