/* scheduler.c - DDIM, DDPM, Euler, Euler a and DPM++ 2M, matching
 * diffusers 0.31.0 (DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler) for SD's
 * configuration.
 *
 * Exactness: diffusers builds its schedules partly in torch float32 and
 * partly in numpy float64, and steps with 0-dim float32 tensors. Every
 * value here is computed in the same precision with the same order of
 * operations. What cannot be computed is torch's CPU sqrt, log and exp:
 * MKL's VML, within 1 ulp but not correctly rounded (19% of the training
 * sigmas' square roots differ from sqrtf). For SD's training schedule the
 * sqrt results that schedules depend on are torch's own, from
 * scheduler_tables.h: the training sigmas and sqrt(sigma^2 + 1) of each
 * (init_noise_sigma; also scale_model_input and the steps where sigma is a
 * training sigma), so timesteps, sigmas and init_noise_sigma are
 * bit-identical. Elsewhere (other schedules, cfg.correctly_rounded, the
 * steps' other 0-dim sqrt/log/exp) sdc's math is correctly rounded; with
 * that on the torch side too, every schedule and every step is
 * bit-identical (tests/test_scheduler.c, --exact-math fixture).
 * The points that matter:
 *   - torch.linspace (float32) is fused: start + step*i is one fma (torch's
 *     CPU kernel is built with FMA contraction), end - step*(n-1-i) for the
 *     upper half; the squares and 1 - beta are plain float32.
 *   - torch.cumprod on the CPU accumulates float32 in double.
 *   - numpy's float32 log (AVX2/AVX512 kernels) is not correctly rounded;
 *     np_logf below is its algorithm (used for diffusers' log_sigmas).
 *   - np.interp, np.linspace, np.arange (float step) and np.round are
 *     reproduced in double as numpy computes them.
 *   - torch's pow(x, 2) is x*x, pow(x, 0.5) is sqrt, 1/x is reciprocal:
 *     no pow() anywhere in a step.
 * This file must be compiled without FMA contraction (-std=c11 implies
 * -ffp-contract=off in GCC). */
#include "sampling/scheduler.h"
#include "sampling/scheduler_tables.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sdc_sampler {
    sdc_sampler_kind kind;
    sdc_schedule_config cfg;
    int steps;
    int T;                   /* num_train_timesteps */
    float *alphas_cumprod;   /* [T] */
    float *train_sigmas;     /* [T] ((1 - a) / a) ** 0.5, increasing */
    const float *torch_s2p1; /* [T] torch's (train_sigmas ** 2 + 1) ** 0.5, or NULL */
    double *timesteps;       /* [steps] as passed to the U-Net */
    int *t_int;              /* [steps] integer timesteps (DDIM, DDPM) */
    float *sigmas;           /* [steps + 1] (Euler, Euler a, DPM++), else NULL */
    float init_sigma;
    float final_alpha_cumprod; /* DDIM, set_alpha_to_one False */
    /* run state */
    int next_step;
    int lower_order_nums;    /* DPM++ */
    int begun;               /* the step runs start at (sdc_sampler_begin; 0) */
    size_t buf_n;
    float *x0_prev, *x0_cur; /* DPM++ data predictions, [buf_n] */
    float *noise;            /* [buf_n] */
};

static const char *const NAMES[SDC_SAMPLER_COUNT] = {"ddim", "ddpm", "euler", "euler_a",
                                                     "dpmpp_2m"};
static const char *const DISPLAY[SDC_SAMPLER_COUNT] = {"DDIM", "DDPM", "Euler", "Euler a",
                                                       "DPM++ 2M"};
static const char *const SPACING_NAMES[] = {"leading", "trailing", "linspace"};

const char *sdc_sampler_name(sdc_sampler_kind k) {
    return (unsigned)k < SDC_SAMPLER_COUNT ? NAMES[k] : "?";
}

const char *sdc_sampler_display_name(sdc_sampler_kind k) {
    return (unsigned)k < SDC_SAMPLER_COUNT ? DISPLAY[k] : "?";
}

sdc_status sdc_sampler_parse(const char *name, sdc_sampler_kind *out) {
    for (int k = 0; k < SDC_SAMPLER_COUNT; k++) {
        if (name && strcmp(name, NAMES[k]) == 0) {
            *out = (sdc_sampler_kind)k;
            return SDC_OK;
        }
    }
    return sdc_fail(SDC_ERR_ARG,
                    "unknown sampler \"%s\" (choose one of: ddim, ddpm, euler, euler_a, dpmpp_2m)",
                    name ? name : "(null)");
}

