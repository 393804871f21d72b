/* names.c - diffusers tensor names -> original (LDM / CompVis) names.
 *
 * A port of tools/sdc_layout.py (unet_to_original, vae_to_original), which
 * is verified against diffusers' own converters. As there, the layout of a
 * config is a list of prefix pairs (diffusers block prefix -> original block
 * prefix, both ending in '.') with a kind; the rest of a name is renamed
 * per kind (the ResBlock renames, the VAE attention renames) or kept.
 *
 * Differences from the Python, which reads the block layout off an existing
 * state dict: here the config alone says what exists, so the rest of a name
 * is checked too (a name that a diffusers model of this config does not
 * have is an SDC_ERR_ARG error), and the same walk enumerates every name.
 * The prefixes are prefix-free (each ends in '.'), so the first match is
 * the only one. */
#include "model/names.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* ---- sub-keys per kind ------------------------------------------------ */

enum {
    F_W = 1,        /* weight only (no bias) */
    F_LEGACY = 2,   /* accepted when mapping, not enumerated */
    F_SHORTCUT = 4, /* only when the block changes the channel count */
};

typedef struct sub {
    const char *src, *dst; /* module inside the block; "" = the block itself */
    int flags;
} sub;

typedef enum kind {
    K_PLAIN,  /* a conv / linear / norm with weight and bias, same names */
    K_URES,   /* U-Net ResnetBlock2D -> ResBlock */
    K_XFMR,   /* Transformer2DModel -> SpatialTransformer, same sub-keys */
    K_VRES,   /* VAE ResnetBlock2D -> ResnetBlock */
    K_VATTN,  /* VAE Attention -> AttnBlock */
} kind;

static const sub PLAIN[] = {{"", "", 0}};

/* _UNET_RESNET_RENAMES */
static const sub URES[] = {
    {"norm1", "in_layers.0", 0},
    {"conv1", "in_layers.2", 0},
    {"time_emb_proj", "emb_layers.1", 0},
    {"norm2", "out_layers.0", 0},
    {"conv2", "out_layers.3", 0},
    {"conv_shortcut", "skip_connection", F_SHORTCUT},
};

/* Transformer2DModel: the block's own modules ... */
static const sub XFMR[] = {
    {"norm", "norm", 0},
    {"proj_in", "proj_in", 0},
    {"proj_out", "proj_out", 0},
};

/* ... and those of each transformer_blocks.T (q/k/v have no bias in SD) */
static const sub XBLOCK[] = {
    {"norm1", "norm1", 0},
    {"attn1.to_q", "attn1.to_q", F_W},
    {"attn1.to_k", "attn1.to_k", F_W},
    {"attn1.to_v", "attn1.to_v", F_W},
    {"attn1.to_out.0", "attn1.to_out.0", 0},
    {"norm2", "norm2", 0},
    {"attn2.to_q", "attn2.to_q", F_W},
    {"attn2.to_k", "attn2.to_k", F_W},
    {"attn2.to_v", "attn2.to_v", F_W},
    {"attn2.to_out.0", "attn2.to_out.0", 0},
    {"norm3", "norm3", 0},
    {"ff.net.0.proj", "ff.net.0.proj", 0},
    {"ff.net.2", "ff.net.2", 0},
};

/* _VAE_RESNET_RENAMES (the VAE's resnets have no time embedding) */
static const sub VRES[] = {
    {"norm1", "norm1", 0},
    {"conv1", "conv1", 0},
    {"norm2", "norm2", 0},
    {"conv2", "conv2", 0},
    {"conv_shortcut", "nin_shortcut", F_SHORTCUT},
};

/* _VAE_ATTN_RENAMES, plus diffusers' names from before its Attention
 * refactor (query/key/value/proj_attn), still found in older folders */
