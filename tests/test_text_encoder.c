/* test_text_encoder.c - the CLIP text encoder, fp32 on the CPU backend,
 * against transformers' CLIPTextModel run in float64 on the same
 * fp16-rounded weights (tools/make_fixtures.py).
 * Tolerance: normwise relative error max|diff| / max|ref| <= 1e-4. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "sdc.h"
#include "testutil.h"
#include "nets/text_encoder.h"

#define TE_TOL 1e-4

static double expect_close(const char *what, const float *got, const float *ref, size_t n) {
    size_t worst;
    double e = max_rel_err(got, ref, n, &worst);
    if (!(e <= TE_TOL)) print_mismatches(what, got, ref, n, TE_TOL, 5);
    cr_assert(e <= TE_TOL, "%s: max rel err %.3g > %.0e (worst at %zu: got %.7g, ref %.7g)", what, e,
              TE_TOL, worst, (double)got[worst], (double)ref[worst]);
    return e;
}

/* Hidden states of the model's own layers vs the reference model of the
 * same depth: last (after final LN) and penultimate (before it). */
static void hidden_states_case(const char *model_path, const char *ref_path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_model_open(model_path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    sdc_backend *be = NULL;
    sdc_text_encoder *te = NULL;
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_text_encoder_load(m, be, &te), SDC_OK, "%s", sdc_last_error());
    const sdc_text_config *c = &te->cfg;
    cr_assert_eq(c->layers, atoi(sdc_st_meta(ref, "layers")), "fixture depth mismatch");
    const sdc_st_tensor *ids_t = sdc_st_find(ref, "ids");
    cr_assert(ids_t && ids_t->ndim == 2 && ids_t->shape[1] == 77);
    const int P = (int)ids_t->shape[0], T = 77, W = c->width;
    size_t n_last, n_pen;
    float *last = ref_tensor(ref, "last", &n_last), *pen = ref_tensor(ref, "penultimate", &n_pen);
    cr_assert_eq(n_last, (size_t)P * T * W);
    float *out = malloc((size_t)T * W * sizeof(float));
    double worst = 0.0;
    for (int p = 0; p < P; p++) {
        int ids[77];
        ref_ids(ids_t, p, ids);
        char what[64];
        cr_assert_eq(sdc_text_encoder_run(te, ids, T, c->layers, true, out), SDC_OK, "%s", sdc_last_error());
        snprintf(what, sizeof what, "last[%d]", p);
        worst = fmax(worst, expect_close(what, out, last + (size_t)p * T * W, (size_t)T * W));
        cr_assert_eq(sdc_text_encoder_run(te, ids, T, c->layers - 1, false, out), SDC_OK);
        snprintf(what, sizeof what, "penultimate[%d]", p);
        worst = fmax(worst, expect_close(what, out, pen + (size_t)p * T * W, (size_t)T * W));
    }
    fprintf(stderr, "text encoder %s: hidden states, %d prompts, max rel err %.2e\n", model_path, P, worst);
    free(out), free(last), free(pen);
    sdc_text_encoder_free(te);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

/* The public API end to end: prompt text -> tokens -> U-Net context, at
 * clip skip 1 and 2, against what diffusers would feed the U-Net. */
static void context_case(const char *model_path, const char *ref_path) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    cJSON *prompts = cJSON_Parse(sdc_st_meta(ref, "prompts"));
    cr_assert(cJSON_IsArray(prompts));
    size_t n_ctx, n_skip;
    float *ctx_ref = ref_tensor(ref, "context", &n_ctx), *skip_ref = ref_tensor(ref, "context_skip2", &n_skip);
    const sdc_st_tensor *ids_t = sdc_st_find(ref, "ids");
    double worst = 0.0;
    for (int skip = 1; skip <= 2; skip++) {
        sdc_params prm = sdc_params_default();
        prm.model_path = model_path;
        prm.backend = SDC_BACKEND_CPU;
        prm.clip_skip = skip;
        sdc_ctx *ctx = NULL;
        cr_assert_eq(sdc_load(&prm, &ctx), SDC_OK, "%s", sdc_last_error());
        const int W = sdc_context_dim(ctx), P = cJSON_GetArraySize(prompts);
        cr_assert_eq(n_ctx, (size_t)P * 77 * W);
        float *out = malloc((size_t)77 * W * sizeof(float));
        for (int p = 0; p < P; p++) {
            const char *prompt = cJSON_GetArrayItem(prompts, p)->valuestring;
            int ids[77];
            cr_assert_eq(sdc_tokenize(ctx, prompt, ids, 77, NULL), SDC_OK);
            int want[77];
            ref_ids(ids_t, p, want);
            for (int t = 0; t < 77; t++)
                cr_assert_eq(ids[t], want[t], "prompt %d token %d: id %d, reference %d", p, t, ids[t], want[t]);
            cr_assert_eq(sdc_encode_prompt(ctx, prompt, out), SDC_OK, "%s", sdc_last_error());
            char what[64];
            snprintf(what, sizeof what, "context skip %d [%d]", skip, p);
            worst = fmax(worst, expect_close(what, out, (skip == 1 ? ctx_ref : skip_ref) + (size_t)p * 77 * W,
                                             (size_t)77 * W));
        }
        free(out);
        sdc_free(ctx);
    }
    fprintf(stderr, "text encoder %s: context at clip skip 1 and 2, max rel err %.2e\n", model_path, worst);
    free(ctx_ref), free(skip_ref);
    cJSON_Delete(prompts);
    sdc_st_close(ref);
}

Test(text_encoder, sd1_single_file_hidden_states) {
    hidden_states_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/te_tiny_sd1_ref.safetensors");
}
Test(text_encoder, sd1_diffusers_hidden_states) {
    hidden_states_case(FIXTURES "/tiny_sd1_diffusers", FIXTURES "/te_tiny_sd1_ref.safetensors");
}
Test(text_encoder, sd2_openclip_hidden_states) {
    hidden_states_case(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/te_tiny_sd2_ref.safetensors");
}
Test(text_encoder, sd1_single_file_context) {
    context_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/te_tiny_sd1_ref.safetensors");
}
Test(text_encoder, sd1_diffusers_context) {
    context_case(FIXTURES "/tiny_sd1_diffusers", FIXTURES "/te_tiny_sd1_ref.safetensors");
}
/* SD 2.x: penultimate layer of the OpenCLIP single file == last layer of the
 * diffusers copy, which has one layer fewer. */
Test(text_encoder, sd2_single_file_context) {
    context_case(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/te_tiny_sd2_ref.safetensors");
}
Test(text_encoder, sd2_diffusers_context) {
    context_case(FIXTURES "/tiny_sd2_diffusers", FIXTURES "/te_tiny_sd2_ref.safetensors");
}

/* Full size (make test-full): CLIP ViT-L/14 and OpenCLIP ViT-H text towers. */
Test(full, text_encoder_sd1_vit_l, .timeout = 600) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    hidden_states_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/te_full_sd1_ref.safetensors");
    context_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/te_full_sd1_ref.safetensors");
}
Test(full, text_encoder_sd2_vit_h, .timeout = 600) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    hidden_states_case(FIXTURES_FULL "/full_sd2.safetensors", FIXTURES_FULL "/te_full_sd2_ref.safetensors");
    context_case(FIXTURES_FULL "/full_sd2.safetensors", FIXTURES_FULL "/te_full_sd2_ref.safetensors");
}
