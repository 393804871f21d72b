/* test_names.c - diffusers tensor names -> original single-file names.
 * Tiny fixtures: every tensor of the diffusers unet/ and vae/ files maps
 * to a tensor of the single file with the same dtype and bytes, and the
 * mapping is a bijection onto the single file's U-Net and VAE tensors.
 * Full size (SDC_TEST_FULL=1): the names enumerated from the config do the
 * same for the SD 1.5- and SD 2.1-shaped single files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/names.h"
#include "testutil.h"

#define UNET_PFX "model.diffusion_model."
#define VAE_PFX "first_stage_model."

static sdc_model_files *open_ok(const char *path) {
    sdc_model_files *m = NULL;
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s: %s", path, sdc_last_error());
    return m;
}

static int count_prefixed(const sdc_st_file *f, const char *pfx) {
    int n = 0;
    for (int i = 0; i < f->n_tensors; i++) n += strncmp(f->tensors[i].name, pfx, strlen(pfx)) == 0;
    return n;
}

static bool is_vae_attn_weight(const char *orig) {
    static const char *const mods[] = {".q.weight", ".k.weight", ".v.weight", ".proj_out.weight"};
    if (!strstr(orig, ".mid.attn_1.")) return false;
    for (size_t i = 0; i < 4; i++) {
        size_t lo = strlen(orig), lm = strlen(mods[i]);
        if (lo > lm && strcmp(orig + lo - lm, mods[i]) == 0) return true;
    }
    return false;
}

/* Same dtype, same bytes; the same shape except the VAE attention's 1x1
 * convs, which diffusers stores as [C, C] and the original as [C, C, 1, 1]. */
