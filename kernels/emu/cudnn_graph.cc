// cudnn_graph.cc - cuDNN 9's backend (graph) API on the emulated device (see
// emu_dnn.h): descriptors whose attributes are checked as cuDNN documents
// them, operation graphs checked when finalized, one engine ("fused
// attention") that the heuristics offer for the graphs it can run, and an
// execution that interprets the graph on the CPU, stream-ordered like the
// GPU's kernel, with every tensor required to lie inside a live device
// allocation (a graph that would read or write past a buffer on a GPU is
// reported here instead). This file: the API's entry points, the
// descriptors, their attribute table and the errors; what finalization
// checks is in cudnn_graph_check.cc, cudnnBackendExecute and the
// interpreter in cudnn_graph_exec.cc, the types they share in cudnn_graph.h.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

#include "emu/emu.h"
#include "emu/emu_dnn.h"
#include "emu/cudnn_graph.h"

namespace sdc_emu {
namespace dnn {

// ------------------------------------------------------------------ errors

thread_local std::string last_error;

namespace {

bool log_errors() {
    static const bool on = [] {
        const char *lvl = getenv("CUDNN_LOGLEVEL_DBG"), *err = getenv("CUDNN_LOGERR_DBG");
        return (lvl && atoi(lvl) >= 1) || (err && atoi(err) == 1);
    }();
    return on;
}

} // namespace

void note(const char *call, const char *status, const char *msg) {
    last_error = std::string(call) + ": " + status + ": " + msg;
    if (log_errors()) fprintf(stderr, "sdc emulated cuDNN: %s\n", last_error.c_str());
}

// records why `call` fails with s (cudnnGetLastErrorString) and returns s
cudnnStatus_t fail(cudnnStatus_t s, const char *call, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
cudnnStatus_t fail(cudnnStatus_t s, const char *call, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    note(call, cudnnGetErrorString(s), msg);
    return s;
}

const char *type_name(int t) {
    switch (t) {
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR: return "POINTWISE";
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR: return "ENGINE";
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: return "ENGINECFG";
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: return "ENGINEHEUR";
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: return "EXECUTION_PLAN";
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: return "OPERATION_POINTWISE";
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: return "OPERATIONGRAPH";
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: return "VARIANT_PACK";
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: return "TENSOR";
    case CUDNN_BACKEND_MATMUL_DESCRIPTOR: return "MATMUL";
    case CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR: return "OPERATION_MATMUL";
    case CUDNN_BACKEND_REDUCTION_DESCRIPTOR: return "REDUCTION";
    case CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR: return "OPERATION_REDUCTION";
    }
    return "(a type the emulation does not model)";
}

namespace {

bool modelled_type(int t) { return strcmp(type_name(t), "(a type the emulation does not model)") != 0; }

// ------------------------------------------------------- attribute table

enum Access {
    SETTABLE,     // set, finalized, read back
    READ_ONLY,    // computed by finalization, read back; setting it is BAD_PARAM
    RO_UNMODELED, // read-only in cuDNN, not modelled: set BAD_PARAM, get NOT_SUPPORTED
    UNMODELED,    // settable in cuDNN, not modelled: NOT_SUPPORTED
};
const int ANY_OP = -2; // a BACKEND_DESCRIPTOR value that must be an operation

struct Spec {
    int owner; // the descriptor type
    cudnnBackendAttributeName_t name;
    const char *text;
    Access access;
    cudnnBackendAttributeType_t type;
    int64_t lo, hi; // the element counts a set may give
    int want;       // BACKEND_DESCRIPTOR values: their descriptor type (ANY_OP: an operation)
};

const int64_t MANY = INT64_MAX;
#define SPEC(owner, name, access, type, lo, hi, want)                                                            \
    { CUDNN_BACKEND_##owner##_DESCRIPTOR, CUDNN_ATTR_##name, "CUDNN_ATTR_" #name, access, type, lo, hi, want }
#define ONE(owner, name, type) SPEC(owner, name, SETTABLE, type, 1, 1, -1)
#define DESC(owner, name, want) SPEC(owner, name, SETTABLE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, want)
#define NOPE(owner, name) SPEC(owner, name, UNMODELED, CUDNN_TYPE_HANDLE, 0, 0, -1)
#define RO_NOPE(owner, name) SPEC(owner, name, RO_UNMODELED, CUDNN_TYPE_HANDLE, 0, 0, -1)

const Spec SPECS[] = {
    ONE(TENSOR, TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64),
    ONE(TENSOR, TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE),
    SPEC(TENSOR, TENSOR_DIMENSIONS, SETTABLE, CUDNN_TYPE_INT64, 1, CUDNN_DIM_MAX, -1),
    SPEC(TENSOR, TENSOR_STRIDES, SETTABLE, CUDNN_TYPE_INT64, 1, CUDNN_DIM_MAX, -1),
    NOPE(TENSOR, TENSOR_VECTOR_COUNT),
    NOPE(TENSOR, TENSOR_VECTORIZED_DIMENSION),
    ONE(TENSOR, TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64),
    ONE(TENSOR, TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN),
    ONE(TENSOR, TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN),
    NOPE(TENSOR, TENSOR_REORDERING_MODE),
    NOPE(TENSOR, TENSOR_RAGGED_OFFSET_DESC),

    ONE(POINTWISE, POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE),
    ONE(POINTWISE, POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE),
    NOPE(POINTWISE, POINTWISE_NAN_PROPAGATION),
    NOPE(POINTWISE, POINTWISE_RELU_LOWER_CLIP),
    NOPE(POINTWISE, POINTWISE_RELU_UPPER_CLIP),
    NOPE(POINTWISE, POINTWISE_RELU_LOWER_CLIP_SLOPE),
    NOPE(POINTWISE, POINTWISE_ELU_ALPHA),
    NOPE(POINTWISE, POINTWISE_SOFTPLUS_BETA),
    NOPE(POINTWISE, POINTWISE_SWISH_BETA),
    ONE(POINTWISE, POINTWISE_AXIS, CUDNN_TYPE_INT64),

    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_BACKEND_POINTWISE_DESCRIPTOR),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_XDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_BDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_YDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_TDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    NOPE(OPERATION_POINTWISE, OPERATION_POINTWISE_ALPHA1),
    NOPE(OPERATION_POINTWISE, OPERATION_POINTWISE_ALPHA2),
    NOPE(OPERATION_POINTWISE, OPERATION_POINTWISE_DXDESC),
    NOPE(OPERATION_POINTWISE, OPERATION_POINTWISE_DYDESC),

    ONE(REDUCTION, REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE),
    ONE(REDUCTION, REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE),
    ONE(REDUCTION, REDUCTION_IS_DETERMINISTIC, CUDNN_TYPE_BOOLEAN), // the emulation is deterministic

    DESC(OPERATION_REDUCTION, OPERATION_REDUCTION_XDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_REDUCTION, OPERATION_REDUCTION_YDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_REDUCTION, OPERATION_REDUCTION_DESC, CUDNN_BACKEND_REDUCTION_DESCRIPTOR),

    ONE(MATMUL, MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE),
    NOPE(MATMUL, MATMUL_PADDING_VALUE),

    DESC(OPERATION_MATMUL, OPERATION_MATMUL_ADESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_BDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_CDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_DESC, CUDNN_BACKEND_MATMUL_DESCRIPTOR),
    NOPE(OPERATION_MATMUL, OPERATION_MATMUL_IRREGULARLY_STRIDED_BATCH_COUNT),
    NOPE(OPERATION_MATMUL, OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC),
    NOPE(OPERATION_MATMUL, OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC),
    NOPE(OPERATION_MATMUL, OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC),

    ONE(OPERATIONGRAPH, OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE),
    SPEC(OPERATIONGRAPH, OPERATIONGRAPH_OPS, SETTABLE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, MANY, ANY_OP),
    SPEC(OPERATIONGRAPH, OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, READ_ONLY, CUDNN_TYPE_INT64, 1, 1, -1),
    NOPE(OPERATIONGRAPH, OPERATIONGRAPH_IS_DYNAMIC_SHAPE_ENABLED),
    NOPE(OPERATIONGRAPH, OPERATIONGRAPH_IS_SAME_TOPOLOGY),

    ONE(ENGINEHEUR, ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE),
    DESC(ENGINEHEUR, ENGINEHEUR_OPERATION_GRAPH, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR),
    SPEC(ENGINEHEUR, ENGINEHEUR_RESULTS, READ_ONLY, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, MANY,
         CUDNN_BACKEND_ENGINECFG_DESCRIPTOR),
    ONE(ENGINEHEUR, ENGINEHEUR_SM_COUNT_TARGET, CUDNN_TYPE_INT32), // one device: nothing to target
    NOPE(ENGINEHEUR, ENGINEHEUR_DEVICEPROP),

    DESC(ENGINE, ENGINE_OPERATION_GRAPH, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR),
    ONE(ENGINE, ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64),
    RO_NOPE(ENGINE, ENGINE_KNOB_INFO),
    RO_NOPE(ENGINE, ENGINE_NUMERICAL_NOTE),
    RO_NOPE(ENGINE, ENGINE_LAYOUT_INFO),
    RO_NOPE(ENGINE, ENGINE_BEHAVIOR_NOTE),
    ONE(ENGINE, ENGINE_SM_COUNT_TARGET, CUDNN_TYPE_INT32),
    NOPE(ENGINE, ENGINE_DEVICEPROP),
    NOPE(ENGINE, ENGINE_DISABLE_CLUSTER_COOPERATIVE),

    DESC(ENGINECFG, ENGINECFG_ENGINE, CUDNN_BACKEND_ENGINE_DESCRIPTOR),
    RO_NOPE(ENGINECFG, ENGINECFG_INTERMEDIATE_INFO),
    NOPE(ENGINECFG, ENGINECFG_KNOB_CHOICES),
    SPEC(ENGINECFG, ENGINECFG_WORKSPACE_SIZE, READ_ONLY, CUDNN_TYPE_INT64, 1, 1, -1),
    RO_NOPE(ENGINECFG, ENGINECFG_SHARED_MEMORY_USED),

    ONE(EXECUTION_PLAN, EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE),
    DESC(EXECUTION_PLAN, EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR),
    SPEC(EXECUTION_PLAN, EXECUTION_PLAN_WORKSPACE_SIZE, READ_ONLY, CUDNN_TYPE_INT64, 1, 1, -1),
    NOPE(EXECUTION_PLAN, EXECUTION_PLAN_COMPUTED_INTERMEDIATE_UIDS),
    NOPE(EXECUTION_PLAN, EXECUTION_PLAN_RUN_ONLY_INTERMEDIATE_UIDS),
    NOPE(EXECUTION_PLAN, EXECUTION_PLAN_JSON_REPRESENTATION),
    NOPE(EXECUTION_PLAN, EXECUTION_PLAN_KERNEL_CACHE),
    NOPE(EXECUTION_PLAN, EXECUTION_PLAN_DEVICEPROP),

    SPEC(VARIANT_PACK, VARIANT_PACK_UNIQUE_IDS, SETTABLE, CUDNN_TYPE_INT64, 0, MANY, -1),
    SPEC(VARIANT_PACK, VARIANT_PACK_DATA_POINTERS, SETTABLE, CUDNN_TYPE_VOID_PTR, 0, MANY, -1),
    NOPE(VARIANT_PACK, VARIANT_PACK_INTERMEDIATES),
    ONE(VARIANT_PACK, VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR),
    NOPE(VARIANT_PACK, VARIANT_PACK_OVERRIDE_UNIQUE_IDS),
    NOPE(VARIANT_PACK, VARIANT_PACK_OVERRIDE_SHAPES),
    NOPE(VARIANT_PACK, VARIANT_PACK_OVERRIDE_STRIDES),
};
#undef SPEC
#undef ONE
#undef DESC
#undef NOPE
#undef RO_NOPE

const Spec *find_spec(int owner, int name) {
    for (const Spec &s : SPECS)
        if (s.owner == owner && (int)s.name == name) return &s;
    return NULL;
}

} // namespace

const char *attr_text(int name) {
    for (const Spec &s : SPECS)
        if ((int)s.name == name) return s.text;
    return "(an attribute the emulation does not know)";
}

namespace {

// bytes of one element of an attribute of type t (cuDNN's mapping table)
size_t elem_size(cudnnBackendAttributeType_t t) {
    switch (t) {
    case CUDNN_TYPE_HANDLE: return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_BOOLEAN: return sizeof(bool);
    case CUDNN_TYPE_INT64: return sizeof(int64_t);
    case CUDNN_TYPE_FLOAT: return sizeof(float);
    case CUDNN_TYPE_DOUBLE: return sizeof(double);
    case CUDNN_TYPE_VOID_PTR: return sizeof(void *);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(cudnnBackendDescriptor_t);
    case CUDNN_TYPE_INT32: return sizeof(int32_t);
    case CUDNN_TYPE_CHAR: return 1;
    case CUDNN_TYPE_FRACTION: return 2 * sizeof(int64_t);
    default: return sizeof(int); // the enumerated types
    }
}

bool valid_data_type(int32_t t) { return t >= 0 && t <= 21; }

bool valid_pw_mode(int32_t m) {
    return (m >= 0 && m <= 23) || (m >= 100 && m <= 107) || (m >= 200 && m <= 207) || (m >= 300 && m <= 305) ||
           (m >= 400 && m <= 402) || m == 501 || m == 601;
}

// ------------------------------------------------------------ descriptors

std::mutex &registry_mu() {
    static std::mutex *m = new std::mutex;
    return *m;
}
std::unordered_set<const void *> &registry() {
    static std::unordered_set<const void *> *s = new std::unordered_set<const void *>;
    return *s;
}

} // namespace

// the descriptor p points at, NULL if it is none (never made, or destroyed)
Desc *live(const void *p) {
    if (!p) return NULL;
    std::lock_guard<std::mutex> lock(registry_mu());
    return registry().count(p) ? (Desc *)const_cast<void *>(p) : NULL;
}

} // namespace dnn
} // namespace sdc_emu

using namespace sdc_emu::dnn;

// ------------------------------------------------------------------- API

void cudnnGetLastErrorString(char *message, size_t max_size) {
    if (message && max_size) snprintf(message, max_size, "%s", last_error.c_str());
    last_error.clear();
}

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t descriptorType,
                                           cudnnBackendDescriptor_t *descriptor) {
    static const char call[] = "cudnnBackendCreateDescriptor";
    if (!descriptor) return fail(CUDNN_STATUS_BAD_PARAM, call, "NULL descriptor pointer");
    *descriptor = NULL;
    const int t = (int)descriptorType;
    if (t < 0 || t > CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "%d is no descriptor type", t);
    if (!modelled_type(t))
        return fail(CUDNN_STATUS_NOT_SUPPORTED, call, "descriptor type %d is not modelled by the emulation", t);
    Desc *d = new (std::nothrow) Desc;
    if (!d) return fail(CUDNN_STATUS_ALLOC_FAILED, call, "out of host memory");
    d->type = t;
    {
        std::lock_guard<std::mutex> lock(registry_mu());
        registry().insert(d);
    }
    *descriptor = d;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t descriptor) {
    if (!descriptor) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnBackendDestroyDescriptor", "a NULL descriptor");
    {
        std::lock_guard<std::mutex> lock(registry_mu());
        if (!registry().erase(descriptor))
            return fail(CUDNN_STATUS_BAD_PARAM, "cudnnBackendDestroyDescriptor",
                        "%p is no live descriptor (destroyed twice?)", descriptor);
    }
    Desc *d = (Desc *)descriptor;
    d->magic = 0;
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t descriptor, cudnnBackendAttributeName_t attributeName,
                                       cudnnBackendAttributeType_t attributeType, int64_t elementCount,
                                       const void *arrayOfElements) {
    static const char call[] = "cudnnBackendSetAttribute";
    Desc *d = live(descriptor);
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, call, "%p is no live descriptor", descriptor);
    const Spec *sp = find_spec(d->type, attributeName);
    if (!sp)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "attribute %d (%s) is not one of a %s descriptor", (int)attributeName,
                    attr_text(attributeName), type_name(d->type));
    if (d->finalized) // BAD_PARAM as cuDNN 9.19 returns it (its documentation says NOT_INITIALIZED)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "the %s descriptor is finalized (setting %s)", type_name(d->type),
                    sp->text);
    if (sp->access == READ_ONLY || sp->access == RO_UNMODELED)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "%s is not settable", sp->text);
    if (sp->access == UNMODELED) return fail(CUDNN_STATUS_NOT_SUPPORTED, call, "%s is not modelled", sp->text);
    if (attributeType != sp->type)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "%s takes attribute type %d, not %d", sp->text, (int)sp->type,
                    (int)attributeType);
    if (elementCount < sp->lo || elementCount > sp->hi)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "%s takes %lld to %lld elements, not %lld", sp->text,
                    (long long)sp->lo, (long long)sp->hi, (long long)elementCount);
    if (elementCount > 0 && !arrayOfElements) return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: NULL array", sp->text);
    Value v;
    v.type = attributeType;
    v.n = elementCount;
    const size_t es = elem_size(attributeType);
    v.bytes.resize((size_t)elementCount * es);
    if (elementCount) memcpy(v.bytes.data(), arrayOfElements, v.bytes.size());
    for (int64_t i = 0; i < elementCount; i++) {
        int32_t e = 0;
        if (es == sizeof e) memcpy(&e, v.bytes.data() + i * es, sizeof e);
        switch (attributeType) {
        case CUDNN_TYPE_DATA_TYPE:
            if (!valid_data_type(e)) return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: %d is no data type", sp->text, e);
            break;
        case CUDNN_TYPE_POINTWISE_MODE:
            if (!valid_pw_mode(e))
                return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: %d is no pointwise mode", sp->text, e);
            break;
        case CUDNN_TYPE_REDUCTION_OPERATOR_TYPE:
            if (e < 0 || e > 8)
                return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: %d is no reduction operator", sp->text, e);
            break;
        case CUDNN_TYPE_HEUR_MODE:
            if (e < 0 || e >= CUDNN_HEUR_MODES_COUNT)
                return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: %d is no heuristics mode", sp->text, e);
            break;
        case CUDNN_TYPE_HANDLE:
            if (!v.ptr(i)) return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: a NULL handle", sp->text);
            break;
        case CUDNN_TYPE_BACKEND_DESCRIPTOR: {
            const Desc *r = live(v.ptr(i));
            if (!r) return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: element %lld is no live descriptor", sp->text,
                                (long long)i);
            const bool op = r->type == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR ||
                            r->type == CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR ||
                            r->type == CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR;
            if (sp->want == ANY_OP ? !op : r->type != sp->want)
                return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: element %lld is a %s descriptor, not %s", sp->text,
                            (long long)i, type_name(r->type),
                            sp->want == ANY_OP ? "an operation" : type_name(sp->want));
            break;
        }
        case CUDNN_TYPE_INT32:
            if (e <= 0) return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: an SM count of %d", sp->text, e);
            break;
        default: break;
        }
    }
    d->attrs[attributeName] = std::move(v);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t descriptor) {
    Desc *d = live(descriptor);
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, FIN, "%p is no live descriptor", descriptor);
    if (d->finalized) return fail(CUDNN_STATUS_BAD_PARAM, FIN, "the %s descriptor is finalized already",
                                  type_name(d->type));
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    try {
        switch (d->type) {
        case CUDNN_BACKEND_TENSOR_DESCRIPTOR: s = finalize_tensor(d); break;
        case CUDNN_BACKEND_POINTWISE_DESCRIPTOR:
        case CUDNN_BACKEND_REDUCTION_DESCRIPTOR:
        case CUDNN_BACKEND_MATMUL_DESCRIPTOR: s = finalize_mode(d); break;
        case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: s = finalize_pointwise_op(d); break;
        case CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR: s = finalize_reduction_op(d); break;
        case CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR: s = finalize_matmul_op(d); break;
        case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: s = finalize_graph(d); break;
        case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: s = finalize_heur(d); break;
        case CUDNN_BACKEND_ENGINE_DESCRIPTOR: s = finalize_engine(d); break;
        case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: s = finalize_cfg(d); break;
        case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: s = finalize_plan(d); break;
        case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: s = finalize_pack(d); break;
        }
    } catch (const std::bad_alloc &) {
        s = fail(CUDNN_STATUS_ALLOC_FAILED, FIN, "out of host memory");
    }
    if (s == CUDNN_STATUS_SUCCESS) d->finalized = true;
    return s;
}

