/* backend_cpu.c - the CPU backend: the readable fp32 reference for every op.
 * It takes F32 activations only (an sdc_buf of another type is refused,
 * naming the op); convert and copy also move F16 and BF16 buffers, so that
 * typed buffers can be checked against it. Matrix products go through
 * OpenBLAS sgemm; the rest is plain loops with OpenMP over rows. Statistics
 * are accumulated in double, two passes. */
#include "backend/backend_cpu.h"
#include "model/safetensors.h"

#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Buffers of 2 MiB or more are 2 MiB aligned and asked to be backed by
 * transparent huge pages: a fresh page must be zeroed by the kernel, and
 * faulting 4 GB of weights in 4 KiB pages was most of the load time. */
void *sdc_cpu_aligned(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return aligned_alloc(256, (bytes + 255) & ~(size_t)255); /* as cudaMalloc's */
    bytes = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, bytes);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static sdc_status cpu_alloc(sdc_backend *be, size_t n, float **out) {
    size_t bytes = n * sizeof(float);
    if (((sdc_cpu_impl *)be->impl)->planning)
        return sdc_fail(SDC_ERR_BACKEND, "an allocation of %.2f MiB during a dry run of planned memory (a dry run "
                        "runs and allocates nothing)", bytes / 1048576.0);
    be->allocations++;
    float *p = sdc_cpu_aligned(bytes ? bytes : 64);
    if (!p)
        return sdc_fail(SDC_ERR_OOM, "cpu backend: out of memory allocating %zu bytes", bytes);
    *out = p;
    return SDC_OK;
}

static void cpu_free(sdc_backend *be, void *p) {
    (void)be;
    free(p);
}

sdc_status sdc_cpu_f32(const char *op, int n, const sdc_buf *bufs) {
    for (int i = 0; i < n; i++)
        if (bufs[i].p && bufs[i].type != SDC_DT_F32)
            return sdc_fail(SDC_ERR_ARG, "%s: activations of type %s; the CPU backend computes in F32 only", op,
                            sdc_dtype_name(bufs[i].type));
    return SDC_OK;
}

/* host memory to host memory: upload and download are plain copies */
static sdc_status cpu_upload(sdc_backend *be, float *dst, const float *src, size_t n) {
    be->transfers.uploads++;
    be->transfers.bytes_up += n * sizeof(float);
    if (n) memmove(dst, src, n * sizeof(float));
    return SDC_OK;
}

static sdc_status cpu_download(sdc_backend *be, float *dst, const float *src, size_t n) {
    be->transfers.downloads++;
    be->transfers.bytes_down += n * sizeof(float);
    if (n) memmove(dst, src, n * sizeof(float));
    return SDC_OK;
}

/* A byte copy, so any activation type, as long as both sides agree. */
static sdc_status cpu_copy(sdc_backend *be, sdc_buf dst, sdc_buf src, size_t n) {
    (void)be;
    if (!sdc_act_type(dst.type) || dst.type != src.type)
        return sdc_fail(SDC_ERR_ARG, "copy: from %s to %s: both sides must be one of F32, F16, BF16 and the same "
                        "(between types use convert)", sdc_dtype_name(src.type), sdc_dtype_name(dst.type));
    if (n) memmove(dst.p, src.p, n * sdc_act_size(dst.type));
    return SDC_OK;
}

/* Any of F32, F16, BF16 to any: through fp32, exact for every half value,
 * so the one rounding (to nearest even) is the host helpers' to dst's type.
 * Across types dst and src must not overlap; one type is a plain copy. */
static sdc_status cpu_convert(sdc_backend *be, sdc_buf dst, sdc_buf src, size_t n) {
    (void)be;
    if (!sdc_act_type(dst.type) || !sdc_act_type(src.type))
        return sdc_fail(SDC_ERR_ARG, "convert: from %s to %s: F32, F16 and BF16 only", sdc_dtype_name(src.type),
                        sdc_dtype_name(dst.type));
    if (dst.type == src.type) {
        if (n) memmove(dst.p, src.p, n * sdc_act_size(dst.type));
        return SDC_OK;
    }
    const sdc_dtype st = src.type, dt = dst.type;
    const float *s32 = src.p;
    const uint16_t *s16 = src.p;
    float *d32 = dst.p;
    uint16_t *d16 = dst.p;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float f = st == SDC_DT_F32 ? s32[i] : st == SDC_DT_F16 ? sdc_f16_to_f32(s16[i]) : sdc_bf16_to_f32(s16[i]);
        if (dt == SDC_DT_F32) d32[i] = f;
        else d16[i] = dt == SDC_DT_F16 ? sdc_f32_to_f16(f) : sdc_f32_to_bf16(f);
    }
    return SDC_OK;
}

