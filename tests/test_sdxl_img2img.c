/* test_sdxl_img2img.c - SDXL image to image and inpainting against
 * diffusers' StableDiffusionXLImg2ImgPipeline and
 * StableDiffusionXLInpaintPipeline (float32, CPU generator;
 * tools/fixtures_sdxl_img2img.py) on the tiny SDXL model's regular
 * 4-channel U-Net, in both layouts: DDIM, Euler, Euler a, DPM++ 2M (and
 * Karras), strengths 0.5 to 1, a text negative and the zeros of none, a
 * second prompt with size conditioning, Turbo-style trailing steps without
 * guidance, a non-square size. Each case goes through sdc_txt2img with the
 * pipeline's inputs (the init image and mask at the output size, so no
 * resize; no mask blur, masked content "original", diffusers' count of
 * steps for a strength; image to image at width and height 0, the image's
 * own size, as the SDXL img2img pipeline takes no size):
 * final latents within 1e-3 normwise relative and every 8-bit pixel within
 * +-2, the bounds test_img2img.c and test_sdxl.c hold float32 references
 * to. The inpainting pipeline's image is the decode as it is (nothing
 * pasted back), which is what sdc gives without a mask blur. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdc.h"
#include "testutil.h"

#define LATENT_TOL 1e-3
#define PIXEL_TOL 2

#define XL_SINGLE FIXTURES "/tiny_sdxl.safetensors"
#define XL_FOLDER FIXTURES "/tiny_sdxl_diffusers"
#define REF_IMG2IMG FIXTURES "/sdxl_img2img_ref.safetensors"
#define REF_INPAINT FIXTURES "/sdxl_inpaint_ref.safetensors"

static const char *jstr(const cJSON *c, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(c, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *c, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(c, k);
    cr_assert(cJSON_IsNumber(v), "case field %s", k);
    return v->valuedouble;
}

static int jpair(const cJSON *c, const char *k, int i) {
    const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(c, k), i);
    cr_assert(cJSON_IsNumber(v), "case field %s[%d]", k, i);
    return v->valueint;
}

/* a U8 input tensor of the reference file, checked for its shape */
static const unsigned char *input(const sdc_st_file *ref, const char *name, int w, int h, int ch) {
    const sdc_st_tensor *t = sdc_st_find(ref, name);
    cr_assert(t && t->dtype == SDC_DT_U8 && (size_t)t->numel == (size_t)w * h * ch, "input %s (%dx%dx%d)", name, w,
              h, ch);
    return t->data;
}

/* Every case of ref rendered with the model at model_path; returns how
 * many ran. */
