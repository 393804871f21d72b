/* backend_cpu_plan.c - planned memory on the CPU backend (backend.h): the
 * dry run's ops table and the scratch carved from a plan's arena. The ops
 * that take scratch (attention, conv2d, group_norm, linear: a half
 * weight's widened panel) run as themselves in
 * the dry run: they record what they need and return before computing, so
 * the sizes come from the same code that uses them. Every other op does
 * nothing; alloc and load_* fail. */
#include "backend/backend_cpu.h"

#include <stdlib.h>

/* the do-nothing ops of the dry run: their parameters are unused by design */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

static sdc_status nop_upload(sdc_backend *be, float *d, const float *s, size_t n) { return SDC_OK; }
static sdc_status nop_copy(sdc_backend *be, sdc_buf d, sdc_buf s, size_t n) { return SDC_OK; }
static sdc_status nop_layer_norm(sdc_backend *be, sdc_buf y, sdc_buf x, const float *g, const float *b, int m, int n,
                                 float eps) {
    return SDC_OK;
}
static sdc_status nop_activation(sdc_backend *be, sdc_buf y, sdc_buf x, size_t n, sdc_act a) { return SDC_OK; }
static sdc_status nop_add(sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t n) { return SDC_OK; }
static sdc_status nop_upsample(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int ho, int wo) {
    return SDC_OK;
}
static sdc_status nop_pad(sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int t, int b, int l,
                          int r) {
    return SDC_OK;
}
static sdc_status nop_concat(sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t rows, int ca, int cb) {
    return SDC_OK;
}
static sdc_status nop_geglu(sdc_backend *be, sdc_buf y, sdc_buf x, int m, int f) { return SDC_OK; }
static sdc_status nop_add_rows(sdc_backend *be, sdc_buf y, sdc_buf x, sdc_buf v, int n, size_t rows, int c) {
    return SDC_OK;
}
static sdc_status nop_timestep(sdc_backend *be, sdc_buf y, int rows, int dim, double t) { return SDC_OK; }
static sdc_status nop_scale(sdc_backend *be, float *y, const float *x, float a, bool div, size_t n) { return SDC_OK; }
static sdc_status nop_axpy(sdc_backend *be, float *y, float a, const float *x, size_t n) { return SDC_OK; }
static sdc_status nop_guidance(sdc_backend *be, float *y, const float *u, const float *c, float g, size_t n) {
    return SDC_OK;
}
static sdc_status nop_update(sdc_backend *be, const sdc_latent_update *u, float *x, const float *mo, float *x0o,
                             const float *x0p, size_t n) {
    return SDC_OK;
}

#pragma GCC diagnostic pop

sdc_status sdc_cpu_plan_begin(sdc_backend *be) {
    sdc_cpu_impl *im = be->impl;
    if (im->planning) return sdc_fail(SDC_ERR_ARG, "plan_begin: a dry run is already open");
    sdc_backend_ops *o = &im->plan_ops;
    *o = *sdc_cpu_ops(); /* alloc, load_*: the real ones, which refuse while planning */
    o->upload = o->download = o->upload_async = nop_upload;
    o->copy = o->convert = nop_copy;
    o->layer_norm = nop_layer_norm;
    o->activation = nop_activation;
    o->add = nop_add;
    o->upsample_nearest = nop_upsample;
    o->pad = nop_pad;
    o->concat_channels = nop_concat;
    o->geglu = nop_geglu;
    o->add_rows = nop_add_rows;
    o->timestep_embedding = nop_timestep;
    o->scale = nop_scale;
    o->axpy = nop_axpy;
    o->guidance = nop_guidance;
    o->latent_update = nop_update;
    for (int i = 0; i < SDC_CPU_SCRATCH_SLOTS; i++) im->need[i] = 0;
    im->planning = true;
    im->ops_before = be->ops;
    be->ops = o;
    return SDC_OK;
}

sdc_status sdc_cpu_plan_end(sdc_backend *be, size_t *scratch_bytes) {
    sdc_cpu_impl *im = be->impl;
    *scratch_bytes = 0;
    if (!im->planning) return sdc_fail(SDC_ERR_ARG, "plan_end: no dry run is open");
    im->planning = false;
    be->ops = im->ops_before;
    *scratch_bytes = sdc_scratch_plan_bytes(im->need, SDC_CPU_SCRATCH_SLOTS);
    return SDC_OK;
}

sdc_status sdc_cpu_scratch_bind(sdc_backend *be, void *p, size_t bytes) {
    sdc_cpu_impl *im = be->impl;
    if (im->planning) return sdc_fail(SDC_ERR_ARG, "scratch_bind: inside a dry run");
    float *at[SDC_CPU_SCRATCH_SLOTS];
    SDC_TRY(sdc_scratch_layout(im->need, SDC_CPU_SCRATCH_SLOTS, p, bytes, at));
    for (int i = 0; i < SDC_CPU_SCRATCH_SLOTS; i++) {
        if (!im->bound) free(im->buf[i]);
        im->buf[i] = at[i];
        im->cap[i] = p ? im->need[i] : 0;
    }
    im->bound = p != NULL;
    return SDC_OK;
}
