/* test_scheduler.c - the samplers against diffusers 0.31.0
 * (tools/fixtures_scheduler.py -> tests/fixtures/scheduler_reference.safetensors).
 *
 * Tolerances, and why:
 *   - training schedule (alphas_cumprod), timesteps, sigmas and
 *     init_noise_sigma: bit-identical, tolerance 0, for every sampler,
 *     spacing and Karras choice. torch computes the training sigmas'
 *     square roots (and sqrt(sigma^2 + 1) for init_noise_sigma) on the CPU
 *     with MKL's VML, which is not correctly rounded (19% of the 1000
 *     sigmas are 1 ulp from sqrtf); for SD's default schedule sdc uses
 *     torch's own values (src/sampling/scheduler_tables.h, from
 *     tools/fixtures_scheduler.py --c-tables).
 *   - one step from the reference sample x_k (and, for DPM++ 2M, the
 *     reference x_{k-1} for its history): normwise relative error
 *     max|diff| / max|ref| <= 1e-6 (tol_one_step). The residue is the
 *     steps' other 0-dim float32 coefficients: torch's sqrt, log and exp
 *     of a 0-dim tensor also go through MKL's VML (<= 1 ulp from
 *     correctly rounded), and those are not tabled.
 *   - whole sequences (sdc's own chain, up to 50 steps): <= 1e-5
 *     (tol_chain): the one-step differences above carried along.
 *   - initial latents (noise * init_noise_sigma): bit-identical;
 *     scale_model_input <= tol_one_step (sqrt(sigma^2 + 1) is torch's only
 *     where sigma is a training sigma).
 * With sqrt, log and exp made correctly rounded on the torch side
 * (tools/fixtures_scheduler.py --exact-math), sdc with cfg.correctly_rounded
 * (no tables) is bit-identical to diffusers everywhere:
 * SDC_SCHEDULER_REF=build/scheduler_exact.safetensors runs this suite
 * against that fixture with every tolerance zero. --sweep (optionally with
 * --exact-math) writes schedules only, 5,439 of them (every step count to
 * 250 and some to 999): point SDC_SCHEDULER_REF at it and run
 * 'scheduler/schedules' (the run tests skip a sweep).
 * Samplers that add noise (DDPM, Euler a, DDIM eta > 0) draw it from
 * sdc_rng seeded like the reference's torch.Generator, so those runs also
 * check that src/sampling/rng.c reproduces torch's stream. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/rng.h"
#include "sampling/scheduler.h"
#include "testutil.h"

#define REF_DEFAULT FIXTURES "/scheduler_reference.safetensors"
#define NUMEL 256
#define BANK 5

/* Tolerances for the fixture in use (zero for an --exact-math one, whose
 * cases sdc builds with cfg.correctly_rounded). Schedules have none. */
static double tol_one_step = 1e-6, tol_chain = 1e-5;
static bool exact_math = false; /* fixture made with correctly rounded torch math */
static bool sweep = false;      /* schedules only (--sweep) */
static const char *REF = REF_DEFAULT;

static sdc_st_file *open_ref(void) {
    const char *env = getenv("SDC_SCHEDULER_REF");
    REF = env && *env ? env : REF_DEFAULT;
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(REF, &f), SDC_OK, "%s (regenerate with tools/fixtures_scheduler.py)",
                 sdc_last_error());
    const char *math = sdc_st_meta(f, "math");
    exact_math = math && strcmp(math, "correctly-rounded") == 0;
    if (exact_math) tol_one_step = tol_chain = 0.0;
    const char *kind = sdc_st_meta(f, "kind");
    sweep = kind && strcmp(kind, "sweep") == 0;
    return f;
}

static cJSON *meta_json(const sdc_st_file *f, const char *key) {
    const char *s = sdc_st_meta(f, key);
    cr_assert(s, "%s: metadata %s missing", REF, key);
    cJSON *j = cJSON_Parse(s);
    cr_assert(cJSON_IsArray(j), "%s: metadata %s is not a JSON list", REF, key);
    return j;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "case field %s missing", k);
    return v->valuestring;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "case field %s missing", k);
    return v->valuedouble;
}

