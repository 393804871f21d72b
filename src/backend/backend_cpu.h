/* backend_cpu.h - the CPU backend's ops, split over backend_cpu*.c. They
 * take F32 activations only (sdc_cpu_f32); convert and copy move F16 and
 * BF16 buffers too. */
#ifndef SDC_BACKEND_CPU_H
#define SDC_BACKEND_CPU_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu_isa.h"

/* exp for softmax and activations: Cody-Waite range reduction and Cephes'
 * degree-6 polynomial, ~1 ulp, written so the compiler vectorises loops of
 * it (libm's expf is a call per element). */
static inline float sdc_fast_expf(float x) {
    /* exp(NaN) is NaN; the integer part below must stay defined for it (a
     * NaN converted to int and shifted is undefined behaviour), so NaN is
     * computed as 0 and put back at the end: selects, no branch */
    const float x0 = x;
    const bool nan = x != x;
    x = nan ? 0.0f : x;
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* rintf(x log2 e) as the add and subtract of 1.5 2^23: the same value
     * for the |n| <= 128 the clamp leaves (round to nearest even), and
     * vectorised without SSE4.1's roundps (a build with no -march) */
    float n = x * 1.44269504088896341f;
    n = (n + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return nan ? x0 : y * scale;
}

/* The CPU backend's state: scratch slots reused across op calls (im2col
 * blocks, padded inputs, attention scores, statistics), grown on demand or
 * carved from a plan's arena, and the dry run's bookkeeping (backend.h,
 * planned memory). */
#define SDC_CPU_SCRATCH_SLOTS 6
#define SDC_CPU_SLOT_PANEL 4 /* a half weight's rows widened to fp32 (backend_cpu_widen.c) */
#define SDC_CPU_SLOT_BF16 5  /* a bf16 product's operands (backend_cpu_bf16.c) */
typedef struct sdc_cpu_impl {
    float *buf[SDC_CPU_SCRATCH_SLOTS];
    size_t cap[SDC_CPU_SCRATCH_SLOTS];      /* floats */
    bool planning, bound;
    size_t need[SDC_CPU_SCRATCH_SLOTS];     /* floats, as the dry run found them */
    sdc_backend_ops plan_ops;               /* the dry run's table */
    int winograd;                           /* stride-1 3x3 convolutions: Winograd's F(m x m, 3x3)
                                             * with m = 4 (the default) or 2, or 0: 9 shifted sgemms
                                             * (SDC_CPU_WINOGRAD=4, 2 or 0: measuring, bisecting) */
    size_t wino4_tiles;                     /* F(4x4) from this many 4x4 tiles on (1024): below it
                                             * F(2x2), whose products have 4x the rows and whose
                                             * weight transform is cheaper; tests force either */
    const sdc_backend_ops *ops_before;      /* the table plan_end puts back */
} sdc_cpu_impl;

/* Scratch slot `slot` of at least n floats for op `op`. In a dry run the
 * need is recorded and *out is NULL: the op returns before computing
 * (sdc_cpu_planning). Bound to a plan, a slot never grows (more than
 * planned is an error naming op); otherwise it grows on demand. */
sdc_status sdc_cpu_scratch(sdc_backend *be, int slot, size_t n, const char *op, float **out);
static inline bool sdc_cpu_planning(const sdc_backend *be) { return ((const sdc_cpu_impl *)be->impl)->planning; }

/* the CPU backend's ops table (not the profiler's wrapper around it) */
const sdc_backend_ops *sdc_cpu_ops(void);
/* backend_cpu_plan.c: the dry run and scratch binding of backend.h */
sdc_status sdc_cpu_plan_begin(sdc_backend *be);
sdc_status sdc_cpu_plan_end(sdc_backend *be, size_t *scratch_bytes);
sdc_status sdc_cpu_scratch_bind(sdc_backend *be, void *p, size_t bytes);
/* backend_cpu_memory.c: the host memory available (the ops' `available`),
 * and its parsers: /proc/meminfo's text, a cgroup's limit and usage files
 * ("max" or a count) */
bool sdc_cpu_available(sdc_backend *be, size_t *bytes);
bool sdc_meminfo_available(const char *text, size_t *bytes);
bool sdc_cgroup_room(const char *limit, const char *usage, size_t *bytes);
/* the aligned allocation every CPU buffer comes from (backend_cpu.c) */
void *sdc_cpu_aligned(size_t bytes);

/* backend_cpu_widen.c: half weights in the products. n elements of t
 * (F32, F16, BF16) at src to fp32 at dst, exactly; */
void sdc_cpu_widen(float *dst, const void *src, sdc_dtype t, size_t n);
/* rows [row0, row0 + rows) of w, each row_len elements, widened into panel
 * (rows x row_len fp32), on all threads; */
/* Row r (row_len elements) of w widened to fp32 into dst, a kernel in
 * PyTorch's layout (pt_taps > 1) turned to the CPU's (taps, cin) order. */
void sdc_cpu_widen_row(float *dst, sdc_weight w, size_t r, size_t row_len);
void sdc_cpu_widen_rows(float *panel, sdc_weight w, size_t row0, int rows, size_t row_len);
/* how many of `rows` rows of row_len elements one panel takes; */
int sdc_cpu_panel_rows(int rows, size_t row_len);
/* y[m, n] (row stride ldy) = x[m, k] (row stride ldx) . w[n, k]^T + beta y,
 * w dense of any weight type: sgemm on w itself (F32) or on widened
 * panels of it (scratch slot SDC_CPU_SLOT_PANEL; a dry run records it). */
sdc_status sdc_cpu_gemm_nt(sdc_backend *be, const char *op, int m, int n, int k, const float *x, int ldx,
                           sdc_weight w, float beta, float *y, int ldy);

/* backend_cpu_bf16.c: y[m, n] = x[m, k] . w[n, k]^T + beta y (row strides
 * ldx, ldw, ldy) from x and w rounded to bf16, fp32 sums: AMX's tiles where
 * the processor has them, else sgemm on the rounded operands (scratch slot
 * SDC_CPU_SLOT_BF16; a dry run records it). The products of weights
 * loaded with bf16 set. */
sdc_status sdc_cpu_gemm_bf16(sdc_backend *be, const char *op, int m, int n, int k, const float *x, int ldx,
                             const float *w, int ldw, float beta, float *y, int ldy);
/* rows [16 jb, 16 jb + 16) of w (n x k, row stride ldw; zeros past n and
 * k) as TDPBF16PS's second operand: (kp/2, 16, 2) bf16 at dst, kp a
 * multiple of 32 */
void sdc_cpu_pack_bf16_cols(uint16_t *dst, const float *w, int ldw, int n, int k, int kp, int jb);
/* AMX on x86-64 Linux: sdc_cpu_amx_begin loads the tile configuration
 * both bf16 kernels use (tiles 0-7, 16 rows of 64 bytes) on the calling
 * thread, sdc_cpu_amx_end releases it */
#if SDC_CPU_AMX
void sdc_cpu_amx_begin(void);
void sdc_cpu_amx_end(void);
#endif

/* The CPU backend computes in F32 only: SDC_OK when each of the n buffers
 * is F32 (a NULL p, an optional buffer left out, is skipped), else
 * SDC_ERR_ARG naming op and the type it was given. Every op taking sdc_buf
 * activations checks them so before it computes (backend_cpu.c). */
sdc_status sdc_cpu_f32(const char *op, int n, const sdc_buf *bufs);

sdc_status sdc_cpu_attention(sdc_backend *be, sdc_buf out, sdc_buf q, sdc_buf k, sdc_buf v, int batch,
                             int heads, int tq, int tk, int head_dim, int q_stride, int kv_stride, bool causal);
sdc_status sdc_cpu_conv2d(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias,
                          sdc_buf residual, int n, int h, int w_in, int cin, int cout, int k, int stride,
                          int pad);
/* backend_cpu_flash.c: attention over many keys, flash style (fp32 in and
 * out, the arguments as the attention op's); which calls it takes */
bool sdc_cpu_flash_takes(int tk, int head_dim, bool causal);
sdc_status sdc_cpu_flash_attention(sdc_backend *be, float *out, const float *q, const float *k, const float *v,
                                   int batch, int heads, int tq, int tk, int d, int q_stride, int kv_stride);
/* the same with AMX's tiles (be->attention_bf16, where sdc_cpu_amx_active):
 * Q K^T from q and k rounded to bf16, P V from P and v rounded to bf16,
 * fp32 sums and softmax */
sdc_status sdc_cpu_flash_attention_amx(sdc_backend *be, float *out, const float *q, const float *k, const float *v,
                                       int batch, int heads, int tq, int tk, int d, int q_stride, int kv_stride);
/* backend_cpu_winograd.c: a stride-1, padding-1 3x3 convolution by
 * Winograd's F(tile x tile, 3x3), tile 2 or 4; y = conv(x) + bias (+
 * residual), NHWC */
sdc_status sdc_cpu_conv3x3_winograd(sdc_backend *be, float *y, const float *x, sdc_weight w, const float *bias,
                                    const float *residual, int n, int h, int wi, int cin, int cout, int tile);
sdc_status sdc_cpu_group_norm(sdc_backend *be, sdc_buf y, sdc_buf x, const float *gamma, const float *beta,
                              int n, int hw, int c, int groups, float eps, bool silu);
sdc_status sdc_cpu_upsample_nearest(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int ho,
                                    int wo);
sdc_status sdc_cpu_pad(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int top, int bottom,
                       int left, int right);
sdc_status sdc_cpu_concat_channels(sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t rows, int ca,
                                   int cb);
sdc_status sdc_cpu_geglu(sdc_backend *be, sdc_buf y, sdc_buf x, int m, int f);
sdc_status sdc_cpu_add_rows(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_buf v, int n, size_t rows, int c);
sdc_status sdc_cpu_timestep_embedding(sdc_backend *be, sdc_buf y, int rows, int dim, double t);
/* the denoising loop's ops: fp32 latents (float *) */
sdc_status sdc_cpu_scale(sdc_backend *be, float *y, const float *x, float a, bool div, size_t n);
sdc_status sdc_cpu_axpy(sdc_backend *be, float *y, float a, const float *x, size_t n);
sdc_status sdc_cpu_guidance(sdc_backend *be, float *y, const float *u, const float *c, float g, size_t n);
sdc_status sdc_cpu_latent_update(sdc_backend *be, const sdc_latent_update *u, float *x, const float *mo,
                                 float *x0_out, const float *x0_prev, size_t n);

#endif
