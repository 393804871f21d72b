/* model.c - open a checkpoint (single file or diffusers folder), recognise
 * its layout and family, derive the configuration from tensor names and
 * shapes. Names follow the checkpoint keys so they can be grepped. */
#include "model.h"
#include "vae.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- small lookups ---------------------------------------------------- */

static const sdc_st_tensor *findf(const sdc_st_file *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const sdc_st_tensor *findf(const sdc_st_file *f, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return f ? sdc_st_find(f, name) : NULL;
}

/* dim d of a tensor, or -1 when the tensor is absent or has fewer dims */
static int dimof(const sdc_st_tensor *t, int d) {
    return (t && d < t->ndim) ? (int)t->shape[d] : -1;
}

static bool has_prefix(const sdc_st_file *f, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, prefix, n) == 0) return true;
    return false;
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
    FILE *fp = fopen(path, "rb");
    if (!fp) return SDC_OK;
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n < 0 || n > (1 << 24) || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return sdc_fail(SDC_ERR_FORMAT, "%s: unreadable or larger than 16 MiB", path);
    }
    buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(fp);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    buf[got] = '\0';
    cJSON *j = cJSON_ParseWithLength(buf, got);
    free(buf);
    if (!j) return sdc_fail(SDC_ERR_FORMAT, "%s: not valid JSON", path);
    *out = j;
    return SDC_OK;
}

