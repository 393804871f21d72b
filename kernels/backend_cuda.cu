// backend_cuda.cu - the CUDA backend's ops table: typed device buffers
// (fp32, fp16 or bf16 activations, one type per op). In fp16 and bf16,
// sdc's own tensor-core kernels for attention (flash_attn.cu) and
// convolution (conv_igemm.cu) where they take the shape; cuBLAS for linear
// layers, for fp32 (pedantic: the CPU is the oracle) and for the rest
// (convolution as im2col + GEMM, attention as two batched GEMMs around a
// row softmax); the kernels of elementwise.cu / norm.cu / conv.cu /
// attention.cu / latent.cu for everything else. The products (linear,
// attention, convolution) are in backend_cuda_products.cu. Every op has a
// parity test against the CPU backend (tests/test_cuda*.c).
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
extern "C" {
#include "model/safetensors.h" // sdc_dtype_name
}
#include "backend_cuda.h"
#include "dnn.h"

// every device allocation of the backend goes through here and cu_free, so
// it knows its memory in use and peak
static sdc_status track(cuda_impl *im, void *p, size_t bytes) {
    if (im->n_recs == im->cap_recs) {
        size_t cap = im->cap_recs ? 2 * im->cap_recs : 1024;
        void *r = realloc(im->recs, cap * sizeof *im->recs);
        if (!r) {
            cudaFree(p);
            return sdc_fail(SDC_ERR_OOM, "out of host memory");
        }
        im->recs = (cuda_impl::alloc_rec *)r;
        im->cap_recs = cap;
    }
    im->recs[im->n_recs++] = {p, bytes};
    im->in_use += bytes;
    if (im->in_use > im->peak) im->peak = im->in_use;
    return SDC_OK;
}

// the allocation's size (0 if it is not one of the backend's), forgotten
static size_t untrack(cuda_impl *im, void *p) {
    for (size_t i = im->n_recs; i-- > 0;)
        if (im->recs[i].p == p) {
            const size_t bytes = im->recs[i].bytes;
            im->in_use -= bytes;
            im->recs[i] = im->recs[--im->n_recs];
            return bytes;
        }
    return 0;
}

static sdc_status device_alloc_raw(size_t bytes, void **out) {
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 4);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return sdc_fail(SDC_ERR_OOM,
                        "out of device memory: %.1f MiB needed, %.1f MiB free of %.1f MiB; try a smaller image "
                        "size or fewer images at once",
                        bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0);
    }
    CUDA_TRY(e);
    return SDC_OK;
}

sdc_status device_alloc(sdc_backend *be, size_t bytes, void **out) {
    if (impl(be)->planning)
        return sdc_fail(SDC_ERR_BACKEND, "an allocation of %.2f MiB during a dry run of planned memory (a dry run "
                        "runs and allocates nothing)", bytes / 1048576.0);
    be->allocations++;
    SDC_TRY(device_alloc_raw(bytes, out));
    return track(impl(be), *out, bytes ? bytes : 4);
}

void device_free(sdc_backend *be, void *p) {
    if (!p) return;
    const size_t bytes = untrack(impl(be), p);
    cudaFree(p);
    // half copies of biases inside it (stacked vectors share an allocation)
    if (impl(be)->n_biases) drop_bias(be, p, bytes);
}

// Scratch slot `slot` of at least n floats for op `op`. In a dry run the
// need is recorded and *out is NULL (the op returns before it launches
// anything). Bound to a plan, a slot never grows: needing more than the
// plan reserved is an error. Otherwise the slot grows on demand.
sdc_status scratch(sdc_backend *be, int slot, size_t n, const char *op, float **out) {
    cuda_impl *im = impl(be);
    *out = NULL;
    if (im->planning) {
        if (n > im->need[slot]) im->need[slot] = n;
        return SDC_OK;
    }
    if (im->cap[slot] < n) {
        if (im->bound)
            return sdc_fail(SDC_ERR_BACKEND, "%s: needs %.2f MiB of scratch (slot %d), more than the memory plan "
                            "reserved (%.2f MiB): the dry run did not see this op", op, n * 4 / 1048576.0, slot,
                            im->cap[slot] * 4 / 1048576.0);
        device_free(be, im->scratch[slot]);
        im->scratch[slot] = NULL;
        im->cap[slot] = 0;
        void *p = NULL;
        SDC_TRY(device_alloc(be, n * sizeof(float), &p));
        im->scratch[slot] = (float *)p;
        im->cap[slot] = n;
    }
    *out = im->scratch[slot];
    return SDC_OK;
}

