/* model.c - open a checkpoint (single file or diffusers folder), recognise
 * its layout and family, derive the configuration from tensor names and
 * shapes. Names follow the checkpoint keys so they can be grepped. */
#include "model/model.h"
#include "model/config_value.h"
#include "nets/vae.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small lookups ---------------------------------------------------- */

const sdc_st_tensor *sdc_model_findf(const sdc_st_file *f, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return f ? sdc_st_find(f, name) : NULL;
}
#define findf sdc_model_findf

/* dim d of a tensor, or -1 when the tensor is absent or has fewer dims
 * (every dimension was checked against SDC_LIMIT_DIM by check_dims) */
static int dimof(const sdc_st_tensor *t, int d) {
    return (t && d < t->ndim && t->shape[d] <= INT_MAX) ? (int)t->shape[d] : -1;
}

/* No dimension of any tensor past SDC_LIMIT_DIM, so that every size
 * derived from shapes fits an int and products of two fit 64 bits. */
static sdc_status check_dims(const sdc_st_file *f) {
    for (int i = 0; f && i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] > SDC_LIMIT_DIM)
                return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s: dimension %d is %lld, more than sdc's limit of %d",
                                f->path, t->name, d, (long long)t->shape[d], SDC_LIMIT_DIM);
    }
    return SDC_OK;
}

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Parse a small JSON file; NULL (no error) when the file is absent. */
static sdc_status read_json(const char *path, cJSON **out) {
    *out = NULL;
    /* non-blocking, so a FIFO in place of a config cannot stall the open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return SDC_OK;
        return sdc_fail(SDC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (1 << 24)) {
        close(fd);
        return sdc_fail(SDC_ERR_FORMAT, "%s: expected a regular file of at most 16 MiB", path);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory", path);
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    if (memchr(buf, '\0', got)) {
        free(buf);
        return sdc_fail(SDC_ERR_FORMAT, "%s: not a JSON text (it contains a NUL byte)", path);
    }
    /* the whole text is one value: nothing but white space after it */
    const char *err_at = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, got + 1, &err_at, 1);
    size_t at = err_at ? (size_t)(err_at - buf) : got;
    free(buf);
    if (!j) return sdc_fail(SDC_ERR_FORMAT, "%s: not valid JSON (at byte %zu)", path, at);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sdc_fail(SDC_ERR_FORMAT, "%s: expected a JSON object { ... }", path);
    }
    /* a key given twice would mean one thing to sdc and another to Python */
    int n_keys = 0;
    for (const cJSON *a = j->child; a; a = a->next, n_keys++) {
        if (n_keys >= 4096) {
            cJSON_Delete(j);
            return sdc_fail(SDC_ERR_FORMAT, "%s: more than 4096 keys; not a model configuration", path);
        }
        for (const cJSON *b = j->child; b != a; b = b->next)
            if (strcmp(a->string, b->string) == 0) {
                char key[64];
                snprintf(key, sizeof key, "%.48s%s", a->string, strlen(a->string) > 48 ? "..." : "");
                cJSON_Delete(j);
                return sdc_fail(SDC_ERR_FORMAT, "%s: key \"%s\" appears twice", path, key);
            }
    }
    *out = j;
    return SDC_OK;
}

/* ---- names ------------------------------------------------------------ */

const char *sdc_family_name(sdc_family f) {
    switch (f) {
    case SDC_FAMILY_SD1: return "SD 1.x";
    case SDC_FAMILY_SD2: return "SD 2.x";
    case SDC_FAMILY_SDXL: return "SDXL";
    default: return "unknown";
    }
}

const char *sdc_layout_name(sdc_layout l) {
    return l == SDC_LAYOUT_DIFFUSERS ? "diffusers folder" : "single file (original layout)";
}

int sdc_text_default_heads(int width) { return width >= 64 ? width / 64 : 1; }

/* ---- text encoder ----------------------------------------------------- */

sdc_status sdc_model_text_shape(const sdc_st_file *f, const char *p, sdc_text_naming naming, sdc_text_config *c) {
    const sdc_st_tensor *tok, *pos, *fc1;
    c->layers = 0;
    if (naming == SDC_TEXT_HF) {
        tok = findf(f, "%stext_model.embeddings.token_embedding.weight", p);
        pos = findf(f, "%stext_model.embeddings.position_embedding.weight", p);
        fc1 = findf(f, "%stext_model.encoder.layers.0.mlp.fc1.weight", p);
        while (c->layers <= SDC_LIMIT_TEXT_LAYERS &&
               findf(f, "%stext_model.encoder.layers.%d.self_attn.q_proj.weight", p, c->layers))
            c->layers++;
    } else {
        tok = findf(f, "%stoken_embedding.weight", p);
        pos = findf(f, "%spositional_embedding", p);
        fc1 = findf(f, "%stransformer.resblocks.0.mlp.c_fc.weight", p);
        while (c->layers <= SDC_LIMIT_TEXT_LAYERS && findf(f, "%stransformer.resblocks.%d.attn.in_proj_weight", p, c->layers))
            c->layers++;
    }
    if (!tok || tok->ndim != 2 || !pos || pos->ndim != 2 || !fc1 || fc1->ndim != 2 || c->layers == 0)
        return sdc_fail(SDC_ERR_FORMAT,
                        "%s: text encoder (prefix '%s') lacks its token/position "
                        "embeddings, layer 0 or its MLP",
                        f->path, p);
    c->vocab = dimof(tok, 0);
    c->width = dimof(tok, 1);
    c->max_pos = dimof(pos, 0);
    c->ff = dimof(fc1, 0);
    c->heads = sdc_text_default_heads(c->width);
    c->eps = 1e-5f;
    c->final_norm = true;
    if (dimof(pos, 1) != c->width)
        return sdc_fail(SDC_ERR_FORMAT, "%s: position embedding width %d != token embedding width %d",
                        f->path, dimof(pos, 1), c->width);
    return SDC_OK;
}