static int json_int(const cJSON *j, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* ---- names ------------------------------------------------------------ */

const char *sdc_family_name(sdc_family f) {
    switch (f) {
    case SDC_FAMILY_SD1: return "SD 1.x";
    case SDC_FAMILY_SD2: return "SD 2.x";
    default: return "unknown";
    }
}

const char *sdc_layout_name(sdc_layout l) {
    return l == SDC_LAYOUT_DIFFUSERS ? "diffusers folder" : "single file (original layout)";
}

int sdc_text_default_heads(int width) { return width >= 64 ? width / 64 : 1; }

/* ---- text encoder ----------------------------------------------------- */

static sdc_status text_config(sdc_model_files *m) {
    sdc_text_config *c = &m->config.text;
    const sdc_st_file *f = m->text_file;
    const char *p = m->text_prefix;
    const sdc_st_tensor *tok, *pos, *fc1;
    if (m->text_naming == SDC_TEXT_HF) {
        tok = findf(f, "%stext_model.embeddings.token_embedding.weight", p);
        pos = findf(f, "%stext_model.embeddings.position_embedding.weight", p);
        fc1 = findf(f, "%stext_model.encoder.layers.0.mlp.fc1.weight", p);
        while (findf(f, "%stext_model.encoder.layers.%d.self_attn.q_proj.weight", p, c->layers))
            c->layers++;
    } else {
        tok = findf(f, "%stoken_embedding.weight", p);
        pos = findf(f, "%spositional_embedding", p);
        fc1 = findf(f, "%stransformer.resblocks.0.mlp.c_fc.weight", p);
        while (findf(f, "%stransformer.resblocks.%d.attn.in_proj_weight", p, c->layers))
            c->layers++;
    }
    if (!tok || tok->ndim != 2 || !pos || pos->ndim != 2 || !fc1 || c->layers == 0)
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
    if (dimof(pos, 1) != c->width)
        return sdc_fail(SDC_ERR_FORMAT, "%s: position embedding width %d != token embedding width %d",
                        f->path, dimof(pos, 1), c->width);
    return SDC_OK;
}

/* ---- U-Net ------------------------------------------------------------ */

static int count_blocks(const sdc_st_file *f, const char *fmt_prefix_index, const char *pre, int a) {
    int n = 0;
    char name[512];
    for (;;) {
        snprintf(name, sizeof name, fmt_prefix_index, pre, a, n);
        size_t len = strlen(name);
        bool found = false;
        for (int i = 0; i < f->n_tensors && !found; i++)
            found = strncmp(f->tensors[i].name, name, len) == 0;
        if (!found) return n;
        n++;
    }
}

static sdc_status unet_config_original(sdc_model_files *m) {
    sdc_unet_config *c = &m->config.unet;
    const sdc_st_file *f = m->unet_file;
    const char *p = m->unet_prefix;
    const sdc_st_tensor *conv_in = findf(f, "%sinput_blocks.0.0.weight", p);
    const sdc_st_tensor *out = findf(f, "%sout.2.weight", p);
    const sdc_st_tensor *temb = findf(f, "%stime_embed.0.weight", p);
    if (!conv_in || conv_in->ndim != 4 || !out || !temb)
        return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net lacks %sinput_blocks.0.0.weight, out.2.weight or time_embed.0.weight",
                        f->path, p);
    c->model_channels = dimof(conv_in, 0);
    c->in_channels = dimof(conv_in, 1);
    c->out_channels = dimof(out, 0);
    c->time_embed_dim = dimof(temb, 0);
    int level = 0, res_in_level = 0;
    for (int i = 1;; i++) {
        const sdc_st_tensor *res = findf(f, "%sinput_blocks.%d.0.out_layers.3.weight", p, i);
        if (res) {
            if (level >= SDC_MAX_LEVELS)
                return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: more than %d U-Net levels", f->path, SDC_MAX_LEVELS);
            c->channels[level] = dimof(res, 0);
            res_in_level++;
            if (level == 0) c->num_res_blocks = res_in_level;
            const sdc_st_tensor *pin = findf(f, "%sinput_blocks.%d.1.proj_in.weight", p, i);
            if (pin) {
                c->linear_proj = pin->ndim == 2;
                c->attn_depth[level] = count_blocks(f, "%sinput_blocks.%d.1.transformer_blocks.%d.", p, i);
                const sdc_st_tensor *k = findf(f, "%sinput_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", p, i);
                if (k) c->context_dim = dimof(k, 1);
            }
        } else if (findf(f, "%sinput_blocks.%d.0.op.weight", p, i)) {
            level++;
            res_in_level = 0;
        } else {
            break;
        }
    }
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
    if (!conv_in || conv_in->ndim != 4 || !out || !temb)
        return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net lacks conv_in.weight, conv_out.weight or time_embedding.linear_1.weight",
                        f->path);
    c->model_channels = dimof(conv_in, 0);
    c->in_channels = dimof(conv_in, 1);
    c->out_channels = dimof(out, 0);
    c->time_embed_dim = dimof(temb, 0);
    int l = 0;
    for (; l < SDC_MAX_LEVELS && findf(f, "down_blocks.%d.resnets.0.conv1.weight", l); l++) {
        c->channels[l] = dimof(findf(f, "down_blocks.%d.resnets.0.conv2.weight", l), 0);
        const sdc_st_tensor *pin = findf(f, "down_blocks.%d.attentions.0.proj_in.weight", l);
        if (pin) {
            c->linear_proj = pin->ndim == 2;
            c->attn_depth[l] = count_blocks(f, "%sdown_blocks.%d.attentions.0.transformer_blocks.%d.", "", l);
            const sdc_st_tensor *k = findf(f, "down_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", l);
            if (k) c->context_dim = dimof(k, 1);
        }
    }
    c->n_levels = l;
    c->num_res_blocks = count_blocks(f, "%sdown_blocks.%d.resnets.%d.", "", 0);
    if (!c->context_dim)
        c->context_dim = dimof(findf(f, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"), 1);
    return SDC_OK;
}

/* Heads per level. SD 1.x uses 8 heads everywhere, SD 2.x 64-wide heads;
 * diffusers' config says it in attention_head_dim (which, for these models,
 * holds the number of heads) or num_attention_heads. */
static void unet_heads(sdc_model_files *m, const cJSON *cfg) {
    sdc_unet_config *c = &m->config.unet;
    for (int l = 0; l < c->n_levels; l++)
        c->heads[l] = m->config.family == SDC_FAMILY_SD2 ? c->channels[l] / 64 : 8;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cfg, "num_attention_heads");
    if (!h || cJSON_IsNull(h)) h = cJSON_GetObjectItemCaseSensitive(cfg, "attention_head_dim");
    if (cJSON_IsNumber(h)) {
        for (int l = 0; l < c->n_levels; l++) c->heads[l] = h->valueint;
    } else if (cJSON_IsArray(h) && cJSON_GetArraySize(h) >= c->n_levels) {
        for (int l = 0; l < c->n_levels; l++) c->heads[l] = cJSON_GetArrayItem(h, l)->valueint;
    }
    c->norm_groups = json_int(cfg, "norm_num_groups", 32);
    const char *g = m->single ? sdc_st_meta(m->single, "sdc.unet.norm_groups") : NULL;
    if (g) c->norm_groups = atoi(g);
    /* single files written by sdc's own tools may say it in __metadata__ */
    const char *meta = m->single ? sdc_st_meta(m->single, "sdc.unet.heads") : NULL;
    for (int l = 0; meta && l < c->n_levels; l++) {
        c->heads[l] = atoi(meta);
        meta = strchr(meta, ',');
        if (meta) meta++;
    }
}

