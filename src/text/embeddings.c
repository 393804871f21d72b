/* embeddings.c - textual-inversion embeddings (embeddings.h). */
#include "text/embeddings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/image.h"
#include "model/safetensors.h"

#define SEARCH_DEPTH 6
#define MAX_FILES 10000

static bool has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    return n > e && !strcasecmp(name + n - e, ext);
}

static void set_error(sdc_embedding *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(sdc_embedding *e, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(e->error);
    e->error = strdup(msg);
}

/* e's vectors from its file, or its error */
static void read_vectors(sdc_embedding *e, int width) {
    if (!has_ext(e->path, ".safetensors")) {
        set_error(e, "embedding %s: %s is a pickle file, which can run code when read; sdc reads .safetensors "
                  "embeddings only", e->name, e->path);
        return;
    }
    sdc_st_file *f = NULL;
    if (sdc_st_open(e->path, &f) != SDC_OK) {
        set_error(e, "embedding %s: %s", e->name, sdc_last_error());
        return;
    }
    const sdc_st_tensor *t = sdc_st_find(f, "emb_params");
    if (!t && f->n_tensors == 1) t = &f->tensors[0];
    if (!t) t = sdc_st_find(f, "string_to_param.*");
    if (!t) {
        if (sdc_st_find(f, "clip_l") || sdc_st_find(f, "clip_g"))
            set_error(e, "embedding %s: %s is an SDXL embedding (clip_l, clip_g), not for this model", e->name,
                      e->path);
        else
            set_error(e, "embedding %s: %s holds %d tensors and none is emb_params or string_to_param.*: not a "
                      "textual-inversion embedding", e->name, e->path, f->n_tensors);
        sdc_st_close(f);
        return;
    }
    const int64_t n = t->ndim == 1 ? 1 : t->ndim == 2 ? t->shape[0] : -1;
    const int64_t w = t->ndim >= 1 ? t->shape[t->ndim - 1] : -1;
    if (!sdc_dtype_is_float(t->dtype) || n < 1 || w < 1) {
        set_error(e, "embedding %s: %s: tensor %s (%s, %d dimensions) is not (vectors, width) floats", e->name,
                  e->path, t->name, sdc_dtype_name(t->dtype), t->ndim);
    } else if (width > 0 && w != width) {
        set_error(e, "embedding %s: %s has vectors of width %lld, this model's text encoder is %d wide (an embedding "
                  "for another model family?)", e->name, e->path, (long long)w, width);
    } else if (n > SDC_EMBEDDING_MAX_VECTORS) {
        set_error(e, "embedding %s: %s has %lld vectors; at most %d fit a prompt's 75-token chunk", e->name, e->path,
                  (long long)n, SDC_EMBEDDING_MAX_VECTORS);
    } else if (!(e->vecs = malloc((size_t)n * w * sizeof *e->vecs))) {
        set_error(e, "embedding %s: out of memory", e->name);
    } else if (sdc_st_to_f32(f, t, e->vecs) != SDC_OK) {
        set_error(e, "embedding %s: %s", e->name, sdc_last_error());
        free(e->vecs);
        e->vecs = NULL;
    } else {
        e->n_vecs = (int)n;
    }
    sdc_st_close(f);
}

static sdc_status make_entry(const char *path, sdc_tokenizer *tok, int width, sdc_embedding *e) {
    memset(e, 0, sizeof *e);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    e->path = strdup(path);
    e->name = strdup(base);
    if (!e->path || !e->name) return sdc_fail(SDC_ERR_OOM, "out of memory");
    *strrchr(e->name, '.') = '\0'; /* sdc_list_files: there is an extension */
    int n = 0;
    SDC_TRY(sdc_tokenizer_encode(tok, e->name, NULL, 0, &n));
    if (n > 0) {
        if (!(e->ids = malloc((size_t)n * sizeof *e->ids))) return sdc_fail(SDC_ERR_OOM, "out of memory");
        SDC_TRY(sdc_tokenizer_encode(tok, e->name, e->ids, n, &n));
    }
    e->n_ids = n;
    read_vectors(e, width);
    return SDC_OK;
}

void sdc_embeddings_free(sdc_embedding_db *db) {
    if (!db) return;
    for (int i = 0; i < db->n; i++) {
        sdc_embedding *e = &db->e[i];
        free(e->name), free(e->path), free(e->ids), free(e->vecs), free(e->error);
    }
    free(db->e);
    free(db);
}

sdc_status sdc_embeddings_load(const char *dir, sdc_tokenizer *tok, int width, sdc_embedding_db **out) {
    *out = NULL;
    /* .safetensors, and the pickles A1111 also reads, to say why they are not */
    static const char *const exts[3] = {".safetensors", ".pt", ".bin"};
    char **paths = NULL;
    int n = 0;
    bool truncated = false;
    if (sdc_list_files(dir, exts, 3, SEARCH_DEPTH, MAX_FILES, &paths, &n, &truncated) != SDC_OK)
        return sdc_fail(SDC_ERR_IO, "--embeddings-dir %s: cannot open the folder", dir);
    sdc_status st = truncated ? sdc_fail(SDC_ERR_ARG, "--embeddings-dir %s: more than %d embedding files (or %d "
                                         "folder entries)", dir, MAX_FILES, 10 * MAX_FILES)
                              : SDC_OK;
    sdc_embedding_db *db = calloc(1, sizeof *db);
    if (st == SDC_OK && !db) st = sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK && n && !(db->e = calloc((size_t)n, sizeof *db->e))) st = sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK) {
        db->width = width;
        for (int i = 0; st == SDC_OK && i < n; i++) {
            st = make_entry(paths[i], tok, width, &db->e[db->n]);
            db->n++;
        }
    }
    /* two files of one name: which one a prompt means is unclear */
    for (int i = 0; st == SDC_OK && i < db->n; i++)
        for (int k = 0; k < i; k++)
            if (!strcmp(db->e[i].name, db->e[k].name)) {
                set_error(&db->e[k], "embedding %s: two files have that name (%s and %s)", db->e[k].name,
                          db->e[k].path, db->e[i].path);
                db->e[i].n_ids = 0; /* the later one matches nothing; the first reports */
            }
    sdc_free_paths(paths, n);
    if (st != SDC_OK) {
        sdc_embeddings_free(db);
        return st;
    }
    *out = db;
    return SDC_OK;
}

int sdc_embeddings_match(const sdc_embedding_db *db, const int *tokens, int n, int pos) {
    int best = -1;
    if (!db) return -1;
    for (int i = 0; i < db->n; i++) {
        const sdc_embedding *e = &db->e[i];
        if (e->n_ids < 1 || pos + e->n_ids > n || (best >= 0 && e->n_ids <= db->e[best].n_ids)) continue;
        if (!memcmp(tokens + pos, e->ids, (size_t)e->n_ids * sizeof *e->ids)) best = i;
    }
    return best;
}

sdc_status sdc_embedding_hash(sdc_embedding *e) {
    if (e->hash[0]) return SDC_OK;
    uint8_t d[32];
    char hex[65];
    SDC_TRY(sdc_file_sha256(e->path, d));
    sdc_sha256_hex(d, hex);
    memcpy(e->hash, hex, 12);
    e->hash[12] = '\0';
    return SDC_OK;
}
