// blas.cc - cuBLAS's SGEMM calls on the emulated device, by the CPU's BLAS
// (column-major, as cuBLAS defines them). Arguments are checked as cuBLAS
// checks them, and every matrix must lie inside a live device allocation:
// a product that would read or write past a buffer on a GPU is reported
// here instead.
#include <cblas.h>
#include <stdio.h>

#include <vector>

#include "emu/emu.h"
#include "emu/emu_blas.h"

struct cublasContext {
    cudaStream_t stream = NULL;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    if (!h) return CUBLAS_STATUS_INVALID_VALUE;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError();
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *h = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !sdc_emu::device_range(ws, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((int)mode < 0 || (int)mode > 3) return CUBLAS_STATUS_INVALID_VALUE;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    }
    return "unknown error";
}

// helpers shared with blaslt.cc (declared in emu_blas.h)
namespace sdc_emu {

size_t span(int rows, int cols, int ld) { return rows && cols ? (size_t)ld * (size_t)(cols - 1) + (size_t)rows : 0; }

size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

std::vector<float> widen(const void *p, cudaDataType_t t, size_t elems) {
    std::vector<float> out(elems);
    for (size_t i = 0; i < elems; i++) {
        if (t == CUDA_R_32F) out[i] = ((const float *)p)[i];
        else if (t == CUDA_R_16F) out[i] = __half2float(((const __half *)p)[i]);
        else out[i] = __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    }
    return out;
}

void narrow(void *c, cudaDataType_t t, const float *v, int m, int n, int ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            const size_t at = (size_t)j * ldc + i;
            if (t == CUDA_R_32F) ((float *)c)[at] = v[at];
            else if (t == CUDA_R_16F) ((__half *)c)[at] = __float2half(v[at]);
            else ((__nv_bfloat16 *)c)[at] = __float2bfloat16(v[at]);
        }
}

} // namespace sdc_emu

using sdc_emu::narrow;
using sdc_emu::span;
using sdc_emu::type_size;
using sdc_emu::widen;