static void expect_same_tensor(const sdc_st_tensor *d, const sdc_st_tensor *o, bool vae) {
    cr_assert_eq(d->dtype, o->dtype, "%s: dtype %s vs %s in %s", d->name, sdc_dtype_name(d->dtype),
                 sdc_dtype_name(o->dtype), o->name);
    bool reshaped = vae && is_vae_attn_weight(o->name);
    if (reshaped) {
        cr_assert(d->ndim == 2 && o->ndim == 4, "%s: ndim %d, %s: ndim %d", d->name, d->ndim, o->name, o->ndim);
        cr_assert(o->shape[0] == d->shape[0] && o->shape[1] == d->shape[1] && o->shape[2] == 1 &&
                      o->shape[3] == 1,
                  "%s vs %s: shapes differ beyond [C, C] -> [C, C, 1, 1]", d->name, o->name);
    } else {
        cr_assert_eq(d->ndim, o->ndim, "%s vs %s: ndim", d->name, o->name);
        for (int i = 0; i < d->ndim; i++)
            cr_assert_eq(d->shape[i], o->shape[i], "%s vs %s: dim %d", d->name, o->name, i);
    }
    cr_assert_eq(d->nbytes, o->nbytes, "%s vs %s: bytes", d->name, o->name);
    cr_assert(memcmp(d->data, o->data, d->nbytes) == 0, "%s vs %s: data differ", d->name, o->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* All names distinct (sorts them). */
static void expect_distinct(char **v, int n, const char *what) {
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    for (int i = 1; i < n; i++) cr_assert(strcmp(v[i - 1], v[i]) != 0, "%s: %s twice", what, v[i]);
}

typedef sdc_status (*map_fn)(const void *cfg, const char *name, char *out, size_t cap);
static sdc_status map_unet(const void *c, const char *n, char *o, size_t cap) {
    return sdc_unet_name_to_original(c, n, o, cap);
}
static sdc_status map_vae(const void *c, const char *n, char *o, size_t cap) {
    return sdc_vae_name_to_original(c, n, o, cap);
}

/* Every tensor of the diffusers component file -> single file. */
static void component_bijection(const sdc_st_file *df, const sdc_st_file *sf, const char *pfx, map_fn fn,
                                const void *cfg, bool vae) {
    int n = df->n_tensors;
    cr_assert_gt(n, 0);
    char **mapped = calloc((size_t)n, sizeof *mapped);
    for (int i = 0; i < n; i++) {
        const sdc_st_tensor *d = &df->tensors[i];
        char orig[256], full[300];
        cr_assert_eq(fn(cfg, d->name, orig, sizeof orig), SDC_OK, "%s: %s", d->name, sdc_last_error());
        snprintf(full, sizeof full, "%s%s", pfx, orig);
        const sdc_st_tensor *o = sdc_st_find(sf, full);
        cr_assert(o, "%s -> %s: not in %s", d->name, full, sf->path);
        expect_same_tensor(d, o, vae);
        mapped[i] = strdup(full);
    }
    expect_distinct(mapped, n, pfx);
    cr_assert_eq(count_prefixed(sf, pfx), n, "%s: %d %s* tensors, %d diffusers ones", sf->path,
                 count_prefixed(sf, pfx), pfx, n);
    for (int i = 0; i < n; i++) free(mapped[i]);
    free(mapped);
}

/* The enumerated names are exactly the diffusers file's. */
static void enumeration_matches(char **names, int n, const sdc_st_file *df) {
    for (int i = 0; i < n; i++) cr_assert(sdc_st_find(df, names[i]), "%s: not in %s", names[i], df->path);
    expect_distinct(names, n, df->path);
    cr_assert_eq(n, df->n_tensors, "%d names enumerated, %s has %d", n, df->path, df->n_tensors);
}

static void tiny_case(const char *single, const char *folder) {
    sdc_model_files *s = open_ok(single), *d = open_ok(folder);
    cr_assert_eq(d->layout, SDC_LAYOUT_DIFFUSERS);
    cr_assert(d->unet_diffusers_names && d->vae_diffusers_names);
    const sdc_unet_config *uc = &s->config.unet;
    const sdc_vae_config *vc = &s->config.vae;
    component_bijection(d->unet_file, s->single, UNET_PFX, map_unet, uc, false);
    component_bijection(d->vae_file, s->single, VAE_PFX, map_vae, vc, true);
    /* the diffusers folder's own config maps the same */
    component_bijection(d->unet_file, s->single, UNET_PFX, map_unet, &d->config.unet, false);
    component_bijection(d->vae_file, s->single, VAE_PFX, map_vae, &d->config.vae, true);

    char **names = NULL;
    int n = 0;
    cr_assert_eq(sdc_unet_diffusers_names(uc, &names, &n), SDC_OK, "%s", sdc_last_error());
    enumeration_matches(names, n, d->unet_file);
    sdc_names_free(names, n);
    cr_assert_eq(sdc_vae_diffusers_names(vc, &names, &n), SDC_OK, "%s", sdc_last_error());
    enumeration_matches(names, n, d->vae_file);
    sdc_names_free(names, n);
    sdc_model_close(s);
    sdc_model_close(d);
}

Test(names, tiny_sd1_bijection) {
    tiny_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/tiny_sd1_diffusers");
}

Test(names, tiny_sd2_bijection) {
    tiny_case(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/tiny_sd2_diffusers");
}

static void expect_map(sdc_status st, const char *got, const char *want, const char *name) {
    cr_assert_eq(st, SDC_OK, "%s: %s", name, sdc_last_error());
    cr_assert_str_eq(got, want, "%s -> %s, expected %s", name, got, want);
}

#define UMAP(cfg, name, want)                                                                          \
    do {                                                                                               \
        char o_[256];                                                                                  \
        expect_map(sdc_unet_name_to_original(cfg, name, o_, sizeof o_), o_, want, name);               \
    } while (0)
#define VMAP(cfg, name, want)                                                                          \
    do {                                                                                               \
        char o_[256];                                                                                  \
        expect_map(sdc_vae_name_to_original(cfg, name, o_, sizeof o_), o_, want, name);                \
    } while (0)

/* SD 1.5's shape (attention at levels 0-2, none at 3), by hand. */
static sdc_unet_config sd15_unet(void) {
    sdc_unet_config c = {.in_channels = 4, .out_channels = 4, .model_channels = 320, .n_levels = 4,
                         .channels = {320, 640, 1280, 1280}, .num_res_blocks = 2,
                         .attn_depth = {1, 1, 1, 0}, .heads = {8, 8, 8, 8}, .context_dim = 768,
                         .time_embed_dim = 1280};
    return c;
}

static sdc_vae_config sd_vae(void) {
    sdc_vae_config c = {.channels = 128, .n_levels = 4, .channels_mult = {1, 2, 4, 4},
                        .num_res_blocks = 2, .z_channels = 4, .has_encoder = true,
                        .scale_factor = 0.18215f};
    return c;
}

Test(names, sd15_known_names) {
    sdc_unet_config c = sd15_unet();
    UMAP(&c, "conv_in.weight", "input_blocks.0.0.weight");
    UMAP(&c, "time_embedding.linear_2.bias", "time_embed.2.bias");
    UMAP(&c, "down_blocks.0.resnets.1.norm1.weight", "input_blocks.2.0.in_layers.0.weight");
    UMAP(&c, "down_blocks.0.downsamplers.0.conv.weight", "input_blocks.3.0.op.weight");
    UMAP(&c, "down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight");
    UMAP(&c, "down_blocks.1.attentions.0.proj_in.weight", "input_blocks.4.1.proj_in.weight");
    UMAP(&c, "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight",
         "input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight");
    UMAP(&c, "down_blocks.3.resnets.1.time_emb_proj.bias", "input_blocks.11.0.emb_layers.1.bias");
    UMAP(&c, "mid_block.resnets.1.conv2.weight", "middle_block.2.out_layers.3.weight");
    UMAP(&c, "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
         "middle_block.1.transformer_blocks.0.ff.net.0.proj.weight");
    UMAP(&c, "up_blocks.0.resnets.2.conv1.weight", "output_blocks.2.0.in_layers.2.weight");
    UMAP(&c, "up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight");
    UMAP(&c, "up_blocks.1.upsamplers.0.conv.bias", "output_blocks.5.2.conv.bias");
    UMAP(&c, "up_blocks.3.attentions.2.transformer_blocks.0.norm3.bias",
         "output_blocks.11.1.transformer_blocks.0.norm3.bias");
    UMAP(&c, "conv_norm_out.weight", "out.0.weight");
    UMAP(&c, "conv_out.bias", "out.2.bias");

    sdc_vae_config v = sd_vae();
    VMAP(&v, "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "encoder.down.1.block.0.nin_shortcut.weight");
    VMAP(&v, "encoder.down_blocks.2.downsamplers.0.conv.bias", "encoder.down.2.downsample.conv.bias");
    VMAP(&v, "decoder.up_blocks.0.resnets.2.norm2.weight", "decoder.up.3.block.2.norm2.weight");
    VMAP(&v, "decoder.up_blocks.2.resnets.0.conv_shortcut.bias", "decoder.up.1.block.0.nin_shortcut.bias");
    VMAP(&v, "decoder.up_blocks.2.upsamplers.0.conv.weight", "decoder.up.1.upsample.conv.weight");
    VMAP(&v, "decoder.mid_block.resnets.1.conv1.weight", "decoder.mid.block_2.conv1.weight");
    VMAP(&v, "encoder.mid_block.attentions.0.group_norm.bias", "encoder.mid.attn_1.norm.bias");
    VMAP(&v, "decoder.mid_block.attentions.0.to_out.0.weight", "decoder.mid.attn_1.proj_out.weight");
    VMAP(&v, "decoder.mid_block.attentions.0.query.weight", "decoder.mid.attn_1.q.weight");
    VMAP(&v, "decoder.mid_block.attentions.0.key.bias", "decoder.mid.attn_1.k.bias");
    VMAP(&v, "decoder.mid_block.attentions.0.value.weight", "decoder.mid.attn_1.v.weight");
    VMAP(&v, "encoder.mid_block.attentions.0.proj_attn.bias", "encoder.mid.attn_1.proj_out.bias");
    VMAP(&v, "encoder.conv_norm_out.weight", "encoder.norm_out.weight");
    VMAP(&v, "quant_conv.weight", "quant_conv.weight");
    VMAP(&v, "post_quant_conv.bias", "post_quant_conv.bias");
}

static void expect_unknown_unet(const sdc_unet_config *c, const char *name) {
    char out[256];
    cr_assert_eq(sdc_unet_name_to_original(c, name, out, sizeof out), SDC_ERR_ARG, "'%s' mapped to %s", name, out);
    cr_assert(strstr(sdc_last_error(), name), "message does not name '%s': %s", name, sdc_last_error());
}

static void expect_unknown_vae(const sdc_vae_config *c, const char *name) {
    char out[256];
    cr_assert_eq(sdc_vae_name_to_original(c, name, out, sizeof out), SDC_ERR_ARG, "'%s' mapped to %s", name, out);
    cr_assert(strstr(sdc_last_error(), name), "message does not name '%s': %s", name, sdc_last_error());
}

Test(names, unknown_names) {
    sdc_unet_config c = sd15_unet();
    const char *bad[] = {
        "",
        "conv_in",
        "conv_in.",
        "conv_in.weight.x",
        "conv_in.scale",
        "down_blocks.4.resnets.0.conv1.weight",          /* level 4 of 4 */
        "down_blocks.0.resnets.2.conv1.weight",          /* 2 res blocks */
        "down_blocks.0.resnets.00.conv1.weight",
        "down_blocks.0.resnets.0.conv_shortcut.weight",  /* 320 -> 320 */
        "down_blocks.3.attentions.0.proj_in.weight",     /* no attention at level 3 */
        "down_blocks.3.downsamplers.0.conv.weight",      /* last level */
        "down_blocks.0.attentions.0.transformer_blocks.1.norm1.weight", /* depth 1 */
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_x.weight",
        "up_blocks.0.attentions.0.norm.weight",          /* up_blocks.0 is level 3 */
        "up_blocks.3.upsamplers.0.conv.weight",          /* last up block */
        "up_blocks.0.resnets.3.conv1.weight",            /* 3 per up block */
        "mid_block.resnets.2.conv1.weight",
        "mid_block.resnets.0.conv_shortcut.weight",
        "time_embedding.linear_3.weight",
        "input_blocks.0.0.weight",                       /* an original name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_unknown_unet(&c, bad[i]);

    sdc_vae_config v = sd_vae();
    const char *vbad[] = {
        "encoder.down_blocks.0.resnets.2.conv1.weight",  /* encoder: 2 per level */
        "encoder.down_blocks.0.resnets.0.conv_shortcut.weight",
        "encoder.down_blocks.3.downsamplers.0.conv.weight",
        "decoder.up_blocks.3.upsamplers.0.conv.weight",
        "decoder.up_blocks.0.resnets.3.conv1.weight",    /* decoder: 3 per level */
        "decoder.up_blocks.0.resnets.0.time_emb_proj.weight",
        "decoder.mid_block.attentions.1.to_q.weight",
        "decoder.mid_block.attentions.0.to_out.1.weight",
        "decoder.norm_out.weight",
    };
    for (size_t i = 0; i < sizeof vbad / sizeof vbad[0]; i++) expect_unknown_vae(&v, vbad[i]);
    v.has_encoder = false;
    expect_unknown_vae(&v, "encoder.conv_in.weight");
    expect_unknown_vae(&v, "quant_conv.weight");
    VMAP(&v, "decoder.conv_in.weight", "decoder.conv_in.weight");

    /* a buffer too small is an error too, naming the name */
    char small[8];
    cr_assert_eq(sdc_unet_name_to_original(&c, "conv_in.weight", small, sizeof small), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "conv_in.weight"), "%s", sdc_last_error());
    /* a config that describes no U-Net */
    sdc_unet_config z = {0};
    cr_assert_eq(sdc_unet_name_to_original(&z, "conv_in.weight", small, sizeof small), SDC_ERR_ARG);
    char **names = NULL;
    int n = -1;
    cr_assert_eq(sdc_unet_diffusers_names(&z, &names, &n), SDC_ERR_ARG);
}

/* Full size: no diffusers folder, so the names come from the config. */
static void full_case(const char *path, bool sd2) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    sdc_model_files *m = open_ok(path);
    const sdc_unet_config *uc = &m->config.unet;
    cr_assert_eq(uc->n_levels, 4);
    cr_assert_eq(uc->attn_depth[3], 0);
    cr_assert_eq(uc->linear_proj, sd2);
    struct {
        const char *pfx;
        bool vae;
    } comp[2] = {{UNET_PFX, false}, {VAE_PFX, true}};
    for (int k = 0; k < 2; k++) {
        char **names = NULL;
        int n = 0;
        if (comp[k].vae)
            cr_assert_eq(sdc_vae_diffusers_names(&m->config.vae, &names, &n), SDC_OK, "%s", sdc_last_error());
        else
            cr_assert_eq(sdc_unet_diffusers_names(uc, &names, &n), SDC_OK, "%s", sdc_last_error());
        expect_distinct(names, n, "diffusers names");
        char **mapped = calloc((size_t)n, sizeof *mapped);
        for (int i = 0; i < n; i++) {
            char orig[256], full[300];
            sdc_status st = comp[k].vae ? sdc_vae_name_to_original(&m->config.vae, names[i], orig, sizeof orig)
                                        : sdc_unet_name_to_original(uc, names[i], orig, sizeof orig);
            cr_assert_eq(st, SDC_OK, "%s: %s", names[i], sdc_last_error());
            snprintf(full, sizeof full, "%s%s", comp[k].pfx, orig);
            const sdc_st_tensor *t = sdc_st_find(m->single, full);
            cr_assert(t, "%s -> %s: not in %s", names[i], full, path);
            if (comp[k].vae && is_vae_attn_weight(full))
                cr_assert(t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1, "%s: not [C, C, 1, 1]", full);
            mapped[i] = strdup(full);
        }
        expect_distinct(mapped, n, comp[k].pfx);
        int have = count_prefixed(m->single, comp[k].pfx);
        cr_assert_eq(have, n, "%s: %d %s* tensors, %d names enumerated", path, have, comp[k].pfx, n);
        sdc_names_free(mapped, n);
        sdc_names_free(names, n);
    }
    sdc_model_close(m);
}

Test(full, names_sd15_shaped) {
    full_case(FIXTURES_FULL "/full_sd1.safetensors", false);
}

Test(full, names_sd21_shaped) {
    full_case(FIXTURES_FULL "/full_sd2.safetensors", true);
}
