/* lora_cases.c - running lora_tiny_ref's cases (lora_cases.h). */
#include "lora_cases.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "text/conditioning.h"
#include "text/extra_networks.h"
#include "testutil.h"

static bool wanted(const int *only, int i) {
    if (!only) return true;
    for (const int *p = only; *p >= 0; p++)
        if (*p == i) return true;
    return false;
}

/* `key: "value"` in the infotext, A1111's quoting (the values here have no
 * quote or backslash to escape) */
static void has_field(const char *info, const char *key, const char *value, int i) {
    if (!value || !*value) {
        cr_assert(!strstr(info, key), "case %d: %s where none was used: %s", i, key, info);
        return;
    }
    char want[1024];
    snprintf(want, sizeof want, "%s: \"%s\"", key, value);
    cr_assert(strstr(info, want), "case %d: no '%s' in the infotext:\n%s", i, want, info);
}

static int run_family(const lora_check *c, const char *family, const char *model, const sdc_st_file *ref,
                      const cJSON *cases) {
    sdc_params mp = sdc_params_default();
    mp.model_path = model;
    mp.backend = c->backend;
    mp.precision = c->precision;
    mp.lora_dir = FIXTURES "/lora";
    mp.embeddings_dir = FIXTURES "/lora";
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s: %s", model, sdc_last_error());
    int ran = 0;
    for (int i = 0; i < cJSON_GetArraySize(cases); i++) {
        const cJSON *k = cJSON_GetArrayItem(cases, i);
        if (strcmp(cJSON_GetObjectItem(k, "family")->valuestring, family) || !wanted(c->only, i)) continue;
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = cJSON_GetObjectItem(k, "prompt")->valuestring;
        g.negative_prompt = cJSON_GetObjectItem(k, "negative")->valuestring;
        g.sampler = cJSON_GetObjectItem(k, "sampler")->valuestring;
        g.karras = cJSON_IsTrue(cJSON_GetObjectItem(k, "karras"));
        g.eta = (float)cJSON_GetObjectItem(k, "eta")->valuedouble;
        g.cfg_scale = (float)cJSON_GetObjectItem(k, "cfg")->valuedouble;
        g.steps = cJSON_GetObjectItem(k, "steps")->valueint;
        g.seed = (unsigned long long)cJSON_GetObjectItem(k, "seed")->valuedouble;
        g.width = cJSON_GetObjectItem(k, "width")->valueint;
        g.height = cJSON_GetObjectItem(k, "height")->valueint;
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s case %d: %s", model, i, sdc_last_error());
        char name[32];
        size_t n;
        snprintf(name, sizeof name, "latents%d", i);
        float *want = ref_tensor(ref, name, &n);
        const double e = max_rel_err(img.latents, want, n, NULL);
        free(want);
        snprintf(name, sizeof name, "image%d", i);
        const sdc_st_tensor *it = sdc_st_find(ref, name);
        cr_assert(it && (size_t)it->numel == (size_t)g.width * g.height * 3);
        int worst = 0;
        for (size_t q = 0; q < (size_t)it->numel; q++) {
            int d = abs((int)img.rgb[q] - (int)((const unsigned char *)it->data)[q]);
            if (d > worst) worst = d;
        }
        /* the conditioning the text encoder gives now, with this case's LoRAs merged */
        char *text = NULL;
        sdc_lora_ref *refs = NULL;
        int nr = 0, chunks = 0;
        cr_assert_eq(sdc_extra_networks_parse(g.prompt, &text, &refs, &nr), SDC_OK);
        float *z = NULL;
        cr_assert_eq(sdc_encode_conditioning(ctx, text, &z, &chunks), SDC_OK, "%s", sdc_last_error());
        snprintf(name, sizeof name, "cond%d", i);
        float *zref = ref_tensor(ref, name, &n);
        cr_assert_eq((size_t)chunks * 77 * sdc_context_dim(ctx), n);
        const double ez = max_rel_err(z, zref, n, NULL);
        fprintf(stderr, "%s %s case %d (%s, %s %s): cond rel err %.2e, latents rel err %.2e, max pixel diff %d\n",
                model, sdc_backend_name(ctx), i, cJSON_GetObjectItem(k, "reference")->valuestring, g.sampler,
                g.prompt, ez, e, worst);
        cr_assert(ez <= c->cond_tol, "%s case %d (%s): conditioning rel err %.3g > %.0e", model, i, g.prompt, ez,
                  c->cond_tol);
        cr_assert(e <= c->lat_tol, "%s case %d (%s): latents rel err %.3g > %.0e", model, i, g.prompt, e, c->lat_tol);
        cr_assert(worst <= c->px_tol, "%s case %d (%s): pixel off by %d > %d", model, i, g.prompt, worst, c->px_tol);
        has_field(img.infotext, "Lora hashes", cJSON_GetObjectItem(k, "lora_hashes")->valuestring, i);
        has_field(img.infotext, "TI hashes", cJSON_GetObjectItem(k, "ti_hashes")->valuestring, i);
        cr_assert(!strncmp(img.infotext, g.prompt, strlen(g.prompt)), "the infotext's prompt keeps its tags");
        free(z), free(zref), free(text);
        sdc_lora_refs_free(refs, nr);
        sdc_image_free(&img);
        ran++;
    }
    sdc_free(ctx);
    return ran;
}

