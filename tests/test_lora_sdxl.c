/* test_lora_sdxl.c - LoRAs on SDXL on the CPU backend against
 * tools/fixtures_lora_sdxl.py's references: diffusers'
 * StableDiffusionXLPipeline with load_lora_weights (float32) for kohya's
 * SDXL LoRA (original LDM names, lora_te1_ / lora_te2_), kohya LoCon
 * (the resnets' convolutions, the embedding projections) and PEFT (the
 * time and added embeddings' linears, text_encoder_2.); AUTOMATIC1111's
 * formulas merged in float64 for LyCORIS LoHa (diffusers reads none). Both
 * layouts: the single file keeps the second encoder in OpenCLIP's names
 * (q, k and v thirds of in_proj), the folder in transformers'.
 * Tolerances as test_lora.c's and test_sdxl.c's: the conditioning and the
 * pooled output of the prompt and of the negative prompt within 1e-4, the
 * final latents within 1e-3 (normwise relative), every 8-bit pixel within
 * 2; a render without LoRAs after them all is the one before them bit for
 * bit. Then the same LoRA in both of kohya's U-Net namings and by --lora
 * gives the same image, as does PEFT's in diffusers' older key layout, and
 * LoRAs of the other families are clear errors that leave the weights as
 * they were. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora_cases.h"
#include "st_write.h"
#include "testutil.h"

#define XL_SINGLE FIXTURES "/tiny_sdxl.safetensors"
#define XL_FOLDER FIXTURES "/tiny_sdxl_diffusers"
#define N_CASES 6

Test(lora_sdxl, parity_single_file, .timeout = 300) {
    lora_sdxl_check c = {SDC_BACKEND_CPU, SDC_PRECISION_AUTO, XL_SINGLE, 1e-3, 2, 1e-4, NULL};
    cr_assert_eq(lora_sdxl_run_cases(&c), N_CASES);
}

Test(lora_sdxl, parity_diffusers_folder, .timeout = 300) {
    lora_sdxl_check c = {SDC_BACKEND_CPU, SDC_PRECISION_AUTO, XL_FOLDER, 1e-3, 2, 1e-4, NULL};
    cr_assert_eq(lora_sdxl_run_cases(&c), N_CASES);
}

static sdc_ctx *load(const char *model, const char *lora_dir) {
    sdc_params mp = sdc_params_default();
    mp.model_path = model;
    mp.backend = SDC_BACKEND_CPU;
    mp.lora_dir = lora_dir;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s: %s", model, sdc_last_error());
    return ctx;
}

static sdc_gen_params small(const char *prompt) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = prompt;
    g.negative_prompt = "blurry";
    g.width = g.height = 32;
    g.steps = 2;
    g.seed = 7;
    return g;
}

static sdc_image render(sdc_ctx *ctx, const char *prompt) {
    sdc_gen_params g = small(prompt);
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s: %s", prompt, sdc_last_error());
    return img;
}

static bool same(const sdc_image *a, const sdc_image *b) {
    return !memcmp(a->latents, b->latents, (size_t)4 * (a->width / 8) * (a->height / 8) * sizeof(float));
}

/* kohya's U-Net modules under their original names and under diffusers',
 * and the file by --lora with the tag's weights: the same merge. */
