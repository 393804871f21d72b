// convert.cu - element type conversions on the device: weights arriving in
// the file's type become the type the backend keeps (load_tensor), and
// fp32 activations become the half type of the weights they meet in a
// product. fp32 -> fp16/bf16 rounds to nearest even, as the host's
// sdc_f32_to_f16 / sdc_f32_to_bf16 do.
#include "kernels.h"

#define BLOCK 256

// rows x cols elements, each row at its own stride on either side (a dense
// conversion is one row)
template <typename S, typename D>
__global__ void convert_kernel(D *dst, size_t ld_dst, const S *src, size_t ld_src, size_t rows, size_t cols) {
    const size_t n = rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / cols, c = i % cols;
        dst[r * ld_dst + c] = sdc_from_float<D>(sdc_to_float(src[r * ld_src + c]));
    }
}

template <typename S>
static int convert_from(void *dst, int dst_type, size_t ld_dst, const S *src, size_t ld_src, size_t rows,
                        size_t cols, cudaStream_t s) {
    size_t g = SDC_CEIL_DIV_CU(rows * cols, (size_t)BLOCK);
    const unsigned grid = (unsigned)(g > 65535u * 32u ? 65535u * 32u : g);
    switch (dst_type) {
    case SDC_CU_F32:
        return (int)SDC_LAUNCH((convert_kernel<S, float>), grid, BLOCK, 0, s, (float *)dst, ld_dst, src, ld_src, rows,
                               cols);
    case SDC_CU_F16:
        return (int)SDC_LAUNCH((convert_kernel<S, __half>), grid, BLOCK, 0, s, (__half *)dst, ld_dst, src, ld_src,
                               rows, cols);
    case SDC_CU_BF16:
        return (int)SDC_LAUNCH((convert_kernel<S, __nv_bfloat16>), grid, BLOCK, 0, s, (__nv_bfloat16 *)dst, ld_dst,
                               src, ld_src, rows, cols);
    }
    return (int)cudaErrorInvalidValue;
}

extern "C" int sdc_convert_rows_cuda(void *dst, int dst_type, size_t ld_dst, const void *src, int src_type,
                                     size_t ld_src, size_t rows, size_t cols, cudaStream_t s) {
    if (!rows || !cols) return 0;
    if (ld_dst < cols || ld_src < cols) return (int)cudaErrorInvalidValue;
    switch (src_type) {
    case SDC_CU_F32: return convert_from(dst, dst_type, ld_dst, (const float *)src, ld_src, rows, cols, s);
    case SDC_CU_F16: return convert_from(dst, dst_type, ld_dst, (const __half *)src, ld_src, rows, cols, s);
    case SDC_CU_BF16: return convert_from(dst, dst_type, ld_dst, (const __nv_bfloat16 *)src, ld_src, rows, cols, s);
    }
    return (int)cudaErrorInvalidValue;
}

extern "C" int sdc_convert_cuda(void *dst, int dst_type, const void *src, int src_type, size_t n, cudaStream_t s) {
    return sdc_convert_rows_cuda(dst, dst_type, n, src, src_type, n, 1, n, s);
}
