/* sdc.h - public C API of sdc, a latent diffusion text-to-image generator.
 *
 * Usage:
 *     sdc_params p = sdc_params_default();
 *     p.model_path = "v1-5-pruned-emaonly.safetensors";
 *     sdc_ctx *ctx = NULL;
 *     if (sdc_load(&p, &ctx) != SDC_OK) {
 *         fprintf(stderr, "sdc: %s\n", sdc_last_error());
 *         return 1;
 *     }
 *     int ids[77];
 *     sdc_tokenize(ctx, "a red circle", ids, 77, NULL);
 *     sdc_free(ctx);
 *
 * Every function returns an sdc_status; on failure sdc_last_error() holds a
 * message (per thread) that names the file, tensor or line at fault.
 */
#ifndef SDC_H
#define SDC_H

#include <stddef.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdc_status {
    SDC_OK = 0,
    SDC_ERR_ARG,         /* bad argument from the caller */
    SDC_ERR_IO,          /* a file could not be opened, read or written */
    SDC_ERR_FORMAT,      /* a file is malformed */
    SDC_ERR_UNSUPPORTED, /* well-formed but not something sdc can run */
    SDC_ERR_OOM,         /* out of host or device memory */
    SDC_ERR_BACKEND,     /* a backend (CPU/CUDA) call failed */
} sdc_status;

typedef enum sdc_backend_kind {
    SDC_BACKEND_AUTO = 0, /* CUDA when a device is present, else CPU */
    SDC_BACKEND_CPU,
    SDC_BACKEND_CUDA,
} sdc_backend_kind;

/* The type weights are kept and multiplied in (fp32 accumulation and fp32
 * activations always). AUTO: fp32 on the CPU backend (exact to diffusers),
 * fp16 on CUDA. The CPU backend has fp32 and bf16: weights stay in the
 * file's type there, and bf16 rounds both operands of every product with
 * a weight (linear layers, convolutions) to bf16 and sums in fp32, on
 * AMX's tiles where the processor has them (with self-attention's
 * products too; about twice fp32's speed for a U-Net step), else at
 * fp32's speed; no fp16. */
typedef enum sdc_precision {
    SDC_PRECISION_AUTO = 0,
    SDC_PRECISION_FP32,
    SDC_PRECISION_FP16,
    SDC_PRECISION_BF16,
} sdc_precision;

typedef struct sdc_params {
    const char *model_path;     /* single .safetensors file or diffusers folder */
    const char *vocab_path;     /* BPE vocabulary; NULL: the model's own
                                   tokenizer/ files, else weights/ default */
    sdc_backend_kind backend;
    int n_threads;              /* CPU threads; 0 = all cores */
    int clip_skip;              /* 1 = last text layer (default), 2 = penultimate, ... */
    sdc_precision precision;    /* text encoder and U-Net weights and activations;
                                   AUTO: fp32 on the CPU, fp16 on CUDA */
    sdc_precision vae_precision; /* the VAE's; AUTO: fp32 on the CPU; on CUDA fp32
                                    when `precision` is fp32, else bf16 */
    const char *taesd_path;     /* NULL, or madebyollin/taesd's taesd_decoder.safetensors
                                   for SDC_PREVIEW_TAESD previews (computed in
                                   `precision`'s type) */
    const char *vae_path;       /* NULL, or a VAE of its own (.safetensors, diffusers' or the
                                   original names) used instead of the model's, e.g. an
                                   fp16-safe one; the infotext names it (VAE, VAE hash) */
    const char *lora_dir;       /* where <lora:NAME:W> finds NAME.safetensors (subfolders
                                   too); NULL: the folder the model is in */
    const char *embeddings_dir; /* textual-inversion embeddings (*.safetensors, subfolders
                                   too), read at load: a prompt word that is a file's
                                   name becomes its vectors; NULL: none */
} sdc_params;

typedef struct sdc_ctx sdc_ctx;

sdc_params sdc_params_default(void);

/* Message of the last failed call on this thread ("" if none). */
const char *sdc_last_error(void);

/* Load a model: text encoder, U-Net and VAE decoder. */
sdc_status sdc_load(const sdc_params *params, sdc_ctx **out);

/* Tokenize `prompt` into exactly `n_ids` (77) ids: BOS, up to 75 tokens, EOS,
 * padding. *n_dropped (may be NULL) receives the count of tokens cut off. */
sdc_status sdc_tokenize(sdc_ctx *ctx, const char *prompt, int *ids, int n_ids,
                        int *n_dropped);

/* Encode a prompt into the U-Net context: out is [77, ctx_dim] floats,
 * ctx_dim from sdc_context_dim(). */
sdc_status sdc_encode_prompt(sdc_ctx *ctx, const char *prompt, float *out);
int sdc_context_dim(const sdc_ctx *ctx);

/* ---- text to image ------------------------------------------------------ */