static const sub VATTN[] = {
    {"group_norm", "norm", 0},
    {"to_q", "q", 0},
    {"to_k", "k", 0},
    {"to_v", "v", 0},
    {"to_out.0", "proj_out", 0},
    {"query", "q", F_LEGACY},
    {"key", "k", F_LEGACY},
    {"value", "v", F_LEGACY},
    {"proj_attn", "proj_out", F_LEGACY},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const sub *table_of(kind k, size_t *n) {
    switch (k) {
    case K_URES: *n = COUNT(URES); return URES;
    case K_XFMR: *n = COUNT(XFMR); return XFMR;
    case K_VRES: *n = COUNT(VRES); return VRES;
    case K_VATTN: *n = COUNT(VATTN); return VATTN;
    case K_PLAIN: break;
    }
    *n = COUNT(PLAIN);
    return PLAIN;
}

/* rest = "<module>.<weight|bias>" against table t: the matching entry and
 * the parameter name, or NULL. */
static const sub *match_sub(const sub *t, size_t nt, bool shortcut, const char *rest,
                            const char **param) {
    for (size_t i = 0; i < nt; i++) {
        const sub *m = &t[i];
        if ((m->flags & F_SHORTCUT) && !shortcut) continue;
        const char *p = rest;
        if (*m->src) {
            size_t l = strlen(m->src);
            if (strncmp(rest, m->src, l) != 0 || rest[l] != '.') continue;
            p = rest + l + 1;
        }
        if (strcmp(p, "weight") == 0 || (!(m->flags & F_W) && strcmp(p, "bias") == 0)) {
            *param = p;
            return m;
        }
    }
    return NULL;
}

/* A decimal index as written by PyTorch ("0", "12"; no sign, no leading
 * zero) followed by '.': its value and *end after the '.', or -1. */
static int parse_index(const char *s, const char **end) {
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '.')) return -1;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (v > 1000000) return -1;
    }
    if (*s != '.') return -1;
    *end = s + 1;
    return (int)v;
}

/* ---- the walk: mapping one name, or enumerating all ------------------- */

typedef struct walk {
    /* mapping */
    const char *name;
    char *out;
    size_t cap;
    bool found, too_long;
    /* enumeration (name == NULL) */
    char **list;
    int n, list_cap;
    bool oom;
} walk;

static void push(walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void push(walk *w, const char *fmt, ...) {
    if (w->oom) return;
    if (w->n == w->list_cap) {
        int nc = w->list_cap ? 2 * w->list_cap : 256;
        char **nl = realloc(w->list, (size_t)nc * sizeof *nl);
        if (!nl) { w->oom = true; return; }
        w->list = nl;
        w->list_cap = nc;
    }
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!(w->list[w->n] = strdup(buf))) { w->oom = true; return; }
    w->n++;
}

static void emit_table(walk *w, const char *src, const sub *t, size_t nt, bool shortcut) {
    for (size_t i = 0; i < nt; i++) {
        const sub *m = &t[i];
        if ((m->flags & F_LEGACY) || ((m->flags & F_SHORTCUT) && !shortcut)) continue;
        const char *dot = *m->src ? "." : "";
        push(w, "%s%s%sweight", src, m->src, dot);
        if (!(m->flags & F_W)) push(w, "%s%s%sbias", src, m->src, dot);
    }
}

/* One prefix pair of the layout. aux: transformer depth (K_XFMR), or
 * whether the resnet has a shortcut conv (K_URES, K_VRES). */
static void visit(walk *w, kind k, int aux, const char *src, const char *dst) {
    size_t nt;
    const sub *t = table_of(k, &nt);
    bool shortcut = aux != 0;
    if (!w->name) { /* enumerate */
        emit_table(w, src, t, nt, shortcut);
        for (int b = 0; k == K_XFMR && b < aux; b++) {
            char blk[160];
            snprintf(blk, sizeof blk, "%stransformer_blocks.%d.", src, b);
            emit_table(w, blk, XBLOCK, COUNT(XBLOCK), false);
        }
        return;
    }
    size_t ls = strlen(src);
    if (w->found || strncmp(w->name, src, ls) != 0) return;
    const char *rest = w->name + ls, *param = NULL, *end = NULL;
    const sub *m;
    int n;
    if (k == K_XFMR && strncmp(rest, "transformer_blocks.", 19) == 0) {
        n = parse_index(rest + 19, &end);
        if (n < 0 || n >= aux || !match_sub(XBLOCK, COUNT(XBLOCK), false, end, &param)) return;
        n = snprintf(w->out, w->cap, "%s%s", dst, rest); /* sub-keys identical */
    } else {
        if (!(m = match_sub(t, nt, shortcut, rest, &param))) return;
        n = snprintf(w->out, w->cap, "%s%s%s%s", dst, m->dst, *m->dst ? "." : "", param);
    }
    w->found = true;
    w->too_long = n < 0 || (size_t)n >= w->cap;
}

