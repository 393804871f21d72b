// cudnn_graph.h - private to the emulated cuDNN backend (graph) API (see
// emu_dnn.h), which is split in three: cudnn_graph.cc (the API's entry
// points but Execute, the descriptors, their attributes and the errors),
// cudnn_graph_check.cc (what cudnnBackendFinalize checks: each descriptor
// type, the operation graph, the rule of the fused attention engine) and
// cudnn_graph_exec.cc (cudnnBackendExecute and the interpreter of the graph
// it submits). Here: the types they share (attribute value, tensor,
// operation, graph, the engine's facts, descriptor) and the helpers one part
// gives the others, in namespace sdc_emu::dnn.
#ifndef SDC_EMU_CUDNN_GRAPH_H
#define SDC_EMU_CUDNN_GRAPH_H

#include <stdint.h>
#include <string.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emu/emu_dnn.h"

namespace sdc_emu {
namespace dnn {

const int MAXD = CUDNN_DIM_MAX;

// ------------------------------------------------------------------ errors
// (cudnn_graph.cc)

extern thread_local std::string last_error;

void note(const char *call, const char *status, const char *msg);
cudnnStatus_t fail(cudnnStatus_t s, const char *call, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

const char *type_name(int t);
const char *attr_text(int name);
int64_t data_size(cudnnDataType_t t); // cudnn_graph_check.cc

// ------------------------------------------------------------ descriptors

struct Value {
    cudnnBackendAttributeType_t type;
    int64_t n;
    std::vector<unsigned char> bytes;
    int64_t i64(int64_t i) const {
        int64_t v;
        memcpy(&v, bytes.data() + i * sizeof v, sizeof v);
        return v;
    }
    int32_t enum32() const {
        int32_t v;
        memcpy(&v, bytes.data(), sizeof v);
        return v;
    }
    bool boolean() const { return bytes[0] != 0; }
    void *ptr(int64_t i) const {
        void *v;
        memcpy(&v, bytes.data() + i * sizeof v, sizeof v);
        return v;
    }
};

struct TensorInfo {
    int64_t uid = 0;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    int rank = 0;
    int64_t dims[MAXD] = {}, strides[MAXD] = {};
    int64_t align = 0;
    bool is_virtual = false, by_value = false;

    bool same(const TensorInfo &o) const {
        if (uid != o.uid || type != o.type || rank != o.rank || align != o.align || is_virtual != o.is_virtual ||
            by_value != o.by_value)
            return false;
        for (int a = 0; a < rank; a++)
            if (dims[a] != o.dims[a] || strides[a] != o.strides[a]) return false;
        return true;
    }
    int64_t elems() const {
        int64_t n = 1;
        for (int a = 0; a < rank; a++) n *= dims[a];
        return n;
    }
    // bytes from the first element to past the last, strides as given
    int64_t extent_bytes() const {
        int64_t last = 0;
        for (int a = 0; a < rank; a++) last += (dims[a] - 1) * strides[a];
        return (last + 1) * data_size(type);
    }
    std::string shape() const {
        std::string s = "[";
        for (int a = 0; a < rank; a++) s += (a ? ", " : "") + std::to_string(dims[a]);
        return s + "]";
    }
};

// a finalized POINTWISE, REDUCTION or MATMUL descriptor
struct ModeInfo {
    int32_t mode = 0; // cudnnPointwiseMode_t or cudnnReduceTensorOp_t
    cudnnDataType_t prec = CUDNN_DATA_FLOAT; // math precision / comp type
    int64_t axis = -1;
};

// a finalized operation: kind is its descriptor type; in: x, b, t
// (pointwise), x (reduction), a, b (matmul)
struct OpInfo {
    int kind = 0;
    ModeInfo m;
    TensorInfo in[3];
    bool has[3] = {false, false, false};
    TensorInfo out;
    int in_ix[3] = {-1, -1, -1}, out_ix = -1; // set by the graph: indices of its tensors
};

// a finalized operation graph: operations in an order that runs every
// producer before its consumers, and each tensor once
struct GraphInfo {
    cudnnHandle_t handle = NULL;
    std::vector<OpInfo> ops;
    std::vector<TensorInfo> tensors;
    std::vector<int> last_use; // per tensor: the last operation reading it, -1 if none
};

// What the engine makes of a graph.
struct EngineFacts {
    bool ok = false;
    std::string why;    // when not ok
    int64_t workspace = 0, rows = 0;
    int ws_op = -1;     // the operation whose output goes through the workspace
    int rank = 0;
    bool split[MAXD] = {};  // dims the execution takes one index at a time
    int64_t ext[MAXD] = {}; // their extents (1 elsewhere)
};

const uint64_t MAGIC = 0x736463636e646e67ull; // "sdccndng"

struct Desc {
    uint64_t magic = MAGIC;
    int type = 0;
    bool finalized = false;
    std::map<int, Value> attrs;
    TensorInfo tensor;                          // TENSOR
    ModeInfo mode;                              // POINTWISE, REDUCTION, MATMUL
    std::shared_ptr<const OpInfo> op;           // OPERATION_*
    std::shared_ptr<const GraphInfo> graph;     // OPERATIONGRAPH and what follows it
    std::shared_ptr<const EngineFacts> facts;   // idem
    int64_t engine = -1;                        // ENGINE, ENGINECFG, EXECUTION_PLAN
    cudnnHandle_t handle = NULL;                // EXECUTION_PLAN
    std::vector<int64_t> uids;                  // VARIANT_PACK
    std::vector<void *> ptrs;
    void *workspace = NULL;

    const Value *get(int name) const {
        auto it = attrs.find(name);
        return it == attrs.end() ? NULL : &it->second;
    }
};

Desc *live(const void *p); // cudnn_graph.cc

// --------------------------------------------------------------- finalize
// (cudnn_graph_check.cc): what cudnnBackendFinalize calls per descriptor type

const char FIN[] = "cudnnBackendFinalize";

cudnnStatus_t finalize_tensor(Desc *d);
cudnnStatus_t finalize_mode(Desc *d);
cudnnStatus_t finalize_pointwise_op(Desc *d);
cudnnStatus_t finalize_reduction_op(Desc *d);
cudnnStatus_t finalize_matmul_op(Desc *d);
cudnnStatus_t finalize_graph(Desc *d);
cudnnStatus_t finalize_heur(Desc *d);
cudnnStatus_t finalize_engine(Desc *d);
cudnnStatus_t finalize_cfg(Desc *d);
cudnnStatus_t finalize_plan(Desc *d);
cudnnStatus_t finalize_pack(Desc *d);

} // namespace dnn
} // namespace sdc_emu

#endif
