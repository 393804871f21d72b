/* backend_profile.c - timing shims around a backend's ops. */
#include "backend/backend_profile.h"

#include <string.h>

static const sdc_backend_ops *g_orig;
static sdc_backend_ops g_wrapped;
static sdc_profile g_prof;

#define SHIM(name, kind, params, args)                                        \
    static sdc_status shim_##name params {                                    \
        double t0 = sdc_now();                                                \
        sdc_status st = g_orig->name args;                                    \
        g_prof.seconds[kind] += sdc_now() - t0;                               \
        g_prof.calls[kind]++;                                                 \
        return st;                                                            \
    }

SHIM(upload, SDC_OP_MEMORY, (sdc_backend *be, float *d, const float *s, size_t n), (be, d, s, n))
SHIM(download, SDC_OP_MEMORY, (sdc_backend *be, float *d, const float *s, size_t n), (be, d, s, n))
SHIM(copy, SDC_OP_MEMORY, (sdc_backend *be, sdc_buf d, sdc_buf s, size_t n), (be, d, s, n))
SHIM(convert, SDC_OP_MEMORY, (sdc_backend *be, sdc_buf d, sdc_buf s, size_t n), (be, d, s, n))
SHIM(linear, SDC_OP_LINEAR,
     (sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *b, int m, int k, int n),
     (be, y, x, w, b, m, k, n))
SHIM(layer_norm, SDC_OP_LAYER_NORM,
     (sdc_backend *be, sdc_buf y, sdc_buf x, const float *g, const float *b, int m, int n, float eps),
     (be, y, x, g, b, m, n, eps))
SHIM(attention, SDC_OP_ATTENTION,
     (sdc_backend *be, sdc_buf o, sdc_buf q, sdc_buf k, sdc_buf v, int b, int h, int tq, int tk, int d, int qs,
      int kvs, bool causal),
     (be, o, q, k, v, b, h, tq, tk, d, qs, kvs, causal))
SHIM(activation, SDC_OP_ELEMENTWISE, (sdc_backend *be, sdc_buf y, sdc_buf x, size_t n, sdc_act a),
     (be, y, x, n, a))
SHIM(add, SDC_OP_ELEMENTWISE, (sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t n), (be, y, a, b, n))
SHIM(conv2d, SDC_OP_CONV,
     (sdc_backend *be, sdc_buf y, sdc_buf x, sdc_weight w, const float *b, sdc_buf r, int n, int h, int wi,
      int ci, int co, int k, int s, int p),
     (be, y, x, w, b, r, n, h, wi, ci, co, k, s, p))
SHIM(group_norm, SDC_OP_GROUP_NORM,
     (sdc_backend *be, sdc_buf y, sdc_buf x, const float *g, const float *b, int n, int hw, int c, int gr,
      float eps, bool silu),
     (be, y, x, g, b, n, hw, c, gr, eps, silu))
SHIM(upsample_nearest, SDC_OP_MEMORY,
     (sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int ho, int wo),
     (be, y, x, n, h, w, c, ho, wo))
SHIM(pad, SDC_OP_MEMORY,
     (sdc_backend *be, sdc_buf y, sdc_buf x, int n, int h, int w, int c, int t, int b, int l, int r),
     (be, y, x, n, h, w, c, t, b, l, r))
SHIM(concat_channels, SDC_OP_MEMORY,
     (sdc_backend *be, sdc_buf y, sdc_buf a, sdc_buf b, size_t rows, int ca, int cb),
     (be, y, a, b, rows, ca, cb))
SHIM(geglu, SDC_OP_ELEMENTWISE, (sdc_backend *be, sdc_buf y, sdc_buf x, int m, int f), (be, y, x, m, f))
SHIM(add_rows, SDC_OP_ELEMENTWISE,
     (sdc_backend *be, sdc_buf y, sdc_buf x, sdc_buf v, int n, size_t rows, int c),
     (be, y, x, v, n, rows, c))

SHIM(timestep_embedding, SDC_OP_ELEMENTWISE, (sdc_backend *be, sdc_buf y, int rows, int dim, double t),
     (be, y, rows, dim, t))
SHIM(scale, SDC_OP_ELEMENTWISE, (sdc_backend *be, float *y, const float *x, float a, bool div, size_t n),
     (be, y, x, a, div, n))
SHIM(axpy, SDC_OP_ELEMENTWISE, (sdc_backend *be, float *y, float a, const float *x, size_t n), (be, y, a, x, n))
SHIM(guidance, SDC_OP_ELEMENTWISE,
     (sdc_backend *be, float *y, const float *u, const float *c, float g, size_t n), (be, y, u, c, g, n))
SHIM(latent_update, SDC_OP_ELEMENTWISE,
     (sdc_backend *be, const sdc_latent_update *u, float *x, const float *mo, float *x0o, const float *x0p,
      size_t n),
     (be, u, x, mo, x0o, x0p, n))
SHIM(upload_async, SDC_OP_MEMORY, (sdc_backend *be, float *d, const float *s, size_t n), (be, d, s, n))

void sdc_backend_profile_enable(sdc_backend *be) {
    if (be->ops == &g_wrapped) return;
    g_orig = be->ops;
    g_wrapped = *be->ops;
    g_wrapped.upload = shim_upload;
    g_wrapped.download = shim_download;
    g_wrapped.copy = shim_copy;
    g_wrapped.convert = shim_convert;
    g_wrapped.linear = shim_linear;
    g_wrapped.layer_norm = shim_layer_norm;
    g_wrapped.attention = shim_attention;
    g_wrapped.activation = shim_activation;
    g_wrapped.add = shim_add;
    g_wrapped.conv2d = shim_conv2d;
    g_wrapped.group_norm = shim_group_norm;
    g_wrapped.upsample_nearest = shim_upsample_nearest;
    g_wrapped.pad = shim_pad;
    g_wrapped.concat_channels = shim_concat_channels;
    g_wrapped.geglu = shim_geglu;
    g_wrapped.add_rows = shim_add_rows;
    g_wrapped.timestep_embedding = shim_timestep_embedding;
    g_wrapped.scale = shim_scale;
    g_wrapped.axpy = shim_axpy;
    g_wrapped.guidance = shim_guidance;
    g_wrapped.latent_update = shim_latent_update;
    g_wrapped.upload_async = shim_upload_async;
    be->ops = &g_wrapped;
}

void sdc_backend_profile_disable(sdc_backend *be) {
    if (be->ops == &g_wrapped) be->ops = g_orig;
}

void sdc_backend_profile_reset(void) { memset(&g_prof, 0, sizeof g_prof); }
const sdc_profile *sdc_backend_profile_get(void) { return &g_prof; }

const char *sdc_op_kind_name(sdc_op_kind k) {
    static const char *names[SDC_OP_KINDS] = {"linear (sgemm)", "convolution",  "attention",
                                             "group norm",     "layer norm",   "elementwise",
                                             "memory/layout"};
    return k < SDC_OP_KINDS ? names[k] : "?";
}
