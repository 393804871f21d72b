/* cli_txt2img.c - `sdc txt2img`: arguments, progress bar, timing summary. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common.h"
#include "sdc.h"

static const char *HELP =
    "usage: sdc txt2img -m MODEL -p PROMPT [options]\n"
    "\n"
    "  -m, --model MODEL     .safetensors checkpoint (SD 1.x/2.x) or diffusers folder\n"
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
    "                        (default: fp32 on the CPU, fp16 on CUDA), fp32, fp16 or\n"
    "                        bf16 (CUDA only)\n"
    "  --vae-precision P     the VAE's (default: fp32 on the CPU; on CUDA fp32 with\n"
    "                        --precision fp32, else bf16, which cannot overflow)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "\n"
    "The PNG carries the settings in AUTOMATIC1111's \"parameters\" text chunk.\n";

typedef struct progress {
    bool tty;
    double last_print;
} progress;

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

int cli_txt2img(int argc, char **argv) {
    sdc_params mp = sdc_params_default();
    sdc_gen_params g = sdc_gen_params_default();
    const char *out = NULL;
    bool have_seed = false, out_given = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES(s, l) ((!strcmp(a, s) || !strcmp(a, l)) && v && (i++, true))
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        }
        int common = cli_common_option(argc, argv, &i, &mp, &g, &g.seed, &have_seed);
        if (common < 0) return 2;
        if (common > 0) continue;
        if (TAKES("-p", "--prompt")) g.prompt = v;
        else if (TAKES("-o", "--output")) out = v, out_given = true;
        else if (TAKES("--steps", "--steps")) {
            if (!cli_parse_int(v, &g.steps)) return cli_usage_error("--steps %s: expected a whole number", v);
        } else if (TAKES("--sampler", "--sampler")) g.sampler = v;
        else if (!strcmp(a, "--karras")) g.karras = true;
        else
            return cli_usage_error("txt2img: unknown option or missing value: %s", a);
#undef TAKES
    }
    if (!mp.model_path) return cli_usage_error("txt2img: missing -m MODEL%s", "");
    if (!g.prompt) return cli_usage_error("txt2img: missing -p PROMPT%s", "");
    if (out_given && !*out) return cli_usage_error("txt2img: empty output path (-o)%s", "");
    if (!have_seed) g.seed = cli_random_seed();
    char default_out[64];
    if (!out) {
        snprintf(default_out, sizeof default_out, "sdc-%llu.png", g.seed);
        out = default_out;
    }
    /* everything that can be checked before loading the model */
    if (sdc_check_gen_params(NULL, &g) != SDC_OK) return cli_die(NULL);
    if (!output_dir_ok(out)) return 1;

    double t0 = sdc_now();
    sdc_ctx *ctx = NULL;
    if (sdc_load(&mp, &ctx) != SDC_OK) return cli_die(NULL);
    double t_load = sdc_now() - t0;
    if (!have_seed) fprintf(stderr, "sdc: seed %llu\n", g.seed);
    progress pr = {.tty = isatty(2) != 0, .last_print = 0};
    g.on_step = on_step;
    g.user = &pr;
    sdc_image img;
    int rc = 0;
    if (sdc_txt2img(ctx, &g, &img) != SDC_OK) {
        rc = cli_die("txt2img");
    } else {
        if (sdc_image_save_png(&img, out) != SDC_OK) {
            rc = cli_die(NULL);
        } else {
            char mem[64] = "";
            const size_t peak = sdc_device_memory_peak(ctx);
            if (peak) snprintf(mem, sizeof mem, ", peak device memory %.0f MiB", peak / 1048576.0);
            fprintf(stderr,
                    "sdc: %s: load %.1f s, text encode %.2f s, denoise %.1f s (%.2f s/step), decode %.1f s, "
                    "total %.1f s%s\n",
                    sdc_backend_name(ctx), t_load, img.seconds_encode, img.seconds_denoise,
                    img.seconds_denoise / g.steps, img.seconds_decode, sdc_now() - t0, mem);
            printf("%s\n", out);
        }
        sdc_image_free(&img);
    }
    sdc_free(ctx);
    return rc;
}
