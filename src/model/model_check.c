/* model_check.c - a model's configuration, derived from its tensors and
 * files, checked before anything is allocated from it: every value within
 * sdc's limits (model.h), the components agreeing where they meet, and a
 * diffusers folder's config.json files agreeing with its tensors. A model
 * that is not what sdc runs is refused with what it is, by name. */
#include "model/model.h"

#include <stdio.h>
#include <string.h>

#include "model/config_value.h"
#include "text/tokenizer.h"

/* One value in [lo, hi], or an error naming what it is and where from. */
static sdc_status in_range(const char *path, const char *what, int v, int lo, int hi, const char *from) {
    if (v >= lo && v <= hi) return SDC_OK;
    return sdc_fail(SDC_ERR_FORMAT, "%s: %s is %d; expected %d to %d (sdc's limits, docs/DETAILS.md)%s%s", path,
                    what, v, lo, hi, from ? "; from " : "", from ? from : "");
}

static void int_list(const int *v, int n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? ", " : "", v[i]);
}

static sdc_status check_text(const sdc_text_config *t, const char *p) {
    SDC_TRY(in_range(p, "the text encoder's vocabulary (token embedding rows)", t->vocab, SDC_CLIP_EOS + 1,
                     SDC_LIMIT_TEXT_VOCAB, "CLIP's tokenizer needs its 49408 ids"));
    SDC_TRY(in_range(p, "the text encoder's width", t->width, 1, SDC_LIMIT_TEXT_WIDTH, NULL));
    SDC_TRY(in_range(p, "the text encoder's MLP width", t->ff, 1, SDC_LIMIT_TEXT_FF, NULL));
    SDC_TRY(in_range(p, "the text encoder's layer count", t->layers, 1, SDC_LIMIT_TEXT_LAYERS, NULL));
    SDC_TRY(in_range(p, "the text encoder's position table (rows)", t->max_pos, SDC_CLIP_CTX, SDC_LIMIT_TEXT_POS,
                     "prompts are encoded 77 tokens at a time"));
    SDC_TRY(in_range(p, "the text encoder's head count", t->heads, 1, SDC_LIMIT_HEADS, t->heads_source));
    if (t->width % t->heads)
        return sdc_fail(SDC_ERR_FORMAT, "%s: text width %d is not divisible by %d heads (%s)", p, t->width, t->heads,
                        t->heads_source);
    if (t->layers_used < 1)
        return sdc_fail(SDC_ERR_FORMAT, "%s: an SD 2.x or SDXL text encoder needs at least 2 layers (it runs the "
                        "penultimate one); it has %d", p, t->layers);
    return SDC_OK;
}