/* ---- VAE -------------------------------------------------------------- */

static sdc_status vae_config(sdc_model_files *m, const cJSON *cfg) {
    sdc_vae_config *c = &m->config.vae;
    const sdc_st_file *f = m->vae_file;
    const char *p = m->vae_prefix;
    const sdc_st_tensor *enc_in = findf(f, "%sencoder.conv_in.weight", p);
    const sdc_st_tensor *dec_in = findf(f, "%sdecoder.conv_in.weight", p);
    const sdc_st_tensor *dec_out = findf(f, "%sdecoder.conv_out.weight", p);
    if (!dec_in || !dec_out || dec_in->ndim != 4 || dec_out->ndim != 4)
        return sdc_fail(SDC_ERR_FORMAT, "%s: VAE lacks %sdecoder.conv_in.weight or decoder.conv_out.weight",
                        f->path, p);
    c->has_encoder = enc_in != NULL;
    c->channels = enc_in ? dimof(enc_in, 0) : dimof(dec_out, 1);
    c->z_channels = dimof(dec_in, 1);
    const char *up = m->vae_diffusers_names ? "up_blocks" : "up";
    const char *blk = m->vae_diffusers_names ? "resnets" : "block";
    int n = 0;
    while (n < SDC_MAX_LEVELS && findf(f, "%sdecoder.%s.%d.%s.0.conv2.weight", p, up, n, blk)) n++;
    c->n_levels = n;
    for (int i = 0; i < n; i++) {
        /* original: up.i is level i; diffusers: up_blocks.0 is the deepest */
        int idx = m->vae_diffusers_names ? n - 1 - i : i;
        int ch = dimof(findf(f, "%sdecoder.%s.%d.%s.0.conv2.weight", p, up, idx, blk), 0);
        c->channels_mult[i] = c->channels > 0 ? ch / c->channels : 0;
    }
    char pre[256];
    snprintf(pre, sizeof pre, "%sdecoder.%s.", p, up);
    c->num_res_blocks = count_blocks(f, m->vae_diffusers_names ? "%s%d.resnets.%d." : "%s%d.block.%d.", pre, 0) - 1;
    c->norm_groups = json_int(cfg, "norm_num_groups", 32);
    const char *g = m->single ? sdc_st_meta(m->single, "sdc.vae.norm_groups") : NULL;
    if (g) c->norm_groups = atoi(g);
    c->scale_factor = 0.18215f;
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(cfg, "scaling_factor");
    if (cJSON_IsNumber(sf)) c->scale_factor = (float)sf->valuedouble;
    /* sdc's own single files (the shipped model) say their latent scale */
    const char *sm = m->single ? sdc_st_meta(m->single, "sdc.vae.scale_factor") : NULL;
    if (sm) {
        char *end;
        double v = strtod(sm, &end);
        if (end == sm || *end || !(v > 0.0) || v > 1e6)
            return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ sdc.vae.scale_factor is \"%s\"; expected a positive "
                            "number", f->path, sm);
        c->scale_factor = (float)v;
    }
    if (n == 0 || c->num_res_blocks < 1)
        return sdc_fail(SDC_ERR_FORMAT, "%s: VAE decoder has no up blocks (%sdecoder.%s.N)", f->path, p, up);
    return SDC_OK;
}