/* Weights arrive as fp32, fp16 or bf16 and are kept as asked: the
 * loaders ask for the file's own type (weights_as_stored), so a half
 * tensor is a plain copy; across types each element is converted once
 * (round to nearest even towards a half type). */
static sdc_status cpu_load_tensor(sdc_backend *be, sdc_dtype type, const void *src, sdc_dtype src_type, size_t n,
                                  void **out) {
    *out = NULL;
    if (type != SDC_DT_F32 && type != SDC_DT_F16 && type != SDC_DT_BF16)
        return sdc_fail(SDC_ERR_ARG, "load_tensor: weights of type %s (F32, F16 or BF16)", sdc_dtype_name(type));
    if (src_type != SDC_DT_F32 && src_type != SDC_DT_F16 && src_type != SDC_DT_BF16)
        return sdc_fail(SDC_ERR_ARG, "load_tensor: source type %d is not F32, F16 or BF16", (int)src_type);
    float *p = NULL;
    SDC_TRY(cpu_alloc(be, sdc_act_floats(type, n), &p));
    if (n) SDC_TRY(cpu_convert(be, (sdc_buf){p, type}, (sdc_buf){(void *)src, src_type}, n));
    be->transfers.uploads++;
    be->transfers.bytes_up += n * sdc_act_size(src_type);
    *out = p;
    return SDC_OK;
}

/* LoRA merges: fp32 in, rounded to the weight's type (to nearest even). */
static sdc_status cpu_store_tensor(sdc_backend *be, sdc_buf dst, const float *src, size_t n) {
    if (!sdc_act_type(dst.type)) return sdc_fail(SDC_ERR_ARG, "store_tensor: weights of type %s",
                                                 sdc_dtype_name(dst.type));
    return n ? cpu_convert(be, dst, SDC_F32((float *)src), n) : SDC_OK;
}

static sdc_status cpu_linear(sdc_backend *be, sdc_buf yb, sdc_buf xb,
                             sdc_weight wt, const float *bias, int m, int k, int n) {
    SDC_TRY(sdc_cpu_f32("linear", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
    if (m <= 0 || k <= 0 || n <= 0)
        return sdc_fail(SDC_ERR_ARG, "linear: bad shape m=%d k=%d n=%d", m, k, n);
    float beta = 0.0f;
    if (bias && !sdc_cpu_planning(be)) {
        for (int i = 0; i < m; i++) memcpy(y + (size_t)i * n, bias, (size_t)n * sizeof(float));
        beta = 1.0f;
    }
    /* y[m,n] = x[m,k] * w[n,k]^T, a half w widened a panel at a time */
    return sdc_cpu_gemm_nt(be, "linear", m, n, k, x, k, wt, beta, y, n);
}

static sdc_status cpu_layer_norm(sdc_backend *be, sdc_buf yb, sdc_buf xb,
                                 const float *gamma, const float *beta, int m,
                                 int n, float eps) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("layer_norm", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < m; i++) {
        const float *xr = x + (size_t)i * n;
        float *yr = y + (size_t)i * n;
        double mean = 0.0, var = 0.0;
        for (int j = 0; j < n; j++) mean += xr[j];
        mean /= n;
        for (int j = 0; j < n; j++) {
            double d = xr[j] - mean;
            var += d * d;
        }
        var /= n;
        /* centre in double: mean rounded to float would cost ~ulp(mean)
         * absolute error, large against the spread when |mean| >> std */
        double inv = 1.0 / sqrt(var + eps);
        for (int j = 0; j < n; j++)
            yr[j] = (float)((xr[j] - mean) * inv) * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
    }
    return SDC_OK;
}

static sdc_status cpu_activation(sdc_backend *be, sdc_buf yb, sdc_buf xb,
                                 size_t n, sdc_act act) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("activation", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
    switch (act) {
    case SDC_ACT_NONE:
        if (y != x) memmove(y, x, n * sizeof(float));
        break;
    case SDC_ACT_GELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case SDC_ACT_QUICK_GELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    case SDC_ACT_SILU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case SDC_ACT_RELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case SDC_ACT_TANH3: /* torch.tanh(x / 3) * 3: a division, then a product, each rounded */
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i] / 3.0f) * 3.0f;
        break;
    default:
        return sdc_fail(SDC_ERR_ARG, "activation: unknown kind %d", (int)act);
    }
    return SDC_OK;
}

static sdc_status cpu_add(sdc_backend *be, sdc_buf yb, sdc_buf ab,
                          sdc_buf bb, size_t n) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("add", 3, (sdc_buf[]){yb, ab, bb}));
    float *y = yb.p;
    const float *a = ab.p, *b = bb.p;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return SDC_OK;
}

/* The CPU's convolution kernels stay (cout, k, k, cin), unpadded, in the
 * type asked for. */