/* Format into a caller's buffer and return it, for visit()'s arguments. */
#define PFX 160
static const char *fmt(char *buf, const char *f, ...) __attribute__((format(printf, 2, 3)));
static const char *fmt(char *buf, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, PFX, f, ap);
    va_end(ap);
    return buf;
}

/* ---- U-Net ------------------------------------------------------------ */

static sdc_status check_unet(const sdc_unet_config *c) {
    if (!c || c->n_levels < 1 || c->n_levels > SDC_MAX_LEVELS)
        return sdc_fail(SDC_ERR_ARG, "U-Net config: %d levels (expected 1..%d)", c ? c->n_levels : 0,
                        SDC_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > 1000)
        return sdc_fail(SDC_ERR_ARG, "U-Net config: %d res blocks per level", c->num_res_blocks);
    for (int l = 0; l < c->n_levels; l++)
        if (c->channels[l] < 1 || c->attn_depth[l] < 0 || c->attn_depth[l] > 1000)
            return sdc_fail(SDC_ERR_ARG, "U-Net config: level %d has %d channels, attention depth %d", l,
                            c->channels[l], c->attn_depth[l]);
    return SDC_OK;
}

/* The mid block always has a transformer in SD U-Nets; diffusers gives it
 * the last level's depth (transformer_layers_per_block[-1]). Where the last
 * level has no attention (SD 1.x style), the deepest level that has. */
static int mid_depth(const sdc_unet_config *c) {
    for (int l = c->n_levels - 1; l >= 0; l--)
        if (c->attn_depth[l] > 0) return c->attn_depth[l];
    return 1;
}

/* unet_to_original's prefix map, in its order. */
static void walk_unet(const sdc_unet_config *c, walk *w) {
    char s[PFX], d[PFX];
    const int n = c->n_levels, nrb = c->num_res_blocks;
    const int *ch = c->channels;
    visit(w, K_PLAIN, 0, "conv_in.", "input_blocks.0.0.");
    visit(w, K_PLAIN, 0, "time_embedding.linear_1.", "time_embed.0.");
    visit(w, K_PLAIN, 0, "time_embedding.linear_2.", "time_embed.2.");
    if (c->add_in_dim) { /* SDXL's added embedding */
        visit(w, K_PLAIN, 0, "add_embedding.linear_1.", "label_emb.0.0.");
        visit(w, K_PLAIN, 0, "add_embedding.linear_2.", "label_emb.0.2.");
    }
    visit(w, K_PLAIN, 0, "conv_norm_out.", "out.0.");
    visit(w, K_PLAIN, 0, "conv_out.", "out.2.");

    /* input blocks: input_blocks.0 is conv_in; per level nrb entries
     * [resnet (.0), transformer (.1)], then the downsampler (.0.op) on
     * every level but the last */
    int idx = 1, in_ch = ch[0];
    for (int l = 0; l < n; l++) {
        const int depth = c->attn_depth[l];
        for (int j = 0; j < nrb; j++) {
            visit(w, K_URES, in_ch != ch[l], fmt(s, "down_blocks.%d.resnets.%d.", l, j),
                  fmt(d, "input_blocks.%d.0.", idx));
            in_ch = ch[l];
            if (depth > 0)
                visit(w, K_XFMR, depth, fmt(s, "down_blocks.%d.attentions.%d.", l, j),
                      fmt(d, "input_blocks.%d.1.", idx));
            idx++;
        }
        if (l != n - 1) {
            visit(w, K_PLAIN, 0, fmt(s, "down_blocks.%d.downsamplers.0.conv.", l),
                  fmt(d, "input_blocks.%d.0.op.", idx));
            idx++;
        }
    }

    visit(w, K_URES, 0, "mid_block.resnets.0.", "middle_block.0.");
    visit(w, K_XFMR, mid_depth(c), "mid_block.attentions.0.", "middle_block.1.");
    visit(w, K_URES, 0, "mid_block.resnets.1.", "middle_block.2.");

    /* output blocks: diffusers' up_blocks in order (up_blocks.b is level
     * n-1-b), nrb + 1 entries each; the upsampler follows the last entry's
     * resnet (.1.conv) or transformer (.2.conv), on every block but the
     * last. A resnet's input is the previous output plus the skip. */
    idx = 0;
    int prev = ch[n - 1];
    for (int b = 0; b < n; b++) {
        const int L = n - 1 - b, depth = c->attn_depth[L], nl = nrb + 1;
        const int skip_last = ch[L > 0 ? L - 1 : 0];
        for (int j = 0; j < nl; j++) {
            int rin = (j == 0 ? prev : ch[L]) + (j == nl - 1 ? skip_last : ch[L]);
            visit(w, K_URES, rin != ch[L], fmt(s, "up_blocks.%d.resnets.%d.", b, j),
                  fmt(d, "output_blocks.%d.0.", idx));
            if (depth > 0)
                visit(w, K_XFMR, depth, fmt(s, "up_blocks.%d.attentions.%d.", b, j),
                      fmt(d, "output_blocks.%d.1.", idx));
            if (j == nl - 1 && b != n - 1)
                visit(w, K_PLAIN, 0, fmt(s, "up_blocks.%d.upsamplers.0.conv.", b),
                      fmt(d, "output_blocks.%d.%d.conv.", idx, depth > 0 ? 2 : 1));
            idx++;
        }
        prev = ch[L];
    }
}

