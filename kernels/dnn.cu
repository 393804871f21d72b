// dnn.cu - cuDNN's convolution and fused attention as comparison columns
// (dnn.h). Host code only: the convolution by cuDNN's legacy API
// (descriptors, its algorithm heuristics, one call), the attention by its
// graph API (an operation graph, its engine heuristics, an execution plan). The calls go
// through a table: filled by dlsym from the library opened at run time on
// a GPU build (so that sdc never links cuDNN), by the emulated calls of
// kernels/emu/cudnn.cc on the host execution.
#include "dnn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "kernels.h"

#if defined(__CUDACC__)
#if defined(__has_include)
#if __has_include(<cudnn.h>)
#include <cudnn.h>
#include <dlfcn.h>
#define SDC_DNN 1
#endif
#endif
#else
#include "emu/emu_dnn.h"
#define SDC_DNN 1
#endif

namespace {

void say(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

} // namespace

#ifndef SDC_DNN

// Built without cuDNN's header: the column is not there.
struct sdc_dnn {
    int unused;
};
extern "C" int sdc_dnn_open(sdc_dnn **out, cudaStream_t, char *err, size_t err_n) {
    *out = NULL;
    say(err, err_n, "this build of sdc has no cuDNN column (its compiler found no cudnn.h)");
    return -1;
}
extern "C" void sdc_dnn_close(sdc_dnn *) {}
extern "C" size_t sdc_dnn_version(const sdc_dnn *) { return 0; }
extern "C" int sdc_dnn_conv_prepare(sdc_dnn *, int, int, int, int, int, int, int, int, int, size_t, size_t *ws,
                                    char *err, size_t err_n) {
    *ws = 0;
    say(err, err_n, "no cuDNN");
    return -1;
}
extern "C" int sdc_dnn_conv(sdc_dnn *, void *, const void *, const void *, int, int, int, int, int, int, int, int,
                            int, size_t, void *, size_t, char *err, size_t err_n) {
    say(err, err_n, "no cuDNN");
    return -1;
}
extern "C" int sdc_dnn_attention_prepare(sdc_dnn *, int, int, int, int, int, int, int, int, int, size_t *ws,
                                         char *err, size_t err_n) {
    *ws = 0;
    say(err, err_n, "no cuDNN");
    return -1;
}
extern "C" int sdc_dnn_attention(sdc_dnn *, void *, const void *, const void *, const void *, int, int, int, int,
                                 int, int, int, int, int, float, void *, size_t, char *err, size_t err_n) {
    say(err, err_n, "no cuDNN");
    return -1;
}

#else

#define SDC_DNN_CALLS(X)                                                                                           \
    X(cudnnGetVersion)                                                                                             \
    X(cudnnGetErrorString)                                                                                         \
    X(cudnnCreate)                                                                                                 \
    X(cudnnDestroy)                                                                                                \
    X(cudnnSetStream)                                                                                              \
    X(cudnnCreateTensorDescriptor)                                                                                 \
    X(cudnnSetTensor4dDescriptor)                                                                                  \
    X(cudnnDestroyTensorDescriptor)                                                                                \
    X(cudnnCreateFilterDescriptor)                                                                                 \
    X(cudnnSetFilter4dDescriptor)                                                                                  \
    X(cudnnDestroyFilterDescriptor)                                                                                \
    X(cudnnCreateConvolutionDescriptor)                                                                            \
    X(cudnnSetConvolution2dDescriptor)                                                                             \
    X(cudnnSetConvolutionMathType)                                                                                 \
    X(cudnnDestroyConvolutionDescriptor)                                                                           \
    X(cudnnGetConvolutionForwardAlgorithm_v7)                                                                      \
    X(cudnnGetConvolutionForwardWorkspaceSize)                                                                     \
    X(cudnnConvolutionForward)                                                                                     \
    X(cudnnBackendCreateDescriptor)                                                                                \
    X(cudnnBackendDestroyDescriptor)                                                                               \
    X(cudnnBackendSetAttribute)                                                                                    \
    X(cudnnBackendGetAttribute)                                                                                    \
    X(cudnnBackendFinalize)                                                                                        \
    X(cudnnBackendExecute)

namespace {

struct dnn_api {
#define SDC_DNN_FIELD(f) decltype(&::f) f;
    SDC_DNN_CALLS(SDC_DNN_FIELD)
#undef SDC_DNN_FIELD
};

// one convolution's shape: what a chosen algorithm is remembered by
struct conv_key {
    int t, n, h, w, cin, cout, k, stride, pad;
    size_t max_ws;
    bool operator==(const conv_key &o) const {
        return t == o.t && n == o.n && h == o.h && w == o.w && cin == o.cin && cout == o.cout && k == o.k &&
               stride == o.stride && pad == o.pad && max_ws == o.max_ws;
    }
};
struct conv_plan {
    conv_key key;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws;
};

// one attention's shape, and its finalized execution plan with every
// descriptor the graph was made of (kept as long as the plan)
struct attn_key {
    int t, batch, heads, tq, tk, d, q_stride, kv_stride, causal;
    bool operator==(const attn_key &o) const {
        return t == o.t && batch == o.batch && heads == o.heads && tq == o.tq && tk == o.tk && d == o.d &&
               q_stride == o.q_stride && kv_stride == o.kv_stride && causal == o.causal;
    }
};
struct attn_plan {
    attn_key key;
    cudnnBackendDescriptor_t plan;
    int64_t ws;
    std::vector<cudnnBackendDescriptor_t> made;
};

} // namespace

struct sdc_dnn {
    void *lib; // NULL on the emulated device
    dnn_api api;
    cudnnHandle_t h;
    std::vector<conv_plan> plans;
    std::vector<attn_plan> attn;
};

namespace {

// the four descriptors of one convolution, destroyed with it
struct conv_desc {
    const dnn_api *a;
    cudnnTensorDescriptor_t x = NULL, y = NULL;
    cudnnFilterDescriptor_t w = NULL;
    cudnnConvolutionDescriptor_t c = NULL;
    explicit conv_desc(const dnn_api *api) : a(api) {}
    ~conv_desc() {
        if (x) a->cudnnDestroyTensorDescriptor(x);
        if (y) a->cudnnDestroyTensorDescriptor(y);
        if (w) a->cudnnDestroyFilterDescriptor(w);
        if (c) a->cudnnDestroyConvolutionDescriptor(c);
    }
    conv_desc(const conv_desc &) = delete;
    conv_desc &operator=(const conv_desc &) = delete;