bool sdc_sampler_supports_karras(sdc_sampler_kind k) {
    return k == SDC_SAMPLER_EULER || k == SDC_SAMPLER_DPMPP_2M;
}

sdc_schedule_config sdc_schedule_default(void) {
    sdc_schedule_config c;
    memset(&c, 0, sizeof c);
    c.num_train_timesteps = 1000;
    c.beta_start = 0.00085f;
    c.beta_end = 0.012f;
    c.spacing = SDC_SPACING_LEADING;
    c.steps_offset = 1;
    c.karras = false;
    c.prediction = SDC_PREDICT_EPSILON;
    c.eta = 0.0f;
    return c;
}

/* ---- numpy and torch primitives, reproduced ---------------------------- */

/* The decimal a float config value stands for: the shortest decimal that
 * rounds back to it (0.00085f -> 0.00085), as a double. diffusers takes
 * beta_start/beta_end as Python floats and computes beta ** 0.5 in double. */
static double decimal_of_float(float f) {
    char buf[64];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

/* numpy's float32 log (loops_exponent_log: mantissa in [0.5, 1), moved to
 * [sqrt(1/2), sqrt(2)), then a 5/5 rational in x - 1 with fma Horner
 * steps, then e*ln2 + p/q with one more fma). Positive normal inputs. */
static float np_logf(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    float e = (float)((int)(b >> 23) - 126);
    uint32_t mb = (b & 0x7fffffu) | (126u << 23);
    float m;
    memcpy(&m, &mb, 4);
    if (m <= 0.707106781186547524400844362104849039f) {
        m = m + m;
        e = e - 1.0f;
    }
    m = m - 1.0f;
    float p = fmaf(2.589979117907922693523e-02f, m, 3.808837741388407920751e-01f);
    p = fmaf(p, m, 1.480000633576506585156e+00f);
    p = fmaf(p, m, 2.112677543073053063722e+00f);
    p = fmaf(p, m, 9.999999999999998702752e-01f);
    p = fmaf(p, m, 0.0f);
    float q = fmaf(5.875095403124574342950e-03f, m, 1.546476374983906719538e-01f);
    q = fmaf(q, m, 9.864942958519418960339e-01f);
    q = fmaf(q, m, 2.453006071784736363091e+00f);
    q = fmaf(q, m, 2.612677543073109236779e+00f);
    q = fmaf(q, m, 1.0f);
    return fmaf(e, 0.693147180559945309417232121458176568f, p / q);
}

/* np.linspace(0, stop, num) in float64: i * (stop / (num - 1)) with the
 * last value set to stop exactly; num == 1 gives [0]. */
static void np_linspace0(double stop, int num, double *out) {
    if (num == 1) {
        out[0] = 0.0;
        return;
    }
    double step = stop / (double)(num - 1);
    for (int i = 0; i < num; i++) out[i] = (double)i * step + 0.0;
    out[num - 1] = stop;
}

/* np.arange(start, 0, -start / n) for an integer start: the length is
 * ceil(-start / step) (which is n + 1 for some n: the last value is then
 * about 0, and becomes timestep -1), the values start + i * delta with
 * delta = (start + step) - start. Returns the length (n or n + 1). */
static int np_arange_trailing(int start, int n, double *out) {
    double step = -((double)start / (double)n);
    double len_d = ceil((double)(0 - start) / step);
    int len = len_d < 1.0 ? 1 : len_d > (double)n + 1.0 ? n + 1 : (int)len_d;
    int fill = len > n ? len : n;
    out[0] = (double)start;
    if (fill > 1) out[1] = (double)start + step;
    double delta = (fill > 1 ? out[1] : out[0]) - out[0];
    for (int i = 2; i < fill; i++) out[i] = out[0] + (double)i * delta;
    return len;
}

/* np.interp(x, arange(T), fp) with fp the float32 training sigmas. */
static double np_interp_sigma(const float *fp, int T, double x) {
    if (isnan(x)) return x;
    if (x < 0.0) return (double)fp[0];
    if (x > (double)(T - 1)) return (double)fp[T - 1];
    int j = (int)floor(x);
    if (j >= T - 1) return (double)fp[T - 1];
    if ((double)j == x) return (double)fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* diffusers' _sigma_to_t: log-sigma interpolation between the two training
 * steps around sigma (log_sigmas float32 from numpy, the rest float64; the
 * denominator low - high is a float32 difference). */
static double sigma_to_t(double sigma, const float *log_sigmas, int T) {
    double ls = log(fmax(sigma, 1e-10));
    int lo = 0;
    for (int i = 0; i < T; i++)
        if (ls - (double)log_sigmas[i] >= 0.0) lo = i;
    if (lo > T - 2) lo = T - 2;
    int hi = lo + 1;
    float low = log_sigmas[lo], high = log_sigmas[hi];
    double w = ((double)low - ls) / (double)(low - high);
    w = w < 0.0 ? 0.0 : (w > 1.0 ? 1.0 : w);
    return (1.0 - w) * (double)lo + w * (double)hi;
}

/* _convert_to_karras: rho 7 between in_min and in_max (float64). */
static void karras_sigmas(double sigma_min, double sigma_max, int n, double *out) {
    const double rho = 7.0;
    double min_inv = pow(sigma_min, 1.0 / rho), max_inv = pow(sigma_max, 1.0 / rho);
    np_linspace0(1.0, n, out);
    for (int i = 0; i < n; i++) out[i] = pow(max_inv + out[i] * (min_inv - max_inv), rho);
}

/* torch.log / torch.exp (and sqrt) of float32 tensors go through MKL's VML
 * (high-accuracy mode), which is not bit-reproducible; correctly rounded
 * values are the closest stand-in (they differ from MKL by at most 1 ulp). */
static float t_logf(float x) { return (float)log((double)x); }
static float t_expf(float x) { return (float)exp((double)x); }

/* ---- schedule construction ---------------------------------------------- */

static sdc_status check_config(sdc_sampler_kind kind, const sdc_schedule_config *c, int steps) {
    if ((unsigned)kind >= SDC_SAMPLER_COUNT)
        return sdc_fail(SDC_ERR_ARG, "sampler: unknown sampler kind %d", (int)kind);
    const char *nm = NAMES[kind];
    if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: num_train_timesteps %d out of range (2..100000)",
                        nm, c->num_train_timesteps);
    if (!(c->beta_start > 0.0f) || !(c->beta_end > c->beta_start) || !(c->beta_end < 1.0f))
        return sdc_fail(SDC_ERR_ARG,
                        "sampler %s: betas must satisfy 0 < beta_start < beta_end < 1 (got %g, %g)",
                        nm, (double)c->beta_start, (double)c->beta_end);
    if ((unsigned)c->spacing > SDC_SPACING_LINSPACE)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: unknown timestep spacing %d", nm, (int)c->spacing);
    if ((unsigned)c->prediction > SDC_PREDICT_V)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: unknown prediction type %d", nm,
                        (int)c->prediction);
    if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: steps_offset %d out of range (0..%d)", nm,
                        c->steps_offset, c->num_train_timesteps - 1);
    if (steps < 1 || steps > c->num_train_timesteps)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: %d steps out of range (1..%d, the training steps)",
                        nm, steps, c->num_train_timesteps);
    if (c->karras && !sdc_sampler_supports_karras(kind))
        return sdc_fail(SDC_ERR_ARG,
                        "sampler %s: Karras sigmas are not available for this sampler (only euler "
                        "and dpmpp_2m, as in diffusers 0.31)", nm);
    if (!(c->eta >= 0.0f) || !isfinite(c->eta))
        return sdc_fail(SDC_ERR_ARG, "sampler %s: eta must be >= 0 (got %g)", nm, (double)c->eta);
    if (c->eta != 0.0f && kind != SDC_SAMPLER_DDIM)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: eta applies to ddim only (got eta %g)", nm,
                        (double)c->eta);
    return SDC_OK;
}

