/* bench_ops.c - the per-op table of make bench on a GPU: the ops of one
 * U-Net step and of the VAE at SD 1.5's shapes (512x512, CFG: batch 2),
 * each through sdc's own kernel and through the reference beside it, in
 * one run: convolution (conv_igemm.cu | cuDNN | im2col + cuBLAS),
 * attention (flash_attn.cu | cuDNN's fused attention | two cuBLAS GEMMs
 * around a softmax; sdc too takes the GEMM path for the VAE's 512-wide head), linear
 * layers (cuBLASLt with the bias in its epilogue | GemmEx + a bias
 * kernel), group norm + SiLU (norm.cu). Each path is a backend created
 * with its SDC_CONV / SDC_ATTN / SDC_LINEAR setting; the time is the mean
 * of `reps` calls after a warm-up, waited for on the device. The floor is
 * the op's FLOPs at the GPU's dense fp16 tensor rate or its bytes at the
 * memory bandwidth, whichever is longer (a table of known GPUs, or
 * SDC_PEAK_TFLOPS and SDC_PEAK_GBS); "floor" is the floor's share of the
 * time taken. small: tiny shapes, for checking the table on the emulated
 * device (bench_ops_emu). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda.h"
#include "common.h"

enum { CONV, ATTN, LINEAR, GNORM };

typedef struct op_case {
    const char *what;
    int kind;
    int a[8]; /* CONV: n h w cin cout k stride pad; ATTN: batch heads tq tk d causal; LINEAR: m k n; GNORM: n hw c */
} op_case;

/* the U-Net's and the VAE's ops at 512x512 (latent 64x64), batch 2 */
static const op_case SD15[] = {
    {"conv 3x3 320->320 64x64", CONV, {2, 64, 64, 320, 320, 3, 1, 1}},
    {"conv 3x3 640->640 32x32", CONV, {2, 32, 32, 640, 640, 3, 1, 1}},
    {"conv 3x3 1280->1280 16x16", CONV, {2, 16, 16, 1280, 1280, 3, 1, 1}},
    {"conv 3x3 1280->1280 8x8", CONV, {2, 8, 8, 1280, 1280, 3, 1, 1}},
    {"conv 3x3 s2 320->320 64x64", CONV, {2, 64, 64, 320, 320, 3, 2, 1}},
    {"conv 1x1 320->640 32x32", CONV, {2, 32, 32, 320, 640, 1, 1, 0}},
    {"conv_in 3x3 4->320 64x64", CONV, {2, 64, 64, 4, 320, 3, 1, 1}},
    {"VAE conv 3x3 512->512 64x64", CONV, {1, 64, 64, 512, 512, 3, 1, 1}},
    {"VAE conv 3x3 256->256 256x256", CONV, {1, 256, 256, 256, 256, 3, 1, 1}},
    {"VAE conv 3x3 128->128 512x512", CONV, {1, 512, 512, 128, 128, 3, 1, 1}},
    {"self-attn 4096 tokens, 8 x d40", ATTN, {2, 8, 4096, 4096, 40, 0}},
    {"self-attn 1024 tokens, 8 x d80", ATTN, {2, 8, 1024, 1024, 80, 0}},
    {"self-attn 256 tokens, 8 x d160", ATTN, {2, 8, 256, 256, 160, 0}},
    {"cross-attn 4096 x 77, 8 x d40", ATTN, {2, 8, 4096, 77, 40, 0}},
    {"cross-attn 1024 x 154, 8 x d80", ATTN, {2, 8, 1024, 154, 80, 0}},
    {"text encoder 77, causal, 12 x d64", ATTN, {2, 12, 77, 77, 64, 1}},
    {"VAE attn 4096 tokens, 1 x d512", ATTN, {1, 1, 4096, 4096, 512, 0}},
    {"linear 8192 x 320 -> 320", LINEAR, {8192, 320, 320}},
    {"linear (GEGLU) 8192 x 320 -> 2560", LINEAR, {8192, 320, 2560}},
    {"linear 8192 x 1280 -> 320", LINEAR, {8192, 1280, 320}},
    {"linear 512 x 1280 -> 1280", LINEAR, {512, 1280, 1280}},
    {"group norm + SiLU 320 64x64", GNORM, {2, 4096, 320}},
    {"group norm + SiLU 1280 8x8", GNORM, {2, 64, 1280}},
    {"VAE group norm 128 512x512", GNORM, {1, 262144, 128}},
};