/* The size the model was trained at: a diffusers unet config's
 * sample_size (latents), sdc's own __metadata__ sdc.image_size (pixels),
 * else 768 for v-prediction SD 2.x and 512 for the rest. */
static sdc_status native_size(sdc_model_files *m, const cJSON *unet_cfg) {
    sdc_model_config *c = &m->config;
    c->image_size = c->family == SDC_FAMILY_SD2 && c->unet.prediction == SDC_PRED_V ? 768 : 512;
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(unet_cfg, "sample_size");
    if (cJSON_IsNumber(ss) && ss->valueint > 0 && ss->valueint <= 512) c->image_size = ss->valueint * sdc_vae_factor(&c->vae);
    const char *meta = m->single ? sdc_st_meta(m->single, "sdc.image_size") : NULL;
    if (meta) {
        char *end;
        long v = strtol(meta, &end, 10);
        int f = sdc_vae_factor(&c->vae);
        if (end == meta || *end || v < f || v > 4096 || v % f)
            return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ sdc.image_size is \"%s\"; expected a multiple of %d "
                            "from %d to 4096", m->single->path, meta, f, f);
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
    bool sd1 = sdc_st_find(f, SD1_TEXT), sd2 = sdc_st_find(f, SD2_TEXT);
    if (has_prefix(f, "conditioner.embedders."))
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: this is an SDXL checkpoint (conditioner.embedders.*); "
                        "sdc runs SD 1.x and SD 2.x models", f->path);
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
                        "%s: not a Stable Diffusion 1.x/2.x checkpoint: expected tensors missing:%s\n"
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
    c->prediction_source = "assumed: SD 1.x models predict noise";
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

static sdc_status open_component(const char *root, const char *sub, const char *const *names,
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
    char *bin = path_join(dir, strcmp(sub, "text_encoder") ? "diffusion_pytorch_model.bin" : "pytorch_model.bin");
    bool pickle = bin && file_exists(bin);
    free(bin);
    if (pickle)
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: has only a pickle .bin file; sdc reads .safetensors "
                        "(re-save the pipeline with save_pretrained(..., safe_serialization=True))",
                        dir);
    return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: expected %s (diffusers layout)", dir, names[0]);
}

