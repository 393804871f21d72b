/* backend_cpu_flash_block.h - one block of queries of the CPU's flash
 * attention (backend_cpu_flash.c), written once for a vector width.
 *
 * backend_cpu_flash.c includes it twice: FV = 16 floats (AVX-512: one
 * register; 2 vectors of keys per scores pass, 3 of output columns per
 * P V pass: R x 2 and R x 3 accumulators in 32 registers) and FV = 8 (AVX2
 * and the base target: 1 and 1, R accumulators, for 16 registers). FN(x)
 * names each function for its width. Expects R, KC, flash_args and
 * SDC_INLINE defined, and defines nothing else. */

typedef float FN(vf) __attribute__((vector_size(FV * 4)));
typedef int32_t FN(vi) __attribute__((vector_size(FV * 4)));

SDC_INLINE FN(vf) FN(ld)(const float *p) {
    FN(vf) v;
    memcpy(&v, p, sizeof v);
    return v;
}
SDC_INLINE void FN(st)(float *p, FN(vf) v) { memcpy(p, &v, sizeof v); }
SDC_INLINE FN(vf) FN(splat)(float x) { return (FN(vf)){0} + x; }
SDC_INLINE FN(vf) FN(sel)(FN(vi) m, FN(vf) a, FN(vf) b) {
    return (FN(vf))((m & (FN(vi))a) | (~m & (FN(vi))b));
}

/* S[r][j] = sum_c q[r][c] kt[c][j0 + j] for j < KC, FV FV_KEYS at a time */
SDC_INLINE void FN(scores)(float *s, const float *q, int d, const float *kt, size_t ldk, size_t j0) {
    for (int j = 0; j < KC; j += FV * FV_KEYS) {
        FN(vf) acc[R][FV_KEYS];
        for (int r = 0; r < R; r++)
            for (int u = 0; u < FV_KEYS; u++) acc[r][u] = (FN(vf)){0};
        for (int c = 0; c < d; c++) {
            const float *k = kt + (size_t)c * ldk + j0 + j;
            FN(vf) kv[FV_KEYS];
            for (int u = 0; u < FV_KEYS; u++) kv[u] = FN(ld)(k + FV * u);
            for (int r = 0; r < R; r++) {
                const float x = q[r * d + c];
                for (int u = 0; u < FV_KEYS; u++) acc[r][u] += kv[u] * x;
            }
        }
        for (int r = 0; r < R; r++)
            for (int u = 0; u < FV_KEYS; u++) FN(st)(s + r * KC + j + FV * u, acc[r][u]);
    }
}

/* max(m, s[0 .. nk)): FV independent running maxima, not one chain of nk
 * dependent compares */
SDC_INLINE float FN(row_max)(const float *s, int nk, float m) {
    FN(vf) l = FN(splat)(m);
    int j = 0;
    for (; j + FV <= nk; j += FV) {
        const FN(vf) x = FN(ld)(s + j);
        l = FN(sel)(x > l, x, l);
    }
    for (; j < nk; j++) m = s[j] > m ? s[j] : m;
    for (int i = 0; i < FV; i++) m = l[i] > m ? l[i] : m;
    return m;
}

/* sdc_fast_expf (backend_cpu.h) FV lanes at a time; rint as the add and
 * subtract of 1.5 2^23, exact for the |n| <= 128 the clamp leaves */
SDC_INLINE FN(vf) FN(vexp)(FN(vf) x) {
    const FN(vf) x0 = x;
    const FN(vi) nan = x != x;
    x = FN(sel)(nan, FN(splat)(0.0f), x);
    x = FN(sel)(x < FN(splat)(-87.0f), FN(splat)(-87.0f), x);
    x = FN(sel)(x > FN(splat)(88.0f), FN(splat)(88.0f), x);
    const FN(vf) magic = FN(splat)(12582912.0f);
    const FN(vf) n = (x * 1.44269504088896341f + magic) - magic;
    FN(vf) r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    FN(vf) p = FN(splat)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const FN(vf) y = p * r * r + r + 1.0f;
    const FN(vi) e = (__builtin_convertvector(n, FN(vi)) + 127) << 23;
    return FN(sel)(nan, x0, y * (FN(vf))e);
}

