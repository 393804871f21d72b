/* cli_txt2img.c - `sdc txt2img` and `sdc img2img`: arguments, progress
 * bar, timing summary. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common.h"
#include "image/image.h"
#include "image/image_ops.h"
#include "sampling/scheduler.h"
#include "sdc.h"

static const char *HELP =
    "usage: sdc txt2img -m MODEL -p PROMPT [options]\n"
    "\n"
    "  -m, --model MODEL     .safetensors checkpoint (SD 1.x, 2.x, XL) or diffusers folder\n"
    "  -p, --prompt TEXT     what to draw\n"
    "  -n, --negative TEXT   what to avoid (default: none)\n"
    "  -o, --output FILE     PNG to write (default: sdc-SEED.png)\n"
    "  --steps N             denoising steps (default 20)\n"
    "  --sampler NAME        ddim (default), ddpm, euler, euler_a, dpmpp_2m\n"
    "  --karras              Karras sigmas (euler, dpmpp_2m)\n"
    "  --spacing S           timestep spacing: leading, trailing, linspace (default: the\n"
    "                        model's scheduler config, else diffusers' per-sampler default)\n"
    "  --cfg X               classifier-free guidance scale (default 7.5; 1 = off)\n"
    "  --seed S              seed of the torch-compatible generator (default: random)\n"
    "  -W, --width W         width in pixels, a multiple of 8 (default: the model's own size)\n"
    "  -H, --height H        height in pixels, a multiple of 8 (default: the model's own size)\n"
    "  --eta E               DDIM eta (default 0)\n"
    "  --clip-skip K         1 = last text layer (default), 2 = penultimate, ...\n"
    "  --backend B           auto (default), cpu or cuda\n"
    "  --precision P         weights and activations of the text encoder and U-Net: auto\n"
    "                        (default: fp32 on the CPU, fp16 on CUDA), fp32, fp16 (CUDA)\n"
    "                        or bf16 (on the CPU: products from bf16 operands, by AMX\n"
    "                        where the processor has it)\n"
    "  --vae-precision P     the VAE's (default: fp32 on the CPU; on CUDA fp32 with\n"
    "                        --precision fp32, else bf16, which cannot overflow)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --lora FILE[:W]       apply a LoRA (.safetensors: kohya, LoCon, LoHa, diffusers/PEFT) with\n"
    "                        multiplier W (default 1), or FILE:TE_W:UNET_W; repeatable. In the\n"
    "                        prompt, <lora:NAME:W> or <lora:NAME:TE_W:UNET_W> does the same\n"
    "  --vae FILE            a VAE of its own instead of the model's (.safetensors: diffusers'\n"
    "                        or the original names), e.g. an fp16-safe one\n"
    "  --prompt-2 TEXT       SDXL: the second text encoder's prompt (default: the prompt)\n"
    "  --negative-2 TEXT     SDXL: its negative prompt (default: the negative prompt)\n"
    "  --original-size WxH   SDXL's size conditioning: the original image's size (default: the\n"
    "                        image's own), --target-size WxH likewise, --crop X,Y the\n"
    "                        crop's top-left corner (default 0,0)\n"
    "  --encode-empty-negative  SDXL: encode an empty negative prompt as text (default: zeros,\n"
    "                        as diffusers and AUTOMATIC1111 give SDXL)\n"
    "  --lora-dir DIR        where <lora:NAME:...> finds NAME.safetensors, subfolders too\n"
    "                        (default: the model's folder)\n"
    "  --embeddings-dir DIR  textual-inversion embeddings (*.safetensors): a prompt word that\n"
    "                        is an embedding's file name becomes its vectors\n"
    "  --preview FILE        live preview: the current estimate of the image written to FILE\n"
    "                        (PNG, replaced atomically) every --preview-every steps, at the\n"
    "                        output size so that it lines up with the image; without --taesd\n"
    "                        AUTOMATIC1111's cheap projection, one colour per latent pixel\n"
    "                        (blocks of 8x8 pixels for SD)\n"
    "  --preview-every N     steps between previews (default 1: every step)\n"
    "  --taesd FILE          previews by TAESD's decoder (madebyollin/taesd's\n"
    "                        taesd_decoder.safetensors): close to the final image\n"
    "  --vae-tiling          decode (and encode) in overlapping tiles, as diffusers'\n"
    "                        enable_tiling: memory for a tile, not the image; seams are\n"
    "                        blended (default: tiles only when the image would not fit\n"
    "                        in the memory available)\n"
    "  --no-vae-tiling       never tile the VAE\n"
    "  --vae-tile-size PX    a tile's side in pixels, a multiple of 32 (default 512)\n"
    "\n"
    "The PNG carries the settings in AUTOMATIC1111's \"parameters\" text chunk.\n";

static const char *HELP_IMG2IMG =
    "usage: sdc img2img -m MODEL -i IMAGE -p PROMPT [options]\n"
    "\n"
    "Image to image (and inpainting with --mask) as diffusers' StableDiffusionImg2ImgPipeline\n"
    "and StableDiffusionInpaintPipeline; every txt2img option applies.\n"
    "\n"
    "  -i, --init IMAGE      the picture to start from (PNG or JPEG, any size)\n"
    "  --strength S          0 < S <= 1 (default 0.75): how much of the schedule runs; the\n"
    "                        last int(steps * S) of --steps steps run\n"
    "  --a1111-steps         count those steps as AUTOMATIC1111 does (one more)\n"
    "  -W, -H                output size (default: the image's, down to a multiple of 8)\n"
    "  --resize-mode M       how the image meets the output size: just (default: stretch),\n"
    "                        crop (scale to cover, centre crop), fill (scale to fit, fill\n"
    "                        the borders with the stretched edges); AUTOMATIC1111's modes\n"
    "  --mask MASK           inpainting: white repaints, black keeps (PNG or JPEG; an alpha\n"
    "                        channel that is not opaque is the mask); resized as the image\n"
    "  --mask-blur PX        blur the mask and composite the original back through it\n"
    "                        (AUTOMATIC1111's mask blur; default 0)\n"
    "  --inpaint-fill F      what the masked area starts from: original (default), fill\n"
    "                        (the surrounding colours), latent-noise, latent-nothing\n"
    "  --only-masked         render only the mask's box (plus --only-masked-padding PX,\n"
    "                        default 32) at the output size and paste it back\n"
    "\n"
    "An inpainting checkpoint (9-channel U-Net, e.g. sd-v1-5-inpainting) is found from\n"
    "its tensors; without --mask it repaints everything, as AUTOMATIC1111 does.\n";

typedef struct progress {
    bool tty;
    double last_print;
    const char *preview; /* --preview FILE, or NULL */
    bool preview_failed; /* said once */
} progress;

