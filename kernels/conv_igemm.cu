// conv_igemm.cu - convolution as an implicit GEMM on tensor cores: no
// im2col buffer. NHWC activations and (cout_p, k, k, cin_p) weights (the
// padded layout of load_conv) of one half type, fp32 accumulation.
//
//   M = n ho wo output pixels, N = cout, K = k k cin_p, in (ky, kx, ci)
//   order; A[m, (ky, kx, ci)] = x[img, oy s - p + ky, ox s - p + kx, ci]
//   (zero outside the image and past cin), B[(ky, kx, ci), co] = w[co, ky,
//   kx, ci]: a weight row is a column of B, contiguous along K, which is
//   the instruction's column-major B, so both operands load with ldmatrix
//   without a transpose.
//
// Block level, two tile shapes (the table below): 128 x 128 of the output
// with 8 warps as 2 (m) x 4 (n), each warp 64 x 32 (4 x 4 mma.sync
// m16n8k16 tiles per k16 step), for problems that fill the GPU with such
// tiles; 64 x 64 with 4 warps as 2 x 2, each 32 x 32 (2 x 4 mma tiles),
// for the small ones (the U-Net's 8x8 and 16x16 levels: at batch 2 an 8x8
// level is M = 128, one row of 128-tiles). The K loop takes 32 at a time
// through three shared-memory stages filled by cp.async (16 bytes: 8
// channels, which cin % 8 == 0 keeps inside one pixel and one (ky, kx)),
// two tiles ahead of the one multiplied. Input channels that are not a
// multiple of 8 (the U-Net's conv_in: 4) take the padded weight layout's
// cin_p (zeros past cin) and load A element by element (VA false: plain
// loads into shared memory, zero past cin; B is still 16-byte chunks). A stage's rows are 32 elements (64
// bytes, four 16-byte chunks) with the chunks swizzled: chunk c of row r
// sits at c ^ ((r / 2) % 4), so the eight rows an ldmatrix reads at one
// chunk land in eight different 16-byte bank groups, without padding.
// Epilogue: (acc + bias (fp32) + residual) * scale, rounded once to the
// output type, only for m < M and co < cout.
#include "kernels.h"

#define IG_BK 32     // K a step: a shared row of 4 chunks of 8 elements
#define IG_STAGES 3  // shared-memory stages: loads run two steps ahead

// element offset of chunk c (0..3) of row r in a stage (the swizzle above)
__device__ __forceinline__ int ig_at(int r, int c) { return r * IG_BK + ((c ^ ((r >> 1) & 3)) << 3); }

// A tile shape: BM x BN outputs a block, WM x WN a warp.
template <int BM_, int BN_, int WM_, int WN_> struct ig_tile {
    static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_;
    static constexpr int WARPS_N = BN / WN, THREADS = 32 * (BM / WM) * (BN / WN);
    static constexpr int MI = WM / 16, NI = WN / 8; // mma tiles a warp
};
typedef ig_tile<128, 128, 64, 32> ig_large;
typedef ig_tile<64, 64, 32, 32> ig_small;

struct ig_shape {
    int n, h, w, cin, cin_p, cout, cout_p, k, stride, pad, ho, wo;
    int m, kk;   // M and K of the GEMM
    float scale; // the epilogue's output scale
};