static const op_case SMALL[] = {
    {"conv 3x3 32->32 8x8", CONV, {2, 8, 8, 32, 32, 3, 1, 1}},
    {"conv_in 3x3 4->32 8x8", CONV, {2, 8, 8, 4, 32, 3, 1, 1}},
    {"self-attn 64 tokens, 2 x d40", ATTN, {2, 2, 64, 64, 40, 0}},
    {"VAE attn 16 tokens, 1 x d512", ATTN, {1, 1, 16, 16, 512, 0}},
    {"linear 64 x 32 -> 48", LINEAR, {64, 32, 48}},
    {"group norm + SiLU 64 8x8", GNORM, {2, 64, 64}},
};

/* the paths of each kind: the environment variable and its value (NULL:
 * sdc's default, first) */
typedef struct path {
    const char *label, *var, *value;
} path;
static const path PATHS[4][3] = {
    {{"sdc", NULL, NULL}, {"cuDNN", "SDC_CONV", "cudnn"}, {"cuBLAS", "SDC_CONV", "im2col"}},
    {{"sdc", NULL, NULL}, {"cuDNN", "SDC_ATTN", "cudnn"}, {"cuBLAS", "SDC_ATTN", "cublas"}},
    {{"sdc", NULL, NULL}, {"cuBLAS", "SDC_LINEAR", "cublas"}, {NULL, NULL, NULL}},
    {{"sdc", NULL, NULL}, {NULL, NULL, NULL}, {NULL, NULL, NULL}},
};

/* FLOPs and the bytes an op must move at least (fp16) */
static void op_cost(const op_case *c, double *flop, double *bytes) {
    const int *a = c->a;
    if (c->kind == CONV) {
        const double ho = (a[1] + 2 * a[7] - a[5]) / a[6] + 1, wo = (a[2] + 2 * a[7] - a[5]) / a[6] + 1;
        *flop = 2.0 * a[0] * ho * wo * a[4] * a[5] * a[5] * a[3];
        *bytes = 2.0 * ((double)a[0] * a[1] * a[2] * a[3] + (double)a[0] * ho * wo * a[4] +
                        (double)a[4] * a[5] * a[5] * a[3]);
    } else if (c->kind == ATTN) {
        const double pairs = a[5] ? (double)a[2] * (a[2] + 1) / 2 : (double)a[2] * a[3];
        *flop = 4.0 * a[0] * a[1] * pairs * a[4];
        *bytes = 2.0 * a[0] * a[1] * a[4] * (2.0 * a[2] + 2.0 * a[3]);
    } else if (c->kind == LINEAR) {
        *flop = 2.0 * a[0] * a[1] * a[2];
        *bytes = 2.0 * ((double)a[0] * a[1] + (double)a[1] * a[2] + (double)a[0] * a[2]);
    } else {
        *flop = 0;
        *bytes = 2.0 * 2.0 * a[0] * a[1] * a[2];
    }
}

/* n elements of type t at x from fp32 host values (through an fp32 device
 * copy and the backend's convert) */
static sdc_status fill(sdc_backend *be, void *x, sdc_dtype t, const float *host, size_t n) {
    float *f = NULL;
    SDC_TRY(be->ops->alloc(be, n, &f));
    sdc_status st = be->ops->upload(be, f, host, n);
    if (st == SDC_OK) st = be->ops->convert(be, (sdc_buf){x, t}, SDC_F32(f), n);
    if (st == SDC_OK) st = be->ops->sync(be);
    be->ops->free(be, f);
    return st;
}

/* Seconds of one call of c on a backend made with path p; < 0 with the
 * reason in why (a path that cannot run here: no cuDNN, a shape it does
 * not take). */
