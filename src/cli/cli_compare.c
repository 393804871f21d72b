/* cli_compare.c - `sdc compare`: every sampler x step count with one seed,
 * composed into one captioned grid PNG, with a timing and convergence
 * table (stdout and CSV). Layout and font: grid.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common.h"
#include "image/grid.h"
#include "image/image.h"
#include "sampling/scheduler.h"
#include "sdc.h"

#define MAX_CELLS 100

static const char *HELP =
    "usage: sdc compare -m MODEL -p PROMPT [options]\n"
    "\n"
    "Renders every sampler x step count with the same seed (the same initial\n"
    "noise) and writes one grid: a row per sampler, a column per step count, each\n"
    "image captioned with its time. A table of times and of each image's distance\n"
    "(RMSE and PSNR of the 8-bit pixels) to the same sampler's highest-step image\n"
    "goes to stdout and to a CSV file.\n"
    "\n"
    "  -m, --model MODEL     .safetensors checkpoint (SD 1.x, 2.x, XL) or diffusers folder\n"
    "  -p, --prompt TEXT     what to draw\n"
    "  -n, --negative TEXT   what to avoid (default: none)\n"
    "  -o, --output FILE     grid PNG to write (default: sdc-compare-SEED.png)\n"
    "  --csv FILE            table to write (default: the output with .csv for .png)\n"
    "  --steps LIST          step counts (default 5,10,20,50): items N, ranges A-B\n"
    "                        (every count), A-B:S or 'A-B (+S)' (every S-th: 5-50:5 =\n"
    "                        5,10,...,50); sorted, duplicates dropped\n"
    "  --samplers LIST       default ddim,ddpm,euler,euler_a,dpmpp_2m\n"
    "  --karras              Karras sigmas for the samplers that have them (euler,\n"
    "                        dpmpp_2m); their rows are labelled 'karras'\n"
    "  --cfg X               classifier-free guidance scale (default 7.5)\n"
    "  --seed S              seed of every image (default: random, printed)\n"
    "  -W, --width W         image width, a multiple of 8 (default: the model's own size)\n"
    "  -H, --height H        image height, a multiple of 8 (default: the model's own size)\n"
    "  --spacing S           timestep spacing: leading, trailing, linspace\n"
    "  --clip-skip K         1 = last text layer (default), 2 = penultimate, ...\n"
    "  --backend B           auto (default), cpu or cuda\n"
    "  --precision P         weights and activations of the text encoder and U-Net: auto\n"
    "                        (default: fp32 on the CPU, fp16 on CUDA), fp32, fp16 (CUDA)\n"
    "                        or bf16 (on the CPU: products from bf16 operands, by AMX\n"
    "                        where the processor has it)\n"
    "  --vae-precision P     the VAE's (default: fp32 on the CPU; on CUDA fp32 with\n"
    "                        --precision fp32, else bf16, which cannot overflow)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --lora FILE[:W]       apply a LoRA to every image (repeatable; also FILE:TE_W:UNET_W);\n"
    "                        prompts apply theirs with <lora:NAME:W> (NAME.safetensors)\n"
    "  --vae FILE            a VAE of its own instead of the model's (.safetensors: diffusers'\n"
    "                        or the original names), e.g. an fp16-safe one\n"
    "  --prompt-2 TEXT       SDXL: the second text encoder's prompt (default: the prompt)\n"
    "  --negative-2 TEXT     SDXL: its negative prompt (default: the negative prompt)\n"
    "  --original-size WxH   SDXL's size conditioning: the original image's size (default: the\n"
    "                        image's own), --target-size WxH likewise, --crop X,Y the\n"
    "                        crop's top-left corner (default 0,0)\n"
    "  --encode-empty-negative  SDXL: encode an empty negative prompt as text (default: zeros,\n"
    "                        as diffusers and AUTOMATIC1111 give SDXL)\n"
    "  --lora-dir DIR        where <lora:NAME:...> looks (default: the model's folder)\n"
    "  --embeddings-dir DIR  textual-inversion embeddings (*.safetensors), by file name\n"
    "\n"
    "At most 100 images. The grid's \"parameters\" text chunk holds the first\n"
    "image's settings and the compared steps and samplers (as AUTOMATIC1111's\n"
    "X/Y/Z plot writes them).\n";


/* The folder of path must exist and be writable before minutes of work. */
static bool dir_writable(const char *what, const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "sdc: %s %s: folder %s: %s\n", what, path, dir, strerror(errno));
        return false;
    }
    return true;
}

