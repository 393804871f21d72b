// attention.cu - the row softmax between the two batched GEMMs of the CUDA
// attention (scores = Q K^T and out = P V run in cuBLAS): one block per
// score row, max then sum of exp(scale * (s - max)), then normalise. Scores
// and statistics are fp32; the probabilities go back over the scores (fp32
// activations) or, rounded once, to a separate buffer in the half type of
// v for the second product.
#include <math.h>

#include "kernels.h"

#define SM_BLOCK 256

template <typename TP>
__global__ void softmax_rows_kernel(float *s, TP *p, int rows, int cols, int ld, size_t batch_stride, float scale,
                                    int causal, int row0) {
    __shared__ float sh[SM_BLOCK];
    const int r = blockIdx.x % rows, b = blockIdx.x / rows;
    float *row = s + (size_t)b * batch_stride + (size_t)r * ld;
    const int n = causal ? min(row0 + r + 1, cols) : cols;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, row[j]);
    sh[threadIdx.x] = mx;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + k]);
        __syncthreads();
    }
    mx = sh[0];
    __syncthreads();
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = expf((row[j] - mx) * scale);
        row[j] = e;
        sum += e;
    }
    sh[threadIdx.x] = sum;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    const float inv = 1.0f / sh[0];
    TP *out = p ? p + (size_t)b * batch_stride + (size_t)r * ld : (TP *)row;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) out[j] = sdc_from_float<TP>(j < n ? row[j] * inv : 0.0f);
}

extern "C" int sdc_softmax_rows_typed_cuda(float *s, void *p, int p_type, int rows, int cols, int ld, int batch,
                                           size_t batch_stride, float scale, int causal, int row0, cudaStream_t st) {
    if (rows <= 0 || batch <= 0) return 0;
    if (!p && p_type != SDC_CU_F32) return (int)cudaErrorInvalidValue; // in place is fp32 only
    SDC_TYPED(p_type, (int)SDC_LAUNCH(softmax_rows_kernel<T>, rows * batch, SM_BLOCK, 0, st, s, (T *)p, rows, cols,
                                      ld, batch_stride, scale, causal, row0));
}

extern "C" int sdc_softmax_rows_cuda(float *s, int rows, int cols, int ld, int batch, size_t batch_stride,
                                     float scale, int causal, int row0, cudaStream_t st) {
    return sdc_softmax_rows_typed_cuda(s, NULL, SDC_CU_F32, rows, cols, ld, batch, batch_stride, scale, causal, row0,
                                       st);
}
