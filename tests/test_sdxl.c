/* test_sdxl.c - SDXL against diffusers (tools/fixtures_sdxl.py: a tiny
 * random SDXL-shaped model in Stability's single-file layout and as a
 * diffusers folder). Both layouts everywhere.
 *   text: both encoders' penultimate hidden states, the second's last
 *     layer and pooled, projected output, against transformers in float64
 *     on the same fp16-rounded weights: normwise relative error <= 1e-4;
 *   U-Net: one call with the pooled embedding and time ids, against
 *     UNet2DConditionModel in float64: <= 1e-4;
 *   VAE: the decoder in float64: <= 1e-4;
 *   pipeline: StableDiffusionXLPipeline (float32, CPU generator), ten
 *     cases (every sampler, prompt_2, the three kinds of negative, size
 *     conditioning, Turbo-style trailing 1-2 steps without guidance, other
 *     and odd sizes): the conditioning and pooled output the U-Net got
 *     within 1e-4, final latents within 1e-3, every pixel within +-2. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "nets/text_encoder.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "sdc.h"
#include "testutil.h"
#include "text/conditioning.h"

#define TOL 1e-4         /* float64 references of the components */
#define LATENT_TOL 1e-3  /* the pipeline's final latents, float32 reference */
#define PIXEL_TOL 2

#define XL_SINGLE FIXTURES "/tiny_sdxl.safetensors"
#define XL_FOLDER FIXTURES "/tiny_sdxl_diffusers"

static double expect_close(const char *what, const float *got, const float *ref, size_t n, double tol) {
    size_t worst = 0;
    double e = max_rel_err(got, ref, n, &worst);
    if (!(e <= tol)) print_mismatches(what, got, ref, n, tol, 5);
    cr_assert(e <= tol, "%s: max rel err %.3g > %.0e (worst at %zu: got %.7g, ref %.7g)", what, e, tol, worst,
              (double)got[worst], (double)ref[worst]);
    return e;
}

/* ---- detection -------------------------------------------------------- */

static void detect_case(const char *path) {
    sdc_model_files *m = NULL;
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s", sdc_last_error());
    const sdc_model_config *c = &m->config;
    cr_assert_eq(c->family, SDC_FAMILY_SDXL);
    cr_assert_eq(c->text.width, 4);
    cr_assert_eq(c->text.layers_used, 2); /* hidden_states[-2] of 3 layers */
    cr_assert(!c->text.final_norm);
    cr_assert_eq(c->text.pad_id, 49407);
    cr_assert_eq(c->text2.width, 6);
    cr_assert_eq(c->text2.layers_used, 2);
    cr_assert(!c->text2.final_norm);
    cr_assert_eq(c->text2.pad_id, 0);
    cr_assert_eq(c->text2.proj, 5);
    cr_assert_eq(c->text2.act, SDC_ACT_GELU);
    cr_assert_eq(c->text.act, SDC_ACT_QUICK_GELU);
    cr_assert_eq(c->unet.context_dim, 10);
    cr_assert_eq(c->unet.add_in_dim, 53);
    cr_assert_eq(c->unet.add_time_dim, 8);
    cr_assert_eq(c->unet.n_time_ids, 6);
    cr_assert_eq(c->unet.n_levels, 3);
    cr_assert_eq(c->unet.attn_depth[0], 0);
    cr_assert_eq(c->unet.attn_depth[1], 1);
    cr_assert_eq(c->unet.attn_depth[2], 2);
    cr_assert_float_eq(c->vae.scale_factor, 0.13025f, 1e-7);
    cr_assert(c->zero_empty_negative);
    sdc_model_close(m);
}

Test(sdxl, detect_single_file) { detect_case(XL_SINGLE); }
Test(sdxl, detect_diffusers) { detect_case(XL_FOLDER); }

/* The weights must fit the memory there is: a clear error that says how
 * much the model needs, not a crash half-way through loading. */