/* ---- VAE -------------------------------------------------------------- */

static sdc_status check_vae(const sdc_vae_config *c) {
    if (!c || c->n_levels < 1 || c->n_levels > SDC_MAX_LEVELS)
        return sdc_fail(SDC_ERR_ARG, "VAE config: %d levels (expected 1..%d)", c ? c->n_levels : 0,
                        SDC_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > 1000 || c->channels < 1)
        return sdc_fail(SDC_ERR_ARG, "VAE config: %d res blocks per level, %d channels", c->num_res_blocks,
                        c->channels);
    for (int l = 0; l < c->n_levels; l++)
        if (c->channels_mult[l] < 1)
            return sdc_fail(SDC_ERR_ARG, "VAE config: level %d has multiplier %d", l, c->channels_mult[l]);
    return SDC_OK;
}

/* vae_to_original's prefix map. A decoder-only VAE has no encoder.* and no
 * quant_conv (which only the encoder's output goes through). */
static void walk_vae(const sdc_vae_config *c, walk *w) {
    char s[PFX], d[PFX];
    const int n = c->n_levels, nrb = c->num_res_blocks;
    const bool enc = c->has_encoder;
    int ch[SDC_MAX_LEVELS];
    for (int i = 0; i < n; i++) ch[i] = c->channels * c->channels_mult[i];

    if (enc) visit(w, K_PLAIN, 0, "quant_conv.", "quant_conv.");
    visit(w, K_PLAIN, 0, "post_quant_conv.", "post_quant_conv.");
    static const char *const parts[2] = {"encoder", "decoder"};
    for (int p = enc ? 0 : 1; p < 2; p++) {
        const char *part = parts[p];
        visit(w, K_PLAIN, 0, fmt(s, "%s.conv_in.", part), fmt(d, "%s.conv_in.", part));
        visit(w, K_PLAIN, 0, fmt(s, "%s.conv_out.", part), fmt(d, "%s.conv_out.", part));
        visit(w, K_PLAIN, 0, fmt(s, "%s.conv_norm_out.", part), fmt(d, "%s.norm_out.", part));
        visit(w, K_VRES, 0, fmt(s, "%s.mid_block.resnets.0.", part), fmt(d, "%s.mid.block_1.", part));
        visit(w, K_VRES, 0, fmt(s, "%s.mid_block.resnets.1.", part), fmt(d, "%s.mid.block_2.", part));
        visit(w, K_VATTN, 0, fmt(s, "%s.mid_block.attentions.0.", part), fmt(d, "%s.mid.attn_1.", part));
    }
    for (int i = 0; i < n; i++) {
        if (enc) {
            for (int j = 0; j < nrb; j++) {
                int in = j > 0 ? ch[i] : ch[i > 0 ? i - 1 : 0];
                visit(w, K_VRES, in != ch[i], fmt(s, "encoder.down_blocks.%d.resnets.%d.", i, j),
                      fmt(d, "encoder.down.%d.block.%d.", i, j));
            }
            if (i != n - 1)
                visit(w, K_PLAIN, 0, fmt(s, "encoder.down_blocks.%d.downsamplers.0.conv.", i),
                      fmt(d, "encoder.down.%d.downsample.conv.", i));
        }
        /* original index of diffusers' up_blocks.i; its input is the
         * previous (deeper) block's output */
        const int o = n - 1 - i, prev = ch[i == 0 ? n - 1 : n - i];
        for (int j = 0; j < nrb + 1; j++) {
            int in = j > 0 ? ch[o] : prev;
            visit(w, K_VRES, in != ch[o], fmt(s, "decoder.up_blocks.%d.resnets.%d.", i, j),
                  fmt(d, "decoder.up.%d.block.%d.", o, j));
        }
        if (i != n - 1)
            visit(w, K_PLAIN, 0, fmt(s, "decoder.up_blocks.%d.upsamplers.0.conv.", i),
                  fmt(d, "decoder.up.%d.upsample.conv.", o));
    }
}