    cudnnStatus_t set(const conv_key &k, const char **call) {
        const cudnnDataType_t dt = k.t == SDC_CU_F16 ? CUDNN_DATA_HALF
                                   : k.t == SDC_CU_BF16 ? CUDNN_DATA_BFLOAT16
                                                        : CUDNN_DATA_FLOAT;
        const int ho = (k.h + 2 * k.pad - k.k) / k.stride + 1, wo = (k.w + 2 * k.pad - k.k) / k.stride + 1;
        cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
#define SDC_DNN_STEP(expr)                                                                                         \
    if (s == CUDNN_STATUS_SUCCESS) {                                                                               \
        *call = #expr;                                                                                             \
        s = a->expr;                                                                                               \
    }
        SDC_DNN_STEP(cudnnCreateTensorDescriptor(&x));
        SDC_DNN_STEP(cudnnCreateTensorDescriptor(&y));
        SDC_DNN_STEP(cudnnCreateFilterDescriptor(&w));
        SDC_DNN_STEP(cudnnCreateConvolutionDescriptor(&c));
        SDC_DNN_STEP(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, dt, k.n, k.cin, k.h, k.w));
        SDC_DNN_STEP(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, dt, k.n, k.cout, ho, wo));
        SDC_DNN_STEP(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NHWC, k.cout, k.cin, k.k, k.k));
        // fp32 accumulation for every type (cuDNN's pseudo-half configurations)
        SDC_DNN_STEP(cudnnSetConvolution2dDescriptor(c, k.pad, k.pad, k.stride, k.stride, 1, 1,
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        // tensor cores for the half types; fp32 stays fp32 (no TF32), as cuBLAS is set
        SDC_DNN_STEP(cudnnSetConvolutionMathType(c, k.t == SDC_CU_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
#undef SDC_DNN_STEP
        return s;
    }
};

int fail(const sdc_dnn *d, cudnnStatus_t s, const char *call, const conv_key &k, char *err, size_t n) {
    say(err, n, "cuDNN: %s: %s (convolution %dx%dx%dx%d -> %d, kernel %d, stride %d, pad %d)", call,
        d->api.cudnnGetErrorString(s), k.n, k.h, k.w, k.cin, k.cout, k.k, k.stride, k.pad);
    return -1;
}

const conv_plan *find_plan(sdc_dnn *d, const conv_key &k) {
    for (const conv_plan &p : d->plans)
        if (p.key == k) return &p;
    return NULL;
}

// the plan for k, chosen now if it is not yet known
int plan_for(sdc_dnn *d, const conv_key &k, const conv_plan **out, char *err, size_t err_n) {
    *out = find_plan(d, k);
    if (*out) return 0;
    conv_desc cd(&d->api);
    const char *call = "";
    cudnnStatus_t s = cd.set(k, &call);
    if (s != CUDNN_STATUS_SUCCESS) return fail(d, s, call, k, err, err_n);
    cudnnConvolutionFwdAlgoPerf_t perf[16];
    int got = 0;
    s = d->api.cudnnGetConvolutionForwardAlgorithm_v7(d->h, cd.x, cd.w, cd.c, cd.y, 16, &got, perf);
    if (s != CUDNN_STATUS_SUCCESS) return fail(d, s, "cudnnGetConvolutionForwardAlgorithm_v7", k, err, err_n);
    for (int i = 0; i < got; i++) { // ranked best first
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > k.max_ws) continue;
        size_t ws = 0;
        if (d->api.cudnnGetConvolutionForwardWorkspaceSize(d->h, cd.x, cd.w, cd.c, cd.y, perf[i].algo, &ws) !=
                CUDNN_STATUS_SUCCESS ||
            ws > k.max_ws)
            continue;
        d->plans.push_back(conv_plan{k, perf[i].algo, ws});
        *out = &d->plans.back();
        return 0;
    }
    say(err, err_n,
        "cuDNN offers no algorithm for the convolution %dx%dx%dx%d -> %d, kernel %d, stride %d, pad %d within "
        "%zu bytes of workspace (%d ranked)",
        k.n, k.h, k.w, k.cin, k.cout, k.k, k.stride, k.pad, k.max_ws, got);
    return -1;
}

} // namespace

extern "C" int sdc_dnn_open(sdc_dnn **out, cudaStream_t stream, char *err, size_t err_n) {
    *out = NULL;
    sdc_dnn *d = new sdc_dnn();
#if defined(__CUDACC__)
    const char *env = getenv("SDC_CUDNN_LIB");
    const char *names[] = {env && *env ? env : NULL, "libcudnn.so.9", "libcudnn.so"};
    const char *opened = NULL;
    for (const char *name : names)
        if (name && (d->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != NULL) {
            opened = name;
            break;
        }
    if (!d->lib) {
        say(err, err_n, "cuDNN not found (tried %s%slibcudnn.so.9 and libcudnn.so; SDC_CUDNN_LIB names the file)",
            env && *env ? env : "", env && *env ? ", " : "");
        delete d;
        return -1;
    }
#define SDC_DNN_LOAD(f)                                                                                            \
    if (!(d->api.f = (decltype(&::f))dlsym(d->lib, #f))) {                                                         \
        say(err, err_n, "%s has no %s (sdc needs cuDNN 9)", opened, #f);                                            \
        dlclose(d->lib);                                                                                           \
        delete d;                                                                                                  \
        return -1;                                                                                                 \
    }
    SDC_DNN_CALLS(SDC_DNN_LOAD)
#undef SDC_DNN_LOAD
#else
    d->lib = NULL;
#define SDC_DNN_BIND(f) d->api.f = &::f;
    SDC_DNN_CALLS(SDC_DNN_BIND)
#undef SDC_DNN_BIND
#endif
    cudnnStatus_t s = d->api.cudnnCreate(&d->h);
    if (s == CUDNN_STATUS_SUCCESS) {
        s = d->api.cudnnSetStream(d->h, stream);
        if (s != CUDNN_STATUS_SUCCESS) d->api.cudnnDestroy(d->h);
    }
    if (s != CUDNN_STATUS_SUCCESS) {
        say(err, err_n, "cuDNN: cudnnCreate: %s", d->api.cudnnGetErrorString(s));
#if defined(__CUDACC__)
        dlclose(d->lib);
#endif
        delete d;
        return -1;
    }
    *out = d;
    return 0;
}

extern "C" void sdc_dnn_close(sdc_dnn *d) {
    if (!d) return;
    for (attn_plan &p : d->attn)
        for (size_t i = p.made.size(); i-- > 0;) d->api.cudnnBackendDestroyDescriptor(p.made[i]);
    d->api.cudnnDestroy(d->h);
#if defined(__CUDACC__)
    dlclose(d->lib);
#endif
    delete d;
}

extern "C" size_t sdc_dnn_version(const sdc_dnn *d) { return d ? d->api.cudnnGetVersion() : 0; }

extern "C" int sdc_dnn_conv_prepare(sdc_dnn *d, int t, int n, int h, int w, int cin, int cout, int k, int stride,
                                    int pad, size_t max_ws, size_t *ws, char *err, size_t err_n) {
    *ws = 0;
    const conv_key key = {t, n, h, w, cin, cout, k, stride, pad, max_ws};
    const conv_plan *p = NULL;
    if (plan_for(d, key, &p, err, err_n)) return -1;
    *ws = p->ws;
    return 0;
}

extern "C" int sdc_dnn_conv(sdc_dnn *d, void *y, const void *x, const void *w, int t, int n, int h, int wi, int cin,
                            int cout, int k, int stride, int pad, size_t max_ws, void *ws, size_t ws_bytes,
                            char *err, size_t err_n) {
    const conv_key key = {t, n, h, wi, cin, cout, k, stride, pad, max_ws};
    const conv_plan *p = NULL;
    if (plan_for(d, key, &p, err, err_n)) return -1;
    if (ws_bytes < p->ws) {
        say(err, err_n, "cuDNN's convolution needs %zu bytes of workspace, %zu given", p->ws, ws_bytes);
        return -1;
    }
    conv_desc cd(&d->api);
    const char *call = "";
    cudnnStatus_t s = cd.set(key, &call);
    if (s != CUDNN_STATUS_SUCCESS) return fail(d, s, call, key, err, err_n);
    const float one = 1.0f, zero = 0.0f;
    s = d->api.cudnnConvolutionForward(d->h, &one, cd.x, x, cd.w, w, cd.c, p->algo, p->ws ? ws : NULL, p->ws, &zero,
                                       cd.y, y);
    if (s != CUDNN_STATUS_SUCCESS) return fail(d, s, "cudnnConvolutionForward", key, err, err_n);
    return 0;
}


namespace {

// The tensors' unique ids in the graph; the variant pack names the
// non-virtual ones (Q, K, V, O and the two by-value scalars).
enum : int64_t { UID_Q = 1, UID_K, UID_V, UID_O, UID_SCALE, UID_NEG_INF, UID_VIRTUAL = 100 };

// Builds one operation graph: every descriptor made is kept in `made`;
// the first failing call stops the rest and is named in `call`.
struct graph_builder {
    const dnn_api *a;
    std::vector<cudnnBackendDescriptor_t> made;
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    const char *call = "";
    int64_t next_uid = UID_VIRTUAL;

    explicit graph_builder(const dnn_api *api) : a(api) {}
    bool ok() const { return st == CUDNN_STATUS_SUCCESS; }

    cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
        cudnnBackendDescriptor_t d = NULL;
        if (!ok()) return NULL;
        call = "cudnnBackendCreateDescriptor";
        st = a->cudnnBackendCreateDescriptor(type, &d);
        if (ok()) made.push_back(d);
        return d;
    }
    void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
             int64_t n, const void *v, const char *what) {
        if (!ok()) return;
        call = what;
        st = a->cudnnBackendSetAttribute(d, name, type, n, v);
    }
    void finalize(cudnnBackendDescriptor_t d, const char *what) {
        if (!ok()) return;
        call = what;
        st = a->cudnnBackendFinalize(d);
    }
    void set_desc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t v,
                  const char *what) {
        set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v, what);
    }

    // a 4-D tensor: uid 0 takes the next virtual id
    cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, const int64_t dims[4],
                                    const int64_t strides[4], bool is_virtual, bool by_value) {
        cudnnBackendDescriptor_t d = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
        if (!uid) uid = next_uid++;
        const int64_t align = 16;
        set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor: data type");
        set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor: dimensions");
        set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor: strides");
        set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor: unique id");
        set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor: alignment");
        set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor: virtual");
        if (by_value) set(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor: by value");
        finalize(d, "cudnnBackendFinalize (tensor)");
        return d;
    }

    // y = mode(x[, b][, t]); axis >= 0 for GEN_INDEX
    cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                                       cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                                       cudnnBackendDescriptor_t y, int64_t axis = -1) {
        cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
        set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise: mode");
        set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise: precision");
        if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise: axis");
        finalize(pw, "cudnnBackendFinalize (pointwise)");
        cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
        set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise op: descriptor");
        set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise op: x");
        if (b) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, "pointwise op: b");
        if (t) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, "pointwise op: t");
        set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise op: y");
        finalize(op, "cudnnBackendFinalize (pointwise op)");
        return op;
    }

    cudnnBackendDescriptor_t reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                                       cudnnBackendDescriptor_t y) {
        const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
        cudnnBackendDescriptor_t r = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
        set(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction: operator");
        set(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec, "reduction: precision");
        finalize(r, "cudnnBackendFinalize (reduction)");
        cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
        set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r, "reduction op: descriptor");
        set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, "reduction op: x");
        set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, "reduction op: y");
        finalize(op, "cudnnBackendFinalize (reduction op)");
        return op;
    }

    cudnnBackendDescriptor_t matmul(cudnnBackendDescriptor_t a_, cudnnBackendDescriptor_t b,
                                    cudnnBackendDescriptor_t c) {
        const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
        cudnnBackendDescriptor_t m = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
        set(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec, "matmul: precision");
        finalize(m, "cudnnBackendFinalize (matmul)");
        cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
        set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, m, "matmul op: descriptor");
        set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a_, "matmul op: a");
        set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, "matmul op: b");
        set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, "matmul op: c");
        finalize(op, "cudnnBackendFinalize (matmul op)");
        return op;
    }
};

