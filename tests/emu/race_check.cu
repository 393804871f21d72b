// race_check.cu - every kernel of kernels/ launched once or twice on the
// emulated device in the ThreadSanitizer build (emu_race_check, run by
// tests/emu/selftest.sh): a race on shared or global memory between two
// threads that no barrier orders is reported by TSan, which then exits 66.
// The values are not checked here (the suite compares every kernel with the
// CPU backend); the shapes take the paths with barriers: rows shorter and
// longer than a block, causal rows, group norm's two passes.
#include <stdio.h>
#include <stdlib.h>

#include "kernels.h"

static float *buf(size_t n, float v) {
    float *d = NULL;
    if (cudaMalloc(&d, n * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "race_check: cudaMalloc of %zu floats failed\n", n);
        exit(2);
    }
    float *h = (float *)malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = v + 0.01f * (float)(i % 97);
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    free(h);
    return d;
}

static int failed;

static void check(const char *what, int rc) {
    if (rc != 0) {
        fprintf(stderr, "race_check: %s: launch failed (%s)\n", what, cudaGetErrorName((cudaError_t)rc));
        failed = 1;
    } else {
        printf("race_check: %s\n", what);
    }
}

int main(void) {
    setenv("SDC_CUDA_EMU", "1", 1);
    const cudaStream_t s = NULL;
    const int n = 2, h = 5, w = 7, c = 24, groups = 4;
    const size_t nx = (size_t)n * h * w * c;
    float *x = buf(nx * 4, 0.5f), *y = buf(nx * 16, 0.0f), *v = buf(512, 1.0f);
    float *stats = buf(sdc_group_norm_scratch_floats(n, h * w, groups), 0.0f);

    check("activation", sdc_activation_cuda(y, x, SDC_CU_F32, nx, 2, s));
    check("add", sdc_add_cuda(y, x, x + nx, SDC_CU_F32, nx, s));
    check("geglu", sdc_geglu_cuda(y, x, SDC_CU_F32, (int)(nx / 40), 40, s));
    check("add_rows", sdc_add_rows_cuda(y, x, v, SDC_CU_F32, n, (size_t)h * w, c, s));
    check("concat_channels", sdc_concat_channels_cuda(y, x, x + nx, SDC_CU_F32, (size_t)h * w, c, 16, s));
    check("pad", sdc_pad_cuda(y, x, SDC_CU_F32, n, h, w, c, 2, 1, 1, 3, s));
    check("upsample_nearest", sdc_upsample_nearest_cuda(y, x, SDC_CU_F32, n, h, w, c, 2 * h - 1, w + 3, s));
    check("bias_rows", sdc_bias_rows_cuda(y, SDC_CU_F32, v, (size_t)n * h * w, c, s));
    check("bias_residual", sdc_bias_residual_cuda(y, SDC_CU_F32, v, x, (size_t)n * h * w, c, s));
    check("layer_norm 70x24", sdc_layer_norm_cuda(y, x, SDC_CU_F32, v, v, n * h * w, c, 1e-5f, s));
    check("layer_norm 3x300", sdc_layer_norm_cuda(y, x, SDC_CU_F32, v, v, 3, 300, 1e-5f, s));
    check("group_norm", sdc_group_norm_cuda(y, x, SDC_CU_F32, v, v, n, h * w, c, groups, 1e-5f, 1, stats, s));
    check("im2col", sdc_im2col_cuda(y, x, n, h, w, c, 3, 1, 1, h, w, 0, (size_t)n * h * w, s));
    check("softmax_rows 9x300", sdc_softmax_rows_cuda(y, 9, 300, 300, 2, 9 * 300, 0.125f, 0, 0, s));
    check("softmax_rows causal", sdc_softmax_rows_cuda(y, 20, 40, 40, 1, 0, 0.125f, 1, 5, s));
    {
        // fused attention: two query blocks with a partial one, several key
        // tiles (64 keys at d 40, 32 at d 160), causal; half values from
        // fp32 patterns (unchecked)
        float *f = buf(3 * 8192, 0.25f), *o = buf(8192, 0.0f);
        check("flash_attention d40 causal", sdc_flash_attention_cuda(o, f, f + 8192, f + 16384, SDC_CU_F16, 1, 1, 70,
                                                                     70, 40, 40, 40, 1, 0.15f, s));
        check("flash_attention d160 bf16", sdc_flash_attention_cuda(o, f, f + 8192, f + 16384, SDC_CU_BF16, 1, 1, 33,
                                                                    70, 160, 160, 160, 0, 0.08f, s));
    }
    // the implicit-GEMM convolution: 3x3 with padding and a residual (K =
    // 216 over 7 steps), stride 2; half values from fp32 patterns
    check("conv_igemm 3x3 128-tile", sdc_conv_igemm_cuda(y, x, x + 1000, v, y + 4000, SDC_CU_F16, n, h, w, c, c, 16,
                                                         16, 3, 1, 1, 1.0f, 128, 0, s));
    check("conv_igemm stride 2 64-tile", sdc_conv_igemm_cuda(y, x, x + 1000, NULL, NULL, SDC_CU_BF16, n, h, w, c, c,
                                                             16, 16, 3, 2, 1, 1.0f, 64, 0, s));
    check("conv_igemm 4 channels by element", sdc_conv_igemm_cuda(y, x, x + 1000, v, NULL, SDC_CU_F16, n, h, w, 4, 8,
                                                                  16, 16, 3, 1, 1, 0.5f, 64, 0, s));
    for (int mode = 0; mode < 4; mode++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            char what[64];
            snprintf(what, sizeof what, "fragment_check mode %d %s", mode, bf16 ? "bf16" : "f16");
            check(what, sdc_fragment_check_cuda(y, (const uint16_t *)x, (const uint16_t *)(x + 128), v, mode, bf16,
                                                s));
        }
    if (cudaDeviceSynchronize() != cudaSuccess) failed = 1;
    if (!failed) printf("race_check: every kernel ran; no race unless ThreadSanitizer says so above\n");
    return failed;
}