static sdc_status open_diffusers(sdc_model_files *m) {
    static const char *const unet_names[] = {"diffusion_pytorch_model.safetensors",
                                             "diffusion_pytorch_model.fp16.safetensors", NULL};
    static const char *const text_names[] = {"model.safetensors", "model.fp16.safetensors", NULL};
    const char *root = m->path;
    m->layout = SDC_LAYOUT_DIFFUSERS;
    char *probe = path_join(root, "unet");
    struct stat sb;
    bool has_unet = probe && stat(probe, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(probe);
    if (!has_unet)
        return sdc_fail(SDC_ERR_UNSUPPORTED,
                        "%s: a folder, but not a diffusers model: expected the subfolders "
                        "unet/, vae/ and text_encoder/ (or give a single .safetensors file)", root);
    SDC_TRY(open_component(root, "unet", unet_names, &m->unet_file));
    SDC_TRY(open_component(root, "vae", unet_names, &m->vae_file));
    SDC_TRY(open_component(root, "text_encoder", text_names, &m->text_file));
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

/* ---- entry ------------------------------------------------------------ */

sdc_status sdc_model_open(const char *path, sdc_model_files **out) {
    *out = NULL;
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "no model path given");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sdc_fail(SDC_ERR_IO, "%s: %s", path, strerror(errno));
    sdc_model_files *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    cJSON *unet_cfg = NULL, *vae_cfg = NULL, *text_cfg = NULL, *sched_cfg = NULL;
    sdc_status st;
    if (S_ISDIR(sb.st_mode)) {
        st = open_diffusers(m);
        if (st == SDC_OK) {
            char *a = path_join(path, "unet/config.json"), *b = path_join(path, "vae/config.json"),
                 *c = path_join(path, "text_encoder/config.json"), *d = path_join(path, "scheduler/scheduler_config.json");
            st = (a && b && c && d) ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory");
            if (st == SDC_OK) st = read_json(a, &unet_cfg);
            if (st == SDC_OK) st = read_json(b, &vae_cfg);
            if (st == SDC_OK) st = read_json(c, &text_cfg);
            if (st == SDC_OK) st = read_json(d, &sched_cfg);
            free(a), free(b), free(c), free(d);
        }
    } else {
        m->layout = SDC_LAYOUT_SINGLE_FILE;
        st = sdc_st_open(path, &m->single);
        if (st == SDC_OK) st = recognise_single(m);
    }
    if (st == SDC_OK) st = text_config(m);
    if (st == SDC_OK) {
        sdc_text_config *t = &m->config.text;
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(text_cfg, "hidden_act");
        if (m->layout == SDC_LAYOUT_DIFFUSERS) /* quick_gelu: OpenAI CLIP (SD 1.x); gelu: OpenCLIP (SD 2.x) */
            m->config.family = cJSON_IsString(act) && strcmp(act->valuestring, "gelu") == 0 ? SDC_FAMILY_SD2
                                                                                            : SDC_FAMILY_SD1;
        bool sd2 = m->config.family == SDC_FAMILY_SD2;
        t->act = sd2 ? SDC_ACT_GELU : SDC_ACT_QUICK_GELU;
        t->heads = json_int(text_cfg, "num_attention_heads", t->heads);
        const char *meta = m->single ? sdc_st_meta(m->single, "sdc.text.heads") : NULL;
        if (meta) t->heads = atoi(meta);
        /* SD 2.x feeds the U-Net from the penultimate OpenCLIP layer; the
         * diffusers conversion already dropped the last layer */
        t->layers_used = (sd2 && m->layout == SDC_LAYOUT_SINGLE_FILE) ? t->layers - 1 : t->layers;
        t->pad_id = sd2 ? 0 : 49407;
        if (t->heads <= 0 || t->width % t->heads != 0)
            st = sdc_fail(SDC_ERR_FORMAT, "%s: text width %d is not divisible by %d heads",
                          m->text_file->path, t->width, t->heads);
    }
    if (st == SDC_OK)
        st = m->unet_diffusers_names ? unet_config_diffusers(m) : unet_config_original(m);
    if (st == SDC_OK) {
        unet_heads(m, unet_cfg);
        guess_prediction(m);
        m->config.sched.steps_offset = json_int(sched_cfg, "steps_offset", 1);
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(sched_cfg, "timestep_spacing");
        if (cJSON_IsString(sp)) {
            static const char *const known[] = {"leading", "trailing", "linspace"};
            for (int i = 0; i < 3; i++)
                if (strcmp(sp->valuestring, known[i]) == 0) m->config.sched.spacing = known[i];
        }
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(sched_cfg, "prediction_type");
        if (cJSON_IsString(pt)) {
            m->config.unet.prediction = strcmp(pt->valuestring, "v_prediction") == 0 ? SDC_PRED_V : SDC_PRED_EPSILON;
            m->config.unet.prediction_source = "scheduler/scheduler_config.json";
        }
        st = prediction_from_metadata(m);
    }
    if (st == SDC_OK) {
        st = vae_config(m, vae_cfg);
    }
    if (st == SDC_OK) st = native_size(m, unet_cfg);
    m->config.layout = m->layout;
    if (!sched_cfg) m->config.sched.steps_offset = 1;
    cJSON_Delete(unet_cfg);
    cJSON_Delete(vae_cfg);
    cJSON_Delete(text_cfg);
    cJSON_Delete(sched_cfg);
    if (st != SDC_OK) {
        sdc_model_close(m);
        return st;
    }
    *out = m;
    return SDC_OK;
}

void sdc_model_close(sdc_model_files *m) {
    if (!m) return;
    if (m->single) {
        sdc_st_close(m->single);
    } else {
        sdc_st_close(m->unet_file);
        sdc_st_close(m->vae_file);
        sdc_st_close(m->text_file);
    }
    free(m->tokenizer_vocab);
    free(m->tokenizer_merges);
    free(m->path);
    free(m);
}
