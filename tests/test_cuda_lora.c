/* test_cuda_lora.c - LoRAs and embeddings on the CUDA backend (the emulated
 * device in make test; a GPU where there is one): merged into fp16
 * weights in place (kernels padded to the tensor cores' multiples of 8
 * channels), then taken out again. Against the same references as
 * test_lora.c with test_cuda_pipeline.c's fp16 bounds (fp16 weights and
 * activations against diffusers' float32: latents 1e-2 normwise relative,
 * pixels 6 levels with the default bf16 VAE); the conditioning (fp16
 * weights, fp32 activations) within 5e-3. And the checkpoint's weights come
 * back bit for bit: a render after a LoRA is taken out is the render of a
 * fresh context. SDXL's LoRAs too (tools/fixtures_lora_sdxl.py's cases). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "lora_cases.h"
#include "testutil.h"

Test(cuda_lora, tiny_cases_fp16, .timeout = 900) {
    need_device();
    /* kohya (linear and 1x1 convolutions, text encoder), LoCon with
     * lora_mid and LoHa (3x3 kernels), PEFT, the embeddings, SD 2.x */
    const int only[] = {0, 3, 4, 5, 9, 8, -1};
    lora_check c = {SDC_BACKEND_CUDA, SDC_PRECISION_AUTO, FIXTURES "/tiny_sd1.safetensors",
                    FIXTURES "/tiny_sd2.safetensors", 1e-2, 6, 5e-3, only};
    cr_assert_eq(lora_run_cases(&c), 6);
}

/* SDXL: kohya's LoRA on both text encoders (the second's q, k, v thirds of
 * the single file's OpenCLIP in_proj) and the U-Net's attention, LoCon's
 * 3x3 kernels (padded on the device), LoHa with the time and added
 * embeddings' linears; each time the render without LoRAs after them is
 * the one before them bit for bit. In fp32 the CPU's bounds hold (measured
 * on the emulated device: conditioning and pooled output <= 3.1e-6,
 * latents <= 3.9e-6, pixels 1 level). In fp16 (weights and activations,
 * the VAE's too) the merged weights are rounded to half, which the tiny
 * model's 4- to 12-wide layers with these large random deltas carry far:
 * kohya and LoCon measured 6.9e-3 of the conditioning, 1.1e-2 of the
 * latents, 4 levels, so they are held to 1e-2, 2e-2 and 6 (the SD 1.x
 * cases' pixels); LoHa's products (2e-2 of the latents) only in fp32. */
Test(cuda_lora, sdxl_cases, .timeout = 900) {
    need_device();
    const int all[] = {0, 2, 4, -1}, half[] = {0, 2, -1};
    lora_sdxl_check c = {SDC_BACKEND_CUDA, SDC_PRECISION_FP32, FIXTURES "/tiny_sdxl.safetensors", 1e-3, 2, 1e-4, all};
    cr_assert_eq(lora_sdxl_run_cases(&c), 3);
    c.precision = SDC_PRECISION_FP16, c.lat_tol = 2e-2, c.px_tol = 6, c.cond_tol = 1e-2, c.only = half;
    cr_assert_eq(lora_sdxl_run_cases(&c), 2);
}

static sdc_image render(sdc_ctx *ctx, const char *prompt) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = prompt;
    g.width = g.height = 32;
    g.steps = 2;
    g.seed = 11;
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s: %s", prompt, sdc_last_error());
    return img;
}

Test(cuda_lora, taken_out_bit_for_bit, .timeout = 600) {
    need_device();
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CUDA;
    mp.lora_dir = FIXTURES "/lora";
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_image base = render(ctx, "a red circle");
    const size_t n = (size_t)4 * 4 * 4;
    /* locon: 3x3 kernels too; loha: its CP form */
    const char *with[] = {"a red circle <lora:locon:1>", "a red circle <lora:loha:0.7>"};
    for (int i = 0; i < 2; i++) {
        sdc_image a = render(ctx, with[i]);
        cr_assert(memcmp(a.latents, base.latents, n * sizeof(float)), "%s changes nothing", with[i]);
        sdc_image b = render(ctx, "a red circle");
        cr_assert(!memcmp(b.latents, base.latents, n * sizeof(float)), "%s taken out: not the checkpoint's image",
                  with[i]);
        sdc_image_free(&a), sdc_image_free(&b);
    }
    sdc_image_free(&base);
    sdc_free(ctx);
}
