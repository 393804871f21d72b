// backend_cuda.h - the CUDA backend's state and the helpers its files
// share (backend_cuda.cu: memory, transfers, the ops table and most ops;
// backend_cuda_products.cu: the products, linear, attention and
// convolution). Private to the backend.
#ifndef SDC_BACKEND_CUDA_H
#define SDC_BACKEND_CUDA_H

#include <initializer_list>

#include "backend/backend.h"
#include "blas.h"
#include "kernels.h"

// scratch slots: im2col blocks, attention scores, norm statistics, half
// activations, padded outputs, cuDNN's workspace
#define SCRATCH 6
#define CHAN_PAD 8 // convolution channels padded to this in the weights' layout (16 bytes of fp16)
#define STAGES 4 // pinned staging buffers of upload_async, reused in turn

static_assert((int)SDC_DT_F32 == SDC_CU_F32 && (int)SDC_DT_F16 == SDC_CU_F16 && (int)SDC_DT_BF16 == SDC_CU_BF16,
              "kernels.h and common.h number the element types alike");
static_assert((int)SDC_UPDATE_DDIM == SDC_CU_UPDATE_DDIM && (int)SDC_UPDATE_DDPM == SDC_CU_UPDATE_DDPM &&
                  (int)SDC_UPDATE_EULER == SDC_CU_UPDATE_EULER && (int)SDC_UPDATE_DPM1 == SDC_CU_UPDATE_DPM1 &&
                  (int)SDC_UPDATE_DPM2 == SDC_CU_UPDATE_DPM2,
              "kernels.h and backend.h number the sampler updates alike");
static_assert((int)SDC_ACT_GELU == 1 && (int)SDC_ACT_QUICK_GELU == 2 && (int)SDC_ACT_SILU == 3 &&
                  (int)SDC_ACT_RELU == 4 && (int)SDC_ACT_TANH3 == 5,
              "elementwise.cu's activation_kernel numbers the activations as backend.h does");

typedef struct cuda_impl {
    int device;
    cublasHandle_t blas;
    cudaStream_t stream;
    cublasLtHandle_t lt;      // linear layers with their bias in the epilogue
    float *scratch[SCRATCH];  // im2col blocks, attention scores, norm statistics, half x, padded y, cuDNN's
                              // workspace
    size_t cap[SCRATCH];      // floats
    size_t budget;            // floats an im2col block or a block of attention scores may take
    float *stage[STAGES];     // pinned host memory of upload_async
    size_t stage_cap[STAGES]; // floats
    cudaEvent_t stage_done[STAGES];
    bool stage_busy[STAGES];
    int next_stage;
    cublasMath_t math;        // the handle's math mode now
    bool attn_gemm;           // SDC_ATTN=cublas: half attention as two GEMMs around a softmax, not flash_attn.cu
    bool conv_im2col;         // SDC_CONV=im2col: half convolutions by im2col + cuBLAS, not conv_igemm.cu
    int conv_tile;            // SDC_CONV_TILE=64|128: conv_igemm.cu's tile forced (0: its table chooses)
    int sms;                  // the device's multiprocessors (conv_igemm.cu's table)
    void *blas_ws;            // cuBLAS's and cuBLASLt's workspace, reserved up front (graphs may not allocate)
    size_t blas_ws_bytes;
    bool linear_gemm;         // SDC_LINEAR=cublas: half linear layers as GemmEx + a bias kernel, not cuBLASLt
    struct sdc_dnn *dnn;      // SDC_CONV=cudnn / SDC_ATTN=cudnn: cuDNN (dnn.h), the comparison column
    bool dnn_conv, dnn_attn;  // which ops take it
    // half copies of fp32 vectors (linear biases) for cuBLASLt's epilogue,
    // which takes the output's type: made with the weights or at first use,
    // dropped when the fp32 vector is freed
    struct bias_rec { const float *src; void *p; int type, n; } * biases;
    size_t n_biases, cap_biases;
    size_t in_use, peak;      // device bytes through device_alloc / cu_free
    // planned memory: a dry run records what each scratch slot and the
    // upload staging need; scratch_bind then carves the slots from the
    // caller's arena, and `bound` forbids growing them
    bool planning, bound;
    const sdc_backend_ops *ops_before; // the table plan_end puts back (the profiler's, when it wraps ours)
    size_t need[SCRATCH];     // floats
    size_t stage_need;        // floats
    struct alloc_rec { void *p; size_t bytes; } * recs;
    size_t n_recs, cap_recs;
} cuda_impl;

#define CUDA_TRY(call)                                                                                      \
    do {                                                                                                    \
        cudaError_t e_ = (call);                                                                            \
        if (e_ != cudaSuccess)                                                                              \
            return sdc_fail(SDC_ERR_BACKEND, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                    \
                            cudaGetErrorString(e_));                                                        \
    } while (0)
#define KERNEL_TRY(call)                                                                                    \
    do {                                                                                                    \
        int e_ = (call);                                                                                    \
        if (e_)                                                                                             \
            return sdc_fail(SDC_ERR_BACKEND, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                    \
                            cudaGetErrorString((cudaError_t)e_));                                           \
    } while (0)
#define BLAS_TRY(call)                                                                                      \
    do {                                                                                                    \
        cublasStatus_t e_ = (call);                                                                         \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                                    \
            return sdc_fail(SDC_ERR_BACKEND, "%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #call,      \
                            (int)e_);                                                                       \
    } while (0)

static inline cuda_impl *impl(sdc_backend *be) { return (cuda_impl *)be->impl; }

static inline int round_up(int v, int q) { return (v + q - 1) / q * q; }

// backend_cuda.cu
sdc_status device_alloc(sdc_backend *be, size_t bytes, void **out);
void device_free(sdc_backend *be, void *p);
// scratch slot `slot` of at least n floats for op `op` (see the definition)
sdc_status scratch(sdc_backend *be, int slot, size_t n, const char *op, float **out);
void count_up(sdc_backend *be, size_t bytes);
// the activations of one op: every given buffer of one type, *t SDC_CU_*
sdc_status acts(const char *op, std::initializer_list<sdc_buf> bufs, int *t);
sdc_status set_math(cuda_impl *im, cublasMath_t mode);
sdc_status check_weight(const char *op, sdc_weight w);
sdc_status product_types(const char *op, int t, sdc_weight w);

// backend_cuda_products.cu
// forget (and free) the half copies made of fp32 biases in [p, p + bytes)
void drop_bias(sdc_backend *be, const void *p, size_t bytes);
// a half copy (the backend's half weight type) of the fp32 weight vector at
// src, n values, for linear layers' biases; nothing for fp32 weights or n
// past BIAS_COPY_MAX (a table, not a vector)
#define BIAS_COPY_MAX 65536
sdc_status half_copy_of_vector(sdc_backend *be, const float *src, size_t n);
sdc_status cu_linear(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias, int m, int k, int n);
sdc_status cu_attention(sdc_backend *be, sdc_buf out, sdc_buf q, sdc_buf k, sdc_buf v, int batch, int heads, int tq,
                        int tk, int d, int q_stride, int kv_stride, bool causal);
sdc_status cu_conv2d(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias, sdc_buf residual, int n,
                     int h, int wi, int cin, int cout, int k, int stride, int pad);

#endif