Test(sdxl, too_little_memory) {
    sdc_model_files *m = NULL;
    cr_assert_eq(sdc_model_open(XL_SINGLE, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_check_weights_fit(m, true, SDC_DT_F32, SDC_DT_F32, (size_t)1 << 40), SDC_OK);
    cr_assert_eq(sdc_check_weights_fit(m, true, SDC_DT_F32, SDC_DT_F32, 1000), SDC_ERR_OOM);
    const char *e = sdc_last_error();
    cr_assert(strstr(e, "SDXL model needs about") && strstr(e, "GiB of memory") && strstr(e, "is available"), "%s", e);
    cr_assert_eq(sdc_check_weights_fit(m, false, SDC_DT_F16, SDC_DT_BF16, 1000), SDC_ERR_OOM);
    cr_assert(strstr(sdc_last_error(), "GiB of GPU memory"), "%s", sdc_last_error());
    sdc_model_close(m);
}

/* ---- text encoders ---------------------------------------------------- */

static void text_case(const char *path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_backend *be = NULL;
    sdc_text_encoder *te[2] = {NULL, NULL};
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(FIXTURES "/te_tiny_sdxl_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_text_encoder_load(m, be, &te[0]), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_text_encoder_load2(m, be, &te[1]), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *ids_t[2] = {sdc_st_find(ref, "ids1"), sdc_st_find(ref, "ids2")};
    cr_assert(ids_t[0] && ids_t[1] && ids_t[0]->shape[1] == 77);
    const int P = (int)ids_t[0]->shape[0], T = 77;
    size_t n;
    float *pen[2] = {ref_tensor(ref, "pen1", &n), ref_tensor(ref, "pen2", &n)};
    float *last2 = ref_tensor(ref, "last2", &n), *pooled2 = ref_tensor(ref, "pooled2", &n);
    const int W1 = te[0]->cfg.width, W2 = te[1]->cfg.width, D = te[1]->cfg.proj;
    float *out = malloc((size_t)T * W2 * sizeof(float)), *pooled = malloc((size_t)D * sizeof(float));
    double worst = 0;
    for (int p = 0; p < P; p++) {
        char what[64];
        for (int e = 0; e < 2; e++) {
            int ids[77];
            ref_ids(ids_t[e], p, ids);
            const int W = e ? W2 : W1;
            int eos = 0;
            for (int i = 1; i < T; i++)
                if (ids[i] > ids[eos]) eos = i;
            cr_assert_eq(sdc_text_encoder_run_pooled(te[e], ids, T, te[e]->cfg.layers_used, false, NULL, NULL, 0,
                                                     out, eos, e ? pooled : NULL),
                         SDC_OK, "%s", sdc_last_error());
            snprintf(what, sizeof what, "%s pen%d[%d]", path, e + 1, p);
            worst = fmax(worst, expect_close(what, out, pen[e] + (size_t)p * T * W, (size_t)T * W, TOL));
            if (!e) continue;
            snprintf(what, sizeof what, "%s pooled2[%d]", path, p);
            worst = fmax(worst, expect_close(what, pooled, pooled2 + (size_t)p * D, (size_t)D, TOL));
            cr_assert_eq(sdc_text_encoder_run(te[e], ids, T, te[e]->cfg.layers, true, out), SDC_OK);
            snprintf(what, sizeof what, "%s last2[%d]", path, p);
            worst = fmax(worst, expect_close(what, out, last2 + (size_t)p * T * W, (size_t)T * W, TOL));
        }
    }
    fprintf(stderr, "sdxl text %s: %d prompts, max rel err %.2e\n", path, P, worst);
    free(out), free(pooled), free(pen[0]), free(pen[1]), free(last2), free(pooled2);
    sdc_text_encoder_free(te[0]);
    sdc_text_encoder_free(te[1]);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

Test(sdxl, text_single_file) { text_case(XL_SINGLE); }
Test(sdxl, text_diffusers) { text_case(XL_FOLDER); }

/* ---- U-Net ------------------------------------------------------------ */

static void unet_case(const char *path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_backend *be = NULL;
    sdc_unet *u = NULL;
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(FIXTURES "/unet_tiny_sdxl_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_unet_load(m, be, &u), SDC_OK, "%s", sdc_last_error());
    size_t n;
    float *ctx = ref_tensor(ref, "context", &n), *pooled = ref_tensor(ref, "text_embeds", &n);
    float *ids_f = ref_tensor(ref, "time_ids", &n);
    cr_assert_eq(n, 12u);
    double ids[12];
    for (int i = 0; i < 12; i++) ids[i] = ids_f[i];
    double worst = 0;
    for (int i = 0; i < 2; i++) {
        char xn[16], on[16], tn[16];
        snprintf(xn, sizeof xn, "x%d", i);
        snprintf(on, sizeof on, "out%d", i);
        snprintf(tn, sizeof tn, "t%d", i);
        const sdc_st_tensor *xt = sdc_st_find(ref, xn);
        const int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[2], W = (int)xt->shape[3];
        float *x = ref_tensor(ref, xn, &n), *want = ref_tensor(ref, on, &n);
        float *xh = malloc(n * sizeof(float)), *yh = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        sdc_nchw_to_nhwc(x, xh, B, C, H, W);
        cr_assert_eq(sdc_unet_set_context(u, ctx, B, 77), SDC_OK, "%s", sdc_last_error());
        /* without the added embedding an SDXL U-Net refuses to run */
        cr_assert_eq(sdc_unet_run(u, xh, B, H, W, atof(sdc_st_meta(ref, tn)), yh), SDC_ERR_ARG);
        cr_assert_eq(sdc_unet_set_added(u, pooled, ids, B), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_unet_run(u, xh, B, H, W, atof(sdc_st_meta(ref, tn)), yh), SDC_OK, "%s", sdc_last_error());
        sdc_nhwc_to_nchw(yh, y, B, C, H, W);
        char what[128];
        snprintf(what, sizeof what, "%s %s (%dx%d)", path, on, H, W);
        worst = fmax(worst, expect_close(what, y, want, n, TOL));
        free(x), free(want), free(xh), free(yh), free(y);
    }
    fprintf(stderr, "sdxl unet %s: max rel err %.2e\n", path, worst);
    free(ctx), free(pooled), free(ids_f);
    sdc_unet_free(u);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

Test(sdxl, unet_single_file) { unet_case(XL_SINGLE); }
Test(sdxl, unet_diffusers) { unet_case(XL_FOLDER); }

/* ---- VAE -------------------------------------------------------------- */

static void vae_case(const char *path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_backend *be = NULL;
    sdc_vae *v = NULL;
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(FIXTURES "/vae_tiny_sdxl_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *zt = sdc_st_find(ref, "z");
    const int C = (int)zt->shape[1], H = (int)zt->shape[2], W = (int)zt->shape[3], f = sdc_vae_factor(&m->config.vae);
    size_t nz, ni;
    float *z = ref_tensor(ref, "z", &nz), *want = ref_tensor(ref, "image", &ni);
    float *zh = malloc(nz * sizeof(float)), *ih = malloc(ni * sizeof(float)), *img = malloc(ni * sizeof(float));
    sdc_nchw_to_nhwc(z, zh, 1, C, H, W);
    cr_assert_eq(sdc_vae_decode(v, zh, H, W, ih), SDC_OK, "%s", sdc_last_error());
    sdc_nhwc_to_nchw(ih, img, 1, 3, H * f, W * f);
    double e = expect_close(path, img, want, ni, TOL);
    fprintf(stderr, "sdxl vae %s: max rel err %.2e\n", path, e);
    free(z), free(want), free(zh), free(ih), free(img);
    sdc_vae_free(v);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

Test(sdxl, vae_single_file) { vae_case(XL_SINGLE); }
Test(sdxl, vae_diffusers) { vae_case(XL_FOLDER); }

/* ---- A1111's prompt syntax on both encoders --------------------------- */

/* Weighted, long and BREAK prompts (and a second prompt of another window
 * count) against tools/fixtures_sdxl.py's float64 rendition of A1111's
 * SDXL conditioning: the context within 1e-4 normwise relative, window
 * for window, and the pooled output of the first window. */
static void a1111_case(const char *path) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/cond_tiny_sdxl_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cJSON *prompts = cJSON_Parse(sdc_st_meta(ref, "prompts"));
    cr_assert(cJSON_IsArray(prompts));
    sdc_params mp = sdc_params_default();
    mp.model_path = path;
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(prompts); i++) {
        const cJSON *pr = cJSON_GetArrayItem(prompts, i);
        const char *p1 = cJSON_GetArrayItem(pr, 0)->valuestring;
        const cJSON *p2 = cJSON_GetArrayItem(pr, 1);
        char zn[32], pn[32], what[96];
        snprintf(zn, sizeof zn, "cond%d", i);
        snprintf(pn, sizeof pn, "pooled%d", i);
        size_t nz, np;
        float *z = ref_tensor(ref, zn, &nz), *pooled = ref_tensor(ref, pn, &np);
        sdc_cond c;
        cr_assert_eq(sdc_encode_cond(ctx, p1, cJSON_IsString(p2) ? p2->valuestring : NULL, &c), SDC_OK, "%s",
                     sdc_last_error());
        cr_assert_eq((size_t)c.chunks * 77 * 10, nz, "prompt %d: %d windows, the reference %zu", i, c.chunks,
                     nz / 770);
        snprintf(what, sizeof what, "%s prompt %d context", path, i);
        worst = fmax(worst, expect_close(what, c.z, z, nz, TOL));
        snprintf(what, sizeof what, "%s prompt %d pooled", path, i);
        worst = fmax(worst, expect_close(what, c.pooled, pooled, np, TOL));
        sdc_cond_free(&c);
        free(z), free(pooled);
    }
    fprintf(stderr, "sdxl a1111 conditioning %s: %d prompts, max rel err %.2e\n", path, cJSON_GetArraySize(prompts),
            worst);
    sdc_free(ctx);
    cJSON_Delete(prompts);
    sdc_st_close(ref);
}

Test(sdxl, a1111_prompts_single_file) { a1111_case(XL_SINGLE); }
Test(sdxl, a1111_prompts_diffusers) { a1111_case(XL_FOLDER); }

/* ---- the pipeline ----------------------------------------------------- */

static const char *str_or_null(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(c, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int pair(const cJSON *c, const char *key, int i) { return cJSON_GetArrayItem(cJSON_GetObjectItem(c, key), i)->valueint; }

/* The conditioning and pooled output diffusers gave the U-Net for one
 * side of a case, against sdc_encode_cond's (or zeros). */
static void cond_check(sdc_ctx *ctx, const sdc_st_file *ref, const char *model, int i, const char *side,
                       const char *prompt, const char *prompt_2, bool zeros) {
    char zn[32], pn[32], what[160];
    snprintf(zn, sizeof zn, "%scond%d", side, i);
    snprintf(pn, sizeof pn, "%spooled%d", side, i);
    size_t nz, np;
    float *z = ref_tensor(ref, zn, &nz), *pooled = ref_tensor(ref, pn, &np);
    sdc_cond c;
    if (zeros) {
        for (size_t k = 0; k < nz; k++) cr_assert_eq(z[k], 0.0f, "%s: diffusers' zeros are not zeros", zn);
        for (size_t k = 0; k < np; k++) cr_assert_eq(pooled[k], 0.0f);
    } else {
        cr_assert_eq(sdc_encode_cond(ctx, prompt, prompt_2, &c), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq((size_t)c.chunks * 77 * sdc_context_dim(ctx), nz);
        snprintf(what, sizeof what, "%s case %d %s", model, i, zn);
        expect_close(what, c.z, z, nz, TOL);
        snprintf(what, sizeof what, "%s case %d %s", model, i, pn);
        expect_close(what, c.pooled, pooled, np, TOL);
        sdc_cond_free(&c);
    }
    free(z), free(pooled);
}

static void pipeline_case(const char *path) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/sdxl_tiny_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cJSON *cases = cJSON_Parse(sdc_st_meta(ref, "cases"));
    cr_assert(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) == 10);
    sdc_params mp = sdc_params_default();
    mp.model_path = path;
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    for (int i = 0; i < cJSON_GetArraySize(cases); i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i);
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = str_or_null(c, "prompt");
        g.prompt_2 = str_or_null(c, "prompt_2");
        g.negative_prompt = str_or_null(c, "negative");
        const char *mode = str_or_null(c, "negative_mode");
        g.encode_empty_negative = !strcmp(mode, "empty_text"); /* diffusers given negative_prompt="" */
        g.sampler = str_or_null(c, "sampler");
        g.spacing = str_or_null(c, "spacing");
        g.karras = cJSON_IsTrue(cJSON_GetObjectItem(c, "karras"));
        g.eta = (float)cJSON_GetObjectItem(c, "eta")->valuedouble;
        g.cfg_scale = (float)cJSON_GetObjectItem(c, "cfg")->valuedouble;
        g.steps = cJSON_GetObjectItem(c, "steps")->valueint;
        g.seed = (unsigned long long)cJSON_GetObjectItem(c, "seed")->valuedouble;
        g.width = cJSON_GetObjectItem(c, "width")->valueint;
        g.height = cJSON_GetObjectItem(c, "height")->valueint;
        /* [height, width] and [top, left], as the pipeline takes them */
        g.original_height = pair(c, "original_size", 0), g.original_width = pair(c, "original_size", 1);
        g.crop_top = pair(c, "crop", 0), g.crop_left = pair(c, "crop", 1);
        g.target_height = pair(c, "target_size", 0), g.target_width = pair(c, "target_size", 1);
        cond_check(ctx, ref, path, i, "", g.prompt, g.prompt_2, false);
        if (strcmp(mode, "unused") != 0)
            cond_check(ctx, ref, path, i, "neg_", g.negative_prompt ? g.negative_prompt : "", NULL,
                       !strcmp(mode, "zeros"));
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "case %d: %s", i, sdc_last_error());
        char name[32];
        snprintf(name, sizeof name, "latents%d", i);
        size_t n;
        float *want = ref_tensor(ref, name, &n);
        double e = max_rel_err(img.latents, want, n, NULL);
        cr_assert(e <= LATENT_TOL, "%s case %d (%s, %s): latents max rel err %.3g > %.0e", path, i, g.sampler, mode, e,
                  LATENT_TOL);
        snprintf(name, sizeof name, "image%d", i);
        const sdc_st_tensor *it = sdc_st_find(ref, name);
        cr_assert(it && it->dtype == SDC_DT_U8 && (size_t)it->numel == (size_t)g.width * g.height * 3);
        const unsigned char *px = it->data;
        int worst = 0;
        for (size_t k = 0; k < (size_t)it->numel; k++) {
            int d = abs((int)img.rgb[k] - (int)px[k]);
            if (d > worst) worst = d;
        }
        cr_assert(worst <= PIXEL_TOL, "%s case %d (%s): pixel off by %d > %d", path, i, g.sampler, worst, PIXEL_TOL);
        fprintf(stderr, "sdxl pipeline %s case %d %-8s %-8s %-10s cfg %.1f %dx%d: latents rel err %.2e, max pixel "
                "diff %d\n", path, i, g.sampler, g.spacing, mode, (double)g.cfg_scale, g.width, g.height, e, worst);
        free(want);
        sdc_image_free(&img);
    }
    sdc_free(ctx);
    cJSON_Delete(cases);
    sdc_st_close(ref);
}

Test(sdxl, pipeline_single_file, .timeout = 300) { pipeline_case(XL_SINGLE); }
Test(sdxl, pipeline_diffusers, .timeout = 300) { pipeline_case(XL_FOLDER); }

/* SDXL's options are refused on other models, and checked. */
Test(sdxl, options_checked) {
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a red circle";
    g.width = g.height = 32;
    g.steps = 1;
    g.prompt_2 = "a blue square";
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "for SDXL models; this is an SD 1.x model"), "%s", sdc_last_error());
    sdc_free(ctx);
    g.prompt_2 = NULL;
    g.crop_top = -1;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    g.crop_top = 0;
    g.original_width = 512;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "both its width and its height"), "%s", sdc_last_error());
}