/* ---- U-Net ------------------------------------------------------------ */

/* How many blocks "<pre><a>.<n>." exist for n = 0, 1, ... (stops past
 * `limit`, which the caller reports). */
static int count_blocks(const sdc_st_file *f, const char *fmt_prefix_index, const char *pre, int a, int limit) {
    int n = 0;
    char name[512];
    while (n <= limit) {
        snprintf(name, sizeof name, fmt_prefix_index, pre, a, n);
        if (!sdc_st_find_prefix(f, name)) break;
        n++;
    }
    return n;
}

/* A 4-d convolution weight's output channels, or an error naming it. */
static sdc_status conv_out_ch(const sdc_st_file *f, const sdc_st_tensor *t, const char *name, int *out) {
    if (!t) return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net tensor %s is missing", f->path, name);
    if (t->ndim != 4)
        return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net tensor %s has %d dimensions, expected a 4-d convolution weight",
                        f->path, name, t->ndim);
    *out = dimof(t, 0);
    return SDC_OK;
}

static sdc_status unet_config_original(sdc_model_files *m) {
    sdc_unet_config *c = &m->config.unet;
    const sdc_st_file *f = m->unet_file;
    const char *p = m->unet_prefix;
    const sdc_st_tensor *conv_in = findf(f, "%sinput_blocks.0.0.weight", p);
    const sdc_st_tensor *out = findf(f, "%sout.2.weight", p);
    const sdc_st_tensor *temb = findf(f, "%stime_embed.0.weight", p);
    if (!conv_in || conv_in->ndim != 4 || !out || out->ndim != 4 || !temb || temb->ndim != 2)
        return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net lacks %sinput_blocks.0.0.weight, out.2.weight or time_embed.0.weight "
                        "(or one of them is not a 4-d / 2-d weight)", f->path, p);
    c->model_channels = dimof(conv_in, 0);
    c->in_channels = dimof(conv_in, 1);
    c->out_channels = dimof(out, 0);
    c->time_embed_dim = dimof(temb, 0);
    int level = 0, res_in_level = 0;
    bool level_attn = false;
    for (int i = 1;; i++) {
        char name[512];
        snprintf(name, sizeof name, "%sinput_blocks.%d.0.out_layers.3.weight", p, i);
        const sdc_st_tensor *res = sdc_st_find(f, name);
        if (res) {
            if (level >= SDC_MAX_LEVELS)
                return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d U-Net levels (sdc's limit)", f->path,
                                SDC_MAX_LEVELS);
            int ch = 0;
            SDC_TRY(conv_out_ch(f, res, name, &ch));
            if (res_in_level == 0) {
                c->channels[level] = ch;
            } else if (ch != c->channels[level]) {
                return sdc_fail(SDC_ERR_FORMAT, "%s: %s has %d output channels, the level's first res block %d",
                                f->path, name, ch, c->channels[level]);
            }
            res_in_level++;
            if (res_in_level > SDC_LIMIT_RES_BLOCKS)
                return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d res blocks in U-Net level %d (sdc's limit)",
                                f->path, SDC_LIMIT_RES_BLOCKS, level);
            if (level == 0) c->num_res_blocks = res_in_level;
            const sdc_st_tensor *pin = findf(f, "%sinput_blocks.%d.1.proj_in.weight", p, i);
            if (res_in_level == 1) {
                level_attn = pin != NULL;
            } else if ((pin != NULL) != level_attn) {
                return sdc_fail(SDC_ERR_FORMAT, "%s: %sinput_blocks.%d %s attention, the first block of its level %s",
                                f->path, p, i, pin ? "has" : "lacks", level_attn ? "has" : "has none");
            }
            if (pin) {
                c->linear_proj = pin->ndim == 2;
                int depth = count_blocks(f, "%sinput_blocks.%d.1.transformer_blocks.%d.", p, i, SDC_LIMIT_ATTN_DEPTH);
                if (res_in_level > 1 && depth != c->attn_depth[level])
                    return sdc_fail(SDC_ERR_FORMAT, "%s: %sinput_blocks.%d has %d transformer blocks, the first "
                                    "attention of its level %d", f->path, p, i, depth, c->attn_depth[level]);
                c->attn_depth[level] = depth;
                const sdc_st_tensor *k = findf(f, "%sinput_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", p, i);
                if (k && k->ndim == 2 && !c->context_dim) c->context_dim = dimof(k, 1);
            }
        } else if (findf(f, "%sinput_blocks.%d.0.op.weight", p, i)) {
            if (res_in_level != c->num_res_blocks)
                return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net level %d has %d res blocks, level 0 has %d", f->path,
                                level, res_in_level, c->num_res_blocks);
            level++;
            res_in_level = 0;
        } else {
            break;
        }
    }
    if (res_in_level != c->num_res_blocks)
        return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net level %d has %d res blocks, level 0 has %d", f->path, level,
                        res_in_level, c->num_res_blocks);
    c->n_levels = level + 1;
    if (!c->context_dim) {
        const sdc_st_tensor *k = findf(f, "%smiddle_block.1.transformer_blocks.0.attn2.to_k.weight", p);
        c->context_dim = dimof(k, 1);
    }
    return SDC_OK;
}

