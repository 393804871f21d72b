// cudnn_graph_check.cc - what cudnnBackendFinalize checks in the emulated
// cuDNN backend API (see cudnn_graph.h, emu_dnn.h): each descriptor type's
// attributes, required and consistent as cuDNN documents them; the operation
// graph (one tensor per unique id, one producer per tensor, no cycle) with
// its operations put in an order that runs producers first; and the rule of
// the one engine, fused attention, which says whether it takes a graph, the
// workspace it needs and how the execution walks the tensors.
#include <limits.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emu/emu.h"
#include "emu/emu_dnn.h"
#include "emu/cudnn_graph.h"

namespace sdc_emu {
namespace dnn {

// bytes of one element of a tensor of data type t (sub-byte types: 1, for
// the alignment check only)
int64_t data_size(cudnnDataType_t t) {
    switch (t) {
    case CUDNN_DATA_FLOAT: case CUDNN_DATA_INT32: return 4;
    case CUDNN_DATA_DOUBLE: case CUDNN_DATA_INT64: return 8;
    case CUDNN_DATA_HALF: case CUDNN_DATA_BFLOAT16: return 2;
    default: break;
    }
    switch ((int)t) {
    case 5: case 7: case 14: case 19: return 4; // INT8x4, UINT8x4, FAST_FLOAT_FOR_FP8, UINT32
    case 8: return 32;                          // INT8x32
    case 20: return 8;                          // COMPLEX_FP32
    case 21: return 16;                         // COMPLEX_FP64
    }
    return 1;
}

namespace {

// inputs besides x: 1 (b) or 2 (b, t); -1 for the backward modes (dy, dx)
int pw_extra_inputs(int m) {
    switch (m) {
    case CUDNN_POINTWISE_ADD: case CUDNN_POINTWISE_MUL: case CUDNN_POINTWISE_MIN: case CUDNN_POINTWISE_MAX:
    case CUDNN_POINTWISE_ADD_SQUARE: case CUDNN_POINTWISE_DIV: case CUDNN_POINTWISE_MOD: case CUDNN_POINTWISE_POW:
    case CUDNN_POINTWISE_SUB: case CUDNN_POINTWISE_ATAN2: case CUDNN_POINTWISE_CMP_EQ: case CUDNN_POINTWISE_CMP_NEQ:
    case CUDNN_POINTWISE_CMP_GT: case CUDNN_POINTWISE_CMP_GE: case CUDNN_POINTWISE_CMP_LT: case CUDNN_POINTWISE_CMP_LE:
    case CUDNN_POINTWISE_LOGICAL_AND: case CUDNN_POINTWISE_LOGICAL_OR:
        return 1;
    case CUDNN_POINTWISE_BINARY_SELECT: return 2;
    default: return m >= 200 && m <= 207 ? -1 : 0;
    }
}

bool is_cmp(int m) {
    return m == CUDNN_POINTWISE_CMP_GT || m == CUDNN_POINTWISE_CMP_GE || m == CUDNN_POINTWISE_CMP_LT;
}

const char *data_name(cudnnDataType_t t) {
    switch (t) {
    case CUDNN_DATA_FLOAT: return "FLOAT";
    case CUDNN_DATA_DOUBLE: return "DOUBLE";
    case CUDNN_DATA_HALF: return "HALF";
    case CUDNN_DATA_INT8: return "INT8";
    case CUDNN_DATA_INT32: return "INT32";
    case CUDNN_DATA_UINT8: return "UINT8";
    case CUDNN_DATA_BFLOAT16: return "BFLOAT16";
    case CUDNN_DATA_INT64: return "INT64";
    case CUDNN_DATA_BOOLEAN: return "BOOLEAN";
    }
    return "(another data type)";
}

// the live, finalized descriptor of type `type` set as attribute `name` of d
cudnnStatus_t referenced(const Desc *d, int name, int type, const char *call, Desc **out) {
    *out = NULL;
    const Value *v = d->get(name);
    if (!v) return fail(CUDNN_STATUS_BAD_PARAM, call, "%s of the %s descriptor is not set", attr_text(name),
                        type_name(d->type));
    Desc *r = live(v->ptr(0));
    if (!r) return fail(CUDNN_STATUS_BAD_PARAM, call, "the descriptor set as %s was destroyed", attr_text(name));
    if (type >= 0 && r->type != type)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "the descriptor set as %s is no %s descriptor", attr_text(name),
                    type_name(type));
    if (!r->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "the %s descriptor set as %s is not finalized", type_name(r->type),
                    attr_text(name));
    *out = r;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t require(const Desc *d, const char *call, std::initializer_list<int> names) {
    for (int n : names)
        if (!d->get(n))
            return fail(CUDNN_STATUS_BAD_PARAM, call, "%s of the %s descriptor is not set", attr_text(n),
                        type_name(d->type));
    return CUDNN_STATUS_SUCCESS;
}

bool same_rank(const OpInfo &o, std::string *why) {
    const int r = o.out.rank;
    for (int i = 0; i < 3; i++)
        if (o.has[i] && o.in[i].rank != r) {
            *why = "tensor " + std::to_string(o.in[i].uid) + " has " + std::to_string(o.in[i].rank) +
                   " dimensions, tensor " + std::to_string(o.out.uid) + " " + std::to_string(r);
            return false;
        }
    return true;
}

EngineFacts assess(const GraphInfo &g);

// the finalized graph set as attribute `name` of d, and what the engine makes of it
cudnnStatus_t graph_of(Desc *d, int name) {
    Desc *g;
    cudnnStatus_t s = referenced(d, name, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, FIN, &g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    d->graph = g->graph;
    d->facts = g->facts;
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

// --------------------------------------------------------------- finalize

cudnnStatus_t finalize_tensor(Desc *d) {
    cudnnStatus_t s = require(d, FIN, {CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_ATTR_TENSOR_DIMENSIONS,
                                       CUDNN_ATTR_TENSOR_STRIDES, CUDNN_ATTR_TENSOR_UNIQUE_ID,
                                       CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT});
    if (s != CUDNN_STATUS_SUCCESS) return s;
    TensorInfo t;
    t.type = (cudnnDataType_t)d->get(CUDNN_ATTR_TENSOR_DATA_TYPE)->enum32();
    t.uid = d->get(CUDNN_ATTR_TENSOR_UNIQUE_ID)->i64(0);
    t.align = d->get(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT)->i64(0);
    const Value *dv = d->get(CUDNN_ATTR_TENSOR_DIMENSIONS), *sv = d->get(CUDNN_ATTR_TENSOR_STRIDES);
    if (dv->n != sv->n)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld: %lld dimensions, %lld strides", (long long)t.uid,
                    (long long)dv->n, (long long)sv->n);
    t.rank = (int)dv->n;
    double elems = 1, extent = 1;
    for (int a = 0; a < t.rank; a++) {
        t.dims[a] = dv->i64(a), t.strides[a] = sv->i64(a);
        if (t.dims[a] <= 0 || t.strides[a] < 0)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld: dimension %d is %lld, its stride %lld (a dimension "
                        "must be positive, a stride not negative)", (long long)t.uid, a, (long long)t.dims[a],
                        (long long)t.strides[a]);
        elems *= (double)t.dims[a];
        extent += (double)(t.dims[a] - 1) * (double)t.strides[a];
    }
    if (elems > 9.0e15 || extent * (double)data_size(t.type) > 9.0e15)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld: too large", (long long)t.uid);
    if (t.align <= 0 || t.align % data_size(t.type) != 0)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld: a byte alignment of %lld is no multiple of its %s "
                    "elements' size", (long long)t.uid, (long long)t.align, data_name(t.type));
    const Value *vv = d->get(CUDNN_ATTR_TENSOR_IS_VIRTUAL), *bv = d->get(CUDNN_ATTR_TENSOR_IS_BY_VALUE);
    t.is_virtual = vv && vv->boolean();
    t.by_value = bv && bv->boolean();
    if (t.is_virtual && t.by_value)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld is both virtual and by value", (long long)t.uid);
    if (t.by_value && t.elems() != 1)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld is by value with dimensions %s (a scalar has all 1)",
                    (long long)t.uid, t.shape().c_str());
    d->tensor = t;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_mode(Desc *d) {
    ModeInfo m;
    cudnnStatus_t s;
    if (d->type == CUDNN_BACKEND_POINTWISE_DESCRIPTOR) {
        s = require(d, FIN, {CUDNN_ATTR_POINTWISE_MODE, CUDNN_ATTR_POINTWISE_MATH_PREC});
        if (s != CUDNN_STATUS_SUCCESS) return s;
        m.mode = d->get(CUDNN_ATTR_POINTWISE_MODE)->enum32();
        m.prec = (cudnnDataType_t)d->get(CUDNN_ATTR_POINTWISE_MATH_PREC)->enum32();
        if (const Value *a = d->get(CUDNN_ATTR_POINTWISE_AXIS)) {
            m.axis = a->i64(0);
            if (m.axis < 0)
                return fail(CUDNN_STATUS_BAD_PARAM, FIN, "pointwise axis %lld is negative", (long long)m.axis);
        } else if (m.mode == CUDNN_POINTWISE_GEN_INDEX) {
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "GEN_INDEX needs CUDNN_ATTR_POINTWISE_AXIS");
        }
    } else if (d->type == CUDNN_BACKEND_REDUCTION_DESCRIPTOR) {
        s = require(d, FIN, {CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_ATTR_REDUCTION_COMP_TYPE});
        if (s != CUDNN_STATUS_SUCCESS) return s;
        m.mode = d->get(CUDNN_ATTR_REDUCTION_OPERATOR)->enum32();
        m.prec = (cudnnDataType_t)d->get(CUDNN_ATTR_REDUCTION_COMP_TYPE)->enum32();
    } else {
        s = require(d, FIN, {CUDNN_ATTR_MATMUL_COMP_TYPE});
        if (s != CUDNN_STATUS_SUCCESS) return s;
        m.prec = (cudnnDataType_t)d->get(CUDNN_ATTR_MATMUL_COMP_TYPE)->enum32();
    }
    d->mode = m;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_pointwise_op(Desc *d) {
    OpInfo o;
    o.kind = d->type;
    Desc *pw, *t;
    cudnnStatus_t s = referenced(d, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                                 CUDNN_BACKEND_POINTWISE_DESCRIPTOR, FIN, &pw);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    o.m = pw->mode;
    const int extra = pw_extra_inputs(o.m.mode);
    if (extra < 0)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, FIN, "pointwise mode %d is a backward mode (its dy and dx are not "
                    "modelled)", (int)o.m.mode);
    const int names[3] = {CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                          CUDNN_ATTR_OPERATION_POINTWISE_TDESC};
    for (int i = 0; i < 3; i++) {
        const bool want = i <= extra;
        if (!want && d->get(names[i]))
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "pointwise mode %d takes %d input(s), %s is set too",
                        (int)o.m.mode, extra + 1, attr_text(names[i]));
        if (!want) continue;
        if ((s = referenced(d, names[i], CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &t)) != CUDNN_STATUS_SUCCESS) return s;
        o.in[i] = t->tensor, o.has[i] = true;
    }
    if ((s = referenced(d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &t)) !=
        CUDNN_STATUS_SUCCESS)
        return s;
    o.out = t->tensor;
    std::string why;
    if (!same_rank(o, &why)) return fail(CUDNN_STATUS_BAD_PARAM, FIN, "pointwise operation: %s", why.c_str());
    const int r = o.out.rank;
    if (o.m.mode == CUDNN_POINTWISE_GEN_INDEX) {
        if (o.m.axis >= r)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "GEN_INDEX along axis %lld of a %d-D tensor",
                        (long long)o.m.axis, r);
        for (int a = 0; a < r; a++)
            if (o.out.dims[a] != o.in[0].dims[a])
                return fail(CUDNN_STATUS_BAD_PARAM, FIN, "GEN_INDEX: y %s is not the shape of x %s",
                            o.out.shape().c_str(), o.in[0].shape().c_str());
    } else {
        for (int a = 0; a < r; a++) {
            int64_t want = 1;
            for (int i = 0; i < 3; i++)
                if (o.has[i]) want = std::max(want, o.in[i].dims[a]);
            bool ok = o.out.dims[a] == want;
            for (int i = 0; i < 3; i++)
                if (o.has[i] && o.in[i].dims[a] != 1 && o.in[i].dims[a] != want) ok = false;
            if (!ok) {
                std::string in;
                for (int i = 0; i < 3; i++)
                    if (o.has[i]) in += std::string(i ? ", " : "") + "xbt"[i] + " " + o.in[i].shape();
                return fail(CUDNN_STATUS_BAD_PARAM, FIN, "pointwise mode %d: y %s is not the broadcast of %s",
                            (int)o.m.mode, o.out.shape().c_str(), in.c_str());
            }
        }
    }
    d->op = std::make_shared<const OpInfo>(o);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_reduction_op(Desc *d) {
    OpInfo o;
    o.kind = d->type;
    Desc *r, *x, *y;
    cudnnStatus_t s;
    if ((s = referenced(d, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, FIN, &r)) ||
        (s = referenced(d, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &x)) ||
        (s = referenced(d, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &y)))
        return s;
    o.m = r->mode;
    o.in[0] = x->tensor, o.has[0] = true;
    o.out = y->tensor;
    std::string why;
    if (!same_rank(o, &why)) return fail(CUDNN_STATUS_BAD_PARAM, FIN, "reduction: %s", why.c_str());
    for (int a = 0; a < o.out.rank; a++)
        if (o.out.dims[a] != 1 && o.out.dims[a] != o.in[0].dims[a])
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "reduction of x %s to y %s: each of y's dimensions must be "
                        "x's or 1", o.in[0].shape().c_str(), o.out.shape().c_str());
    d->op = std::make_shared<const OpInfo>(o);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_matmul_op(Desc *d) {
    OpInfo o;
    o.kind = d->type;
    Desc *m, *a, *b, *c;
    cudnnStatus_t s;
    if ((s = referenced(d, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_BACKEND_MATMUL_DESCRIPTOR, FIN, &m)) ||
        (s = referenced(d, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &a)) ||
        (s = referenced(d, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &b)) ||
        (s = referenced(d, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR, FIN, &c)))
        return s;
    o.m = m->mode;
    o.in[0] = a->tensor, o.in[1] = b->tensor, o.has[0] = o.has[1] = true;
    o.out = c->tensor;
    std::string why;
    if (!same_rank(o, &why)) return fail(CUDNN_STATUS_BAD_PARAM, FIN, "matmul: %s", why.c_str());
    const int r = o.out.rank;
    const TensorInfo &A = o.in[0], &B = o.in[1], &C = o.out;
    bool ok = r >= 2 && A.dims[r - 1] == B.dims[r - 2] && C.dims[r - 2] == A.dims[r - 2] &&
              C.dims[r - 1] == B.dims[r - 1];
    for (int i = 0; ok && i < r - 2; i++)
        ok = (A.dims[i] == C.dims[i] || A.dims[i] == 1) && (B.dims[i] == C.dims[i] || B.dims[i] == 1) &&
             C.dims[i] == std::max(A.dims[i], B.dims[i]);
    if (!ok)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "matmul A %s x B %s -> C %s: want [.., M, K] x [.., K, N] -> "
                    "[.., M, N], batch dimensions equal or 1 in A or B", A.shape().c_str(), B.shape().c_str(),
                    C.shape().c_str());
    d->op = std::make_shared<const OpInfo>(o);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_graph(Desc *d) {
    cudnnStatus_t s = require(d, FIN, {CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_ATTR_OPERATIONGRAPH_OPS});
    if (s != CUDNN_STATUS_SUCCESS) return s;
    GraphInfo g;
    g.handle = (cudnnHandle_t)d->get(CUDNN_ATTR_OPERATIONGRAPH_HANDLE)->ptr(0);
    const Value *ov = d->get(CUDNN_ATTR_OPERATIONGRAPH_OPS);
    std::vector<OpInfo> ops;
    std::map<int64_t, int> index; // uid -> tensor
    auto add = [&](const TensorInfo &t, int *ix) -> bool {
        auto it = index.find(t.uid);
        if (it == index.end()) {
            *ix = (int)g.tensors.size();
            index[t.uid] = *ix;
            g.tensors.push_back(t);
            return true;
        }
        *ix = it->second;
        return g.tensors[(size_t)*ix].same(t);
    };
    for (int64_t i = 0; i < ov->n; i++) {
        Desc *od = live(ov->ptr(i));
        if (!od || !od->op) // destroyed (or its address reused)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "operation %lld of the graph was destroyed", (long long)i);
        if (!od->finalized)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "operation %lld of the graph (%s) is not finalized", (long long)i,
                        type_name(od->type));
        OpInfo o = *od->op;
        for (int k = 0; k < 3; k++)
            if (o.has[k] && !add(o.in[k], &o.in_ix[k]))
                return fail(CUDNN_STATUS_BAD_PARAM, FIN, "two different tensors have the unique id %lld",
                            (long long)o.in[k].uid);
        if (!add(o.out, &o.out_ix))
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "two different tensors have the unique id %lld",
                        (long long)o.out.uid);
        ops.push_back(o);
    }
    const size_t nt = g.tensors.size(), no = ops.size();
    std::vector<int> producer(nt, -1);
    for (size_t i = 0; i < no; i++) {
        const TensorInfo &y = g.tensors[(size_t)ops[i].out_ix];
        if (y.by_value)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld is by value, and the output of operation %zu",
                        (long long)y.uid, i);
        if (producer[(size_t)ops[i].out_ix] >= 0)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "tensor %lld is the output of operations %d and %zu",
                        (long long)y.uid, producer[(size_t)ops[i].out_ix], i);
        producer[(size_t)ops[i].out_ix] = (int)i;
    }
    for (size_t t = 0; t < nt; t++)
        if (g.tensors[t].is_virtual && producer[t] < 0)
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "virtual tensor %lld is the output of no operation",
                        (long long)g.tensors[t].uid);
    // producers before consumers, otherwise the order given
    std::vector<bool> done(no, false), made(nt, false);
    for (size_t t = 0; t < nt; t++) made[t] = producer[t] < 0;
    while (g.ops.size() < no) {
        size_t pick = no;
        for (size_t i = 0; i < no && pick == no; i++) {
            if (done[i]) continue;
            bool ready = true;
            for (int k = 0; k < 3; k++)
                if (ops[i].has[k] && !made[(size_t)ops[i].in_ix[k]]) ready = false;
            if (ready) pick = i;
        }
        if (pick == no) return fail(CUDNN_STATUS_BAD_PARAM, FIN, "the operations form a cycle");
        done[pick] = true;
        made[(size_t)ops[pick].out_ix] = true;
        g.ops.push_back(ops[pick]);
    }
    g.last_use.assign(nt, -1);
    for (size_t i = 0; i < no; i++)
        for (int k = 0; k < 3; k++)
            if (g.ops[i].has[k]) g.last_use[(size_t)g.ops[i].in_ix[k]] = (int)i;
    d->graph = std::make_shared<const GraphInfo>(std::move(g));
    d->facts = std::make_shared<const EngineFacts>(assess(*d->graph));
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_heur(Desc *d) {
    cudnnStatus_t s = require(d, FIN, {CUDNN_ATTR_ENGINEHEUR_MODE});
    if (s != CUDNN_STATUS_SUCCESS || (s = graph_of(d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH))) return s;
    // success with no result when the engine cannot run the graph; the reason is kept
    if (!d->facts->ok) note("cudnnBackendFinalize (engine heuristics)", "no engine", d->facts->why.c_str());
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_engine(Desc *d) {
    cudnnStatus_t s = require(d, FIN, {CUDNN_ATTR_ENGINE_GLOBAL_INDEX});
    if (s != CUDNN_STATUS_SUCCESS || (s = graph_of(d, CUDNN_ATTR_ENGINE_OPERATION_GRAPH))) return s;
    d->engine = d->get(CUDNN_ATTR_ENGINE_GLOBAL_INDEX)->i64(0);
    if (d->engine != 0)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, FIN, "engine %lld: the emulation has one engine, 0",
                    (long long)d->engine);
    if (!d->facts->ok) return fail(CUDNN_STATUS_NOT_SUPPORTED, FIN, "%s", d->facts->why.c_str());
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_cfg(Desc *d) {
    Desc *e;
    cudnnStatus_t s = referenced(d, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_BACKEND_ENGINE_DESCRIPTOR, FIN, &e);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    d->graph = e->graph, d->facts = e->facts, d->engine = e->engine;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_plan(Desc *d) {
    cudnnStatus_t s = require(d, FIN, {CUDNN_ATTR_EXECUTION_PLAN_HANDLE});
    if (s != CUDNN_STATUS_SUCCESS) return s;
    Desc *c;
    if ((s = referenced(d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, FIN, &c)))
        return s;
    if (!c->facts->ok) return fail(CUDNN_STATUS_NOT_SUPPORTED, FIN, "%s", c->facts->why.c_str());
    d->graph = c->graph, d->facts = c->facts, d->engine = c->engine;
    d->handle = (cudnnHandle_t)d->get(CUDNN_ATTR_EXECUTION_PLAN_HANDLE)->ptr(0);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_pack(Desc *d) {
    cudnnStatus_t s = require(d, FIN, {CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS});
    if (s != CUDNN_STATUS_SUCCESS) return s;
    const Value *u = d->get(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS), *p = d->get(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
    if (u->n != p->n)
        return fail(CUDNN_STATUS_BAD_PARAM, FIN, "variant pack: %lld unique ids, %lld data pointers", (long long)u->n,
                    (long long)p->n);
    d->uids.clear(), d->ptrs.clear();
    for (int64_t i = 0; i < u->n; i++) {
        const int64_t id = u->i64(i);
        if (std::find(d->uids.begin(), d->uids.end(), id) != d->uids.end())
            return fail(CUDNN_STATUS_BAD_PARAM, FIN, "variant pack: unique id %lld given twice", (long long)id);
        d->uids.push_back(id);
        d->ptrs.push_back(p->ptr(i));
    }
    const Value *w = d->get(CUDNN_ATTR_VARIANT_PACK_WORKSPACE); // optional: a plan may need none
    d->workspace = w ? w->ptr(0) : NULL;
    return CUDNN_STATUS_SUCCESS;
}

// ------------------------------------------------------------------ engine

namespace {

bool engine_mode(int m) {
    switch (m) {
    case CUDNN_POINTWISE_MUL: case CUDNN_POINTWISE_ADD: case CUDNN_POINTWISE_SUB: case CUDNN_POINTWISE_DIV:
    case CUDNN_POINTWISE_EXP: case CUDNN_POINTWISE_CMP_GE: case CUDNN_POINTWISE_CMP_GT: case CUDNN_POINTWISE_CMP_LT:
    case CUDNN_POINTWISE_GEN_INDEX: case CUDNN_POINTWISE_BINARY_SELECT:
        return true;
    }
    return false;
}

bool engine_prec(int m, cudnnDataType_t p) {
    if (p == CUDNN_DATA_FLOAT) return true;
    if (p == CUDNN_DATA_BOOLEAN) return is_cmp(m);
    if (p == CUDNN_DATA_INT32)
        return m != CUDNN_POINTWISE_EXP && m != CUDNN_POINTWISE_DIV;
    return false;
}

// Can the fused attention engine run g (see emu_dnn.h)? Its workspace, and
// how the execution walks the tensors.
EngineFacts assess(const GraphInfo &g) {
    EngineFacts f;
    auto no = [&](const std::string &why) {
        f.ok = false;
        f.why = "the fused attention engine does not take this graph: " + why;
        return f;
    };
    const int R = 4;
    for (const TensorInfo &t : g.tensors) {
        const std::string name = "tensor " + std::to_string(t.uid);
        if (t.rank != R) return no(name + " has " + std::to_string(t.rank) + " dimensions (it takes 4)");
        const cudnnDataType_t ty = t.type;
        if (ty != CUDNN_DATA_FLOAT && ty != CUDNN_DATA_HALF && ty != CUDNN_DATA_BFLOAT16 && ty != CUDNN_DATA_INT32 &&
            ty != CUDNN_DATA_BOOLEAN)
            return no(name + " is " + data_name(ty));
        if (ty == CUDNN_DATA_BOOLEAN && !t.is_virtual) return no(name + ", a BOOLEAN, is not virtual");
    }
    for (const OpInfo &o : g.ops)
        if (!o.out.is_virtual)
            for (int a = 0; a < R; a++)
                if (o.out.dims[a] > 1 && o.out.strides[a] == 0)
                    return no("output " + std::to_string(o.out.uid) + " has stride 0 on dimension " +
                              std::to_string(a) + " (its elements would race)");
    int matmuls = 0;
    cudnnDataType_t io = CUDNN_DATA_FLOAT;
    for (size_t i = 0; i < g.ops.size(); i++) {
        const OpInfo &o = g.ops[i];
        const std::string name = "operation " + std::to_string(i);
        if (o.kind == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) {
            if (!engine_mode(o.m.mode)) return no(name + ": pointwise mode " + std::to_string(o.m.mode));
            if (!engine_prec(o.m.mode, o.m.prec))
                return no(name + ": pointwise mode " + std::to_string(o.m.mode) + " in " + data_name(o.m.prec));
            continue;
        }
        if (o.kind == CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR) {
            if (o.m.mode != CUDNN_REDUCE_TENSOR_MAX && o.m.mode != CUDNN_REDUCE_TENSOR_ADD)
                return no(name + ": reduction operator " + std::to_string(o.m.mode));
            if (o.m.prec != CUDNN_DATA_FLOAT) return no(name + ": reduction in " + data_name(o.m.prec));
            continue;
        }
        // matmul
        const TensorInfo &A = o.in[0], &B = o.in[1], &C = o.out;
        if (o.m.prec != CUDNN_DATA_FLOAT) return no(name + ": matmul comp type " + data_name(o.m.prec));
        if (matmuls == 0) io = A.type;
        for (const TensorInfo *t : {&A, &B})
            if ((t->type != CUDNN_DATA_HALF && t->type != CUDNN_DATA_BFLOAT16) || t->type != io)
                return no(name + ": matmul operand " + std::to_string(t->uid) + " is " + data_name(t->type) +
                          " (the operands of every matmul: one type, HALF or BFLOAT16)");
        if (A.by_value || B.by_value) return no(name + ": a by-value matmul operand");
        if (!C.is_virtual && C.type != io)
            return no(name + ": output " + std::to_string(C.uid) + " is " + data_name(C.type) + ", the inputs " +
                      data_name(io));
        if (matmuls == 0 && (A.is_virtual || B.is_virtual))
            return no(name + ": the first matmul reads a virtual tensor (it takes Q and K from memory)");
        if (!A.is_virtual && A.strides[R - 1] != 1)
            return no(name + ": matmul A " + std::to_string(A.uid) + " has its last stride " +
                      std::to_string(A.strides[R - 1]) + " (the head dim must be contiguous)");
        const int bdim = A.is_virtual ? R - 1 : R - 2;
        if (!B.is_virtual && B.strides[bdim] != 1)
            return no(name + ": matmul B " + std::to_string(B.uid) + " has stride " + std::to_string(B.strides[bdim]) +
                      " on dimension " + std::to_string(bdim) + " (the head dim must be contiguous)");
        if (!C.is_virtual && C.strides[R - 1] != 1)
            return no(name + ": matmul C " + std::to_string(C.uid) + " has its last stride " +
                      std::to_string(C.strides[R - 1]));
        const int64_t M = C.dims[R - 2], N = C.dims[R - 1], K = A.dims[R - 1];
        if (M > INT_MAX || N > INT_MAX || K > INT_MAX) return no(name + ": a matmul over INT_MAX rows or columns");
        const bool head = matmuls == 0 || !B.is_virtual;
        const int64_t hd = matmuls == 0 ? K : N;
        if (head && (hd % 8 != 0 || hd > 256))
            return no(name + ": head dim " + std::to_string(hd) + " (it takes multiples of 8 up to 256)");
        if (matmuls == 0) f.rows = C.elems() / C.dims[R - 1];
        matmuls++;
    }
    if (!matmuls) return no("no matmul (it runs attention: Q K^T, softmax, P V)");
    f.ok = true;
    f.rank = R;
    f.workspace = 256 + 4 * f.rows;
    for (size_t i = 0; i < g.ops.size() && f.ws_op < 0; i++)
        if (g.ops[i].kind == CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR &&
            g.ops[i].m.mode == CUDNN_REDUCE_TENSOR_MAX &&
            g.ops[i].out.elems() <= f.rows)
            f.ws_op = (int)i;
    // the execution takes the batch dims one index at a time, unless a
    // reduction runs across one
    for (int a = 0; a < R; a++) f.split[a] = a < R - 2, f.ext[a] = 1;
    for (const OpInfo &o : g.ops)
        if (o.kind == CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR)
            for (int a = 0; a < R; a++)
                if (o.in[0].dims[a] != o.out.dims[a]) f.split[a] = false;
    for (const TensorInfo &t : g.tensors)
        for (int a = 0; a < R; a++)
            if (f.split[a]) f.ext[a] = std::max(f.ext[a], t.dims[a]);
    return f;
}

} // namespace

} // namespace dnn
} // namespace sdc_emu
