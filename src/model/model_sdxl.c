/* model_sdxl.c - SDXL checkpoints: Stability's single files
 * (conditioner.embedders.0 = CLIP ViT-L in transformers' names,
 * conditioner.embedders.1 = OpenCLIP ViT-bigG, the U-Net's label_emb.0 =
 * the added embedding) and diffusers folders (text_encoder_2/,
 * tokenizer_2/, unet add_embedding.*); the second encoder's and the added
 * embedding's configuration. The refiner (one bigG encoder, aesthetic-score
 * conditioning) is refused by name. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/config_value.h"

#define findf sdc_model_findf

static const char *XL_UNET = "model.diffusion_model.input_blocks.0.0.weight";
static const char *XL_VAE = "first_stage_model.decoder.conv_in.weight";
static const char *XL_TEXT1 = "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight";
static const char *XL_TEXT2 = "conditioner.embedders.1.model.token_embedding.weight";
static const char *XL_REFINER_TEXT = "conditioner.embedders.0.model.token_embedding.weight";

static sdc_status refuse_refiner(const char *where, const char *sign) {
    return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: this is the SDXL refiner (%s: one OpenCLIP ViT-bigG text encoder and "
                    "aesthetic-score conditioning); sdc runs SDXL base models and their fine-tunes, not the refiner",
                    where, sign);
}

sdc_status sdc_sdxl_recognise_single(sdc_model_files *m, bool *is_sdxl) {
    sdc_st_file *f = m->single;
    *is_sdxl = false;
    const bool label = sdc_st_find(f, "model.diffusion_model.label_emb.0.0.weight") != NULL;
    if (!sdc_st_find_prefix(f, "conditioner.embedders.") && !label) return SDC_OK;
    if (sdc_st_find(f, XL_REFINER_TEXT) && !sdc_st_find(f, XL_TEXT1))
        return refuse_refiner(f->path, "conditioner.embedders.0 is OpenCLIP");
    const char *need[4] = {XL_UNET, XL_VAE, XL_TEXT1, XL_TEXT2};
    char missing[1024] = "";
    for (int i = 0; i < 4; i++)
        if (!sdc_st_find(f, need[i])) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "\n  %s", need[i]);
    if (*missing)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: an SDXL checkpoint (it has %s) but expected tensors are missing:%s",
                        f->path, label ? "label_emb.*" : "conditioner.embedders.*", missing);
    m->config.family = SDC_FAMILY_SDXL;
    m->unet_file = m->vae_file = m->text_file = m->text2_file = f;
    m->unet_prefix = "model.diffusion_model.";
    m->vae_prefix = "first_stage_model.";
    m->text_prefix = "conditioner.embedders.0.transformer.";
    m->text_naming = SDC_TEXT_HF;
    m->text2_prefix = "conditioner.embedders.1.model.";
    m->text2_naming = SDC_TEXT_OPENCLIP;
    *is_sdxl = true;
    return SDC_OK;
}

sdc_status sdc_sdxl_open_diffusers(sdc_model_files *m, const cJSON *index) {
    static const char *const text_names[] = {"model.safetensors", "model.fp16.safetensors", NULL};
    char where[4200];
    snprintf(where, sizeof where, "%s/model_index.json", m->path);
    bool found = false, aesthetics = false, zeros = true;
    SDC_TRY(sdc_json_bool(where, index, "requires_aesthetics_score", &found, &aesthetics));
    if (aesthetics) return refuse_refiner(m->path, "model_index.json requires_aesthetics_score");
    const cJSON *te = cJSON_GetObjectItemCaseSensitive(index, "text_encoder");
    if (index && te && cJSON_IsArray(te) && cJSON_IsNull(cJSON_GetArrayItem(te, 0)))
        return refuse_refiner(m->path, "model_index.json has no text_encoder");
    SDC_TRY(sdc_json_bool(where, index, "force_zeros_for_empty_prompt", &found, &zeros));
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/text_encoder_2", m->path);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sdc_fail(SDC_ERR_FORMAT, "%s: model_index.json names an SDXL pipeline (StableDiffusionXLPipeline) but "
                        "there is no text_encoder_2/: an SDXL model needs both text encoders", m->path);
    m->config.zero_empty_negative = zeros;
    m->config.family = SDC_FAMILY_SDXL;
    SDC_TRY(sdc_model_open_component(m->path, "text_encoder_2", text_names, &m->text2_file));
    m->text2_prefix = "";
    m->text2_naming = SDC_TEXT_HF;
    if (!sdc_st_find(m->text2_file, "text_model.embeddings.token_embedding.weight") ||
        !sdc_st_find(m->text2_file, "text_projection.weight"))
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: expected a CLIP text model with a projection "
                        "(text_model.embeddings.token_embedding.weight, text_projection.weight)", m->text2_file->path);
    return SDC_OK;
}

/* The second encoder: OpenCLIP ViT-bigG (gelu), its penultimate layer
 * for the context, its projection for the pooled output. */
