/* bench.c - `make bench`: sdc on a full-size SD 1.5-shaped checkpoint.
 * CPU backend, in one run: this machine's OpenBLAS sgemm rate, text
 * encode, one U-Net step with CFG (batch 2) at 256x256 and 512x512, VAE
 * decode at both sizes, peak RSS, where a step's time goes, images per
 * second; then the same steps and decodes with --precision bf16 (AMX's
 * tiles where the processor has them), beside the fp32 ones. Where a CUDA device is present, the same figures for the CUDA
 * backend come first (bench_cuda.c); --cuda-only skips the CPU part. */
#include <cblas.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "backend/backend_cpu.h"
#include "backend/backend_profile.h"
#include "backend/cpu_isa.h"
#include "context.h"
#include "backend/cuda.h"
#include "sdc.h"

/* The machine, as every figure must name it: CPU model, cores, and the
 * vector extensions the kernels choose from at run time. */
static void print_machine(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096], model[256] = "unknown CPU";
    bool avx2 = false, fma = false, avx512 = false, bf16 = false;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = '\0';
        } else if (!strncmp(line, "flags", 5)) {
            avx2 = strstr(line, " avx2") != NULL, fma = strstr(line, " fma") != NULL;
            avx512 = strstr(line, " avx512f") != NULL, bf16 = strstr(line, " avx512_bf16") != NULL;
        }
    }
    if (f) fclose(f);
    printf("machine: %s, %ld cores; AVX2%s %s, AVX-512 %s, AVX-512 BF16 %s\n", model, sysconf(_SC_NPROCESSORS_ONLN),
           fma ? "+FMA" : "", avx2 ? "yes" : "no", avx512 ? "yes" : "no", bf16 ? "yes" : "no");
    /* the CPU kernels' instruction set (SDC_CPU_ISA lowers it) and OpenBLAS's */
    printf("sdc CPU kernels: %s (of %s); OpenBLAS kernels: %s\n", sdc_cpu_isa_name(sdc_cpu_isa_active()),
           sdc_cpu_isa_name(sdc_cpu_isa_detect()), openblas_get_corename());
}

/* "  12.34 s" or, without a figure, blanks of the same width */
static const char *secs(char *buf, double v) {
    if (v < 0) snprintf(buf, 32, "%12s", "-");
    else snprintf(buf, 32, "%10.2f s", v);
    return buf;
}

static void row(const char *what, double sdc, double other, const char *unit) {
    char a[32], b[32];
    if (!strcmp(unit, "GiB")) {
        snprintf(a, sizeof a, "%8.2f GiB", sdc);
        if (other < 0) snprintf(b, sizeof b, "%12s", "-");
        else snprintf(b, sizeof b, "%8.2f GiB", other);
        printf("%-40s %12s %12s %9s\n", what, a, b, other > 0 ? "" : "");
        return;
    }
    if (other > 0) printf("%-40s %12s %12s %8.2fx\n", what, secs(a, sdc), secs(b, other), other / sdc);
    else printf("%-40s %12s %12s\n", what, secs(a, sdc), secs(b, other));
}

static double sgemm_gflops(int m, int n, int k, int reps) {
    float *a = malloc((size_t)m * k * sizeof(float)), *b = malloc((size_t)k * n * sizeof(float));
    float *c = malloc((size_t)m * n * sizeof(float));
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sdc_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        double t = sdc_now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * m * n * k / best * 1e-9;
}

/* GFLOP/s of the CPU's bf16 products (backend_cpu_bf16.c) on an m x k by
 * k x n product, best of reps after a warm-up; -1 on error */
static double bf16_gflops(int m, int n, int k, int reps) {
    sdc_backend *be = NULL;
    if (sdc_backend_cpu_create(0, &be) != SDC_OK) return -1;
    float *a = malloc((size_t)m * k * sizeof(float)), *b = malloc((size_t)k * n * sizeof(float));
    float *c = malloc((size_t)m * n * sizeof(float));
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = sdc_now();
        if (sdc_cpu_gemm_bf16(be, "bench", m, n, k, a, k, b, k, 0.0f, c, n) != SDC_OK) {
            fprintf(stderr, "bench: %s\n", sdc_last_error());
            best = -1;
            break;
        }
        double t = sdc_now() - t0;
        if (r && t < best) best = t;
    }
    free(a), free(b), free(c);
    sdc_backend_destroy(be);
    return best < 0 ? -1 : 2.0 * m * n * k / best * 1e-9;
}

/* where a step's time went, by kind of op */
static void print_profile(const char *what, const step_result *s) {
    printf("\nwhere %s goes (%.2f s):\n", what, s->seconds);
    double tot = 0;
    for (int k = 0; k < SDC_OP_KINDS; k++) tot += s->prof.seconds[k];
    for (int k = 0; k < SDC_OP_KINDS; k++)
        if (s->prof.calls[k])
            printf("  %-20s %8.2f s %5.1f%%  (%ld calls)\n", sdc_op_kind_name((sdc_op_kind)k), s->prof.seconds[k],
                   100.0 * s->prof.seconds[k] / tot, s->prof.calls[k]);
}

