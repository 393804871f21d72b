/* lora_apply.c - finding a job's LoRAs and merging them (lora_apply.h). */
#include "lora_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "context.h"
#include "text/conditioning.h"

#define SEARCH_DEPTH 6          /* subfolders searched below the LoRA folder */
#define SEARCH_FILES 10000      /* .safetensors files looked at, at most */

void sdc_lora_uses_free(sdc_lora_use *u, int n) {
    for (int i = 0; u && i < n; i++) free(u[i].path), free(u[i].mention);
    free(u);
}

bool sdc_lora_uses_equal(const sdc_lora_use *a, int na, const sdc_lora_use *b, int nb) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (strcmp(a[i].path, b[i].path) || a[i].te != b[i].te || a[i].unet != b[i].unet) return false;
    return true;
}

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

char *sdc_lora_default_dir(const char *model) {
    char *d = strdup(model);
    if (!d) return NULL;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/') d[--n] = '\0';
    char *slash = strrchr(d, '/');
    if (!slash) {
        free(d);
        return strdup(".");
    }
    if (slash == d) slash[1] = '\0';
    else *slash = '\0';
    return d;
}

static const char *const k_safetensors[1] = {".safetensors"};

sdc_status sdc_lora_find(const char *folder, const char *name, char **out) {
    *out = NULL;
    if (strchr(name, '/') || strchr(name, '\\') || name[0] == '.' || strlen(name) > 255)
        return sdc_fail(SDC_ERR_ARG, "<lora:%s>: expected a LoRA's file name without folder or extension", name);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.safetensors", folder, name);
    if (is_file(path)) return (*out = strdup(path)) ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory");
    /* a subfolder's NAME.safetensors */
    char **paths = NULL, file[300];
    int n = 0, count = 0;
    bool truncated = false;
    if (sdc_list_files(folder, k_safetensors, 1, SEARCH_DEPTH, SEARCH_FILES, &paths, &n, &truncated) != SDC_OK)
        return sdc_fail(SDC_ERR_IO, "<lora:%s>: the LoRA folder %s cannot be opened (--lora-dir)", name, folder);
    snprintf(file, sizeof file, "/%s.safetensors", name);
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        const size_t lp = strlen(paths[i]), lf = strlen(file);
        if (lp >= lf && !strcmp(paths[i] + lp - lf, file) && !count++) found = paths[i];
    }
    /* none of that name: a file whose kohya metadata gives it NAME as its
     * alias (ss_output_name), the name A1111 writes in tags by default */
    const char *alias_of = NULL;
    int aliases = 0;
    for (int i = 0; !count && i < n; i++) {
        sdc_st_file *f = NULL;
        if (sdc_st_open(paths[i], &f) != SDC_OK) continue;
        const char *a = sdc_st_meta(f, "ss_output_name");
        if (a && !strcmp(a, name) && !aliases++) alias_of = paths[i];
        sdc_st_close(f);
    }
    if (!count && aliases == 1) found = alias_of, count = 1;
    sdc_status st = SDC_OK;
    if (count > 1) {
        st = sdc_fail(SDC_ERR_ARG, "<lora:%s>: %d files named %s under %s (%s, ...): which one is meant?", name, count,
                      file + 1, folder, found);
    } else if (aliases > 1 && !found) {
        st = sdc_fail(SDC_ERR_ARG, "<lora:%s>: %d files under %s have that alias (ss_output_name), %s the first: which "
                      "one is meant?", name, aliases, folder, alias_of);
    } else if (!found) {
        static const char *const pickles[] = {".pt", ".ckpt", ".bin"};
        const char *pickle = NULL;
        for (int i = 0; i < 3 && !pickle; i++) {
            snprintf(path, sizeof path, "%s/%s%s", folder, name, pickles[i]);
            if (is_file(path)) pickle = pickles[i];
        }
        if (pickle)
            st = sdc_fail(SDC_ERR_UNSUPPORTED, "<lora:%s>: %s is a pickle file, which can run code when read; sdc reads "
                          ".safetensors LoRAs only", name, path);
        else
            st = sdc_fail(SDC_ERR_IO, "<lora:%s>: no %s in %s%s (the LoRA folder: --lora-dir)", name, file + 1, folder,
                          truncated ? " (only its first files were searched)" : " or its subfolders");
    } else if (!(*out = strdup(found))) {
        st = sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    sdc_free_paths(paths, n);
    return st;
}

int sdc_lora_list(const char *folder, char ***paths) {
    int n = 0;
    if (sdc_list_files(folder, k_safetensors, 1, SEARCH_DEPTH, SEARCH_FILES, paths, &n, NULL) != SDC_OK) return 0;
    return n;
}

