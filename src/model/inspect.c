/* inspect.c - human-readable summary of a model: family, configuration,
 * tensor counts by component and dtype (`sdc inspect`). */
#include "model/model.h"

#include <stdio.h>
#include <string.h>

static void human_bytes(double b, char *out, size_t n) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) b /= 1024.0, u++;
    snprintf(out, n, u ? "%.2f %s" : "%.0f %s", b, unit[u]);
}

typedef struct {
    int count;
    size_t bytes;
    int by_dtype[SDC_DT_COUNT];
    size_t bytes_dtype[SDC_DT_COUNT];
    const char *example;
} tally;

static void tally_add(tally *t, const sdc_st_tensor *x) {
    t->count++;
    t->bytes += x->nbytes;
    t->by_dtype[x->dtype]++;
    t->bytes_dtype[x->dtype] += x->nbytes;
    if (!t->example) t->example = x->name;
}

static void tally_print(FILE *fp, const char *label, const tally *t) {
    if (!t->count) return;
    char b[32];
    human_bytes((double)t->bytes, b, sizeof b);
    fprintf(fp, "  %-13s %5d tensors %11s ", label, t->count, b);
    for (int d = 0; d < SDC_DT_COUNT; d++)
        if (t->by_dtype[d]) fprintf(fp, " %s:%d", sdc_dtype_name((sdc_dtype)d), t->by_dtype[d]);
    fputc('\n', fp);
}

static void print_file(FILE *fp, const sdc_model_files *m, const sdc_st_file *f) {
    enum { UNET, VAE, TEXT, TEXT2, OTHER, N };
    tally t[N];
    memset(t, 0, sizeof t);
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *x = &f->tensors[i];
        int c = OTHER;
        if (m->layout == SDC_LAYOUT_DIFFUSERS)
            c = f == m->unet_file ? UNET : f == m->vae_file ? VAE : f == m->text2_file ? TEXT2 : TEXT;
        else if (strncmp(x->name, m->unet_prefix, strlen(m->unet_prefix)) == 0)
            c = UNET;
        else if (strncmp(x->name, m->vae_prefix, strlen(m->vae_prefix)) == 0)
            c = VAE;
        else if (m->text2_file && strncmp(x->name, m->text2_prefix, strlen(m->text2_prefix)) == 0)
            c = TEXT2;
        else if (strncmp(x->name, "cond_stage_model.", 17) == 0 || strncmp(x->name, m->text_prefix, strlen(m->text_prefix)) == 0)
            c = TEXT;
        tally_add(&t[c], x);
    }
    fprintf(fp, "file %s\n", f->path);
    tally_print(fp, "U-Net", &t[UNET]);
    tally_print(fp, "VAE", &t[VAE]);
    tally_print(fp, "text encoder", &t[TEXT]);
    tally_print(fp, "text enc. 2", &t[TEXT2]);
    if (t[OTHER].count) {
        tally_print(fp, "not used", &t[OTHER]);
        fprintf(fp, "  %-13s (schedule buffers, EMA bookkeeping and the like, e.g. %s)\n", "", t[OTHER].example);
    }
    for (int i = 0; i < f->n_meta; i++)
        fprintf(fp, "  metadata      %s = %.60s%s\n", f->meta_keys[i], f->meta_values[i],
                strlen(f->meta_values[i]) > 60 ? "..." : "");
}

static void print_text(FILE *fp, const char *label, const sdc_text_config *t, sdc_text_naming naming) {
    const char *tower = t->width == 768 && t->layers == 12     ? "CLIP ViT-L/14, "
                        : t->width == 1024 && t->layers >= 23  ? "OpenCLIP ViT-H/14, "
                        : t->width == 1280 && t->layers == 32  ? "OpenCLIP ViT-bigG/14, "
                                                               : "";
    fprintf(fp, "%-13s %s%s naming, width %d, %d layers, %d heads, MLP %d, %s, %d positions, vocab %d\n", label,
            tower, naming == SDC_TEXT_OPENCLIP ? "OpenCLIP" : "transformers", t->width, t->layers, t->heads, t->ff,
            t->act == SDC_ACT_GELU ? "gelu" : "quick_gelu", t->max_pos, t->vocab);
    fprintf(fp, "              U-Net context from layer %d of %d%s, pad id %d", t->layers_used, t->layers,
            t->final_norm ? " (+ final layer norm)" : " (no final layer norm)", t->pad_id);
    if (t->proj) fprintf(fp, "; pooled output projected to %d", t->proj);
    fputc('\n', fp);
}

void sdc_model_print(const sdc_model_files *m, FILE *fp) {
    const sdc_model_config *c = &m->config;
    const sdc_text_config *t = &c->text;
    const sdc_unet_config *u = &c->unet;
    const sdc_vae_config *v = &c->vae;
    fprintf(fp, "model    %s\n", m->path);
    fprintf(fp, "layout   %s\n", sdc_layout_name(m->layout));
    fprintf(fp, "family   %s\n", sdc_family_name(c->family));
    print_text(fp, "text encoder", t, m->text_naming);
    if (c->text2.width) print_text(fp, "text enc. 2", &c->text2, m->text2_naming);
    fprintf(fp, "U-Net    in %d, out %d channels; levels", u->in_channels, u->out_channels);
    for (int l = 0; l < u->n_levels; l++) fprintf(fp, " %d", u->channels[l]);
    fprintf(fp, "; res blocks per level %d\n         attention depth per level", u->num_res_blocks);
    for (int l = 0; l < u->n_levels; l++) fprintf(fp, " %d", u->attn_depth[l]);
    fprintf(fp, "; heads");
    for (int l = 0; l < u->n_levels; l++) fprintf(fp, " %d", u->heads[l]);
    fprintf(fp, "; context %d; proj_in %s; time embedding %d; %d norm groups\n", u->context_dim,
            u->linear_proj ? "linear" : "1x1 conv", u->time_embed_dim, u->norm_groups);
    if (u->add_in_dim)
        fprintf(fp, "         added embedding: pooled text %d + %d time ids x %d (Fourier) = %d inputs\n",
                c->text2.proj, u->n_time_ids, u->add_time_dim, u->add_in_dim);
    fprintf(fp, "         prediction %s (%s)\n", u->prediction == SDC_PRED_V ? "v" : "epsilon",
            u->prediction_source);
    fprintf(fp, "VAE      channels %d x", v->channels);
    for (int l = 0; l < v->n_levels; l++) fprintf(fp, " %d", v->channels_mult[l]);
    fprintf(fp, "; res blocks %d; latent %d channels; %d norm groups; scale factor %g; encoder %s\n",
            v->num_res_blocks, v->z_channels, v->norm_groups, (double)v->scale_factor,
            v->has_encoder ? "yes" : "no");
    fprintf(fp, "size     %d x %d pixels (the default width and height)\n", m->config.image_size,
            m->config.image_size);
    if (m->tokenizer_vocab) fprintf(fp, "tokenizer %s\n", m->tokenizer_vocab);
    if (m->single) {
        print_file(fp, m, m->single);
    } else {
        print_file(fp, m, m->unet_file);
        print_file(fp, m, m->vae_file);
        print_file(fp, m, m->text_file);
        if (m->text2_file) print_file(fp, m, m->text2_file);
    }
}
