// flash_attn.cu - fused multi-head attention on tensor cores, in the manner
// of FlashAttention-2: out = softmax(scale q k^T) v, one (image, head, tile
// of 64 queries) per block, never a score matrix in global memory.
//
// Block level: 4 warps, 16 query rows each. The Q tile is staged through
// shared memory once and kept in registers as mma A fragments; K and V
// tiles of BN keys stream through shared memory with cp.async, two stages
// (the next tile loads while this one is multiplied). Rows are padded by
// 8 elements (16 bytes) in shared memory so that the eight rows an
// ldmatrix reads fall in different banks; head dims are padded with zeros
// to DP, a multiple of 16 (40 -> 48), in shared memory only.
//
// Warp level, per K/V tile: S (16 x BN, fp32) = Q K^T by mma.sync m16n8k16
// (A = Q from registers, B = K rows by ldmatrix, which is K^T as the
// instruction's column-major B); masked (keys past tk, causal) to -inf;
// the online softmax keeps each row's running max m and sum l in fp32
// registers (the four lanes of a quad hold one row's columns: the max is
// reduced across them with two shuffles, the sums at the end); P = exp(scale
// (S - m)) is rounded to the input type and becomes the A fragments of
// O += P V in registers (an S accumulator tile pair has exactly an A
// fragment's layout), B = V by ldmatrix.trans. At the end O / l is written,
// rounded once. Fragment layouts: kernels/fragment_check.cu.
#include <math.h>

#include "kernels.h"

#define FA_BM 64      // query rows a block
#define FA_WARPS 4    // 16 rows a warp
#define FA_PAD 8      // elements of padding at the end of each shared row

// rows [r0, r0 + rows) x DP columns of a (tokens x stride) matrix into
// shared memory (row length DP + FA_PAD), 16 bytes per cp.async; rows past
// `valid` and columns past d are zeros (plain stores)
template <typename T, int DP>
__device__ __forceinline__ void fa_stage(T *sm, const T *g, size_t stride, int r0, int rows, int valid, int d) {
    constexpr int CH = DP / 8; // 16-byte chunks a row
    for (int i = threadIdx.x; i < rows * CH; i += FA_WARPS * 32) {
        const int r = i / CH, c = (i % CH) * 8;
        T *dst = sm + r * (DP + FA_PAD) + c;
        if (r0 + r < valid && c < d) {
            sdc_cp_async16(dst, g + (size_t)(r0 + r) * stride + c);
        } else {
            for (int e = 0; e < 8; e++) dst[e] = sdc_from_float<T>(0.0f);
        }
    }
}