static bool jbool(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsBool(v), "case field %s missing", k);
    return cJSON_IsTrue(v);
}

static sdc_spacing parse_spacing(const char *s) {
    if (strcmp(s, "leading") == 0) return SDC_SPACING_LEADING;
    if (strcmp(s, "trailing") == 0) return SDC_SPACING_TRAILING;
    cr_assert_str_eq(s, "linspace");
    return SDC_SPACING_LINSPACE;
}

/* The sampler a fixture case describes. */
static sdc_sampler *case_sampler(const cJSON *c, sdc_sampler_kind *kind_out) {
    sdc_sampler_kind kind;
    cr_assert_eq(sdc_sampler_parse(jstr(c, "sampler"), &kind), SDC_OK, "%s", sdc_last_error());
    sdc_schedule_config cfg = sdc_schedule_default();
    cfg.spacing = parse_spacing(jstr(c, "spacing"));
    cfg.karras = jbool(c, "karras");
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(c, "prediction");
    if (pred) cfg.prediction = strcmp(pred->valuestring, "v") == 0 ? SDC_PREDICT_V : SDC_PREDICT_EPSILON;
    const cJSON *eta = cJSON_GetObjectItemCaseSensitive(c, "eta");
    if (eta) cfg.eta = (float)eta->valuedouble;
    cfg.correctly_rounded = exact_math;
    sdc_sampler *s = NULL;
    cr_assert_eq(sdc_sampler_create(kind, &cfg, (int)jnum(c, "steps"), &s), SDC_OK, "%s: %s",
                 jstr(c, "name"), sdc_last_error());
    if (kind_out) *kind_out = kind;
    return s;
}

static const sdc_st_tensor *find(const sdc_st_file *f, const char *fmt, const char *name) {
    char key[256];
    snprintf(key, sizeof key, fmt, name);
    const sdc_st_tensor *t = sdc_st_find(f, key);
    cr_assert(t, "%s: tensor %s missing", REF, key);
    return t;
}

static int ulp_diff(float a, float b) {
    if (a == b) return 0;
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0)) return 1 << 30;
    return abs(ia - ib);
}

Test(scheduler, names_and_parse) {
    const char *names[] = {"ddim", "ddpm", "euler", "euler_a", "dpmpp_2m"};
    const char *disp[] = {"DDIM", "DDPM", "Euler", "Euler a", "DPM++ 2M"};
    for (int k = 0; k < SDC_SAMPLER_COUNT; k++) {
        sdc_sampler_kind got;
        cr_assert_str_eq(sdc_sampler_name((sdc_sampler_kind)k), names[k]);
        cr_assert_str_eq(sdc_sampler_display_name((sdc_sampler_kind)k), disp[k]);
        cr_assert_eq(sdc_sampler_parse(names[k], &got), SDC_OK);
        cr_assert_eq((int)got, k);
    }
    sdc_sampler_kind got;
    cr_assert_eq(sdc_sampler_parse("heun", &got), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "heun") && strstr(sdc_last_error(), "dpmpp_2m"), "%s",
              sdc_last_error());
    cr_assert_eq(sdc_sampler_parse("Euler", &got), SDC_ERR_ARG);
    cr_assert(sdc_sampler_supports_karras(SDC_SAMPLER_EULER));
    cr_assert(sdc_sampler_supports_karras(SDC_SAMPLER_DPMPP_2M));
    cr_assert(!sdc_sampler_supports_karras(SDC_SAMPLER_EULER_A));
    cr_assert(!sdc_sampler_supports_karras(SDC_SAMPLER_DDIM));
}

