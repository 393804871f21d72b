/* bench.h - what bench.c (the CPU part and main) and bench_cuda.c share. */
#ifndef SDC_BENCH_H
#define SDC_BENCH_H

#include "backend/backend_profile.h"
#include "sdc.h"

typedef struct step_result {
    double seconds, gflop;
    sdc_profile prof;
    size_t peak_bytes; /* the backend's peak device memory after the steps (0 on the CPU) */
} step_result;

/* Median of `reps` (<= 8) U-Net calls with CFG (batch 2) at px x px after one
 * warm-up, waited for on the device; 0 on success. */
int unet_step(sdc_ctx *ctx, int px, int reps, step_result *out);

/* Seconds of one VAE decode of a px x px image; -1 on error. */
double vae_decode(sdc_ctx *ctx, int px);

/* Images per second of n <= 8 images (encode, denoise, decode): ips[0] one
 * at a time, ips[1] as one batch; 0 on success. */
int images_per_second(sdc_ctx *ctx, int px, int steps, int n, double ips[2]);

/* Loads `model` on `backend` in `precision` (text encoder and U-Net) and
 * `vae_precision`; the seconds it took in *seconds. NULL (and the error
 * printed) on failure. */
sdc_ctx *bench_load(const char *model, sdc_backend_kind backend, sdc_precision precision,
                    sdc_precision vae_precision, double *seconds);

/* A whole program's run (bench_runs.c): wall seconds and peak resident
 * memory from the kernel; stable-diffusion.cpp's own stage times from its
 * log (-1 where it did not print them). */
typedef struct cli_result {
    double wall, rss_gib;
    double load, sampling, decode;
} cli_result;

/* `sdc txt2img` (the binary `sdc`) and stable-diffusion.cpp's CLI (`bin`)
 * on one model: px x px, `steps` Euler steps, guidance 7, seed 42,
 * `threads` CPU threads; 0 on success. */
int bench_sdc_cli(const char *sdc, const char *model, int px, int steps, int threads, cli_result *r);
int bench_sdcpp(const char *bin, const char *model, int px, int steps, int threads, cli_result *r);

/* The per-op table on device 0 (bench_ops.c), small: tiny shapes; 0 on
 * success. */
int bench_ops(int small);

/* The CUDA backend's figures on `model`; 0 on success. */
int bench_cuda(const char *model);

#endif