/* The output's name with ".csv" for a trailing ".png" (any case), else
 * ".csv" appended. */
static char *csv_path_for(const char *png) {
    size_t n = strlen(png);
    char *s = malloc(n + 5);
    if (!s) return NULL;
    memcpy(s, png, n + 1);
    if (n > 4 && !strcasecmp(png + n - 4, ".png")) s[n - 4] = '\0';
    strcat(s, ".csv");
    return s;
}

typedef struct cell {
    double seconds, rmse, psnr;
} cell;

typedef struct compare {
    int samplers[SDC_SAMPLER_COUNT], n_samplers;
    int steps[MAX_CELLS], n_steps;
    bool row_karras[SDC_SAMPLER_COUNT];
    char row_label[SDC_SAMPLER_COUNT][32];
    cell cells[MAX_CELLS];
} compare;

static void format_psnr(double psnr, char *buf, size_t cap) {
    if (isinf(psnr)) snprintf(buf, cap, "inf");
    else snprintf(buf, cap, "%.2f", psnr);
}

/* The table as CSV, written to a temporary file in the same folder and
 * renamed, so no partial file is left. */
static bool write_csv(const compare *cm, const char *path) {
    char *tmp = malloc(strlen(path) + 16);
    if (!tmp) return false;
    sprintf(tmp, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "sdc: %s: %s\n", path, strerror(errno));
        free(tmp);
        return false;
    }
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    FILE *f = fdopen(fd, "w");
    bool ok = f != NULL;
    if (ok) {
        fprintf(f, "sampler,steps,seconds,rmse,psnr\n");
        for (int r = 0; r < cm->n_samplers; r++)
            for (int c = 0; c < cm->n_steps; c++) {
                const cell *e = &cm->cells[r * cm->n_steps + c];
                char ps[32];
                format_psnr(e->psnr, ps, sizeof ps);
                fprintf(f, "%s,%d,%.3f,%.3f,%s\n", cm->row_label[r], cm->steps[c], e->seconds, e->rmse, ps);
            }
        ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
        ok = (fclose(f) == 0) && ok;
    } else {
        close(fd);
    }
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "sdc: %s: could not write the table: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok;
}

static void print_table(const compare *cm) {
    printf("%-16s %6s %9s %9s %8s\n", "sampler", "steps", "seconds", "rmse", "psnr");
    for (int r = 0; r < cm->n_samplers; r++)
        for (int c = 0; c < cm->n_steps; c++) {
            const cell *e = &cm->cells[r * cm->n_steps + c];
            char ps[32];
            format_psnr(e->psnr, ps, sizeof ps);
            printf("%-16s %6d %9.3f %9.3f %8s\n", cm->row_label[r], cm->steps[c], e->seconds, e->rmse, ps);
        }
    fflush(stdout);
}

/* A1111's X/Y/Z plot fields after the first image's infotext. */
static char *grid_parameters(const compare *cm, const char *first_infotext) {
    char xs[MAX_CELLS * 6 + 8] = "", ys[SDC_SAMPLER_COUNT * 32 + 8] = "";
    for (int c = 0; c < cm->n_steps; c++)
        snprintf(xs + strlen(xs), sizeof xs - strlen(xs), "%s%d", c ? "," : "", cm->steps[c]);
    for (int r = 0; r < cm->n_samplers; r++)
        snprintf(ys + strlen(ys), sizeof ys - strlen(ys), "%s%s%s", r ? "," : "",
                 sdc_sampler_display_name((sdc_sampler_kind)cm->samplers[r]), cm->row_karras[r] ? " Karras" : "");
    const char *xq = strchr(xs, ',') ? "\"" : "", *yq = strchr(ys, ',') ? "\"" : "";
    const char *fmt = "%s, Script: X/Y/Z plot, X Type: Steps, X Values: %s%s%s, Y Type: Sampler, Y Values: %s%s%s";
    int n = snprintf(NULL, 0, fmt, first_infotext, xq, xs, xq, yq, ys, yq);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) snprintf(s, (size_t)n + 1, fmt, first_infotext, xq, xs, xq, yq, ys, yq);
    return s;
}

/* Render row r: its highest step count first (the reference), then the
 * others, each measured against it and put into the grid. */