static sdc_status add_use(sdc_lora_use **u, int *n, char *path, const char *mention, double te, double unet) {
    sdc_lora_use *nu = realloc(*u, (size_t)(*n + 1) * sizeof *nu);
    if (!nu) {
        free(path);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    *u = nu;
    nu[*n] = (sdc_lora_use){.path = path, .mention = strdup(mention), .te = te, .unet = unet};
    if (!nu[*n].mention) {
        free(path);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    ++*n;
    return SDC_OK;
}

sdc_status sdc_job_loras(sdc_ctx *ctx, const sdc_gen_params *p, char **stripped, sdc_lora_use **uses, int *n) {
    *uses = NULL;
    *n = 0;
    sdc_lora_ref *refs = NULL;
    int nr = 0;
    SDC_TRY(sdc_extra_networks_parse(p->prompt, stripped, &refs, &nr));
    sdc_status st = SDC_OK;
    if (nr + (p->n_loras > 0 ? p->n_loras : 0) > SDC_LORA_USES_MAX)
        st = sdc_fail(SDC_ERR_ARG, "%d LoRAs in one job: at most %d", nr + p->n_loras, SDC_LORA_USES_MAX);
    for (int i = 0; st == SDC_OK && i < nr; i++) {
        char *path = NULL, *dir = ctx->params.lora_dir ? strdup(ctx->params.lora_dir)
                                                       : sdc_lora_default_dir(ctx->params.model_path);
        st = dir ? sdc_lora_find(dir, refs[i].name, &path) : sdc_fail(SDC_ERR_OOM, "out of memory");
        free(dir);
        if (st == SDC_OK) st = add_use(uses, n, path, refs[i].name, refs[i].te, refs[i].unet);
    }
    if (st == SDC_OK && p->n_loras < 0) st = sdc_fail(SDC_ERR_ARG, "n_loras %d: expected 0 or more", p->n_loras);
    for (int i = 0; st == SDC_OK && i < p->n_loras; i++) {
        const sdc_lora *l = &p->loras[i];
        if (!l->path || !*l->path) {
            st = sdc_fail(SDC_ERR_ARG, "LoRA %d: no file", i);
            break;
        }
        if (!is_file(l->path)) {
            st = sdc_fail(SDC_ERR_IO, "LoRA %s: no such file", l->path);
            break;
        }
        /* the stem, as A1111 names a LoRA */
        const char *base = strrchr(l->path, '/');
        base = base ? base + 1 : l->path;
        char stem[256];
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        char *path = strdup(l->path);
        st = path ? add_use(uses, n, path, stem, l->te_weight, l->unet_weight) : sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    sdc_lora_refs_free(refs, nr);
    if (st != SDC_OK) {
        free(*stripped);
        *stripped = NULL;
        sdc_lora_uses_free(*uses, *n);
        *uses = NULL;
        *n = 0;
    }
    return st;
}

/* The open file of path (recently used ones stay open). */
static sdc_status open_file(sdc_lora_state *s, const char *path, sdc_lora_file **out) {
    for (int i = 0; i < s->n_open; i++)
        if (!strcmp(s->open[i]->path, path)) {
            sdc_lora_file *f = s->open[i];
            memmove(s->open + 1, s->open, (size_t)i * sizeof *s->open);
            s->open[0] = f;
            *out = f;
            return SDC_OK;
        }
    sdc_lora_file *f = NULL;
    SDC_TRY(sdc_lora_open(path, s->index, &f));
    sdc_status st = sdc_lora_file_hash(f);
    if (st != SDC_OK) {
        sdc_lora_close(f);
        return st;
    }
    if (s->n_open == SDC_LORA_OPEN_MAX) sdc_lora_close(s->open[--s->n_open]);
    memmove(s->open + 1, s->open, (size_t)s->n_open * sizeof *s->open);
    s->open[0] = f;
    s->n_open++;
    *out = f;
    return SDC_OK;
}

typedef struct contribution {
    const sdc_lora_file *file;
    const sdc_lora_module *mod;
    double s;
    int order;
} contribution;

static int cmp_contrib(const void *a, const void *b) {
    const contribution *x = a, *y = b;
    const sdc_weight_src *sx = x->mod->target.src, *sy = y->mod->target.src;
    if (sx != sy) return sx < sy ? -1 : 1;
    return x->order - y->order;
}

static int cmp_src(const void *a, const void *b) {
    const sdc_weight_src *x = *(const sdc_weight_src *const *)a, *y = *(const sdc_weight_src *const *)b;
    return x < y ? -1 : x > y;
}

/* Rebuild every weight of srcs[0..n) (sorted) from the checkpoint plus the
 * contributions c[0..nc) (sorted by weight). */
static sdc_status rebuild(sdc_ctx *ctx, const sdc_weight_src **srcs, int n, const contribution *c, int nc) {
    /* two buffers of the largest weight's size, for every weight */
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        const size_t total = (size_t)srcs[i]->rows * srcs[i]->cols * (srcs[i]->k ? (size_t)srcs[i]->k * srcs[i]->k : 1);
        if (total > cap) cap = total;
    }
    float *buf = malloc((cap ? cap : 1) * sizeof *buf), *scratch = malloc((cap ? cap : 1) * sizeof *scratch);
    sdc_status st = buf && scratch ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory rebuilding weights");
    int k = 0;
    for (int i = 0; st == SDC_OK && i < n; i++) {
        const sdc_weight_src *s = srcs[i];
        const size_t row = (size_t)s->cols * (s->k ? (size_t)s->k * s->k : 1);
        st = sdc_weight_read_original(s, buf);
        while (k < nc && c[k].mod->target.src < s) k++;
        for (; st == SDC_OK && k < nc && c[k].mod->target.src == s; k++)
            st = sdc_lora_add_delta(c[k].file, c[k].mod, c[k].s, buf + (size_t)c[k].mod->target.row0 * row);
        if (st == SDC_OK) st = sdc_weight_store(ctx->be, s, buf, scratch);
    }
    free(buf), free(scratch);
    return st;
}

static sdc_status copy_uses(const sdc_lora_use *u, int n, sdc_lora_use **out) {
    *out = n ? calloc((size_t)n, sizeof **out) : NULL;
    if (n && !*out) return sdc_fail(SDC_ERR_OOM, "out of memory");
    for (int i = 0; i < n; i++) {
        (*out)[i] = u[i];
        (*out)[i].path = strdup(u[i].path);
        (*out)[i].mention = strdup(u[i].mention);
        if (!(*out)[i].path || !(*out)[i].mention) {
            sdc_lora_uses_free(*out, i + 1);
            *out = NULL;
            return sdc_fail(SDC_ERR_OOM, "out of memory");
        }
    }
    return SDC_OK;
}

sdc_status sdc_lora_apply(sdc_ctx *ctx, sdc_lora_use *uses, int n) {
    sdc_lora_state *s = &ctx->lora;
    if (s->n_applied >= 0 && sdc_lora_uses_equal(uses, n, s->applied, s->n_applied)) {
        for (int i = 0; i < n; i++) memcpy(uses[i].hash, s->applied[i].hash, sizeof uses[i].hash);
        return SDC_OK;
    }
    const double t0 = sdc_now();
    if (n > 0) SDC_TRY(sdc_widen_for_merges(ctx)); /* before the index: it points at the weights */
    if (!s->index)
        SDC_TRY(sdc_lora_index_build2(ctx->model, &ctx->te->weights, ctx->te2 ? &ctx->te2->weights : NULL,
                                      &ctx->unet->weights, &s->index));
    /* the new set's files: at most SDC_LORA_OPEN_MAX distinct ones, so
     * opening them all keeps them all open */
    int n_files = 0, nc = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int k = 0; k < i; k++) seen |= !strcmp(uses[k].path, uses[i].path);
        if (!seen && ++n_files > SDC_LORA_OPEN_MAX)
            return sdc_fail(SDC_ERR_ARG, "a job asks for more than %d LoRA files", SDC_LORA_OPEN_MAX);
    }
    for (int i = 0; i < n; i++) {
        sdc_lora_file *f = NULL;
        SDC_TRY(open_file(s, uses[i].path, &f));
        nc += f->n_mods;
    }
    contribution *c = nc ? malloc((size_t)nc * sizeof *c) : NULL;
    const sdc_weight_src **all = malloc((size_t)(nc + s->n_touched + 1) * sizeof *all);
    if ((nc && !c) || !all) {
        free(c), free(all);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        sdc_lora_file *f = NULL;
        for (int k = 0; k < s->n_open && !f; k++)
            if (!strcmp(s->open[k]->path, uses[i].path)) f = s->open[k];
        if (!f) { /* cannot happen: opened above, and no more files than stay open */
            free(c), free(all);
            return sdc_fail(SDC_ERR_BACKEND, "LoRA %s: closed while in use", uses[i].path);
        }
        snprintf(uses[i].hash, sizeof uses[i].hash, "%s", f->hash);
        for (int k = 0; k < f->n_mods; k++) {
            const sdc_lora_module *mod = &f->mods[k];
            const double mult = mod->target.te ? uses[i].te : uses[i].unet;
            if (mult == 0.0) continue;
            c[m] = (contribution){f, mod, mult * mod->scale, m};
            m++;
        }
    }
    if (m > 1) qsort(c, (size_t)m, sizeof *c, cmp_contrib);
    /* the weights to rebuild: the new set's and the old set's */
    int na = 0;
    for (int k = 0; k < m; k++)
        if (!na || all[na - 1] != c[k].mod->target.src) all[na++] = c[k].mod->target.src;
    const int n_new = na;
    for (int k = 0; k < s->n_touched; k++) all[na++] = s->touched[k];
    if (na > 1) qsort(all, (size_t)na, sizeof *all, cmp_src);
    int nu = 0;
    for (int k = 0; k < na; k++)
        if (!nu || all[nu - 1] != all[k]) all[nu++] = all[k];
    bool te = false; /* a text-encoder weight changes: cached conditionings are stale */
    const sdc_weight_set *tw = &ctx->te->weights, *tw2 = ctx->te2 ? &ctx->te2->weights : NULL;
    for (int k = 0; k < nu; k++)
        te |= (all[k] >= tw->srcs && all[k] < tw->srcs + tw->n_srcs) ||
              (tw2 && all[k] >= tw2->srcs && all[k] < tw2->srcs + tw2->n_srcs);
    sdc_status st = rebuild(ctx, all, nu, c, m);
    /* what the weights hold now */
    sdc_lora_uses_free(s->applied, s->n_applied > 0 ? s->n_applied : 0);
    s->applied = NULL;
    s->n_applied = -1;
    free(s->touched);
    s->touched = NULL;
    s->n_touched = 0;
    if (st != SDC_OK) { /* unknown: every weight either set touched is rebuilt next time */
        s->touched = all;
        s->n_touched = nu;
    } else {
        s->touched = malloc((size_t)(n_new ? n_new : 1) * sizeof *s->touched);
        if (!s->touched) {
            s->touched = all, s->n_touched = nu; /* still correct: rebuilt again next time */
        } else {
            for (int k = 0, j = 0; k < m; k++)
                if (!j || s->touched[j - 1] != c[k].mod->target.src) s->touched[j++] = c[k].mod->target.src;
            s->n_touched = n_new;
            free(all);
        }
        if (copy_uses(uses, n, &s->applied) == SDC_OK) s->n_applied = n;
    }
    free(c);
    if (te) sdc_conditioning_cache_clear(ctx);
    s->seconds_switch = sdc_now() - t0;
    s->switches++;
    return st;
}