static sdc_status cu_alloc(sdc_backend *be, size_t n, float **out) {
    (void)be;
    void *p = NULL;
    SDC_TRY(device_alloc(be, n * sizeof(float), &p));
    *out = (float *)p;
    return SDC_OK;
}

static void cu_free(sdc_backend *be, void *p) { device_free(be, p); }

void count_up(sdc_backend *be, size_t bytes) {
    be->transfers.uploads++;
    be->transfers.bytes_up += bytes;
}

static sdc_status cu_upload(sdc_backend *be, float *dst, const float *src, size_t n) {
    count_up(be, n * sizeof(float));
    CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, impl(be)->stream));
    CUDA_TRY(cudaStreamSynchronize(impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_download(sdc_backend *be, float *dst, const float *src, size_t n) {
    be->transfers.downloads++;
    be->transfers.bytes_down += n * sizeof(float);
    CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, impl(be)->stream));
    CUDA_TRY(cudaStreamSynchronize(impl(be)->stream));
    return SDC_OK;
}

// src is copied into the next pinned staging buffer (after the copy that
// last used it has finished) and from there to the device on the stream;
// the caller may reuse src at once and the host does not wait for the device.
static sdc_status cu_upload_async(sdc_backend *be, float *dst, const float *src, size_t n) {
    if (!n) return SDC_OK;
    cuda_impl *im = impl(be);
    if (im->planning) { // the dry run: only how much staging it needs
        if (n > im->stage_need) im->stage_need = n;
        return SDC_OK;
    }
    const int k = im->next_stage;
    im->next_stage = (k + 1) % STAGES;
    if (im->stage_busy[k]) {
        CUDA_TRY(cudaEventSynchronize(im->stage_done[k]));
        im->stage_busy[k] = false;
    }
    if (im->stage_cap[k] < n) {
        if (im->stage[k]) CUDA_TRY(cudaFreeHost(im->stage[k]));
        im->stage[k] = NULL;
        im->stage_cap[k] = 0;
        void *p = NULL;
        cudaError_t e = cudaMallocHost(&p, n * sizeof(float));
        if (e != cudaSuccess) {
            cudaGetLastError();
            return sdc_fail(SDC_ERR_OOM, "out of pinned host memory for a %.1f MiB upload",
                            n * sizeof(float) / 1048576.0);
        }
        im->stage[k] = (float *)p;
        im->stage_cap[k] = n;
    }
    memcpy(im->stage[k], src, n * sizeof(float));
    count_up(be, n * sizeof(float));
    CUDA_TRY(cudaMemcpyAsync(dst, im->stage[k], n * sizeof(float), cudaMemcpyHostToDevice, im->stream));
    CUDA_TRY(cudaEventRecord(im->stage_done[k], im->stream));
    im->stage_busy[k] = true;
    return SDC_OK;
}

// The activations of one op: every given buffer (p not NULL) of one type,
// F32, F16 or BF16; *t is that type as the kernels number it (SDC_CU_*).
sdc_status acts(const char *op, std::initializer_list<sdc_buf> bufs, int *t) {
    sdc_dtype first = SDC_DT_COUNT;
    for (const sdc_buf &b : bufs) {
        if (!b.p) continue;
        if (!sdc_act_type(b.type))
            return sdc_fail(SDC_ERR_ARG, "%s: activations of element type %d (expected F32, F16 or BF16)", op,
                            (int)b.type);
        if (first == SDC_DT_COUNT) first = b.type;
        else if (b.type != first)
            return sdc_fail(SDC_ERR_ARG, "%s: activations of types %s and %s in one op (convert first)", op,
                            sdc_dtype_name(first), sdc_dtype_name(b.type));
    }
    *t = first == SDC_DT_COUNT ? SDC_CU_F32 : (int)first;
    return SDC_OK;
}

