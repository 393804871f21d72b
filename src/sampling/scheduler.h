/* scheduler.h - the samplers, outside the model: they see only latents and
 * the model's output. Each matches its diffusers scheduler for SD's config
 * (1000 training steps, scaled_linear betas 0.00085..0.012), in float32 with
 * diffusers' order of operations.
 *
 * Latents here are flat float arrays in NCHW order (batch, 4, h, w): the
 * order torch draws noise in, so ancestral noise matches diffusers. */
#ifndef SDC_SCHEDULER_H
#define SDC_SCHEDULER_H

#include "common.h"
#include "backend/backend.h"
#include "sampling/rng.h"

typedef enum sdc_sampler_kind {
    SDC_SAMPLER_DDIM = 0,   /* DDIMScheduler (eta >= 0) */
    SDC_SAMPLER_DDPM,       /* DDPMScheduler, fixed_small variance */
    SDC_SAMPLER_EULER,      /* EulerDiscreteScheduler */
    SDC_SAMPLER_EULER_A,    /* EulerAncestralDiscreteScheduler */
    SDC_SAMPLER_DPMPP_2M,   /* DPMSolverMultistepScheduler, dpmsolver++ order 2, midpoint */
    SDC_SAMPLER_COUNT
} sdc_sampler_kind;

typedef enum sdc_spacing {
    SDC_SPACING_LEADING = 0, /* SD's default, with steps_offset 1 */
    SDC_SPACING_TRAILING,
    SDC_SPACING_LINSPACE,
} sdc_spacing;

typedef enum sdc_pred_type {
    SDC_PREDICT_EPSILON = 0,
    SDC_PREDICT_V,
} sdc_pred_type;

typedef struct sdc_schedule_config {
    int num_train_timesteps;   /* 1000 */
    float beta_start;          /* 0.00085 */
    float beta_end;            /* 0.012, scaled_linear */
    sdc_spacing spacing;       /* leading */
    int steps_offset;          /* 1 */
    bool karras;               /* Karras sigmas (Euler, Euler a, DPM++ 2M as diffusers allows) */
    sdc_pred_type prediction;  /* epsilon or v */
    float eta;                 /* DDIM only: 0 = deterministic */
    /* false (the default): for SD's training schedule (1000 steps, betas
     * 0.00085..0.012) use torch's own float32 values where its CPU math is
     * not correctly rounded (src/sampling/scheduler_tables.h), so timesteps, sigmas
     * and init_noise_sigma are diffusers' bit for bit. true: correctly
     * rounded math throughout, as for any other schedule (matches a
     * diffusers run with correctly rounded torch math: the --exact-math
     * fixtures of tools/fixtures_scheduler.py). */
    bool correctly_rounded;
} sdc_schedule_config;

/* SD's config: 1000, 0.00085, 0.012, leading, offset 1, no Karras, epsilon,
 * eta 0, torch's values (correctly_rounded false). */
sdc_schedule_config sdc_schedule_default(void);

typedef struct sdc_sampler sdc_sampler;

/* Names as the CLI takes them: "ddim" "ddpm" "euler" "euler_a" "dpmpp_2m". */
const char *sdc_sampler_name(sdc_sampler_kind k);
/* Display names for the PNG parameters (AUTOMATIC1111 style: "DDIM",
 * "DDPM", "Euler", "Euler a", "DPM++ 2M", with " Karras" appended by the
 * caller's choice). */
const char *sdc_sampler_display_name(sdc_sampler_kind k);
/* -1 and an error naming the valid choices when unknown. */
sdc_status sdc_sampler_parse(const char *name, sdc_sampler_kind *out);

/* A sampler for `steps` inference steps (steps >= 1, <= num_train_timesteps;
 * Karras only where the sampler supports it, else SDC_ERR_ARG). */
sdc_status sdc_sampler_create(sdc_sampler_kind kind, const sdc_schedule_config *cfg,
                              int steps, sdc_sampler **out);
void sdc_sampler_free(sdc_sampler *s);

int sdc_sampler_steps(const sdc_sampler *s);
/* The timestep passed to the U-Net at step i (0-based), as diffusers passes
 * it (a float: Euler with Karras sigmas interpolates). */