char *sdc_lora_hashes(const sdc_ctx *ctx) {
    const sdc_lora_state *s = &ctx->lora;
    if (s->n_applied <= 0) return NULL;
    size_t len = 1;
    for (int i = 0; i < s->n_applied; i++) len += strlen(s->applied[i].mention) + 16;
    char *out = malloc(len);
    if (!out) return NULL;
    out[0] = '\0';
    /* A1111 keeps one entry per name (a dict), ':' and ',' taken out of it */
    for (int i = 0; i < s->n_applied; i++) {
        if (!s->applied[i].hash[0]) continue;
        char name[300];
        size_t k = 0;
        for (const char *p = s->applied[i].mention; *p && k < sizeof name - 1; p++)
            if (*p != ':' && *p != ',') name[k++] = *p;
        name[k] = '\0';
        bool dup = false;
        for (int j = 0; j < i; j++) {
            char other[300];
            size_t q = 0;
            for (const char *p = s->applied[j].mention; *p && q < sizeof other - 1; p++)
                if (*p != ':' && *p != ',') other[q++] = *p;
            other[q] = '\0';
            dup |= !strcmp(other, name);
        }
        if (dup) continue;
        snprintf(out + strlen(out), len - strlen(out), "%s%s: %s", out[0] ? ", " : "", name, s->applied[i].hash);
    }
    if (!out[0]) {
        free(out);
        return NULL;
    }
    return out;
}

void sdc_lora_state_free(sdc_lora_state *s) {
    for (int i = 0; i < s->n_open; i++) sdc_lora_close(s->open[i]);
    sdc_lora_uses_free(s->applied, s->n_applied > 0 ? s->n_applied : 0);
    free(s->touched);
    sdc_lora_index_free(s->index);
    memset(s, 0, sizeof *s);
}
