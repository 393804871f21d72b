// emu_dnn.h - the cuDNN calls sdc makes, for the host execution: the legacy
// convolution API of cuDNN 9 (kernels/emu/cudnn.cc), and further down its
// backend graph API (kernels/emu/cudnn_graph.cc). The convolution: forward 2-D
// cross-correlation of NHWC tensors on device (host) memory that must lie
// inside live device allocations. Names, enum values and signatures are
// cuDNN's, so code written against <cudnn.h> compiles unchanged here.
//
// What the convolution's emulation does, and what it refuses:
//   - tensors and filters in CUDNN_TENSOR_NHWC (filter k x c x h x w stored
//     as k, h, w, c) of CUDNN_DATA_FLOAT, _HALF or _BFLOAT16, x, w and y of
//     one type; the descriptor calls accept every value cuDNN accepts
//     (NCHW, other types, dilation, CUDNN_CONVOLUTION) and the convolution
//     calls answer CUDNN_STATUS_NOT_SUPPORTED for what is not listed here;
//   - compute type CUDNN_DATA_FLOAT, mode CUDNN_CROSS_CORRELATION, dilation
//     1, any padding >= 0 and stride >= 1, one group;
//   - products of the widened inputs summed in double and rounded once to
//     y's type (round to nearest even), whatever the math type: the GPU's
//     fp32 sums differ from these by their own rounding only;
//   - two algorithms: CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
//     whose workspace (16 bytes per filter element of one output channel,
//     plus 256) receives its index table as a GPU's would, and
//     CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, which needs none.
#ifndef SDC_EMU_DNN_H
#define SDC_EMU_DNN_H

#include <stdint.h>

#include "emu/emu_runtime.h"

// The emulation's own version number (a cuDNN 9 API, not a cuDNN release).
#define CUDNN_MAJOR 9
#define CUDNN_MINOR 0
#define CUDNN_PATCHLEVEL 1
#define CUDNN_VERSION (CUDNN_MAJOR * 10000 + CUDNN_MINOR * 100 + CUDNN_PATCHLEVEL)

enum cudnnStatus_t {
    CUDNN_STATUS_SUCCESS = 0,
    CUDNN_STATUS_NOT_INITIALIZED = 1001,
    CUDNN_STATUS_BAD_PARAM = 2000,
    CUDNN_STATUS_NOT_SUPPORTED = 3000,
    CUDNN_STATUS_INTERNAL_ERROR = 4000,
    // cuDNN 9 keeps this name as an alias of INTERNAL_ERROR_HOST_ALLOCATION_FAILED
    CUDNN_STATUS_ALLOC_FAILED = 4003,
    CUDNN_STATUS_EXECUTION_FAILED = 5000,
};

struct cudnnContext;
typedef cudnnContext *cudnnHandle_t;
struct cudnnTensorStruct;
typedef cudnnTensorStruct *cudnnTensorDescriptor_t;
struct cudnnFilterStruct;
typedef cudnnFilterStruct *cudnnFilterDescriptor_t;
struct cudnnConvolutionStruct;
typedef cudnnConvolutionStruct *cudnnConvolutionDescriptor_t;

enum cudnnDataType_t {
    CUDNN_DATA_FLOAT = 0,
    CUDNN_DATA_DOUBLE = 1,
    CUDNN_DATA_HALF = 2,
    CUDNN_DATA_INT8 = 3,
    CUDNN_DATA_INT32 = 4,
    CUDNN_DATA_UINT8 = 6,
    CUDNN_DATA_BFLOAT16 = 9,
    CUDNN_DATA_INT64 = 10,
    CUDNN_DATA_BOOLEAN = 11,
};
enum cudnnTensorFormat_t { CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1, CUDNN_TENSOR_NCHW_VECT_C = 2 };
enum cudnnConvolutionMode_t { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 };
enum cudnnMathType_t {
    CUDNN_DEFAULT_MATH = 0,
    CUDNN_TENSOR_OP_MATH = 1,
    CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
    CUDNN_FMA_MATH = 3,
};
enum cudnnConvolutionFwdAlgo_t {
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0,
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
    CUDNN_CONVOLUTION_FWD_ALGO_GEMM = 2,
    CUDNN_CONVOLUTION_FWD_ALGO_DIRECT = 3,
    CUDNN_CONVOLUTION_FWD_ALGO_FFT = 4,
    CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING = 5,
    CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD = 6,
    CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED = 7,
    CUDNN_CONVOLUTION_FWD_ALGO_COUNT = 8,
};
enum cudnnDeterminism_t { CUDNN_NON_DETERMINISTIC = 0, CUDNN_DETERMINISTIC = 1 };