/* ---- full size (make test-full) ---------------------------------------- */

/* An SDXL base 1.0-shaped checkpoint with random weights and nothing in
 * its metadata (tools/fixtures_sdxl_full.py): everything from the tensors;
 * the memory check's figure; one U-Net evaluation on the CPU (fp32
 * weights, about 10 GiB) at a 16x16 latent with guidance's batch of 2:
 * the output's shape and finiteness (the values are random). */
Test(full, sdxl_shaped, .timeout = 1800) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    const char *path = FIXTURES_FULL "/full_sdxl.safetensors";
    sdc_model_files *m = NULL;
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s", sdc_last_error());
    const sdc_model_config *c = &m->config;
    cr_assert_eq(c->family, SDC_FAMILY_SDXL);
    cr_assert_eq(c->text.width, 768);
    cr_assert_eq(c->text.layers, 12);
    cr_assert_eq(c->text.heads, 12);
    cr_assert_eq(c->text.layers_used, 11);
    cr_assert_eq(c->text2.width, 1280);
    cr_assert_eq(c->text2.layers, 32);
    cr_assert_eq(c->text2.heads, 20);
    cr_assert_eq(c->text2.ff, 5120);
    cr_assert_eq(c->text2.layers_used, 31);
    cr_assert_eq(c->text2.proj, 1280);
    const int ch[3] = {320, 640, 1280}, depth[3] = {0, 2, 10}, heads[3] = {5, 10, 20};
    cr_assert_eq(c->unet.n_levels, 3);
    for (int l = 0; l < 3; l++) {
        cr_assert_eq(c->unet.channels[l], ch[l]);
        cr_assert_eq(c->unet.attn_depth[l], depth[l]);
        cr_assert_eq(c->unet.heads[l], heads[l]);
    }
    cr_assert(c->unet.linear_proj);
    cr_assert_eq(c->unet.context_dim, 2048);
    cr_assert_eq(c->unet.add_in_dim, 2816);
    cr_assert_eq(c->unet.add_time_dim, 256);
    cr_assert_eq(c->unet.n_time_ids, 6);
    cr_assert_eq(c->image_size, 1024);
    cr_assert_float_eq(c->vae.scale_factor, 0.13025f, 1e-7);
    const int mult[4] = {1, 2, 4, 4};
    for (int l = 0; l < 4; l++) cr_assert_eq(c->vae.channels_mult[l], mult[l]);
    /* the weights as the fp16 file stores them on the CPU: 2.57 G U-Net,
     * 0.12 G + 0.69 G text, 0.08 G VAE parameters, 2 bytes each */
    cr_assert_eq(sdc_check_weights_fit(m, true, SDC_DT_F32, SDC_DT_F32, (size_t)4 << 30), SDC_ERR_OOM);
    const char *e = strstr(sdc_last_error(), "needs about ");
    double gib = 0;
    cr_assert(e && sscanf(e, "needs about %lf GiB", &gib) == 1, "%s", sdc_last_error());
    cr_assert(gib > 6.0 && gib < 7.0, "SDXL's fp16 weights need %.1f GiB?", gib);
    fprintf(stderr, "full sdxl: %s\n", sdc_last_error());
    cr_assert_eq(sdc_check_weights_fit(m, false, SDC_DT_F16, SDC_DT_BF16, (size_t)4 << 30), SDC_ERR_OOM);
    cr_assert(sscanf(strstr(sdc_last_error(), "needs about "), "needs about %lf GiB", &gib) == 1 && gib > 6.0 &&
              gib < 7.0, "%s", sdc_last_error());

    sdc_backend *be = NULL;
    sdc_unet *u = NULL;
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_unet_load(m, be, &u), SDC_OK, "%s", sdc_last_error());
    const int B = 2, H = 16, W = 16, T = 77;
    float *ctx = test_random((size_t)B * T * 2048, 1, 1.0f), *x = test_random((size_t)B * H * W * 4, 2, 1.0f);
    float *pooled = test_random((size_t)B * 1280, 3, 1.0f), *y = malloc((size_t)B * H * W * 4 * sizeof(float));
    const double ids[12] = {1024, 1024, 0, 0, 1024, 1024, 1024, 1024, 0, 0, 1024, 1024};
    cr_assert_eq(sdc_unet_set_context(u, ctx, B, T), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_unet_set_added(u, pooled, ids, B), SDC_OK, "%s", sdc_last_error());
    const double t0 = sdc_now();
    cr_assert_eq(sdc_unet_run(u, x, B, H, W, 999.0, y), SDC_OK, "%s", sdc_last_error());
    double rms = 0;
    for (size_t i = 0; i < (size_t)B * H * W * 4; i++) {
        cr_assert(isfinite(y[i]), "U-Net output %zu is %g", i, (double)y[i]);
        rms += (double)y[i] * y[i];
    }
    rms = sqrt(rms / ((double)B * H * W * 4));
    cr_assert(rms > 0.0);
    fprintf(stderr, "full sdxl: U-Net (%d, %d, %d, 4) in %.1f s, %.1f GFLOP, output rms %.3g\n", B, H, W,
            sdc_now() - t0, u->flops * 1e-9, rms);
    free(ctx), free(x), free(pooled), free(y);
    sdc_unet_free(u);
    sdc_backend_destroy(be);
    sdc_model_close(m);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' inspect %s | grep -q 'OpenCLIP ViT-bigG/14'", sdc_cli_path(), path);
    cr_assert_eq(system(cmd), 0, "sdc inspect %s", path);
}