Test(scheduler, errors) {
    sdc_schedule_config cfg = sdc_schedule_default();
    sdc_sampler *s = (sdc_sampler *)&cfg; /* must be reset to NULL on failure */
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_EULER, &cfg, 0, &s), SDC_ERR_ARG);
    cr_assert_null(s);
    cr_assert(strstr(sdc_last_error(), "0 steps"), "%s", sdc_last_error());
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_EULER, &cfg, 1001, &s), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "1001 steps"), "%s", sdc_last_error());
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_COUNT, &cfg, 20, &s), SDC_ERR_ARG);
    cfg.karras = true;
    const sdc_sampler_kind no_karras[] = {SDC_SAMPLER_DDIM, SDC_SAMPLER_DDPM, SDC_SAMPLER_EULER_A};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(sdc_sampler_create(no_karras[k], &cfg, 20, &s), SDC_ERR_ARG);
        cr_assert(strstr(sdc_last_error(), "Karras") &&
                      strstr(sdc_last_error(), sdc_sampler_name(no_karras[k])),
                  "%s", sdc_last_error());
    }
    cfg = sdc_schedule_default();
    cfg.eta = 0.5f;
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_EULER, &cfg, 20, &s), SDC_ERR_ARG);
    cfg.eta = -1.0f;
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_DDIM, &cfg, 20, &s), SDC_ERR_ARG);
    /* leading + offset 1 with 1000 steps reaches t = 1000 (diffusers fails too) */
    cfg = sdc_schedule_default();
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_DDIM, &cfg, 1000, &s), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "timestep 1000"), "%s", sdc_last_error());
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_DPMPP_2M, &cfg, 1000, &s), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "same timestep"), "%s", sdc_last_error());
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_DPMPP_2M, &cfg, 999, &s), SDC_OK);
    sdc_sampler_free(s);
    cfg.spacing = SDC_SPACING_TRAILING;
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_DDIM, &cfg, 1000, &s), SDC_OK, "%s",
                 sdc_last_error());
    /* steps out of order; noise without a generator */
    float x[4] = {0}, m[4] = {0};
    cr_assert_eq(sdc_sampler_step(s, 1, m, x, 4, NULL), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "out of order"), "%s", sdc_last_error());
    cr_assert_eq(sdc_sampler_step(s, 1000, m, x, 4, NULL), SDC_ERR_ARG);
    sdc_sampler_free(s);
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_EULER_A, NULL, 4, &s), SDC_OK);
    cr_assert_eq(sdc_sampler_step(s, 0, m, x, 4, NULL), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "generator"), "%s", sdc_last_error());
    sdc_sampler_free(s);
    sdc_sampler_free(NULL);
}

Test(scheduler, training_schedule) {
    sdc_st_file *f = open_ref();
    size_t n;
    float *ac = ref_tensor(f, "alphas_cumprod", &n);
    cr_assert_eq(n, 1000);
    for (int k = 0; k < SDC_SAMPLER_COUNT; k++) {
        sdc_sampler *s = NULL;
        cr_assert_eq(sdc_sampler_create((sdc_sampler_kind)k, NULL, 20, &s), SDC_OK);
        int T;
        const float *got = sdc_sampler_alphas_cumprod(s, &T);
        cr_assert_eq(T, 1000);
        for (int i = 0; i < T; i++)
            cr_assert(got[i] == ac[i], "alphas_cumprod[%d]: %.9g, diffusers %.9g", i,
                      (double)got[i], (double)ac[i]);
        sdc_sampler_free(s);
    }
    free(ac);
    sdc_st_close(f);
}

/* torch's tables serve SD's schedule only, and not with correctly_rounded:
 * then (and for any other betas) sdc computes the sigmas, within 1 ulp of
 * torch's. Euler, leading, 999 steps: sigmas are training sigmas 999..1. */
Test(scheduler, torch_tables) {
    const float beta_ends[] = {0.012f, 0.0121f};
    for (int b = 0; b < 2; b++) {
        sdc_schedule_config cfg = sdc_schedule_default();
        cfg.beta_end = beta_ends[b];
        sdc_sampler *tab = NULL, *cr = NULL;
        cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_EULER, &cfg, 999, &tab), SDC_OK);
        cfg.correctly_rounded = true;
        cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_EULER, &cfg, 999, &cr), SDC_OK);
        const float *a = sdc_sampler_sigmas(tab), *c = sdc_sampler_sigmas(cr);
        int differ = 0;
        for (int i = 0; i <= 999; i++) {
            int u = ulp_diff(a[i], c[i]);
            cr_assert(u <= 1, "sigma[%d]: %.9g (torch) vs %.9g (correctly rounded)", i,
                      (double)a[i], (double)c[i]);
            differ += u;
        }
        int iu = ulp_diff(sdc_sampler_init_noise_sigma(tab), sdc_sampler_init_noise_sigma(cr));
        if (b == 0) {
            /* 190 of the 1000 table sigmas are 1 ulp from sqrtf */
            cr_assert(differ > 100, "torch's sigma table not in use (%d differ)", differ);
            cr_assert(iu <= 2);
        } else {
            cr_assert(differ == 0 && iu == 0, "tables used for another schedule (%d differ)",
                      differ);
        }
        sdc_sampler_free(tab), sdc_sampler_free(cr);
    }
}