static int render_row(sdc_ctx *ctx, compare *cm, int r, sdc_gen_params g, sdc_grid *grid, char **first_info,
                      int *done) {
    const int total = cm->n_samplers * cm->n_steps, last = cm->n_steps - 1;
    g.sampler = sdc_sampler_name((sdc_sampler_kind)cm->samplers[r]);
    g.karras = cm->row_karras[r];
    sdc_image ref;
    memset(&ref, 0, sizeof ref);
    int rc = 0;
    for (int k = 0; k < cm->n_steps && rc == 0; k++) {
        int c = k == 0 ? last : k - 1;
        g.steps = cm->steps[c];
        sdc_image img;
        double t0 = sdc_now();
        if (sdc_txt2img(ctx, &g, &img) != SDC_OK) {
            char what[96];
            snprintf(what, sizeof what, "%s, %d steps", cm->row_label[r], g.steps);
            rc = cli_die(what);
            break;
        }
        cell *e = &cm->cells[r * cm->n_steps + c];
        e->seconds = sdc_now() - t0;
        e->rmse = c == last ? 0.0 : sdc_rmse_u8(img.rgb, ref.rgb, (size_t)img.width * (size_t)img.height * 3);
        e->psnr = sdc_psnr_from_rmse(e->rmse);
        char caption[16];
        sdc_grid_format_seconds(e->seconds, caption, sizeof caption);
        sdc_grid_put(grid, r, c, img.rgb, caption);
        fprintf(stderr, "sdc: [%d/%d] %s, %d step%s: %.2f s\n", ++*done, total, cm->row_label[r], g.steps,
                g.steps == 1 ? "" : "s", e->seconds);
        if (r == 0 && c == 0) {
            free(*first_info);
            *first_info = strdup(img.infotext ? img.infotext : "");
            if (!*first_info) rc = cli_die("out of memory");
        }
        if (c == last) ref = img;
        else sdc_image_free(&img);
    }
    sdc_image_free(&ref);
    return rc;
}

