/* bench_sdxl.c - the SDXL section of `make bench`: sdc's CPU backend (or
 * CUDA, --backend cuda: fp16 U-Net, bf16 VAE) on a full-size SDXL
 * base-shaped checkpoint (random weights; speed does not depend on the
 * values): load, text encode (both encoders, a prompt and the negative),
 * one U-Net step with guidance (batch 2) at SIZE x SIZE after a warm-up
 * call at 256x256, one VAE decode at SIZE x SIZE, peak RSS (and the
 * device's peak memory on CUDA). Prints one line per figure, `sdc <what>:
 * <value>`, beside which make bench-sdxl prints diffusers'
 * (tools/bench_diffusers_sdxl.py) on the same machine in the same run.
 *
 *   sdc_bench_sdxl [MODEL] [--size PX] [--backend cpu|cuda]
 *   (default build/fixtures-full/full_sdxl.safetensors, 1024, cpu) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "context.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "sdc.h"
#include "text/conditioning.h"

static double peak_rss_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0 / 1024.0;
}

/* One U-Net call with guidance's batch of 2 at px x px: seconds, or -1. */
static double unet_step(sdc_ctx *ctx, int px, double *gflop) {
    const int lat = px / 8, D = sdc_context_dim(ctx), C = ctx->model->config.unet.in_channels, B = 2;
    const int P = ctx->te2->cfg.proj;
    const size_t n = (size_t)B * lat * lat * C, nc = (size_t)B * 77 * D;
    sdc_backend *be = ctx->be;
    float *x = NULL, *eps = NULL, *cond = NULL;
    float *h = calloc(nc > n ? nc : n, sizeof(float)), *pooled = calloc((size_t)B * P, sizeof(float));
    double t = -1;
    if (!h || !pooled || be->ops->alloc(be, n, &x) || be->ops->alloc(be, n, &eps) || be->ops->alloc(be, nc, &cond))
        goto done;
    for (size_t i = 0; i < n; i++) h[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    be->ops->upload(be, x, h, n);
    memset(h, 0, nc * sizeof(float));
    be->ops->upload(be, cond, h, nc);
    const double ids[12] = {px, px, 0, 0, px, px, px, px, 0, 0, px, px};
    if (sdc_unet_set_context(ctx->unet, cond, B, 77) != SDC_OK ||
        sdc_unet_set_added(ctx->unet, pooled, ids, B) != SDC_OK)
        goto done;
    const double t0 = sdc_now();
    if (sdc_unet_run(ctx->unet, x, B, lat, lat, 500.0, eps) != SDC_OK) goto done;
    be->ops->download(be, h, eps, 1); /* waits for a device's queued work */
    t = sdc_now() - t0;
    *gflop = ctx->unet->flops * 1e-9;
done:
    free(h), free(pooled);
    if (x) be->ops->free(be, x);
    if (eps) be->ops->free(be, eps);
    if (cond) be->ops->free(be, cond);
    return t;
}

static double vae_decode(sdc_ctx *ctx, int px) {
    const int lat = px / 8, zc = ctx->model->config.vae.z_channels;
    sdc_backend *be = ctx->be;
    float *z = NULL, *img = NULL;
    if (be->ops->alloc(be, (size_t)lat * lat * zc, &z) || be->ops->alloc(be, (size_t)px * px * 3, &img)) return -1;
    float *h = calloc((size_t)lat * lat * zc, sizeof(float));
    be->ops->upload(be, z, h, (size_t)lat * lat * zc);
    const double t0 = sdc_now();
    sdc_status st = sdc_vae_decode(ctx->vae, z, lat, lat, img);
    if (st == SDC_OK) st = be->ops->download(be, h, img, 1);
    const double t = sdc_now() - t0;
    free(h);
    be->ops->free(be, z), be->ops->free(be, img);
    return st == SDC_OK ? t : -1;
}

int main(int argc, char **argv) {
    const char *model = "build/fixtures-full/full_sdxl.safetensors";
    int px = 1024;
    sdc_backend_kind kind = SDC_BACKEND_CPU;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) px = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc && !strcmp(argv[i + 1], "cuda")) kind = SDC_BACKEND_CUDA, i++;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc && !strcmp(argv[i + 1], "cpu")) kind = SDC_BACKEND_CPU, i++;
        else if (argv[i][0] == '-') px = 0;
        else model = argv[i];
    }
    if (px < 64 || px % 64) {
        fprintf(stderr, "usage: sdc_bench_sdxl [MODEL] [--size PX (a multiple of 64)] [--backend cpu|cuda]\n");
        return 2;
    }
    setenv("SDC_QUIET", "1", 0);
    sdc_params p = sdc_params_default();
    p.model_path = model;
    p.backend = kind;
    sdc_ctx *ctx = NULL;
    double t0 = sdc_now();
    if (sdc_load(&p, &ctx) != SDC_OK) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    const double t_load = sdc_now() - t0;
    if (!ctx->te2) {
        fprintf(stderr, "bench: %s is not an SDXL model\n", model);
        return 1;
    }
    printf("sdc backend %s; load: %.1f s\n", sdc_backend_name(ctx), t_load);
    sdc_cond c[2];
    t0 = sdc_now();
    if (sdc_encode_cond(ctx, "a photograph of an astronaut riding a horse", NULL, &c[0]) != SDC_OK ||
        sdc_encode_cond(ctx, "blurry, lowres", NULL, &c[1]) != SDC_OK) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    printf("sdc text encode (2 prompts, both encoders): %.2f s\n", sdc_now() - t0);
    sdc_cond_free(&c[0]), sdc_cond_free(&c[1]);
    double gflop = 0, warm = unet_step(ctx, 256, &gflop);
    double step = warm < 0 ? -1 : unet_step(ctx, px, &gflop);
    if (step < 0) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    printf("sdc U-Net step, CFG batch 2, %dx%d: %.1f s (%.0f GFLOP, %.1f GFLOP/s; warm-up at 256x256 %.1f s)\n", px,
           px, step, gflop, gflop / step, warm);
    const double v = vae_decode(ctx, px);
    if (v < 0) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    printf("sdc VAE decode %dx%d: %.1f s\n", px, px, v);
    printf("sdc peak RSS (whole run): %.2f GiB\n", peak_rss_gib());
    if (kind == SDC_BACKEND_CUDA)
        printf("sdc peak device memory (whole run): %.2f GiB\n", sdc_device_memory_peak(ctx) / 1073741824.0);
    sdc_free(ctx);
    return 0;
}
