/* backend_cpu_latent.c - the CPU backend's ops of the denoising loop: the
 * time embedding, guidance, the sampler update and its noise. These are
 * the loops pipeline.c and scheduler.c ran on the host before they became
 * backend ops, in the same order of operations, so results are unchanged
 * bit for bit. Serial: each touches a few latent-sized vectors per step. */
#include <math.h>
#include <string.h>

#include "backend/backend_cpu.h"

void sdc_latent_update_apply(const sdc_latent_update *u, float *x, const float *mo, float *x0_out,
                             const float *x0_prev, size_t n) {
    const float *c = u->c;
    const bool v = u->v;
    switch (u->kind) {
    case SDC_UPDATE_DDIM:
        for (size_t j = 0; j < n; j++) {
            float x0, eps;
            if (v) {
                x0 = c[0] * x[j] - c[1] * mo[j];
                eps = c[0] * mo[j] + c[1] * x[j];
            } else {
                x0 = (x[j] - c[1] * mo[j]) / c[0];
                eps = mo[j];
            }
            x[j] = c[2] * x0 + c[3] * eps;
        }
        break;
    case SDC_UPDATE_DDPM:
        for (size_t j = 0; j < n; j++) {
            float x0 = v ? c[0] * x[j] - c[1] * mo[j] : (x[j] - c[1] * mo[j]) / c[0];
            x[j] = c[2] * x0 + c[3] * x[j];
        }
        break;
    case SDC_UPDATE_EULER:
        for (size_t j = 0; j < n; j++) {
            float x0 = v ? mo[j] * c[1] + x[j] / c[2] : x[j] - c[0] * mo[j];
            float deriv = (x[j] - x0) / c[0];
            x[j] = x[j] + deriv * c[3];
        }
        break;
    case SDC_UPDATE_DPM1:
    case SDC_UPDATE_DPM2:
        for (size_t j = 0; j < n; j++) x0_out[j] = v ? c[0] * x[j] - c[1] * mo[j] : (x[j] - c[1] * mo[j]) / c[0];
        if (u->kind == SDC_UPDATE_DPM1) {
            for (size_t j = 0; j < n; j++) x[j] = c[2] * x[j] - c[3] * x0_out[j];
        } else {
            for (size_t j = 0; j < n; j++) {
                float d1 = c[4] * (x0_out[j] - x0_prev[j]);
                x[j] = (c[2] * x[j] - c[3] * x0_out[j]) - c[5] * d1;
            }
        }
        break;
    }
}

void sdc_latent_update_x0(const sdc_latent_update *u, const float *x, const float *mo, float *x0, size_t n) {
    const float *c = u->c;
    const bool v = u->v;
    for (size_t j = 0; j < n; j++) {
        if (u->kind == SDC_UPDATE_EULER) x0[j] = v ? mo[j] * c[1] + x[j] / c[2] : x[j] - c[0] * mo[j];
        else x0[j] = v ? c[0] * x[j] - c[1] * mo[j] : (x[j] - c[1] * mo[j]) / c[0]; /* DDIM, DDPM, DPM */
    }
}

sdc_status sdc_cpu_timestep_embedding(sdc_backend *be, sdc_buf yb, int rows, int dim, double t) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("timestep_embedding", 1, &yb));
    if (rows < 1 || dim < 1) return sdc_fail(SDC_ERR_ARG, "timestep_embedding: bad shape %d x %d", rows, dim);
    float *y = yb.p;
    const int half = dim / 2;
    for (int b = 0; b < rows; b++) {
        float *o = y + (size_t)b * dim;
        for (int i = 0; i < half; i++) {
            float expo = -9.21034049987792969f * (float)i; /* -ln(10000) in float32 */
            expo = expo / (float)half;
            float arg = (float)t * expf(expo);
            o[i] = cosf(arg);
            o[half + i] = sinf(arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
    return SDC_OK;
}

sdc_status sdc_cpu_scale(sdc_backend *be, float *y, const float *x, float a, bool div, size_t n) {
    (void)be;
    if (div)
        for (size_t j = 0; j < n; j++) y[j] = x[j] / a;
    else
        for (size_t j = 0; j < n; j++) y[j] = x[j] * a;
    return SDC_OK;
}

sdc_status sdc_cpu_axpy(sdc_backend *be, float *y, float a, const float *x, size_t n) {
    (void)be;
    for (size_t j = 0; j < n; j++) y[j] = y[j] + a * x[j];
    return SDC_OK;
}

sdc_status sdc_cpu_guidance(sdc_backend *be, float *y, const float *u, const float *c, float g, size_t n) {
    (void)be;
    for (size_t j = 0; j < n; j++) y[j] = u[j] + g * (c[j] - u[j]);
    return SDC_OK;
}

sdc_status sdc_cpu_latent_update(sdc_backend *be, const sdc_latent_update *u, float *x, const float *mo,
                                 float *x0_out, const float *x0_prev, size_t n) {
    (void)be;
    if ((u->kind == SDC_UPDATE_DPM1 || u->kind == SDC_UPDATE_DPM2) && !x0_out)
        return sdc_fail(SDC_ERR_ARG, "latent_update: DPM++ needs a buffer for the data prediction");
    if (u->kind == SDC_UPDATE_DPM2 && !x0_prev)
        return sdc_fail(SDC_ERR_ARG, "latent_update: second-order DPM++ needs the previous data prediction");
    sdc_latent_update_apply(u, x, mo, x0_out, x0_prev, n);
    return SDC_OK;
}
