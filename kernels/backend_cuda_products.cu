// backend_cuda_products.cu - the CUDA backend's products: linear layers
// (cuBLASLt with the bias in its epilogue, or cuBLAS), attention
// (flash_attn.cu, or two cuBLAS GEMMs around a row softmax) and
// convolution (conv_igemm.cu, or im2col + cuBLAS); cuDNN's attention and
// convolution as the comparison column (dnn.cu).
#include <math.h>
#include <stdlib.h>

#include "backend_cuda.h"
#include "dnn.h"

static cudaDataType_t blas_type(int t) {
    return t == SDC_CU_F32 ? CUDA_R_32F : t == SDC_CU_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

// row-major y[m, n] = x[m, k] . w[n, k]^T (+ beta y): column-major
// y^T = w . x^T, y of type yt. x is fp32 for an fp32 w (pedantic fp32: no
// TF32, the CPU is the oracle), else already in w's half type; fp32
// accumulation, y rounded once to yt (fp32 or w's type).
static sdc_status gemm_xwt(sdc_backend *be, void *y, int yt, const void *x, sdc_weight w, int m, int k, int n,
                           float beta) {
    cuda_impl *im = impl(be);
    const float one = 1.0f;
    if (w.type == SDC_DT_F32) {
        SDC_TRY(set_math(im, CUBLAS_PEDANTIC_MATH));
        BLAS_TRY(cublasSgemm(im->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, (const float *)w.p, k,
                             (const float *)x, k, &beta, (float *)y, n));
        return SDC_OK;
    }
    const cudaDataType_t t = blas_type((int)w.type);
    SDC_TRY(set_math(im, CUBLAS_DEFAULT_MATH));
    BLAS_TRY(cublasGemmEx(im->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w.p, t, k, x, t, k, &beta, y,
                          blas_type(yt), n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return SDC_OK;
}

// x (n elements) in w's type: x itself when it has it, else (fp32 x, half
// w) a half copy in scratch
static sdc_status operand(sdc_backend *be, const char *op, sdc_buf x, size_t n, sdc_dtype type, const void **out) {
    if (x.type == type) {
        *out = x.p;
        return SDC_OK;
    }
    float *h = NULL;
    SDC_TRY(scratch(be, 3, sdc_act_floats(type, n), op, &h));
    *out = h;
    if (impl(be)->planning) return SDC_OK;
    KERNEL_TRY(sdc_convert_cuda(h, (int)type, x.p, (int)x.type, n, impl(be)->stream));
    return SDC_OK;
}

// Half copies of fp32 vectors for cuBLASLt's epilogue, which takes the
// bias in the output's type. load_tensor makes one of every fp32 vector of
// weights (up to BIAS_COPY_MAX values: biases, norms' scales; not the token
// table) in the backend's half weight type, so a model's copies come with
// its weights; a bias from elsewhere is copied at its first use, unless a
// graph is being captured. A copy lives until the allocation of its fp32
// vector is freed (drop_bias).
static sdc_status add_half_copy(sdc_backend *be, const float *src, int t, int n) {
    cuda_impl *im = impl(be);
    if (im->n_biases == im->cap_biases) {
        const size_t cap = im->cap_biases ? 2 * im->cap_biases : 256;
        void *r = realloc(im->biases, cap * sizeof *im->biases);
        if (!r) return sdc_fail(SDC_ERR_OOM, "out of host memory");
        im->biases = (cuda_impl::bias_rec *)r;
        im->cap_biases = cap;
    }
    void *p = NULL;
    SDC_TRY(device_alloc(be, (size_t)n * 2, &p));
    KERNEL_TRY(sdc_convert_cuda(p, t, src, SDC_CU_F32, (size_t)n, im->stream));
    im->biases[im->n_biases++] = {src, p, t, n};
    return SDC_OK;
}

sdc_status half_copy_of_vector(sdc_backend *be, const float *src, size_t n) {
    const int t = (int)be->weight_type;
    if ((t != SDC_CU_F16 && t != SDC_CU_BF16) || n > BIAS_COPY_MAX) return SDC_OK;
    return add_half_copy(be, src, t, (int)n);
}

// *out: the bias's values in type t inside a copy (16-byte aligned, as
// cuBLASLt's epilogue wants them), or NULL where the caller adds the fp32
// bias itself (a dry run, a capture meeting a new bias, a misaligned one)
static sdc_status half_bias(sdc_backend *be, const float *bias, int t, int n, void **out) {
    cuda_impl *im = impl(be);
    *out = NULL;
    if (im->planning) return SDC_OK;
    for (size_t i = 0; i < im->n_biases; i++) {
        const cuda_impl::bias_rec &r = im->biases[i];
        if (r.type != t || bias < r.src || bias + n > r.src + r.n) continue;
        char *p = (char *)r.p + (bias - r.src) * 2;
        if ((uintptr_t)p % 16 == 0) *out = p;
        return SDC_OK;
    }
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_TRY(cudaStreamIsCapturing(im->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return SDC_OK;
    SDC_TRY(add_half_copy(be, bias, t, n));
    *out = im->biases[im->n_biases - 1].p;
    return SDC_OK;
}

void drop_bias(sdc_backend *be, const void *p0, size_t bytes) {
    cuda_impl *im = impl(be);
    const char *lo = (const char *)p0, *hi = lo + bytes;
    for (size_t i = im->n_biases; i-- > 0;)
        if ((const char *)im->biases[i].src >= lo && (const char *)im->biases[i].src < hi) {
            void *p = im->biases[i].p;
            im->biases[i] = im->biases[--im->n_biases];
            device_free(be, p);
        }
}

#define LT_TRY(call)                                                                                        \
    do {                                                                                                    \
        cublasStatus_t e_ = (call);                                                                         \
        if (e_ != CUBLAS_STATUS_SUCCESS) {                                                                  \
            st = sdc_fail(SDC_ERR_BACKEND, "%s:%d: %s: cuBLASLt status %d", __FILE__, __LINE__, #call,      \
                          (int)e_);                                                                         \
            goto done;                                                                                      \
        }                                                                                                   \
    } while (0)

// row-major y[m, n] = x[m, k] . w[n, k]^T + bias[n] by cuBLASLt, x, w, y
// and the bias hb of the half type t: column-major y^T (n x m) = w (k x n)^T
// . x^T (k x m), the bias added to each row of y^T in the epilogue, fp32
// accumulation, one rounding
static sdc_status lt_linear(sdc_backend *be, void *y, int t, const void *x, const void *w, const void *hb, int m,
                            int k, int n) {
    cuda_impl *im = impl(be);
    sdc_status st = SDC_OK;
    const cudaDataType_t dt = blas_type(t);
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N, bt = (int32_t)dt;
    const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    const uint64_t ws = im->blas_ws_bytes;
    const float one = 1.0f, zero = 0.0f;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t best;
    int found = 0;
    LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &hb, sizeof hb));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    LT_TRY(cublasLtMatrixLayoutCreate(&la, dt, k, n, k));
    LT_TRY(cublasLtMatrixLayoutCreate(&lb, dt, k, m, k));
    LT_TRY(cublasLtMatrixLayoutCreate(&lc, dt, n, m, n));
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    LT_TRY(cublasLtMatmulAlgoGetHeuristic(im->lt, op, la, lb, lc, lc, pref, 1, &best, &found));
    if (found < 1) {
        st = sdc_fail(SDC_ERR_BACKEND, "linear: cuBLASLt has no algorithm for %d x %d x %d", m, k, n);
        goto done;
    }
    LT_TRY(cublasLtMatmul(im->lt, op, &one, w, la, x, lb, &zero, y, lc, y, lc, &best.algo, im->blas_ws, ws,
                          im->stream));
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return st;
}

// fp32 y takes the bias first and the product on top (beta 1: one rounding,
// as cuBLAS adds beta y in fp32). A half y with a bias: cuBLASLt with the
// bias (rounded to the half type) in its epilogue, one rounding; with
// SDC_LINEAR=cublas, or where there is no aligned half copy of the bias
// (half_bias), the product and then the fp32 bias, rounded again.
sdc_status cu_linear(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias, int m, int k, int n) {
    if (m <= 0 || k <= 0 || n <= 0) return sdc_fail(SDC_ERR_ARG, "linear: bad shape m=%d k=%d n=%d", m, k, n);
    SDC_TRY(check_weight("linear", w));
    int t = 0;
    SDC_TRY(acts("linear", {y, x}, &t));
    SDC_TRY(product_types("linear", t, w));
    const void *xa = NULL;
    SDC_TRY(operand(be, "linear", x, (size_t)m * k, w.type, &xa));
    void *hb = NULL;
    if (t != SDC_CU_F32 && bias && !impl(be)->linear_gemm) SDC_TRY(half_bias(be, bias, t, n, &hb));
    if (impl(be)->planning) return SDC_OK;
    if (hb) return lt_linear(be, y.p, t, xa, w.p, hb, m, k, n);
    cudaStream_t st = impl(be)->stream;
    if (t == SDC_CU_F32) {
        if (bias) KERNEL_TRY(sdc_bias_rows_cuda(y.p, t, bias, (size_t)m, n, st));
        return gemm_xwt(be, y.p, t, xa, w, m, k, n, bias ? 1.0f : 0.0f);
    }
    SDC_TRY(gemm_xwt(be, y.p, t, xa, w, m, k, n, 0.0f));
    if (bias) KERNEL_TRY(sdc_bias_residual_cuda(y.p, t, bias, NULL, (size_t)m, n, st));
    return SDC_OK;
}

// Half activations: the fused kernel of flash_attn.cu where it takes the
// shape (head dims up to 160: every SD U-Net and text encoder head), no
// scratch. Otherwise (fp32, the VAE's 512-wide head, SDC_ATTN=cublas), for
// each image and block of queries: S = Q K^T for all heads (one strided
// batched GEMM), a row softmax, then O = P V (another). Scores and softmax
// in fp32; with half activations the products read q, k, v in their type,
// S comes out in fp32, P is rounded once to the half type for O = P V, and
// O to the activations' type. fp32 activations: pedantic fp32 throughout.
sdc_status cu_attention(sdc_backend *be, sdc_buf out, sdc_buf q, sdc_buf k, sdc_buf v, int batch, int heads, int tq,
                        int tk, int d, int q_stride, int kv_stride, bool causal) {
    if (batch < 1 || heads < 1 || tq < 1 || tk < 1 || d < 1)
        return sdc_fail(SDC_ERR_ARG, "attention: bad shape batch=%d heads=%d tq=%d tk=%d d=%d", batch, heads, tq,
                        tk, d);
    int t = 0;
    SDC_TRY(acts("attention", {out, q, k, v}, &t));
    const bool half = t != SDC_CU_F32;
    // SDC_ATTN=cudnn (the comparison column): cuDNN's fused attention for
    // half activations up to its head dims (the VAE's 512-wide head keeps
    // the GEMM path below); a shape it refuses otherwise is an error
    cuda_impl *im = impl(be);
    if (half && im->dnn_attn && d <= SDC_DNN_MAX_D) {
        size_t ws = 0;
        char err[320];
        if (sdc_dnn_attention_prepare(im->dnn, t, batch, heads, tq, tk, d, q_stride, kv_stride, causal ? 1 : 0, &ws,
                                      err, sizeof err))
            return sdc_fail(SDC_ERR_BACKEND, "attention (SDC_ATTN=cudnn): %s", err);
        float *wsp = NULL;
        if (ws) SDC_TRY(scratch(be, 5, (ws + 3) / 4, "attention", &wsp));
        if (im->planning) return SDC_OK;
        if (sdc_dnn_attention(im->dnn, out.p, q.p, k.p, v.p, t, batch, heads, tq, tk, d, q_stride, kv_stride,
                              causal ? 1 : 0, 1.0f / sqrtf((float)d), wsp, ws, err, sizeof err))
            return sdc_fail(SDC_ERR_BACKEND, "attention (SDC_ATTN=cudnn): %s", err);
        return SDC_OK;
    }
    if (half && !im->attn_gemm && sdc_flash_attention_supported(t, d, q_stride, kv_stride, q.p, k.p, v.p)) {
        if (impl(be)->planning) return SDC_OK; // no scratch
        KERNEL_TRY(sdc_flash_attention_cuda(out.p, q.p, k.p, v.p, t, batch, heads, tq, tk, d, q_stride, kv_stride,
                                            causal ? 1 : 0, 1.0f / sqrtf((float)d), impl(be)->stream));
        return SDC_OK;
    }
    const int width = heads * d;
    int qb = (int)(impl(be)->budget / ((size_t)heads * tk));
    if (qb < 1) qb = 1;
    if (qb > tq) qb = tq;
    // the scores (fp32), then for half activations the probabilities in
    // their type, 256-byte aligned after them
    const size_t ns = (size_t)heads * qb * tk, p_off = (ns + 63) & ~(size_t)63;
    float *s = NULL;
    SDC_TRY(scratch(be, 1, half ? p_off + sdc_act_floats((sdc_dtype)t, ns) : ns, "attention", &s));
    if (impl(be)->planning) return SDC_OK;
    const float one = 1.0f, zero = 0.0f, scale = 1.0f / sqrtf((float)d);
    SDC_TRY(set_math(im, half ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH));
    const cudaDataType_t bt = blas_type(t);
    const size_t es = sdc_act_size((sdc_dtype)t);
    void *p = half ? (void *)(s + p_off) : NULL;
    for (int b = 0; b < batch; b++)
        for (int i0 = 0; i0 < tq; i0 += qb) {
            const int rows = tq - i0 < qb ? tq - i0 : qb;
            const char *qp = (const char *)q.p + ((size_t)b * tq + i0) * q_stride * es;
            const char *kp = (const char *)k.p + (size_t)b * tk * kv_stride * es;
            const char *vp = (const char *)v.p + (size_t)b * tk * kv_stride * es;
            char *op = (char *)out.p + ((size_t)b * tq + i0) * width * es;
            const long long sst = (long long)rows * tk;
            // S_h^T (tk x rows) = K_h (tk x d) . Q_h^T (d x rows), column-major
            if (!half)
                BLAS_TRY(cublasSgemmStridedBatched(im->blas, CUBLAS_OP_T, CUBLAS_OP_N, tk, rows, d, &one,
                                                   (const float *)kp, kv_stride, d, (const float *)qp, q_stride, d,
                                                   &zero, s, tk, sst, heads));
            else
                BLAS_TRY(cublasGemmStridedBatchedEx(im->blas, CUBLAS_OP_T, CUBLAS_OP_N, tk, rows, d, &one, kp, bt,
                                                    kv_stride, d, qp, bt, q_stride, d, &zero, s, CUDA_R_32F, tk, sst,
                                                    heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            KERNEL_TRY(sdc_softmax_rows_typed_cuda(s, p, t, rows, tk, tk, heads, (size_t)sst, scale, causal, i0,
                                                   im->stream));
            // O_h^T (d x rows) = V_h^T (d x tk) . P_h^T (tk x rows)
            if (!half)
                BLAS_TRY(cublasSgemmStridedBatched(im->blas, CUBLAS_OP_N, CUBLAS_OP_N, d, rows, tk, &one,
                                                   (const float *)vp, kv_stride, d, s, tk, sst, &zero, (float *)op,
                                                   width, d, heads));
            else
                BLAS_TRY(cublasGemmStridedBatchedEx(im->blas, CUBLAS_OP_N, CUBLAS_OP_N, d, rows, tk, &one, vp, bt,
                                                    kv_stride, d, p, bt, tk, sst, &zero, op, bt, width, d, heads,
                                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
    return SDC_OK;
}

sdc_status cu_conv2d(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias, sdc_buf residual, int n,
                     int h, int wi, int cin, int cout, int k, int stride, int pad) {
    if (n < 1 || h < 1 || wi < 1 || cin < 1 || cout < 1 || k < 1 || stride < 1 || pad < 0)
        return sdc_fail(SDC_ERR_ARG, "conv2d: bad shape");
    const int ho = (h + 2 * pad - k) / stride + 1, wo = (wi + 2 * pad - k) / stride + 1;
    if (ho < 1 || wo < 1) return sdc_fail(SDC_ERR_ARG, "conv2d: input too small for the kernel");
    SDC_TRY(check_weight("conv2d", w));
    int t = 0;
    SDC_TRY(acts("conv2d", {y, x, residual}, &t));
    SDC_TRY(product_types("conv2d", t, w));
    const size_t total = (size_t)n * ho * wo, es = sdc_act_size((sdc_dtype)t);
    cudaStream_t st = impl(be)->stream;
    // the weights' layout: channels padded (load_conv) or as given
    const int q = w.chan_pad > 1 ? w.chan_pad : 1, cp = round_up(cin, q), op = round_up(cout, q);
    // half activations: the implicit GEMM of conv_igemm.cu (input channels
    // not a multiple of 8, the U-Net's and the VAE encoder's first layers,
    // through the padded weight layout), bias and residual in its epilogue,
    // no scratch
    if (t != SDC_CU_F32 && !impl(be)->conv_im2col && !(impl(be)->dnn_conv && cp == cin) &&
        sdc_conv_igemm_supported(t, cin, cp, op, x.p, w.p)) {
        if (impl(be)->planning) return SDC_OK;
        KERNEL_TRY(sdc_conv_igemm_cuda(y.p, x.p, w.p, bias, residual.p, t, n, h, wi, cin, cp, cout, op, k, stride,
                                       pad, 1.0f, impl(be)->conv_tile, impl(be)->sms, st));
        return SDC_OK;
    }
    // SDC_CONV=cudnn (the comparison column): cuDNN's convolution where the
    // weights' layout is x's (input channels a multiple of 8) and of its
    // type, into scratch first where cout is padded; the bias and residual
    // after it
    if (impl(be)->dnn_conv && cp == cin && t == (int)w.type) {
        cuda_impl *im = impl(be);
        const size_t max_ws = im->budget * sizeof(float);
        size_t ws = 0;
        char err[320];
        if (sdc_dnn_conv_prepare(im->dnn, t, n, h, wi, cin, op, k, stride, pad, max_ws, &ws, err, sizeof err))
            return sdc_fail(SDC_ERR_BACKEND, "conv2d (SDC_CONV=cudnn): %s", err);
        float *wsp = NULL, *yp = NULL;
        if (ws) SDC_TRY(scratch(be, 5, (ws + 3) / 4, "conv2d", &wsp));
        if (op != cout) SDC_TRY(scratch(be, 4, sdc_act_floats((sdc_dtype)t, total * op), "conv2d", &yp));
        if (im->planning) return SDC_OK;
        if (sdc_dnn_conv(im->dnn, op != cout ? (void *)yp : y.p, x.p, w.p, t, n, h, wi, cin, op, k, stride, pad,
                         max_ws, wsp, ws, err, sizeof err))
            return sdc_fail(SDC_ERR_BACKEND, "conv2d (SDC_CONV=cudnn): %s", err);
        if (op != cout)
            KERNEL_TRY(sdc_convert_rows_cuda(y.p, t, (size_t)cout, yp, t, (size_t)op, total, (size_t)cout, st));
        KERNEL_TRY(sdc_bias_residual_cuda(y.p, t, bias, residual.p, total, cout, st));
        return SDC_OK;
    }
    if (k == 1 && stride == 1 && pad == 0 && cp == cin && op == cout) {
        const void *xa = NULL;
        SDC_TRY(operand(be, "conv2d", x, total * cin, w.type, &xa));
        if (impl(be)->planning) return SDC_OK;
        SDC_TRY(gemm_xwt(be, y.p, t, xa, w, (int)total, cin, cout, 0.0f));
    } else {
        // im2col blocks of mb output pixels x (ky, kx, cp) columns in the
        // weights' type; where cout is padded, each block's product (mb x op,
        // the activations' type) goes to scratch and its first cout columns
        // on to y
        const size_t kk = (size_t)k * k * cp, ew = sdc_act_size(w.type);
        size_t mb = impl(be)->budget / kk;
        if (mb < 64) mb = 64;
        if (mb > total) mb = total;
        float *colf = NULL, *yp = NULL;
        SDC_TRY(scratch(be, 0, (mb * kk * ew + 3) / 4, "conv2d", &colf));
        if (op != cout) SDC_TRY(scratch(be, 4, sdc_act_floats((sdc_dtype)t, mb * op), "conv2d", &yp));
        if (impl(be)->planning) return SDC_OK;
        char *col = (char *)colf;
        for (size_t r0 = 0; r0 < total; r0 += mb) {
            const size_t rows = total - r0 < mb ? total - r0 : mb;
            char *yr = (char *)y.p + r0 * cout * es;
            KERNEL_TRY(sdc_im2col_typed_cuda(col, (int)w.type, x.p, t, n, h, wi, cin, cp, k, stride, pad, ho, wo, r0,
                                             rows, st));
            if (op == cout) {
                SDC_TRY(gemm_xwt(be, yr, t, col, w, (int)rows, (int)kk, cout, 0.0f));
            } else {
                SDC_TRY(gemm_xwt(be, yp, t, col, w, (int)rows, (int)kk, op, 0.0f));
                KERNEL_TRY(sdc_convert_rows_cuda(yr, t, (size_t)cout, yp, t, (size_t)op, rows, (size_t)cout, st));
            }
        }
    }
    KERNEL_TRY(sdc_bias_residual_cuda(y.p, t, bias, residual.p, total, cout, st));
    return SDC_OK;
}
