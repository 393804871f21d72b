/* weights.c - U-Net / VAE weights by diffusers name, from either layout. */
#include "model/weights.h"

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
}

void sdc_loader_done(sdc_loader *L) {
    free(L->stage);
    free(L->used);
    L->stage = NULL;
    L->used = NULL;
    L->stage_cap = 0;
}

static const sdc_st_file *comp_file(const sdc_loader *L) {
    return L->comp == SDC_COMP_UNET ? L->m->unet_file : L->m->vae_file;
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
    const char *prefix = L->comp == SDC_COMP_UNET ? L->m->unet_prefix : L->m->vae_prefix;
    const char *what = L->comp == SDC_COMP_UNET ? "U-Net" : "VAE";
    size_t n = strlen(prefix);
    int left = 0;
    const char *first = NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, prefix, n) == 0 && !(L->used && L->used[i])) {
            if (!first) first = f->tensors[i].name;
            left++;
        }
    if (!left) return SDC_OK;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: %s tensor %s%s is not part of the SD 1.x / 2.x %s that sdc runs (%d such "
                    "tensor%s): the model has parts sdc does not implement", f->path, what, first,
                    left > 1 ? " and others" : "", what, left, left > 1 ? "s" : "");
}

/* The tensor for a diffusers name, or NULL; *full gets the name looked up. */
static const sdc_st_tensor *lookup(sdc_loader *L, const char *name, char *full, size_t cap) {
    const sdc_model_files *m = L->m;
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

static sdc_status stage(sdc_loader *L, size_t n) {
    if (L->stage_cap >= n) return SDC_OK;
    free(L->stage);
    L->stage = malloc(n * sizeof(float));
    L->stage_cap = L->stage ? n : 0;
    return L->stage ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory staging %zu floats", n);
}

static sdc_status record(sdc_loader *L, float *p, size_t n) {
    sdc_weight_set *s = L->set;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        float **np = realloc(s->ptrs, (size_t)cap * sizeof *np);
        if (!np) {
            L->be->ops->free(L->be, p);
            return sdc_fail(SDC_ERR_OOM, "out of memory");
        }
        s->ptrs = np;
        s->cap = cap;
    }
    s->ptrs[s->n++] = p;
    s->floats += n;
    return SDC_OK;
}

static sdc_status upload(sdc_loader *L, float **dst, const float *src, size_t n) {
    float *p = NULL;
    SDC_TRY(sdc_backend_upload_new(L->be, src, n, &p));
    SDC_TRY(record(L, p, n));
    *dst = p;
    return SDC_OK;
}

/* Find `name`, check numel and (when given) the shape, convert to fp32 into
 * dst (host). dims: expected shape, ndim_alt: an alternative rank accepted
 * with the same element count (1x1 convs for matrices). */
static sdc_status read(sdc_loader *L, const char *name, const int64_t *dims, int ndim, float *dst,
                       bool allow_1x1) {
    char full[640];
    const sdc_st_tensor *t = lookup(L, name, full, sizeof full);
    const sdc_st_file *f = L->comp == SDC_COMP_UNET ? L->m->unet_file : L->m->vae_file;
    const char *what = L->comp == SDC_COMP_UNET ? "U-Net" : "VAE";
    if (!t) return sdc_fail(SDC_ERR_FORMAT, "%s: %s tensor %s is missing", f->path, what, full);
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok && allow_1x1 && ndim == 2 && t->ndim == 4)
        ok = t->shape[0] == dims[0] && t->shape[1] == dims[1] && t->shape[2] == 1 && t->shape[3] == 1;
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
    SDC_TRY(sdc_st_to_f32(f, t, dst));
    sdc_st_drop_tensor_pages(f, t); /* keep peak memory to the fp32 copy */
    return SDC_OK;
}

sdc_status sdc_load_vec(sdc_loader *L, float **dst, int n, const char *name) {
    int64_t d[1] = {n};
    SDC_TRY(stage(L, (size_t)n));
    SDC_TRY(read(L, name, d, 1, L->stage, false));
    return upload(L, dst, L->stage, (size_t)n);
}

sdc_status sdc_load_mat(sdc_loader *L, float **dst, int out, int in, const char *name) {
    int64_t d[2] = {out, in};
    size_t n = (size_t)out * in;
    SDC_TRY(stage(L, n));
    SDC_TRY(read(L, name, d, 2, L->stage, true));
    return upload(L, dst, L->stage, n);
}

sdc_status sdc_load_mats_stacked(sdc_loader *L, float **dst, int n_mats, const int *outs, int in,
                                 const char *const *names) {
    size_t total = 0;
    for (int i = 0; i < n_mats; i++) total += (size_t)outs[i] * in;
    SDC_TRY(stage(L, total));
    size_t off = 0;
    for (int i = 0; i < n_mats; i++) {
        int64_t d[2] = {outs[i], in};
        SDC_TRY(read(L, names[i], d, 2, L->stage + off, true));
        off += (size_t)outs[i] * in;
    }
    return upload(L, dst, L->stage, total);
}

sdc_status sdc_load_conv(sdc_loader *L, float **dst, int cout, int cin, int k, const char *name) {
    int64_t d[4] = {cout, cin, k, k};
    size_t n = (size_t)cout * cin * k * k;
    SDC_TRY(stage(L, 2 * n));
    float *src = L->stage, *perm = L->stage + n;
    SDC_TRY(read(L, name, d, 4, src, false));
    /* (cout, cin, ky, kx) -> (cout, ky, kx, cin) */
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int t = 0; t < k * k; t++)
                perm[((size_t)o * k * k + t) * cin + i] = src[((size_t)o * cin + i) * k * k + t];
    return upload(L, dst, perm, n);
}

sdc_status sdc_load_vecs_stacked(sdc_loader *L, float **dst, int n_vecs, const int *ns, const char *const *names) {
    size_t total = 0;
    for (int i = 0; i < n_vecs; i++) total += (size_t)ns[i];
    SDC_TRY(stage(L, total));
    size_t off = 0;
    for (int i = 0; i < n_vecs; i++) {
        int64_t d[1] = {ns[i]};
        SDC_TRY(read(L, names[i], d, 1, L->stage + off, false));
        off += (size_t)ns[i];
    }
    return upload(L, dst, L->stage, total);
}

sdc_status sdc_load_conv_bias(sdc_loader *L, float **w, float **b, int cout, int cin, int k, const char *prefix) {
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
    for (int i = 0; i < set->n; i++) be->ops->free(be, set->ptrs[i]);
    free(set->ptrs);
    memset(set, 0, sizeof *set);
}