/* Whether torch's tables apply: SD's training schedule (sdc's betas are
 * always scaled_linear), unless correctly rounded math is asked for. */
static bool use_torch_tables(const sdc_schedule_config *c) {
    return !c->correctly_rounded && c->num_train_timesteps == SDC_TORCH_TABLE_T &&
           c->beta_start == SDC_TORCH_TABLE_BETA_START && c->beta_end == SDC_TORCH_TABLE_BETA_END;
}

/* betas = torch.linspace(sqrt(b0), sqrt(b1), T, float32) ** 2, then
 * alphas_cumprod = cumprod(1 - betas) (float32 values, double running
 * product, as torch's CPU cumprod); the sigmas with torch's sqrt where
 * tabled. */
static void train_schedule(sdc_sampler *s) {
    const int T = s->T;
    float start = (float)sqrt(decimal_of_float(s->cfg.beta_start));
    float end = (float)sqrt(decimal_of_float(s->cfg.beta_end));
    float step = (end - start) / (float)(T - 1);
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        float b = i < T / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(T - 1 - i), end);
        float beta = b * b;
        float alpha = 1.0f - beta;
        acc *= (double)alpha;
        s->alphas_cumprod[i] = (float)acc;
        float a = s->alphas_cumprod[i];
        s->train_sigmas[i] = sqrtf((1.0f - a) / a);
    }
    if (use_torch_tables(&s->cfg)) {
        memcpy(s->train_sigmas, sdc_torch_train_sigmas, sizeof sdc_torch_train_sigmas);
        s->torch_s2p1 = sdc_torch_sqrt_sigma2p1;
    }
}