struct cudnnConvolutionFwdAlgoPerf_t {
    cudnnConvolutionFwdAlgo_t algo;
    cudnnStatus_t status;
    float time; // -1: the emulation measures nothing
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t mathType;
    int reserved[3];
};

size_t cudnnGetVersion(void); // CUDNN_VERSION
const char *cudnnGetErrorString(cudnnStatus_t status);

// NOT_INITIALIZED where the emulated device does not exist (SDC_CUDA_EMU
// unset), as on a machine without a GPU. A NULL handle is BAD_PARAM in
// every call.
cudnnStatus_t cudnnCreate(cudnnHandle_t *handle);
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle);
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId);
cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *streamId);

// Destroying a NULL descriptor does nothing and succeeds, as in cuDNN.
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc);
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w);
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc);

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc);
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w);
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc);

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc);
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u,
                                              int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType);
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType);
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc);

// The two algorithms above, IMPLICIT_PRECOMP_GEMM first, at most
// requestedAlgoCount of them, once the descriptors are checked as
// cudnnConvolutionForward checks them.
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults);
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes);
// y = alpha conv(x, w) + beta y on the handle's stream; alpha and beta are
// host floats; y is read only when beta is not 0. A workspace smaller than
// the algorithm's, or one outside device memory, is BAD_PARAM; a tensor
// outside device memory is reported on stderr and EXECUTION_FAILED.
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y);