double sdc_sampler_timestep(const sdc_sampler *s, int i);
/* The sigmas (Euler, Euler a, DPM++ 2M) for steps 0..steps (last is 0);
 * NULL for DDPM/DDIM. */
const float *sdc_sampler_sigmas(const sdc_sampler *s);

/* Scale of the initial noise: latents = randn * init_noise_sigma. */
float sdc_sampler_init_noise_sigma(const sdc_sampler *s);

/* Whether diffusers 0.31 offers Karras sigmas for this sampler (Euler and
 * DPM++ 2M; EulerAncestralDiscreteScheduler has no use_karras_sigmas). */
bool sdc_sampler_supports_karras(sdc_sampler_kind k);

/* The training schedule's cumulative alpha products (num_train_timesteps
 * floats, bit-identical to diffusers' alphas_cumprod); *n (may be NULL)
 * gets the count. */
const float *sdc_sampler_alphas_cumprod(const sdc_sampler *s, int *n);

/* Input scaling before the U-Net at step i (Euler family: x / sqrt(sigma^2
 * + 1); identity for DDIM/DDPM). in and out may alias. n = latent size. */
void sdc_sampler_scale_input(const sdc_sampler *s, int i, const float *in, float *out, size_t n);

/* Euler family: the U-Net input at step i is x / d (true, and *d); others
 * take x as it is (false, *d = 1). The same division as
 * sdc_sampler_scale_input, for a backend's scale op. */
bool sdc_sampler_input_divisor(const sdc_sampler *s, int i, float *d);

/* A step as data: the elementwise update (backend.h) and, when the
 * sampler adds noise at this step, its scale: x += noise_scale * noise,
 * noise = n normals drawn from the job's generator right after the update
 * (NCHW order). keeps_x0 (DPM++): the update writes this step's data
 * prediction (x0_out) and reads the previous one (x0_prev); the caller
 * swaps the two buffers after each step. */
typedef struct sdc_step_plan {
    sdc_latent_update update;
    bool noise;
    float noise_scale;
    bool keeps_x0;
} sdc_step_plan;

/* Plan step i (in order 0, 1, ...; step 0 starts a new run): what
 * sdc_sampler_step computes, for a backend to apply where the latents
 * live. The scalars are the host step's, bit for bit. */
sdc_status sdc_sampler_plan(sdc_sampler *s, int i, sdc_step_plan *p);

/* Image to image: the first step that runs for a strength (0 < strength
 * <= 1) of `steps`, as diffusers' get_timesteps counts it (the last
 * int(steps * strength) steps run), or AUTOMATIC1111's count when a1111
 * (one more: int(min(strength, 0.999) * steps) + 1, at most steps); -1
 * when no step would run or strength is out of range. */
int sdc_sampler_first_step(int steps, double strength, bool a1111);
/* Runs start at step `first` from now on (diffusers' set_begin_index):
 * sdc_sampler_plan(s, first, ...) starts a new run, multistep history
 * empty. 0 is the default. */
void sdc_sampler_begin(sdc_sampler *s, int first);
/* The scheduler's add_noise to step i's noise level, as diffusers does it
 * for image to image and inpainting (float32): DDIM / DDPM
 * sqrt(acp[t_i]) x0 + sqrt(1 - acp[t_i]) noise; Euler, Euler a x0 + sigma_i
 * noise; DPM++ (x0 + sigma_i noise) / sqrt(sigma_i^2 + 1) as alpha_t x0 +
 * sigma_t noise. out may alias x0 or noise. */
sdc_status sdc_sampler_add_noise(const sdc_sampler *s, int i, const float *x0, const float *noise, float *out,
                                 size_t n);

/* One step: x (n floats, NCHW) is replaced by the previous sample given the
 * model output at step i (after classifier-free guidance). Samplers that add
 * noise draw n normals from rng with sdc_rng_randn in the same order and at
 * the same point as diffusers' pipeline (DDPM when t > 0, Euler a at every
 * step, DDIM when eta > 0; the others never touch rng, which may then be
 * NULL). Steps must be taken in order 0, 1, ..., steps-1 (multistep
 * samplers keep history); step 0 starts a new run, so one sampler serves
 * several images in turn. n must stay the same within a run. */
sdc_status sdc_sampler_step(sdc_sampler *s, int i, const float *model_out, float *x, size_t n,
                            sdc_rng *rng);

#endif
