/* context.h - what an sdc_ctx holds (internal to the library). */
#ifndef SDC_CONTEXT_H
#define SDC_CONTEXT_H

#include "backend/backend.h"
#include "model/model.h"
#include "nets/text_encoder.h"
#include "text/tokenizer.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "nets/taesd.h"
#include "lora_apply.h"
#include "text/embeddings.h"

/* Recently encoded prompts (batch lists repeat prompts and negatives). */
#define SDC_COND_CACHE 16
typedef struct sdc_cond_entry {
    char *prompt;   /* NULL: empty slot */
    char *prompt_2; /* SDXL's second prompt, NULL: the first */
    float *z;       /* (chunks * 77, context width) */
    int chunks;
    float *pooled;  /* SDXL: (text2.proj); NULL otherwise */
} sdc_cond_entry;

struct sdc_ctx {
    sdc_params params;
    sdc_model_files *model;   /* (owned) files and configuration */
    sdc_backend *be;          /* (owned) */
    sdc_tokenizer *tok;       /* (owned) */
    sdc_text_encoder *te;     /* (owned) */
    sdc_text_encoder *te2;    /* (owned) SDXL's second text encoder; NULL for SD 1.x, 2.x */
    sdc_unet *unet;           /* (owned) */
    sdc_vae *vae;             /* (owned) */
    sdc_taesd *taesd;         /* (owned) TAESD's decoder for previews; NULL without sdc_params.taesd_path */
    char model_hash[11];      /* A1111 "AutoV2" hash, computed on first use */
    char vae_hash[11];        /* the same of sdc_params.vae_path's file */
    char *model_name;         /* file or folder name without extension */
    double seconds_load;
    sdc_cond_entry cond_cache[SDC_COND_CACHE];
    int cond_next;            /* round-robin slot to replace */
    long cond_hits;           /* how often the cache answered */
    struct sdc_plan *plan;    /* (owned) the last render shape's memory, kept for the next */
    sdc_lora_state lora;      /* the LoRAs merged into the weights now */
    sdc_embedding_db *emb;    /* (owned) textual-inversion embeddings; NULL without sdc_params.embeddings_dir */
    bool widened;             /* text encoders and U-Net reloaded with fp32 weights for LoRA merges */
    bool products_bf16;       /* the CPU: text encoders' and U-Net's products in bf16 (--precision bf16) */
};

/* LoRA merges are exact in fp32 (as diffusers merges): where the backend
 * keeps half weights as stored (the CPU), the text encoders and the U-Net
 * are reloaded once with fp32 weights before the first merge (what fp32
 * weights take in memory from then on; the same numbers, half values
 * being exact in fp32). Nothing to do on CUDA, which merges into its fp16
 * weights as A1111 does, or when the weights are fp32 already. */
sdc_status sdc_widen_for_merges(sdc_ctx *ctx);

/* Whether the model's weights fit `avail` bytes of the backend's memory
 * (matrices in wt, the VAE's in vt, vectors fp32, a margin on top): an
 * SDC_ERR_OOM error that says how much they need otherwise (sdc.c). */
sdc_status sdc_check_weights_fit(const sdc_model_files *m, bool cpu, sdc_dtype wt, sdc_dtype vt, size_t avail);

#endif