/* s[j] = exp((s[j] - m) scale) for j < nk; returns their sum (in FV lanes) */
SDC_INLINE float FN(exp_row)(float *s, int nk, float m, float scale) {
    FN(vf) acc = {0};
    int j = 0;
    for (; j + FV <= nk; j += FV) {
        const FN(vf) e = FN(vexp)((FN(ld)(s + j) - m) * scale);
        FN(st)(s + j, e);
        acc += e;
    }
    float add = 0.0f;
    for (; j < nk; j++) add += (s[j] = sdc_fast_expf((s[j] - m) * scale));
    for (int i = 0; i < FV; i++) add += acc[i];
    return add;
}

/* o[r][c0 .. c0 + FV nv) += sum_j p[r][j] vp[j0 + j][c0 ..] for j < nk */
SDC_INLINE void FN(pv_pass)(float *o, int dp, const float *p, const float *vp, size_t j0, int nk, int c0,
                            const int nv) {
    FN(vf) acc[R][FV_COLS];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = FN(ld)(o + r * dp + c0 + FV * v);
    for (int j = 0; j < nk; j++) {
        const float *row = vp + (j0 + (size_t)j) * dp + c0;
        FN(vf) x[FV_COLS];
        for (int v = 0; v < nv; v++) x[v] = FN(ld)(row + FV * v);
        for (int r = 0; r < R; r++) {
            const float pr = p[r * KC + j];
            for (int v = 0; v < nv; v++) acc[r][v] += x[v] * pr;
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < nv; v++) FN(st)(o + r * dp + c0 + FV * v, acc[r][v]);
}

/* rows i0 .. i0 + R of the output (fewer at the end); w: this thread's
 * R d (queries), R KC (scores) and R dp (output) floats */
SDC_INLINE void FN(block)(const flash_args *a, int i0, float *w) {
    const int d = a->d, dp = a->dp, rows = a->tq - i0 < R ? a->tq - i0 : R;
    float *q = w, *s = q + R * d, *o = s + R * KC;
    float mx[R], sum[R];
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < d; c++) q[r * d + c] = r < rows ? a->q[(size_t)(i0 + r) * a->q_stride + c] : 0.0f;
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
    }
    memset(o, 0, (size_t)R * dp * sizeof(float));
    for (size_t j0 = 0; j0 < (size_t)a->tk; j0 += KC) {
        const int nk = (size_t)a->tk - j0 < KC ? (int)((size_t)a->tk - j0) : KC;
        FN(scores)(s, q, d, a->kt, a->tkp, j0);
        for (int r = 0; r < R; r++) {
            float *sr = s + r * KC, m = FN(row_max)(sr, nk, mx[r]);
            /* the output so far and its sum, rescaled to the new max */
            const float alpha = mx[r] == -INFINITY ? 0.0f : sdc_fast_expf((mx[r] - m) * a->scale);
            const float add = FN(exp_row)(sr, nk, m, a->scale);
            if (alpha != 1.0f)
                for (int c = 0; c < dp; c++) o[r * dp + c] *= alpha;
            sum[r] = sum[r] * alpha + add;
            mx[r] = m;
        }
        /* dp is a multiple of 16: FV_COLS vectors a pass, then what is left */
        int c0 = 0;
        for (; c0 + FV * FV_COLS <= dp; c0 += FV * FV_COLS) FN(pv_pass)(o, dp, s, a->vp, j0, nk, c0, FV_COLS);
        for (; c0 < dp; c0 += FV) FN(pv_pass)(o, dp, s, a->vp, j0, nk, c0, 1);
    }
    for (int r = 0; r < rows; r++) {
        float *dst = a->out + (size_t)(i0 + r) * a->width;
        const float inv = 1.0f / sum[r];
        for (int c = 0; c < d; c++) dst[c] = o[r * dp + c] * inv;
    }
}