static sdc_status unet_config_diffusers(sdc_model_files *m) {
    sdc_unet_config *c = &m->config.unet;
    const sdc_st_file *f = m->unet_file;
    const sdc_st_tensor *conv_in = findf(f, "conv_in.weight");
    const sdc_st_tensor *out = findf(f, "conv_out.weight");
    const sdc_st_tensor *temb = findf(f, "time_embedding.linear_1.weight");
    if (!conv_in || conv_in->ndim != 4 || !out || out->ndim != 4 || !temb || temb->ndim != 2)
        return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net lacks conv_in.weight, conv_out.weight or time_embedding.linear_1.weight "
                        "(or one of them is not a 4-d / 2-d weight)", f->path);
    c->model_channels = dimof(conv_in, 0);
    c->in_channels = dimof(conv_in, 1);
    c->out_channels = dimof(out, 0);
    c->time_embed_dim = dimof(temb, 0);
    int l = 0;
    for (; findf(f, "down_blocks.%d.resnets.0.conv1.weight", l); l++) {
        if (l >= SDC_MAX_LEVELS)
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d U-Net levels (sdc's limit)", f->path, SDC_MAX_LEVELS);
        char name[128];
        snprintf(name, sizeof name, "down_blocks.%d.resnets.0.conv2.weight", l);
        SDC_TRY(conv_out_ch(f, sdc_st_find(f, name), name, &c->channels[l]));
        int nr = count_blocks(f, "%sdown_blocks.%d.resnets.%d.", "", l, SDC_LIMIT_RES_BLOCKS);
        if (nr > SDC_LIMIT_RES_BLOCKS)
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d res blocks in down_blocks.%d (sdc's limit)", f->path,
                            SDC_LIMIT_RES_BLOCKS, l);
        if (l == 0) c->num_res_blocks = nr;
        if (nr != c->num_res_blocks)
            return sdc_fail(SDC_ERR_FORMAT, "%s: down_blocks.%d has %d res blocks, down_blocks.0 has %d", f->path, l,
                            nr, c->num_res_blocks);
        const sdc_st_tensor *pin = findf(f, "down_blocks.%d.attentions.0.proj_in.weight", l);
        if (pin) {
            c->linear_proj = pin->ndim == 2;
            c->attn_depth[l] = count_blocks(f, "%sdown_blocks.%d.attentions.0.transformer_blocks.%d.", "", l,
                                            SDC_LIMIT_ATTN_DEPTH);
            const sdc_st_tensor *k = findf(f, "down_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", l);
            if (k && k->ndim == 2 && !c->context_dim) c->context_dim = dimof(k, 1);
        }
    }
    c->n_levels = l;
    if (!c->context_dim)
        c->context_dim = dimof(findf(f, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"), 1);
    return SDC_OK;
}

/* Heads per level. SD 1.x uses 8 heads everywhere, SD 2.x 64-wide heads;
 * diffusers' config says it in attention_head_dim (which, for these models,
 * holds the number of heads) or num_attention_heads; sdc's own single files
 * in __metadata__ sdc.unet.heads. */
static sdc_status unet_heads(sdc_model_files *m, const cJSON *cfg) {
    sdc_unet_config *c = &m->config.unet;
    char where[4200];
    snprintf(where, sizeof where, "%s/unet/config.json", m->path);
    const bool wide = m->config.family == SDC_FAMILY_SD2 || m->config.family == SDC_FAMILY_SDXL;
    for (int l = 0; l < c->n_levels; l++) c->heads[l] = wide ? (c->channels[l] >= 64 ? c->channels[l] / 64 : 1) : 8;
    c->heads_source = m->config.family == SDC_FAMILY_SD2    ? "SD 2.x default: 64-wide heads"
                      : m->config.family == SDC_FAMILY_SDXL ? "SDXL default: 64-wide heads"
                                                            : "SD 1.x default: 8 heads";
    int vals[SDC_MAX_LEVELS], n = 0;
    bool found = false;
    const char *key = "num_attention_heads";
    SDC_TRY(sdc_json_int_list(where, cfg, key, SDC_MAX_LEVELS, 1, SDC_LIMIT_HEADS, &found, vals, &n));
    if (!found) {
        key = "attention_head_dim";
        SDC_TRY(sdc_json_int_list(where, cfg, key, SDC_MAX_LEVELS, 1, SDC_LIMIT_HEADS, &found, vals, &n));
    }
    if (found) {
        if (n != 1 && n != c->n_levels)
            return sdc_fail(SDC_ERR_FORMAT, "%s: \"%s\" has %d values; the U-Net has %d levels", where, key, n,
                            c->n_levels);
        for (int l = 0; l < c->n_levels; l++) c->heads[l] = vals[n == 1 ? 0 : l];
        c->heads_source = strcmp(key, "num_attention_heads") == 0 ? "unet/config.json num_attention_heads"
                                                                  : "unet/config.json attention_head_dim";
    }
    c->norm_groups = 32;
    c->groups_source = "default";
    SDC_TRY(sdc_json_int(where, cfg, "norm_num_groups", 1, SDC_LIMIT_GROUPS, &found, &c->norm_groups));
    if (found) c->groups_source = "unet/config.json norm_num_groups";
    SDC_TRY(sdc_meta_int(m->single, "sdc.unet.norm_groups", 1, SDC_LIMIT_GROUPS, &found, &c->norm_groups));
    if (found) c->groups_source = "__metadata__ sdc.unet.norm_groups";
    SDC_TRY(sdc_meta_int_list(m->single, "sdc.unet.heads", c->n_levels, 1, SDC_LIMIT_HEADS, &found, c->heads));
    if (found) c->heads_source = "__metadata__ sdc.unet.heads";
    return SDC_OK;
}

/* ---- VAE -------------------------------------------------------------- */

static sdc_status vae_config(sdc_model_files *m, const cJSON *cfg) {
    sdc_vae_config *c = &m->config.vae;
    const sdc_st_file *f = m->vae_file;
    const char *p = m->vae_prefix;
    char where[4200];
    snprintf(where, sizeof where, "%s/vae/config.json", m->path);
    const sdc_st_tensor *enc_in = findf(f, "%sencoder.conv_in.weight", p);
    const sdc_st_tensor *dec_in = findf(f, "%sdecoder.conv_in.weight", p);
    const sdc_st_tensor *dec_out = findf(f, "%sdecoder.conv_out.weight", p);
    if (!dec_in || !dec_out || dec_in->ndim != 4 || dec_out->ndim != 4 || (enc_in && enc_in->ndim != 4))
        return sdc_fail(SDC_ERR_FORMAT, "%s: VAE lacks %sdecoder.conv_in.weight or decoder.conv_out.weight "
                        "(or a conv_in / conv_out is not a 4-d weight)", f->path, p);
    c->has_encoder = enc_in != NULL;
    c->channels = enc_in ? dimof(enc_in, 0) : dimof(dec_out, 1);
    c->z_channels = dimof(dec_in, 1);
    c->out_channels = dimof(dec_out, 0);
    const char *up = m->vae_diffusers_names ? "up_blocks" : "up";
    const char *blk = m->vae_diffusers_names ? "resnets" : "block";
    int n = 0;
    while (findf(f, "%sdecoder.%s.%d.%s.0.conv2.weight", p, up, n, blk)) {
        if (n >= SDC_MAX_LEVELS)
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d VAE levels (sdc's limit)", f->path, SDC_MAX_LEVELS);
        n++;
    }
    c->n_levels = n;
    for (int i = 0; i < n; i++) {
        /* original: up.i is level i; diffusers: up_blocks.0 is the deepest */
        int idx = m->vae_diffusers_names ? n - 1 - i : i;
        char name[512];
        snprintf(name, sizeof name, "%sdecoder.%s.%d.%s.0.conv2.weight", p, up, idx, blk);
        const sdc_st_tensor *t = sdc_st_find(f, name);
        int ch = t->ndim == 4 ? dimof(t, 0) : -1;
        if (c->channels < 1 || ch < 1 || ch % c->channels)
            return sdc_fail(SDC_ERR_FORMAT, "%s: VAE tensor %s has %d output channels; expected a multiple of the "
                            "base width %d", f->path, name, ch, c->channels);
        c->channels_mult[i] = ch / c->channels;
    }
    char pre[256];
    snprintf(pre, sizeof pre, "%sdecoder.%s.", p, up);
    for (int i = 0; i < n; i++) {
        int nr = count_blocks(f, m->vae_diffusers_names ? "%s%d.resnets.%d." : "%s%d.block.%d.", pre, i,
                              SDC_LIMIT_RES_BLOCKS + 1) - 1;
        if (nr > SDC_LIMIT_RES_BLOCKS)
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d res blocks in VAE level %s%d (sdc's limit)",
                            f->path, SDC_LIMIT_RES_BLOCKS + 1, pre, i);
        if (i == 0) c->num_res_blocks = nr;
        if (nr != c->num_res_blocks)
            return sdc_fail(SDC_ERR_FORMAT, "%s: VAE decoder level %s%d has %d res blocks, %s0 has %d", f->path, pre,
                            i, nr + 1, pre, c->num_res_blocks + 1);
    }
    bool found = false;
    c->norm_groups = 32;
    c->groups_source = "default";
    SDC_TRY(sdc_json_int(where, cfg, "norm_num_groups", 1, SDC_LIMIT_GROUPS, &found, &c->norm_groups));
    if (found) c->groups_source = "vae/config.json norm_num_groups";
    SDC_TRY(sdc_meta_int(m->single, "sdc.vae.norm_groups", 1, SDC_LIMIT_GROUPS, &found, &c->norm_groups));
    if (found) c->groups_source = "__metadata__ sdc.vae.norm_groups";
    double sf = m->config.family == SDC_FAMILY_SDXL ? 0.13025 : 0.18215;
    SDC_TRY(sdc_json_number(where, cfg, "scaling_factor", 1e-6, 1e6, &found, &sf));
    /* sdc's own single files (the shipped model) say their latent scale */
    const char *sm = m->single ? sdc_st_meta(m->single, "sdc.vae.scale_factor") : NULL;
    if (sm && !sdc_parse_double_strict(sm, 1e-6, 1e6, &sf))
        return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ sdc.vae.scale_factor is \"%.48s%s\"; expected a number "
                        "from 1e-06 to 1e+06", f->path, sm, strlen(sm) > 48 ? "..." : "");
    c->scale_factor = (float)sf;
    if (n == 0 || c->num_res_blocks < 1)
        return sdc_fail(SDC_ERR_FORMAT, "%s: VAE decoder has no up blocks with res blocks (%sdecoder.%s.N)", f->path,
                        p, up);
    return SDC_OK;
}

/* The size the model was trained at: a diffusers unet config's
 * sample_size (latents), sdc's own __metadata__ sdc.image_size (pixels),
 * else 768 for v-prediction SD 2.x and 512 for the rest. */
static sdc_status native_size(sdc_model_files *m, const cJSON *unet_cfg) {
    sdc_model_config *c = &m->config;
    c->image_size = c->family == SDC_FAMILY_SDXL ? 1024 : c->family == SDC_FAMILY_SD2 && c->unet.prediction == SDC_PRED_V ? 768 : 512;
    const int f = sdc_vae_factor(&c->vae);
    char where[4200];
    snprintf(where, sizeof where, "%s/unet/config.json", m->path);
    bool found = false;
    int ss = 0;
    SDC_TRY(sdc_json_int(where, unet_cfg, "sample_size", 1, SDC_LIMIT_IMAGE / f, &found, &ss));
    if (found) c->image_size = ss * f;
    const char *meta = m->single ? sdc_st_meta(m->single, "sdc.image_size") : NULL;
    long v;
    if (meta) {
        if (!sdc_parse_int_strict(meta, f, SDC_LIMIT_IMAGE, &v) || v % f)
            return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ sdc.image_size is \"%.48s%s\"; expected a multiple "
                            "of %d from %d to %d", m->single->path, meta, strlen(meta) > 48 ? "..." : "", f, f,
                            SDC_LIMIT_IMAGE);
        c->image_size = (int)v;
    }
    return SDC_OK;
}

/* ---- single file ------------------------------------------------------ */

static const char *SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
static const char *SD2_TEXT = "cond_stage_model.model.token_embedding.weight";
static const char *UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight";
static const char *VAE_KEY = "first_stage_model.decoder.conv_in.weight";

static sdc_status recognise_single(sdc_model_files *m) {
    sdc_st_file *f = m->single;
    bool unet = sdc_st_find(f, UNET_KEY), vae = sdc_st_find(f, VAE_KEY);
    bool sd1 = sdc_st_find(f, SD1_TEXT), sd2 = sdc_st_find(f, SD2_TEXT), xl = false;
    SDC_TRY(sdc_sdxl_recognise_single(m, &xl));
    if (xl) return SDC_OK;
    if (!unet || !vae || (!sd1 && !sd2)) {
        char missing[1024] = "";
        if (!unet) strcat(missing, "\n  ");
        if (!unet) strcat(missing, UNET_KEY);
        if (!vae) strcat(missing, "\n  ");
        if (!vae) strcat(missing, VAE_KEY);
        if (!sd1 && !sd2) {
            strcat(missing, "\n  ");
            strcat(missing, SD1_TEXT);
            strcat(missing, " (SD 1.x) or\n  ");
            strcat(missing, SD2_TEXT);
            strcat(missing, " (SD 2.x)");
        }
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: not a Stable Diffusion 1.x, 2.x or XL checkpoint: expected tensors missing:%s\n"
                        "  (the file has %d tensors, first: %s)",
                        f->path, missing, f->n_tensors,
                        f->n_tensors ? f->tensors[0].name : "none");
    }
    m->config.family = sd2 ? SDC_FAMILY_SD2 : SDC_FAMILY_SD1;
    m->unet_file = m->vae_file = m->text_file = f;
    m->unet_prefix = "model.diffusion_model.";
    m->vae_prefix = "first_stage_model.";
    m->text_prefix = sd2 ? "cond_stage_model.model." : "cond_stage_model.transformer.";
    m->text_naming = sd2 ? SDC_TEXT_OPENCLIP : SDC_TEXT_HF;
    return SDC_OK;
}

