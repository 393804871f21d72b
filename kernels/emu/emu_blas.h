// emu_blas.h - the cuBLAS calls sdc makes, for the host execution
// (kernels/emu/blas.cc): column-major products as cuBLAS defines them, on
// device (host) memory that must lie inside live device allocations.
#ifndef SDC_EMU_BLAS_H
#define SDC_EMU_BLAS_H

#include <vector>

#include "emu/emu_runtime.h"

struct cublasContext;
typedef cublasContext *cublasHandle_t;

enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum cublasMath_t {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
};

enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
typedef cudaDataType_t cudaDataType;
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
// The workspace is checked to lie in device memory; the products here need none.
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *a, int lda, const float *b, int ldb, const float *beta,
                           float *c, int ldc);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *a, int lda, long long sa,
                                         const float *b, int ldb, long long sb, const float *beta, float *c,
                                         int ldc, long long sc, int batch);
// Mixed-type product as cuBLAS computes it with CUBLAS_COMPUTE_32F: A and B
// of one type (fp32, fp16 or bf16) widened to fp32 exactly, fp32
// accumulation, C in fp32 or in A's type (alpha AB + beta C rounded once;
// C read only when beta is not 0). The combinations sdc uses; others are
// CUBLAS_STATUS_NOT_SUPPORTED.
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *a, cudaDataType_t at, int lda, const void *b,
                            cudaDataType_t bt, int ldb, const void *beta, void *c, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo);
// The same over `batch` products, each matrix `s*` elements after the last.
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *a, cudaDataType_t at, int lda,
                                          long long sa, const void *b, cudaDataType_t bt, int ldb, long long sb,
                                          const void *beta, void *c, cudaDataType_t ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo);

// Helpers of the emulated BLAS libraries (blas.cc, blaslt.cc).
namespace sdc_emu {
// elements spanned by a column-major rows x cols matrix with leading dim ld
size_t span(int rows, int cols, int ld);
// bytes of one element of t (fp32, fp16 or bf16)
size_t type_size(cudaDataType_t t);
// elems of a matrix in type t, widened to fp32 (exactly)
std::vector<float> widen(const void *p, cudaDataType_t t, size_t elems);
// C (m x n at ldc, column-major) in type t from fp32 values at the same
// places, each rounded once (round to nearest even, as cuBLAS's epilogue does)
void narrow(void *c, cudaDataType_t t, const float *v, int m, int n, int ldc);
} // namespace sdc_emu

#endif
