/* backend.h - the small ops table that model code is written against.
 *
 * Activations are typed buffers in the backend's memory (host for the CPU
 * backend, device for CUDA), row-major: sdc_buf says their element type.
 * The CPU backend takes fp32 activations only; CUDA fp32, fp16 or bf16,
 * one type for all the activations of one op (convert changes type). The
 * denoising loop's ops and the host copies (upload, download) are fp32
 * (float *): latents stay fp32 whatever the networks compute in. Weights
 * (matrices and convolution kernels) are typed too: sdc_weight says which
 * element type the backend keeps them in (fp32 on the CPU; fp16, bf16 or
 * fp32 on CUDA); vectors (biases, norms) and embedding tables are fp32
 * everywhere. Token sequences are [batch, tokens, features];
 * images are NHWC. Every op returns an sdc_status; failures carry a message
 * naming the op. The CPU backend (backend_cpu.c) is the readable reference
 * and the oracle every other backend is tested against. */
#ifndef SDC_BACKEND_H
#define SDC_BACKEND_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdc_act {
    SDC_ACT_NONE = 0,
    SDC_ACT_GELU,       /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
    SDC_ACT_QUICK_GELU, /* x * sigmoid(1.702 x), OpenAI CLIP */
    SDC_ACT_SILU,       /* x * sigmoid(x) */
    SDC_ACT_RELU,       /* x < 0 ? 0 : x (NaN stays NaN, as torch.relu) */
    SDC_ACT_TANH3,      /* tanh(x / 3) * 3: TAESD's Clamp, a soft clamp to (-3, 3) */
} sdc_act;

typedef struct sdc_backend sdc_backend;

/* A weight matrix or convolution kernel in backend memory and its element
 * type: F32, F16 or BF16. Products with it accumulate in fp32. */
typedef struct sdc_weight {
    void *p;
    sdc_dtype type;
    /* a convolution kernel from load_conv: its cin and cout are stored
     * padded with zeros to multiples of chan_pad (0 or 1: as given) */
    int chan_pad;
    /* a kernel read in place from the file (the CPU): laid out as PyTorch
     * stores it, (cout, cin, pt_taps), not (cout, k, k, cin); 0: ours */
    int pt_taps;
    /* the CPU: this weight's products are computed from bf16 operands
     * (--precision bf16; backend_cpu_bf16.c), set by the loaders from the
     * backend's products_bf16 */
    bool bf16;
} sdc_weight;

/* An fp32 weight from a float buffer (tests, the CPU backend's callers). */
#define SDC_WEIGHT_F32(ptr) ((sdc_weight){.p = (void *)(ptr), .type = SDC_DT_F32})

/* A buffer of activations in backend memory and its element type: F32,
 * F16 or BF16. p NULL: no buffer (an optional argument left out). */
typedef struct sdc_buf {
    void *p;
    sdc_dtype type;
} sdc_buf;

/* fp32 activations from a float pointer (NULL gives no buffer) */
#define SDC_F32(ptr) ((sdc_buf){(void *)(ptr), SDC_DT_F32})
#define SDC_NO_BUF ((sdc_buf){NULL, SDC_DT_F32})

/* the element types of backend buffers: activations and weights */
static inline bool sdc_act_type(sdc_dtype t) { return t == SDC_DT_F32 || t == SDC_DT_F16 || t == SDC_DT_BF16; }
/* bytes of one element of an activation type (4 for F32, 2 for F16/BF16) */
static inline size_t sdc_act_size(sdc_dtype t) { return t == SDC_DT_F32 ? 4 : 2; }
/* the buffer from element i on */
static inline sdc_buf sdc_at(sdc_buf b, size_t i) {
    if (b.p) b.p = (char *)b.p + i * sdc_act_size(b.type);
    return b;
}
/* floats of backend memory (alloc's unit) that n elements of t take */
static inline size_t sdc_act_floats(sdc_dtype t, size_t n) { return (n * sdc_act_size(t) + 3) / 4; }