static float *ref_f32(const sdc_st_file *f, const char *fmt, const char *name, size_t *n) {
    char key[256];
    snprintf(key, sizeof key, fmt, name);
    return ref_tensor(f, key, n);
}

/* Timesteps, sigmas and init_noise_sigma, bit for bit (tolerance 0), for
 * every sampler, spacing and Karras choice at 12 step counts (a --sweep
 * fixture: 259). */
Test(scheduler, schedules) {
    sdc_st_file *f = open_ref();
    cJSON *cases = meta_json(f, "schedules");
    int n_cases = 0, n_values = 0, quirks = 0, n_t_diff = 0, n_sig = 0, n_sig_all = 0, n_init = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = jstr(c, "name");
        sdc_sampler_kind kind;
        sdc_sampler *s = case_sampler(c, &kind);
        const int n = (int)jnum(c, "steps");
        cr_assert_eq(sdc_sampler_steps(s), n);
        /* numpy's trailing arange overshoot: diffusers has one more
         * timestep (-1); sdc keeps the n that were asked for */
        if ((int)jnum(c, "diffusers_len") != n) quirks++;
        const sdc_st_tensor *tt = find(f, "sched/%s/timesteps", name);
        cr_assert(tt->dtype == SDC_DT_F64 && tt->numel == n, "%s: timesteps shape", name);
        for (int i = 0; i < n; i++) {
            double ref;
            memcpy(&ref, (const char *)tt->data + (size_t)i * 8, 8);
            double got = sdc_sampler_timestep(s, i);
            n_t_diff += got != ref;
            cr_assert(got == ref, "%s: timestep[%d] = %.17g, diffusers %.17g", name, i, got, ref);
        }
        const float *sig = sdc_sampler_sigmas(s);
        if (kind == SDC_SAMPLER_DDIM || kind == SDC_SAMPLER_DDPM) {
            cr_assert_null(sig, "%s: sigmas", name);
        } else {
            size_t ns;
            float *ref = ref_f32(f, "sched/%s/sigmas", name, &ns);
            cr_assert_eq(ns, (size_t)n + 1);
            cr_assert_not_null(sig);
            for (int i = 0; i <= n; i++) {
                int u = ulp_diff(sig[i], ref[i]);
                n_sig += u != 0, n_sig_all++;
                cr_assert(u == 0, "%s: sigma[%d] = %.9g, diffusers %.9g (%d ulp)", name, i,
                          (double)sig[i], (double)ref[i], u);
            }
            free(ref);
        }
        float *ini = ref_f32(f, "sched/%s/init_sigma", name, NULL);
        int iu = ulp_diff(sdc_sampler_init_noise_sigma(s), ini[0]);
        n_init += iu != 0;
        cr_assert(iu == 0, "%s: init_noise_sigma %.9g, diffusers %.9g (%d ulp)", name,
                  (double)sdc_sampler_init_noise_sigma(s), (double)ini[0], iu);
        free(ini);
        n_values += n;
        sdc_sampler_free(s);
        n_cases++;
    }
    fprintf(stderr, "scheduler (%s%s): %d schedules, %d timesteps (%d differ); sigmas: %d of %d "
                    "differ; init_noise_sigma: %d differ; %d with numpy's trailing overshoot\n",
            exact_math ? "correctly rounded" : "torch math", sweep ? ", sweep" : "", n_cases,
            n_values, n_t_diff, n_sig, n_sig_all, n_init, quirks);
    cJSON_Delete(cases);
    sdc_st_close(f);
}

static bool in_keep(const cJSON *keep, int k, int *row) {
    int r = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, keep) {
        if ((int)v->valuedouble == k) {
            if (row) *row = r;
            return true;
        }
        r++;
    }
    return false;
}