/* How a live preview turns a latent into RGB. */
typedef enum sdc_preview_method {
    SDC_PREVIEW_CHEAP = 0, /* AUTOMATIC1111's "Approx cheap": a fixed mix of the 4 latent
                            * channels, one colour per latent pixel (8 x 8 image pixels for SD) */
    SDC_PREVIEW_TAESD,     /* TAESD's decoder (sdc_params.taesd_path; fails without it): 8
                            * pixels per latent pixel each way, as the VAE for SD */
} sdc_preview_method;
/* The VAE in overlapping tiles (diffusers' enable_tiling: tiles of
 * vae_tile_size pixels every 3/4 of a tile, blended over the last quarter),
 * so that its memory is a tile's whatever the image's size. AUTO tiles
 * when the render's plan with the VAE untiled (the arena: activations,
 * buffers and the backend's scratch) is larger than the memory the backend
 * has available (CPU: MemAvailable, or less under a cgroup limit; CUDA:
 * the device's free memory). An image no larger than a tile is never
 * tiled, as in diffusers. Tiling changes the pixels (each tile's mid-block
 * attention sees only that tile) but writes nothing in the infotext, as
 * AUTOMATIC1111 does. */
typedef enum sdc_vae_tiling {
    SDC_VAE_TILING_AUTO = 0,
    SDC_VAE_TILING_OFF,
    SDC_VAE_TILING_ON,
} sdc_vae_tiling;

/* A LoRA applied to a job besides its prompt's <lora:NAME:W> tags. */
typedef struct sdc_lora {
    const char *path;            /* a .safetensors LoRA: kohya (LoRA, LoCon), LyCORIS LoHa or diffusers / PEFT */
    double te_weight;            /* multiplier of its text-encoder modules */
    double unet_weight;          /* of its U-Net modules */
} sdc_lora;

typedef struct sdc_gen_params {
    /* AUTOMATIC1111's syntax: (emphasis:1.2), [less], BREAK, <lora:NAME:W>
     * or <lora:NAME:TE_W:UNET_W> (sdc_params.lora_dir; the tag is removed
     * from the text), textual-inversion embeddings by name
     * (sdc_params.embeddings_dir) */
    const char *prompt;
    const char *negative_prompt; /* NULL or "" for none */
    /* ---- SDXL (refused for other models where they are set) ------------
     * The second text encoder's prompts (diffusers' prompt_2 and
     * negative_prompt_2); NULL: the same as the first. */
    const char *prompt_2;
    const char *negative_prompt_2;
    /* Size conditioning (diffusers' original_size, crops_coords_top_left,
     * target_size; pixels): 0 gives diffusers' and AUTOMATIC1111's
     * defaults, the image's own height and width and a crop of (0, 0). */
    int original_width, original_height;
    int crop_left, crop_top;
    int target_width, target_height;
    /* An empty negative prompt is zeros for SDXL (diffusers'
     * force_zeros_for_empty_prompt, AUTOMATIC1111 likewise); true encodes
     * it as text instead (diffusers given negative_prompt=""). */
    bool encode_empty_negative;
    int width, height;           /* pixels, multiples of 8; 0: the model's native size
                                  * (sdc_native_size: 512 for SD 1.x) */
    int steps;                   /* 20 */
    const char *sampler;         /* "ddim" (default), "ddpm", "euler", "euler_a", "dpmpp_2m" */
    bool karras;                 /* Karras sigmas (euler, euler_a, dpmpp_2m) */
    const char *spacing;         /* "leading", "trailing", "linspace"; NULL: the model's
                                    scheduler_config.json, else the sampler's diffusers
                                    default (leading for ddim/ddpm, linspace otherwise) */
    float cfg_scale;             /* 7.5; <= 1 skips the unconditional pass */
    float eta;                   /* DDIM eta (0) */
    unsigned long long seed;     /* torch CPU generator seed */
    /* ---- image to image and inpainting (all optional) ------------------
     * With init_rgb, the run starts from that picture as diffusers'
     * StableDiffusionImg2ImgPipeline does: the image is encoded by the VAE
     * (a sample of its latent distribution, drawn from the job's seed), the
     * noise of the first step that runs is added, and only the last
     * int(steps * strength) steps run. The image is brought to width x height
     * by resize_mode (AUTOMATIC1111's: 0 just resize, 1 crop and resize, 2
     * resize and fill; Lanczos as Pillow); width and height 0 take its size
     * (rounded down to a multiple of 8). */
    const unsigned char *init_rgb; /* init_width * init_height * 3 bytes, rows top down; NULL: text to image */
    int init_width, init_height;
    int resize_mode;             /* 0, 1 or 2 */
    double strength;             /* 0 < strength <= 1 (0.75): how much of the schedule runs */
    bool a1111_steps;            /* count the steps of a strength as AUTOMATIC1111 does: one
                                  * more than diffusers, min(int(min(strength, 0.999) * steps) + 1, steps) */
    /* With mask (and init_rgb), inpainting as diffusers'
     * StableDiffusionInpaintPipeline: one byte per pixel, >= 128 (x / 255 >= 0.5)
     * repaints; brought to the output size as the image is. A regular
     * checkpoint keeps the original latents, noised to each step's level,
     * outside the mask; an inpainting checkpoint (9 input channels) is given
     * the mask and the masked image's latents. */
    const unsigned char *mask;
    int mask_width, mask_height;
    int mask_blur;               /* AUTOMATIC1111's mask blur, pixels (0): the mask is blurred and the
                                  * original composited back over the result through it */
    int inpaint_fill;            /* AUTOMATIC1111's masked content: 1 original (default), 0 fill,
                                  * 2 latent noise, 3 latent nothing */
    bool inpaint_full_res;       /* AUTOMATIC1111's "only masked": render the mask's box (plus
                                  * inpaint_full_res_padding pixels) at width x height, paste it back */
    int inpaint_full_res_padding; /* 32 */
    /* LoRAs besides the prompt's tags (may be NULL): merged into the weights
     * for the job, taken out for the next job that asks for others. Jobs of
     * one sdc_txt2img_batch must ask for the same LoRAs (tags and these). */
    const sdc_lora *loras;
    int n_loras;
    sdc_vae_tiling vae_tiling;   /* AUTO (default); a batch follows its first job's */
    int vae_tile_size;           /* pixels a side, a multiple of 4 times the VAE's factor (32 for
                                  * SD); 0: 512, diffusers' tile for SD 1.x */
    /* called after each denoising step (may be NULL) */
    void (*on_step)(int step, int steps, double seconds, void *user);
    /* asked after each denoising step (may be NULL): true stops the
     * denoising there and decodes the latents as they are, as
     * AUTOMATIC1111's interrupt does (the call still succeeds; the
     * infotext keeps the steps asked for) */
    bool (*should_stop)(int step, int steps, void *user);
    /* live previews (may be NULL): called every preview_every steps (the
     * steps that run, counted as on_step counts them; before that step's
     * on_step) with the step's estimate of the final image: the sampler's
     * denoised prediction x0, made RGB as AUTOMATIC1111 does by `preview`.
     * rgb is width * height * 3 bytes, rows top down, valid during the
     * call, at the image's size (nearest-neighbour from the preview's own,
     * sdc_preview_method), so that it lines up with the image. Previews
     * leave the image unchanged bit for
     * bit; only a preview step copies the latents to the host. In a batch
     * each job previews through its own on_preview. */
    void (*on_preview)(int step, int steps, const unsigned char *rgb, int width, int height, void *user);
    int preview_every;           /* 1 (the default: every step) to 1000 */
    sdc_preview_method preview;  /* SDC_PREVIEW_CHEAP (default) or SDC_PREVIEW_TAESD */
    void *user;
} sdc_gen_params;

