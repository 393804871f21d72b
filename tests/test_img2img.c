/* test_img2img.c - image to image and inpainting end to end against
 * diffusers' StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline
 * (float32, CPU generator; tools/fixtures_img2img.py) with the same image,
 * mask, prompt, seed, sampler, steps and strength, every sampler: final
 * latents within 1e-3 (normwise relative, the txt2img tests' bound: the
 * fp32 CPU backend against torch's fp32, a few ulps per op over a few
 * steps) and every 8-bit pixel within +-2. Both families and both layouts
 * for the regular models; the tiny 9-channel inpainting model in both
 * layouts, and its SD 2.x twin as a single file. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "sdc.h"
#include "testutil.h"

#define LATENT_TOL 1e-3
#define PIXEL_TOL 2

typedef struct inputs {
    unsigned char *rgb, *mask;
    int w, h;
} inputs;

static inputs read_inputs(void) {
    inputs in = {0};
    unsigned char *m = NULL;
    int mw = 0, mh = 0;
    cr_assert_eq(sdc_image_read_rgb(FIXTURES "/img2img/init32.png", &in.rgb, &in.w, &in.h), SDC_OK, "%s",
                 sdc_last_error());
    cr_assert_eq(sdc_image_read_rgb(FIXTURES "/img2img/mask32.png", &m, &mw, &mh), SDC_OK, "%s", sdc_last_error());
    cr_assert(mw == in.w && mh == in.h);
    in.mask = malloc((size_t)mw * mh); /* a grey PNG: R = G = B = the mask */
    for (int i = 0; i < mw * mh; i++) in.mask[i] = m[3 * i];
    free(m);
    return in;
}

/* Every case of ref whose "model" is `model`, rendered with the file at
 * model_path; returns how many ran. */
static int img2img_cases(const char *model_path, const char *ref_path, const char *model) {
    inputs in = read_inputs();
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
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
        if (strcmp(cJSON_GetObjectItem(c, "model")->valuestring, model)) continue;
        const bool inpaint = !strcmp(cJSON_GetObjectItem(c, "mode")->valuestring, "inpaint");
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = sdc_st_meta(ref, "prompt");
        g.negative_prompt = sdc_st_meta(ref, "negative");
        g.sampler = cJSON_GetObjectItem(c, "sampler")->valuestring;
        g.karras = cJSON_IsTrue(cJSON_GetObjectItem(c, "karras"));
        g.eta = (float)cJSON_GetObjectItem(c, "eta")->valuedouble;
        g.cfg_scale = (float)cJSON_GetObjectItem(c, "cfg")->valuedouble;
        g.steps = cJSON_GetObjectItem(c, "steps")->valueint;
        g.seed = (unsigned long long)cJSON_GetObjectItem(c, "seed")->valuedouble;
        g.width = cJSON_GetObjectItem(c, "width")->valueint;
        g.height = cJSON_GetObjectItem(c, "height")->valueint;
        g.strength = cJSON_GetObjectItem(c, "strength")->valuedouble;
        g.init_rgb = in.rgb, g.init_width = in.w, g.init_height = in.h;
        if (inpaint) g.mask = in.mask, g.mask_width = in.w, g.mask_height = in.h;
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "case %d: %s", i, sdc_last_error());
        char name[32];
        snprintf(name, sizeof name, "latents%d", i);
        size_t n;
        float *want = ref_tensor(ref, name, &n);
        double e = max_rel_err(img.latents, want, n, NULL);
        cr_assert(e <= LATENT_TOL, "%s case %d (%s %s%s, strength %g): latents max rel err %.3g > %.0e", model_path,
                  i, inpaint ? "inpaint" : "img2img", g.sampler, g.karras ? " karras" : "", g.strength, e,
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
        cr_assert(worst <= PIXEL_TOL, "%s case %d (%s): pixel off by %d > %d", model_path, i, g.sampler, worst,
                  PIXEL_TOL);
        cr_assert(strstr(img.infotext, "Denoising strength: "), "%s", img.infotext);
        fprintf(stderr, "%s %s %-8s%s strength %.2f cfg %.1f: latents rel err %.2e, max pixel diff %d\n", model_path,
                inpaint ? "inpaint" : "img2img", g.sampler, g.karras ? " karras" : "       ", g.strength,
                (double)g.cfg_scale, e, worst);
        free(want);
        sdc_image_free(&img);
        ran++;
    }
    sdc_free(ctx);
    cJSON_Delete(cases);
    sdc_st_close(ref);
    free(in.rgb), free(in.mask);
    return ran;
}

Test(img2img, sd1_single_file, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/img2img_tiny_sd1_ref.safetensors",
                               "regular"), 17);
}
Test(img2img, sd1_diffusers, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_sd1_diffusers", FIXTURES "/img2img_tiny_sd1_ref.safetensors",
                               "regular"), 17);
}
Test(img2img, sd2_single_file, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/img2img_tiny_sd2_ref.safetensors",
                               "regular"), 17);
}
Test(img2img, sd2_diffusers, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_sd2_diffusers", FIXTURES "/img2img_tiny_sd2_ref.safetensors",
                               "regular"), 17);
}
Test(img2img, inpainting_model_single_file, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_inpaint_sd1.safetensors", FIXTURES "/img2img_tiny_sd1_ref.safetensors",
                               "inpaint9"), 7);
}
Test(img2img, inpainting_model_diffusers, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_inpaint_sd1_diffusers",
                               FIXTURES "/img2img_tiny_sd1_ref.safetensors", "inpaint9"), 7);
}
/* SD 2.x's inpainting model (512-inpainting-ema: epsilon, OpenCLIP-H's
 * 1024-wide context, linear projections) shaped tiny, as a single file */