// One stage: the A tile (BM output pixels x BK of K) and the B tile (BN
// output channels x BK), 16-byte chunks by cp.async, zeros where the
// chunk lies outside (padding, image border, past M, N or K); VA false:
// the A tile element by element (cin not a multiple of 8).
template <typename T, typename TL, bool VA>
__device__ __forceinline__ void ig_stage(T *sa, T *sb, const T *x, const T *w, const ig_shape &p, int m0, int n0,
                                         int k0) {
    constexpr int CH = IG_BK / 8; // chunks a row
    for (int i = threadIdx.x; i < TL::BM * CH; i += TL::THREADS) {
        const int r = i / CH, c = (i % CH) * 8, m = m0 + r, kq = k0 + c;
        T *dst = sa + ig_at(r, c / 8);
        const int img = m / (p.ho * p.wo), rem = m % (p.ho * p.wo), oy = rem / p.wo, ox = rem % p.wo;
        if (!VA) { // one element at a time: (ky, kx) may change inside the chunk
            SDC_UNROLL
            for (int e = 0; e < 8; e++) {
                const int q = kq + e, ci = q % p.cin_p, t = q / p.cin_p, ky = t / p.k, kx = t % p.k;
                const int iy = oy * p.stride - p.pad + ky, ix = ox * p.stride - p.pad + kx;
                const bool in = m < p.m && q < p.kk && ci < p.cin && iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
                dst[e] = in ? x[(((size_t)img * p.h + iy) * p.w + ix) * p.cin + ci] : sdc_from_float<T>(0.0f);
            }
            continue;
        }
        bool ok = m < p.m && kq < p.kk;
        const T *src = NULL;
        if (ok) {
            const int ci = kq % p.cin_p, t = kq / p.cin_p, ky = t / p.k, kx = t % p.k;
            const int iy = oy * p.stride - p.pad + ky, ix = ox * p.stride - p.pad + kx;
            ok = ci < p.cin && iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
            if (ok) src = x + (((size_t)img * p.h + iy) * p.w + ix) * p.cin + ci;
        }
        if (ok) {
            sdc_cp_async16(dst, src);
        } else {
            for (int e = 0; e < 8; e++) dst[e] = sdc_from_float<T>(0.0f);
        }
    }
    for (int i = threadIdx.x; i < TL::BN * CH; i += TL::THREADS) {
        const int r = i / CH, c = (i % CH) * 8, co = n0 + r, kq = k0 + c;
        T *dst = sb + ig_at(r, c / 8);
        if (co < p.cout_p && kq < p.kk) {
            sdc_cp_async16(dst, w + (size_t)co * p.kk + kq);
        } else {
            for (int e = 0; e < 8; e++) dst[e] = sdc_from_float<T>(0.0f);
        }
    }
}

template <typename T, typename TL, bool VA>
__global__ void conv_igemm_kernel(T *y, const T *x, const T *w, const float *bias, const T *residual, ig_shape p) {
    constexpr int MI = TL::MI, NI = TL::NI;
    __shared__ __align__(16) T sa[IG_STAGES][TL::BM * IG_BK];
    __shared__ __align__(16) T sb[IG_STAGES][TL::BN * IG_BK];
    const int warp = sdc_warp(), lane = sdc_lane(), g = lane / 4, t4 = lane % 4;
    const int wm = warp / TL::WARPS_N, wn = warp % TL::WARPS_N;
    const int m0 = blockIdx.x * TL::BM, n0 = blockIdx.y * TL::BN;
    float acc[MI][NI][4];
    SDC_UNROLL
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < NI; j++)
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    const int n_k = SDC_CEIL_DIV_CU(p.kk, IG_BK);
    // the first IG_STAGES - 1 steps' tiles, one cp.async group each (empty
    // past the last step, so that the count of groups stays the step's)
    for (int s0 = 0; s0 < IG_STAGES - 1; s0++) {
        if (s0 < n_k) ig_stage<T, TL, VA>(sa[s0], sb[s0], x, w, p, m0, n0, s0 * IG_BK);
        sdc_cp_async_commit();
    }
    for (int kt = 0; kt < n_k; kt++) {
        const int st = kt % IG_STAGES;
        sdc_cp_async_wait<IG_STAGES - 2>(); // this step's group has landed
        __syncthreads();                      // for every thread; and the last step's stage is free
        const int nx = kt + IG_STAGES - 1;
        if (nx < n_k) ig_stage<T, TL, VA>(sa[nx % IG_STAGES], sb[nx % IG_STAGES], x, w, p, m0, n0, nx * IG_BK);
        sdc_cp_async_commit();
        SDC_UNROLL
        for (int ks = 0; ks < IG_BK / 16; ks++) {
            uint32_t af[MI][4], bf[NI][2];
            const int mat = lane / 8;
            SDC_UNROLL
            for (int i = 0; i < MI; i++) { // A: rows of this warp's m16 tile i
                const int row = wm * TL::WM + i * 16 + (mat % 2) * 8 + lane % 8;
                sdc_ldmatrix_x4(af[i], sa[st] + ig_at(row, ks * 2 + mat / 2));
            }
            SDC_UNROLL
            for (int j = 0; j < NI; j += 2) { // B: weight rows (output channels) of n8 tiles j, j + 1
                const int row = wn * TL::WN + (j + mat / 2) * 8 + lane % 8;
                uint32_t r[4];
                sdc_ldmatrix_x4(r, sb[st] + ig_at(row, ks * 2 + mat % 2));
                bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];
            }
            SDC_UNROLL
            for (int i = 0; i < MI; i++)
                for (int j = 0; j < NI; j++) sdc_mma16<T>::run(acc[i][j], af[i], bf[j]);
        }
    }
    sdc_cp_async_wait<0>();

    // epilogue: bias, residual, scale, one rounding
    SDC_UNROLL
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < NI; j++)
            for (int e = 0; e < 4; e++) {
                const int m = m0 + wm * TL::WM + i * 16 + g + 8 * (e / 2);
                const int co = n0 + wn * TL::WN + j * 8 + 2 * t4 + e % 2;
                if (m >= p.m || co >= p.cout) continue;
                const size_t at = (size_t)m * p.cout + co;
                float v = acc[i][j][e] + (bias ? bias[co] : 0.0f);
                if (residual) v += sdc_to_float(residual[at]);
                y[at] = sdc_from_float<T>(v * p.scale);
            }
}