// ---------------------------------------------------------------------------
// cuDNN 9's backend (graph) API, for the host execution
// (kernels/emu/cudnn_graph.cc): operation graphs of tensors and operations
// built from descriptors, engine heuristics, an execution plan, a variant
// pack of device pointers, one execution on the handle's stream.
//
// What is modelled, checked as cuDNN documents it (where cuDNN 9.19, the
// library itself, answers otherwise, the difference is said):
//   - descriptors (cudnnBackendCreateDescriptor) of the types TENSOR,
//     POINTWISE, REDUCTION, MATMUL, OPERATION_POINTWISE,
//     OPERATION_REDUCTION, OPERATION_MATMUL, OPERATIONGRAPH, ENGINEHEUR,
//     ENGINE, ENGINECFG, EXECUTION_PLAN and VARIANT_PACK; any other valid
//     type is NOT_SUPPORTED, a value that is no type BAD_PARAM. A pointer
//     that is no live descriptor (NULL, never made, destroyed) is BAD_PARAM
//     in every call, where cuDNN may crash.
//   - cudnnBackendSetAttribute: the attribute must be one of the
//     descriptor's type, of the attribute type cuDNN documents for it, with
//     a valid element count (dimensions: 1 to CUDNN_DIM_MAX) and valid
//     values (enumerants, descriptors of the expected type, a non-NULL
//     handle): BAD_PARAM otherwise (cuDNN 9.19 checks the values later, or
//     not), and for the read-only attributes. A finalized descriptor takes
//     no more: BAD_PARAM, as cuDNN 9.19 returns it (its documentation says
//     NOT_INITIALIZED). NOT_SUPPORTED, the attributes not modelled:
//     POINTWISE_NAN_PROPAGATION, _RELU_*, _ELU_ALPHA, _SOFTPLUS_BETA,
//     _SWISH_BETA; OPERATION_POINTWISE_ALPHA1, _ALPHA2, _DXDESC, _DYDESC;
//     MATMUL_PADDING_VALUE; OPERATION_MATMUL_IRREGULARLY_STRIDED_BATCH_COUNT,
//     _GEMM_{M,N,K}_OVERRIDE_DESC; TENSOR_VECTOR_COUNT,
//     _VECTORIZED_DIMENSION, _REORDERING_MODE, _RAGGED_OFFSET_DESC;
//     OPERATIONGRAPH_IS_DYNAMIC_SHAPE_ENABLED, _IS_SAME_TOPOLOGY;
//     ENGINEHEUR_DEVICEPROP; ENGINE_DEVICEPROP, _DISABLE_CLUSTER_COOPERATIVE;
//     ENGINECFG_KNOB_CHOICES; EXECUTION_PLAN_COMPUTED_INTERMEDIATE_UIDS,
//     _RUN_ONLY_INTERMEDIATE_UIDS, _JSON_REPRESENTATION, _KERNEL_CACHE,
//     _DEVICEPROP; VARIANT_PACK_INTERMEDIATES, _OVERRIDE_*; and, read-only
//     (setting them is BAD_PARAM), ENGINE_KNOB_INFO, _NUMERICAL_NOTE,
//     _LAYOUT_INFO, _BEHAVIOR_NOTE, ENGINECFG_INTERMEDIATE_INFO,
//     _SHARED_MEMORY_USED. Modelled read-only: ENGINEHEUR_RESULTS,
//     ENGINECFG_WORKSPACE_SIZE, EXECUTION_PLAN_WORKSPACE_SIZE,
//     OPERATIONGRAPH_ENGINE_GLOBAL_COUNT. Taken and without effect:
//     ENGINEHEUR_SM_COUNT_TARGET, ENGINE_SM_COUNT_TARGET (> 0; one device),
//     REDUCTION_IS_DETERMINISTIC (the emulation is deterministic).
//   - cudnnBackendFinalize (BAD_PARAM for what is missing or inconsistent,
//     and for a second finalization): a tensor needs its data type,
//     dimensions, as many strides, unique id and byte alignment; dimensions
//     > 0, strides >= 0, the alignment a multiple of the element size. A
//     pointwise descriptor needs its mode and math precision; a reduction
//     its operator and comp type; a matmul its comp type. An operation needs
//     its (finalized) descriptors and tensors, of one rank: matmul A [.., M,
//     K] x B [.., K, N] -> C [.., M, N], C's batch dims the larger of A's and
//     B's, which are equal or 1; pointwise: x, b, t as the mode's arity wants
//     them (a missing one is BAD_PARAM). A variant pack needs as many data
//     pointers as unique ids (its workspace is optional). Stricter than cuDNN
//     9.19, which finalizes these and leaves them to later stages: a
//     by-value tensor with a dimension > 1, one both virtual and by value,
//     GEN_INDEX without an axis (or one past the rank), a pointwise input
//     the mode does not take, a pointwise y other than the broadcast of its
//     inputs (GEN_INDEX: x's shape), a reduction's y with a dimension
//     neither 1 nor x's, a unique id twice in a variant pack. An operation
//     graph needs its handle (optional in 9.19) and operations: one tensor
//     per unique id, each virtual tensor the output of exactly one
//     operation, a non-virtual one of at most one, a by-value one of none,
//     no cycle. Heuristics need a graph and a mode; an engine its graph and
//     global index (0, the one engine; NOT_SUPPORTED for another, or when
//     the engine cannot run the graph); an engine configuration its engine;
//     an execution plan its handle and engine configuration (NOT_SUPPORTED
//     when the engine cannot run the graph).
//   - cudnnBackendGetAttribute: NOT_INITIALIZED before finalization. With
//     requestedElementCount 0 (the array may be NULL), *elementCount is the
//     number of elements the attribute has; otherwise at most
//     requestedElementCount are written and *elementCount is the number
//     written, as cuDNN 9.19 does (its documentation says the number it
//     has, always). ENGINEHEUR_RESULTS fills the caller's ENGINECFG
//     descriptors (made by cudnnBackendCreateDescriptor; they come back
//     finalized), ENGINECFG_ENGINE an ENGINE descriptor,
//     EXECUTION_PLAN_ENGINE_CONFIG an ENGINECFG one; the workspace sizes,
//     OPERATIONGRAPH_ENGINE_GLOBAL_COUNT (1 if the engine runs the graph,
//     else 0) and every attribute set with a value type other than
//     BACKEND_DESCRIPTOR (IS_VIRTUAL and IS_BY_VALUE false when not set)
//     read back; other descriptor-valued attributes are NOT_SUPPORTED.
//   - cudnnGetLastErrorString: why the calling thread's last backend call
//     failed (or its last heuristics found no engine); with
//     CUDNN_LOGLEVEL_DBG >= 1 (or CUDNN_LOGERR_DBG=1) each reason is also
//     written to stderr.
//
// The one engine (global index 0), "fused attention", as cuDNN 9's fused
// attention engines on Hopper take it: every heuristics mode returns it
// when it can run the graph, else nothing (0 results, and finalizing the
// heuristics succeeds, as in cuDNN). It takes 4-D graphs of matmul,
// pointwise (MUL, ADD, SUB, DIV, EXP, CMP_GE, CMP_GT, CMP_LT, GEN_INDEX,
// BINARY_SELECT) and reduction (MAX, ADD) operations whose tensors are
// FLOAT, HALF, BFLOAT16, INT32 or (virtual) BOOLEAN, with
//   - matmul comp type FLOAT; both operands of every matmul of one type,
//     HALF or BFLOAT16 (the second product takes P in the I/O type, as
//     cudnn-frontend notes the backend requires), a non-virtual output in
//     that type too; the first matmul's A and B not virtual; a non-virtual
//     A with its last stride 1, a non-virtual B with its second-to-last
//     stride 1 when A is not virtual either (K^T) and its last otherwise
//     (V), a non-virtual C its last stride 1 (the head dim contiguous in Q,
//     K, V and O); no non-virtual output with stride 0 on a dimension > 1;
//   - the head dims: the first matmul's K, and the N of every later matmul
//     with a non-virtual B, multiples of 8 and at most 256 (a 512 head is
//     NOT_SUPPORTED, as on a GPU);
//   - pointwise math precision FLOAT, or INT32 (ADD, SUB, MUL, the
//     comparisons, GEN_INDEX, BINARY_SELECT), or BOOLEAN (the
//     comparisons); reduction comp type FLOAT.
// Its workspace: 256 bytes, plus 4 bytes per row of the first matmul's
// output (the score matrix S: every dim but the last). During an execution
// the engine writes a header there, and each row's softmax max (the first
// MAX reduction's output) goes through it, written and read back, so a
// workspace shared with live data shows up.
//
// cudnnBackendExecute interprets the graph, stream-ordered on the handle's
// stream (a captured stream records it; descriptors may be destroyed after
// the call), one batch and head at a time: every non-virtual, non-by-value
// tensor's unique id must be in the variant pack (BAD_PARAM) with a
// pointer aligned to the tensor's byte alignment (BAD_PARAM), its whole
// strided extent inside a live device allocation (EXECUTION_FAILED;
// checked again when a captured graph replays it: a launch failure); each
// of these reported on stderr with the tensor's unique id. By-value
// tensors' pointers are host pointers, read when called. A plan with a
// workspace needs one inside device memory (BAD_PARAM). The arithmetic:
// matmul products summed in double, rounded once to C's type; pointwise
// operations in their math precision (FLOAT: IEEE single, expf; INT32:
// integers; BOOLEAN: comparisons of the operands' values), rounded to y's
// type, so a HALF or BFLOAT16 virtual tensor (the softmax's P) is rounded
// when written, as the engine feeds the second matmul in the I/O type;
// reductions in double, rounded to y's type. Every rounding to HALF or
// BFLOAT16 is to nearest even from the exact value. A masked score (-inf
// or the lowest float) gives exp 0; a row whose every score is -inf gives
// NaN (IEEE), as cuDNN documents no other value for it.