typedef struct sdc_image {
    int width, height;
    unsigned char *rgb;          /* width * height * 3, row-major */
    char *infotext;              /* AUTOMATIC1111 "parameters" text */
    float *latents;              /* final latents, (4, h/8, w/8) NCHW */
    double seconds_encode, seconds_denoise, seconds_decode;
    double seconds_lora;         /* merging or taking out LoRAs before this image's batch (0: the
                                  * weights already held its LoRAs) */
} sdc_image;

sdc_gen_params sdc_gen_params_default(void);

/* Validate p (clear errors for an unknown sampler, steps < 1, sizes that are
 * not multiples of 8, ...) without running anything. */
sdc_status sdc_check_gen_params(const sdc_ctx *ctx, const sdc_gen_params *p);

/* Text to image. On success *out owns its buffers (sdc_image_free). */
sdc_status sdc_txt2img(sdc_ctx *ctx, const sdc_gen_params *p, sdc_image *out);
void sdc_image_free(sdc_image *img);

/* n jobs in one denoising loop (U-Net batch 2n, or n without guidance):
 * they must share width, height, steps, sampler, karras, spacing, eta and
 * LoRAs (SDC_ERR_ARG otherwise); each has its own prompts, seed and CFG scale.
 * out[i] is what sdc_txt2img(ctx, &jobs[i]) gives (same noise, same image,
 * within the backend's batching tolerance). jobs[0].on_step reports. */
sdc_status sdc_txt2img_batch(sdc_ctx *ctx, const sdc_gen_params *jobs, int n, sdc_image *out);

/* Write img as a PNG with its infotext, atomically (no partial file). */
sdc_status sdc_image_save_png(const sdc_image *img, const char *path);

/* Name of the backend in use ("cpu" or "cuda"). */
const char *sdc_backend_name(const sdc_ctx *ctx);
/* The most device memory sdc has held at once since the model was loaded
 * (weights, activations, workspaces), in bytes; 0 on the CPU backend or
 * for a NULL ctx. */
size_t sdc_device_memory_peak(const sdc_ctx *ctx);
/* "auto", "fp32", "fp16", "bf16" */
const char *sdc_precision_name(sdc_precision p);

/* The side in pixels the model was trained at (512 for SD 1.x and SD 2.x
 * base, 768 for SD 2.x v-prediction, 64 for the shipped model); what a
 * width or height of 0 means. */
int sdc_native_size(const sdc_ctx *ctx);

void sdc_free(sdc_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