/* SD 2.x single files do not say whether they are epsilon or v models.
 * Like ComfyUI, look at the spread of one norm bias that v-trained models
 * move far from its initialisation. */
static void guess_prediction(sdc_model_files *m) {
    sdc_unet_config *c = &m->config.unet;
    c->prediction = SDC_PRED_EPSILON;
    c->prediction_source = m->config.family == SDC_FAMILY_SDXL ? "assumed: SDXL base models predict noise"
                                                                : "assumed: SD 1.x models predict noise";
    if (m->config.family != SDC_FAMILY_SD2) return;
    c->prediction_source = "assumed: the file does not say; 768-v models predict v";
    const sdc_st_tensor *t = findf(m->unet_file, "%soutput_blocks.11.1.transformer_blocks.0.norm1.bias", m->unet_prefix);
    if (!t || !sdc_dtype_is_float(t->dtype) || t->numel <= 0 || c->in_channels != 4) return;
    float *v = malloc((size_t)t->numel * sizeof(float));
    if (!v || sdc_st_to_f32(m->unet_file, t, v) != SDC_OK) {
        free(v);
        return;
    }
    double mean = 0, var = 0;
    for (int64_t i = 0; i < t->numel; i++) mean += v[i];
    mean /= (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) var += (v[i] - mean) * (v[i] - mean);
    free(v);
    double sd = sqrt(var / (double)t->numel);
    c->prediction = sd > 0.09 ? SDC_PRED_V : SDC_PRED_EPSILON;
    c->prediction_source = "heuristic (spread of output_blocks.11.1 norm1.bias)";
}

