// convert.cu - element type conversions on the device: weights arriving in
// the file's type become the type the backend keeps (load_tensor), and
// fp32 activations become the half type of the weights they meet in a
// product. fp32 -> fp16/bf16 rounds to nearest even, as the host's
// sdc_f32_to_f16 / sdc_f32_to_bf16 do.
#include "kernels.h"

#define BLOCK 256

template <typename S, typename D> __global__ void convert_kernel(D *dst, const S *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = sdc_from_float<D>(sdc_to_float(src[i]));
}

template <typename S> static int convert_from(void *dst, int dst_type, const S *src, size_t n, cudaStream_t s) {
    size_t g = SDC_CEIL_DIV_CU(n, (size_t)BLOCK);
    const unsigned grid = (unsigned)(g > 65535u * 32u ? 65535u * 32u : g);
    switch (dst_type) {
    case SDC_CU_F32: return (int)SDC_LAUNCH((convert_kernel<S, float>), grid, BLOCK, 0, s, (float *)dst, src, n);
    case SDC_CU_F16: return (int)SDC_LAUNCH((convert_kernel<S, __half>), grid, BLOCK, 0, s, (__half *)dst, src, n);
    case SDC_CU_BF16:
        return (int)SDC_LAUNCH((convert_kernel<S, __nv_bfloat16>), grid, BLOCK, 0, s, (__nv_bfloat16 *)dst, src, n);
    }
    return (int)cudaErrorInvalidValue;
}

extern "C" int sdc_convert_cuda(void *dst, int dst_type, const void *src, int src_type, size_t n, cudaStream_t s) {
    if (!n) return 0;
    switch (src_type) {
    case SDC_CU_F32: return convert_from(dst, dst_type, (const float *)src, n, s);
    case SDC_CU_F16: return convert_from(dst, dst_type, (const __half *)src, n, s);
    case SDC_CU_BF16: return convert_from(dst, dst_type, (const __nv_bfloat16 *)src, n, s);
    }
    return (int)cudaErrorInvalidValue;
}