namespace {

bool in_device(const char *call, const char *what, const void *p, size_t elems, long long stride, int batch,
               size_t esize = sizeof(float)) {
    if (!elems) return true;
    for (int i = 0; i < batch; i++) {
        const char *q = (const char *)p + (ptrdiff_t)(stride * i) * (ptrdiff_t)esize;
        if (!sdc_emu::device_range(q, elems * esize)) {
            fprintf(stderr, "sdc emulated device: %s: matrix %s of batch %d (%zu floats at %p) is not inside a "
                            "device allocation\n", call, what, i, elems, (const void *)q);
            return false;
        }
    }
    return true;
}

cublasStatus_t gemm(const char *call, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const float *alpha, const float *a, int lda, long long sa, const float *b, int ldb,
                    long long sb, const float *beta, float *c, int ldc, long long sc, int batch) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool at = ta != CUBLAS_OP_N, bt = tb != CUBLAS_OP_N;
    if ((int)ta < 0 || (int)ta > 2 || (int)tb < 0 || (int)tb > 2 || m < 0 || n < 0 || k < 0 || batch < 0 ||
        !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    // stored shapes: A is m x k (or k x m transposed), B k x n (or n x k)
    const int ar = at ? k : m, ac = at ? m : k, br = bt ? n : k, bc = bt ? k : n;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (sa < 0 || sb < 0 || sc < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    const bool need_ab = k > 0 && *alpha != 0.0f;
    if ((need_ab && (!in_device(call, "A", a, span(ar, ac, lda), sa, batch) ||
                     !in_device(call, "B", b, span(br, bc, ldb), sb, batch))) ||
        !in_device(call, "C", c, span(m, n, ldc), sc, batch))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    const float al = *alpha, be = *beta;
    cudaError_t e = sdc_emu::submit(h->stream, call, [=]() {
        for (int i = 0; i < batch; i++)
            cblas_sgemm(CblasColMajor, at ? CblasTrans : CblasNoTrans, bt ? CblasTrans : CblasNoTrans, m, n, k, al,
                        a + (ptrdiff_t)(sa * i), lda, b + (ptrdiff_t)(sb * i), ldb, be, c + (ptrdiff_t)(sc * i),
                        ldc);
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

} // namespace

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *a, int lda, const float *b, int ldb, const float *beta,
                           float *c, int ldc) {
    return gemm("cublasSgemm", h, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *a, int lda, long long sa,
                                         const float *b, int ldb, long long sb, const float *beta, float *c,
                                         int ldc, long long sc, int batch) {
    return gemm("cublasSgemmStridedBatched", h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                batch);
}

namespace {

cublasStatus_t gemm_ex(const char *call, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                       int k, const void *alpha, const void *a, cudaDataType_t at, int lda, long long sa,
                       const void *b, cudaDataType_t bt, int ldb, long long sb, const void *beta, void *c,
                       cudaDataType_t ct, int ldc, long long sc, int batch, cublasComputeType_t compute,
                       cublasGemmAlgo_t algo) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    // A and B of one type; C fp32 or A's type
    if (compute != CUBLAS_COMPUTE_32F || algo != CUBLAS_GEMM_DEFAULT || at != bt || (ct != CUDA_R_32F && ct != at) ||
        (at != CUDA_R_32F && at != CUDA_R_16F && at != CUDA_R_16BF))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    const bool tra = ta != CUBLAS_OP_N, trb = tb != CUBLAS_OP_N;
    if ((int)ta < 0 || (int)ta > 2 || (int)tb < 0 || (int)tb > 2 || m < 0 || n < 0 || k < 0 || batch < 0 ||
        !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    const int ar = tra ? k : m, ac = tra ? m : k, br = trb ? n : k, bc = trb ? k : n;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (sa < 0 || sb < 0 || sc < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const size_t ea = span(ar, ac, lda), eb = span(br, bc, ldb), ec = span(m, n, ldc), es = type_size(at),
                 esc = type_size(ct);
    const bool need_ab = k > 0 && al != 0.0f;
    if ((need_ab && (!in_device(call, "A", a, ea, sa, batch, es) || !in_device(call, "B", b, eb, sb, batch, es))) ||
        !in_device(call, "C", c, ec, sc, batch, esc))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    cudaError_t e = sdc_emu::submit(h->stream, call, [=]() {
        for (int i = 0; i < batch; i++) {
            const char *ai = (const char *)a + (ptrdiff_t)(sa * i) * (ptrdiff_t)es;
            const char *bi = (const char *)b + (ptrdiff_t)(sb * i) * (ptrdiff_t)es;
            char *ci = (char *)c + (ptrdiff_t)(sc * i) * (ptrdiff_t)esc;
            std::vector<float> af = widen(ai, at, need_ab ? ea : 0), bf = widen(bi, bt, need_ab ? eb : 0);
            // C read only where beta needs it (cuBLAS does not read C when beta is 0)
            std::vector<float> cf = be != 0.0f ? widen(ci, ct, ec) : std::vector<float>(ec, 0.0f);
            cblas_sgemm(CblasColMajor, tra ? CblasTrans : CblasNoTrans, trb ? CblasTrans : CblasNoTrans, m, n,
                        need_ab ? k : 0, al, af.data(), lda, bf.data(), ldb, be, cf.data(), ldc);
            narrow(ci, ct, cf.data(), m, n, ldc);
        }
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

} // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *a, cudaDataType_t at, int lda, const void *b,
                            cudaDataType_t bt, int ldb, const void *beta, void *c, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return gemm_ex("cublasGemmEx", h, ta, tb, m, n, k, alpha, a, at, lda, 0, b, bt, ldb, 0, beta, c, ct, ldc, 0, 1,
                   compute, algo);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *a, cudaDataType_t at, int lda,
                                          long long sa, const void *b, cudaDataType_t bt, int ldb, long long sb,
                                          const void *beta, void *c, cudaDataType_t ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return gemm_ex("cublasGemmStridedBatchedEx", h, ta, tb, m, n, k, alpha, a, at, lda, sa, b, bt, ldb, sb, beta, c,
                   ct, ldc, sc, batch, compute, algo);
}