namespace {

// fills the caller's descriptor `to` (of type `type`) as a copy of engine
// configuration or engine `from`
cudnnStatus_t fill(Desc *to, const Desc *from, int type) {
    to->attrs.clear();
    to->graph = from->graph, to->facts = from->facts, to->engine = from->engine < 0 ? 0 : from->engine;
    if (type == CUDNN_BACKEND_ENGINE_DESCRIPTOR) {
        Value v;
        v.type = CUDNN_TYPE_INT64, v.n = 1;
        v.bytes.resize(sizeof(int64_t));
        memcpy(v.bytes.data(), &to->engine, sizeof(int64_t));
        to->attrs[CUDNN_ATTR_ENGINE_GLOBAL_INDEX] = v;
    }
    to->finalized = true;
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const descriptor,
                                       cudnnBackendAttributeName_t attributeName,
                                       cudnnBackendAttributeType_t attributeType, int64_t requestedElementCount,
                                       int64_t *elementCount, void *arrayOfElements) {
    static const char call[] = "cudnnBackendGetAttribute";
    Desc *d = live(descriptor);
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, call, "%p is no live descriptor", descriptor);
    const Spec *sp = find_spec(d->type, attributeName);
    if (!sp)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "attribute %d (%s) is not one of a %s descriptor", (int)attributeName,
                    attr_text(attributeName), type_name(d->type));
    if (!elementCount || requestedElementCount < 0 || (requestedElementCount > 0 && !arrayOfElements))
        return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: NULL elementCount, a negative request or a NULL array",
                    sp->text);
    if (sp->access == UNMODELED || sp->access == RO_UNMODELED)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, call, "%s is not modelled", sp->text);
    if (attributeType != sp->type)
        return fail(CUDNN_STATUS_BAD_PARAM, call, "%s has attribute type %d, not %d", sp->text, (int)sp->type,
                    (int)attributeType);
    if (!d->finalized)
        return fail(CUDNN_STATUS_NOT_INITIALIZED, call, "the %s descriptor is not finalized (getting %s)",
                    type_name(d->type), sp->text);
    // what cuDNN 9.19 reports: the count the attribute has when asked for
    // none, else the count written (its documentation says the former always)
    const int64_t req = requestedElementCount;
    auto count = [&](int64_t avail) { return req == 0 ? avail : std::min(req, avail); };
    auto put_i64 = [&](int64_t v) {
        *elementCount = 1;
        if (req >= 1) memcpy(arrayOfElements, &v, sizeof v);
        return CUDNN_STATUS_SUCCESS;
    };
    // the caller's descriptors of type `type`, made beforehand, filled as copies of `from`
    auto put_desc = [&](int64_t avail, const Desc *from, int type) {
        const int64_t n = std::min(req, avail);
        std::vector<Desc *> to((size_t)n);
        for (int64_t i = 0; i < n; i++) {
            cudnnBackendDescriptor_t p;
            memcpy(&p, (const char *)arrayOfElements + i * sizeof p, sizeof p);
            to[(size_t)i] = live(p);
            if (!to[(size_t)i] || to[(size_t)i]->type != type)
                return fail(CUDNN_STATUS_BAD_PARAM, call, "%s: element %lld is no %s descriptor made by "
                            "cudnnBackendCreateDescriptor", sp->text, (long long)i, type_name(type));
        }
        for (Desc *t : to) fill(t, from, type);
        *elementCount = count(avail);
        return CUDNN_STATUS_SUCCESS;
    };
    switch ((int)attributeName) {
    case CUDNN_ATTR_ENGINEHEUR_RESULTS: return put_desc(d->facts->ok ? 1 : 0, d, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    case CUDNN_ATTR_ENGINECFG_ENGINE: return put_desc(1, d, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    case CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG: return put_desc(1, d, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    case CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE:
    case CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE: return put_i64(d->facts->workspace);
    case CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT: return put_i64(d->facts->ok ? 1 : 0);
    case CUDNN_ATTR_TENSOR_IS_VIRTUAL:
    case CUDNN_ATTR_TENSOR_IS_BY_VALUE: {
        const bool v = attributeName == CUDNN_ATTR_TENSOR_IS_VIRTUAL ? d->tensor.is_virtual : d->tensor.by_value;
        *elementCount = 1;
        if (req >= 1) memcpy(arrayOfElements, &v, sizeof v);
        return CUDNN_STATUS_SUCCESS;
    }
    }
    if (sp->type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, call, "reading %s back is not modelled", sp->text);
    const Value *v = d->get(attributeName);
    *elementCount = count(v ? v->n : 0);
    if (v && req > 0)
        memcpy(arrayOfElements, v->bytes.data(), (size_t)std::min(req, v->n) * elem_size(sp->type));
    return CUDNN_STATUS_SUCCESS;
}
