/* bench_cuda.c - the CUDA part of `make bench`: the CUDA backend on the same
 * full-size checkpoint as the CPU part, on device 0. Every timed call is
 * waited for on the device (bench.c: backend_sync). */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "context.h"
#include "backend/cuda.h"
#include "sdc.h"

static double gib(size_t bytes) { return bytes / 1073741824.0; }

/* device memory in use now (all processes, the CUDA context included) */
static double used_gib(void) {
    size_t free_b = 0, total_b = 0;
    return sdc_cuda_mem_info(&free_b, &total_b) ? -1.0 : gib(total_b - free_b);
}

/* One precision: the weights of every component in `prec`. */
static int bench_cuda_at(const char *model, sdc_precision prec) {
    double mem_before = used_gib();
    double t_load, t0;
    sdc_ctx *ctx = bench_load(model, SDC_BACKEND_CUDA, prec, SDC_PRECISION_AUTO, &t_load);
    if (!ctx) return 1;
    double mem_loaded = used_gib();

    float *c = malloc((size_t)77 * sdc_context_dim(ctx) * sizeof(float));
    double t_text = 1e30;
    for (int r = 0; r < 4; r++) { /* best of 3 after a warm-up */
        t0 = sdc_now();
        if (sdc_encode_prompt(ctx, "a photograph of an astronaut riding a horse", c) != SDC_OK ||
            sdc_encode_prompt(ctx, "", c) != SDC_OK) {
            fprintf(stderr, "bench: %s\n", sdc_last_error());
            free(c);
            sdc_free(ctx);
            return 1;
        }
        double t = sdc_now() - t0;
        if (r > 0 && t < t_text) t_text = t;
    }
    free(c);

    step_result s256, s512;
    if (unet_step(ctx, 256, 7, &s256) || unet_step(ctx, 512, 7, &s512)) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        sdc_free(ctx);
        return 1;
    }
    double mem_unet = used_gib();
    double v256 = vae_decode(ctx, 256), v512 = vae_decode(ctx, 512); /* the first calls warm up */
    v256 = vae_decode(ctx, 256), v512 = vae_decode(ctx, 512);
    double mem_vae = used_gib();
    double ips[2];
    if (v256 < 0 || v512 < 0 || images_per_second(ctx, 512, 20, 8, ips)) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        sdc_free(ctx);
        return 1;
    }

    const size_t peak_unet = s512.peak_bytes;
    size_t peak_all = 0;
    ctx->be->ops->memory(ctx->be, NULL, &peak_all);
    char title[64], load[64];
    snprintf(title, sizeof title, "stage (SD 1.5 shapes, %s weights, CUDA)", sdc_precision_name(prec));
    snprintf(load, sizeof load, "load weights (fp16 file -> %s)", sdc_precision_name(prec));
    printf("%-40s %12s %10s %12s\n", title, "time", "it/s", "TFLOP/s");
    printf("%-40s %10.2f s\n", load, t_load);
    printf("%-40s %9.2f ms\n", "text encode (2 prompts)", t_text * 1e3);
    const step_result *sr[2] = {&s256, &s512};
    const char *lbl[2] = {"U-Net step, CFG batch 2, 256x256", "U-Net step, CFG batch 2, 512x512"};
    for (int i = 0; i < 2; i++)
        printf("%-40s %9.2f ms %10.2f %12.1f\n", lbl[i], sr[i]->seconds * 1e3, 1.0 / sr[i]->seconds,
               sr[i]->gflop / sr[i]->seconds * 1e-3);
    printf("%-40s %9.2f ms\n", "VAE decode 256x256", v256 * 1e3);
    printf("%-40s %9.2f ms\n", "VAE decode 512x512", v512 * 1e3);
    printf("\npeak device memory (sdc's own allocations): %.2f GiB up to the 512x512 U-Net step, %.2f GiB over the "
           "whole run\n", gib(peak_unet), gib(peak_all));
    printf("\ndevice memory in use (cudaMemGetInfo, CUDA context included; not a peak):\n");
    printf("  before load %.2f GiB, after load %.2f GiB, after the U-Net steps %.2f GiB, after VAE decode %.2f GiB\n",
           mem_before, mem_loaded, mem_unet, mem_vae);
    printf("\nimages per second (512x512, 20 DDIM steps, CFG, decode included):\n");
    printf("  --batch-size 1   %.3f img/s\n  --batch-size 8   %.3f img/s  (%.2fx)\n\n", ips[0], ips[1],
           ips[1] / ips[0]);
    sdc_free(ctx);
    return 0;
}

int bench_cuda(const char *model) {
    char name[128];
    sdc_cuda_device_name(name, sizeof name);
    printf("sdc CUDA benchmark: %s\ndevice 0: %s\n\n", model, name);
    const int ops_failed = bench_ops(0); /* (printed; the stages still run) */
    if (bench_cuda_at(model, SDC_PRECISION_FP16)) return 1;
    return bench_cuda_at(model, SDC_PRECISION_FP32) || ops_failed;
}