static sdc_status check_unet(const sdc_model_files *m) {
    const sdc_unet_config *c = &m->config.unet;
    const char *p = m->unet_file->path;
    char what[96];
    SDC_TRY(in_range(p, "the U-Net's level count", c->n_levels, 1, SDC_MAX_LEVELS, NULL));
    SDC_TRY(in_range(p, "the U-Net's res blocks per level", c->num_res_blocks, 1, SDC_LIMIT_RES_BLOCKS, NULL));
    SDC_TRY(in_range(p, "the U-Net's input channels", c->in_channels, 1, SDC_LIMIT_IO_CHANNELS, NULL));
    SDC_TRY(in_range(p, "the U-Net's output channels", c->out_channels, 1, SDC_LIMIT_IO_CHANNELS, NULL));
    SDC_TRY(in_range(p, "the U-Net's time embedding width", c->time_embed_dim, 1, SDC_LIMIT_TIME_EMBED, NULL));
    SDC_TRY(in_range(p, "the U-Net's cross-attention width (attn2.to_k columns)", c->context_dim, 1,
                     SDC_LIMIT_CONTEXT, NULL));
    SDC_TRY(in_range(p, "the U-Net's group-norm groups", c->norm_groups, 1, SDC_LIMIT_GROUPS, c->groups_source));
    for (int l = 0; l < c->n_levels; l++) {
        snprintf(what, sizeof what, "U-Net level %d's channels", l);
        SDC_TRY(in_range(p, what, c->channels[l], 1, SDC_LIMIT_CHANNELS, NULL));
        snprintf(what, sizeof what, "U-Net level %d's transformer depth", l);
        SDC_TRY(in_range(p, what, c->attn_depth[l], 0, SDC_LIMIT_ATTN_DEPTH, NULL));
        snprintf(what, sizeof what, "U-Net level %d's head count", l);
        SDC_TRY(in_range(p, what, c->heads[l], 1, SDC_LIMIT_HEADS, c->heads_source));
        /* the deepest level's heads also serve the middle block */
        bool attn = c->attn_depth[l] > 0 || l == c->n_levels - 1;
        if (attn && c->channels[l] % c->heads[l])
            return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net level %d: %d channels do not split into %d heads (%s)", p, l,
                            c->channels[l], c->heads[l], c->heads_source);
        if (c->channels[l] % c->norm_groups)
            return sdc_fail(SDC_ERR_FORMAT, "%s: U-Net level %d: %d channels do not split into %d group-norm groups "
                            "(%s)", p, l, c->channels[l], c->norm_groups, c->groups_source);
    }
    if (c->model_channels != c->channels[0])
        return sdc_fail(SDC_ERR_FORMAT, "%s: the U-Net's conv_in has %d output channels, its first level %d", p,
                        c->model_channels, c->channels[0]);
    return SDC_OK;
}

static sdc_status check_vae(const sdc_model_files *m) {
    const sdc_vae_config *c = &m->config.vae;
    const char *p = m->vae_file->path;
    char what[96];
    SDC_TRY(in_range(p, "the VAE's level count", c->n_levels, 1, SDC_MAX_LEVELS, NULL));
    SDC_TRY(in_range(p, "the VAE's res blocks per level", c->num_res_blocks, 1, SDC_LIMIT_RES_BLOCKS, NULL));
    SDC_TRY(in_range(p, "the VAE's base width", c->channels, 1, SDC_LIMIT_CHANNELS, NULL));
    SDC_TRY(in_range(p, "the VAE's latent channels", c->z_channels, 1, SDC_LIMIT_IO_CHANNELS, NULL));
    SDC_TRY(in_range(p, "the VAE's group-norm groups", c->norm_groups, 1, SDC_LIMIT_GROUPS, c->groups_source));
    if (c->out_channels != 3)
        return sdc_fail(SDC_ERR_FORMAT, "%s: the VAE decoder's conv_out gives %d channels; expected 3 (RGB)", p,
                        c->out_channels);
    for (int l = 0; l < c->n_levels; l++) {
        snprintf(what, sizeof what, "VAE level %d's channels", l);
        long ch = (long)c->channels * c->channels_mult[l];
        SDC_TRY(in_range(p, what, ch > SDC_LIMIT_CHANNELS ? SDC_LIMIT_CHANNELS + 1 : (int)ch, 1, SDC_LIMIT_CHANNELS,
                         NULL));
        if (ch % c->norm_groups)
            return sdc_fail(SDC_ERR_FORMAT, "%s: VAE level %d: %ld channels do not split into %d group-norm groups "
                            "(%s)", p, l, ch, c->norm_groups, c->groups_source);
    }
    return SDC_OK;
}

/* Where two components meet, their sizes must agree: a file mixing parts
 * of different models would otherwise read past a buffer. */
