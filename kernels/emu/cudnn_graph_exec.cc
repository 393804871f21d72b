// cudnn_graph_exec.cc - cudnnBackendExecute on the emulated device (see
// cudnn_graph.h, emu_dnn.h): it binds the variant pack's pointers to the
// plan's graph, every tensor inside a live device allocation, and submits to
// the handle's stream an interpreter that runs the operations in their order
// on the CPU, one index of the batch dims at a time (unless a reduction runs
// across one), pointwise operations in their math precision and every
// result rounded once to its tensor's type; the softmax rows' maximum goes
// through the workspace, as on a GPU.
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "emu/emu.h"
#include "emu/emu_dnn.h"
#include "emu/cudnn_graph.h"

namespace sdc_emu {
namespace dnn {

namespace {

// what cudnnBackendExecute finds wrong with a pointer: on stderr always,
// as the other emulated calls report memory errors
cudnnStatus_t fail_loud(cudnnStatus_t s, const char *call, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
cudnnStatus_t fail_loud(cudnnStatus_t s, const char *call, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sdc emulated device: %s: %s\n", call, msg);
    last_error = std::string(call) + ": " + cudnnGetErrorString(s) + ": " + msg;
    return s;
}

// ------------------------------------------------------------ arithmetic

double load(const void *p, cudnnDataType_t t, int64_t i) {
    switch (t) {
    case CUDNN_DATA_FLOAT: return ((const float *)p)[i];
    case CUDNN_DATA_HALF: return __half2float(((const __half *)p)[i]);
    case CUDNN_DATA_BFLOAT16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case CUDNN_DATA_INT32: return ((const int32_t *)p)[i];
    case CUDNN_DATA_INT64: return (double)((const int64_t *)p)[i];
    case CUDNN_DATA_DOUBLE: return ((const double *)p)[i];
    default: return ((const unsigned char *)p)[i] != 0; // BOOLEAN: a byte
    }
}

// d rounded to float toward zero, its last bit set when inexact ("round to
// odd"): rounding that to fp16 or bf16 to nearest even gives d rounded once
float to_float_odd(double d) {
    const float f = (float)d;
    if ((double)f == d || d != d) return f;
    uint32_t u = sdc_emu_f32_bits(f);
    if (fabs((double)f) > fabs(d)) u -= 1; // one step toward zero
    return sdc_emu_bits_f32(u | 1u);
}

int32_t to_i32(double d) {
    if (d != d) return 0;
    const double r = nearbyint(d);
    return r >= 2147483647.0 ? INT32_MAX : r <= -2147483648.0 ? INT32_MIN : (int32_t)r;
}

// d as a value of type t (rounded once, to nearest even)
double round_to(cudnnDataType_t t, double d) {
    switch (t) {
    case CUDNN_DATA_FLOAT: return (float)d;
    case CUDNN_DATA_HALF: return __half2float(__float2half(to_float_odd(d)));
    case CUDNN_DATA_BFLOAT16: return __bfloat162float(__float2bfloat16(to_float_odd(d)));
    case CUDNN_DATA_INT32: return to_i32(d);
    case CUDNN_DATA_BOOLEAN: return d != 0.0;
    default: return d;
    }
}

// v, already a value of type t, stored
void store(void *p, cudnnDataType_t t, int64_t i, double v) {
    switch (t) {
    case CUDNN_DATA_FLOAT: ((float *)p)[i] = (float)v; break;
    case CUDNN_DATA_HALF: ((__half *)p)[i] = __float2half((float)v); break;
    case CUDNN_DATA_BFLOAT16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16((float)v); break;
    case CUDNN_DATA_INT32: ((int32_t *)p)[i] = to_i32(v); break;
    default: ((unsigned char *)p)[i] = v != 0.0; break;
    }
}

int32_t wrap32(int64_t v) { return (int32_t)(uint32_t)(uint64_t)v; }

// one element of a pointwise operation in its math precision
double apply(int mode, cudnnDataType_t prec, double x, double b, double t, int64_t index) {
    if (prec == CUDNN_DATA_BOOLEAN) { // the comparisons, of the values as they are
        switch (mode) {
        case CUDNN_POINTWISE_CMP_GE: return x >= b;
        case CUDNN_POINTWISE_CMP_GT: return x > b;
        default: return x < b;
        }
    }
    if (prec == CUDNN_DATA_INT32) {
        const int64_t ix = to_i32(x), ib = to_i32(b);
        switch (mode) {
        case CUDNN_POINTWISE_ADD: return wrap32(ix + ib);
        case CUDNN_POINTWISE_SUB: return wrap32(ix - ib);
        case CUDNN_POINTWISE_MUL: return wrap32(ix * ib);
        case CUDNN_POINTWISE_CMP_GE: return ix >= ib;
        case CUDNN_POINTWISE_CMP_GT: return ix > ib;
        case CUDNN_POINTWISE_CMP_LT: return ix < ib;
        case CUDNN_POINTWISE_GEN_INDEX: return wrap32(index);
        default: return t != 0.0 ? ix : ib; // BINARY_SELECT
        }
    }
    // FLOAT: IEEE single precision, each operation rounded
    const float fx = (float)x, fb = (float)b;
    float r;
    switch (mode) {
    case CUDNN_POINTWISE_ADD: r = fx + fb; break;
    case CUDNN_POINTWISE_SUB: r = fx - fb; break;
    case CUDNN_POINTWISE_MUL: r = fx * fb; break;
    case CUDNN_POINTWISE_DIV: r = fx / fb; break;
    case CUDNN_POINTWISE_EXP: r = expf(fx); break;
    case CUDNN_POINTWISE_CMP_GE: r = fx >= fb; break;
    case CUDNN_POINTWISE_CMP_GT: r = fx > fb; break;
    case CUDNN_POINTWISE_CMP_LT: r = fx < fb; break;
    case CUDNN_POINTWISE_GEN_INDEX: r = (float)index; break;
    default: r = t != 0.0 ? fx : fb; break; // BINARY_SELECT
    }
    return r;
}

// Walks every index of dims d[0..R) in row-major order: f(lin, off, idx),
// lin the dense linear index, off[k] = sum of idx[a] * st[k][a].
template <int K, class F> void walk(int R, const int64_t *d, const int64_t (&st)[K][MAXD], F f) {
    int64_t idx[MAXD] = {}, off[K] = {};
    int64_t total = 1;
    for (int a = 0; a < R; a++) total *= d[a];
    const int64_t inner = d[R - 1];
    for (int64_t lin = 0; lin < total;) {
        int64_t o[K];
        for (int k = 0; k < K; k++) o[k] = off[k];
        for (int64_t j = 0; j < inner; j++, lin++) {
            idx[R - 1] = j;
            f(lin, (const int64_t *)o, (const int64_t *)idx);
            for (int k = 0; k < K; k++) o[k] += st[k][R - 1];
        }
        for (int a = R - 2; a >= 0; a--) { // the odometer
            idx[a]++;
            for (int k = 0; k < K; k++) off[k] += st[k][a];
            if (idx[a] < d[a]) break;
            for (int k = 0; k < K; k++) off[k] -= st[k][a] * d[a];
            idx[a] = 0;
        }
    }
}

void dense_strides(int R, const int64_t *d, int64_t *s) {
    int64_t acc = 1;
    for (int a = R - 1; a >= 0; a--) s[a] = acc, acc *= d[a];
}

// the strides of a dense local tensor of dims d read as one of dims out
// (0 where d is 1: broadcast)
void bcast_strides(int R, const int64_t *d, int64_t *s) {
    dense_strides(R, d, s);
    for (int a = 0; a < R; a++)
        if (d[a] == 1) s[a] = 0;
}

// One execution: everything it needs, by value.
struct Exec {
    std::shared_ptr<const GraphInfo> g;
    std::shared_ptr<const EngineFacts> f;
    std::vector<void *> dev;     // per tensor: its device pointer (non-virtual, not by value)
    std::vector<double> scalar;  // per tensor: its value (by value)
    void *ws = NULL;

    // the local dims of tensor t: one index of the split dims at a time
    void local(const TensorInfo &t, int64_t *ld) const {
        for (int a = 0; a < f->rank; a++) ld[a] = f->split[a] ? 1 : t.dims[a];
    }
    // the element offset of chunk c's slice of t in its memory
    int64_t base(const TensorInfo &t, const int64_t *c) const {
        int64_t o = 0;
        for (int a = 0; a < f->rank; a++)
            if (f->split[a] && t.dims[a] > 1) o += c[a] * t.strides[a];
        return o;
    }
    void load_slice(size_t ix, const int64_t *c, std::vector<double> &out) const {
        const TensorInfo &t = g->tensors[ix];
        const int R = f->rank;
        if (t.by_value) {
            out.assign(1, scalar[ix]);
            return;
        }
        int64_t ld[MAXD], st[1][MAXD];
        local(t, ld);
        for (int a = 0; a < R; a++) st[0][a] = t.strides[a];
        int64_t n = 1;
        for (int a = 0; a < R; a++) n *= ld[a];
        out.resize((size_t)n);
        const void *p = dev[ix];
        const int64_t b = base(t, c);
        walk<1>(R, ld, st,
                [&](int64_t lin, const int64_t *o, const int64_t *) { out[(size_t)lin] = load(p, t.type, b + o[0]); });
    }
    void store_slice(size_t ix, const int64_t *c, const std::vector<double> &v) const {
        const TensorInfo &t = g->tensors[ix];
        const int R = f->rank;
        int64_t ld[MAXD], st[1][MAXD];
        local(t, ld);
        for (int a = 0; a < R; a++) st[0][a] = t.strides[a];
        void *p = dev[ix];
        const int64_t b = base(t, c);
        walk<1>(R, ld, st,
                [&](int64_t lin, const int64_t *o, const int64_t *) { store(p, t.type, b + o[0], v[(size_t)lin]); });
    }

    void pointwise(const OpInfo &op, const std::vector<double> *in[3], const int64_t *c, std::vector<double> &y) const {
        const int R = f->rank;
        int64_t ly[MAXD], st[4][MAXD] = {};
        local(op.out, ly);
        dense_strides(R, ly, st[3]);
        for (int k = 0; k < 3; k++)
            if (op.has[k]) {
                int64_t li[MAXD];
                local(op.in[k], li);
                bcast_strides(R, li, st[k]);
            }
        int64_t n = 1;
        for (int a = 0; a < R; a++) n *= ly[a];
        y.resize((size_t)n);
        const int mode = op.m.mode;
        const int ax = (int)op.m.axis;
        // GEN_INDEX along a split dim: the chunk's index there
        const int64_t fixed = mode == CUDNN_POINTWISE_GEN_INDEX && f->split[ax] && op.out.dims[ax] > 1 ? c[ax] : -1;
        const double *x = in[0]->data(), *b = op.has[1] ? in[1]->data() : NULL, *t = op.has[2] ? in[2]->data() : NULL;
        walk<4>(R, ly, st, [&](int64_t lin, const int64_t *o, const int64_t *idx) {
            const int64_t index = mode == CUDNN_POINTWISE_GEN_INDEX ? (fixed >= 0 ? fixed : idx[ax]) : 0;
            y[(size_t)lin] = apply(mode, op.m.prec, x[o[0]], b ? b[o[1]] : 0.0, t ? t[o[2]] : 0.0, index);
        });
    }

    void reduction(const OpInfo &op, const std::vector<double> &x, std::vector<double> &y) const {
        const int R = f->rank;
        int64_t lx[MAXD], ly[MAXD], st[2][MAXD];
        local(op.in[0], lx);
        local(op.out, ly);
        dense_strides(R, lx, st[0]);
        bcast_strides(R, ly, st[1]);
        int64_t n = 1;
        for (int a = 0; a < R; a++) n *= ly[a];
        const bool max = op.m.mode == CUDNN_REDUCE_TENSOR_MAX;
        y.assign((size_t)n, max ? -INFINITY : 0.0);
        walk<2>(R, lx, st, [&](int64_t, const int64_t *o, const int64_t *) {
            const double v = x[(size_t)o[0]];
            double &acc = y[(size_t)o[1]];
            if (!max) acc += v;
            else if (v != v || v > acc) acc = v; // a NaN stays
        });
    }

    void matmul(const OpInfo &op, const std::vector<double> &A, const std::vector<double> &B,
                std::vector<double> &C) const {
        const int R = f->rank;
        int64_t la[MAXD], lb[MAXD], lc[MAXD], st[3][MAXD];
        local(op.in[0], la);
        local(op.in[1], lb);
        local(op.out, lc);
        bcast_strides(R, la, st[0]);
        bcast_strides(R, lb, st[1]);
        dense_strides(R, lc, st[2]);
        const int M = (int)lc[R - 2], N = (int)lc[R - 1], K = (int)la[R - 1];
        int64_t n = 1;
        for (int a = 0; a < R; a++) n *= lc[a];
        C.resize((size_t)n);
        // one product per batch index (the last two dims walked as one step)
        int64_t bd[MAXD], bs[3][MAXD];
        for (int a = 0; a < R - 2; a++) {
            bd[a] = lc[a];
            for (int k = 0; k < 3; k++) bs[k][a] = st[k][a];
        }
        bd[R - 2] = 1;
        for (int k = 0; k < 3; k++) bs[k][R - 2] = 0;
        walk<3>(R - 1, bd, bs, [&](int64_t, const int64_t *o, const int64_t *) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0, A.data() + o[0], K, B.data() + o[1],
                        N, 0.0, C.data() + o[2], N);
        });
    }