static sdc_status cpu_load_conv(sdc_backend *be, sdc_dtype type, const void *src, sdc_dtype src_type, int cout, int k,
                                int cin, sdc_weight *out) {
    out->type = type;
    out->chan_pad = 1;
    return cpu_load_tensor(be, type, src, src_type, (size_t)cout * k * k * cin, &out->p);
}

static void cpu_destroy(sdc_backend *be);

static const sdc_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .convert = cpu_convert,
    .load_tensor = cpu_load_tensor,
    .load_conv = cpu_load_conv,
    .store_tensor = cpu_store_tensor,
    .linear = cpu_linear,
    .layer_norm = cpu_layer_norm,
    .attention = sdc_cpu_attention,
    .activation = cpu_activation,
    .add = cpu_add,
    .conv2d = sdc_cpu_conv2d,
    .group_norm = sdc_cpu_group_norm,
    .upsample_nearest = sdc_cpu_upsample_nearest,
    .pad = sdc_cpu_pad,
    .concat_channels = sdc_cpu_concat_channels,
    .geglu = sdc_cpu_geglu,
    .add_rows = sdc_cpu_add_rows,
    .timestep_embedding = sdc_cpu_timestep_embedding,
    .scale = sdc_cpu_scale,
    .axpy = sdc_cpu_axpy,
    .guidance = sdc_cpu_guidance,
    .latent_update = sdc_cpu_latent_update,
    .upload_async = cpu_upload,
    .plan_begin = sdc_cpu_plan_begin,
    .plan_end = sdc_cpu_plan_end,
    .scratch_bind = sdc_cpu_scratch_bind,
    .available = sdc_cpu_available,
};

const sdc_backend_ops *sdc_cpu_ops(void) { return &cpu_ops; }

sdc_status sdc_cpu_scratch(sdc_backend *be, int slot, size_t n, const char *op, float **out) {
    sdc_cpu_impl *im = be->impl;
    *out = NULL;
    if (slot < 0 || slot >= SDC_CPU_SCRATCH_SLOTS) return sdc_fail(SDC_ERR_ARG, "%s: no scratch slot %d", op, slot);
    if (im->planning) {
        if (n > im->need[slot]) im->need[slot] = n;
        return SDC_OK;
    }
    if (im->cap[slot] < n) {
        if (im->bound)
            return sdc_fail(SDC_ERR_BACKEND, "%s: needs %.2f MiB of scratch (slot %d), more than the memory plan "
                            "reserved (%.2f MiB): the dry run did not see this op", op, n * 4 / 1048576.0, slot,
                            im->cap[slot] * 4 / 1048576.0);
        free(im->buf[slot]);
        be->allocations++;
        im->buf[slot] = sdc_cpu_aligned(n * sizeof(float));
        im->cap[slot] = im->buf[slot] ? n : 0;
        if (!im->buf[slot]) return sdc_fail(SDC_ERR_OOM, "%s: out of memory for %zu floats of scratch", op, n);
    }
    *out = im->buf[slot];
    return SDC_OK;
}

sdc_status sdc_backend_cpu_create(int n_threads, sdc_backend **out) {
    sdc_backend *be = calloc(1, sizeof *be);
    sdc_cpu_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return sdc_fail(SDC_ERR_OOM, "cpu backend: out of memory");
    }
    be->impl = im;
    be->ops = &cpu_ops;
    be->n_threads = n_threads;
    be->weight_type = SDC_DT_F32;
    be->weights_as_stored = true;
    const char *wino = getenv("SDC_CPU_WINOGRAD");
    im->winograd = wino && !strcmp(wino, "0") ? 0 : wino && !strcmp(wino, "2") ? 2 : 4;
    im->wino4_tiles = 1024;
    if (n_threads > 0) {
        omp_set_num_threads(n_threads);
        openblas_set_num_threads(n_threads);
    }
    *out = be;
    return SDC_OK;
}

static void cpu_destroy(sdc_backend *be) {
    sdc_cpu_impl *im = be->impl;
    for (int i = 0; i < SDC_CPU_SCRATCH_SLOTS && !im->bound; i++) free(im->buf[i]); /* bound: the caller's */
    free(im);
    free(be);
}

void sdc_backend_destroy(sdc_backend *be) {
    if (be) be->ops->destroy(be);
}

sdc_status sdc_backend_upload_new(sdc_backend *be, const float *src, size_t n,
                                  float **out) {
    float *p = NULL;
    SDC_TRY(be->ops->alloc(be, n, &p));
    sdc_status st = be->ops->upload(be, p, src, n);
    if (st != SDC_OK) {
        be->ops->free(be, p);
        return st;
    }
    *out = p;
    return SDC_OK;
}
