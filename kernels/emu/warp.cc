// warp.cc - warp-wide instructions of the host execution, each computed once
// every lane of its mask has arrived (exec.cc: warp_collective), from every
// lane's inputs, as the PTX ISA describes them; and the fp16 conversions.
#include <stdio.h>

#include "emu/emu.h"
#include "emu/profile.h"

#ifdef SDC_EMU_TSAN
extern "C" void __tsan_read_range(void *addr, unsigned long size);
#endif

namespace sdc_emu {

// --- fp16 -----------------------------------------------------------------

// float -> binary16, round to nearest even; overflow to infinity, NaN kept
// quiet, subnormals produced exactly.
static uint16_t f32_to_f16(float f) {
    const uint32_t u = sdc_emu_f32_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x1ffu)); // NaN
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); // rounds to >= 65520: infinity
    if (abs < 0x38800000u) {                                  // below 2^-14: subnormal or zero
        if (abs < 0x33000000u) return (uint16_t)sign;         // below 2^-25: rounds to zero
        const int e = (int)(abs >> 23);                       // biased float exponent, 102..112
        const uint32_t m = (abs & 0x7fffffu) | 0x800000u;     // 24-bit significand
        const int shift = 126 - e;                            // 14..24: value = m * 2^(e-150)
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    // normal: rebias the exponent (127 -> 15), round 13 bits away
    uint32_t r = ((abs - 0x38000000u) >> 13);
    const uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

static float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return sdc_emu_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        // zero or subnormal: m * 2^-24, exact in float
        float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return sdc_emu_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

} // namespace sdc_emu

__half __float2half(float f) { return __half{sdc_emu::f32_to_f16(f)}; }
float __half2float(__half h) { return sdc_emu::f16_to_f32(h.x); }

namespace sdc_emu {

// --- shuffles and votes -----------------------------------------------------

struct ShflIn {
    float v;
    int arg, mode, width;
};

// PTX shfl.sync: a lane reads lane j's value when j lies in its segment of
// `width` lanes, else keeps its own; reading a lane outside the mask gives
// an undefined value, here a NaN so that using it shows.
static void shfl_fn(const unsigned char (*in)[SLOT], unsigned char (*out)[SLOT], unsigned active) {
    for (int l = 0; l < 32; l++) {
        if (!(active >> l & 1u)) continue;
        ShflIn a;
        memcpy(&a, in[l], sizeof a);
        const int seg = l & ~(a.width - 1), top = seg + a.width - 1;
        int j;
        switch (a.mode) {
        case 0: j = seg + (a.arg & (a.width - 1)); break;
        case 1: j = l ^ a.arg; break;
        case 2: j = l + a.arg; break;
        default: j = l - a.arg; break;
        }
        float v;
        if (j < seg || j > top)
            v = a.v;
        else if (active >> j & 1u)
            memcpy(&v, in[j], sizeof v);
        else
            v = sdc_emu_bits_f32(0x7fc00bad);
        memcpy(out[l], &v, sizeof v);
    }
}

float shfl(unsigned mask, float v, int lane, int mode, int width, const char *file, int line) {
    static const char *names[] = {"__shfl_sync", "__shfl_xor_sync", "__shfl_down_sync", "__shfl_up_sync"};
    ShflIn a = {v, lane, mode, width};
    float r = 0.0f;
    warp_collective(names[mode & 3], mask, &a, sizeof a, &r, sizeof r, shfl_fn, file, line);
    return r;
}

static void ballot_fn(const unsigned char (*in)[SLOT], unsigned char (*out)[SLOT], unsigned active) {
    unsigned bits = 0;
    for (int l = 0; l < 32; l++)
        if (active >> l & 1u) {
            int p;
            memcpy(&p, in[l], sizeof p);
            if (p) bits |= 1u << l;
        }
    for (int l = 0; l < 32; l++)
        if (active >> l & 1u) memcpy(out[l], &bits, sizeof bits);
}

unsigned ballot(unsigned mask, int pred, const char *file, int line) {
    int p = pred != 0;
    unsigned r = 0;
    warp_collective("__ballot_sync", mask, &p, sizeof p, &r, sizeof r, ballot_fn, file, line);
    return r;
}

static void nothing_fn(const unsigned char (*)[SLOT], unsigned char (*)[SLOT], unsigned) {}

void syncwarp(unsigned mask, const char *file, int line) {
    warp_collective("__syncwarp", mask, NULL, 0, NULL, 0, nothing_fn, file, line);
}

// --- mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 --------
//
// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type",
// with groupID = lane / 4 and tig = lane % 4 (thread in group):
//   A (16x16, row-major), four .b32 registers of two elements each:
//     element i (0..7) of a lane: row = groupID + 8 * ((i / 2) % 2),
//                                 col = tig * 2 + i % 2 + 8 * (i / 4)
//   B (16x8, column-major), two registers:
//     element i (0..3): k = tig * 2 + i % 2 + 8 * (i / 2), n = groupID
//   C, D (16x8, f32), four registers:
//     element i (0..3): row = groupID + 8 * (i / 2), col = tig * 2 + i % 2
// The lower-numbered element of a register is in its low 16 bits.

struct MmaIn {
    uint32_t a[4], b[2];
    float c[4];
    int bf16;
};

static float b16_value(uint16_t v, bool bf16) {
    return bf16 ? sdc_emu_bits_f32((uint32_t)v << 16) : f16_to_f32(v);
}

static uint16_t half_of(uint32_t reg, int hi) { return (uint16_t)(hi ? reg >> 16 : reg & 0xffffu); }

static void mma_fn(const unsigned char (*in)[SLOT], unsigned char (*out)[SLOT], unsigned) {
    float A[16][16], B[16][8], C[16][8];
    bool bf16 = false;
    for (int l = 0; l < 32; l++) {
        MmaIn m;
        memcpy(&m, in[l], sizeof m);
        bf16 = m.bf16 != 0;
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 8; i++)
            A[g + 8 * ((i / 2) % 2)][t * 2 + i % 2 + 8 * (i / 4)] = b16_value(half_of(m.a[i / 2], i % 2), bf16);
        for (int i = 0; i < 4; i++) B[t * 2 + i % 2 + 8 * (i / 2)][g] = b16_value(half_of(m.b[i / 2], i % 2), bf16);
        for (int i = 0; i < 4; i++) C[g + 8 * (i / 2)][t * 2 + i % 2] = m.c[i];
    }
    counters.mma++;
    // products of two 16-bit values are exact in float; summed in double,
    // rounded once (the hardware keeps at least fp32 inside the sum)
    float D[16][8];
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++) {
            double s = 0.0;
            for (int k = 0; k < 16; k++) s += (double)(A[r][k] * B[k][n]);
            D[r][n] = (float)(s + (double)C[r][n]);
        }
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        float d[4];
        for (int i = 0; i < 4; i++) d[i] = D[g + 8 * (i / 2)][t * 2 + i % 2];
        memcpy(out[l], d, sizeof d);
    }
}

