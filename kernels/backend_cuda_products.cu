// backend_cuda_products.cu - the CUDA backend's products: linear layers
// (cuBLAS), attention (flash_attn.cu, or two cuBLAS GEMMs around a row
// softmax) and convolution (conv_igemm.cu, or im2col + cuBLAS).
#include <math.h>

#include "backend_cuda.h"

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

// fp32 y takes the bias first and the product on top (beta 1: one rounding,
// as cuBLAS adds beta y in fp32); a half y takes the product and then the
// bias in fp32, rounded again
sdc_status cu_linear(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias, int m, int k,
                            int n) {
    if (m <= 0 || k <= 0 || n <= 0) return sdc_fail(SDC_ERR_ARG, "linear: bad shape m=%d k=%d n=%d", m, k, n);
    SDC_TRY(check_weight("linear", w));
    int t = 0;
    SDC_TRY(acts("linear", {y, x}, &t));
    SDC_TRY(product_types("linear", t, w));
    const void *xa = NULL;
    SDC_TRY(operand(be, "linear", x, (size_t)m * k, w.type, &xa));
    if (impl(be)->planning) return SDC_OK;
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
sdc_status cu_attention(sdc_backend *be, sdc_buf out, sdc_buf q, sdc_buf k, sdc_buf v, int batch, int heads,
                               int tq, int tk, int d, int q_stride, int kv_stride, bool causal) {
    if (batch < 1 || heads < 1 || tq < 1 || tk < 1 || d < 1)
        return sdc_fail(SDC_ERR_ARG, "attention: bad shape batch=%d heads=%d tq=%d tk=%d d=%d", batch, heads, tq,
                        tk, d);
    int t = 0;
    SDC_TRY(acts("attention", {out, q, k, v}, &t));
    const bool half = t != SDC_CU_F32;
    if (half && !impl(be)->attn_gemm && sdc_flash_attention_supported(t, d, q_stride, kv_stride, q.p, k.p, v.p)) {
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
    cuda_impl *im = impl(be);
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

sdc_status cu_conv2d(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *bias,
                            sdc_buf residual, int n, int h, int wi, int cin, int cout, int k, int stride, int pad) {
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
    if (t != SDC_CU_F32 && !impl(be)->conv_im2col && sdc_conv_igemm_supported(t, cin, cp, op, x.p, w.p)) {
        if (impl(be)->planning) return SDC_OK;
        KERNEL_TRY(sdc_conv_igemm_cuda(y.p, x.p, w.p, bias, residual.p, t, n, h, wi, cin, cp, cout, op, k, stride,
                                       pad, 1.0f, impl(be)->conv_tile, impl(be)->sms, st));
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