/* sdc's own single files (the shipped model) say what their U-Net
 * predicts, as the yaml beside a v-model says it for other tools. */
static sdc_status prediction_from_metadata(sdc_model_files *m) {
    const char *p = m->single ? sdc_st_meta(m->single, "sdc.prediction") : NULL;
    if (!p) return SDC_OK;
    if (strcmp(p, "v") == 0)
        m->config.unet.prediction = SDC_PRED_V;
    else if (strcmp(p, "epsilon") == 0)
        m->config.unet.prediction = SDC_PRED_EPSILON;
    else
        return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ sdc.prediction is \"%s\"; expected \"epsilon\" or \"v\"",
                        m->single->path, p);
    m->config.unet.prediction_source = "__metadata__ sdc.prediction";
    return SDC_OK;
}

/* ---- diffusers folder ------------------------------------------------- */

sdc_status sdc_model_open_component(const char *root, const char *sub, const char *const *names,
                                 sdc_st_file **out) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    for (int i = 0; names[i]; i++) {
        char *p = path_join(dir, names[i]);
        if (!p) return sdc_fail(SDC_ERR_OOM, "out of memory");
        if (file_exists(p)) {
            sdc_status st = sdc_st_open(p, out);
            free(p);
            return st;
        }
        free(p);
    }
    char *bin = path_join(dir, strncmp(sub, "text_encoder", 12) ? "diffusion_pytorch_model.bin" : "pytorch_model.bin");
    bool pickle = bin && file_exists(bin);
    free(bin);
    if (pickle)
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: has only a pickle .bin file; sdc reads .safetensors "
                        "(re-save the pipeline with save_pretrained(..., safe_serialization=True))",
                        dir);
    return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: expected %s (diffusers layout)", dir, names[0]);
}