Test(img2img, sd2_inpainting_model_single_file, .timeout = 300) {
    cr_assert_eq(img2img_cases(FIXTURES "/tiny_inpaint_sd2.safetensors", FIXTURES "/img2img_tiny_sd2_ref.safetensors",
                               "inpaint9"), 7);
}

/* A1111's "only masked" (inpaint_full_res): the mask's box plus padding,
 * grown to the output's aspect ratio, is rendered at the output size and
 * pasted back into the whole init image, so the result has the init
 * image's size (here 48x40 into a 32x32 render); every pixel the mask
 * leaves alone is the original's, bit for bit; inside, the render shows;
 * the infotext says so as A1111 writes it. A blank mask falls back to
 * plain image to image at the output size, as A1111 does. */
Test(img2img, only_masked_pastes_back, .timeout = 300) {
    enum { W0 = 48, H0 = 40 };
    unsigned char *rgb = malloc(W0 * H0 * 3), *mask = calloc(W0 * H0, 1);
    for (int y = 0; y < H0; y++)
        for (int x = 0; x < W0; x++) {
            unsigned char *p = rgb + 3 * (y * W0 + x);
            p[0] = (unsigned char)(5 * x), p[1] = (unsigned char)(6 * y), p[2] = (unsigned char)(x * y);
            if (x >= 20 && x < 30 && y >= 8 && y < 16) mask[y * W0 + x] = 255;
        }
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a red circle", g.seed = 3, g.steps = 3, g.width = g.height = 32, g.sampler = "euler";
    g.init_rgb = rgb, g.init_width = W0, g.init_height = H0;
    g.mask = mask, g.mask_width = W0, g.mask_height = H0;
    g.inpaint_full_res = true, g.inpaint_full_res_padding = 4, g.strength = 1.0;
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
    cr_assert(img.width == W0 && img.height == H0, "the result has the init image's size: %dx%d", img.width,
              img.height);
    int inside = 0;
    for (int i = 0; i < W0 * H0; i++) {
        if (mask[i]) {
            inside += memcmp(img.rgb + 3 * i, rgb + 3 * i, 3) != 0;
            continue;
        }
        cr_assert(!memcmp(img.rgb + 3 * i, rgb + 3 * i, 3), "pixel %d,%d outside the mask changed", i % W0, i / W0);
    }
    cr_assert_gt(inside, 40, "the render shows inside the mask (%d of 80 pixels changed)", inside);
    cr_assert(strstr(img.infotext, "Size: 32x32"), "%s", img.infotext);
    cr_assert(strstr(img.infotext, "Denoising strength: 1.0,"), "a float, as Python prints it: %s", img.infotext);
    cr_assert(strstr(img.infotext, "Inpaint area: Only masked, Masked area padding: 4"), "%s", img.infotext);
    sdc_image_free(&img);
    memset(mask, 0, W0 * H0); /* blank: plain image to image at 32x32 */
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
    cr_assert(img.width == 32 && img.height == 32, "%dx%d", img.width, img.height);
    sdc_image_free(&img);
    sdc_free(ctx);
    free(rgb), free(mask);
}

/* The masked-content choices on a regular model: "original" keeps the
 * image under the mask for the encoder; fill, latent noise and latent
 * nothing each give another result, and each is named in the infotext
 * as A1111 names it ("original" is not written). */
Test(img2img, masked_content_choices, .timeout = 300) {
    inputs in = read_inputs();
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_image out[4];
    for (int fill = 0; fill < 4; fill++) {
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = "a red circle", g.seed = 11, g.steps = 3, g.width = g.height = 32, g.sampler = "euler";
        g.init_rgb = in.rgb, g.init_width = in.w, g.init_height = in.h;
        g.mask = in.mask, g.mask_width = in.w, g.mask_height = in.h;
        g.inpaint_fill = fill, g.strength = 0.8;
        cr_assert_eq(sdc_txt2img(ctx, &g, &out[fill]), SDC_OK, "%s", sdc_last_error());
    }
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            cr_assert(memcmp(out[a].rgb, out[b].rgb, (size_t)in.w * in.h * 3),
                      "masked content %d and %d give the same image", a, b);
    static const char *const names[] = {"fill", NULL, "latent noise", "latent nothing"};
    for (int f = 0; f < 4; f++) {
        char want[64];
        snprintf(want, sizeof want, "Masked content: %s", names[f] ? names[f] : "");
        if (names[f]) cr_assert(strstr(out[f].infotext, want), "%s", out[f].infotext);
        else cr_assert_null(strstr(out[f].infotext, "Masked content"), "%s", out[f].infotext);
        sdc_image_free(&out[f]);
    }
    sdc_free(ctx);
    free(in.rgb), free(in.mask);
}