/* (sigma ** 2 + 1) ** 0.5 of a float32 sigma as torch computes it: torch's
 * value where sigma is a training sigma and the table applies, else
 * correctly rounded. */
static float sqrt_sigma2p1(const sdc_sampler *s, float sigma) {
    if (s->torch_s2p1) {
        int lo = 0, hi = s->T - 1;
        while (lo <= hi) {
            int mid = lo + (hi - lo) / 2;
            float v = s->train_sigmas[mid];
            if (v == sigma) return s->torch_s2p1[mid];
            if (v < sigma) lo = mid + 1;
            else hi = mid - 1;
        }
    }
    return sqrtf(sigma * sigma + 1.0f);
}

/* Timesteps as numpy makes them (float64) for the Euler family, DDIM and
 * DDPM; *len gets numpy's length (n, or n + 1 for the trailing overshoot). */
static void base_timesteps(const sdc_sampler *s, int n, double *raw, int *len, bool float32) {
    const int T = s->T;
    *len = n;
    switch (s->cfg.spacing) {
    case SDC_SPACING_LINSPACE: {
        np_linspace0((double)(T - 1), n, raw);
        for (int i = 0; i < n; i++) raw[i] = float32 ? (double)(float)raw[i] : rint(raw[i]);
        break;
    }
    case SDC_SPACING_LEADING: {
        int ratio = T / n;
        for (int i = 0; i < n; i++) raw[i] = (double)i * ratio;
        break;
    }
    case SDC_SPACING_TRAILING:
        *len = np_arange_trailing(T, n, raw);
        if (*len < n) *len = n; /* never seen; keep n values regardless */
        for (int i = 0; i < *len; i++) raw[i] = rint(raw[i]);
        break;
    }
    /* reverse the ascending spacings, then the offsets */
    if (s->cfg.spacing != SDC_SPACING_TRAILING) {
        for (int i = 0, j = n - 1; i < j; i++, j--) {
            double t = raw[i];
            raw[i] = raw[j], raw[j] = t;
        }
    }
    for (int i = 0; i < *len; i++) {
        if (s->cfg.spacing == SDC_SPACING_LEADING) raw[i] += s->cfg.steps_offset;
        if (s->cfg.spacing == SDC_SPACING_TRAILING) raw[i] -= 1.0;
    }
}

static sdc_status build_ddim_ddpm(sdc_sampler *s, double *raw) {
    int len;
    base_timesteps(s, s->steps, raw, &len, false);
    for (int i = 0; i < s->steps; i++) {
        if (raw[i] >= (double)s->T || raw[i] < 0.0)
            return sdc_fail(SDC_ERR_ARG,
                            "sampler %s: %d steps with %s spacing and steps_offset %d reach "
                            "timestep %.0f, outside the %d training steps (diffusers fails here "
                            "too); use fewer steps or another spacing",
                            NAMES[s->kind], s->steps, SPACING_NAMES[s->cfg.spacing],
                            s->cfg.steps_offset, raw[i], s->T);
        s->t_int[i] = (int)raw[i];
        s->timesteps[i] = raw[i];
    }
    s->init_sigma = 1.0f;
    s->final_alpha_cumprod = s->alphas_cumprod[0];
    return SDC_OK;
}

static void build_euler(sdc_sampler *s, double *raw, double *tmp, const float *log_sigmas) {
    const int n = s->steps;
    int len;
    /* Euler's timesteps are float32 before interpolation */
    base_timesteps(s, n, raw, &len, true);
    for (int i = 0; i < len; i++) raw[i] = (double)(float)raw[i];
    for (int i = 0; i < len; i++) tmp[i] = np_interp_sigma(s->train_sigmas, s->T, raw[i]);
    if (s->cfg.karras) {
        /* in_sigmas spans numpy's whole array, overshoot included */
        double lo = tmp[len - 1], hi = tmp[0];
        karras_sigmas(lo, hi, n, tmp);
        for (int i = 0; i < n; i++) raw[i] = sigma_to_t(tmp[i], log_sigmas, s->T);
    }
    for (int i = 0; i < n; i++) {
        s->timesteps[i] = (double)(float)raw[i];
        s->sigmas[i] = (float)tmp[i];
    }
    s->sigmas[n] = 0.0f;
    float mx = 0.0f;
    for (int i = 0; i <= n; i++) mx = s->sigmas[i] > mx ? s->sigmas[i] : mx;
    /* mx is a training sigma (Karras' ends round back to theirs) */
    s->init_sigma = s->cfg.spacing == SDC_SPACING_LEADING ? sqrt_sigma2p1(s, mx) : mx;
}