int cli_compare(int argc, char **argv) {
    sdc_params mp = sdc_params_default();
    sdc_gen_params g = sdc_gen_params_default();
    const char *out = NULL, *csv = NULL, *steps_spec = "5,10,20,50", *samplers_spec = "ddim,ddpm,euler,euler_a,dpmpp_2m";
    bool have_seed = false, karras = false;
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
        else if (TAKES("-o", "--output")) out = v;
        else if (TAKES("--csv", "--csv")) csv = v;
        else if (TAKES("--steps", "--steps")) steps_spec = v;
        else if (TAKES("--samplers", "--sampler")) samplers_spec = v;
        else if (!strcmp(a, "--karras")) karras = true;
        else
            return cli_usage_error("compare: unknown option or missing value: %s", a);
#undef TAKES
    }
    if (!mp.model_path) return cli_usage_error("compare: missing -m MODEL%s", "");
    if (!g.prompt) return cli_usage_error("compare: missing -p PROMPT%s", "");
    if (out && !*out) return cli_usage_error("compare: empty output path (-o)%s", "");
    if (csv && !*csv) return cli_usage_error("compare: empty table path (--csv)%s", "");

    /* everything that can be checked before loading the model */
    static compare cm;
    memset(&cm, 0, sizeof cm);
    if (sdc_parse_sampler_list(samplers_spec, cm.samplers, SDC_SAMPLER_COUNT, &cm.n_samplers) != SDC_OK ||
        sdc_parse_step_list(steps_spec, cm.steps, MAX_CELLS, &cm.n_steps) != SDC_OK)
        return cli_usage_error("%s", sdc_last_error());
    if (cm.n_samplers * cm.n_steps > MAX_CELLS) {
        char msg[160];
        snprintf(msg, sizeof msg, "compare: %d samplers x %d step counts = %d images, more than %d", cm.n_samplers,
                 cm.n_steps, cm.n_samplers * cm.n_steps, MAX_CELLS);
        return cli_usage_error("%s", msg);
    }
    int n_karras = 0;
    const char *labels[SDC_SAMPLER_COUNT], *no_karras = NULL;
    for (int r = 0; r < cm.n_samplers; r++) {
        sdc_sampler_kind k = (sdc_sampler_kind)cm.samplers[r];
        cm.row_karras[r] = karras && sdc_sampler_supports_karras(k);
        n_karras += cm.row_karras[r];
        if (karras && !cm.row_karras[r] && !no_karras) no_karras = sdc_sampler_name(k);
        snprintf(cm.row_label[r], sizeof cm.row_label[r], "%s%s", sdc_sampler_name(k),
                 cm.row_karras[r] ? " karras" : "");
        labels[r] = cm.row_label[r];
    }
    if (karras && n_karras == 0)
        return cli_usage_error("--karras: none of the samplers has Karras sigmas (euler and dpmpp_2m do)%s", "");
    for (int r = 0; r < cm.n_samplers; r++) {
        sdc_gen_params t = g;
        t.sampler = sdc_sampler_name((sdc_sampler_kind)cm.samplers[r]);
        t.karras = cm.row_karras[r];
        t.steps = cm.steps[cm.n_steps - 1];
        if (sdc_check_gen_params(NULL, &t) != SDC_OK) return cli_usage_error("%s", sdc_last_error());
    }
    sdc_grid_layout layout; /* checked now; made again once the model's own size is known */
    if (sdc_grid_layout_make(cm.n_samplers, cm.n_steps, g.width ? g.width : 64, g.height ? g.height : 64, labels,
                             &layout) != SDC_OK)
        return cli_usage_error("%s", sdc_last_error());
    if (!have_seed) g.seed = cli_random_seed();
    char default_out[64];
    if (!out) {
        snprintf(default_out, sizeof default_out, "sdc-compare-%llu.png", g.seed);
        out = default_out;
    }
    char *csv_own = csv ? NULL : csv_path_for(out);
    if (!csv && !csv_own) return cli_die("out of memory");
    const char *csv_path = csv ? csv : csv_own;
    if (!strcmp(csv_path, out)) {
        free(csv_own);
        return cli_usage_error("compare: the table (--csv) and the grid (-o) are the same file: %s", out);
    }
    if (!dir_writable("output", out) || !dir_writable("table", csv_path)) {
        free(csv_own);
        return 1;
    }

    char col_text[MAX_CELLS][12];
    const char *cols[MAX_CELLS];
    for (int c = 0; c < cm.n_steps; c++) {
        snprintf(col_text[c], sizeof col_text[c], "%d", cm.steps[c]);
        cols[c] = col_text[c];
    }
    if (no_karras)
        fprintf(stderr, "sdc: --karras applies to euler and dpmpp_2m; %s and the like keep their own schedule\n",
                no_karras);

    double t0 = sdc_now();
    sdc_ctx *ctx = NULL;
    if (sdc_load(&mp, &ctx) != SDC_OK) {
        free(csv_own);
        return cli_die(NULL);
    }
    if (!g.width) g.width = sdc_native_size(ctx);
    if (!g.height) g.height = sdc_native_size(ctx);
    sdc_grid grid;
    if (sdc_grid_layout_make(cm.n_samplers, cm.n_steps, g.width, g.height, labels, &layout) != SDC_OK ||
        sdc_grid_new(&layout, labels, cols, &grid) != SDC_OK) {
        sdc_free(ctx);
        free(csv_own);
        return cli_die(NULL);
    }
    fprintf(stderr, "sdc: %s: load %.1f s; %d images of %dx%d, seed %llu\n", sdc_backend_name(ctx), sdc_now() - t0,
            cm.n_samplers * cm.n_steps, g.width, g.height, g.seed);
    char *first_info = NULL, *params = NULL;
    int rc = 0, done = 0;
    for (int r = 0; r < cm.n_samplers && rc == 0; r++) rc = render_row(ctx, &cm, r, g, &grid, &first_info, &done);
    sdc_free(ctx);
    if (rc == 0) {
        params = grid_parameters(&cm, first_info);
        if (!params) rc = cli_die("out of memory");
    }
    if (rc == 0 && sdc_png_write(out, grid.rgb, layout.width, layout.height, params) != SDC_OK) rc = cli_die(NULL);
    if (rc == 0 && !write_csv(&cm, csv_path)) rc = 1;
    if (rc == 0) {
        print_table(&cm);
        fprintf(stderr, "sdc: wrote %s (%dx%d) and %s in %.1f s\n", out, layout.width, layout.height, csv_path,
                sdc_now() - t0);
    }
    free(params);
    free(first_info);
    sdc_grid_free(&grid);
    free(csv_own);
    return rc;
}