#define CUDNN_DIM_MAX 8

typedef void *cudnnBackendDescriptor_t;

enum cudnnBackendDescriptorType_t {
    CUDNN_BACKEND_POINTWISE_DESCRIPTOR = 0,
    CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR = 1,
    CUDNN_BACKEND_ENGINE_DESCRIPTOR = 2,
    CUDNN_BACKEND_ENGINECFG_DESCRIPTOR = 3,
    CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR = 4,
    CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR = 5,
    CUDNN_BACKEND_INTERMEDIATE_INFO_DESCRIPTOR = 6,
    CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR = 7,
    CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR = 8,
    CUDNN_BACKEND_LAYOUT_INFO_DESCRIPTOR = 9,
    CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR = 10,
    CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR = 11,
    CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR = 12,
    CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR = 13,
    CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR = 14,
    CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR = 15,
    CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR = 16,
    CUDNN_BACKEND_TENSOR_DESCRIPTOR = 17,
    CUDNN_BACKEND_MATMUL_DESCRIPTOR = 18,
    CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR = 19,
    CUDNN_BACKEND_OPERATION_BN_FINALIZE_STATISTICS_DESCRIPTOR = 20,
    CUDNN_BACKEND_REDUCTION_DESCRIPTOR = 21,
    CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR = 22,
    CUDNN_BACKEND_OPERATION_BN_BWD_WEIGHTS_DESCRIPTOR = 23,
    CUDNN_BACKEND_RESAMPLE_DESCRIPTOR = 24,
    CUDNN_BACKEND_OPERATION_RESAMPLE_FWD_DESCRIPTOR = 25,
    CUDNN_BACKEND_OPERATION_RESAMPLE_BWD_DESCRIPTOR = 26,
    CUDNN_BACKEND_OPERATION_CONCAT_DESCRIPTOR = 27,
    CUDNN_BACKEND_OPERATION_SIGNAL_DESCRIPTOR = 28,
    CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR = 29,
    CUDNN_BACKEND_OPERATION_NORM_BACKWARD_DESCRIPTOR = 30,
    CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR = 31,
    CUDNN_BACKEND_RNG_DESCRIPTOR = 32,
    CUDNN_BACKEND_OPERATION_RNG_DESCRIPTOR = 33,
    CUDNN_BACKEND_KERNEL_CACHE_DESCRIPTOR = 34,
    CUDNN_BACKEND_OPERATION_PAGED_CACHE_LOAD_DESCRIPTOR = 35,
    CUDNN_BACKEND_OPERATION_BLOCK_SCALE_QUANTIZE_DESCRIPTOR = 36,
    CUDNN_BACKEND_OPERATION_BLOCK_SCALE_DEQUANTIZE_DESCRIPTOR = 37,
    CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR = 38,
    CUDNN_BACKEND_OPERATION_EXPAND_BAND_MATRIX_DESCRIPTOR = 39,
    CUDNN_BACKEND_OPERATION_CONTRACT_BAND_MATRIX_DESCRIPTOR = 40,
    CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR = 41,
    CUDNN_BACKEND_OPERATION_MOE_GROUPED_MATMUL_DESCRIPTOR = 42,
    CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR = 43,
};