int lora_run_cases(const lora_check *c) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/lora_tiny_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cJSON *cases = cJSON_Parse(sdc_st_meta(ref, "cases"));
    cr_assert(cJSON_IsArray(cases));
    int ran = 0;
    if (c->sd1) ran += run_family(c, "sd1", c->sd1, ref, cases);
    if (c->sd2) ran += run_family(c, "sd2", c->sd2, ref, cases);
    cJSON_Delete(cases);
    sdc_st_close(ref);
    return ran;
}

/* ---- SDXL ----------------------------------------------------------------- */

static const char *jstr(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(c, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jpair(const cJSON *c, const char *key, int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(c, key), i)->valueint;
}

/* A case's render parameters ([height, width] and [top, left] sizes, as
 * the pipeline took them); the prompt keeps its tags. */
static sdc_gen_params sdxl_params(const cJSON *k) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = jstr(k, "prompt");
    g.negative_prompt = jstr(k, "negative");
    g.sampler = jstr(k, "sampler");
    g.spacing = jstr(k, "spacing");
    g.karras = cJSON_IsTrue(cJSON_GetObjectItem(k, "karras"));
    g.eta = (float)cJSON_GetObjectItem(k, "eta")->valuedouble;
    g.cfg_scale = (float)cJSON_GetObjectItem(k, "cfg")->valuedouble;
    g.steps = cJSON_GetObjectItem(k, "steps")->valueint;
    g.seed = (unsigned long long)cJSON_GetObjectItem(k, "seed")->valuedouble;
    g.width = cJSON_GetObjectItem(k, "width")->valueint;
    g.height = cJSON_GetObjectItem(k, "height")->valueint;
    g.original_height = jpair(k, "original_size", 0), g.original_width = jpair(k, "original_size", 1);
    g.crop_top = jpair(k, "crop", 0), g.crop_left = jpair(k, "crop", 1);
    g.target_height = jpair(k, "target_size", 0), g.target_width = jpair(k, "target_size", 1);
    return g;
}

/* One side's conditioning and pooled output against the reference's
 * <side>cond<i> / <side>pooled<i>; returns the worse error. */
