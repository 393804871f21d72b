// cudnn.cc - cuDNN's legacy forward convolution on the emulated device (see
// emu_dnn.h): the descriptors checked as cuDNN checks them, every tensor
// required to lie inside a live device allocation (a convolution that would
// read or write past a buffer on a GPU is reported here instead), and the
// arithmetic as an im2col product by the CPU's BLAS in double precision,
// stream-ordered like the GPU's kernel.
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include <new>
#include <vector>

#include "emu/emu.h"
#include "emu/emu_dnn.h"

struct cudnnContext {
    cudaStream_t stream = NULL;
};
// a 4-D tensor or filter: n (or k) x c x h x w in `format`; unset until a
// Set call succeeds, as a fresh cuDNN descriptor is unusable
struct Desc4d {
    bool set = false;
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnTensorStruct : Desc4d {};
struct cudnnFilterStruct : Desc4d {};
struct cudnnConvolutionStruct {
    bool set = false;
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_UNKNOWN_STATUS";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError();
        return CUDNN_STATUS_NOT_INITIALIZED;
    }
    *handle = new (std::nothrow) cudnnContext;
    return *handle ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    handle->stream = streamId; // a dead stream fails at the convolution, as submit checks it
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *streamId) {
    if (!handle || !streamId) return CUDNN_STATUS_BAD_PARAM;
    *streamId = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

namespace {

template <typename T> cudnnStatus_t create(T **p) {
    if (!p) return CUDNN_STATUS_BAD_PARAM;
    *p = new (std::nothrow) T;
    return *p ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}

// cuDNN 9's enumerants: values it rejects as BAD_PARAM, not NOT_SUPPORTED
bool valid_type(cudnnDataType_t t) { return (int)t >= 0 && (int)t <= 21; }
bool valid_format(cudnnTensorFormat_t f) { return (int)f >= 0 && (int)f <= 2; }

cudnnStatus_t set4d(Desc4d *d, cudnnTensorFormat_t format, cudnnDataType_t type, int n, int c, int h, int w) {
    if (!d || !valid_format(format) || !valid_type(type) || n < 1 || c < 1 || h < 1 || w < 1)
        return CUDNN_STATUS_BAD_PARAM;
    // cuDNN's limit: 2^31 elements in one tensor
    if ((long long)n * c * h * w > (long long)INT_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
    d->set = true;
    d->format = format;
    d->type = type;
    d->n = n, d->c = c, d->h = h, d->w = w;
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc) { return create(tensorDesc); }

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
    return set4d(tensorDesc, format, dataType, n, c, h, w);
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
    delete tensorDesc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc) { return create(filterDesc); }

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
    return set4d(filterDesc, format, dataType, k, c, h, w);
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
    delete filterDesc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc) { return create(convDesc); }

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u,
                                              int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
    if (!convDesc || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1 ||
        ((int)mode != CUDNN_CONVOLUTION && (int)mode != CUDNN_CROSS_CORRELATION) || !valid_type(computeType))
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->set = true;
    convDesc->pad_h = pad_h, convDesc->pad_w = pad_w, convDesc->u = u, convDesc->v = v;
    convDesc->dil_h = dilation_h, convDesc->dil_w = dilation_w;
    convDesc->mode = mode;
    convDesc->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
    if (!convDesc || (int)mathType < 0 || (int)mathType > 3) return CUDNN_STATUS_BAD_PARAM;
    convDesc->math = mathType; // reported back by the algorithm query; the sums are the same for every mode
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
    delete convDesc;
    return CUDNN_STATUS_SUCCESS;
}