static bool dir_exists(const char *root, const char *sub) {
    char *p = path_join(root, sub);
    struct stat sb;
    bool ok = p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(p);
    return ok;
}

/* model_index.json names the pipeline; one sdc does not run is refused by
 * name rather than half-loaded. *out: the parsed file (NULL when absent). */
static sdc_status check_model_index(const char *root, cJSON **out) {
    *out = NULL;
    char *path = path_join(root, "model_index.json");
    if (!path) return sdc_fail(SDC_ERR_OOM, "out of memory");
    cJSON *j = NULL;
    sdc_status st = read_json(path, &j);
    bool found = false;
    const char *cls = NULL;
    if (st == SDC_OK) st = sdc_json_string(path, j, "_class_name", &found, &cls);
    if (st == SDC_OK && found) {
        static const char *const ok[] = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                         "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", NULL};
        bool known = false;
        for (int i = 0; ok[i]; i++) known |= strcmp(cls, ok[i]) == 0;
        if (!known)
            st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: _class_name is \"%s\"; sdc runs StableDiffusionPipeline and "
                          "StableDiffusionXLPipeline models (SD 1.x, 2.x and XL)", path, cls);
    }
    free(path);
    if (st != SDC_OK) {
        cJSON_Delete(j);
        return st;
    }
    *out = j;
    return SDC_OK;
}

static sdc_status open_diffusers(sdc_model_files *m) {
    static const char *const unet_names[] = {"diffusion_pytorch_model.safetensors",
                                             "diffusion_pytorch_model.fp16.safetensors", NULL};
    static const char *const text_names[] = {"model.safetensors", "model.fp16.safetensors", NULL};
    const char *root = m->path;
    m->layout = SDC_LAYOUT_DIFFUSERS;
    if (!dir_exists(root, "unet"))
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: a folder, but not a diffusers model: expected the subfolders "
                        "unet/, vae/ and text_encoder/ (or give a single .safetensors file)", root);
    cJSON *index = NULL;
    SDC_TRY(check_model_index(root, &index));
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(index, "_class_name");
    const bool xl_class = cJSON_IsString(cls) && strstr(cls->valuestring, "XL");
    sdc_status st = sdc_model_open_component(root, "unet", unet_names, &m->unet_file);
    if (st == SDC_OK && (xl_class || dir_exists(root, "text_encoder_2"))) st = sdc_sdxl_open_diffusers(m, index);
    cJSON_Delete(index);
    SDC_TRY(st);
    if (!m->text2_file && sdc_st_find(m->unet_file, "add_embedding.linear_1.weight"))
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: an SDXL-style U-Net (add_embedding.*) but the folder has no "
                        "text_encoder_2/: an SDXL model needs both text encoders", root);
    SDC_TRY(sdc_model_open_component(root, "vae", unet_names, &m->vae_file));
    SDC_TRY(sdc_model_open_component(root, "text_encoder", text_names, &m->text_file));
    m->unet_prefix = m->vae_prefix = m->text_prefix = "";
    m->unet_diffusers_names = m->vae_diffusers_names = true;
    m->text_naming = SDC_TEXT_HF;
    if (!sdc_st_find(m->text_file, "text_model.embeddings.token_embedding.weight"))
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: expected a CLIP text model (text_model.embeddings.token_embedding.weight)",
                        m->text_file->path);
    char *v = path_join(root, "tokenizer/vocab.json"), *g = path_join(root, "tokenizer/merges.txt");
    if (v && g && file_exists(v) && file_exists(g)) {
        m->tokenizer_vocab = v;
        m->tokenizer_merges = g;
    } else {
        free(v);
        free(g);
    }
    return SDC_OK;
}

/* ---- configuration files ---------------------------------------------- */

typedef struct configs {
    cJSON *unet, *vae, *text, *sched, *text2;
} configs;

static sdc_status read_configs(const char *root, configs *c) {
    static const char *const names[5] = {"unet/config.json", "vae/config.json", "text_encoder/config.json",
                                         "scheduler/scheduler_config.json", "text_encoder_2/config.json"};
    cJSON **dst[5] = {&c->unet, &c->vae, &c->text, &c->sched, &c->text2};
    for (int i = 0; i < 5; i++) {
        char *p = path_join(root, names[i]);
        if (!p) return sdc_fail(SDC_ERR_OOM, "out of memory");
        sdc_status st = read_json(p, dst[i]);
        free(p);
        SDC_TRY(st);
    }
    return SDC_OK;
}