int attn_fail(const sdc_dnn *d, cudnnStatus_t s, const char *call, const attn_key &k, char *err, size_t n) {
    say(err, n, "cuDNN: %s: %s (attention %d x %d heads, %d queries, %d keys, head dim %d%s)", call,
        d->api.cudnnGetErrorString(s), k.batch, k.heads, k.tq, k.tk, k.d, k.causal ? ", causal" : "");
    return -1;
}

// The graph of scaled-dot-product attention as cudnn-frontend composes it
// for inference: S = Q K^T (fp32), S *= scale (a by-value scalar), causal:
// S = row >= col ? S : -inf (GEN_INDEX on axes 2 and 3, CMP_GE,
// BINARY_SELECT), the softmax as max, sub, exp, sum and div (P in the
// input's type), O = P V. Q, K, V and O are [b, h, s, d] views of sdc's
// (batch, tokens, heads d) rows; K enters transposed, [b, h, d, tk].
int attn_plan_for(sdc_dnn *d, const attn_key &k, const attn_plan **out, char *err, size_t err_n) {
    for (const attn_plan &p : d->attn)
        if (p.key == k) {
            *out = &p;
            return 0;
        }
    graph_builder g(&d->api);
    const cudnnDataType_t io = k.t == SDC_CU_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF, f32 = CUDNN_DATA_FLOAT;
    const int64_t B = k.batch, H = k.heads, SQ = k.tq, SK = k.tk, D = k.d, QS = k.q_stride, KS = k.kv_stride;
    const int64_t q_dim[4] = {B, H, SQ, D}, q_str[4] = {SQ * QS, D, QS, 1};
    const int64_t kt_dim[4] = {B, H, D, SK}, kt_str[4] = {SK * KS, D, 1, KS};
    const int64_t v_dim[4] = {B, H, SK, D}, v_str[4] = {SK * KS, D, KS, 1};
    const int64_t o_dim[4] = {B, H, SQ, D}, o_str[4] = {SQ * H * D, D, H * D, 1};
    const int64_t s_dim[4] = {B, H, SQ, SK}, s_str[4] = {H * SQ * SK, SQ * SK, SK, 1};
    const int64_t r_dim[4] = {B, H, SQ, 1}, r_str[4] = {H * SQ, SQ, 1, 1};
    const int64_t one[4] = {1, 1, 1, 1};
    std::vector<cudnnBackendDescriptor_t> ops;
    cudnnBackendDescriptor_t Q = g.tensor(UID_Q, io, q_dim, q_str, false, false);
    cudnnBackendDescriptor_t KT = g.tensor(UID_K, io, kt_dim, kt_str, false, false);
    cudnnBackendDescriptor_t V = g.tensor(UID_V, io, v_dim, v_str, false, false);
    cudnnBackendDescriptor_t O = g.tensor(UID_O, io, o_dim, o_str, false, false);
    cudnnBackendDescriptor_t scale = g.tensor(UID_SCALE, f32, one, one, false, true);
    cudnnBackendDescriptor_t S = g.tensor(0, f32, s_dim, s_str, true, false);
    ops.push_back(g.matmul(Q, KT, S));
    cudnnBackendDescriptor_t S1 = g.tensor(0, f32, s_dim, s_str, true, false);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_MUL, f32, S, scale, NULL, S1));
    if (k.causal) {
        cudnnBackendDescriptor_t neg = g.tensor(UID_NEG_INF, f32, one, one, false, true);
        cudnnBackendDescriptor_t row = g.tensor(0, CUDNN_DATA_INT32, s_dim, s_str, true, false);
        cudnnBackendDescriptor_t col = g.tensor(0, CUDNN_DATA_INT32, s_dim, s_str, true, false);
        cudnnBackendDescriptor_t keep = g.tensor(0, CUDNN_DATA_BOOLEAN, s_dim, s_str, true, false);
        cudnnBackendDescriptor_t S2 = g.tensor(0, f32, s_dim, s_str, true, false);
        ops.push_back(g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, S1, NULL, NULL, row, 2));
        ops.push_back(g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, S1, NULL, NULL, col, 3));
        ops.push_back(g.pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep));
        ops.push_back(g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, S1, neg, keep, S2));
        S1 = S2;
    }
    cudnnBackendDescriptor_t M = g.tensor(0, f32, r_dim, r_str, true, false);
    cudnnBackendDescriptor_t Z = g.tensor(0, f32, s_dim, s_str, true, false);
    cudnnBackendDescriptor_t E = g.tensor(0, f32, s_dim, s_str, true, false);
    cudnnBackendDescriptor_t L = g.tensor(0, f32, r_dim, r_str, true, false);
    cudnnBackendDescriptor_t P = g.tensor(0, io, s_dim, s_str, true, false);
    ops.push_back(g.reduction(CUDNN_REDUCE_TENSOR_MAX, S1, M));
    ops.push_back(g.pointwise(CUDNN_POINTWISE_SUB, f32, S1, M, NULL, Z));
    ops.push_back(g.pointwise(CUDNN_POINTWISE_EXP, f32, Z, NULL, NULL, E));
    ops.push_back(g.reduction(CUDNN_REDUCE_TENSOR_ADD, E, L));
    ops.push_back(g.pointwise(CUDNN_POINTWISE_DIV, f32, E, L, NULL, P));
    ops.push_back(g.matmul(P, V, O));

    cudnnBackendDescriptor_t graph = g.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &d->h, "operation graph: handle");
    g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)ops.size(), ops.data(),
          "operation graph: ops");
    g.finalize(graph, "cudnnBackendFinalize (operation graph)");
    // cuDNN's heuristics rank the engine configurations; the first whose
    // plan finalizes is taken
    cudnnBackendDescriptor_t heur = g.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    g.set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristics: graph");
    g.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics: mode");
    g.finalize(heur, "cudnnBackendFinalize (heuristics)");
    cudnnBackendDescriptor_t cfgs[8];
    int64_t n_cfg = 0;
    for (int i = 0; i < 8; i++) cfgs[i] = g.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (g.ok()) {
        g.call = "cudnnBackendGetAttribute (heuristics' results)";
        g.st = d->api.cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 8,
                                               &n_cfg, cfgs);
        if (n_cfg > 8) n_cfg = 8; // (the count may be of all the results, more than were asked for)
    }
    cudnnBackendDescriptor_t plan = NULL;
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    for (int64_t i = 0; g.ok() && i < n_cfg && !plan; i++) {
        cudnnBackendDescriptor_t p = g.make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        g.set(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &d->h, "plan: handle");
        g.set_desc(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[i], "plan: engine configuration");
        if (!g.ok()) break;
        last = d->api.cudnnBackendFinalize(p); // a configuration that does not finalize: the next one
        if (last == CUDNN_STATUS_SUCCESS) plan = p;
    }
    if (g.ok() && !plan) {
        g.st = last;
        g.call = n_cfg ? "cudnnBackendFinalize (execution plan)" : "cudnn heuristics: no engine";
    }
    int64_t ws = 0, got = 0;
    if (g.ok()) {
        g.call = "cudnnBackendGetAttribute (workspace size)";
        g.st = d->api.cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                               &got, &ws);
    }
    if (!g.ok()) {
        const int r = attn_fail(d, g.st, g.call, k, err, err_n);
        for (size_t i = g.made.size(); i-- > 0;) d->api.cudnnBackendDestroyDescriptor(g.made[i]);
        return r;
    }
    d->attn.push_back(attn_plan{k, plan, ws, std::move(g.made)});
    *out = &d->attn.back();
    return 0;
}

} // namespace