static sdc_status cu_copy(sdc_backend *be, sdc_buf dst, sdc_buf src, size_t n) {
    int t = 0;
    SDC_TRY(acts("copy", {dst, src}, &t));
    CUDA_TRY(cudaMemcpyAsync(dst.p, src.p, n * sdc_act_size(dst.type), cudaMemcpyDeviceToDevice, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_convert(sdc_backend *be, sdc_buf dst, sdc_buf src, size_t n) {
    int t = 0;
    SDC_TRY(acts("convert", {dst}, &t));
    SDC_TRY(acts("convert", {src}, &t));
    KERNEL_TRY(sdc_convert_cuda(dst.p, (int)dst.type, src.p, (int)src.type, n, impl(be)->stream));
    return SDC_OK;
}

sdc_status set_math(cuda_impl *im, cublasMath_t mode) {
    if (im->math != mode) {
        BLAS_TRY(cublasSetMathMode(im->blas, mode));
        im->math = mode;
    }
    return SDC_OK;
}

sdc_status check_weight(const char *op, sdc_weight w) {
    if (!sdc_act_type(w.type))
        return sdc_fail(SDC_ERR_ARG, "%s: weight of element type %d (expected F32, F16 or BF16)", op, (int)w.type);
    return SDC_OK;
}

// A product's types: activations of w's type, or fp32 activations with any
// w (rounded to w's type on the way in, the product back in fp32).
sdc_status product_types(const char *op, int t, sdc_weight w) {
    if (t == (int)w.type || t == SDC_CU_F32) return SDC_OK;
    return sdc_fail(SDC_ERR_ARG, "%s: %s activations with %s weights (expected the weights' type, or F32)", op,
                    sdc_dtype_name((sdc_dtype)t), sdc_dtype_name(w.type));
}

// Weights arrive in the file's type: uploaded as they are into device
// staging, then converted into their own allocation in `type`.
static sdc_status cu_load_tensor(sdc_backend *be, sdc_dtype type, const void *src, sdc_dtype src_type, size_t n,
                                 void **out) {
    *out = NULL;
    if (!sdc_act_type(type) || !sdc_act_type(src_type))
        return sdc_fail(SDC_ERR_ARG, "load_tensor: types %d <- %d (expected F32, F16 or BF16)", (int)type,
                        (int)src_type);
    const size_t sbytes = n * (src_type == SDC_DT_F32 ? 4 : 2), dbytes = n * (type == SDC_DT_F32 ? 4 : 2);
    void *p = NULL;
    SDC_TRY(device_alloc(be, dbytes, &p));
    cuda_impl *im = impl(be);
    void *stage = p; // a tensor of another type goes through its own staging, freed at once
    if (src_type != type) {
        sdc_status st = device_alloc(be, sbytes, &stage);
        if (st != SDC_OK) {
            device_free(be, p);
            return st;
        }
    }
    count_up(be, sbytes);
    cudaError_t e = cudaMemcpyAsync(stage, src, sbytes, cudaMemcpyHostToDevice, im->stream);
    if (e == cudaSuccess && src_type != type)
        e = (cudaError_t)sdc_convert_cuda(p, (int)type, stage, (int)src_type, n, im->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(im->stream); // src is the caller's to reuse
    if (stage != p) device_free(be, stage);
    if (e != cudaSuccess) {
        device_free(be, p);
        cudaGetLastError();
        return sdc_fail(SDC_ERR_BACKEND, "load_tensor: %zu elements: %s", n, cudaGetErrorString(e));
    }
    *out = p;
    // fp32 vectors of weights (biases) get a half copy for cuBLASLt's epilogue
    if (type == SDC_DT_F32) {
        sdc_status hs = half_copy_of_vector(be, (const float *)p, n);
        if (hs != SDC_OK) {
            device_free(be, p);
            *out = NULL;
            return hs;
        }
    }
    return SDC_OK;
}

// A convolution kernel (cout, k, k, cin) -> (cout8, k, k, cin8) in `type`,
// zero in the padded channels: uploaded as it is into device staging, then
// converted row by row into the padded allocation.
static sdc_status cu_load_conv(sdc_backend *be, sdc_dtype type, const void *src, sdc_dtype src_type, int cout, int k,
                               int cin, sdc_weight *out) {
    out->p = NULL;
    if (cout < 1 || k < 1 || cin < 1)
        return sdc_fail(SDC_ERR_ARG, "load_conv: bad shape %d x %d x %d x %d", cout, k, k, cin);
    if (!sdc_act_type(type) || !sdc_act_type(src_type))
        return sdc_fail(SDC_ERR_ARG, "load_conv: types %d <- %d (expected F32, F16 or BF16)", (int)type,
                        (int)src_type);
    const int cp = round_up(cin, CHAN_PAD), op = round_up(cout, CHAN_PAD);
    if (cp == cin && op == cout) { // already a multiple of 8 both ways: the layout as given
        SDC_TRY(cu_load_tensor(be, type, src, src_type, (size_t)cout * k * k * cin, &out->p));
        out->type = type;
        out->chan_pad = CHAN_PAD;
        return SDC_OK;
    }
    const size_t rows = (size_t)cout * k * k, n = rows * cin, es = type == SDC_DT_F32 ? 4 : 2;
    const size_t sbytes = n * (src_type == SDC_DT_F32 ? 4 : 2), dbytes = (size_t)op * k * k * cp * es;
    void *p = NULL, *stage = NULL;
    SDC_TRY(device_alloc(be, dbytes, &p));
    sdc_status st = device_alloc(be, sbytes, &stage);
    if (st != SDC_OK) {
        device_free(be, p);
        return st;
    }
    cuda_impl *im = impl(be);
    count_up(be, sbytes);
    cudaError_t e = cudaMemsetAsync(p, 0, dbytes, im->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(stage, src, sbytes, cudaMemcpyHostToDevice, im->stream);
    if (e == cudaSuccess)
        e = (cudaError_t)sdc_convert_rows_cuda(p, (int)type, (size_t)cp, stage, (int)src_type, (size_t)cin, rows,
                                               (size_t)cin, im->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(im->stream); // src is the caller's to reuse
    device_free(be, stage);
    if (e != cudaSuccess) {
        device_free(be, p);
        cudaGetLastError();
        return sdc_fail(SDC_ERR_BACKEND, "load_conv: %d x %d x %d x %d: %s", cout, k, k, cin, cudaGetErrorString(e));
    }
    out->p = p;
    out->type = type;
    out->chan_pad = CHAN_PAD;
    return SDC_OK;
}

static sdc_status cu_layer_norm(sdc_backend *be, sdc_buf y, sdc_buf x, const float *gamma, const float *beta,
                                int m, int n, float eps) {
    int t = 0;
    SDC_TRY(acts("layer_norm", {y, x}, &t));
    KERNEL_TRY(sdc_layer_norm_cuda(y.p, x.p, t, gamma, beta, m, n, eps, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_activation(sdc_backend *be, sdc_buf y, sdc_buf x, size_t n, sdc_act act) {
    int t = 0;
    SDC_TRY(acts("activation", {y, x}, &t));
    KERNEL_TRY(sdc_activation_cuda(y.p, x.p, t, n, (int)act, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_add(sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t n) {
    int t = 0;
    SDC_TRY(acts("add", {y, a, b}, &t));
    KERNEL_TRY(sdc_add_cuda(y.p, a.p, b.p, t, n, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_group_norm(sdc_backend *be, sdc_buf y, sdc_buf x, const float *gamma, const float *beta,
                                int n, int hw, int c, int groups, float eps, bool silu) {
    int t = 0;
    SDC_TRY(acts("group_norm", {y, x}, &t));
    if (groups < 1 || c % groups)
        return sdc_fail(SDC_ERR_ARG, "group_norm: %d channels not divisible into %d groups", c, groups);
    float *stats = NULL;
    SDC_TRY(scratch(be, 2, sdc_group_norm_scratch_floats(n, hw, groups), "group_norm", &stats));
    if (impl(be)->planning) return SDC_OK;
    KERNEL_TRY(sdc_group_norm_cuda(y.p, x.p, t, gamma, beta, n, hw, c, groups, eps, silu ? 1 : 0, stats,
                                   impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_upsample(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int ho, int wo) {
    int t = 0;
    SDC_TRY(acts("upsample_nearest", {y, x}, &t));
    KERNEL_TRY(sdc_upsample_nearest_cuda(y.p, x.p, t, n, h, w, c, ho, wo, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_pad(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int top, int bottom,
                         int left, int right) {
    int t = 0;
    SDC_TRY(acts("pad", {y, x}, &t));
    KERNEL_TRY(sdc_pad_cuda(y.p, x.p, t, n, h, w, c, top, bottom, left, right, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_concat(sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t rows, int ca, int cb) {
    int t = 0;
    SDC_TRY(acts("concat_channels", {y, a, b}, &t));
    KERNEL_TRY(sdc_concat_channels_cuda(y.p, a.p, b.p, t, rows, ca, cb, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_geglu(sdc_backend *be, sdc_buf y, sdc_buf x, int m, int f) {
    int t = 0;
    SDC_TRY(acts("geglu", {y, x}, &t));
    KERNEL_TRY(sdc_geglu_cuda(y.p, x.p, t, m, f, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_add_rows(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_buf v, int n, size_t rows, int c) {
    int t = 0;
    SDC_TRY(acts("add_rows", {y, x, v}, &t));
    KERNEL_TRY(sdc_add_rows_cuda(y.p, x.p, v.p, t, n, rows, c, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_timestep_embedding(sdc_backend *be, sdc_buf y, int rows, int dim, double t) {
    if (rows < 1 || dim < 1) return sdc_fail(SDC_ERR_ARG, "timestep_embedding: bad shape %d x %d", rows, dim);
    int ty = 0;
    SDC_TRY(acts("timestep_embedding", {y}, &ty));
    KERNEL_TRY(sdc_timestep_embedding_cuda(y.p, ty, rows, dim, (float)t, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_scale(sdc_backend *be, float *y, const float *x, float a, bool div, size_t n) {
    KERNEL_TRY(sdc_scale_cuda(y, x, a, div ? 1 : 0, n, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_axpy(sdc_backend *be, float *y, float a, const float *x, size_t n) {
    KERNEL_TRY(sdc_axpy_cuda(y, a, x, n, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_guidance(sdc_backend *be, float *y, const float *u, const float *c, float g, size_t n) {
    KERNEL_TRY(sdc_guidance_cuda(y, u, c, g, n, impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_latent_update(sdc_backend *be, const sdc_latent_update *u, float *x, const float *mo,
                                   float *x0_out, const float *x0_prev, size_t n) {
    if ((u->kind == SDC_UPDATE_DPM1 || u->kind == SDC_UPDATE_DPM2) && !x0_out)
        return sdc_fail(SDC_ERR_ARG, "latent_update: DPM++ needs a buffer for the data prediction");
    if (u->kind == SDC_UPDATE_DPM2 && !x0_prev)
        return sdc_fail(SDC_ERR_ARG, "latent_update: second-order DPM++ needs the previous data prediction");
    KERNEL_TRY(sdc_latent_update_cuda((int)u->kind, u->v ? 1 : 0, u->c, x, mo, x0_out, x0_prev, n,
                                      impl(be)->stream));
    return SDC_OK;
}

static sdc_status cu_capture_begin(sdc_backend *be) {
    CUDA_TRY(cudaStreamBeginCapture(impl(be)->stream, cudaStreamCaptureModeThreadLocal));
    return SDC_OK;
}

static sdc_status cu_capture_end(sdc_backend *be, void **graph) {
    *graph = NULL;
    cudaGraph_t g = NULL;
    CUDA_TRY(cudaStreamEndCapture(impl(be)->stream, &g));
    cudaGraphExec_t exec = NULL;
    cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    CUDA_TRY(e);
    *graph = exec;
    return SDC_OK;
}

static sdc_status cu_graph_launch(sdc_backend *be, void *graph) {
    CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)graph, impl(be)->stream));
    return SDC_OK;
}

static void cu_graph_free(sdc_backend *be, void *graph) {
    (void)be;
    if (graph) cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

static sdc_status cu_sync(sdc_backend *be) {
    CUDA_TRY(cudaStreamSynchronize(impl(be)->stream));
    return SDC_OK;
}

static void cu_memory(sdc_backend *be, size_t *in_use, size_t *peak) {
    if (in_use) *in_use = impl(be)->in_use;
    if (peak) *peak = impl(be)->peak;
}

// the device's free memory (the backend's device is the current one)
static bool cu_available(sdc_backend *be, size_t *bytes) {
    (void)be;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    *bytes = free_b;
    return true;
}

// ---- planned memory -------------------------------------------------------

static const sdc_backend_ops *plan_table(void);

static sdc_status cu_plan_begin(sdc_backend *be) {
    cuda_impl *im = impl(be);
    if (im->planning) return sdc_fail(SDC_ERR_ARG, "plan_begin: a dry run is already open");
    im->planning = true;
    memset(im->need, 0, sizeof im->need);
    im->stage_need = 0;
    im->ops_before = be->ops;
    be->ops = plan_table();
    return SDC_OK;
}

// The staging of upload_async reserved for the largest upload the dry run
// saw; the scratch's size given back.
static sdc_status cu_plan_end(sdc_backend *be, size_t *bytes) {
    cuda_impl *im = impl(be);
    *bytes = 0;
    if (!im->planning) return sdc_fail(SDC_ERR_ARG, "plan_end: no dry run is open");
    im->planning = false;
    be->ops = im->ops_before;
    for (int k = 0; k < STAGES; k++) {
        if (im->stage_cap[k] >= im->stage_need) continue;
        if (im->stage_busy[k]) {
            CUDA_TRY(cudaEventSynchronize(im->stage_done[k]));
            im->stage_busy[k] = false;
        }
        if (im->stage[k]) CUDA_TRY(cudaFreeHost(im->stage[k]));
        im->stage[k] = NULL;
        im->stage_cap[k] = 0;
        void *p = NULL;
        if (cudaMallocHost(&p, im->stage_need * sizeof(float)) != cudaSuccess) {
            cudaGetLastError();
            return sdc_fail(SDC_ERR_OOM, "out of pinned host memory for %.1f MiB of upload staging",
                            im->stage_need * sizeof(float) / 1048576.0);
        }
        im->stage[k] = (float *)p;
        im->stage_cap[k] = im->stage_need;
    }
    *bytes = sdc_scratch_plan_bytes(im->need, SCRATCH);
    return SDC_OK;
}

// The scratch slots as the last dry run sized them, carved from p; NULL:
// back to slots of the backend's own, grown on demand.
static sdc_status cu_scratch_bind(sdc_backend *be, void *p, size_t bytes) {
    cuda_impl *im = impl(be);
    if (im->planning) return sdc_fail(SDC_ERR_ARG, "scratch_bind: inside a dry run");
    float *at[SCRATCH];
    SDC_TRY(sdc_scratch_layout(im->need, SCRATCH, p, bytes, at));
    // ops already queued may still use the old slots
    CUDA_TRY(cudaStreamSynchronize(im->stream));
    for (int i = 0; i < SCRATCH; i++) {
        if (!im->bound) device_free(be, im->scratch[i]);
        im->scratch[i] = at[i];
        im->cap[i] = p ? im->need[i] : 0;
    }
    im->bound = p != NULL;
    return SDC_OK;
}

// The dry run's table: the ops that take scratch are the real ones (they
// record it and return before launching); alloc and load_* too (every
// allocation goes through device_alloc, which refuses while planning); the
// rest do nothing.
template <typename... A> static sdc_status plan_noop(sdc_backend *, A...) { return SDC_OK; }

static sdc_status plan_capture(sdc_backend *) {
    return sdc_fail(SDC_ERR_ARG, "graph capture inside a dry run of planned memory");
}

static void cu_destroy(sdc_backend *be) {
    cuda_impl *im = impl(be);
    if (im->stream) cudaStreamSynchronize(im->stream);
    for (int i = 0; i < STAGES; i++) {
        if (im->stage[i]) cudaFreeHost(im->stage[i]);
        if (im->stage_done[i]) cudaEventDestroy(im->stage_done[i]);
    }
    for (int i = 0; i < SCRATCH && !im->bound; i++) // bound slots are the caller's
        device_free(be, im->scratch[i]);
    while (im->n_biases) drop_bias(be, im->biases[0].src, 1);
    free(im->biases);
    device_free(be, im->blas_ws);
    free(im->recs);
    if (im->blas) cublasDestroy(im->blas);
    if (im->lt) cublasLtDestroy(im->lt);
    sdc_dnn_close(im->dnn);
    if (im->stream) cudaStreamDestroy(im->stream);
    free(im);
    free(be);
}

static sdc_backend_ops make_ops(void) {
    sdc_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.destroy = cu_destroy;
    o.alloc = cu_alloc;
    o.free = cu_free;
    o.upload = cu_upload;
    o.download = cu_download;
    o.copy = cu_copy;
    o.convert = cu_convert;
    o.load_tensor = cu_load_tensor;
    o.load_conv = cu_load_conv;
    o.linear = cu_linear;
    o.layer_norm = cu_layer_norm;
    o.attention = cu_attention;
    o.activation = cu_activation;
    o.add = cu_add;
    o.conv2d = cu_conv2d;
    o.group_norm = cu_group_norm;
    o.upsample_nearest = cu_upsample;
    o.pad = cu_pad;
    o.concat_channels = cu_concat;
    o.geglu = cu_geglu;
    o.add_rows = cu_add_rows;
    o.timestep_embedding = cu_timestep_embedding;
    o.scale = cu_scale;
    o.axpy = cu_axpy;
    o.guidance = cu_guidance;
    o.latent_update = cu_latent_update;
    o.upload_async = cu_upload_async;
    o.capture_begin = cu_capture_begin;
    o.capture_end = cu_capture_end;
    o.graph_launch = cu_graph_launch;
    o.graph_free = cu_graph_free;
    o.memory = cu_memory;
    o.sync = cu_sync;
    o.plan_begin = cu_plan_begin;
    o.plan_end = cu_plan_end;
    o.scratch_bind = cu_scratch_bind;
    o.available = cu_available;
    return o;
}

static sdc_backend_ops make_plan_ops(void) {
    sdc_backend_ops o = make_ops();
    o.upload = plan_noop;
    o.download = plan_noop;
    o.copy = plan_noop;
    o.convert = plan_noop;
    o.layer_norm = plan_noop;
    o.activation = plan_noop;
    o.add = plan_noop;
    o.upsample_nearest = plan_noop;
    o.pad = plan_noop;
    o.concat_channels = plan_noop;
    o.geglu = plan_noop;
    o.add_rows = plan_noop;
    o.timestep_embedding = plan_noop;
    o.scale = plan_noop;
    o.axpy = plan_noop;
    o.guidance = plan_noop;
    o.latent_update = plan_noop;
    o.capture_begin = plan_capture;
    o.sync = plan_noop;
    return o;
}

static const sdc_backend_ops cuda_ops = make_ops();
static const sdc_backend_ops cuda_plan_ops = make_plan_ops();
static const sdc_backend_ops *plan_table(void) { return &cuda_plan_ops; }

extern "C" sdc_status sdc_backend_cuda_create(int device, sdc_backend **out) {
    *out = NULL;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count <= device) {
        cudaGetLastError();
        return sdc_fail(SDC_ERR_BACKEND, "CUDA device %d not available (%d found)", device, count);
    }
    CUDA_TRY(cudaSetDevice(device));
    sdc_backend *be = (sdc_backend *)calloc(1, sizeof *be);
    cuda_impl *im = (cuda_impl *)calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    im->device = device;
    const char *attn = getenv("SDC_ATTN");
    im->attn_gemm = attn && !strcmp(attn, "cublas");
    im->dnn_attn = attn && !strcmp(attn, "cudnn");
    const char *conv = getenv("SDC_CONV");
    im->conv_im2col = conv && !strcmp(conv, "im2col");
    im->dnn_conv = conv && !strcmp(conv, "cudnn");
    const char *linear = getenv("SDC_LINEAR");
    im->linear_gemm = linear && !strcmp(linear, "cublas");
    const char *tile = getenv("SDC_CONV_TILE");
    im->conv_tile = tile && (!strcmp(tile, "64") || !strcmp(tile, "128")) ? atoi(tile) : 0;
    cudaDeviceProp prop;
    im->sms = cudaGetDeviceProperties(&prop, device) == cudaSuccess ? prop.multiProcessorCount : 0;
    cudaGetLastError();
    // sdc's own stream: work on it is ordered, nothing waits on the legacy
    // default stream, and it can be captured into a graph
    bool ok = cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking) == cudaSuccess;
    for (int i = 0; ok && i < STAGES; i++) ok = cudaEventCreate(&im->stage_done[i]) == cudaSuccess;
    if (!ok) {
        cudaGetLastError();
        be->impl = im;
        cu_destroy(be);
        return sdc_fail(SDC_ERR_BACKEND, "could not create a stream and events on CUDA device %d", device);
    }
    if (cublasCreate(&im->blas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(im->blas, im->stream) != CUBLAS_STATUS_SUCCESS) {
        be->impl = im;
        cu_destroy(be);
        return sdc_fail(SDC_ERR_BACKEND, "cublasCreate failed on device %d", device);
    }
    if (cublasLtCreate(&im->lt) != CUBLAS_STATUS_SUCCESS) {
        be->impl = im;
        cu_destroy(be);
        return sdc_fail(SDC_ERR_BACKEND, "cublasLtCreate failed on device %d", device);
    }
    if (im->dnn_conv || im->dnn_attn) {
        char err[256];
        if (sdc_dnn_open(&im->dnn, im->stream, err, sizeof err)) {
            be->impl = im;
            cu_destroy(be);
            return sdc_fail(SDC_ERR_BACKEND, "%s: %s", im->dnn_conv ? "SDC_CONV=cudnn" : "SDC_ATTN=cudnn", err);
        }
    }
    // fp32 products stay fp32 (no TF32): the CPU backend is the oracle
    cublasSetMathMode(im->blas, CUBLAS_PEDANTIC_MATH);
    im->math = CUBLAS_PEDANTIC_MATH;
    // cuBLAS's workspace, reserved now: nothing allocates inside a graph.
    // 32 MiB (what cuBLAS asks for on Hopper), less on a small device.
    be->ops = &cuda_ops;
    be->impl = im;
    size_t free0 = 0, total0 = 0;
    if (cudaMemGetInfo(&free0, &total0) != cudaSuccess) cudaGetLastError();
    size_t ws = total0 / 128; // (cuBLASLt shares it: one stream, one product at a time)
    if (ws > ((size_t)32 << 20)) ws = (size_t)32 << 20;
    if (ws < ((size_t)64 << 10)) ws = (size_t)64 << 10;
    if (device_alloc(be, ws, &im->blas_ws) != SDC_OK ||
        cublasSetWorkspace(im->blas, im->blas_ws, ws) != CUBLAS_STATUS_SUCCESS) {
        cu_destroy(be);
        return sdc_fail(SDC_ERR_BACKEND, "could not reserve cuBLAS's workspace on CUDA device %d", device);
    }
    im->blas_ws_bytes = ws;
    be->weight_type = SDC_DT_F16; // the default; sdc_params.precision chooses

    // scratch blocks: 1/64 of the device's memory, at most 64 Mi floats
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
    im->budget = total_b / 64 / sizeof(float);
    if (im->budget > ((size_t)64 << 20)) im->budget = (size_t)64 << 20;
    if (im->budget < ((size_t)1 << 16)) im->budget = (size_t)1 << 16;
    be->ops = &cuda_ops;
    be->impl = im;
    *out = be;
    return SDC_OK;
}
