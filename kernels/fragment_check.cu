// fragment_check.cu - one warp computes D = A B + C with the wrapped
// mma.sync.m16n8k16 (f16 or bf16 inputs, f32 accumulate), its operands
// loaded in one of four ways, so that a test can compare D with a plain
// product. On a GPU this checks that port.h's wrappers are the hardware's
// instructions with the fragment layouts the tensor-core kernels assume; on
// the emulated device it checks the emulation against the same layouts. The
// layouts, from the PTX ISA ("Matrix Fragments for mma.m16n8k16 with
// floating point type"), with g = lane / 4 and t = lane % 4:
//   A (16x16, row-major), a[r] holds two elements, the lower column in the
//     low half: a[0] (g, 2t..2t+1), a[1] (g+8, 2t..), a[2] (g, 2t+8..),
//     a[3] (g+8, 2t+8..)
//   B (16x8, k x n), b[r]: (k = 2t..2t+1, n = g), then k + 8
//   C, D (16x8, f32), c[i]: (g + 8 (i / 2), 2t + i % 2)
// Modes:
//   0  fragments read from global memory by the tables above (no ldmatrix)
//   1  A and B staged to shared memory by cp.async (16 bytes); A by
//      ldmatrix.x4, B (row-major k x n) by ldmatrix.x2.trans
//   2  staged by cp.async (8 bytes); A by four ldmatrix.x1, B's first half by
//      ldmatrix.x1.trans from k x n, its second by ldmatrix.x1 from n x k
//   3  staged by cp.async (4 bytes) as A^T (k x m) and B^T (n x k): A by
//      ldmatrix.x4.trans, B by ldmatrix.x2
#include "kernels.h"

// a: 16x16 row-major, b: 16x8 row-major (k, n), c and d: 16x8 row-major f32
__global__ void fragment_check_kernel(float *d, const uint16_t *a, const uint16_t *b, const float *c, int mode,
                                      int bf16) {
    // 16-byte aligned rows, as ldmatrix and cp.async.16 need
    __shared__ __align__(16) uint16_t sa[16 * 16];  // A (mode 1, 2) or A^T (mode 3)
    __shared__ __align__(16) uint16_t sb[16 * 8];   // B, k x n (modes 1, 2)
    __shared__ __align__(16) uint16_t sbt[8 * 16];  // B^T, n x k (modes 2, 3)
    const int lane = sdc_lane(), g = lane / 4, t = lane % 4;
    uint32_t ra[4], rb[2];
    if (mode == 0) {
        for (int r = 0; r < 4; r++) {
            const int row = g + 8 * (r % 2), col = 2 * t + 8 * (r / 2);
            ra[r] = (uint32_t)a[row * 16 + col] | ((uint32_t)a[row * 16 + col + 1] << 16);
        }
        for (int r = 0; r < 2; r++) {
            const int k = 2 * t + 8 * r;
            rb[r] = (uint32_t)b[k * 8 + g] | ((uint32_t)b[(k + 1) * 8 + g] << 16);
        }
    } else {
        // stage: each lane copies chunks of `bytes`; the transposes of mode 2
        // and 3 are plain loads and stores
        const int bytes = mode == 1 ? 16 : mode == 2 ? 8 : 4, per = bytes / 2; // elements a chunk
        if (mode != 3) {
            for (int e = lane * per; e < 256; e += 32 * per) {
                if (bytes == 16) sdc_cp_async16(sa + e, a + e);
                else sdc_cp_async8(sa + e, a + e);
            }
            for (int e = lane * per; e < 128; e += 32 * per) {
                if (bytes == 16) sdc_cp_async16(sb + e, b + e);
                else sdc_cp_async8(sb + e, b + e);
            }
        } else {
            // B by 4-byte copies; A^T below by plain loads
            for (int e = lane * 2; e < 128; e += 64) sdc_cp_async4(sb + e, b + e);
        }
        sdc_cp_async_commit();
        sdc_cp_async_wait<0>();
        __syncthreads();
        if (mode == 3) {
            for (int e = lane; e < 256; e += 32) sa[(e % 16) * 16 + e / 16] = a[e]; // A^T[k][m] = A[m][k]
        }
        if (mode >= 2) {
            for (int e = lane; e < 128; e += 32) sbt[(e % 8) * 16 + e / 8] = sb[e]; // B^T[n][k] = B[k][n]
        }
        __syncthreads();
        const int j = lane / 8, i = lane % 8; // this lane gives row i of matrix j
        if (mode == 1) {
            // matrix j of A: rows 8 (j % 2) .., columns 8 (j / 2) ..
            sdc_ldmatrix_x4(ra, sa + (i + 8 * (j % 2)) * 16 + 8 * (j / 2));
            sdc_ldmatrix_x2_trans(rb, sb + (i + 8 * (j % 2)) * 8); // matrix j: k rows 8j ..
        } else if (mode == 2) {
            for (int m = 0; m < 4; m++) {
                uint32_t r1[1];
                sdc_ldmatrix_x1(r1, sa + (i + 8 * (m % 2)) * 16 + 8 * (m / 2)); // lanes 0-7 give the rows
                ra[m] = r1[0];
            }
            uint32_t r1[1];
            sdc_ldmatrix_x1_trans(r1, sb + i * 8); // k rows 0..7 of B
            rb[0] = r1[0];
            sdc_ldmatrix_x1(r1, sbt + i * 16 + 8); // n rows of B^T, k columns 8..15
            rb[1] = r1[0];
        } else {
            // A^T is k x m; matrix j of A (rows 8 (j % 2), columns 8 (j / 2))
            // is the transpose of A^T's rows 8 (j / 2) .., columns 8 (j % 2) ..
            sdc_ldmatrix_x4_trans(ra, sa + (i + 8 * (j / 2)) * 16 + 8 * (j % 2));
            sdc_ldmatrix_x2(rb, sbt + i * 16 + 8 * (j % 2)); // matrix j: k columns 8j ..
        }
    }
    float rc[4], rd[4];
    for (int i = 0; i < 4; i++) rc[i] = c[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2];
    if (bf16) sdc_mma_m16n8k16_bf16(rd, ra, rb, rc);
    else sdc_mma_m16n8k16_f16(rd, ra, rb, rc);
    for (int i = 0; i < 4; i++) d[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = rd[i];
}

extern "C" int sdc_fragment_check_cuda(float *d, const uint16_t *a, const uint16_t *b, const float *c, int mode,
                                       int bf16, cudaStream_t s) {
    if (mode < 0 || mode > 3) return (int)cudaErrorInvalidValue;
    return (int)SDC_LAUNCH(fragment_check_kernel, 1, 32, 0, s, d, a, b, c, mode, bf16);
}