namespace {

// One checked convolution, by value: a graph replay may outlive the descriptors.
struct Conv {
    cudnnDataType_t type;
    int n, c, h, w;      // x (NHWC)
    int k, kh, kw;       // filter (k, kh, kw, c)
    int ph, pw, u, v;    // padding, stride
    int oh, ow;          // y (n, oh, ow, k)
    cudnnMathType_t math;
};

size_t elem_size(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : 2; }

// The checks of cudnnConvolutionForward: malformed (BAD_PARAM) before
// well-formed but beyond the emulation (NOT_SUPPORTED).
cudnnStatus_t plan(const cudnnTensorStruct *x, const cudnnFilterStruct *w, const cudnnConvolutionStruct *cd,
                   const cudnnTensorStruct *y, Conv *out) {
    if (!x || !w || !cd || !y || !x->set || !w->set || !cd->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
    if (x->type != w->type || x->type != y->type || x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
    // the dilated filter must fit the padded input; y must be the output's shape
    const long long eh = (long long)(w->h - 1) * cd->dil_h + 1, ew = (long long)(w->w - 1) * cd->dil_w + 1;
    const long long ih = (long long)x->h + 2LL * cd->pad_h, iw = (long long)x->w + 2LL * cd->pad_w;
    if (ih < eh || iw < ew) return CUDNN_STATUS_BAD_PARAM;
    const long long oh = (ih - eh) / cd->u + 1, ow = (iw - ew) / cd->v + 1;
    if (y->n != x->n || y->c != w->n || y->h != oh || y->w != ow) return CUDNN_STATUS_BAD_PARAM;
    if (x->format != CUDNN_TENSOR_NHWC || w->format != CUDNN_TENSOR_NHWC || y->format != CUDNN_TENSOR_NHWC ||
        (x->type != CUDNN_DATA_FLOAT && x->type != CUDNN_DATA_HALF && x->type != CUDNN_DATA_BFLOAT16) ||
        cd->compute != CUDNN_DATA_FLOAT || cd->mode != CUDNN_CROSS_CORRELATION || cd->dil_h != 1 || cd->dil_w != 1)
        return CUDNN_STATUS_NOT_SUPPORTED;
    *out = Conv{x->type, x->n, x->c, x->h, x->w, w->n, w->h, w->w,
                cd->pad_h, cd->pad_w, cd->u, cd->v, (int)oh, (int)ow, cd->math};
    return CUDNN_STATUS_SUCCESS;
}

// IMPLICIT_PRECOMP_GEMM keeps a 16-byte index entry per filter element of
// one output channel after a 256-byte header: a non-zero size that follows
// the shape, so callers' workspace sizing and sharing are really exercised.
const size_t kHeader = 256;
struct Tap {
    int32_t ky, kx, c, col; // filter row offset, column offset, channel, and the column of the im2col row
};
static_assert(sizeof(Tap) == 16, "one 16-byte workspace entry per filter element");

size_t workspace_bytes(const Conv &cv, cudnnConvolutionFwdAlgo_t algo) {
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) return 0;
    return kHeader + sizeof(Tap) * (size_t)cv.kh * (size_t)cv.kw * (size_t)cv.c;
}

bool offered(cudnnConvolutionFwdAlgo_t algo) {
    return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM || algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
}

bool in_device(const char *call, const char *what, const void *p, size_t bytes) {
    if (sdc_emu::device_range(p, bytes)) return true;
    fprintf(stderr, "sdc emulated device: %s: %s (%zu bytes at %p) is not inside a device allocation\n", call, what,
            bytes, p);
    return false;
}

double load(const void *p, cudnnDataType_t t, size_t i) {
    if (t == CUDNN_DATA_FLOAT) return ((const float *)p)[i];
    if (t == CUDNN_DATA_HALF) return __half2float(((const __half *)p)[i]);
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

// d rounded to float toward zero, its last bit set when inexact ("round to
// odd"): rounding that to fp16 or bf16 (13 or 16 bits shorter) to nearest
// even gives d rounded once, where (float)d would round twice.
float to_float_odd(double d) {
    const float f = (float)d;
    if ((double)f == d || d != d) return f;
    uint32_t u = sdc_emu_f32_bits(f);
    if (fabs((double)f) > fabs(d)) u -= 1; // one step toward zero (f is not 0 here)
    return sdc_emu_bits_f32(u | 1u);
}

void store(void *p, cudnnDataType_t t, size_t i, double d) {
    if (t == CUDNN_DATA_FLOAT) ((float *)p)[i] = (float)d;
    else if (t == CUDNN_DATA_HALF) ((__half *)p)[i] = __float2half(to_float_odd(d));
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16(to_float_odd(d));
}

// y = alpha conv(x, w) + beta y: im2col rows (one per output pixel) times
// the filter, which in NHWC is already the k x (kh kw c) matrix the product
// needs. Products of fp32, fp16 or bf16 values are exact in double.
void run(const Conv cv, cudnnConvolutionFwdAlgo_t algo, double al, double be, const void *x, const void *wt,
         void *ws, void *y) {
    const int K = cv.kh * cv.kw * cv.c;
    std::vector<Tap> taps((size_t)K);
    for (int ky = 0, j = 0; ky < cv.kh; ky++)
        for (int kx = 0; kx < cv.kw; kx++)
            for (int c = 0; c < cv.c; c++, j++) taps[(size_t)j] = Tap{ky, kx, c, j};
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) {
        // the table goes through the workspace, as the GPU's precomputed indices do
        char header[kHeader] = {};
        snprintf(header, sizeof header, "sdc emulated cuDNN implicit precomp gemm: %d x %d x %d taps", cv.kh, cv.kw,
                 cv.c);
        memcpy(ws, header, kHeader);
        memcpy((char *)ws + kHeader, taps.data(), taps.size() * sizeof(Tap));
        memcpy(taps.data(), (const char *)ws + kHeader, taps.size() * sizeof(Tap));
    }
    std::vector<double> wd((size_t)cv.k * K);
    for (size_t i = 0; i < wd.size(); i++) wd[i] = load(wt, cv.type, i);
    const long long pixels = (long long)cv.n * cv.oh * cv.ow;
    // rows per product: an im2col block of at most ~16 MB
    const long long rows_max = std::max(1LL, std::min(pixels, (2LL << 20) / K));
    std::vector<double> col((size_t)(rows_max * K)), acc((size_t)(rows_max * cv.k));
    for (long long p0 = 0; p0 < pixels; p0 += rows_max) {
        const int rows = (int)std::min(rows_max, pixels - p0);
        for (int r = 0; r < rows; r++) {
            const long long p = p0 + r;
            const int ni = (int)(p / ((long long)cv.oh * cv.ow)), rem = (int)(p % ((long long)cv.oh * cv.ow));
            const int iy0 = (rem / cv.ow) * cv.u - cv.ph, ix0 = (rem % cv.ow) * cv.v - cv.pw;
            double *row = &col[(size_t)r * K];
            for (const Tap &t : taps) {
                const int iy = iy0 + t.ky, ix = ix0 + t.kx;
                const bool in = iy >= 0 && iy < cv.h && ix >= 0 && ix < cv.w;
                row[t.col] = in ? load(x, cv.type, (((size_t)ni * cv.h + iy) * cv.w + ix) * cv.c + t.c) : 0.0;
            }
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cv.k, K, 1.0, col.data(), K, wd.data(), K, 0.0,
                    acc.data(), cv.k);
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < cv.k; o++) {
                const size_t at = (size_t)(p0 + r) * cv.k + o;
                // y read only where beta needs it (cuDNN does not read y when beta is 0)
                const double old = be != 0.0 ? be * load(y, cv.type, at) : 0.0;
                store(y, cv.type, at, al * acc[(size_t)r * cv.k + o] + old);
            }
    }
}

} // namespace

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults) {
    if (!handle || !returnedAlgoCount || !perfResults || requestedAlgoCount < 1) return CUDNN_STATUS_BAD_PARAM;
    Conv cv;
    cudnnStatus_t st = plan(srcDesc, filterDesc, convDesc, destDesc, &cv);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const cudnnConvolutionFwdAlgo_t algos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                               CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
    int n = 0;
    for (cudnnConvolutionFwdAlgo_t a : algos) {
        if (n == requestedAlgoCount) break;
        perfResults[n++] = cudnnConvolutionFwdAlgoPerf_t{
            a, CUDNN_STATUS_SUCCESS, -1.0f, workspace_bytes(cv, a), CUDNN_DETERMINISTIC, cv.math, {0, 0, 0}};
    }
    *returnedAlgoCount = n;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes) {
    if (!handle || !sizeInBytes) return CUDNN_STATUS_BAD_PARAM;
    Conv cv;
    cudnnStatus_t st = plan(xDesc, wDesc, convDesc, yDesc, &cv);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (!offered(algo)) return CUDNN_STATUS_NOT_SUPPORTED;
    *sizeInBytes = workspace_bytes(cv, algo);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y) {
    static const char call[] = "cudnnConvolutionForward";
    if (!handle || !alpha || !beta || !x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
    Conv cv;
    cudnnStatus_t st = plan(xDesc, wDesc, convDesc, yDesc, &cv);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (!offered(algo)) return CUDNN_STATUS_NOT_SUPPORTED;
    const size_t need = workspace_bytes(cv, algo);
    if (workSpaceSizeInBytes < need) {
        fprintf(stderr, "sdc emulated device: %s: workspace of %zu bytes, the algorithm needs %zu\n", call,
                workSpaceSizeInBytes, need);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (workSpaceSizeInBytes && !in_device(call, "workspace", workSpace, workSpaceSizeInBytes))
        return CUDNN_STATUS_BAD_PARAM;
    const size_t es = elem_size(cv.type);
    if (!in_device(call, "tensor x", x, (size_t)cv.n * cv.h * cv.w * cv.c * es) ||
        !in_device(call, "filter w", w, (size_t)cv.k * cv.kh * cv.kw * cv.c * es) ||
        !in_device(call, "tensor y", y, (size_t)cv.n * cv.oh * cv.ow * cv.k * es))
        return CUDNN_STATUS_EXECUTION_FAILED;
    // cuDNN reads the scaling factors from host memory when called
    const double al = *(const float *)alpha, be = *(const float *)beta;
    cudaError_t e = sdc_emu::submit(handle->stream, call, [=]() {
        run(cv, algo, al, be, x, w, workSpace, y);
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
}