/* --preview: each preview replaces the file atomically (sdc_png_write: a
 * temporary file in the same folder, then rename), so a viewer never
 * reads half a PNG. A failed write is a warning: the render goes on. */
static void on_preview(int step, int steps, const unsigned char *rgb, int w, int h, void *user) {
    (void)step, (void)steps;
    progress *pr = user;
    if (sdc_png_write(pr->preview, rgb, w, h, NULL) != SDC_OK && !pr->preview_failed) {
        fprintf(stderr, "\nsdc: warning: preview not written: %s\n", sdc_last_error());
        pr->preview_failed = true;
    }
}

static void on_step(int step, int steps, double seconds, void *user) {
    progress *pr = user;
    double per = seconds / step, eta = per * (steps - step);
    if (!pr->tty) {
        if (step == steps || seconds - pr->last_print >= 10.0) {
            fprintf(stderr, "sdc: step %d/%d, %.2f s/step\n", step, steps, per);
            pr->last_print = seconds;
        }
        return;
    }
    const int width = 30, fill = step * width / steps;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    if (per >= 1.0)
        fprintf(stderr, "\r[%s] %d/%d  %.2f s/it  ETA %.0f s   ", bar, step, steps, per, eta);
    else
        fprintf(stderr, "\r[%s] %d/%d  %.2f it/s  ETA %.1f s   ", bar, step, steps, 1.0 / per, eta);
    if (step == steps) fputc('\n', stderr);
}


/* the steps that run: all, or those a strength leaves */
static int steps_run(const sdc_gen_params *g) {
    const int first = g->init_rgb ? sdc_sampler_first_step(g->steps, g->strength, g->a1111_steps) : 0;
    return first >= 0 && first < g->steps ? g->steps - first : 1;
}

/* The output's folder must exist and be writable before minutes of work. */
static bool output_dir_ok(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "sdc: output %s: folder %s: %s\n", path, dir, strerror(errno));
        return false;
    }
    return true;
}