// The attributes of the descriptor types above that the emulation knows
// (cuDNN has more, of the types it does not model).
enum cudnnBackendAttributeName_t {
    CUDNN_ATTR_POINTWISE_MODE = 0,
    CUDNN_ATTR_POINTWISE_MATH_PREC = 1,
    CUDNN_ATTR_POINTWISE_NAN_PROPAGATION = 2,
    CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP = 3,
    CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP = 4,
    CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP_SLOPE = 5,
    CUDNN_ATTR_POINTWISE_ELU_ALPHA = 6,
    CUDNN_ATTR_POINTWISE_SOFTPLUS_BETA = 7,
    CUDNN_ATTR_POINTWISE_SWISH_BETA = 8,
    CUDNN_ATTR_POINTWISE_AXIS = 9,

    CUDNN_ATTR_ENGINEHEUR_MODE = 200,
    CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH = 201,
    CUDNN_ATTR_ENGINEHEUR_RESULTS = 202,
    CUDNN_ATTR_ENGINEHEUR_SM_COUNT_TARGET = 203,
    CUDNN_ATTR_ENGINEHEUR_DEVICEPROP = 204,

    CUDNN_ATTR_ENGINECFG_ENGINE = 300,
    CUDNN_ATTR_ENGINECFG_INTERMEDIATE_INFO = 301,
    CUDNN_ATTR_ENGINECFG_KNOB_CHOICES = 302,
    CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE = 303,
    CUDNN_ATTR_ENGINECFG_SHARED_MEMORY_USED = 304,

    CUDNN_ATTR_EXECUTION_PLAN_HANDLE = 400,
    CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG = 401,
    CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE = 402,
    CUDNN_ATTR_EXECUTION_PLAN_COMPUTED_INTERMEDIATE_UIDS = 403,
    CUDNN_ATTR_EXECUTION_PLAN_RUN_ONLY_INTERMEDIATE_UIDS = 404,
    CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION = 405,
    CUDNN_ATTR_EXECUTION_PLAN_KERNEL_CACHE = 406,
    CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP = 407,

    CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR = 750,
    CUDNN_ATTR_OPERATION_POINTWISE_XDESC = 751,
    CUDNN_ATTR_OPERATION_POINTWISE_BDESC = 752,
    CUDNN_ATTR_OPERATION_POINTWISE_YDESC = 753,
    CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1 = 754,
    CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2 = 755,
    CUDNN_ATTR_OPERATION_POINTWISE_DXDESC = 756,
    CUDNN_ATTR_OPERATION_POINTWISE_DYDESC = 757,
    CUDNN_ATTR_OPERATION_POINTWISE_TDESC = 758,

    CUDNN_ATTR_OPERATIONGRAPH_HANDLE = 800,
    CUDNN_ATTR_OPERATIONGRAPH_OPS = 801,
    CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT = 802,
    CUDNN_ATTR_OPERATIONGRAPH_IS_DYNAMIC_SHAPE_ENABLED = 803,
    CUDNN_ATTR_OPERATIONGRAPH_IS_SAME_TOPOLOGY = 804,

    CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT = 900,
    CUDNN_ATTR_TENSOR_DATA_TYPE = 901,
    CUDNN_ATTR_TENSOR_DIMENSIONS = 902,
    CUDNN_ATTR_TENSOR_STRIDES = 903,
    CUDNN_ATTR_TENSOR_VECTOR_COUNT = 904,
    CUDNN_ATTR_TENSOR_VECTORIZED_DIMENSION = 905,
    CUDNN_ATTR_TENSOR_UNIQUE_ID = 906,
    CUDNN_ATTR_TENSOR_IS_VIRTUAL = 907,
    CUDNN_ATTR_TENSOR_IS_BY_VALUE = 908,
    CUDNN_ATTR_TENSOR_REORDERING_MODE = 909,
    CUDNN_ATTR_TENSOR_RAGGED_OFFSET_DESC = 913,

    CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS = 1000,
    CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS = 1001,
    CUDNN_ATTR_VARIANT_PACK_INTERMEDIATES = 1002,
    CUDNN_ATTR_VARIANT_PACK_WORKSPACE = 1003,
    CUDNN_ATTR_VARIANT_PACK_OVERRIDE_UNIQUE_IDS = 1010,
    CUDNN_ATTR_VARIANT_PACK_OVERRIDE_SHAPES = 1011,
    CUDNN_ATTR_VARIANT_PACK_OVERRIDE_STRIDES = 1012,

    CUDNN_ATTR_ENGINE_OPERATION_GRAPH = 1300,
    CUDNN_ATTR_ENGINE_GLOBAL_INDEX = 1301,
    CUDNN_ATTR_ENGINE_KNOB_INFO = 1302,
    CUDNN_ATTR_ENGINE_NUMERICAL_NOTE = 1303,
    CUDNN_ATTR_ENGINE_LAYOUT_INFO = 1304,
    CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE = 1305,
    CUDNN_ATTR_ENGINE_SM_COUNT_TARGET = 1306,
    CUDNN_ATTR_ENGINE_DEVICEPROP = 1307,
    CUDNN_ATTR_ENGINE_DISABLE_CLUSTER_COOPERATIVE = 1308,

    CUDNN_ATTR_MATMUL_COMP_TYPE = 1500,
    CUDNN_ATTR_MATMUL_PADDING_VALUE = 1503,

    CUDNN_ATTR_OPERATION_MATMUL_ADESC = 1520,
    CUDNN_ATTR_OPERATION_MATMUL_BDESC = 1521,
    CUDNN_ATTR_OPERATION_MATMUL_CDESC = 1522,
    CUDNN_ATTR_OPERATION_MATMUL_DESC = 1523,
    CUDNN_ATTR_OPERATION_MATMUL_IRREGULARLY_STRIDED_BATCH_COUNT = 1524,
    CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC = 1525,
    CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC = 1526,
    CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC = 1527,

    CUDNN_ATTR_REDUCTION_OPERATOR = 1600,
    CUDNN_ATTR_REDUCTION_COMP_TYPE = 1601,
    CUDNN_ATTR_REDUCTION_IS_DETERMINISTIC = 1602,