/* one stage of the bf16 table: seconds in bf16, in fp32, sd.cpp's (or -1) */
static void bf16_row(const char *what, double b, double f, double cpp) {
    char x[32], y[32], z[32], r[32] = "-";
    if (cpp > 0) snprintf(r, sizeof r, "%8.2fx", cpp / b);
    printf("%-40s %12s %12s %12s %8.2fx %9s\n", what, secs(x, b), secs(y, f), secs(z, cpp), f / b, r);
}

/* Read the file through once. stable-diffusion.cpp runs after sdc's CLI
 * has read the same file, so its load is timed from the page cache; this
 * gives sdc's load the same start instead of the disk's (a cold first
 * load measured 2.9 s where a warm one takes 0.25 s). */
static void read_through(const char *path) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return; /* sdc_load names the file and the error */
    static char buf[1 << 22];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
}

static double peak_rss_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0 / 1024.0;
}

/* Waits for the backend's queued work (a GPU runs asynchronously): the
 * download of one value returns once everything before it has run. */
static void backend_sync(sdc_backend *be, const float *dev) {
    float v;
    be->ops->download(be, &v, dev, 1);
}

/* median of `reps` U-Net calls (batch 2, CFG) after one warm-up */
int unet_step(sdc_ctx *ctx, int px, int reps, step_result *out) {
    const int lat = px / 8, ctx_dim = sdc_context_dim(ctx), C = ctx->model->config.unet.in_channels;
    const size_t n = (size_t)2 * lat * lat * C;
    float *x, *eps, *cond;
    sdc_backend *be = ctx->be;
    if (be->ops->alloc(be, n, &x) || be->ops->alloc(be, n, &eps) ||
        be->ops->alloc(be, (size_t)2 * 77 * ctx_dim, &cond))
        return 1;
    float *h = calloc(n > (size_t)2 * 77 * ctx_dim ? n : (size_t)2 * 77 * ctx_dim, sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    be->ops->upload(be, x, h, n);
    memset(h, 0, (size_t)2 * 77 * ctx_dim * sizeof(float));
    be->ops->upload(be, cond, h, (size_t)2 * 77 * ctx_dim);
    double times[8];
    int rc = 0;
    for (int r = 0; r <= reps && !rc; r++) {
        sdc_backend_profile_reset();
        double t0 = sdc_now();
        rc = sdc_unet_forward(ctx->unet, x, 2, lat, lat, 500.0, cond, 77, eps) != SDC_OK;
        if (!rc) backend_sync(be, eps);
        if (r > 0) times[r - 1] = sdc_now() - t0;
        if (r == reps) out->prof = *sdc_backend_profile_get();
    }
    for (int i = 0; i < reps; i++) /* median */
        for (int j = i + 1; j < reps; j++)
            if (times[j] < times[i]) {
                double t = times[i];
                times[i] = times[j];
                times[j] = t;
            }
    out->seconds = times[reps / 2];
    out->gflop = ctx->unet->flops * 1e-9;
    out->peak_bytes = 0;
    if (be->ops->memory) be->ops->memory(be, NULL, &out->peak_bytes);
    free(h);
    be->ops->free(be, x), be->ops->free(be, eps), be->ops->free(be, cond);
    return rc;
}

double vae_decode(sdc_ctx *ctx, int px) {
    const int lat = px / 8, zc = ctx->model->config.vae.z_channels;
    sdc_backend *be = ctx->be;
    float *z, *img;
    if (be->ops->alloc(be, (size_t)lat * lat * zc, &z) || be->ops->alloc(be, (size_t)px * px * 3, &img)) return -1;
    float *h = calloc((size_t)lat * lat * zc, sizeof(float));
    be->ops->upload(be, z, h, (size_t)lat * lat * zc);
    double t0 = sdc_now();
    sdc_status st = sdc_vae_decode(ctx->vae, z, lat, lat, img);
    if (st == SDC_OK) backend_sync(be, img);
    double t = sdc_now() - t0;
    free(h);
    be->ops->free(be, z), be->ops->free(be, img);
    return st == SDC_OK ? t : -1;
}

/* Images per second (encode, denoise, decode) of n <= 8 images of px x px,
 * `steps` DDIM steps, CFG 7.5: ips[0] one at a time, ips[1] one batch. */
int images_per_second(sdc_ctx *ctx, int px, int steps, int n, double ips[2]) {
    sdc_gen_params jobs[8];
    sdc_image imgs[8];
    if (n > 8) n = 8;
    for (int i = 0; i < n; i++) {
        jobs[i] = sdc_gen_params_default();
        jobs[i].prompt = "a photograph of an astronaut riding a horse";
        jobs[i].width = jobs[i].height = px;
        jobs[i].steps = steps;
        jobs[i].seed = (unsigned)i;
    }
    for (int mode = 0; mode < 2; mode++) {
        double t0 = sdc_now();
        sdc_status st = SDC_OK;
        int done = 0;
        if (mode == 0)
            for (; done < n && st == SDC_OK; done++) st = sdc_txt2img(ctx, &jobs[done], &imgs[done]);
        else if ((st = sdc_txt2img_batch(ctx, jobs, n, imgs)) == SDC_OK)
            done = n;
        if (st != SDC_OK) return 1;
        ips[mode] = n / (sdc_now() - t0);
        for (int i = 0; i < done; i++) sdc_image_free(&imgs[i]);
    }
    return 0;
}

sdc_ctx *bench_load(const char *model, sdc_backend_kind backend, sdc_precision precision,
                    sdc_precision vae_precision, double *seconds) {
    sdc_params p = sdc_params_default();
    p.model_path = model;
    p.backend = backend;
    p.precision = precision;
    p.vae_precision = vae_precision;
    double t0 = sdc_now();
    sdc_ctx *ctx = NULL;
    if (sdc_load(&p, &ctx) != SDC_OK) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return NULL;
    }
    *seconds = sdc_now() - t0;
    return ctx;
}

