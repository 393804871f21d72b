/* test_vae_file.c - a VAE of its own (sdc_params.vae_path, --vae) in place
 * of the model's: the tiny model's own VAE written apart in the original
 * names (bare, or under first_stage_model.) and diffusers' gives the same
 * image bit for bit, with both layouts; a VAE with other weights changes
 * only the decoded pixels; the infotext names the file as A1111 does (VAE
 * hash, VAE, after Model); files that are no VAE, or of another latent
 * shape, are clear errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "sdc.h"
#include "st_write.h"
#include "testutil.h"

#define MODEL FIXTURES "/tiny_sd1.safetensors"

/* The model's first_stage_model.* tensors written to `to` without the
 * prefix; `touch` (may be NULL) is a tensor whose first value gets 0.5
 * added, `widen` one whose dim 1 is doubled (zero-filled). */
static void extract_vae(const char *to, const char *touch, const char *widen) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(MODEL, &f), SDC_OK, "%s", sdc_last_error());
    st_builder *b = st_builder_new();
    const char *pre = "first_stage_model.";
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, pre, strlen(pre))) continue;
        const char *name = t->name + strlen(pre);
        float *v = malloc((size_t)t->numel * 2 * sizeof *v);
        cr_assert_eq(sdc_st_to_f32(f, t, v), SDC_OK);
        int64_t shape[8];
        memcpy(shape, t->shape, sizeof shape);
        if (touch && !strcmp(name, touch)) v[0] += 0.5f;
        if (widen && !strcmp(name, widen)) {
            shape[1] *= 2;
            memset(v, 0, (size_t)t->numel * 2 * sizeof *v);
        }
        cr_assert_eq(st_builder_add_f32(b, name, t->ndim, shape, v), 0);
        free(v);
    }
    cr_assert_eq(st_builder_write(b, to), 0);
    st_builder_free(b);
    sdc_st_close(f);
}

static sdc_image render(const char *model, const char *vae) {
    sdc_params mp = sdc_params_default();
    mp.model_path = model;
    mp.backend = SDC_BACKEND_CPU;
    mp.vae_path = vae;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s --vae %s: %s", model, vae ? vae : "-", sdc_last_error());
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a red circle";
    g.width = g.height = 32;
    g.steps = 3;
    g.seed = 9;
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
    sdc_free(ctx);
    return img;
}

static bool same(const sdc_image *a, const sdc_image *b, bool pixels) {
    if (pixels) return !memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3);
    return !memcmp(a->latents, b->latents, (size_t)4 * (a->width / 8) * (a->height / 8) * sizeof(float));
}

Test(vae_file, the_models_own_vae_apart, .timeout = 120) {
    char *dir = st_tmpdir(), *orig = st_path(dir, "orig.safetensors"), *moved = st_path(dir, "moved.safetensors");
    extract_vae(orig, NULL, NULL);
    extract_vae(moved, "decoder.conv_out.bias", NULL);
    sdc_image base = render(MODEL, NULL);
    cr_assert(!strstr(base.infotext, "VAE"), "%s", base.infotext);
    const char *vaes[] = {orig, FIXTURES "/tiny_sd1_diffusers/vae/diffusion_pytorch_model.safetensors", MODEL};
    for (int i = 0; i < 3; i++) {
        sdc_image a = render(MODEL, vaes[i]);
        cr_assert(same(&a, &base, true) && same(&a, &base, false), "--vae %s: another image", vaes[i]);
        sdc_image_free(&a);
    }
    sdc_image folder = render(FIXTURES "/tiny_sd1_diffusers", NULL), folder_orig = render(FIXTURES "/tiny_sd1_diffusers", orig);
    cr_assert(same(&folder, &folder_orig, true), "a diffusers folder with --vae");
    sdc_image_free(&folder), sdc_image_free(&folder_orig);
    /* other weights: the same latents, other pixels, and the file named */
    sdc_image m = render(MODEL, moved);
    cr_assert(same(&m, &base, false) && !same(&m, &base, true));
    const char *at = strstr(m.infotext, ", Model: tiny_sd1, VAE hash: ");
    cr_assert(at, "%s", m.infotext);
    cr_assert(!strncmp(at + 29 + 10, ", VAE: moved.safetensors", 24), "%s", m.infotext);
    sdc_image_free(&m);
    sdc_image_free(&base);
    free(orig), free(moved);
    st_rmtree(dir);
    free(dir);
}

Test(vae_file, bad_files, .timeout = 60) {
    char *dir = st_tmpdir(), *wide = st_path(dir, "wide.safetensors");
    extract_vae(wide, NULL, "decoder.conv_in.weight");
    static const struct { const char *path, *why; } bad[] = {
        {FIXTURES "/lora/kohya.safetensors", "not a VAE"},
        {FIXTURES "/no-such-vae.safetensors", "no-such-vae.safetensors"},
        {NULL, "latents have 8 channels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sdc_params mp = sdc_params_default();
        mp.model_path = MODEL;
        mp.backend = SDC_BACKEND_CPU;
        mp.vae_path = bad[i].path ? bad[i].path : wide;
        sdc_ctx *ctx = NULL;
        cr_assert_neq(sdc_load(&mp, &ctx), SDC_OK, "%s loaded", mp.vae_path);
        cr_assert_null(ctx);
        cr_assert(strstr(sdc_last_error(), bad[i].why), "%s: %s", mp.vae_path, sdc_last_error());
    }
    free(wide);
    st_rmtree(dir);
    free(dir);
}