static sdc_status check_between(const sdc_model_files *m) {
    const sdc_model_config *c = &m->config;
    const char *where = m->path;
    if (c->text2.width && c->text.width + c->text2.width != c->unet.context_dim)
        return sdc_fail(SDC_ERR_FORMAT, "%s: the text encoders are %d and %d wide but the U-Net's cross-attention "
                        "takes %d (attn2.to_k), not their sum: the text encoders and U-Net do not belong together",
                        where, c->text.width, c->text2.width, c->unet.context_dim);
    if (!c->text2.width && c->text.width != c->unet.context_dim)
        return sdc_fail(SDC_ERR_FORMAT, "%s: the text encoder is %d wide but the U-Net's cross-attention takes %d "
                        "(attn2.to_k): the text encoder and U-Net do not belong together", where, c->text.width,
                        c->unet.context_dim);
    const int z = c->vae.z_channels, in = c->unet.in_channels, out = c->unet.out_channels;
    if (in != z && in != 2 * z + 1) { /* 2z + 1: an inpainting U-Net (latents, mask, masked image's latents) */
        const char *kind = in == 2 * z ? " (an image-conditioned U-Net, e.g. instruct-pix2pix)" : "";
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the U-Net takes %d input channels%s, the VAE's latent has %d; sdc "
                        "runs text-to-image models, whose U-Net takes the latent alone (%d channels), and "
                        "inpainting models (%d: latent, mask, masked image's latent)", where, in, kind, z, z,
                        2 * z + 1);
    }
    if (out != z)
        return sdc_fail(SDC_ERR_FORMAT, "%s: the U-Net predicts %d channels, the VAE's latent has %d", where, out, z);
    return SDC_OK;
}

/* ---- a diffusers folder's config.json against its tensors ------------- */

static sdc_status agree_int(const char *path, const cJSON *cfg, const char *key, int tensors, const char *what) {
    bool found = false;
    int v = 0;
    SDC_TRY(sdc_json_int(path, cfg, key, 0, 1 << 30, &found, &v));
    if (found && v != tensors)
        return sdc_fail(SDC_ERR_FORMAT, "%s: \"%s\" is %d but the tensors say %d (%s)", path, key, v, tensors, what);
    return SDC_OK;
}

static sdc_status agree_list(const char *path, const cJSON *cfg, const char *key, const int *tensors, int n,
                             const char *what) {
    int v[SDC_MAX_LEVELS];
    int k = 0;
    bool found = false;
    SDC_TRY(sdc_json_int_list(path, cfg, key, SDC_MAX_LEVELS, 0, 1 << 30, &found, v, &k));
    if (!found) return SDC_OK;
    bool same = k == n;
    for (int i = 0; same && i < n; i++) same = v[i] == tensors[i];
    if (!same) {
        char a[160], b[160];
        int_list(v, k, a, sizeof a);
        int_list(tensors, n, b, sizeof b);
        return sdc_fail(SDC_ERR_FORMAT, "%s: \"%s\" is [%s] but the tensors say [%s] (%s)", path, key, a, b, what);
    }
    return SDC_OK;
}

/* Keys that select an architecture sdc does not implement: each must be
 * absent, null, or the value SD 1.x / 2.x use. */
typedef struct fixed_key {
    const char *key;
    const char *string; /* the value as a JSON string, or NULL */
    int boolean;        /* -1: not a bool key; else 0 / 1 */
} fixed_key;

static sdc_status agree_fixed(const char *path, const cJSON *cfg, const fixed_key *keys, const char *what) {
    for (int i = 0; keys[i].key; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[i].key);
        if (!v || cJSON_IsNull(v)) continue;
        bool ok = keys[i].string ? cJSON_IsString(v) && strcmp(v->valuestring, keys[i].string) == 0
                                 : cJSON_IsBool(v) && cJSON_IsTrue(v) == (keys[i].boolean == 1);
        if (!ok) {
            char shown[64];
            sdc_json_repr(v, shown, sizeof shown);
            if (keys[i].string)
                return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: \"%s\" is %s; sdc implements %s with \"%s\" only", path,
                                keys[i].key, shown, what, keys[i].string);
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: \"%s\" is %s; sdc implements %s with %s only", path,
                            keys[i].key, shown, what, keys[i].boolean ? "true" : "false");
        }
    }
    return SDC_OK;
}

/* Keys that must be absent or null (features sdc does not implement). */
static sdc_status agree_null(const char *path, const cJSON *cfg, const char *const *keys, const char *what) {
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[i]);
        if (!v || cJSON_IsNull(v)) continue;
        char shown[64];
        sdc_json_repr(v, shown, sizeof shown);
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: \"%s\" is %s; %s has no such part in sdc (it must be null)", path,
                        keys[i], shown, what);
    }
    return SDC_OK;
}

