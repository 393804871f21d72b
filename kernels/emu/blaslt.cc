// blaslt.cc - cuBLASLt's matrix product on the emulated device, by the CPU's
// BLAS (column-major, as cuBLASLt defines it). The descriptors are checked
// as cuBLASLt checks them, the heuristic refuses what cublasLtMatmul would
// refuse, and every operand must lie inside a live device allocation: a
// product that would read or write past a buffer on a GPU is reported here
// instead. emu_blaslt.h says what is supported.
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <new>
#include <vector>

#include "emu/emu.h"
#include "emu/emu_blaslt.h"

struct cublasLtContext {
    int unused = 0; // the emulation keeps no per-handle state
};

struct cublasLtMatmulDescOpaque_t {
    int32_t compute = CUBLAS_COMPUTE_32F;
    int32_t scale = CUDA_R_32F;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = NULL;
    int32_t bias_type = -1; // D's type
};

struct cublasLtMatrixLayoutOpaque_t {
    int32_t type = CUDA_R_32F;
    uint64_t rows = 0, cols = 0;
    int64_t ld = 0;
};

struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t max_workspace = 0; // cuBLASLt's default: no workspace allowed
};

using sdc_emu::narrow;
using sdc_emu::span;
using sdc_emu::type_size;
using sdc_emu::widen;