int main(int argc, char **argv) {
    const char *model = "build/fixtures-full/full_sd1.safetensors", *sdcpp = NULL;
    int cuda_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cuda-only")) cuda_only = 1;
        else if (!strcmp(argv[i], "--sdcpp") && i + 1 < argc) sdcpp = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: sdc_bench [MODEL] [--cuda-only] [--sdcpp PATH-TO-stable-diffusion.cpp's-sd]\n");
            return 2;
        } else model = argv[i];
    }
    /* the CLI beside this program: build/sdc for build/sdc_bench */
    char sdc_cli[4096];
    snprintf(sdc_cli, sizeof sdc_cli, "%s", argv[0]);
    char *slash = strrchr(sdc_cli, '/');
    if (slash) snprintf(slash + 1, sizeof sdc_cli - (size_t)(slash + 1 - sdc_cli), "sdc");
    else snprintf(sdc_cli, sizeof sdc_cli, "./sdc");
    print_machine();
    setenv("SDC_QUIET", "1", 0);
    char why[256] = "";
    if (sdc_cuda_device_count(why, sizeof why) > 0) {
        if (bench_cuda(model)) return 1;
    } else {
        printf("CUDA benchmark: SKIP: no CUDA device (%s)\n\n", why);
        if (cuda_only) return 1;
    }
    if (cuda_only) return 0;
    printf("sdc CPU benchmark: %s\n\n", model);

    /* the sgemm rate of this machine: a square product and a U-Net-like one */
    double g_sq = sgemm_gflops(2048, 2048, 2048, 3);
    double g_unet = sgemm_gflops(8192, 320, 2880, 3);
    double g_ref = g_sq > g_unet ? g_sq : g_unet;
    printf("OpenBLAS sgemm: %.1f GFLOP/s (2048^3), %.1f GFLOP/s (8192x320x2880); reference rate %.1f\n\n", g_sq,
           g_unet, g_ref);

    double t_load, t0;
    read_through(model);
    sdc_ctx *ctx = bench_load(model, SDC_BACKEND_CPU, SDC_PRECISION_AUTO, SDC_PRECISION_AUTO, &t_load);
    if (!ctx) return 1;
    float *c = malloc((size_t)77 * sdc_context_dim(ctx) * sizeof(float));
    sdc_encode_prompt(ctx, "warm up", c);
    t0 = sdc_now();
    sdc_encode_prompt(ctx, "a photograph of an astronaut riding a horse", c);
    sdc_encode_prompt(ctx, "", c);
    double t_text = sdc_now() - t0;
    free(c);

    sdc_backend_profile_enable(ctx->be);
    step_result s256, s512;
    if (unet_step(ctx, 256, 3, &s256) || unet_step(ctx, 512, 1, &s512)) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    sdc_backend_profile_disable(ctx->be);
    double v256 = vae_decode(ctx, 256), v512 = vae_decode(ctx, 512);
    double rss = peak_rss_gib();

    /* whole runs, one after the other on the same model and machine: sdc
     * txt2img and (with --sdcpp) stable-diffusion.cpp, 512x512, 2 Euler
     * steps with guidance; sd.cpp also at 256x256 for its step there */
    const int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    cli_result cli = {0}, cpp256 = {.load = -1, .sampling = -1, .decode = -1, .rss_gib = -1},
               cpp512 = {.load = -1, .sampling = -1, .decode = -1, .rss_gib = -1};
    if (bench_sdc_cli(sdc_cli, model, 512, 2, threads, &cli)) return 1;
    if (sdcpp && (bench_sdcpp(sdcpp, model, 256, 2, threads, &cpp256) ||
                  bench_sdcpp(sdcpp, model, 512, 2, threads, &cpp512)))
        return 1;
    const double cpp_step256 = cpp256.sampling > 0 ? cpp256.sampling / 2 : -1;
    const double cpp_step512 = cpp512.sampling > 0 ? cpp512.sampling / 2 : -1;

    printf("\n%-40s %12s %12s %9s\n", "stage (SD 1.5 shapes, fp16 file, CPU)", "sdc", "sd.cpp", "speed-up");
    row("load weights (file in page cache)", t_load, cpp512.load, "s");
    printf("%-40s %10.3f s\n", "text encode (2 prompts)", t_text);
    row("U-Net step, CFG, 256x256", s256.seconds, cpp_step256, "s");
    row("U-Net step, CFG, 512x512", s512.seconds, cpp_step512, "s");
    row("VAE decode 256x256", v256, cpp256.decode, "s");
    row("VAE decode 512x512", v512, cpp512.decode, "s");
    row("txt2img 512x512, 2 steps: wall", cli.wall, sdcpp ? cpp512.wall : -1, "s");
    row("txt2img 512x512, 2 steps: peak RSS", cli.rss_gib, sdcpp ? cpp512.rss_gib : -1, "GiB");
    printf("%-40s %8.2f GiB\n", "peak RSS of this benchmark (all of it)", rss);
    if (!sdcpp) printf("(sd.cpp: not measured; --sdcpp PATH runs stable-diffusion.cpp's CLI beside sdc)\n");
    printf("\n%-34s %12s %12s %12s\n", "U-Net step", "GFLOP", "GFLOP/s", "of sgemm");
    const step_result *sr[2] = {&s256, &s512};
    const char *lbl[2] = {"256x256", "512x512"};
    for (int i = 0; i < 2; i++)
        printf("%-34s %12.1f %12.1f %11.0f%%\n", lbl[i], sr[i]->gflop, sr[i]->gflop / sr[i]->seconds,
               100.0 * sr[i]->gflop / sr[i]->seconds / g_ref);
    print_profile("a 512x512 step", &s512);

    /* whole images (encode, denoise, decode) per second: 4 images at
     * 256x256, 2 DDIM steps, CFG 7.5, one at a time vs one batch of 4 */
    double ips[2];
    if (images_per_second(ctx, 256, 2, 4, ips)) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    printf("\nimages per second (256x256, 2 DDIM steps, CFG, decode included):\n");
    printf("  --batch-size 1   %.4f img/s\n  --batch-size 4   %.4f img/s  (%.2fx)\n", ips[0], ips[1],
           ips[1] / ips[0]);
    sdc_free(ctx);

    /* --precision bf16 --vae-precision bf16, beside the fp32 figures above */
    const char *path = sdc_cpu_amx_active() ? "AMX" : "rounded operands, sgemm";
    const double g_bf16 = bf16_gflops(8192, 320, 2880, 3);
    if (g_bf16 < 0) return 1;
    printf("\n--precision bf16 on the CPU (%s): bf16 products %.1f GFLOP/s (8192x320x2880), %.2fx sgemm's\n", path,
           g_bf16, g_bf16 / g_unet);
    double t_load16;
    sdc_ctx *cb = bench_load(model, SDC_BACKEND_CPU, SDC_PRECISION_BF16, SDC_PRECISION_BF16, &t_load16);
    if (!cb) return 1;
    step_result b256, b512;
    sdc_backend_profile_enable(cb->be);
    if (unet_step(cb, 256, 3, &b256) || unet_step(cb, 512, 1, &b512)) {
        fprintf(stderr, "bench: %s\n", sdc_last_error());
        return 1;
    }
    sdc_backend_profile_disable(cb->be);
    const double bv256 = vae_decode(cb, 256), bv512 = vae_decode(cb, 512);
    sdc_free(cb);
    printf("%-40s %12s %12s %12s %9s %9s\n", "stage (bf16)", "sdc bf16", "sdc fp32", "sd.cpp", "vs fp32",
           "vs sd.cpp");
    bf16_row("U-Net step, CFG, 256x256", b256.seconds, s256.seconds, cpp_step256);
    bf16_row("U-Net step, CFG, 512x512", b512.seconds, s512.seconds, cpp_step512);
    bf16_row("VAE decode 256x256", bv256, v256, cpp256.decode);
    bf16_row("VAE decode 512x512", bv512, v512, cpp512.decode);
    print_profile("a 512x512 bf16 step", &b512);
    return 0;
}