    // y, the workspace operation's output, written to the workspace and read back
    void through_workspace(const OpInfo &op, const int64_t *c, std::vector<double> &y) const {
        const int R = f->rank;
        int64_t ly[MAXD], gs[MAXD], st[1][MAXD];
        local(op.out, ly);
        dense_strides(R, op.out.dims, gs);
        for (int a = 0; a < R; a++) st[0][a] = f->split[a] ? 0 : gs[a];
        int64_t first = 0;
        for (int a = 0; a < R; a++)
            if (f->split[a] && op.out.dims[a] > 1) first += c[a] * gs[a];
        unsigned char *rows = (unsigned char *)ws + 256;
        walk<1>(R, ly, st, [&](int64_t lin, const int64_t *o, const int64_t *) {
            const float v = (float)y[(size_t)lin];
            memcpy(rows + 4 * (first + o[0]), &v, 4);
        });
        walk<1>(R, ly, st, [&](int64_t lin, const int64_t *o, const int64_t *) {
            float v;
            memcpy(&v, rows + 4 * (first + o[0]), 4);
            y[(size_t)lin] = v;
        });
    }

    void run() const {
        const int R = f->rank;
        const size_t nt = g->tensors.size();
        if (ws && f->workspace >= 256) {
            char header[256] = {};
            snprintf(header, sizeof header, "sdc emulated cuDNN fused attention: %lld rows of softmax max",
                     (long long)f->rows);
            memcpy(ws, header, sizeof header);
        }
        int64_t c[MAXD] = {};
        for (;;) {
            std::vector<std::vector<double>> buf(nt);
            std::vector<bool> have(nt, false);
            for (size_t k = 0; k < g->ops.size(); k++) {
                const OpInfo &op = g->ops[k];
                const std::vector<double> *in[3] = {NULL, NULL, NULL};
                for (int i = 0; i < 3; i++) {
                    if (!op.has[i]) continue;
                    const size_t ix = (size_t)op.in_ix[i];
                    if (!have[ix]) { // a graph input (producers run first)
                        load_slice(ix, c, buf[ix]);
                        have[ix] = true;
                    }
                    in[i] = &buf[ix];
                }
                std::vector<double> y;
                if (op.kind == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) pointwise(op, in, c, y);
                else if (op.kind == CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR) reduction(op, *in[0], y);
                else matmul(op, *in[0], *in[1], y);
                for (double &v : y) v = round_to(op.out.type, v);
                if ((int)k == f->ws_op && ws) through_workspace(op, c, y);
                const size_t ox = (size_t)op.out_ix;
                if (!op.out.is_virtual) store_slice(ox, c, y);
                for (int i = 0; i < 3; i++)
                    if (op.has[i] && g->last_use[(size_t)op.in_ix[i]] == (int)k) {
                        std::vector<double>().swap(buf[(size_t)op.in_ix[i]]);
                        have[(size_t)op.in_ix[i]] = false;
                    }
                if (g->last_use[ox] > (int)k) {
                    buf[ox] = std::move(y);
                    have[ox] = true;
                }
            }
            int a = R - 1; // the next chunk
            for (; a >= 0; a--) {
                if (!f->split[a]) continue;
                if (++c[a] < f->ext[a]) break;
                c[a] = 0;
            }
            if (a < 0) break;
        }
    }
};

const char EXE[] = "cudnnBackendExecute";

} // namespace

} // namespace dnn
} // namespace sdc_emu

