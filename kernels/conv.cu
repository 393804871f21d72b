// conv.cu - im2col for the CUDA convolution: rows are output pixels, columns
// (ky, kx, cin), matching the (cout, k, k, cin) weight layout (cin padded
// with zero columns where the weights' layout pads it), so the
// convolution is one GEMM per block of rows (cuBLAS, in backend_cuda.cu).
// x is read in its own element type and the columns are written in the
// weights' (fp32, fp16 or bf16), so a half-precision product reads
// half-precision columns straight away.
#include "kernels.h"

template <typename TX, typename TC>
__global__ void im2col_kernel(TC *col, const TX *x, int h, int w, int cin, int cin_p, int k, int stride, int pad,
                              int ho, int wo, size_t r0, size_t rows) {
    const size_t kk = (size_t)k * k * cin_p, total = rows * kk;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / kk, e = i % kk;
        const int ci = (int)(e % cin_p), t = (int)(e / cin_p), ky = t / k, kx = t % k;
        const size_t pix = r0 + r;
        const int b = (int)(pix / ((size_t)ho * wo)), rem = (int)(pix % ((size_t)ho * wo));
        const int oy = rem / wo, ox = rem % wo;
        const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        const float v = (ci < cin && iy >= 0 && iy < h && ix >= 0 && ix < w)
                            ? sdc_to_float(x[(((size_t)b * h + iy) * w + ix) * cin + ci])
                            : 0.0f;
        col[i] = sdc_from_float<TC>(v);
    }
}

template <typename TX>
static int im2col_from(void *col, int col_type, const TX *x, int h, int w, int cin, int cin_p, int k, int stride,
                       int pad, int ho, int wo, size_t r0, size_t rows, cudaStream_t s) {
    size_t grid = SDC_CEIL_DIV_CU(rows * (size_t)k * k * cin_p, (size_t)256);
    if (grid > 65535u * 32u) grid = 65535u * 32u;
    SDC_TYPED(col_type, (int)SDC_LAUNCH((im2col_kernel<TX, T>), (unsigned)grid, 256, 0, s, (T *)col, x, h, w, cin,
                                        cin_p, k, stride, pad, ho, wo, r0, rows));
}

extern "C" int sdc_im2col_typed_cuda(void *col, int col_type, const void *x, int x_type, int n, int h, int w, int cin,
                                     int cin_p, int k, int stride, int pad, int ho, int wo, size_t r0, size_t rows,
                                     cudaStream_t s) {
    (void)n;
    if (cin_p < cin) return (int)cudaErrorInvalidValue;
    if (!rows) return 0;
    SDC_TYPED(x_type, im2col_from(col, col_type, (const T *)x, h, w, cin, cin_p, k, stride, pad, ho, wo, r0, rows, s));
}

extern "C" int sdc_im2col_cuda(float *col, const float *x, int n, int h, int w, int cin, int k, int stride, int pad,
                               int ho, int wo, size_t r0, size_t rows, cudaStream_t s) {
    return sdc_im2col_typed_cuda(col, SDC_CU_F32, x, SDC_CU_F32, n, h, w, cin, cin, k, stride, pad, ho, wo, r0, rows,
                                 s);
}