static sdc_status agree_unet(const sdc_model_files *m, const cJSON *cfg) {
    const sdc_unet_config *c = &m->config.unet;
    char path[4200];
    snprintf(path, sizeof path, "%s/unet/config.json", m->path);
    static const char *const nulls[] = {"class_embed_type", "encoder_hid_dim", "encoder_hid_dim_type",
                                        "num_class_embeds", "time_cond_proj_dim", "cross_attention_norm", NULL};
    SDC_TRY(agree_null(path, cfg, nulls, "the U-Net"));
    if (c->add_in_dim) { /* SDXL: text_time, agreeing with add_embedding.linear_1 */
        static const fixed_key xl[] = {{"addition_embed_type", "text_time", -1}, {NULL, NULL, 0}};
        SDC_TRY(agree_fixed(path, cfg, xl, "the SDXL U-Net"));
        SDC_TRY(agree_int(path, cfg, "projection_class_embeddings_input_dim", c->add_in_dim,
                          "add_embedding.linear_1.weight"));
    } else {
        static const char *const xl[] = {"addition_embed_type", "projection_class_embeddings_input_dim", NULL};
        SDC_TRY(agree_null(path, cfg, xl, "the U-Net"));
    }
    static const fixed_key fixed[] = {
        {"act_fn", "silu", -1},           {"time_embedding_type", "positional", -1},
        {"resnet_time_scale_shift", "default", -1}, {"mid_block_type", "UNetMidBlock2DCrossAttn", -1},
        {"flip_sin_to_cos", NULL, 1},     {"center_input_sample", NULL, 0},
        {"only_cross_attention", NULL, 0}, {"dual_cross_attention", NULL, 0},
        {NULL, NULL, 0}};
    SDC_TRY(agree_fixed(path, cfg, fixed, "the U-Net"));
    SDC_TRY(agree_int(path, cfg, "in_channels", c->in_channels, "conv_in.weight"));
    SDC_TRY(agree_int(path, cfg, "out_channels", c->out_channels, "conv_out.weight"));
    SDC_TRY(agree_int(path, cfg, "layers_per_block", c->num_res_blocks, "down_blocks.N.resnets.*"));
    SDC_TRY(agree_int(path, cfg, "cross_attention_dim", c->context_dim, "attn2.to_k.weight"));
    SDC_TRY(agree_list(path, cfg, "block_out_channels", c->channels, c->n_levels, "down_blocks.N.resnets.0.conv2"));
    bool found = false, lin = false, any_attn = false;
    for (int l = 0; l < c->n_levels; l++) any_attn |= c->attn_depth[l] > 0;
    SDC_TRY(sdc_json_bool(path, cfg, "use_linear_projection", &found, &lin));
    if (found && any_attn && lin != c->linear_proj)
        return sdc_fail(SDC_ERR_FORMAT, "%s: \"use_linear_projection\" is %s but the tensors' proj_in is %s", path,
                        lin ? "true" : "false", c->linear_proj ? "linear" : "a 1x1 convolution");
    int depth[SDC_MAX_LEVELS], n = 0;
    SDC_TRY(sdc_json_int_list(path, cfg, "transformer_layers_per_block", SDC_MAX_LEVELS, 1, SDC_LIMIT_ATTN_DEPTH,
                              &found, depth, &n));
    if (found && n != 1 && n != c->n_levels)
        return sdc_fail(SDC_ERR_FORMAT, "%s: \"transformer_layers_per_block\" has %d values; the U-Net has %d levels",
                        path, n, c->n_levels);
    for (int l = 0; found && l < c->n_levels; l++) {
        int want = depth[n == 1 ? 0 : l];
        if (c->attn_depth[l] && c->attn_depth[l] != want)
            return sdc_fail(SDC_ERR_FORMAT, "%s: \"transformer_layers_per_block\" says %d at level %d but the tensors "
                            "have %d transformer blocks there", path, want, l, c->attn_depth[l]);
    }
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(cfg, "down_block_types");
    if (types && !cJSON_IsNull(types)) {
        bool ok = cJSON_IsArray(types) && cJSON_GetArraySize(types) == c->n_levels;
        int l = 0;
        for (const cJSON *e = ok ? types->child : NULL; e && ok; e = e->next, l++) {
            const char *want = c->attn_depth[l] ? "CrossAttnDownBlock2D" : "DownBlock2D";
            ok = cJSON_IsString(e) && strcmp(e->valuestring, want) == 0;
        }
        if (!ok) {
            char shown[64];
            sdc_json_repr(types, shown, sizeof shown);
            return sdc_fail(SDC_ERR_FORMAT, "%s: \"down_block_types\" is %s; the tensors have %d levels (cross-attention "
                            "where down_blocks.N.attentions.* exist)", path, shown, c->n_levels);
        }
    }
    return SDC_OK;
}