/* One sampler update, elementwise over latents x given the model output mo
 * (after guidance). The scalars are computed on the host by the sampler
 * (src/sampling/scheduler.c); every backend evaluates these expressions in
 * this order, each operation rounded to float (no fused multiply-add), so
 * all backends agree bit for bit:
 *   DDIM   c = {sa, sb, sap, dir}:  x0 = v ? sa x - sb mo : (x - sb mo) / sa
 *                                  eps = v ? sa mo + sb x : mo
 *                                  x = sap x0 + dir eps
 *   DDPM   c = {sa, sb, cx0, cx}:  x0 as DDIM; x = cx0 x0 + cx x
 *   EULER  c = {sigma, c_out, d2, dt}: x0 = v ? mo c_out + x / d2 : x - sigma mo
 *                                  x = x + ((x - x0) / sigma) dt
 *   DPM1   c = {a, s, cx, cd0}:    m = v ? a x - s mo : (x - s mo) / a
 *                                  x0_out = m; x = cx x - cd0 m
 *   DPM2   c = {a, s, cx, cd0, inv_r, cd1}: m as DPM1, x0_out = m,
 *                                  x = (cx x - cd0 m) - cd1 (inv_r (m - x0_prev))
 * Noise, where the sampler adds it, is a separate axpy after the update. */
typedef enum sdc_update_kind {
    SDC_UPDATE_DDIM = 0,
    SDC_UPDATE_DDPM,
    SDC_UPDATE_EULER,
    SDC_UPDATE_DPM1,
    SDC_UPDATE_DPM2,
} sdc_update_kind;

typedef struct sdc_latent_update {
    sdc_update_kind kind;
    bool v;           /* v-prediction */
    float c[6];
} sdc_latent_update;

/* The reference loop of the update above (the CPU backend's op, and the
 * host sampler's step). x0_out / x0_prev: DPM kinds only, else unused. */
void sdc_latent_update_apply(const sdc_latent_update *u, float *x, const float *mo, float *x0_out,
                             const float *x0_prev, size_t n);
/* The step's data prediction (its estimate of the final latents) from x
 * and mo as they are before the update, by the update's own expression:
 * DDIM's and DDPM's x0, Euler's x0, DPM's m. On the host (live previews). */
void sdc_latent_update_x0(const sdc_latent_update *u, const float *x, const float *mo, float *x0, size_t n);