static int sdxl_cases(const char *model_path, const char *ref_path) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_str_eq(sdc_st_meta(ref, "requires_aesthetics_score"), "false");
    cr_assert_str_eq(sdc_st_meta(ref, "force_zeros_for_empty_prompt"), "true");
    cJSON *cases = cJSON_Parse(sdc_st_meta(ref, "cases"));
    cr_assert(cJSON_IsArray(cases));
    sdc_params mp = sdc_params_default();
    mp.model_path = model_path;
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    int ran = 0;
    for (int i = 0; i < cJSON_GetArraySize(cases); i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i);
        const bool inpaint = !strcmp(jstr(c, "mode"), "inpaint");
        /* the defaults the references were made with; anything else would
         * need its own mapping */
        cr_assert(cJSON_IsNull(cJSON_GetObjectItem(c, "denoising_start")) &&
                  cJSON_IsNull(cJSON_GetObjectItem(c, "denoising_end")) &&
                  cJSON_IsNull(cJSON_GetObjectItem(c, "padding_mask_crop")));
        const int W = (int)jnum(c, "width"), H = (int)jnum(c, "height");
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = jstr(c, "prompt");
        g.prompt_2 = jstr(c, "prompt_2");
        /* null: diffusers' negative_prompt=None, zeros with guidance, which
         * is sdc's empty negative on SDXL */
        g.negative_prompt = jstr(c, "negative");
        g.sampler = jstr(c, "sampler");
        g.spacing = jstr(c, "spacing");
        g.karras = cJSON_IsTrue(cJSON_GetObjectItem(c, "karras"));
        g.eta = (float)jnum(c, "eta");
        g.cfg_scale = (float)jnum(c, "cfg");
        g.steps = (int)jnum(c, "steps");
        g.seed = (unsigned long long)jnum(c, "seed");
        g.strength = jnum(c, "strength");
        /* the size conditioning only where the case sets it: 0 must give
         * the pipelines' defaults (the output size, crop 0, 0) */
        if (jpair(c, "original_size", 0) != H || jpair(c, "original_size", 1) != W)
            g.original_height = jpair(c, "original_size", 0), g.original_width = jpair(c, "original_size", 1);
        g.crop_top = jpair(c, "crop", 0), g.crop_left = jpair(c, "crop", 1);
        if (jpair(c, "target_size", 0) != H || jpair(c, "target_size", 1) != W)
            g.target_height = jpair(c, "target_size", 0), g.target_width = jpair(c, "target_size", 1);
        g.init_rgb = input(ref, jstr(c, "init"), W, H, 3), g.init_width = W, g.init_height = H;
        if (inpaint) {
            /* the inpainting pipeline is given height and width */
            g.width = W, g.height = H;
            g.mask = input(ref, jstr(c, "mask"), W, H, 1), g.mask_width = W, g.mask_height = H;
        } /* the img2img pipeline takes none: the image's own size, as sdc's 0 x 0 */
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "case %d: %s", i, sdc_last_error());
        cr_assert(img.width == W && img.height == H, "case %d: %dx%d, expected %dx%d", i, img.width, img.height, W, H);
        char name[32];
        snprintf(name, sizeof name, "latents%d", i);
        size_t n, worst_at = 0;
        float *want = ref_tensor(ref, name, &n);
        cr_assert_eq(n, (size_t)4 * (H / 8) * (W / 8));
        const double e = max_rel_err(img.latents, want, n, &worst_at);
        if (!(e <= LATENT_TOL)) print_mismatches(name, img.latents, want, n, LATENT_TOL, 5);
        cr_assert(e <= LATENT_TOL, "%s %s case %d (%s %s%s, strength %g, cfg %g): latents max rel err %.3g > %.0e "
                  "(worst at %zu: got %.7g, ref %.7g)", model_path, jstr(c, "mode"), i, g.sampler, g.spacing,
                  g.karras ? " karras" : "", g.strength, (double)g.cfg_scale, e, LATENT_TOL, worst_at,
                  (double)img.latents[worst_at], (double)want[worst_at]);
        snprintf(name, sizeof name, "image%d", i);
        const unsigned char *px = input(ref, name, W, H, 3);
        int worst = 0;
        for (size_t k = 0; k < (size_t)W * H * 3; k++) {
            const int d = abs((int)img.rgb[k] - (int)px[k]);
            if (d > worst) worst = d;
        }
        cr_assert(worst <= PIXEL_TOL, "%s %s case %d (%s): pixel off by %d > %d", model_path, jstr(c, "mode"), i,
                  g.sampler, worst, PIXEL_TOL);
        cr_assert(strstr(img.infotext, "Denoising strength: "), "%s", img.infotext);
        fprintf(stderr,
                "sdxl %s %s %-8s%s %-8s strength %.2f cfg %.1f %dx%d: latents rel err %.2e, max pixel diff %d\n",
                model_path, jstr(c, "mode"), g.sampler, g.karras ? " karras" : "       ", g.spacing, g.strength,
                (double)g.cfg_scale, W, H, e, worst);
        free(want);
        sdc_image_free(&img);
        ran++;
    }
    sdc_free(ctx);
    cJSON_Delete(cases);
    sdc_st_close(ref);
    return ran;
}

Test(sdxl_img2img, img2img_single_file, .timeout = 300) { cr_assert_eq(sdxl_cases(XL_SINGLE, REF_IMG2IMG), 8); }
Test(sdxl_img2img, img2img_diffusers, .timeout = 300) { cr_assert_eq(sdxl_cases(XL_FOLDER, REF_IMG2IMG), 8); }
Test(sdxl_img2img, inpaint_single_file, .timeout = 300) { cr_assert_eq(sdxl_cases(XL_SINGLE, REF_INPAINT), 6); }
Test(sdxl_img2img, inpaint_diffusers, .timeout = 300) { cr_assert_eq(sdxl_cases(XL_FOLDER, REF_INPAINT), 6); }