static sdc_status build_dpmpp(sdc_sampler *s, double *raw, double *tmp, const float *log_sigmas) {
    const int n = s->steps, T = s->T;
    if (s->cfg.spacing == SDC_SPACING_LEADING && !s->cfg.karras && T / (n + 1) == 0)
        return sdc_fail(SDC_ERR_ARG,
                        "sampler dpmpp_2m: %d steps with leading spacing put every step at the "
                        "same timestep (step ratio %d // %d = 0; diffusers then divides by zero); "
                        "use at most %d steps or another spacing", n, T, n + 1, T - 1);
    /* lambda_min_clipped is -inf: last_timestep = T */
    switch (s->cfg.spacing) {
    case SDC_SPACING_LINSPACE:
        np_linspace0((double)(T - 1), n + 1, tmp);
        for (int i = 0; i < n; i++) raw[i] = rint(tmp[n - i]);
        break;
    case SDC_SPACING_LEADING: {
        int ratio = T / (n + 1);
        for (int i = 0; i < n; i++) raw[i] = (double)((n - i) * ratio + s->cfg.steps_offset);
        break;
    }
    case SDC_SPACING_TRAILING:
        np_arange_trailing(T, n, raw);
        for (int i = 0; i < n; i++) raw[i] = rint(raw[i]) - 1.0;
        break;
    }
    if (s->cfg.karras) {
        /* the full training range, independent of the spacing */
        karras_sigmas((double)s->train_sigmas[0], (double)s->train_sigmas[T - 1], n, tmp);
        for (int i = 0; i < n; i++) raw[i] = rint(sigma_to_t(tmp[i], log_sigmas, T));
    } else {
        for (int i = 0; i < n; i++) tmp[i] = np_interp_sigma(s->train_sigmas, T, raw[i]);
    }
    for (int i = 0; i < n; i++) {
        s->timesteps[i] = raw[i];
        s->sigmas[i] = (float)tmp[i];
    }
    s->sigmas[n] = 0.0f;
    s->init_sigma = 1.0f;
    return SDC_OK;
}

sdc_status sdc_sampler_create(sdc_sampler_kind kind, const sdc_schedule_config *cfg, int steps,
                              sdc_sampler **out) {
    *out = NULL;
    sdc_schedule_config c = cfg ? *cfg : sdc_schedule_default();
    SDC_TRY(check_config(kind, &c, steps));
    sdc_sampler *s = calloc(1, sizeof *s);
    if (!s) return sdc_fail(SDC_ERR_OOM, "sampler: out of memory");
    s->kind = kind;
    s->cfg = c;
    s->steps = steps;
    s->T = c.num_train_timesteps;
    const int T = s->T;
    bool has_sigmas = kind != SDC_SAMPLER_DDIM && kind != SDC_SAMPLER_DDPM;
    s->alphas_cumprod = malloc((size_t)T * sizeof(float));
    s->train_sigmas = malloc((size_t)T * sizeof(float));
    s->timesteps = malloc((size_t)steps * sizeof(double));
    s->t_int = calloc((size_t)steps, sizeof(int));
    s->sigmas = has_sigmas ? malloc((size_t)(steps + 1) * sizeof(float)) : NULL;
    float *log_sigmas = malloc((size_t)T * sizeof(float));
    double *raw = malloc((size_t)(T + 2) * sizeof(double));
    double *tmp = malloc((size_t)(T + 2) * sizeof(double));
    sdc_status st = SDC_OK;
    if (!s->alphas_cumprod || !s->train_sigmas || !s->timesteps || !s->t_int ||
        (has_sigmas && !s->sigmas) || !log_sigmas || !raw || !tmp) {
        st = sdc_fail(SDC_ERR_OOM, "sampler: out of memory for a %d-step schedule", steps);
        goto done;
    }
    train_schedule(s);
    for (int i = 0; i < T; i++) log_sigmas[i] = np_logf(s->train_sigmas[i]);
    switch (kind) {
    case SDC_SAMPLER_DDIM:
    case SDC_SAMPLER_DDPM: st = build_ddim_ddpm(s, raw); break;
    case SDC_SAMPLER_EULER:
    case SDC_SAMPLER_EULER_A: build_euler(s, raw, tmp, log_sigmas); break;
    case SDC_SAMPLER_DPMPP_2M: st = build_dpmpp(s, raw, tmp, log_sigmas); break;
    default: break;
    }
done:
    free(log_sigmas), free(raw), free(tmp);
    if (st != SDC_OK) {
        sdc_sampler_free(s);
        return st;
    }
    *out = s;
    return SDC_OK;
}