extern "C" int sdc_dnn_attention_prepare(sdc_dnn *d, int t, int batch, int heads, int tq, int tk, int dim,
                                         int q_stride, int kv_stride, int causal, size_t *ws, char *err,
                                         size_t err_n) {
    *ws = 0;
    const attn_key key = {t, batch, heads, tq, tk, dim, q_stride, kv_stride, causal ? 1 : 0};
    const attn_plan *p = NULL;
    if (attn_plan_for(d, key, &p, err, err_n)) return -1;
    *ws = (size_t)p->ws;
    return 0;
}

extern "C" int sdc_dnn_attention(sdc_dnn *d, void *out, const void *q, const void *k, const void *v, int t,
                                 int batch, int heads, int tq, int tk, int dim, int q_stride, int kv_stride,
                                 int causal, float scale, void *ws, size_t ws_bytes, char *err, size_t err_n) {
    const attn_key key = {t, batch, heads, tq, tk, dim, q_stride, kv_stride, causal ? 1 : 0};
    const attn_plan *p = NULL;
    if (attn_plan_for(d, key, &p, err, err_n)) return -1;
    if (ws_bytes < (size_t)p->ws) {
        say(err, err_n, "cuDNN's attention needs %lld bytes of workspace, %zu given", (long long)p->ws, ws_bytes);
        return -1;
    }
    // the masked scores' value: -inf, or the lowest float before cuDNN 9.10
    // (cudnn-frontend's choice: older engines preferred it)
    const float neg = d->api.cudnnGetVersion() < 91000 ? -3.402823466e38f : -INFINITY;
    int64_t uids[6] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_NEG_INF};
    void *ptrs[6] = {(void *)q, (void *)k, (void *)v, out, &scale, (void *)&neg};
    const int64_t n = causal ? 6 : 5;
    graph_builder g(&d->api);
    cudnnBackendDescriptor_t pack = g.make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    g.set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids, "variant pack: ids");
    g.set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs, "variant pack: pointers");
    g.set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "variant pack: workspace");
    g.finalize(pack, "cudnnBackendFinalize (variant pack)");
    if (g.ok()) {
        g.call = "cudnnBackendExecute";
        g.st = d->api.cudnnBackendExecute(d->h, p->plan, pack);
    }
    const int r = g.ok() ? 0 : attn_fail(d, g.st, g.call, key, err, err_n);
    for (size_t i = g.made.size(); i-- > 0;) d->api.cudnnBackendDestroyDescriptor(g.made[i]);
    return r;
}

#endif