typedef struct sdc_backend_ops {
    const char *name;
    void (*destroy)(sdc_backend *be);
    /* memory: n floats of backend memory (4n bytes, 256-byte aligned: a
     * typed buffer of m elements of t takes sdc_act_floats(t, m)) */
    sdc_status (*alloc)(sdc_backend *be, size_t n, float **out);
    void (*free)(sdc_backend *be, void *p);
    sdc_status (*upload)(sdc_backend *be, float *dst, const float *src, size_t n);
    sdc_status (*download)(sdc_backend *be, float *dst, const float *src, size_t n);

    /* n elements of `type` in backend memory, filled from host memory src
     * of src_type (F32, F16 or BF16), converted (round to nearest even) on
     * the way: the one way weights arrive. Both backends keep F32, F16 and
     * BF16 (the CPU widens half weights inside its products). Freed with
     * `free`. */
    sdc_status (*load_tensor)(sdc_backend *be, sdc_dtype type, const void *src, sdc_dtype src_type, size_t n,
                              void **out);
    /* A convolution kernel (cout, k, k, cin) from host memory, as
     * load_tensor, into the layout the backend computes best with: the CPU
     * keeps it as given; CUDA pads cin and cout with zeros to multiples of
     * 8 (16 bytes of fp16: what tensor-core loads take; conv_in's 4 input
     * channels, the VAE's 3 output ones), (cout8, k, k, cin8), and says so
     * in out->chan_pad. conv2d takes either layout. Freed with `free`. */
    sdc_status (*load_conv)(sdc_backend *be, sdc_dtype type, const void *src, sdc_dtype src_type, int cout, int k,
                            int cin, sdc_weight *out);
    /* Rewrite n elements of a weight in place from host fp32 (LoRA merges):
     * dst = the weight's memory at its element offset, of the weight's type;
     * src laid out as the weight is (a kernel's padding included). NULL
     * where the backend has no cheaper way than load_tensor / load_conv into
     * new memory and a copy (CUDA). */
    sdc_status (*store_tensor)(sdc_backend *be, sdc_buf dst, const float *src, size_t n);

    /* y[m, n] = x[m, k] . w[n, k]^T (+ bias[n] if bias != NULL); w of a type
     * the backend keeps (load_tensor), fp32 accumulation. On CUDA an F16 or
     * BF16 w takes x rounded to that type. */
    /* x and y of one type T, w of type T, or T fp32 and w of any type
     * (x is then rounded to w's type on the way in on CUDA; the CPU widens
     * w to fp32 instead, exactly, and computes in fp32). */
    sdc_status (*linear)(sdc_backend *be, sdc_buf y, sdc_buf x,
                         sdc_weight w, const float *bias, int m, int k, int n);
    /* y[m, n] = (x - mean) / sqrt(var + eps) * gamma + beta, per row;
     * two-pass statistics. y may alias x. */
    sdc_status (*layer_norm)(sdc_backend *be, sdc_buf y, sdc_buf x,
                             const float *gamma, const float *beta, int m,
                             int n, float eps);
    /* Multi-head scaled dot-product attention, scale 1/sqrt(head_dim).
     * q: [batch, tq, *] with row stride q_stride floats; head h reads
     * columns [h*head_dim, (h+1)*head_dim). k, v: [batch, tk, *] with row
     * stride kv_stride. out: [batch, tq, heads*head_dim] (dense).
     * causal: query i attends to keys j <= i. Scores, softmax statistics
     * and probabilities in fp32 whatever the activations' type (the
     * probabilities rounded to it for the product with v). */
    sdc_status (*attention)(sdc_backend *be, sdc_buf out, sdc_buf q,
                            sdc_buf k, sdc_buf v, int batch,
                            int heads, int tq, int tk, int head_dim,
                            int q_stride, int kv_stride, bool causal);
    /* y[i] = act(x[i]) for n elements; y may alias x. */
    sdc_status (*activation)(sdc_backend *be, sdc_buf y, sdc_buf x,
                             size_t n, sdc_act act);
    /* dst[i] = src[i] within backend memory, n elements of one type. */
    sdc_status (*copy)(sdc_backend *be, sdc_buf dst, sdc_buf src, size_t n);
    /* dst[i] = src[i] converted to dst's type (round to nearest even),
     * any of F32, F16, BF16 each way on both backends. */
    sdc_status (*convert)(sdc_backend *be, sdc_buf dst, sdc_buf src, size_t n);
    /* y[i] = a[i] + b[i]; y may alias a or b. */
    sdc_status (*add)(sdc_backend *be, sdc_buf y, sdc_buf a,
                      sdc_buf b, size_t n);

    /* --- image ops (NHWC) --------------------------------------------- */
    /* y[n, ho, wo, cout] = conv(x[n, h, w, cin]) + bias[cout]
     *                      (+ residual[n, ho, wo, cout] when residual.p)
     * w: (cout, k, k, cin), permuted at load from PyTorch's (cout, cin, k, k);
     * types as linear's (residual of y's type).
     * ho = (h + 2 pad - k) / stride + 1, likewise wo. y must not alias x. */
    sdc_status (*conv2d)(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w,
                         const float *bias, sdc_buf residual, int n, int h,
                         int w_in, int cin, int cout, int k, int stride, int pad);
    /* Group norm over x[n, hw, c]: statistics per (image, group of c/groups
     * channels), two-pass; then gamma/beta per channel; silu after when
     * `silu`. y may alias x. */
    sdc_status (*group_norm)(sdc_backend *be, sdc_buf y, sdc_buf x,
                             const float *gamma, const float *beta, int n, int hw,
                             int c, int groups, float eps, bool silu);
    /* Nearest-neighbour resize x[n, h, w, c] -> y[n, ho, wo, c] as PyTorch's
     * F.interpolate(mode="nearest"): src = floor(dst * in / out). */
    sdc_status (*upsample_nearest)(sdc_backend *be, sdc_buf y, sdc_buf x, int n,
                                   int h, int w, int c, int ho, int wo);
    /* Zero padding: y[n, h + top + bottom, w + left + right, c] with x
     * placed at (top, left). */
    sdc_status (*pad)(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c,
                      int top, int bottom, int left, int right);
    /* y[r, 0:ca] = a[r, :], y[r, ca:ca+cb] = b[r, :] for r < rows. */
    sdc_status (*concat_channels)(sdc_backend *be, sdc_buf y, sdc_buf a,
                                  sdc_buf b, size_t rows, int ca, int cb);
    /* GEGLU: y[m, j] = x[m, j] * gelu(x[m, f + j]) for j < f; x is (m, 2f). */
    sdc_status (*geglu)(sdc_backend *be, sdc_buf y, sdc_buf x, int m, int f);
    /* y[b, r, j] = x[b, r, j] + v[b, j]: a per-image row broadcast over
     * `rows` positions (the time embedding added in a ResNet block). */
    sdc_status (*add_rows)(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_buf v,
                           int n, size_t rows, int c);
    /* diffusers' get_timestep_embedding(t, dim, flip_sin_to_cos=True,
     * shift 0) in float32 for every row: y[b, i] = cos(t f_i),
     * y[b, half + i] = sin(t f_i), f_i = exp(-ln(10000) i / half), b < rows
     * (a trailing odd column is 0), rounded once to y's type. t is an
     * argument: nothing is copied. */
    sdc_status (*timestep_embedding)(sdc_backend *be, sdc_buf y, int rows, int dim, double t);

    /* --- the denoising loop (latents stay in backend memory, fp32) ----- */
    /* y[i] = x[i] * a, or x[i] / a when div; y may alias x. */
    sdc_status (*scale)(sdc_backend *be, float *y, const float *x, float a, bool div, size_t n);
    /* y[i] = y[i] + a * x[i] (the noise of ancestral samplers) */
    sdc_status (*axpy)(sdc_backend *be, float *y, float a, const float *x, size_t n);
    /* classifier-free guidance: y[i] = u[i] + g * (c[i] - u[i]); y may
     * alias u. */
    sdc_status (*guidance)(sdc_backend *be, float *y, const float *u, const float *c, float g, size_t n);
    /* x updated in place by one sampler step (sdc_latent_update). */
    sdc_status (*latent_update)(sdc_backend *be, const sdc_latent_update *u, float *x, const float *mo,
                                float *x0_out, const float *x0_prev, size_t n);
    /* An upload that does not wait for the copy: src may be reused as soon
     * as it returns (the backend stages it in its own pinned memory). */
    sdc_status (*upload_async)(sdc_backend *be, float *dst, const float *src, size_t n);

    /* --- graphs: NULL where the backend has none (the CPU) ------------- */
    /* Record, instead of run, the ops issued from capture_begin to
     * capture_end, as one executable graph; graph_launch runs it again on
     * the same buffers (with the values they hold then). Nothing may
     * allocate, copy from the host or wait while recording. */
    sdc_status (*capture_begin)(sdc_backend *be);
    sdc_status (*capture_end)(sdc_backend *be, void **graph);
    sdc_status (*graph_launch)(sdc_backend *be, void *graph);
    void (*graph_free)(sdc_backend *be, void *graph);
    /* Wait until everything issued so far has run (timing; no copy). */
    sdc_status (*sync)(sdc_backend *be);
    /* Device memory: in use now and the most at once since the backend was
     * made (0 where the backend does not count, the CPU). */
    void (*memory)(sdc_backend *be, size_t *in_use, size_t *peak);

    /* --- planned memory (both backends; NULL would mean nothing to plan) --
     * A dry run. Between plan_begin and plan_end the ops that take scratch
     * check their arguments and record what they would need (im2col
     * blocks, attention scores, norm statistics, padded inputs, half copies
     * of operands), upload_async its pinned staging (CUDA), and nothing
     * runs, is copied or counted; the other ops do nothing; alloc and
     * load_* fail (a dry run that allocates is a bug).
     * plan_end reserves the staging and gives the scratch's size in bytes.
     * scratch_bind then hands the backend that much of its own memory (a
     * region of the caller's arena) for its scratch: from then on no op
     * allocates, and one that needs more scratch than planned fails naming
     * itself. scratch_bind(be, NULL, 0) goes back to scratch of its own,
     * grown on demand (unplanned use: tests, one-off forwards). */
    sdc_status (*plan_begin)(sdc_backend *be);
    sdc_status (*plan_end)(sdc_backend *be, size_t *scratch_bytes);
    sdc_status (*scratch_bind)(sdc_backend *be, void *p, size_t bytes);

    /* How many more bytes this backend's memory could take now: the CPU
     * the host's (MemAvailable, less under a cgroup's limit), CUDA the
     * device's free memory; false (or NULL) where it cannot say. What
     * automatic VAE tiling weighs a render's plan against. */
    bool (*available)(sdc_backend *be, size_t *bytes);
} sdc_backend_ops;