/* The text encoder's activation, heads and epsilon; which layer feeds the
 * U-Net; the padding token. */
static sdc_status text_settings(sdc_model_files *m, const cJSON *cfg) {
    sdc_text_config *t = &m->config.text;
    char where[4200];
    snprintf(where, sizeof where, "%s/text_encoder/config.json", m->path);
    bool found = false;
    if (m->layout == SDC_LAYOUT_DIFFUSERS && m->config.family != SDC_FAMILY_SDXL) {
        /* quick_gelu: OpenAI CLIP (SD 1.x); gelu: OpenCLIP (SD 2.x) */
        static const char *const acts[] = {"quick_gelu", "gelu", NULL};
        const char *act = "quick_gelu";
        SDC_TRY(sdc_json_enum(where, cfg, "hidden_act", acts, &found, &act));
        m->config.family = strcmp(act, "gelu") == 0 ? SDC_FAMILY_SD2 : SDC_FAMILY_SD1;
    }
    const bool sd2 = m->config.family == SDC_FAMILY_SD2;
    t->act = sd2 ? SDC_ACT_GELU : SDC_ACT_QUICK_GELU;
    t->heads_source = "default: 64-wide heads";
    SDC_TRY(sdc_json_int(where, cfg, "num_attention_heads", 1, SDC_LIMIT_HEADS, &found, &t->heads));
    if (found) t->heads_source = "text_encoder/config.json num_attention_heads";
    SDC_TRY(sdc_meta_int(m->single, "sdc.text.heads", 1, SDC_LIMIT_HEADS, &found, &t->heads));
    if (found) t->heads_source = "__metadata__ sdc.text.heads";
    double eps = t->eps;
    SDC_TRY(sdc_json_number(where, cfg, "layer_norm_eps", 1e-12, 0.1, &found, &eps));
    t->eps = (float)eps;
    /* SD 2.x feeds the U-Net from the penultimate OpenCLIP layer; the
     * diffusers conversion already dropped the last layer */
    t->layers_used = (sd2 && m->layout == SDC_LAYOUT_SINGLE_FILE) ? t->layers - 1 : t->layers;
    t->pad_id = sd2 ? 0 : 49407;
    return SDC_OK;
}

/* scheduler/scheduler_config.json: spacing, offset, prediction type, and
 * the noise schedule, which must be the one sdc implements. */
static sdc_status sched_settings(sdc_model_files *m, const cJSON *cfg) {
    char where[4200];
    snprintf(where, sizeof where, "%s/scheduler/scheduler_config.json", m->path);
    bool found = false;
    m->config.sched.steps_offset = 1;
    SDC_TRY(sdc_json_int(where, cfg, "steps_offset", 0, 999, &found, &m->config.sched.steps_offset));
    static const char *const spacings[] = {"leading", "trailing", "linspace", NULL};
    SDC_TRY(sdc_json_enum(where, cfg, "timestep_spacing", spacings, &found, &m->config.sched.spacing));
    static const char *const preds[] = {"epsilon", "v_prediction", NULL};
    const char *pt = NULL;
    SDC_TRY(sdc_json_enum(where, cfg, "prediction_type", preds, &found, &pt));
    if (found) {
        m->config.unet.prediction = strcmp(pt, "v_prediction") == 0 ? SDC_PRED_V : SDC_PRED_EPSILON;
        m->config.unet.prediction_source = "scheduler/scheduler_config.json";
    }
    /* sdc's samplers use SD's schedule: 1000 steps, scaled_linear betas
     * from 0.00085 to 0.012 */
    int n = 1000;
    SDC_TRY(sdc_json_int(where, cfg, "num_train_timesteps", 1, 100000, &found, &n));
    if (n != 1000)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: \"num_train_timesteps\" is %d; sdc implements SD's 1000", where, n);
    static const char *const sched[] = {"scaled_linear", NULL};
    const char *bs = NULL;
    SDC_TRY(sdc_json_enum(where, cfg, "beta_schedule", sched, &found, &bs));
    static const char *const keys[2] = {"beta_start", "beta_end"};
    const double want[2] = {0.00085, 0.012};
    for (int i = 0; i < 2; i++) {
        double v = want[i];
        SDC_TRY(sdc_json_number(where, cfg, keys[i], 0.0, 1.0, &found, &v));
        if (fabs(v - want[i]) > 1e-9)
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: \"%s\" is %g; sdc implements SD's schedule (%g)", where,
                            keys[i], v, want[i]);
    }
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(cfg, "trained_betas");
    if (tb && !cJSON_IsNull(tb))
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: \"trained_betas\" is set; sdc implements SD's scaled_linear "
                        "schedule only", where);
    return SDC_OK;
}

/* ---- entry ------------------------------------------------------------ */