    CUDNN_ATTR_OPERATION_REDUCTION_XDESC = 1610,
    CUDNN_ATTR_OPERATION_REDUCTION_YDESC = 1611,
    CUDNN_ATTR_OPERATION_REDUCTION_DESC = 1612,
};

// What the array of a Set or GetAttribute call holds (the comment: its C type).
enum cudnnBackendAttributeType_t {
    CUDNN_TYPE_HANDLE = 0,                   // cudnnHandle_t
    CUDNN_TYPE_DATA_TYPE = 1,                // cudnnDataType_t
    CUDNN_TYPE_BOOLEAN = 2,                  // bool
    CUDNN_TYPE_INT64 = 3,                    // int64_t
    CUDNN_TYPE_FLOAT = 4,                    // float
    CUDNN_TYPE_DOUBLE = 5,                   // double
    CUDNN_TYPE_VOID_PTR = 6,                 // void *
    CUDNN_TYPE_CONVOLUTION_MODE = 7,         // cudnnConvolutionMode_t
    CUDNN_TYPE_HEUR_MODE = 8,                // cudnnBackendHeurMode_t
    CUDNN_TYPE_KNOB_TYPE = 9,
    CUDNN_TYPE_NAN_PROPOGATION = 10,         // (cuDNN's spelling)
    CUDNN_TYPE_NUMERICAL_NOTE = 11,
    CUDNN_TYPE_LAYOUT_TYPE = 12,
    CUDNN_TYPE_ATTRIB_NAME = 13,             // cudnnBackendAttributeName_t
    CUDNN_TYPE_POINTWISE_MODE = 14,          // cudnnPointwiseMode_t
    CUDNN_TYPE_BACKEND_DESCRIPTOR = 15,      // cudnnBackendDescriptor_t
    CUDNN_TYPE_GENSTATS_MODE = 16,
    CUDNN_TYPE_BN_FINALIZE_STATS_MODE = 17,
    CUDNN_TYPE_REDUCTION_OPERATOR_TYPE = 18, // cudnnReduceTensorOp_t
    CUDNN_TYPE_BEHAVIOR_NOTE = 19,
    CUDNN_TYPE_TENSOR_REORDERING_MODE = 20,
    CUDNN_TYPE_RESAMPLE_MODE = 21,
    CUDNN_TYPE_PADDING_MODE = 22,
    CUDNN_TYPE_INT32 = 23,                   // int32_t
    CUDNN_TYPE_CHAR = 24,                    // char
    CUDNN_TYPE_SIGNAL_MODE = 25,
    CUDNN_TYPE_FRACTION = 26,
    CUDNN_TYPE_NORM_MODE = 27,
    CUDNN_TYPE_NORM_FWD_PHASE = 28,
    CUDNN_TYPE_RNG_DISTRIBUTION = 29,
    CUDNN_TYPE_MOE_GROUPED_MATMUL_MODE = 30,
};