void sdc_sampler_free(sdc_sampler *s) {
    if (!s) return;
    free(s->alphas_cumprod), free(s->train_sigmas), free(s->timesteps), free(s->t_int);
    free(s->sigmas), free(s->x0_prev), free(s->x0_cur), free(s->noise);
    free(s);
}

int sdc_sampler_steps(const sdc_sampler *s) { return s->steps; }

double sdc_sampler_timestep(const sdc_sampler *s, int i) {
    return (i >= 0 && i < s->steps) ? s->timesteps[i] : NAN;
}

const float *sdc_sampler_sigmas(const sdc_sampler *s) { return s->sigmas; }

float sdc_sampler_init_noise_sigma(const sdc_sampler *s) { return s->init_sigma; }

const float *sdc_sampler_alphas_cumprod(const sdc_sampler *s, int *n) {
    if (n) *n = s->T;
    return s->alphas_cumprod;
}

void sdc_sampler_scale_input(const sdc_sampler *s, int i, const float *in, float *out, size_t n) {
    if ((s->kind == SDC_SAMPLER_EULER || s->kind == SDC_SAMPLER_EULER_A) && i >= 0 &&
        i < s->steps) {
        float d = sqrt_sigma2p1(s, s->sigmas[i]);
        for (size_t j = 0; j < n; j++) out[j] = in[j] / d;
    } else if (in != out) {
        memmove(out, in, n * sizeof(float));
    }
}

bool sdc_sampler_input_divisor(const sdc_sampler *s, int i, float *d) {
    if ((s->kind == SDC_SAMPLER_EULER || s->kind == SDC_SAMPLER_EULER_A) && i >= 0 && i < s->steps) {
        *d = sqrt_sigma2p1(s, s->sigmas[i]);
        return true;
    }
    *d = 1.0f;
    return false;
}

/* ---- steps -------------------------------------------------------------- */
/* Each plan_* computes the step's scalars exactly as diffusers' step does
 * (float32, its order of operations); the elementwise part is
 * sdc_latent_update_apply (src/backend/backend_cpu_latent.c) or a
 * backend's latent_update op. */

/* DDIMScheduler.step; prev_timestep = t - T // steps whatever the spacing. */
static void plan_ddim(const sdc_sampler *s, int i, sdc_step_plan *p) {
    const int t = s->t_int[i], tp = t - s->T / s->steps;
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = tp >= 0 ? s->alphas_cumprod[tp] : s->final_alpha_cumprod;
    const float beta_t = 1.0f - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(beta_t);
    /* _get_variance */
    const float beta_prev = 1.0f - a_prev;
    const float variance = (beta_prev / beta_t) * (1.0f - a_t / a_prev);
    const float std_dev = s->cfg.eta * sqrtf(variance);
    const float dir_c = sqrtf((1.0f - a_prev) - std_dev * std_dev);
    const float sap = sqrtf(a_prev);
    p->update = (sdc_latent_update){SDC_UPDATE_DDIM, s->cfg.prediction == SDC_PREDICT_V, {sa, sb, sap, dir_c}};
    p->noise = s->cfg.eta > 0.0f;
    p->noise_scale = std_dev;
}

/* DDPMScheduler.step, fixed_small variance, noise when t > 0. */
static void plan_ddpm(const sdc_sampler *s, int i, sdc_step_plan *p) {
    const int t = s->t_int[i], tp = t - s->T / s->steps;
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = tp >= 0 ? s->alphas_cumprod[tp] : 1.0f;
    const float beta_t = 1.0f - a_t, beta_prev = 1.0f - a_prev;
    const float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
    const float sa = sqrtf(a_t), sb = sqrtf(beta_t);
    const float c_x0 = (sqrtf(a_prev) * cur_beta) / beta_t;
    const float c_x = (sqrtf(cur_alpha) * beta_prev) / beta_t;
    p->update = (sdc_latent_update){SDC_UPDATE_DDPM, s->cfg.prediction == SDC_PREDICT_V, {sa, sb, c_x0, c_x}};
    p->noise = t > 0;
    if (p->noise) {
        /* _get_variance recomputes from the alphas */
        const float beta_now = 1.0f - a_t / a_prev;
        float var = ((1.0f - a_prev) / (1.0f - a_t)) * beta_now;
        if (var < 1e-20f) var = 1e-20f;
        p->noise_scale = sqrtf(var);
    }
}