/* The stream position after the pipeline's initial latents. */
static void rng_after_latents(sdc_rng *r, const float *noise_ref) {
    float first[NUMEL];
    sdc_rng_seed(r, 1234);
    sdc_rng_randn(r, first, NUMEL);
    cr_assert(memcmp(first, noise_ref, sizeof first) == 0,
              "sdc_rng(1234) does not reproduce torch.randn's first draw (src/sampling/rng.c)");
}

typedef struct run_stats {
    int runs, steps_checked;
    double one_step, chain, scale;
} run_stats;

/* One fixture run: the chain (sdc's own samples throughout) and the
 * one-step check (each step from diffusers' sample). */
static void check_run(const sdc_st_file *f, const cJSON *c, const float *noise, const float *bank,
                      run_stats *rs) {
    const char *name = jstr(c, "name");
    const cJSON *keep = cJSON_GetObjectItemCaseSensitive(c, "keep");
    cr_assert(cJSON_IsArray(keep));
    sdc_sampler_kind kind;
    sdc_sampler *s = case_sampler(c, &kind);
    const int n = sdc_sampler_steps(s);
    const bool noisy = kind == SDC_SAMPLER_DDPM || kind == SDC_SAMPLER_EULER_A ||
                       (kind == SDC_SAMPLER_DDIM && jnum(c, "eta") > 0);
    size_t nx;
    float *xref = ref_f32(f, "run/%s/x", name, &nx);
    cr_assert_eq(nx, (size_t)cJSON_GetArraySize(keep) * NUMEL);
    float *scaled0 = ref_f32(f, "run/%s/scaled0", name, NULL);
    float x[NUMEL], tmp[NUMEL];
    sdc_rng rng;
    for (int mode = 0; mode < 2; mode++) { /* 0: chain, 1: one step */
        if (noisy) rng_after_latents(&rng, noise);
        const float sig = sdc_sampler_init_noise_sigma(s);
        for (int j = 0; j < NUMEL; j++) x[j] = noise[j] * sig;
        if (mode == 0) {
            /* init_noise_sigma is diffusers' bit for bit, so are these */
            double e0 = max_rel_err(x, xref, NUMEL, NULL);
            cr_assert(memcmp(x, xref, sizeof x) == 0, "%s: initial latents differ (%.3g)", name,
                      e0);
            sdc_sampler_scale_input(s, 0, x, tmp, NUMEL);
            double e1 = max_rel_err(tmp, scaled0, NUMEL, NULL);
            cr_assert(e1 <= tol_one_step, "%s: scale_model_input differs (%.3g)", name, e1);
            rs->scale = fmax(rs->scale, fmax(e0, e1));
        }
        for (int k = 0; k < n; k++) {
            int row;
            bool from_ref = mode == 1 && in_keep(keep, k, &row);
            if (from_ref) memcpy(x, xref + (size_t)row * NUMEL, sizeof x);
            cr_assert_eq(sdc_sampler_step(s, k, bank + (size_t)(k % BANK) * NUMEL, x, NUMEL,
                                          noisy ? &rng : NULL),
                         SDC_OK, "%s step %d: %s", name, k, sdc_last_error());
            if (!in_keep(keep, k + 1, &row)) continue;
            /* one step counts only where the history is diffusers' too */
            if (mode == 1 && !(from_ref && (k == 0 || in_keep(keep, k - 1, NULL)))) continue;
            const float *ref = xref + (size_t)row * NUMEL;
            size_t worst;
            double e = max_rel_err(x, ref, NUMEL, &worst);
            double tol = mode == 0 ? tol_chain : tol_one_step;
            if (!(e <= tol)) print_mismatches(name, x, ref, NUMEL, tol, 5);
            cr_assert(e <= tol, "%s (%s) step %d of %d: max rel err %.3g > %.1g (at %zu: %.9g vs %.9g)",
                      name, mode == 0 ? "chain" : "one step", k, n, e, tol, worst, (double)x[worst],
                      (double)ref[worst]);
            if (mode == 0) {
                rs->chain = fmax(rs->chain, e);
            } else {
                rs->one_step = fmax(rs->one_step, e);
                rs->steps_checked++;
            }
        }
    }
    rs->runs++;
    free(xref), free(scaled0);
    sdc_sampler_free(s);
}