/* For a backend's planned memory: the bytes its `slots` scratch slots of
 * need[i] floats take in a plan's arena, each 256-byte aligned; and where
 * each lies in the region p of `bytes` (at[i]; NULL for an empty slot or a
 * NULL p), refused if the region is short or p not 256-byte aligned. */
size_t sdc_scratch_plan_bytes(const size_t *need, int slots);
sdc_status sdc_scratch_layout(const size_t *need, int slots, void *p, size_t bytes, float **at);

/* What a network asks of planned memory, in floats of backend memory:
 * activations, rewritten by every forward (the same bytes may serve another
 * network between forwards), and state kept across a job's forwards. */
typedef struct sdc_net_memory {
    size_t activations, state;
} sdc_net_memory;

/* Host <-> backend copies so far (upload, upload_async, download and the
 * backend's own, e.g. token ids): what tests and the profiler read. */
typedef struct sdc_transfers {
    size_t uploads, downloads;
    size_t bytes_up, bytes_down;
} sdc_transfers;

struct sdc_backend {
    const sdc_backend_ops *ops;
    int n_threads;  /* CPU threads for this backend's own loops */
    sdc_transfers transfers;
    /* allocations of backend memory so far (alloc, load_tensor and the
     * backend's own scratch): a planned render of a known shape adds none */
    size_t allocations;
    /* the type the model loaders ask load_tensor for matrices and kernels:
     * F32 on the CPU; on CUDA F16 by default, BF16 or F32 by choice
     * (sdc_params.precision), set before each model is loaded */
    sdc_dtype weight_type;
    /* The CPU: matrices and kernels are kept in the file's own type (F16,
     * BF16 or F32, whatever weight_type says) and widened to fp32 inside
     * the products, a panel at a time, so fp16 weights take half the
     * memory and no load-time conversion; the arithmetic is fp32's, exact
     * to a whole-model fp32 copy. weight_type still gives the activations'
     * type. False: matrices and kernels in weight_type (CUDA). */
    bool weights_as_stored;
    /* The CPU: weights loaded while this is set compute their products
     * in bf16 (sdc_weight.bf16), as sdc_params.precision BF16 asks; set
     * before each model is loaded, as weight_type is. */
    bool products_bf16;
    /* The CPU: the next attention calls compute Q K^T and P V from bf16
     * operands, with AMX (sdc_cpu_flash_attention_amx); the networks set
     * it from their attention projection's sdc_weight.bf16 before each
     * call. Elsewhere, and on a processor without AMX, attention is fp32. */
    bool attention_bf16;
    void *impl;
};

/* CPU backend: plain C11 + OpenMP, OpenBLAS sgemm. n_threads 0 = all. */
sdc_status sdc_backend_cpu_create(int n_threads, sdc_backend **out);
/* CUDA backend on device `device` (kernels/backend_cuda.cu; an error when
 * the build had no nvcc or there is no such device). */
sdc_status sdc_backend_cuda_create(int device, sdc_backend **out);
void sdc_backend_destroy(sdc_backend *be);

/* Owned buffer helpers: allocate n floats and upload host data. */
sdc_status sdc_backend_upload_new(sdc_backend *be, const float *src, size_t n,
                                  float **out);

#ifdef __cplusplus
}
#endif
#endif