template <typename T, int DP, int BN>
__global__ void flash_attn_kernel(T *out, const T *q, const T *k, const T *v, int heads, int tq, int tk, int d,
                                  int q_stride, int kv_stride, int causal, float scale) {
    constexpr int LD = DP + FA_PAD, KT = DP / 16, NT = BN / 8, DT = DP / 8;
    constexpr int SM_Q = FA_BM * LD, SM_KV = 2 * 2 * BN * LD; // Q tile; then K and V, two stages each
    __shared__ __align__(16) T sm[SM_Q > SM_KV ? SM_Q : SM_KV];
    const int warp = sdc_warp(), lane = sdc_lane(), g = lane / 4, t4 = lane % 4;
    const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * FA_BM;
    const T *qg = q + (size_t)b * tq * q_stride + (size_t)h * d;
    const T *kg = k + (size_t)b * tk * kv_stride + (size_t)h * d;
    const T *vg = v + (size_t)b * tk * kv_stride + (size_t)h * d;

    // Q: staged, then this warp's 16 rows as A fragments (KT of them)
    fa_stage<T, DP>(sm, qg, (size_t)q_stride, q0, FA_BM, tq, d);
    sdc_cp_async_commit();
    sdc_cp_async_wait<0>();
    __syncthreads();
    uint32_t qa[KT][4];
    {
        const int m = lane / 8, row = warp * 16 + (m % 2) * 8 + lane % 8;
        SDC_UNROLL
        for (int kk = 0; kk < KT; kk++) sdc_ldmatrix_x4(qa[kk], sm + row * LD + kk * 16 + (m / 2) * 8);
    }
    __syncthreads(); // the Q tile's shared memory is the K/V stages' from here

    float o[DT][4];
    SDC_UNROLL
    for (int j = 0; j < DT; j++)
        for (int i = 0; i < 4; i++) o[j][i] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f}; // rows g and g + 8
    const int row_a = q0 + warp * 16 + g, row_b = row_a + 8;          // this thread's query rows

    // K/V tiles: all of them, or up to the block's last row when causal
    int n_tiles = (tk + BN - 1) / BN;
    if (causal) {
        const int last = q0 + FA_BM - 1 < tq - 1 ? q0 + FA_BM - 1 : tq - 1;
        const int need = last / BN + 1;
        if (need < n_tiles) n_tiles = need;
    }
    T *ks[2] = {sm, sm + 2 * BN * LD}, *vs[2] = {sm + BN * LD, sm + 3 * BN * LD};
    fa_stage<T, DP>(ks[0], kg, (size_t)kv_stride, 0, BN, tk, d);
    fa_stage<T, DP>(vs[0], vg, (size_t)kv_stride, 0, BN, tk, d);
    sdc_cp_async_commit();
    for (int it = 0; it < n_tiles; it++) {
        const int st = it % 2, kv0 = it * BN;
        if (it + 1 < n_tiles) { // the next tile loads while this one is used
            fa_stage<T, DP>(ks[st ^ 1], kg, (size_t)kv_stride, kv0 + BN, BN, tk, d);
            fa_stage<T, DP>(vs[st ^ 1], vg, (size_t)kv_stride, kv0 + BN, BN, tk, d);
        }
        sdc_cp_async_commit(); // (an empty group on the last tile keeps the count)
        sdc_cp_async_wait<1>();
        __syncthreads();

        // S = Q K^T: NT tiles of 16 x 8, two at a time by ldmatrix.x4
        float s[NT][4];
        SDC_UNROLL
        for (int j = 0; j < NT; j++)
            for (int i = 0; i < 4; i++) s[j][i] = 0.0f;
        SDC_UNROLL
        for (int kk = 0; kk < KT; kk++)
            for (int j = 0; j < NT; j += 2) {
                uint32_t kb[4];
                const int m = lane / 8, key = (j + m / 2) * 8 + lane % 8;
                sdc_ldmatrix_x4(kb, ks[st] + key * LD + kk * 16 + (m % 2) * 8);
                sdc_mma16<T>::run(s[j], qa[kk], kb);
                sdc_mma16<T>::run(s[j + 1], qa[kk], kb + 2);
            }

        // mask, the rows' new max, rescale what is accumulated
        float mx[2] = {-INFINITY, -INFINITY};
        SDC_UNROLL
        for (int j = 0; j < NT; j++)
            for (int i = 0; i < 4; i++) {
                const int key = kv0 + j * 8 + 2 * t4 + (i % 2), row = i < 2 ? row_a : row_b;
                if (key >= tk || (causal && key > row)) s[j][i] = -INFINITY;
                mx[i / 2] = fmaxf(mx[i / 2], s[j][i]);
            }
        float corr[2];
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], sdc_shfl_xor(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], sdc_shfl_xor(0xffffffffu, mx[r], 2));
            const float m_new = fmaxf(m_run[r], mx[r]);
            // a row with no key yet (all masked) keeps nothing to rescale
            corr[r] = m_new == -INFINITY ? 1.0f : expf((m_run[r] - m_new) * scale);
            m_run[r] = m_new;
            l_run[r] *= corr[r];
        }
        SDC_UNROLL
        for (int j = 0; j < DT; j++)
            for (int i = 0; i < 4; i++) o[j][i] *= corr[i / 2];

        // P = exp(scale (S - m)), the row sums, and O += P V, 16 keys at a time
        SDC_UNROLL
        for (int kc = 0; kc < NT / 2; kc++) {
            float p[2][4];
            for (int h2 = 0; h2 < 2; h2++)
                for (int i = 0; i < 4; i++) {
                    const float mr = m_run[i / 2];
                    const float e = mr == -INFINITY ? 0.0f : expf((s[2 * kc + h2][i] - mr) * scale);
                    p[h2][i] = e;
                    l_run[i / 2] += e;
                }
            // the two S tiles are one A fragment (16 x 16) of P
            const uint32_t pa[4] = {sdc_mma16<T>::pack(p[0][0], p[0][1]), sdc_mma16<T>::pack(p[0][2], p[0][3]),
                                    sdc_mma16<T>::pack(p[1][0], p[1][1]), sdc_mma16<T>::pack(p[1][2], p[1][3])};
            SDC_UNROLL
            for (int dn = 0; dn < DT; dn += 2) { // DT is even: DP is a multiple of 16
                uint32_t vb[4];
                const int m = lane / 8, key = kc * 16 + (m % 2) * 8 + lane % 8;
                sdc_ldmatrix_x4_trans(vb, vs[st] + key * LD + (dn + m / 2) * 8);
                sdc_mma16<T>::run(o[dn], pa, vb);
                sdc_mma16<T>::run(o[dn + 1], pa, vb + 2);
            }
        }
        __syncthreads(); // this stage is loaded again two tiles on
    }
    sdc_cp_async_wait<0>();

    // O / l, rounded once, for the rows and columns that exist
    for (int r = 0; r < 2; r++) {
        l_run[r] += sdc_shfl_xor(0xffffffffu, l_run[r], 1);
        l_run[r] += sdc_shfl_xor(0xffffffffu, l_run[r], 2);
    }
    const int width = heads * d;
    for (int r = 0; r < 2; r++) {
        const int row = r ? row_b : row_a;
        if (row >= tq) continue;
        const float inv = 1.0f / l_run[r];
        T *orow = out + ((size_t)b * tq + row) * width + (size_t)h * d;
        SDC_UNROLL
        for (int dn = 0; dn < DT; dn++)
            for (int c = 0; c < 2; c++) {
                const int col = dn * 8 + 2 * t4 + c;
                if (col < d) orow[col] = sdc_from_float<T>(o[dn][2 * r + c] * inv);
            }
    }
}