static sdc_status agree_vae(const sdc_model_files *m, const cJSON *cfg) {
    const sdc_vae_config *c = &m->config.vae;
    char path[4200];
    snprintf(path, sizeof path, "%s/vae/config.json", m->path);
    static const char *const nulls[] = {"shift_factor", "latents_mean", "latents_std", NULL};
    SDC_TRY(agree_null(path, cfg, nulls, "the VAE"));
    static const fixed_key fixed[] = {{"act_fn", "silu", -1}, {"use_post_quant_conv", NULL, 1}, {NULL, NULL, 0}};
    SDC_TRY(agree_fixed(path, cfg, fixed, "the VAE"));
    int ch[SDC_MAX_LEVELS];
    for (int l = 0; l < c->n_levels; l++) ch[l] = c->channels * c->channels_mult[l];
    SDC_TRY(agree_int(path, cfg, "latent_channels", c->z_channels, "decoder.conv_in.weight"));
    SDC_TRY(agree_int(path, cfg, "out_channels", c->out_channels, "decoder.conv_out.weight"));
    SDC_TRY(agree_int(path, cfg, "layers_per_block", c->num_res_blocks, "decoder.up_blocks.N.resnets.* less one"));
    return agree_list(path, cfg, "block_out_channels", ch, c->n_levels, "decoder.up_blocks.N.resnets.0.conv2");
}

static sdc_status agree_text(const sdc_model_files *m, const sdc_text_config *t, const char *sub, const cJSON *cfg) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/config.json", m->path, sub);
    SDC_TRY(agree_int(path, cfg, "hidden_size", t->width, "token_embedding.weight"));
    SDC_TRY(agree_int(path, cfg, "intermediate_size", t->ff, "mlp.fc1.weight"));
    SDC_TRY(agree_int(path, cfg, "num_hidden_layers", t->layers, "encoder.layers.N"));
    SDC_TRY(agree_int(path, cfg, "max_position_embeddings", t->max_pos, "position_embedding.weight"));
    return agree_int(path, cfg, "vocab_size", t->vocab, "token_embedding.weight");
}

sdc_status sdc_model_check(const sdc_model_files *m, const cJSON *unet_cfg, const cJSON *vae_cfg,
                           const cJSON *text_cfg, const cJSON *text2_cfg) {
    SDC_TRY(check_text(&m->config.text, m->text_file->path));
    if (m->config.text2.width) SDC_TRY(check_text(&m->config.text2, m->text2_file->path));
    SDC_TRY(check_unet(m));
    SDC_TRY(check_vae(m));
    if (m->layout == SDC_LAYOUT_DIFFUSERS) {
        SDC_TRY(agree_unet(m, unet_cfg));
        SDC_TRY(agree_vae(m, vae_cfg));
        SDC_TRY(agree_text(m, &m->config.text, "text_encoder", text_cfg));
        if (m->config.text2.width) SDC_TRY(agree_text(m, &m->config.text2, "text_encoder_2", text2_cfg));
    }
    return check_between(m);
}