/* Euler (sigma_hat == sigma: no churn) and Euler a: x0 from the model
 * output, v: model_output * (-sigma / (sigma^2 + 1)^0.5) + sample /
 * (sigma^2 + 1); then x + (x - x0) / sigma * dt. */
static void plan_euler(const sdc_sampler *s, int i, sdc_step_plan *p) {
    const float sigma = s->sigmas[i];
    const float d2 = sigma * sigma + 1.0f;
    const float c_out = -sigma / sqrt_sigma2p1(s, sigma);
    float dt;
    if (s->kind == SDC_SAMPLER_EULER) {
        const float sigma_hat = sigma * 1.0f; /* gamma = 0 */
        dt = s->sigmas[i + 1] - sigma_hat;
    } else {
        const float sf = sigma, st = s->sigmas[i + 1];
        const float sigma_up = sqrtf((st * st * (sf * sf - st * st)) / (sf * sf));
        const float sigma_down = sqrtf(st * st - sigma_up * sigma_up);
        dt = sigma_down - sigma;
        p->noise = true;
        p->noise_scale = sigma_up;
    }
    p->update = (sdc_latent_update){SDC_UPDATE_EULER, s->cfg.prediction == SDC_PREDICT_V, {sigma, c_out, d2, dt}};
}

/* _sigma_to_alpha_sigma_t and lambda = log(alpha) - log(sigma). */
static void vp(const sdc_sampler *s, float sigma, float *alpha, float *sig, float *lambda) {
    float a = 1.0f / sqrt_sigma2p1(s, sigma);
    float sg = sigma * a;
    *alpha = a, *sig = sg;
    *lambda = t_logf(a) - t_logf(sg);
}

/* DPMSolverMultistepScheduler.step, dpmsolver++ order 2 midpoint: first
 * order at the first step and (final_sigmas_type "zero") at the last. */
static void plan_dpmpp(sdc_sampler *s, int i, sdc_step_plan *p) {
    float a0, sg0, l0, at, sgt, lt;
    vp(s, s->sigmas[i], &a0, &sg0, &l0);
    vp(s, s->sigmas[i + 1], &at, &sgt, &lt);
    const bool v = s->cfg.prediction == SDC_PREDICT_V;
    const bool first_order = s->lower_order_nums < 1 || i == s->steps - 1;
    const float h = lt - l0;
    const float c_x = sgt / sg0;
    const float c_d0 = at * (t_expf(-h) - 1.0f);
    if (first_order) {
        p->update = (sdc_latent_update){SDC_UPDATE_DPM1, v, {a0, sg0, c_x, c_d0}};
    } else {
        float a1, sg1, l1;
        vp(s, s->sigmas[i - 1], &a1, &sg1, &l1);
        const float h0 = l0 - l1;
        const float r0 = h0 / h;
        const float inv_r0 = 1.0f / r0;
        const float c_d1 = 0.5f * c_d0;
        p->update = (sdc_latent_update){SDC_UPDATE_DPM2, v, {a0, sg0, c_x, c_d0, inv_r0, c_d1}};
    }
    if (s->lower_order_nums < 2) s->lower_order_nums++;
    p->keeps_x0 = true;
}

int sdc_sampler_first_step(int steps, double strength, bool a1111) {
    if (!(strength > 0.0) || strength > 1.0 || steps < 1) return -1;
    /* diffusers' get_timesteps: init_timestep = min(int(steps * strength), steps),
     * t_start = steps - init_timestep. AUTOMATIC1111 (setup_img2img_steps):
     * t_enc = int(min(strength, 0.999) * steps) steps and one more. */
    long run = a1111 ? (long)(fmin(strength, 0.999) * steps) + 1 : (long)(steps * strength);
    if (run > steps) run = steps;
    return run < 1 ? -1 : steps - (int)run;
}

void sdc_sampler_begin(sdc_sampler *s, int first) {
    s->next_step = first;
    s->lower_order_nums = 0;
    s->begun = first;
}

