/* lora_apply.h - a job's LoRAs merged into the loaded weights, and taken
 * out again when the next job asks for others, without reloading the
 * checkpoint.
 *
 * A switch rebuilds each weight that the old or the new set changes from
 * the checkpoint's own tensor (still mapped): original + sum of the new
 * set's multiplier * scale * delta, in fp32, then stored in the backend's
 * type and layout in place. So nothing drifts however many switches a
 * batch makes, and the weights without LoRAs are the checkpoint's bit for
 * bit. A switch that touches the text encoder empties the conditioning
 * cache. */
#ifndef SDC_LORA_APPLY_H
#define SDC_LORA_APPLY_H

#include "model/lora.h"
#include "text/extra_networks.h"

typedef struct sdc_ctx sdc_ctx;

/* One LoRA of a job: its file and multipliers, and the name A1111 writes
 * in "Lora hashes" (the tag's NAME, or a --lora file's stem). */
typedef struct sdc_lora_use {
    char *path;
    char *mention;
    double te, unet;
    char hash[13];       /* filled by sdc_lora_apply */
} sdc_lora_use;

#define SDC_LORA_OPEN_MAX 8    /* distinct LoRA files a job may use, kept open between jobs */
#define SDC_LORA_USES_MAX 64   /* tags and --lora files of one job (each costs a merge) */

typedef struct sdc_lora_state {
    sdc_lora_index *index;                 /* the model's target names, built on first use */
    sdc_lora_file *open[SDC_LORA_OPEN_MAX]; /* recently used files, most recent first */
    int n_open;
    sdc_lora_use *applied;                 /* what the weights hold now; n_applied -1: unknown (a failed switch) */
    int n_applied;
    const sdc_weight_src **touched;        /* weights that differ from the checkpoint */
    int n_touched;
    double seconds_switch;                 /* the last switch */
    int switches;                          /* how many so far */
} sdc_lora_state;

/* The LoRAs of a job: its prompt's <lora:NAME:...> tags, NAME found as
 * NAME.safetensors in the LoRA folder (sdc_params.lora_dir, else the
 * model's folder; subfolders searched too), then its `loras` (files).
 * *stripped: the prompt without its tags (for the tokenizer). Errors name
 * the tag and the folder. */
sdc_status sdc_job_loras(sdc_ctx *ctx, const sdc_gen_params *p, char **stripped, sdc_lora_use **uses, int *n);
void sdc_lora_uses_free(sdc_lora_use *u, int n);

/* The LoRA folder by default: the folder a model file (or a diffusers
 * folder) is in (malloc'd). */
char *sdc_lora_default_dir(const char *model_path);
/* NAME.safetensors in folder or its subfolders (*path malloc'd), else the
 * one file there whose metadata names NAME as its alias (ss_output_name, as
 * A1111 finds LoRAs by alias); errors: none, several, a pickle of that
 * name, a NAME with a folder in it. */
sdc_status sdc_lora_find(const char *folder, const char *name, char **path);
/* Every .safetensors file in folder and its subfolders, sorted (*paths and
 * each path malloc'd); returns how many. */
int sdc_lora_list(const char *folder, char ***paths);
bool sdc_lora_uses_equal(const sdc_lora_use *a, int na, const sdc_lora_use *b, int nb);

/* Make the weights hold uses[0..n) (nothing to do when they already do);
 * fills each use's hash. */
sdc_status sdc_lora_apply(sdc_ctx *ctx, sdc_lora_use *uses, int n);

/* "name: hash, ..." of what is applied (A1111's Lora hashes), NULL if none (malloc'd). */
char *sdc_lora_hashes(const sdc_ctx *ctx);

void sdc_lora_state_free(sdc_lora_state *s);

#endif