/* img2img's own options; 1 taken, 0 not one of them, -1 a usage error */
static int img2img_option(const char *a, const char *v, int *i, sdc_gen_params *g, const char **init,
                          const char **mask) {
#define TAKES(s, l) ((!strcmp(a, s) || !strcmp(a, l)) && v && (++*i, true))
    if (TAKES("-i", "--init")) *init = v;
    else if (TAKES("--mask", "--mask")) *mask = v;
    else if (TAKES("--strength", "--strength")) {
        float s;
        if (!cli_parse_float(v, &s)) return cli_usage_error("--strength %s: expected a number", v), -1;
        g->strength = strtod(v, NULL); /* the double the user wrote, as Python reads it */
    } else if (!strcmp(a, "--a1111-steps")) g->a1111_steps = true;
    else if (TAKES("--resize-mode", "--resize-mode")) {
        if (!strcmp(v, "just")) g->resize_mode = 0;
        else if (!strcmp(v, "crop")) g->resize_mode = 1;
        else if (!strcmp(v, "fill")) g->resize_mode = 2;
        else return cli_usage_error("--resize-mode %s: expected just, crop or fill", v), -1;
    } else if (TAKES("--mask-blur", "--mask-blur")) {
        if (!cli_parse_int(v, &g->mask_blur)) return cli_usage_error("--mask-blur %s: expected pixels", v), -1;
    } else if (TAKES("--inpaint-fill", "--inpaint-fill")) {
        static const char *const names[] = {"fill", "original", "latent-noise", "latent-nothing"};
        g->inpaint_fill = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(v, names[k])) g->inpaint_fill = k;
        if (g->inpaint_fill < 0)
            return cli_usage_error("--inpaint-fill %s: expected original, fill, latent-noise or latent-nothing", v),
                   -1;
    } else if (!strcmp(a, "--only-masked")) g->inpaint_full_res = true;
    else if (TAKES("--only-masked-padding", "--only-masked-padding")) {
        if (!cli_parse_int(v, &g->inpaint_full_res_padding))
            return cli_usage_error("--only-masked-padding %s: expected pixels", v), -1;
    } else
        return 0;
#undef TAKES
    return 1;
}

/* --preview, --preview-every, --taesd; 1 taken, 0 not one of them, -1 a
 * usage error */
static int preview_option(const char *a, const char *v, int *i, sdc_params *mp, sdc_gen_params *g,
                          const char **preview, bool *every) {
    if (!v || (strcmp(a, "--preview") && strcmp(a, "--preview-every") && strcmp(a, "--taesd"))) return 0;
    ++*i;
    if (!strcmp(a, "--preview")) *preview = v;
    else if (!strcmp(a, "--taesd")) mp->taesd_path = v, g->preview = SDC_PREVIEW_TAESD;
    else if (!cli_parse_int(v, &g->preview_every) || g->preview_every < 1)
        return cli_usage_error("--preview-every %s: expected a number of steps, 1 or more", v), -1;
    else *every = true;
    return 1;
}

/* The init image and mask from their files (PNG or JPEG), before the model
 * loads: a bad file costs nothing. */
static int read_init(const char *init, const char *mask, sdc_gen_params *g, unsigned char **rgb,
                     unsigned char **m) {
    int w = 0, h = 0;
    if (sdc_image_load(init, rgb, &w, &h) != SDC_OK) return cli_die(NULL);
    g->init_rgb = *rgb, g->init_width = w, g->init_height = h;
    if (!mask) return 0;
    if (sdc_mask_load(mask, m, &w, &h) != SDC_OK) return cli_die(NULL);
    if (w != g->init_width || h != g->init_height)
        fprintf(stderr, "sdc: mask %s is %dx%d, the image %dx%d: both are brought to the output size\n", mask, w, h,
                g->init_width, g->init_height);
    g->mask = *m, g->mask_width = w, g->mask_height = h;
    return 0;
}