namespace {

// data[0] of the algorithms the heuristic hands out ("sdcLtEmu"), so that
// an algo that did not come from it is refused rather than run
const uint64_t algo_tag = 0x756d45744c636473ull;

// the product cublasLtMatmul computes, once its descriptors are checked
struct Problem {
    int m, n, k, lda, ldb, ldc, ldd;
    bool ta, tb, bias;
    cudaDataType_t at, dt; // A's and B's type; C's, D's and the bias's
};

bool computed_type(int32_t t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

// the dimensions are int for the CPU's BLAS
bool int_sized(const cublasLtMatrixLayoutOpaque_t *l) {
    return l->rows <= (uint64_t)INT_MAX && l->cols <= (uint64_t)INT_MAX && l->ld <= (int64_t)INT_MAX;
}

cublasStatus_t check(const cublasLtMatmulDescOpaque_t *op, const cublasLtMatrixLayoutOpaque_t *a,
                     const cublasLtMatrixLayoutOpaque_t *b, const cublasLtMatrixLayoutOpaque_t *c,
                     const cublasLtMatrixLayoutOpaque_t *d, Problem *p) {
    if (!op || !a || !b || !c || !d) return CUBLAS_STATUS_INVALID_VALUE;
    if (op->transa < CUBLAS_OP_N || op->transa > CUBLAS_OP_C || op->transb < CUBLAS_OP_N ||
        op->transb > CUBLAS_OP_C)
        return CUBLAS_STATUS_INVALID_VALUE;
    // real types: CUBLAS_OP_C is CUBLAS_OP_T
    const bool ta = op->transa != CUBLAS_OP_N, tb = op->transb != CUBLAS_OP_N;
    // stored A is m x k (k x m transposed), B k x n (n x k), C and D m x n
    const uint64_t m = d->rows, n = d->cols, k = ta ? a->rows : a->cols;
    if ((ta ? a->cols : a->rows) != m || (tb ? b->cols : b->rows) != k || (tb ? b->rows : b->cols) != n ||
        c->rows != m || c->cols != n)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (op->compute != CUBLAS_COMPUTE_32F || op->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!computed_type(a->type) || b->type != a->type || c->type != d->type ||
        (d->type != CUDA_R_32F && d->type != a->type))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT && op->epilogue != CUBLASLT_EPILOGUE_BIAS)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    // cuBLASLt's bias has D's type (its exceptions are integer and fp8 kernels)
    const bool bias = op->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (bias && op->bias_type != -1 && op->bias_type != d->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!int_sized(a) || !int_sized(b) || !int_sized(c) || !int_sized(d)) return CUBLAS_STATUS_NOT_SUPPORTED;
    *p = Problem{(int)m, (int)n, (int)k, (int)a->ld, (int)b->ld, (int)c->ld, (int)d->ld, ta, tb, bias,
                 (cudaDataType_t)a->type, (cudaDataType_t)d->type};
    return CUBLAS_STATUS_SUCCESS;
}

// an operand of cublasLtMatmul must lie inside one live device allocation
bool in_device(const char *what, const void *p, size_t bytes) {
    if (!bytes || sdc_emu::device_range(p, bytes)) return true;
    fprintf(stderr, "sdc emulated device: cublasLtMatmul: %s (%zu bytes at %p) is not inside a device allocation\n",
            what, bytes, p);
    return false;
}

template <typename T> cublasStatus_t set(T *field, const void *buf, size_t size) {
    if (size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy((void *)field, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError();
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *lightHandle = new (std::nothrow) cublasLtContext;
    return *lightHandle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete lightHandle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    *matmulDesc = new (std::nothrow) cublasLtMatmulDescOpaque_t;
    if (!*matmulDesc) return CUBLAS_STATUS_ALLOC_FAILED;
    // other types are refused by the calls that use them, as cuBLASLt does
    (*matmulDesc)->compute = computeType;
    (*matmulDesc)->scale = scaleType;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    delete matmulDesc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes) {
    if (!matmulDesc || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return set(&matmulDesc->compute, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return set(&matmulDesc->scale, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_TRANSA: return set(&matmulDesc->transa, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set(&matmulDesc->transb, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set(&matmulDesc->epilogue, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set(&matmulDesc->bias, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set(&matmulDesc->bias_type, buf, sizeInBytes);
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!matLayout) return CUBLAS_STATUS_INVALID_VALUE;
    // column-major: columns must not overlap
    if (ld < 0 || (uint64_t)ld < rows) return CUBLAS_STATUS_INVALID_VALUE;
    *matLayout = new (std::nothrow) cublasLtMatrixLayoutOpaque_t;
    if (!*matLayout) return CUBLAS_STATUS_ALLOC_FAILED;
    (*matLayout)->type = type;
    (*matLayout)->rows = rows;
    (*matLayout)->cols = cols;
    (*matLayout)->ld = ld;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    delete matLayout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new (std::nothrow) cublasLtMatmulPreferenceOpaque_t;
    return *pref ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes) {
    if (!pref || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) return set(&pref->max_workspace, buf, sizeInBytes);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (returnAlgoCount) *returnAlgoCount = 0;
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount || !preference)
        return CUBLAS_STATUS_INVALID_VALUE;
    Problem p;
    cublasStatus_t st = check(operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    // the workspace algorithm where the preference allows it (emu_blaslt.h)
    const size_t ws = preference->max_workspace >= SDC_EMU_BLASLT_WORKSPACE ? SDC_EMU_BLASLT_WORKSPACE : 0;
    cublasLtMatmulHeuristicResult_t &r = heuristicResultsArray[0];
    memset((void *)&r, 0, sizeof(r));
    r.algo.data[0] = algo_tag;
    r.algo.data[1] = ws;
    r.workspaceSize = ws;
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspaceSizeInBytes,
                              cudaStream_t stream) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    Problem p;
    cublasStatus_t st = check(computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    // NULL: the algorithm a default preference gets, which needs no workspace
    if (algo && (algo->data[0] != algo_tag || algo->data[1] > SDC_EMU_BLASLT_WORKSPACE))
        return CUBLAS_STATUS_INVALID_VALUE;
    const size_t ws = algo ? (size_t)algo->data[1] : 0;
    if (workspaceSizeInBytes < ws || (workspaceSizeInBytes && !workspace)) return CUBLAS_STATUS_INVALID_VALUE;
    const void *bias = computeDesc->bias;
    if (p.bias && !bias) return CUBLAS_STATUS_INVALID_VALUE;
    // in place only with one layout: a GPU would read C and write D at once
    if (C == D && p.ldc != p.ldd) return CUBLAS_STATUS_INVALID_VALUE;
    if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;

    const float al = *(const float *)alpha, be = *(const float *)beta;
    const bool need_ab = p.k > 0 && al != 0.0f; // cuBLASLt reads neither otherwise
    const int ar = p.ta ? p.k : p.m, ac = p.ta ? p.m : p.k, br = p.tb ? p.n : p.k, bc = p.tb ? p.k : p.n;
    const size_t es = type_size(p.at), ed = type_size(p.dt);
    const size_t ea = span(ar, ac, p.lda), eb = span(br, bc, p.ldb), ec = span(p.m, p.n, p.ldc),
                 edd = span(p.m, p.n, p.ldd);
    if ((need_ab && (!in_device("matrix A", A, ea * es) || !in_device("matrix B", B, eb * es))) ||
        (be != 0.0f && !in_device("matrix C", C, ec * ed)) || !in_device("matrix D", D, edd * ed) ||
        (p.bias && !in_device("bias", bias, (size_t)p.m * ed)) ||
        !in_device("workspace", workspace, workspaceSizeInBytes))
        return CUBLAS_STATUS_EXECUTION_FAILED;

    cudaError_t e = sdc_emu::submit(stream, "cublasLtMatmul", [=]() {
        // the workspace's contents after a product are undefined on a GPU
        if (ws) memset(workspace, 0xff, ws);
        // alpha op(A) op(B) + beta C in fp32 at D's places, rounded once
        std::vector<float> v(edd, 0.0f);
        if (be != 0.0f) { // C read only where beta needs it, as cuBLASLt
            const std::vector<float> cf = widen(C, p.dt, ec);
            for (int j = 0; j < p.n; j++)
                for (int i = 0; i < p.m; i++) v[(size_t)j * p.ldd + i] = cf[(size_t)j * p.ldc + i];
        }
        if (need_ab) {
            const std::vector<float> af = widen(A, p.at, ea), bf = widen(B, p.at, eb);
            cblas_sgemm(CblasColMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans, p.m, p.n,
                        p.k, al, af.data(), p.lda, bf.data(), p.ldb, be, v.data(), p.ldd);
        } else if (be != 0.0f) {
            for (float &x : v) x *= be;
        }
        if (p.bias) {
            const std::vector<float> bv = widen(bias, p.dt, p.m);
            for (int j = 0; j < p.n; j++)
                for (int i = 0; i < p.m; i++) v[(size_t)j * p.ldd + i] += bv[i];
        }
        narrow(D, p.dt, v.data(), p.m, p.n, p.ldd);
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}