sdc_status sdc_sampler_add_noise(const sdc_sampler *s, int i, const float *x0, const float *noise, float *out,
                                 size_t n) {
    if (i < 0 || i >= s->steps)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: add_noise at step %d out of range (0..%d)", NAMES[s->kind], i,
                        s->steps - 1);
    switch (s->kind) {
    case SDC_SAMPLER_DDIM:
    case SDC_SAMPLER_DDPM: { /* sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise, float32 */
        const float a = s->alphas_cumprod[s->t_int[i]];
        const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
        for (size_t j = 0; j < n; j++) out[j] = sa * x0[j] + sb * noise[j];
        break;
    }
    case SDC_SAMPLER_EULER:
    case SDC_SAMPLER_EULER_A: { /* x0 + noise sigma (the step's sigma, by index) */
        const float sg = s->sigmas[i];
        for (size_t j = 0; j < n; j++) out[j] = x0[j] + noise[j] * sg;
        break;
    }
    case SDC_SAMPLER_DPMPP_2M: { /* alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t */
        const float sg = s->sigmas[i];
        const float at = 1.0f / sqrtf(sg * sg + 1.0f), st = sg * at;
        for (size_t j = 0; j < n; j++) out[j] = at * x0[j] + st * noise[j];
        break;
    }
    default: return sdc_fail(SDC_ERR_ARG, "sampler: bad kind");
    }
    return SDC_OK;
}

sdc_status sdc_sampler_plan(sdc_sampler *s, int i, sdc_step_plan *p) {
    memset(p, 0, sizeof *p);
    if (i < 0 || i >= s->steps)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: step %d out of range (0..%d)", NAMES[s->kind], i,
                        s->steps - 1);
    if (i == s->begun) { /* a new run */
        s->next_step = i;
        s->lower_order_nums = 0;
    }
    if (i != s->next_step)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: step %d taken out of order (expected %d)",
                        NAMES[s->kind], i, s->next_step);
    switch (s->kind) {
    case SDC_SAMPLER_DDIM: plan_ddim(s, i, p); break;
    case SDC_SAMPLER_DDPM: plan_ddpm(s, i, p); break;
    case SDC_SAMPLER_EULER:
    case SDC_SAMPLER_EULER_A: plan_euler(s, i, p); break;
    case SDC_SAMPLER_DPMPP_2M: plan_dpmpp(s, i, p); break;
    default: return sdc_fail(SDC_ERR_ARG, "sampler: bad kind");
    }
    s->next_step = i + 1;
    return SDC_OK;
}

sdc_status sdc_sampler_step(sdc_sampler *s, int i, const float *model_out, float *x, size_t n,
                            sdc_rng *rng) {
    if (i < 0 || i >= s->steps)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: step %d out of range (0..%d)", NAMES[s->kind], i,
                        s->steps - 1);
    if (i != s->begun && i != s->next_step)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: step %d taken out of order (expected %d)",
                        NAMES[s->kind], i, s->next_step);
    if (n == 0) return sdc_fail(SDC_ERR_ARG, "sampler %s: empty latent", NAMES[s->kind]);
    if (i == s->begun && n != s->buf_n) {
        free(s->x0_prev), free(s->x0_cur), free(s->noise);
        s->x0_prev = s->x0_cur = s->noise = NULL;
        s->buf_n = 0;
        bool dpm = s->kind == SDC_SAMPLER_DPMPP_2M;
        s->noise = malloc(n * sizeof(float));
        s->x0_prev = dpm ? malloc(n * sizeof(float)) : NULL;
        s->x0_cur = dpm ? malloc(n * sizeof(float)) : NULL;
        if (!s->noise || (dpm && (!s->x0_prev || !s->x0_cur)))
            return sdc_fail(SDC_ERR_OOM, "sampler %s: out of memory for %zu latent values",
                            NAMES[s->kind], n);
        s->buf_n = n;
    }
    if (n != s->buf_n)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: latent size changed within a run (%zu, was %zu)",
                        NAMES[s->kind], n, s->buf_n);
    sdc_step_plan p;
    SDC_TRY(sdc_sampler_plan(s, i, &p));
    if (p.noise && !rng)
        return sdc_fail(SDC_ERR_ARG, "sampler %s: this step adds noise and needs a generator",
                        NAMES[s->kind]);
    sdc_latent_update_apply(&p.update, x, model_out, s->x0_cur, s->x0_prev, n);
    if (p.noise) {
        sdc_rng_randn(rng, s->noise, n);
        for (size_t j = 0; j < n; j++) x[j] = x[j] + p.noise_scale * s->noise[j];
    }
    if (p.keeps_x0) {
        float *t = s->x0_cur;
        s->x0_cur = s->x0_prev, s->x0_prev = t;
    }
    return SDC_OK;
}