Test(lora_sdxl, namings_and_lora_argument_agree, .timeout = 120) {
    sdc_ctx *ctx = load(XL_SINGLE, FIXTURES "/lora");
    sdc_image base = render(ctx, "a red circle");
    sdc_image ldm = render(ctx, "a red circle <lora:xl_kohya:0.7:1.2>");
    cr_assert(!same(&ldm, &base), "the LoRA changes nothing");
    sdc_image dif = render(ctx, "a red circle <lora:xl_kohya_diffusers:0.7:1.2>");
    cr_assert(same(&dif, &ldm), "diffusers' U-Net names give another image than the original ones");
    sdc_lora l = {FIXTURES "/lora/xl_kohya.safetensors", 0.7, 1.2};
    sdc_gen_params g = small("a red circle");
    g.loras = &l, g.n_loras = 1;
    sdc_image arg;
    cr_assert_eq(sdc_txt2img(ctx, &g, &arg), SDC_OK, "%s", sdc_last_error());
    cr_assert(same(&arg, &ldm), "--lora FILE:0.7:1.2 differs from the tag");
    /* te 0: the text encoders as the checkpoint's, only the U-Net changed */
    sdc_image unet_only = render(ctx, "a red circle <lora:xl_kohya:0:1.2>");
    cr_assert(!same(&unet_only, &ldm) && !same(&unet_only, &base));
    sdc_image again = render(ctx, "a red circle");
    cr_assert(same(&again, &base), "the LoRA taken out: not the checkpoint's image");
    sdc_image_free(&base), sdc_image_free(&ldm), sdc_image_free(&dif), sdc_image_free(&arg);
    sdc_image_free(&unet_only), sdc_image_free(&again);
    sdc_free(ctx);
}

/* name with its suffix `from` replaced by `to` into buf; NULL if it lacks it */
static const char *swap_suffix(const char *name, const char *from, const char *to, char *buf, size_t cap) {
    const size_t n = strlen(name), k = strlen(from);
    if (n < k || strcmp(name + n - k, from)) return NULL;
    snprintf(buf, cap, "%.*s%s", (int)(n - k), name, to);
    return buf;
}

/* xl_peft.safetensors in diffusers' older layout (convert_state_dict_to_
 * diffusers: the U-Net's .lora.down / .lora.up, both text encoders'
 * .lora_linear_layer.down / .up): the same image as PEFT's names. */
Test(lora_sdxl, diffusers_older_layout, .timeout = 120) {
    char *dir = st_tmpdir(), *p = st_path(dir, "older.safetensors");
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/lora/xl_peft.safetensors", &f), SDC_OK, "%s", sdc_last_error());
    st_builder *b = st_builder_new();
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        const bool te = !strncmp(t->name, "text_encoder", 12);
        char buf[512];
        const char *n = swap_suffix(t->name, ".lora_A.weight", te ? ".lora_linear_layer.down.weight"
                                                                  : ".lora.down.weight", buf, sizeof buf);
        if (!n) n = swap_suffix(t->name, ".lora_B.weight", te ? ".lora_linear_layer.up.weight" : ".lora.up.weight",
                                buf, sizeof buf);
        cr_assert(n, "%s: neither lora_A nor lora_B", t->name);
        cr_assert_eq(st_builder_add(b, n, sdc_dtype_name(t->dtype), t->ndim, t->shape, t->data, t->nbytes), 0);
    }
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    sdc_st_close(f);
    sdc_ctx *ctx = load(XL_SINGLE, dir);
    sdc_lora l = {FIXTURES "/lora/xl_peft.safetensors", 0.8, 0.8};
    sdc_gen_params g = small("a red circle");
    g.loras = &l, g.n_loras = 1;
    sdc_image want, got = render(ctx, "a red circle <lora:older:0.8>");
    cr_assert_eq(sdc_txt2img(ctx, &g, &want), SDC_OK, "%s", sdc_last_error());
    cr_assert(same(&got, &want), "the older layout's names give another image than PEFT's");
    sdc_image_free(&got), sdc_image_free(&want);
    sdc_free(ctx);
    st_rmtree(dir);
    free(dir), free(p);
}

/* The prompt fails naming `why`; the next render is the checkpoint's. */
static void fails(sdc_ctx *ctx, const char *prompt, const char *why, const sdc_image *base) {
    sdc_gen_params g = small(prompt);
    sdc_image img;
    cr_assert_neq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s rendered", prompt);
    cr_assert(strstr(sdc_last_error(), why), "%s: \"%s\" does not say \"%s\"", prompt, sdc_last_error(), why);
    fprintf(stderr, "%s -> %s\n", prompt, sdc_last_error());
    sdc_image again = render(ctx, "a red circle");
    cr_assert(same(&again, base), "%s: the weights changed", prompt);
    sdc_image_free(&again);
}