using namespace sdc_emu::dnn;

// ------------------------------------------------------------------- API

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t executionPlan,
                                  cudnnBackendDescriptor_t variantPack) {
    if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, EXE, "a NULL handle");
    const Desc *p = live(executionPlan), *v = live(variantPack);
    if (!p || p->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR || !p->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, EXE, "%p is no finalized execution plan", executionPlan);
    if (!v || v->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR || !v->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, EXE, "%p is no finalized variant pack", variantPack);
    cudaStream_t stream = NULL;
    cudnnGetStream(handle, &stream);
    Exec x;
    try {
        x.g = p->graph, x.f = p->facts;
        const GraphInfo &g = *x.g;
        x.dev.assign(g.tensors.size(), NULL);
        x.scalar.assign(g.tensors.size(), 0.0);
        for (size_t i = 0; i < g.tensors.size(); i++) {
            const TensorInfo &t = g.tensors[i];
            if (t.is_virtual) continue;
            const auto at = std::find(v->uids.begin(), v->uids.end(), t.uid);
            if (at == v->uids.end())
                return fail_loud(CUDNN_STATUS_BAD_PARAM, EXE, "tensor uid %lld is not in the variant pack",
                                 (long long)t.uid);
            void *ptr = v->ptrs[(size_t)(at - v->uids.begin())];
            if (!ptr)
                return fail_loud(CUDNN_STATUS_BAD_PARAM, EXE, "tensor uid %lld: a NULL pointer", (long long)t.uid);
            if (t.by_value) { // a host pointer to the value, read now
                x.scalar[i] = load(ptr, t.type, 0);
                continue;
            }
            if ((uintptr_t)ptr % (uintptr_t)t.align)
                return fail_loud(CUDNN_STATUS_BAD_PARAM, EXE, "tensor uid %lld at %p is not aligned to its byte "
                                 "alignment, %lld", (long long)t.uid, ptr, (long long)t.align);
            const int64_t bytes = t.extent_bytes();
            if (!sdc_emu::device_range(ptr, (size_t)bytes))
                return fail_loud(CUDNN_STATUS_EXECUTION_FAILED, EXE, "tensor uid %lld %s (%lld bytes at %p) is not "
                                 "inside a device allocation", (long long)t.uid, t.shape().c_str(), (long long)bytes,
                                 ptr);
            x.dev[i] = ptr;
        }
        const int64_t wsb = x.f->workspace;
        if (wsb > 0) {
            if (!v->workspace || !sdc_emu::device_range(v->workspace, (size_t)wsb))
                return fail_loud(CUDNN_STATUS_BAD_PARAM, EXE, "the workspace (%lld bytes at %p) is not inside a "
                                 "device allocation", (long long)wsb, v->workspace);
            x.ws = v->workspace;
        }
    } catch (const std::bad_alloc &) {
        return fail(CUDNN_STATUS_ALLOC_FAILED, EXE, "out of host memory");
    }
    cudaError_t e = sdc_emu::submit(stream, EXE, [x]() {
        // a captured graph may replay this after a buffer was freed
        for (size_t i = 0; i < x.dev.size(); i++)
            if (x.dev[i] && !sdc_emu::device_range(x.dev[i], (size_t)x.g->tensors[i].extent_bytes())) {
                fprintf(stderr, "sdc emulated device: %s: tensor uid %lld (at %p) is no longer inside a device "
                        "allocation\n", EXE, (long long)x.g->tensors[i].uid, x.dev[i]);
                return cudaErrorLaunchFailure;
            }
        if (x.ws && !sdc_emu::device_range(x.ws, (size_t)x.f->workspace)) {
            fprintf(stderr, "sdc emulated device: %s: the workspace (at %p) is no longer inside a device "
                    "allocation\n", EXE, x.ws);
            return cudaErrorLaunchFailure;
        }
        try {
            x.run();
        } catch (const std::bad_alloc &) {
            fprintf(stderr, "sdc emulated device: %s: out of host memory for the graph's intermediates\n", EXE);
            return cudaErrorMemoryAllocation;
        }
        return cudaSuccess;
    });
    if (e != cudaSuccess) return fail(CUDNN_STATUS_EXECUTION_FAILED, EXE, "%s", cudaGetErrorString(e));
    return CUDNN_STATUS_SUCCESS;
}