// Inputs: x; also b for ADD .. SUB except SQRT, ATAN2, the comparisons,
// LOGICAL_AND and _OR; also b and t for BINARY_SELECT.
enum cudnnPointwiseMode_t {
    CUDNN_POINTWISE_ADD = 0,
    CUDNN_POINTWISE_MUL = 1,
    CUDNN_POINTWISE_MIN = 2,
    CUDNN_POINTWISE_MAX = 3,
    CUDNN_POINTWISE_SQRT = 4,
    CUDNN_POINTWISE_ADD_SQUARE = 5,
    CUDNN_POINTWISE_DIV = 6,
    CUDNN_POINTWISE_MOD = 7,
    CUDNN_POINTWISE_POW = 8,
    CUDNN_POINTWISE_SUB = 9,
    CUDNN_POINTWISE_ABS = 10,
    CUDNN_POINTWISE_CEIL = 11,
    CUDNN_POINTWISE_COS = 12,
    CUDNN_POINTWISE_EXP = 13,
    CUDNN_POINTWISE_FLOOR = 14,
    CUDNN_POINTWISE_LOG = 15,
    CUDNN_POINTWISE_NEG = 16,
    CUDNN_POINTWISE_RSQRT = 17,
    CUDNN_POINTWISE_SIN = 18,
    CUDNN_POINTWISE_TAN = 19,
    CUDNN_POINTWISE_ERF = 20,
    CUDNN_POINTWISE_IDENTITY = 21,
    CUDNN_POINTWISE_RECIPROCAL = 22,
    CUDNN_POINTWISE_ATAN2 = 23,
    // activations, forward
    CUDNN_POINTWISE_RELU_FWD = 100,
    CUDNN_POINTWISE_TANH_FWD = 101,
    CUDNN_POINTWISE_SIGMOID_FWD = 102,
    CUDNN_POINTWISE_ELU_FWD = 103,
    CUDNN_POINTWISE_GELU_FWD = 104,
    CUDNN_POINTWISE_SOFTPLUS_FWD = 105,
    CUDNN_POINTWISE_SWISH_FWD = 106,
    CUDNN_POINTWISE_GELU_APPROX_TANH_FWD = 107,
    // activations, backward (their dy and dx are not modelled)
    CUDNN_POINTWISE_RELU_BWD = 200,
    CUDNN_POINTWISE_TANH_BWD = 201,
    CUDNN_POINTWISE_SIGMOID_BWD = 202,
    CUDNN_POINTWISE_ELU_BWD = 203,
    CUDNN_POINTWISE_GELU_BWD = 204,
    CUDNN_POINTWISE_SOFTPLUS_BWD = 205,
    CUDNN_POINTWISE_SWISH_BWD = 206,
    CUDNN_POINTWISE_GELU_APPROX_TANH_BWD = 207,
    // comparisons: y = x op b, a boolean
    CUDNN_POINTWISE_CMP_EQ = 300,
    CUDNN_POINTWISE_CMP_NEQ = 301,
    CUDNN_POINTWISE_CMP_GT = 302,
    CUDNN_POINTWISE_CMP_GE = 303,
    CUDNN_POINTWISE_CMP_LT = 304,
    CUDNN_POINTWISE_CMP_LE = 305,
    CUDNN_POINTWISE_LOGICAL_AND = 400,
    CUDNN_POINTWISE_LOGICAL_OR = 401,
    CUDNN_POINTWISE_LOGICAL_NOT = 402,
    // y = each element's index along CUDNN_ATTR_POINTWISE_AXIS (x: the shape)
    CUDNN_POINTWISE_GEN_INDEX = 501,
    // y = t ? x : b
    CUDNN_POINTWISE_BINARY_SELECT = 601,
};

enum cudnnReduceTensorOp_t {
    CUDNN_REDUCE_TENSOR_ADD = 0,
    CUDNN_REDUCE_TENSOR_MUL = 1,
    CUDNN_REDUCE_TENSOR_MIN = 2,
    CUDNN_REDUCE_TENSOR_MAX = 3,
    CUDNN_REDUCE_TENSOR_AMAX = 4,
    CUDNN_REDUCE_TENSOR_AVG = 5,
    CUDNN_REDUCE_TENSOR_NORM1 = 6,
    CUDNN_REDUCE_TENSOR_NORM2 = 7,
    CUDNN_REDUCE_TENSOR_MUL_NO_ZEROS = 8,
};

enum cudnnBackendHeurMode_t {
    CUDNN_HEUR_MODE_INSTANT = 0,
    CUDNN_HEUR_MODE_B = 1,
    CUDNN_HEUR_MODE_FALLBACK = 2,
    CUDNN_HEUR_MODE_A = 3,
    CUDNN_HEUR_MODES_COUNT = 4, // not a mode
};

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t descriptorType,
                                           cudnnBackendDescriptor_t *descriptor);
// NULL, or a pointer that is no live descriptor (destroyed twice): BAD_PARAM
cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t descriptor);
cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t descriptor);
cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t descriptor, cudnnBackendAttributeName_t attributeName,
                                       cudnnBackendAttributeType_t attributeType, int64_t elementCount,
                                       const void *arrayOfElements);
cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const descriptor,
                                       cudnnBackendAttributeName_t attributeName,
                                       cudnnBackendAttributeType_t attributeType, int64_t requestedElementCount,
                                       int64_t *elementCount, void *arrayOfElements);
cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t executionPlan,
                                  cudnnBackendDescriptor_t variantPack);
// The reason of this thread's last failing backend call ("" if none), cut
// to max_size bytes with its terminating NUL; the record is then cleared.
void cudnnGetLastErrorString(char *message, size_t max_size);

#endif