extern "C" int sdc_conv_igemm_supported(int t, int cin, int cin_p, int cout_p, const void *x, const void *w) {
    // x is read in 16-byte chunks where cin is a multiple of 8, else by element
    const uintptr_t xa = cin % 8 == 0 ? (uintptr_t)x : 0;
    return (t == SDC_CU_F16 || t == SDC_CU_BF16) && cin >= 1 && cin <= cin_p && cin_p % 8 == 0 && cout_p % 8 == 0 &&
           (xa | (uintptr_t)w) % 16 == 0 && (uintptr_t)x % 2 == 0;
}

template <typename T, typename TL>
static int ig_launch(void *y, const void *x, const void *w, const float *bias, const void *residual, const ig_shape &p,
                     cudaStream_t s) {
    const dim3 grid((unsigned)SDC_CEIL_DIV_CU(p.m, TL::BM), (unsigned)SDC_CEIL_DIV_CU(p.cout, TL::BN));
    if (p.cin % 8 == 0)
        return (int)SDC_LAUNCH((conv_igemm_kernel<T, TL, true>), grid, TL::THREADS, 0, s, (T *)y, (const T *)x,
                               (const T *)w, bias, (const T *)residual, p);
    return (int)SDC_LAUNCH((conv_igemm_kernel<T, TL, false>), grid, TL::THREADS, 0, s, (T *)y, (const T *)x,
                           (const T *)w, bias, (const T *)residual, p);
}

template <typename T>
static int ig_dispatch(void *y, const void *x, const void *w, const float *bias, const void *residual,
                       const ig_shape &p, int tile, int sms, cudaStream_t s) {
    // the table: 128 x 128 tiles where they make at least one wave on the
    // GPU's multiprocessors (sms; 0: not known, take them), else 64 x 64
    if (tile == 0) {
        const long long large = (long long)SDC_CEIL_DIV_CU(p.m, 128) * SDC_CEIL_DIV_CU(p.cout, 128);
        tile = sms <= 0 || large >= sms ? 128 : 64;
    }
    if (tile == 128) return ig_launch<T, ig_large>(y, x, w, bias, residual, p, s);
    if (tile == 64) return ig_launch<T, ig_small>(y, x, w, bias, residual, p, s);
    return (int)cudaErrorInvalidValue;
}

extern "C" int sdc_conv_igemm_cuda(void *y, const void *x, const void *w, const float *bias, const void *residual,
                                   int t, int n, int h, int wi, int cin, int cin_p, int cout, int cout_p, int k,
                                   int stride, int pad, float scale, int tile, int sms, cudaStream_t s) {
    if (!sdc_conv_igemm_supported(t, cin, cin_p, cout_p, x, w) || cin_p < cin || cout_p < cout || k < 1 ||
        stride < 1 || pad < 0)
        return (int)cudaErrorInvalidValue;
    ig_shape p;
    p.n = n, p.h = h, p.w = wi, p.cin = cin, p.cin_p = cin_p, p.cout = cout, p.cout_p = cout_p, p.k = k;
    p.stride = stride, p.pad = pad, p.scale = scale;
    p.ho = (h + 2 * pad - k) / stride + 1, p.wo = (wi + 2 * pad - k) / stride + 1;
    if (n < 1 || p.ho < 1 || p.wo < 1) return 0;
    p.m = n * p.ho * p.wo, p.kk = k * k * cin_p;
    if (t == SDC_CU_F16) return ig_dispatch<__half>(y, x, w, bias, residual, p, tile, sms, s);
    return ig_dispatch<__nv_bfloat16>(y, x, w, bias, residual, p, tile, sms, s);
}