static double sdxl_cond(sdc_ctx *ctx, const sdc_st_file *ref, const char *side, const char *text, int i) {
    char zn[32], pn[32];
    snprintf(zn, sizeof zn, "%scond%d", side, i);
    snprintf(pn, sizeof pn, "%spooled%d", side, i);
    size_t nz, np;
    float *z = ref_tensor(ref, zn, &nz), *pooled = ref_tensor(ref, pn, &np);
    sdc_cond c;
    cr_assert_eq(sdc_encode_cond(ctx, text, NULL, &c), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq((size_t)c.chunks * 77 * sdc_context_dim(ctx), nz, "%s: one window", zn);
    cr_assert(c.pooled, "%s: no pooled output", pn);
    const double ez = max_rel_err(c.z, z, nz, NULL), ep = max_rel_err(c.pooled, pooled, np, NULL);
    sdc_cond_free(&c);
    free(z), free(pooled);
    return ez > ep ? ez : ep;
}

static void same_render(const sdc_image *a, const sdc_image *b, const char *what) {
    const size_t nl = (size_t)4 * (a->width / 8) * (a->height / 8), np = (size_t)a->width * a->height * 3;
    cr_assert(!memcmp(a->latents, b->latents, nl * sizeof(float)) && !memcmp(a->rgb, b->rgb, np), "%s", what);
}

int lora_sdxl_run_cases(const lora_sdxl_check *c) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/lora_sdxl_tiny_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    cJSON *cases = cJSON_Parse(sdc_st_meta(ref, "cases"));
    cr_assert(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) > 0);
    sdc_params mp = sdc_params_default();
    mp.model_path = c->model;
    mp.backend = c->backend;
    mp.precision = c->precision;
    mp.vae_precision = c->precision;
    mp.lora_dir = FIXTURES "/lora";
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s: %s", c->model, sdc_last_error());
    /* the first case's render without its LoRAs, before and after them all */
    sdc_gen_params plain = sdxl_params(cJSON_GetArrayItem(cases, 0));
    plain.prompt = jstr(cJSON_GetArrayItem(cases, 0), "text");
    sdc_image before;
    cr_assert_eq(sdc_txt2img(ctx, &plain, &before), SDC_OK, "%s", sdc_last_error());
    int ran = 0;
    for (int i = 0; i < cJSON_GetArraySize(cases); i++) {
        const cJSON *k = cJSON_GetArrayItem(cases, i);
        if (!wanted(c->only, i)) continue;
        sdc_gen_params g = sdxl_params(k);
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s case %d: %s", c->model, i, sdc_last_error());
        char name[32];
        size_t n;
        snprintf(name, sizeof name, "latents%d", i);
        float *want = ref_tensor(ref, name, &n);
        cr_assert_eq(n, (size_t)4 * (g.width / 8) * (g.height / 8));
        const double e = max_rel_err(img.latents, want, n, NULL);
        free(want);
        snprintf(name, sizeof name, "image%d", i);
        const sdc_st_tensor *it = sdc_st_find(ref, name);
        cr_assert(it && it->dtype == SDC_DT_U8 && (size_t)it->numel == (size_t)g.width * g.height * 3);
        int worst = 0;
        for (size_t q = 0; q < (size_t)it->numel; q++) {
            int d = abs((int)img.rgb[q] - (int)((const unsigned char *)it->data)[q]);
            if (d > worst) worst = d;
        }
        /* what both text encoders give now, this case's LoRAs merged */
        const double ep = sdxl_cond(ctx, ref, "", jstr(k, "text"), i);
        const double en = sdxl_cond(ctx, ref, "neg_", g.negative_prompt, i);
        fprintf(stderr, "%s %s sdxl case %d (%s, %s %s): cond/pooled rel err %.2e, negative's %.2e, latents rel err "
                "%.2e, max pixel diff %d\n", c->model, sdc_backend_name(ctx), i, jstr(k, "reference"), g.sampler,
                g.prompt, ep, en, e, worst);
        cr_assert(ep <= c->cond_tol && en <= c->cond_tol, "%s case %d (%s): conditioning rel err %.3g / negative's "
                  "%.3g > %.0e", c->model, i, g.prompt, ep, en, c->cond_tol);
        cr_assert(e <= c->lat_tol, "%s case %d (%s): latents rel err %.3g > %.0e", c->model, i, g.prompt, e,
                  c->lat_tol);
        cr_assert(worst <= c->px_tol, "%s case %d (%s): pixel off by %d > %d", c->model, i, g.prompt, worst,
                  c->px_tol);
        has_field(img.infotext, "Lora hashes", jstr(k, "lora_hashes"), i);
        sdc_image_free(&img);
        ran++;
    }
    sdc_image after;
    cr_assert_eq(sdc_txt2img(ctx, &plain, &after), SDC_OK, "%s", sdc_last_error());
    same_render(&after, &before, "the LoRAs taken out: not the render without them bit for bit");
    sdc_image_free(&before), sdc_image_free(&after);
    sdc_free(ctx);
    cJSON_Delete(cases);
    sdc_st_close(ref);
    return ran;
}