static sdc_status text2_config(sdc_model_files *m, const cJSON *cfg) {
    sdc_text_config *t = &m->config.text2;
    const sdc_st_file *f = m->text2_file;
    const char *p = m->text2_prefix;
    char where[4200];
    snprintf(where, sizeof where, "%s/text_encoder_2/config.json", m->path);
    SDC_TRY(sdc_model_text_shape(f, p, m->text2_naming, t));
    bool found = false;
    t->act = SDC_ACT_GELU;
    static const char *const acts[] = {"quick_gelu", "gelu", NULL};
    const char *act = "gelu";
    SDC_TRY(sdc_json_enum(where, cfg, "hidden_act", acts, &found, &act));
    if (strcmp(act, "gelu") != 0) t->act = SDC_ACT_QUICK_GELU;
    t->heads_source = "default: 64-wide heads";
    SDC_TRY(sdc_json_int(where, cfg, "num_attention_heads", 1, SDC_LIMIT_HEADS, &found, &t->heads));
    if (found) t->heads_source = "text_encoder_2/config.json num_attention_heads";
    SDC_TRY(sdc_meta_int(m->single, "sdc.text2.heads", 1, SDC_LIMIT_HEADS, &found, &t->heads));
    if (found) t->heads_source = "__metadata__ sdc.text2.heads";
    double eps = t->eps;
    SDC_TRY(sdc_json_number(where, cfg, "layer_norm_eps", 1e-12, 0.1, &found, &eps));
    t->eps = (float)eps;
    t->layers_used = t->layers - 1; /* hidden_states[-2] */
    t->final_norm = false;
    t->pad_id = 0; /* tokenizer_2 pads with "!" (id 0), as OpenCLIP does */
    const sdc_st_tensor *proj = m->text2_naming == SDC_TEXT_HF ? findf(f, "%stext_projection.weight", p)
                                                               : findf(f, "%stext_projection", p);
    const int pw = m->text2_naming == SDC_TEXT_HF ? 1 : 0; /* which dimension is the width */
    if (!proj || proj->ndim != 2 || (int)proj->shape[pw] != t->width)
        return sdc_fail(SDC_ERR_FORMAT, "%s: the second text encoder's %stext_projection%s is missing or not (%s): "
                        "SDXL's pooled text embedding comes from it", f->path, p,
                        m->text2_naming == SDC_TEXT_HF ? ".weight" : "",
                        m->text2_naming == SDC_TEXT_HF ? "projection, width" : "width, projection");
    t->proj = (int)proj->shape[1 - pw];
    int pd = t->proj;
    SDC_TRY(sdc_json_int(where, cfg, "projection_dim", 1, SDC_LIMIT_TEXT_WIDTH, &found, &pd));
    if (found && pd != t->proj)
        return sdc_fail(SDC_ERR_FORMAT, "%s: \"projection_dim\" is %d but text_projection.weight projects to %d",
                        where, pd, t->proj);
    return SDC_OK;
}

/* The U-Net's added embedding: linear (add_in -> temb), silu, linear. */
static sdc_status add_embedding_config(sdc_model_files *m, const cJSON *cfg) {
    sdc_unet_config *c = &m->config.unet;
    const sdc_st_file *f = m->unet_file;
    const char *p = m->unet_prefix;
    const bool dn = m->unet_diffusers_names;
    const char *n1 = dn ? "add_embedding.linear_1.weight" : "label_emb.0.0.weight";
    const char *n2 = dn ? "add_embedding.linear_2.weight" : "label_emb.0.2.weight";
    const sdc_st_tensor *l1 = findf(f, "%s%s", p, n1), *l2 = findf(f, "%s%s", p, n2);
    if (!l1 || !l2 || l1->ndim != 2 || l2->ndim != 2 || (int)l1->shape[0] != c->time_embed_dim ||
        (int)l2->shape[0] != c->time_embed_dim || (int)l2->shape[1] != c->time_embed_dim)
        return sdc_fail(SDC_ERR_FORMAT, "%s: an SDXL U-Net needs %s%s (%d, inputs) and %s%s (%d, %d): the added "
                        "embedding of the pooled text and the size conditioning", f->path, p, n1, c->time_embed_dim,
                        p, n2, c->time_embed_dim, c->time_embed_dim);
    c->add_in_dim = (int)l1->shape[1];
    char where[4200];
    snprintf(where, sizeof where, "%s/unet/config.json", m->path);
    bool found = false;
    c->add_time_dim = 256;
    SDC_TRY(sdc_json_int(where, cfg, "addition_time_embed_dim", 1, SDC_LIMIT_TIME_EMBED, &found, &c->add_time_dim));
    SDC_TRY(sdc_meta_int(m->single, "sdc.unet.addition_time_embed_dim", 1, SDC_LIMIT_TIME_EMBED, &found,
                         &c->add_time_dim));
    const int rest = c->add_in_dim - m->config.text2.proj;
    if (rest <= 0 || rest % c->add_time_dim)
        return sdc_fail(SDC_ERR_FORMAT, "%s: the U-Net's added embedding takes %d inputs: not the pooled text "
                        "embedding (%d) and whole %d-wide time ids", f->path, c->add_in_dim, m->config.text2.proj,
                        c->add_time_dim);
    c->n_time_ids = rest / c->add_time_dim;
    if (c->n_time_ids == 5)
        return refuse_refiner(f->path, "5 time ids: sizes, crop and an aesthetic score");
    if (c->n_time_ids != 6)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the U-Net's added embedding takes %d time ids; SDXL's are 6 "
                        "(original size, crop top-left, target size)", f->path, c->n_time_ids);
    return SDC_OK;
}

sdc_status sdc_sdxl_configure(sdc_model_files *m, const cJSON *unet_cfg, const cJSON *text2_cfg) {
    sdc_text_config *t = &m->config.text;
    t->layers_used = t->layers - 1; /* both encoders: hidden_states[-2], no final layer norm */
    t->final_norm = false;
    if (m->layout == SDC_LAYOUT_SINGLE_FILE) {
        /* what diffusers' from_single_file gives SDXL: its base model's
         * scheduler config (leading spacing, offset 1), zeros for an empty
         * negative prompt */
        m->config.zero_empty_negative = true;
        m->config.sched.spacing = "leading";
        m->config.sched.steps_offset = 1;
    }
    SDC_TRY(text2_config(m, text2_cfg));
    return add_embedding_config(m, unet_cfg);
}