/* ---- public ----------------------------------------------------------- */

static sdc_status map_name(const char *what, void (*fn)(const void *, walk *), const void *c,
                           const char *name, char *out, size_t cap, int levels, int nrb) {
    if (!name || !out || cap == 0)
        return sdc_fail(SDC_ERR_ARG, "%s name mapping: NULL name or empty output buffer", what);
    walk w = {.name = name, .out = out, .cap = cap};
    fn(c, &w);
    if (!w.found) {
        out[0] = '\0';
        return sdc_fail(SDC_ERR_ARG,
                        "%s tensor '%s': no such tensor in a diffusers %s of this configuration "
                        "(%d levels, %d res blocks per level), so no original name",
                        what, name, what, levels, nrb);
    }
    if (w.too_long) {
        out[0] = '\0';
        return sdc_fail(SDC_ERR_ARG, "%s tensor '%s': original name longer than %zu bytes", what, name,
                        cap - 1);
    }
    return SDC_OK;
}

static void walk_unet_v(const void *c, walk *w) { walk_unet(c, w); }
static void walk_vae_v(const void *c, walk *w) { walk_vae(c, w); }

sdc_status sdc_unet_name_to_original(const sdc_unet_config *c, const char *name, char *out, size_t cap) {
    SDC_TRY(check_unet(c));
    return map_name("U-Net", walk_unet_v, c, name, out, cap, c->n_levels, c->num_res_blocks);
}

sdc_status sdc_vae_name_to_original(const sdc_vae_config *c, const char *name, char *out, size_t cap) {
    SDC_TRY(check_vae(c));
    return map_name("VAE", walk_vae_v, c, name, out, cap, c->n_levels, c->num_res_blocks);
}

void sdc_names_free(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static sdc_status list_names(const char *what, void (*fn)(const void *, walk *), const void *c,
                             char ***names, int *n) {
    if (!names || !n) return sdc_fail(SDC_ERR_ARG, "%s names: NULL output", what);
    *names = NULL;
    *n = 0;
    walk w = {0};
    fn(c, &w);
    if (w.oom) {
        sdc_names_free(w.list, w.n);
        return sdc_fail(SDC_ERR_OOM, "out of memory listing the %s tensor names", what);
    }
    *names = w.list;
    *n = w.n;
    return SDC_OK;
}

sdc_status sdc_unet_diffusers_names(const sdc_unet_config *c, char ***names, int *n) {
    SDC_TRY(check_unet(c));
    return list_names("U-Net", walk_unet_v, c, names, n);
}

sdc_status sdc_vae_diffusers_names(const sdc_vae_config *c, char ***names, int *n) {
    SDC_TRY(check_vae(c));
    return list_names("VAE", walk_vae_v, c, names, n);
}