static int render(int argc, char **argv, bool img2img) {
    sdc_params mp = sdc_params_default();
    sdc_gen_params g = sdc_gen_params_default();
    const char *out = NULL, *init = NULL, *mask = NULL, *preview = NULL;
    bool preview_every = false;
    const char *cmd = img2img ? "img2img" : "txt2img";
    unsigned char *init_rgb = NULL, *mask_px = NULL;
    bool have_seed = false, out_given = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES(s, l) ((!strcmp(a, s) || !strcmp(a, l)) && v && (i++, true))
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(img2img ? HELP_IMG2IMG : HELP, stdout);
            return 0;
        }
        if (img2img) {
            int own = img2img_option(a, v, &i, &g, &init, &mask);
            if (own < 0) return 2;
            if (own > 0) continue;
        }
        int pv = preview_option(a, v, &i, &mp, &g, &preview, &preview_every);
        if (pv < 0) return 2;
        if (pv > 0) continue;
        int common = cli_common_option(argc, argv, &i, &mp, &g, &g.seed, &have_seed);
        if (common < 0) return 2;
        if (common > 0) continue;
        if (TAKES("-p", "--prompt")) g.prompt = v;
        else if (TAKES("-o", "--output")) out = v, out_given = true;
        else if (TAKES("--steps", "--steps")) {
            if (!cli_parse_int(v, &g.steps)) return cli_usage_error("--steps %s: expected a whole number", v);
        } else if (TAKES("--sampler", "--sampler")) g.sampler = v;
        else if (!strcmp(a, "--karras")) g.karras = true;
        else if (!strcmp(a, "--vae-tiling")) g.vae_tiling = SDC_VAE_TILING_ON;
        else if (!strcmp(a, "--no-vae-tiling")) g.vae_tiling = SDC_VAE_TILING_OFF;
        else if (TAKES("--vae-tile-size", "--vae-tile-size")) {
            if (!cli_parse_int(v, &g.vae_tile_size) || g.vae_tile_size < 1)
                return cli_usage_error("--vae-tile-size %s: expected pixels, a multiple of 32", v);
        } else {
            fprintf(stderr, "sdc: %s: unknown option or missing value: %s (see 'sdc %s --help')\n", cmd, a, cmd);
            return 2;
        }
#undef TAKES
    }
    if (!mp.model_path) return cli_usage_error("%s: missing -m MODEL", cmd);
    if (!g.prompt) return cli_usage_error("%s: missing -p PROMPT", cmd);
    if (img2img && !init) return cli_usage_error("%s: missing -i IMAGE", cmd);
    if (out_given && !*out) return cli_usage_error("%s: empty output path (-o)", cmd);
    if (!preview && (preview_every || mp.taesd_path))
        return cli_usage_error("%s: --preview-every and --taesd are for previews: give --preview FILE too", cmd);
    if (preview && !*preview) return cli_usage_error("%s: empty preview path (--preview)", cmd);
    if (!have_seed) g.seed = cli_random_seed();
    char default_out[64];
    if (!out) {
        snprintf(default_out, sizeof default_out, "sdc-%llu.png", g.seed);
        out = default_out;
    }
    /* everything that can be checked before loading the model */
    if (img2img && read_init(init, mask, &g, &init_rgb, &mask_px)) {
        free(init_rgb), free(mask_px);
        return 1;
    }
    progress pr = {.tty = isatty(2) != 0, .last_print = 0, .preview = preview};
    if (preview) g.on_preview = on_preview;
    if (sdc_check_gen_params(NULL, &g) != SDC_OK || !output_dir_ok(out) || (preview && !output_dir_ok(preview))) {
        free(init_rgb), free(mask_px);
        return sdc_last_error()[0] ? cli_die(NULL) : 1;
    }

    double t0 = sdc_now();
    sdc_ctx *ctx = NULL;
    if (sdc_load(&mp, &ctx) != SDC_OK) {
        free(init_rgb), free(mask_px);
        return cli_die(NULL);
    }
    double t_load = sdc_now() - t0;
    if (!have_seed) fprintf(stderr, "sdc: seed %llu\n", g.seed);
    g.on_step = on_step;
    g.user = &pr;
    sdc_image img;
    int rc = 0;
    if (sdc_txt2img(ctx, &g, &img) != SDC_OK) {
        rc = cli_die(cmd);
    } else {
        if (sdc_image_save_png(&img, out) != SDC_OK) {
            rc = cli_die(NULL);
        } else {
            char mem[64] = "";
            const size_t peak = sdc_device_memory_peak(ctx);
            if (peak) snprintf(mem, sizeof mem, ", peak device memory %.0f MiB", peak / 1048576.0);
            char lora[48] = "";
            if (img.seconds_lora > 0) snprintf(lora, sizeof lora, ", LoRAs merged %.2f s", img.seconds_lora);
            fprintf(stderr,
                    "sdc: %s: load %.1f s%s, text encode %.2f s, denoise %.1f s (%.2f s/step), decode %.1f s, "
                    "total %.1f s%s\n",
                    sdc_backend_name(ctx), t_load, lora, img.seconds_encode, img.seconds_denoise,
                    img.seconds_denoise / steps_run(&g), img.seconds_decode, sdc_now() - t0, mem);
            printf("%s\n", out);
        }
        sdc_image_free(&img);
    }
    sdc_free(ctx);
    free(init_rgb), free(mask_px);
    return rc;
}

int cli_txt2img(int argc, char **argv) { return render(argc, argv, false); }
int cli_img2img(int argc, char **argv) { return render(argc, argv, true); }