void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16,
                  const char *file, int line) {
    MmaIn m;
    memcpy(m.a, a, sizeof m.a);
    memcpy(m.b, b, sizeof m.b);
    memcpy(m.c, c, sizeof m.c);
    m.bf16 = bf16;
    warp_collective(bf16 ? "mma.m16n8k16.bf16" : "mma.m16n8k16.f16", 0xffffffffu, &m, sizeof m, d,
                    4 * sizeof(float), mma_fn, file, line);
}

// --- ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16 -------------
//
// Matrix j (of 1, 2 or 4) is 8 rows of 8 b16 elements; lanes 8j .. 8j+7 give
// the addresses of its rows (each 16-byte aligned). Lane l receives in its
// register j the elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1) of
// matrix j, or with .trans those of its transpose.

struct LdIn {
    const unsigned char *p;
    int count, trans;
};

static void ldmatrix_fn(const unsigned char (*in)[SLOT], unsigned char (*out)[SLOT], unsigned) {
    LdIn first;
    memcpy(&first, in[0], sizeof first);
    const int count = first.count;
    uint16_t M[4][8][8];
    for (int j = 0; j < count; j++)
        for (int r = 0; r < 8; r++) {
            LdIn a;
            memcpy(&a, in[8 * j + r], sizeof a);
            memcpy(M[j][r], a.p, 16);
        }
    // shared-memory wavefronts: a matrix's 8 rows of 16 bytes (4 banks
    // each) take as many as the most rows that share one of the 32 banks
    counters.ldmatrix += (unsigned long long)count;
    for (int j = 0; j < count; j++) {
        int per_bank[32] = {0}, most = 0;
        for (int r = 0; r < 8; r++) {
            LdIn a;
            memcpy(&a, in[8 * j + r], sizeof a);
            const unsigned bank = (unsigned)(((uintptr_t)a.p >> 2) & 31u);
            for (int w = 0; w < 4; w++) most = std::max(most, ++per_bank[(bank + (unsigned)w) & 31u]);
        }
        counters.wavefronts += (unsigned long long)most;
    }
    for (int l = 0; l < 32; l++) {
        uint32_t reg[4];
        const int row = l / 4, col = 2 * (l % 4);
        for (int j = 0; j < count; j++) {
            uint16_t lo, hi;
            if (first.trans) {
                lo = M[j][col][row];
                hi = M[j][col + 1][row];
            } else {
                lo = M[j][row][col];
                hi = M[j][row][col + 1];
            }
            reg[j] = (uint32_t)lo | ((uint32_t)hi << 16);
        }
        memcpy(out[l], reg, (size_t)count * 4);
    }
}

void ldmatrix(uint32_t *r, int count, bool trans, const void *p, const char *file, int line) {
    const int lane = lane_id();
    if (lane < 8 * count && ((uintptr_t)p & 15u))
        report(file, line, "ldmatrix.x%d%s: lane %d gives row address %p, which is not 16-byte aligned", count,
               trans ? ".trans" : "", lane, p);
#ifdef SDC_EMU_TSAN
    // each lane's row is its own read of shared memory (the copy below runs
    // in whichever lane arrives last)
    if (lane < 8 * count) __tsan_read_range((void *)p, 16);
#endif
    LdIn a = {(const unsigned char *)p, count, trans};
    warp_collective(trans ? "ldmatrix.trans" : "ldmatrix", 0xffffffffu, &a, sizeof a, r, (size_t)count * 4,
                    ldmatrix_fn, file, line);
}

} // namespace sdc_emu