template <typename T, int DP>
static int fa_launch(void *out, const void *q, const void *k, const void *v, int batch, int heads, int tq, int tk,
                     int d, int q_stride, int kv_stride, int causal, float scale, cudaStream_t s) {
    constexpr int BN = DP <= 80 ? 64 : 32; // shared memory under 48 KiB either way
    const dim3 grid((unsigned)SDC_CEIL_DIV_CU(tq, FA_BM), (unsigned)heads, (unsigned)batch);
    return (int)SDC_LAUNCH((flash_attn_kernel<T, DP, BN>), grid, FA_WARPS * 32, 0, s, (T *)out, (const T *)q,
                           (const T *)k, (const T *)v, heads, tq, tk, d, q_stride, kv_stride, causal, scale);
}

template <typename T>
static int fa_dispatch(void *out, const void *q, const void *k, const void *v, int batch, int heads, int tq, int tk,
                       int d, int q_stride, int kv_stride, int causal, float scale, cudaStream_t s) {
    switch ((d + 15) / 16) {
#define FA_CASE(n)                                                                                                 \
    case n: return fa_launch<T, 16 * n>(out, q, k, v, batch, heads, tq, tk, d, q_stride, kv_stride, causal, scale, s);
        FA_CASE(1) FA_CASE(2) FA_CASE(3) FA_CASE(4) FA_CASE(5) FA_CASE(6) FA_CASE(7) FA_CASE(8) FA_CASE(9) FA_CASE(10)
#undef FA_CASE
    }
    return (int)cudaErrorInvalidValue;
}

extern "C" int sdc_flash_attention_supported(int t, int d, int q_stride, int kv_stride, const void *q, const void *k,
                                             const void *v) {
    const uintptr_t align = (uintptr_t)q | (uintptr_t)k | (uintptr_t)v;
    return (t == SDC_CU_F16 || t == SDC_CU_BF16) && d >= 8 && d <= SDC_FLASH_MAX_D && d % 8 == 0 &&
           q_stride % 8 == 0 && kv_stride % 8 == 0 && align % 16 == 0;
}

extern "C" int sdc_flash_attention_cuda(void *out, const void *q, const void *k, const void *v, int t, int batch,
                                        int heads, int tq, int tk, int d, int q_stride, int kv_stride, int causal,
                                        float scale, cudaStream_t s) {
    if (batch < 1 || heads < 1 || tq < 1 || tk < 1) return 0;
    if (!sdc_flash_attention_supported(t, d, q_stride, kv_stride, q, k, v)) return (int)cudaErrorInvalidValue;
    if (t == SDC_CU_F16)
        return fa_dispatch<__half>(out, q, k, v, batch, heads, tq, tk, d, q_stride, kv_stride, causal, scale, s);
    return fa_dispatch<__nv_bfloat16>(out, q, k, v, batch, heads, tq, tk, d, q_stride, kv_stride, causal, scale, s);
}
