// emu_blaslt.h - the cuBLASLt calls sdc makes, for the host execution
// (kernels/emu/blaslt.cc): one column-major matrix product with an optional
// bias epilogue, D = alpha op(A) op(B) + beta C (+ bias), on device (host)
// memory that must lie inside live device allocations. Names, enum values,
// struct layouts and signatures are cuBLASLt's, so code written against
// <cublasLt.h> compiles unchanged here; only what sdc uses is declared.
//
// What the emulation does, and what it refuses:
//   - compute type CUBLAS_COMPUTE_32F, scale type CUDA_R_32F (alpha and beta
//     float pointers on the host); A and B of one type (fp32, fp16 or bf16)
//     widened to fp32 exactly and multiplied by the CPU's SGEMM; C and D of
//     one type, fp32 or A's type, of one shape; D rounded once to its type
//     (round to nearest even); C may be D (in place, then with D's ld); C is
//     read only when beta is not 0, A and B only when alpha and k are not 0;
//   - CUBLASLT_EPILOGUE_DEFAULT and CUBLASLT_EPILOGUE_BIAS: bias[i] added to
//     row i of D in fp32 before the rounding; the bias has D's type (its
//     BIAS_DATA_TYPE -1, the default, or D's type);
//   - matrix layouts in the default column-major order, ld >= rows, one
//     matrix per layout (no batches);
//   - descriptor attributes: the matmul's COMPUTE_TYPE, SCALE_TYPE, TRANSA,
//     TRANSB, EPILOGUE, BIAS_POINTER, BIAS_DATA_TYPE; the preference's
//     MAX_WORKSPACE_BYTES. A size that is not the attribute's is
//     CUBLAS_STATUS_INVALID_VALUE, another attribute NOT_SUPPORTED;
//   - everything else (other types, epilogues, a bias of another type than
//     D's, dimensions past INT_MAX) is CUBLAS_STATUS_NOT_SUPPORTED from
//     cublasLtMatmul and cublasLtMatmulAlgoGetHeuristic alike.
// A matrix, bias or workspace outside device memory is reported on stderr
// and the call fails with CUBLAS_STATUS_EXECUTION_FAILED.
//
// Algorithms: cublasLtMatmulAlgoGetHeuristic returns one. When the
// preference allows SDC_EMU_BLASLT_WORKSPACE bytes of workspace, it is an
// algorithm that needs exactly that much (as a GPU's split-K one would), and
// cublasLtMatmul overwrites that workspace with 0xff bytes, stream-ordered,
// so a workspace shared with work in flight, or one smaller than the
// heuristic asked for, shows up here; otherwise it needs none. A NULL algo
// in cublasLtMatmul is the one that needs no workspace.
#ifndef SDC_EMU_BLASLT_H
#define SDC_EMU_BLASLT_H

#include <stdint.h>

#include "emu/emu_blas.h"

#define SDC_EMU_BLASLT_WORKSPACE 4096

struct cublasLtContext;
typedef cublasLtContext *cublasLtHandle_t;

// Opaque here (cuBLASLt's are semi-opaque uint64_t arrays, sized for the
// Init calls the emulation does not provide).
struct cublasLtMatmulDescOpaque_t;
typedef cublasLtMatmulDescOpaque_t *cublasLtMatmulDesc_t;
struct cublasLtMatrixLayoutOpaque_t;
typedef cublasLtMatrixLayoutOpaque_t *cublasLtMatrixLayout_t;
struct cublasLtMatmulPreferenceOpaque_t;
typedef cublasLtMatmulPreferenceOpaque_t *cublasLtMatmulPreference_t;

// Held by value in the heuristic's results, so laid out as cuBLASLt's.
struct cublasLtMatmulAlgo_t {
    uint64_t data[8];
};

struct cublasLtMatmulHeuristicResult_t {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
};

enum cublasLtMatmulDescAttributes_t {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,    // int32_t cublasComputeType_t
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,      // int32_t cudaDataType_t
    CUBLASLT_MATMUL_DESC_TRANSA = 3,          // int32_t cublasOperation_t
    CUBLASLT_MATMUL_DESC_TRANSB = 4,          // int32_t cublasOperation_t
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,        // uint32_t cublasLtEpilogue_t
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,    // const void *, device memory
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26, // int32_t cudaDataType_t, -1 (default): D's type
};

enum cublasLtEpilogue_t {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_RELU = 2,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_RELU_BIAS = 6,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_BIAS = 36,
};

enum cublasLtMatmulPreferenceAttributes_t {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, // uint64_t, default 0
};

// NOT_INITIALIZED where the emulated device does not exist, as cublasCreate.
cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle);

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes);

// rows x cols of `type` in column-major order, ld >= rows
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout);

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes);

// The problem is checked as cublasLtMatmul checks it; one result, or
// NOT_SUPPORTED (and *returnAlgoCount 0) for a problem not computed here.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount);

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspaceSizeInBytes,
                              cudaStream_t stream);

#endif