/* tensors of src whose names start with one of prefixes, as they are */
static void subset(const char *src, const char *to, const char *const *prefixes, int n) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(src, &f), SDC_OK, "%s", sdc_last_error());
    st_builder *b = st_builder_new();
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        bool keep = false;
        for (int p = 0; p < n; p++) keep |= !strncmp(t->name, prefixes[p], strlen(prefixes[p]));
        if (keep) cr_assert_eq(st_builder_add(b, t->name, sdc_dtype_name(t->dtype), t->ndim, t->shape, t->data,
                                              t->nbytes), 0);
    }
    cr_assert_eq(st_builder_write(b, to), 0);
    st_builder_free(b);
    sdc_st_close(f);
}

Test(lora_sdxl, other_families_are_clear_errors, .timeout = 120) {
    char *dir = st_tmpdir();
    char *p = st_path(dir, "sd1unet.safetensors");
    static const char *const unet[1] = {"lora_unet_"}, *const te2[1] = {"lora_te2_"};
    subset(FIXTURES "/lora/kohya.safetensors", p, unet, 1);
    free(p);
    p = st_path(dir, "sd1.safetensors");
    subset(FIXTURES "/lora/kohya.safetensors", p, (const char *const[]){"lora_"}, 1);
    free(p);
    p = st_path(dir, "te2only.safetensors");
    subset(FIXTURES "/lora/xl_kohya.safetensors", p, te2, 1);
    free(p);
    /* a good module of the second encoder, and one of its projection,
     * which no layout can name (OpenCLIP keeps it as a bare parameter) */
    st_builder *b = st_builder_new();
    float v[4 * 6] = {0};
    const int64_t down[2] = {4, 6}, up[2] = {5, 4}, up_q[2] = {6, 4};
    st_builder_add_f32(b, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", 2, down, v);
    st_builder_add_f32(b, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", 2, up_q, v);
    st_builder_add_f32(b, "lora_te2_text_projection.lora_down.weight", 2, down, v);
    st_builder_add_f32(b, "lora_te2_text_projection.lora_up.weight", 2, up, v);
    p = st_path(dir, "proj.safetensors");
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    st_builder_free(b);

    sdc_ctx *ctx = load(XL_FOLDER, dir);
    sdc_image base = render(ctx, "a red circle");
    /* SD 1.x's kohya LoRA: lora_te_ is no SDXL encoder's; its U-Net part alone does not fit */
    fails(ctx, "a red circle <lora:sd1:1>", "a LoRA for SD 1.x or 2.x", &base);
    fails(ctx, "a red circle <lora:sd1unet:1>", "which does not fit the model's", &base);
    fails(ctx, "a red circle <lora:proj:1>", "lora_te2_text_projection names no weight", &base);
    /* the second encoder's modules alone: applied, and only by te */
    sdc_image t = render(ctx, "a red circle <lora:te2only:1>");
    cr_assert(!same(&t, &base), "the second encoder's LoRA changes nothing");
    sdc_image t0 = render(ctx, "a red circle <lora:te2only:0:1>");
    cr_assert(same(&t0, &base), "te 0 leaves the second encoder as it was");
    sdc_image_free(&t), sdc_image_free(&t0), sdc_image_free(&base);
    sdc_free(ctx);

    /* SDXL's LoRA on SD 1.x */
    ctx = load(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/lora");
    sdc_gen_params g = small("a red circle <lora:xl_kohya:1>");
    sdc_image img;
    cr_assert_neq(sdc_txt2img(ctx, &g, &img), SDC_OK);
    cr_assert(strstr(sdc_last_error(), "a LoRA for SDXL"), "%s", sdc_last_error());
    sdc_free(ctx);
    st_rmtree(dir);
    free(dir);
}
