// kernels.h - launchers of sdc's CUDA kernels (NHWC), one family per
// .cu file: <op>_kernel on the device, <op>_cuda(..., stream) launching it.
// Each returns 0 or the cudaError_t of the launch. Includable from C (the
// tests call launchers directly on device buffers).
#ifndef SDC_KERNELS_H
#define SDC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#include "port.h"
// SDC_TYPED(t, expr): return expr evaluated with T the C++ type of the
// element type t (SDC_CU_*); an unknown t is cudaErrorInvalidValue.
#define SDC_TYPED(t, ...)                                                                                         \
    do {                                                                                                          \
        switch (t) {                                                                                              \
        case 1: { typedef float T; return __VA_ARGS__; }                                                          \
        case 2: { typedef __half T; return __VA_ARGS__; }                                                         \
        case 3: { typedef __nv_bfloat16 T; return __VA_ARGS__; }                                                  \
        }                                                                                                         \
        return (int)cudaErrorInvalidValue;                                                                        \
    } while (0)
#else
typedef struct CUstream_st *cudaStream_t; // C callers (tests) pass NULL or a stream they got from C++
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SDC_CEIL_DIV_CU(a, b) (((a) + (b) - 1) / (b))

// Element types of typed buffers: the values of sdc_dtype (common.h).
enum { SDC_CU_F32 = 1, SDC_CU_F16 = 2, SDC_CU_BF16 = 3 };

// elementwise.cu: activations y, x, a, b, v, residual of element type t
// (SDC_CU_*), every value computed in fp32 and rounded once to t; bias,
// vectors fp32
int sdc_activation_cuda(void *y, const void *x, int t, size_t n, int act, cudaStream_t s); // act: sdc_act
int sdc_add_cuda(void *y, const void *a, const void *b, int t, size_t n, cudaStream_t s);
int sdc_geglu_cuda(void *y, const void *x, int t, int m, int f, cudaStream_t s);
int sdc_add_rows_cuda(void *y, const void *x, const void *v, int t, int n, size_t rows, int c, cudaStream_t s);
int sdc_concat_channels_cuda(void *y, const void *a, const void *b, int t, size_t rows, int ca, int cb,
                             cudaStream_t s);
int sdc_pad_cuda(void *y, const void *x, int t, int n, int h, int w, int c, int top, int bottom, int left, int right,
                 cudaStream_t s);
int sdc_upsample_nearest_cuda(void *y, const void *x, int t, int n, int h, int w, int c, int ho, int wo,
                              cudaStream_t s);
int sdc_bias_rows_cuda(void *y, int t, const float *bias, size_t rows, int c, cudaStream_t s); // y[r, :] = bias
// y[r, :] += bias (may be NULL) + residual[r, :] (may be NULL)
int sdc_bias_residual_cuda(void *y, int t, const float *bias, const void *residual, size_t rows, int c,
                           cudaStream_t s);

// norm.cu: x and y of element type t, statistics in double, gamma/beta fp32
int sdc_layer_norm_cuda(void *y, const void *x, int t, const float *gamma, const float *beta, int m, int n, float eps,
                        cudaStream_t s);
// scratch: sdc_group_norm_scratch_floats(n, hw, groups) floats of device
// memory (the statistics and the split reduction's partials)
int sdc_group_norm_cuda(void *y, const void *x, int t, const float *gamma, const float *beta, int n, int hw, int c,
                        int groups, float eps, int silu, float *scratch, cudaStream_t s);
size_t sdc_group_norm_scratch_floats(int n, int hw, int groups);

// convert.cu: dst[i] = (dst_type) src[i], any of the three types each way
int sdc_convert_cuda(void *dst, int dst_type, const void *src, int src_type, size_t n, cudaStream_t s);
// the same on rows: dst[r * ld_dst + c] = src[r * ld_src + c] for c < cols
// (other columns of dst untouched): padding rows out, or taking them in
int sdc_convert_rows_cuda(void *dst, int dst_type, size_t ld_dst, const void *src, int src_type, size_t ld_src,
                          size_t rows, size_t cols, cudaStream_t s);

// conv.cu: col[r, (ky, kx, ci)] for output rows r0 .. r0 + rows - 1, in
// col_type (SDC_CU_*) from x in x_type, ci < cin_p (>= cin: the padded
// weight layout's channels, zero past cin); sdc_im2col_cuda: fp32, unpadded
int sdc_im2col_typed_cuda(void *col, int col_type, const void *x, int x_type, int n, int h, int w, int cin, int cin_p,
                          int k, int stride, int pad, int ho, int wo, size_t r0, size_t rows, cudaStream_t s);
