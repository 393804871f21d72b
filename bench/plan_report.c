/* plan_report.c - the device memory a render will take, from the planned
 * memory's dry run (src/plan.h) alone: the model is loaded onto the CUDA
 * device, the render's arena is planned, and nothing is rendered. Built
 * against the emulated device (make bench runs it there on machines
 * without a GPU: the backend's code is the same, so it plans the same
 * bytes a GPU would, less what the CUDA runtime and cuBLAS keep for
 * themselves) and against a GPU where there is one.
 *
 *   plan_report [MODEL] [SIZE] [IMAGES]   (default: the full SD 1.5-shaped
 *   fixture, 512, 1 image; classifier-free guidance doubles the batch) */
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda.h"
#include "context.h"
#include "model/safetensors.h"
#include "nets/vae_tiled.h"
#include "plan.h"
#include "sdc.h"

static double mib(size_t bytes) { return bytes / 1048576.0; }

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "build/fixtures-full/full_sd1.safetensors";
    const int px = argc > 2 ? atoi(argv[2]) : 512, images = argc > 3 ? atoi(argv[3]) : 1;
    if (px < 64 || px % 8 || images < 1 || images > 64) {
        fprintf(stderr, "usage: plan_report [MODEL] [SIZE (a multiple of 8, >= 64)] [IMAGES (1..64)]\n");
        return 2;
    }
    setenv("SDC_QUIET", "1", 0);
    char why[256] = "", name[256] = "";
    if (sdc_cuda_device_count(why, sizeof why) == 0) {
        printf("planned device memory: SKIP: no CUDA device (%s)\n", why);
        return 0;
    }
    sdc_cuda_device_name(name, sizeof name);
    sdc_params p = sdc_params_default();
    p.model_path = model;
    p.backend = SDC_BACKEND_CUDA;
    sdc_ctx *ctx = NULL;
    if (sdc_load(&p, &ctx) != SDC_OK) {
        fprintf(stderr, "plan_report: %s\n", sdc_last_error());
        return 1;
    }
    sdc_backend *be = ctx->be;
    size_t loaded = 0, in_use = 0, peak = 0;
    be->ops->memory(be, &loaded, NULL);
    const int f = sdc_vae_factor(&ctx->model->config.vae);
    const sdc_plan *pl = NULL;
    const double t0 = sdc_now();
    if (sdc_plan_render(ctx, 2 * images, images, px / f, px / f, 77, 20, false, SDC_VAE_TILING_AUTO,
                        SDC_VAE_TILE_DEFAULT, &pl) != SDC_OK) {
        fprintf(stderr, "plan_report: %s\n", sdc_last_error());
        sdc_free(ctx);
        return 1;
    }
    const double t_plan = sdc_now() - t0;
    be->ops->memory(be, &in_use, &peak);
    const size_t shared = pl->unet.activations > pl->vae.activations ? pl->unet.activations : pl->vae.activations;
    const size_t loop = pl->floats - (shared + pl->unet.state) - pl->scratch_bytes / 4;
    printf("planned device memory: %s at %dx%d, %d image%s with guidance (U-Net batch %d), 20 steps, U-Net in %s, "
           "VAE in %s (weights and activations)\n",
           model, px, px, images, images > 1 ? "s" : "", 2 * images, sdc_dtype_name(ctx->unet->act),
           sdc_dtype_name(ctx->vae->act));
    printf("device: %s (planned by a dry run in %.2f s; nothing rendered)\n\n", name, t_plan);
    printf("  %-44s %10.1f MiB\n", "weights and the backend's reserves (loaded)", mib(loaded));
    printf("  %-44s %10.1f MiB\n", "the render's arena", mib(pl->floats * sizeof(float)));
    printf("    %-42s %10.1f MiB\n", "U-Net activations", mib(pl->unet.activations * sizeof(float)));
    printf("    %-42s %10.1f MiB\n", "VAE activations (the same bytes)", mib(pl->vae.activations * sizeof(float)));
    printf("    %-42s %10.1f MiB\n", "U-Net state (context K/V, time embeddings)", mib(pl->unet.state * sizeof(float)));
    printf("    %-42s %10.1f MiB\n", "loop buffers, one image to decode", mib(loop * sizeof(float)));
    printf("    %-42s %10.1f MiB\n", "backend scratch (sized by the dry run)", mib(pl->scratch_bytes));
    printf("  %-44s %10.1f MiB\n", "in use once planned (the render's peak)", mib(in_use));
    printf("  %-44s %10.1f MiB\n", "peak while loading and planning", mib(peak));
    sdc_free(ctx);
    return 0;
}