static void runs_for(const char *sampler) {
    sdc_st_file *f = open_ref();
    if (sweep) { /* schedules only */
        fprintf(stderr, "scheduler %s: %s is a sweep without runs\n", sampler, REF);
        sdc_st_close(f);
        return;
    }
    cJSON *cases = meta_json(f, "runs");
    size_t nn, nb;
    float *noise = ref_tensor(f, "noise", &nn), *bank = ref_tensor(f, "model_out", &nb);
    cr_assert_eq(nn, NUMEL);
    cr_assert_eq(nb, (size_t)BANK * NUMEL);
    run_stats rs = {0};
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (strcmp(jstr(c, "sampler"), sampler) == 0) check_run(f, c, noise, bank, &rs);
    }
    cr_assert(rs.runs > 0);
    fprintf(stderr, "scheduler %s: %d runs, %d one-step checks, max rel err one step %.2e, "
                    "chain %.2e, latents/scale_input %.2e\n", sampler, rs.runs, rs.steps_checked,
            rs.one_step, rs.chain, rs.scale);
    free(noise), free(bank);
    cJSON_Delete(cases);
    sdc_st_close(f);
}

Test(scheduler, ddim) { runs_for("ddim"); }
Test(scheduler, ddpm) { runs_for("ddpm"); }
Test(scheduler, euler) { runs_for("euler"); }
Test(scheduler, euler_a) { runs_for("euler_a"); }
Test(scheduler, dpmpp_2m) { runs_for("dpmpp_2m"); }

/* A sampler serves several images: step 0 starts over (DPM++ history
 * included), and deterministic samplers never touch the generator. */
Test(scheduler, restart_and_no_rng) {
    sdc_st_file *f = open_ref();
    size_t nb;
    float *bank = ref_tensor(f, "model_out", &nb);
    sdc_sampler *s = NULL;
    cr_assert_eq(sdc_sampler_create(SDC_SAMPLER_DPMPP_2M, NULL, 6, &s), SDC_OK);
    float a[NUMEL], b[NUMEL];
    for (int rep = 0; rep < 2; rep++) {
        float *x = rep == 0 ? a : b;
        for (int j = 0; j < NUMEL; j++) x[j] = bank[j] * 3.0f;
        for (int k = 0; k < 6; k++)
            cr_assert_eq(sdc_sampler_step(s, k, bank + (size_t)((k + 1) % BANK) * NUMEL, x, NUMEL,
                                          NULL), SDC_OK, "%s", sdc_last_error());
    }
    cr_assert(memcmp(a, b, sizeof a) == 0, "second run differs from the first");
    sdc_sampler_free(s);
    free(bank);
    sdc_st_close(f);
}

/* Image to image's step count. diffusers: the last int(steps * strength)
 * steps, computed in double (0.7 * 10 = 7.000000000000001 -> 7; in float
 * 0.7f * 10 = 6.99999988 would give 6); AUTOMATIC1111: int(min(strength,
 * 0.999) * steps) + 1, at most steps. -1: nothing would run. */
Test(scheduler, img2img_first_step) {
    cr_assert_eq(sdc_sampler_first_step(10, 0.7, false), 3);
    cr_assert_eq(sdc_sampler_first_step(10, 0.7, true), 2);
    cr_assert_eq(sdc_sampler_first_step(10, 0.3, false), 7);
    cr_assert_eq(sdc_sampler_first_step(20, 1.0, false), 0);
    cr_assert_eq(sdc_sampler_first_step(20, 1.0, true), 0);
    cr_assert_eq(sdc_sampler_first_step(4, 0.75, false), 1);
    cr_assert_eq(sdc_sampler_first_step(4, 0.1, false), -1);
    cr_assert_eq(sdc_sampler_first_step(4, 0.1, true), 3);
    cr_assert_eq(sdc_sampler_first_step(4, 0.0, false), -1);
    cr_assert_eq(sdc_sampler_first_step(4, 1.5, false), -1);
    cr_assert_eq(sdc_sampler_first_step(4, NAN, false), -1);
}