static sdc_status open_model(sdc_model_files *m, configs *cf) {
    struct stat sb;
    if (stat(m->path, &sb) != 0) return sdc_fail(SDC_ERR_IO, "%s: %s", m->path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        SDC_TRY(open_diffusers(m));
        SDC_TRY(read_configs(m->path, cf));
    } else {
        m->layout = SDC_LAYOUT_SINGLE_FILE;
        SDC_TRY(sdc_st_open(m->path, &m->single));
        SDC_TRY(recognise_single(m));
    }
    m->config.layout = m->layout;
    SDC_TRY(check_dims(m->unet_file));
    if (m->vae_file != m->unet_file) SDC_TRY(check_dims(m->vae_file));
    if (m->text_file != m->unet_file) SDC_TRY(check_dims(m->text_file));
    if (m->text2_file && m->text2_file != m->unet_file) SDC_TRY(check_dims(m->text2_file));
    SDC_TRY(sdc_model_text_shape(m->text_file, m->text_prefix, m->text_naming, &m->config.text));
    SDC_TRY(text_settings(m, cf->text));
    SDC_TRY(m->unet_diffusers_names ? unet_config_diffusers(m) : unet_config_original(m));
    SDC_TRY(unet_heads(m, cf->unet));
    if (m->config.family == SDC_FAMILY_SDXL) SDC_TRY(sdc_sdxl_configure(m, cf->unet, cf->text2));
    guess_prediction(m);
    SDC_TRY(sched_settings(m, cf->sched));
    SDC_TRY(prediction_from_metadata(m));
    SDC_TRY(vae_config(m, cf->vae));
    SDC_TRY(sdc_model_check(m, cf->unet, cf->vae, cf->text, cf->text2));
    return native_size(m, cf->unet);
}

sdc_status sdc_model_open(const char *path, sdc_model_files **out) {
    *out = NULL;
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "no model path given");
    sdc_model_files *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    configs cf = {0};
    sdc_status st = open_model(m, &cf);
    cJSON_Delete(cf.unet);
    cJSON_Delete(cf.vae);
    cJSON_Delete(cf.text);
    cJSON_Delete(cf.sched);
    cJSON_Delete(cf.text2);
    if (st != SDC_OK) {
        sdc_model_close(m);
        return st;
    }
    *out = m;
    return SDC_OK;
}

sdc_status sdc_model_use_vae(sdc_model_files *m, const char *path) {
    sdc_st_file *f = NULL;
    SDC_TRY(sdc_st_open(path, &f));
    /* diffusers' AutoencoderKL names (decoder.up_blocks.*) or the original
     * ones (decoder.up.*), bare or under a checkpoint's first_stage_model. */
    static const char *const prefixes[2] = {"", "first_stage_model."};
    const char *prefix = NULL;
    bool diffusers = false;
    for (int i = 0; i < 2 && !prefix; i++) {
        char k[64];
        snprintf(k, sizeof k, "%sdecoder.up_blocks.", prefixes[i]);
        if (sdc_st_find_prefix(f, k)) prefix = prefixes[i], diffusers = true;
        snprintf(k, sizeof k, "%sdecoder.up.", prefixes[i]);
        if (!prefix && sdc_st_find_prefix(f, k)) prefix = prefixes[i];
    }
    if (!prefix) {
        sdc_status st = sdc_fail(SDC_ERR_FORMAT, "--vae %s: not a VAE: no decoder.up.* (original names) or "
                                 "decoder.up_blocks.* (diffusers' AutoencoderKL) tensors", path);
        sdc_st_close(f);
        return st;
    }
    sdc_model_files v = *m; /* the VAE's configuration from the new file; the model's latent scale */
    v.vae_file = f;
    v.vae_prefix = prefix;
    v.vae_diffusers_names = diffusers;
    const float scale = m->config.vae.scale_factor;
    const char *groups_source = m->config.vae.groups_source;
    const int groups = m->config.vae.norm_groups;
    sdc_status st = vae_config(&v, NULL);
    if (st == SDC_OK) {
        v.config.vae.scale_factor = scale;
        v.config.vae.norm_groups = groups; /* a file of its own says nothing of them: as the model's */
        v.config.vae.groups_source = groups_source;
        if (v.config.vae.z_channels != m->config.unet.in_channels && v.config.vae.z_channels != m->config.unet.out_channels)
            st = sdc_fail(SDC_ERR_UNSUPPORTED, "--vae %s: its latents have %d channels, the model's U-Net %d", path,
                          v.config.vae.z_channels, m->config.unet.out_channels);
        else if (v.config.vae.z_channels != m->config.vae.z_channels || sdc_vae_factor(&v.config.vae) !=
                                                                            sdc_vae_factor(&m->config.vae))
            st = sdc_fail(SDC_ERR_UNSUPPORTED, "--vae %s: %d latent channels and a factor of %d, the model's VAE %d "
                          "and %d: a VAE for another model family?", path, v.config.vae.z_channels,
                          sdc_vae_factor(&v.config.vae), m->config.vae.z_channels, sdc_vae_factor(&m->config.vae));
    }
    if (st != SDC_OK) {
        sdc_st_close(f);
        return st;
    }
    m->config.vae = v.config.vae;
    if (m->single) m->vae_own = f;     /* the single file stays the U-Net's and text encoder's */
    else sdc_st_close(m->vae_file);    /* vae/ of a diffusers folder: no longer read */
    m->vae_file = f;
    m->vae_prefix = prefix;
    m->vae_diffusers_names = diffusers;
    return SDC_OK;
}

void sdc_model_close(sdc_model_files *m) {
    if (!m) return;
    if (m->single) {
        sdc_st_close(m->single);
        sdc_st_close(m->vae_own);
    } else {
        sdc_st_close(m->unet_file);
        sdc_st_close(m->vae_file);
        sdc_st_close(m->text_file);
        sdc_st_close(m->text2_file);
    }
    free(m->tokenizer_vocab);
    free(m->tokenizer_merges);
    free(m->path);
    free(m);
}