int sdc_im2col_cuda(float *col, const float *x, int n, int h, int w, int cin, int k, int stride, int pad, int ho,
                    int wo, size_t r0, size_t rows, cudaStream_t s);

// conv_igemm.cu: convolution as an implicit GEMM on tensor cores, x (n, h,
// w, cin) and y (n, ho, wo, cout) NHWC in t (SDC_CU_F16 or SDC_CU_BF16), w
// the padded layout (cout_p, k, k, cin_p) in t, bias fp32 (may be NULL),
// residual like y (may be NULL); y = (x * w + bias + residual) * scale,
// fp32 accumulation, rounded once. Supported: cin_p and cout_p multiples of
// 8, w 16-byte aligned, x too where cin is a multiple of 8 (any other cin
// loads x by element) (sdc_conv_igemm_supported); otherwise
// cudaErrorInvalidValue. tile: 0
// chooses from the table by the problem's size and sms (the device's
// multiprocessors, 0 if not known); 128 or 64 forces that tile.
int sdc_conv_igemm_supported(int t, int cin, int cin_p, int cout_p, const void *x, const void *w);
int sdc_conv_igemm_cuda(void *y, const void *x, const void *w, const float *bias, const void *residual, int t, int n,
                        int h, int wi, int cin, int cin_p, int cout, int cout_p, int k, int stride, int pad,
                        float scale, int tile, int sms, cudaStream_t s);

// fragment_check.cu: one warp, d = a b + c by the wrapped mma.sync.m16n8k16
// (bf16 or f16 inputs), operands loaded per mode 0..3 (see the file); a is
// 16x16 row-major b16, b 16x8 row-major (k, n) b16, c and d 16x8 f32
int sdc_fragment_check_cuda(float *d, const uint16_t *a, const uint16_t *b, const float *c, int mode, int bf16,
                            cudaStream_t s);

// attention.cu: softmax over rows of s (rows, cols), scale folded into the
// exponent; causal: row r (global query row0 + r) sees columns 0..row0+r.
int sdc_softmax_rows_cuda(float *s, int rows, int cols, int ld, int batch, size_t batch_stride, float scale,
                          int causal, int row0, cudaStream_t st);
// the same with the probabilities written to p (same layout as s) in p_type
// (SDC_CU_*), s left holding the exponentials; p NULL: in place, fp32 only
int sdc_softmax_rows_typed_cuda(float *s, void *p, int p_type, int rows, int cols, int ld, int batch,
                                size_t batch_stride, float scale, int causal, int row0, cudaStream_t st);

// flash_attn.cu: fused attention on tensor cores (FlashAttention-2's
// scheme), q, k, v and out of type t (SDC_CU_F16 or SDC_CU_BF16), the
// layout of the backend's attention op: q rows q_stride elements apart,
// head h at columns [h d, (h + 1) d), k and v rows kv_stride apart, out
// dense (batch, tq, heads d); scale multiplies the scores; causal: query i
// sees keys j <= i. Scores, the softmax's running max and sum in fp32, P
// rounded to t for P V. Supported: head dims up to SDC_FLASH_MAX_D,
// multiples of 8, strides multiples of 8 and 16-byte aligned pointers
// (sdc_flash_attention_supported); anything else is cudaErrorInvalidValue.
#define SDC_FLASH_MAX_D 160
int sdc_flash_attention_supported(int t, int d, int q_stride, int kv_stride, const void *q, const void *k,
                                  const void *v);
int sdc_flash_attention_cuda(void *out, const void *q, const void *k, const void *v, int t, int batch, int heads,
                             int tq, int tk, int d, int q_stride, int kv_stride, int causal, float scale,
                             cudaStream_t s);

// latent.cu: the denoising loop (backend.h documents each op)
enum { SDC_CU_UPDATE_DDIM = 0, SDC_CU_UPDATE_DDPM, SDC_CU_UPDATE_EULER, SDC_CU_UPDATE_DPM1, SDC_CU_UPDATE_DPM2 };
int sdc_timestep_embedding_cuda(void *y, int t_type, int rows, int dim, float t, cudaStream_t s); // y: t_type
int sdc_scale_cuda(float *y, const float *x, float a, int div, size_t n, cudaStream_t s); // x * a or x / a
int sdc_axpy_cuda(float *y, float a, const float *x, size_t n, cudaStream_t s);          // y += a x
int sdc_guidance_cuda(float *y, const float *u, const float *c, float g, size_t n, cudaStream_t s);
// kind: SDC_CU_UPDATE_*, c: 6 coefficients (host memory)
int sdc_latent_update_cuda(int kind, int v, const float *c, float *x, const float *mo, float *x0_out,
                           const float *x0_prev, size_t n, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