static double time_op(const op_case *c, const path *p, int reps, char *why, size_t why_n) {
    if (p->var) setenv(p->var, p->value, 1);
    sdc_backend *be = NULL;
    sdc_status st = sdc_backend_cuda_create(0, &be);
    if (p->var) unsetenv(p->var);
    if (st != SDC_OK) {
        snprintf(why, why_n, "%s", sdc_last_error());
        return -1;
    }
    const sdc_backend_ops *o = be->ops;
    const sdc_dtype t = SDC_DT_F16;
    const int *a = c->a;
    size_t nx = 0, ny = 0, nw = 0, nb = 0;
    if (c->kind == CONV) {
        const size_t ho = (a[1] + 2 * a[7] - a[5]) / a[6] + 1, wo = (a[2] + 2 * a[7] - a[5]) / a[6] + 1;
        nx = (size_t)a[0] * a[1] * a[2] * a[3], ny = (size_t)a[0] * ho * wo * a[4];
        nw = (size_t)a[4] * a[5] * a[5] * a[3], nb = (size_t)a[4];
    } else if (c->kind == ATTN) {
        nx = (size_t)a[0] * a[2] * a[1] * a[4], nw = 2 * (size_t)a[0] * a[3] * a[1] * a[4], ny = nx;
    } else if (c->kind == LINEAR) {
        nx = (size_t)a[0] * a[1], nw = (size_t)a[2] * a[1], ny = (size_t)a[0] * a[2], nb = (size_t)a[2];
    } else {
        nx = ny = (size_t)a[0] * a[1] * a[2], nb = (size_t)a[2];
    }
    /* small values of one sign: no overflow in fp16 whatever the op */
    const size_t nh = nx > nw ? (nx > ny ? nx : ny) : (nw > ny ? nw : ny);
    float *host = malloc(nh * sizeof(float));
    for (size_t i = 0; i < nh; i++) host[i] = 0.01f * (float)(i % 7);
    float *x = NULL, *y = NULL, *b = NULL, *wf = NULL;
    sdc_weight w = {.type = t};
    double sec = -1;
    st = o->alloc(be, sdc_act_floats(t, nx), &x);
    if (st == SDC_OK) st = o->alloc(be, sdc_act_floats(t, ny), &y);
    if (st == SDC_OK && nb) st = o->alloc(be, nb, &b);
    if (st == SDC_OK && nb) st = o->upload(be, b, host, nb);
    if (st == SDC_OK && c->kind == CONV) st = o->load_conv(be, t, host, SDC_DT_F32, a[4], a[5], a[3], &w);
    if (st == SDC_OK && c->kind == LINEAR) st = o->load_tensor(be, t, host, SDC_DT_F32, nw, &w.p);
    if (st == SDC_OK && c->kind == ATTN) st = o->alloc(be, sdc_act_floats(t, nw), &wf);
    if (st == SDC_OK) st = fill(be, x, t, host, nx);
    if (st == SDC_OK && wf) st = fill(be, wf, t, host, nw);
    const sdc_buf X = {x, t}, Y = {y, t};
    const size_t kv = (size_t)a[0] * a[3] * a[1] * a[4];
    const sdc_buf K = {wf, t}, V = {wf ? (char *)wf + kv * 2 : NULL, t};
    double t0 = 0;
    for (int r = -1; st == SDC_OK && r < reps; r++) {
        if (r == 0) {
            st = o->sync(be);
            t0 = sdc_now();
        }
        if (st != SDC_OK) break;
        if (c->kind == CONV)
            st = o->conv2d(be, Y, X, w, b, SDC_NO_BUF, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        else if (c->kind == ATTN)
            st = o->attention(be, Y, X, K, V, a[0], a[1], a[2], a[3], a[4], a[1] * a[4], a[1] * a[4], a[5] != 0);
        else if (c->kind == LINEAR)
            st = o->linear(be, Y, X, w, b, a[0], a[1], a[2]);
        else
            st = o->group_norm(be, Y, X, b, b, a[0], a[1], a[2], 32, 1e-5f, true);
    }
    if (st == SDC_OK) st = o->sync(be);
    if (st == SDC_OK) sec = (sdc_now() - t0) / reps;
    else snprintf(why, why_n, "%s", sdc_last_error());
    free(host);
    o->free(be, x), o->free(be, y), o->free(be, b), o->free(be, wf), o->free(be, w.p);
    sdc_backend_destroy(be);
    return sec;
}

/* dense fp16 tensor TFLOP/s and memory GB/s of known GPUs (SXM parts) */
static void peaks(const char *name, double *tflops, double *gbs) {
    *tflops = 0, *gbs = 0;
    if (strstr(name, "H200")) *tflops = 989.4, *gbs = 4800;
    else if (strstr(name, "H100")) *tflops = 989.4, *gbs = 3350;
    else if (strstr(name, "A100")) *tflops = 312, *gbs = 2039;
    const char *t = getenv("SDC_PEAK_TFLOPS"), *g = getenv("SDC_PEAK_GBS");
    if (t && atof(t) > 0) *tflops = atof(t);
    if (g && atof(g) > 0) *gbs = atof(g);
}

int bench_ops(int small) {
    if (getenv("SDC_CONV") || getenv("SDC_ATTN") || getenv("SDC_LINEAR")) {
        printf("per-op table: skipped (SDC_CONV, SDC_ATTN or SDC_LINEAR set: the paths are forced)\n\n");
        return 0;
    }
    char name[128] = "";
    sdc_cuda_device_name(name, sizeof name);
    double tflops = 0, gbs = 0;
    peaks(name, &tflops, &gbs);
    const op_case *cases = small ? SMALL : SD15;
    const int n = small ? (int)(sizeof SMALL / sizeof *SMALL) : (int)(sizeof SD15 / sizeof *SD15);
    const int reps = small ? 2 : 20;
    printf("per op, fp16, SD 1.5 at 512x512 with CFG (batch 2), %s%s; floor: %.0f TFLOP/s, %.0f GB/s%s\n", name,
           small ? " (small shapes)" : "", tflops, gbs, tflops > 0 ? "" : " (unknown GPU: SDC_PEAK_TFLOPS/_GBS)");
    printf("%-36s %6s %10s %9s %6s   %-28s %-28s\n", "op", "path", "time", "TFLOP/s", "floor", "reference 1",
           "reference 2");
    int failed = 0;
    for (int i = 0; i < n; i++) {
        const op_case *c = &cases[i];
        double flop = 0, bytes = 0;
        op_cost(c, &flop, &bytes);
        const double floor_s = tflops > 0 && gbs > 0 ? (flop / (tflops * 1e12) > bytes / (gbs * 1e9)
                                                            ? flop / (tflops * 1e12)
                                                            : bytes / (gbs * 1e9))
                                                     : 0;
        char why[256] = "", cols[2][64] = {"", ""};
        const double ours = time_op(c, &PATHS[c->kind][0], reps, why, sizeof why);
        if (ours < 0) {
            printf("%-36s %6s  failed: %s\n", c->what, "sdc", why);
            failed = 1;
            continue;
        }
        for (int p = 1; p < 3; p++) {
            const path *pp = &PATHS[c->kind][p];
            if (!pp->label) continue;
            if (c->kind == CONV && p == 1 && c->a[3] % 8) { /* cuDNN takes x's channels as the weights have them */
                snprintf(cols[0], sizeof cols[0], "cuDNN: n/a (cin %% 8)");
                continue;
            }
            if (c->kind == ATTN && p == 1 && c->a[4] > 256) { /* past cuDNN's fused attention (the GEMM path) */
                snprintf(cols[0], sizeof cols[0], "cuDNN: n/a (d > 256)");
                continue;
            }
            char why2[256] = "";
            const double s = time_op(c, pp, reps, why2, sizeof why2);
            if (s < 0) snprintf(cols[p - 1], sizeof cols[0], "%s: n/a", pp->label);
            else snprintf(cols[p - 1], sizeof cols[0], "%s %.3f ms (%.2fx)", pp->label, s * 1e3, s / ours);
            if (s < 0) fprintf(stderr, "bench: %s, %s: %s\n", c->what, pp->label, why2);
        }
        char rate[16] = "";
        if (flop > 0) snprintf(rate, sizeof rate, "%.1f", flop / ours * 1e-12);
        else snprintf(rate, sizeof rate, "%.0fGB/s", bytes / ours * 1e-9);
        char share[16] = "";
        if (floor_s > 0) snprintf(share, sizeof share, "%.0f%%", 100.0 * floor_s / ours);
        printf("%-36s %6s %7.3f ms %9s %6s   %-28s %-28s\n", c->what, "sdc", ours * 1e3, rate, share, cols[0],
               cols[1]);
    }
    printf("(reference: its time and its time over sdc's; > 1x: sdc is faster)\n\n");
    return failed;
}

#ifdef BENCH_OPS_MAIN
/* bench_ops_emu: the table at small shapes on the emulated device, to
 * check it runs (its times are the emulator's, not a GPU's) */
int main(void) {
    setenv("SDC_CUDA_EMU", "1", 0);
    setenv("SDC_QUIET", "1", 0);
    return bench_ops(1);
}
#endif
