/* cli_batch.c - `sdc batch`: render every job of a prompt list into a
 * folder, resumably: finished PNGs are skipped on a re-run, each job is
 * logged in OUTDIR/manifest.jsonl as it completes, Ctrl-C finishes the
 * current image (twice: stops at once), --shard splits the list between
 * processes. Parsing, names and the manifest live in batch.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/batch.h"
#include "cli/cli.h"
#include "common.h"
#include "image/image_ops.h"
#include "sdc.h"

static const char *HELP =
    "usage: sdc batch -m MODEL PROMPTS -o OUTDIR [options]\n"
    "\n"
    "Renders every job of PROMPTS, loading the model once. Each line is a plain\n"
    "prompt, AUTOMATIC1111 \"prompts from file\" options (--prompt \"...\" --steps 30\n"
    "--sampler_name \"DPM++ 2M Karras\" --seed 5 --batch_size 2 ...), or a JSON object\n"
    "with the same keys; blank lines and lines starting with # are skipped. Image to\n"
    "image: init_image, mask (paths relative to PROMPTS' folder), denoising_strength.\n"
    "The options below are the defaults a line can override.\n"
    "\n"
    "  -m, --model MODEL     .safetensors checkpoint (SD 1.x, 2.x, XL) or diffusers folder\n"
    "  -o, --output OUTDIR   folder for NNNNN-SEED-prompt.png and manifest.jsonl\n"
    "  -n, --negative TEXT   negative prompt (default: none)\n"
    "  --steps N             denoising steps (default 20)\n"
    "  --sampler NAME        ddim (default), ddpm, euler, euler_a, dpmpp_2m, or A1111's\n"
    "                        names (\"Euler a\", \"DPM++ 2M Karras\", ...)\n"
    "  --karras              Karras sigmas (euler, euler_a, dpmpp_2m)\n"
    "  --spacing S           timestep spacing: leading, trailing, linspace\n"
    "  --cfg X               classifier-free guidance scale (default 7.5)\n"
    "  --seed S              base seed: job i without its own seed gets S + i\n"
    "                        (default: the last run's from the manifest, else random)\n"
    "  -W, --width W         width, a multiple of 8 (default: the model's own size)\n"
    "  -H, --height H        height, a multiple of 8 (default: the model's own size)\n"
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
    "  -i, --init IMAGE      image to image for lines that name no init_image (PNG/JPEG)\n"
    "  --mask MASK           inpainting mask for those lines\n"
    "  --strength S          default denoising_strength (0.75)\n"
    "  --batch-size N        render up to N jobs with the same size, steps and sampler\n"
    "                        settings together (default 1)\n"
    "  --shard K/N           only the jobs with index % N == K - 1 (one process per GPU\n"
    "                        or per Slurm array task)\n"
    "  --force               re-render jobs whose PNG exists\n"
    "\n"
    "A re-run of the same command renders only what is missing. Ctrl-C finishes the\n"
    "current image, a second Ctrl-C stops at once. Exit status 1 if any job failed.\n";

/* ------------------------------------------------------------- signals */

static volatile sig_atomic_t g_stop, g_rendered, g_skipped, g_failed, g_left;

static void put_num(char **w, long v) {
    char d[24];
    int n = 0;
    do d[n++] = (char)('0' + v % 10), v /= 10;
    while (v && n < 24);
    while (n) *(*w)++ = d[--n];
}

static void put_str(char **w, const char *s) {
    while (*s) *(*w)++ = *s++;
}

/* Async-signal-safe: counters and write(2) only. */
static void on_signal(int sig) {
    (void)sig;
    g_stop++;
    char buf[256], *w = buf;
    if (g_stop == 1) {
        put_str(&w, "\nsdc: interrupted: finishing the current image (again to stop now)\n");
        ssize_t r = write(2, buf, (size_t)(w - buf));
        (void)r;
        return;
    }
    put_str(&w, "\nsdc: stopped: ");
    put_num(&w, g_rendered), put_str(&w, " rendered, ");
    put_num(&w, g_skipped), put_str(&w, " skipped, ");
    put_num(&w, g_failed), put_str(&w, " failed, ");
    put_num(&w, g_left), put_str(&w, " not done; run the same command again to finish\n");
    ssize_t r = write(2, buf, (size_t)(w - buf));
    (void)r;
    _exit(130);
}

/* ------------------------------------------------------------ progress */

typedef struct progress {
    bool tty;
    int total, done, to_render, rendered, group_n;
    double t0; /* first render started */
} progress;

static void bar(progress *pr, double frac_group) {
    double el = pr->t0 > 0 ? sdc_now() - pr->t0 : 0;
    double imgs = pr->rendered + frac_group * pr->group_n, rate = el > 0 ? imgs / el : 0;
    double left = pr->to_render - imgs;
    const int width = 30;
    int fill = pr->total ? (int)((pr->done + frac_group * pr->group_n) * width / pr->total) : width;
    char b[64];
    for (int i = 0; i < width; i++) b[i] = i < fill ? '#' : '.';
    b[width] = '\0';
    fprintf(stderr, "\r[%s] %d/%d jobs", b, pr->done, pr->total);
    if (rate > 0) {
        double eta = left / rate;
        if (rate >= 1) fprintf(stderr, "  %.2f img/s", rate);
        else fprintf(stderr, "  %.1f s/img", 1 / rate);
        if (eta >= 3600) fprintf(stderr, "  ETA %dh%02dm", (int)(eta / 3600), (int)(eta / 60) % 60);
        else if (eta >= 60) fprintf(stderr, "  ETA %dm%02ds", (int)(eta / 60), (int)eta % 60);
        else fprintf(stderr, "  ETA %.0f s", eta);
    }
    fputs("\033[K", stderr);
}

static void on_step(int step, int steps, double seconds, void *user) {
    (void)seconds;
    progress *pr = user;
    if (pr->tty) bar(pr, (double)step / steps);
}

/* A line about one job: above the bar on a terminal, else plain. */
static void job_line(progress *pr, const char *fmt, const char *a, const char *b) {
    if (pr->tty) fputs("\r\033[K", stderr);
    fprintf(stderr, "sdc: [%d/%d] ", pr->done, pr->total);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    if (pr->tty) bar(pr, 0);
}

/* -------------------------------------------------------------- helpers */


/* mkdir -p */
static bool make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return false;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && access(path, W_OK) == 0;
}

typedef struct state {
    const char *outdir;
    sdc_batch_run run;
    int manifest;
    progress pr;
    bool stdout_tty;
    int rendered, skipped, failed;
} state;

static void sync_counters(state *s) {
    g_rendered = s->rendered, g_skipped = s->skipped, g_failed = s->failed;
    g_left = s->pr.total - s->pr.done;
}

/* Log one finished job in the manifest (a failed write is reported once
 * per job and fails the run, but rendering goes on). */
static void record(state *s, const sdc_batch_job *j, const sdc_batch_result *r) {
    char *line = sdc_batch_manifest_line(j, r, &s->run);
    if (!line || sdc_batch_manifest_append(s->manifest, line) != SDC_OK) {
        fprintf(stderr, "\nsdc: %s/manifest.jsonl: %s\n", s->outdir, line ? sdc_last_error() : "out of memory");
        if (!strcmp(r->status, "ok")) s->failed++, s->rendered--;
    }
    free(line);
    s->pr.done++;
    sync_counters(s);
}

static void job_failed(state *s, const sdc_batch_job *j, const char *why) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", why);
    sdc_batch_result r = {.status = "failed", .error = msg};
    s->failed++;
    record(s, j, &r);
    char name[128];
    sdc_batch_filename(j, name, sizeof name);
    job_line(&s->pr, "%s failed: %s", name, msg);
}

/* Render jobs[0..n) together (sdc_txt2img_batch; one at a time if that
 * fails, so a failure is pinned to its job), save and log each. */
static void render_group(state *s, sdc_ctx *ctx, sdc_batch_job **jobs, int n) {
    sdc_gen_params g[64];
    sdc_image img[64];
    for (int i = 0; i < n; i++) g[i] = jobs[i]->gen, g[i].on_step = on_step, g[i].user = &s->pr;
    s->pr.group_n = n;
    if (s->pr.t0 == 0) s->pr.t0 = sdc_now();
    double t0 = sdc_now();
    sdc_status st = n == 1 ? sdc_txt2img(ctx, &g[0], &img[0]) : sdc_txt2img_batch(ctx, g, n, img);
    if (st != SDC_OK && n > 1) {
        if (s->pr.tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "sdc: rendering %d images together failed (%s); one at a time instead\n", n,
                sdc_last_error());
        for (int i = 0; i < n; i++) render_group(s, ctx, jobs + i, 1);
        return;
    }
    double per = (sdc_now() - t0) / n;
    for (int i = 0; i < n; i++) {
        if (st != SDC_OK) {
            job_failed(s, jobs[i], sdc_last_error());
            continue;
        }
        char name[128], path[4352];
        sdc_batch_filename(jobs[i], name, sizeof name);
        snprintf(path, sizeof path, "%s/%s", s->outdir, name);
        if (sdc_image_save_png(&img[i], path) != SDC_OK) {
            job_failed(s, jobs[i], sdc_last_error());
        } else {
            sdc_batch_result r = {.status = "ok", .group_size = n, .seconds = per,
                                  .seconds_encode = img[i].seconds_encode,
                                  .seconds_denoise = img[i].seconds_denoise,
                                  .seconds_decode = img[i].seconds_decode,
                                  .seconds_lora = img[i].seconds_lora};
            s->rendered++, s->pr.rendered++;
            record(s, jobs[i], &r);
            if (s->pr.tty && s->stdout_tty) fputs("\r\033[K", stderr); /* the path, not over the bar */
            printf("%s\n", path);
            fflush(stdout);
            char secs[32];
            snprintf(secs, sizeof secs, "%.2f", per);
            if (!s->pr.tty) job_line(&s->pr, "%s ok, %s s", name, secs);
        }
        sdc_image_free(&img[i]);
    }
    if (s->pr.tty) bar(&s->pr, 0);
}

/* ----------------------------------------------------------------- main */

/* An image-to-image job: its image and mask read (an unreadable file fails
 * this job alone), then rendered. */
static void render_init(state *s, sdc_ctx *ctx, sdc_batch_job *j) {
    unsigned char *rgb = NULL, *mask = NULL;
    int w = 0, h = 0, mw = 0, mh = 0;
    if (sdc_image_load(j->init_image, &rgb, &w, &h) != SDC_OK ||
        (j->mask && sdc_mask_load(j->mask, &mask, &mw, &mh) != SDC_OK)) {
        job_failed(s, j, sdc_last_error());
        free(rgb), free(mask);
        return;
    }
    j->gen.init_rgb = rgb, j->gen.init_width = w, j->gen.init_height = h;
    j->gen.mask = mask, j->gen.mask_width = mw, j->gen.mask_height = mh;
    if (!j->gen.width) j->gen.width = w / 8 * 8; /* the image's size, as sdc_txt2img takes 0 */
    if (!j->gen.height) j->gen.height = h / 8 * 8;
    if (sdc_check_gen_params(ctx, &j->gen) != SDC_OK) job_failed(s, j, sdc_last_error());
    else render_group(s, ctx, &j, 1);
    j->gen.init_rgb = j->gen.mask = NULL;
    free(rgb), free(mask);
}

int cli_batch(int argc, char **argv) {
    sdc_params mp = sdc_params_default();
    sdc_batch_defaults d = {.gen = sdc_gen_params_default()};
    const char *list = NULL, *outdir = NULL, *shard = NULL;
    bool have_seed = false, force = false;
    int batch = 1, k = 1, nshards = 1, karras = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES(s, l) ((!strcmp(a, s) || !strcmp(a, l)) && v && (i++, true))
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        }
        int common = cli_common_option(argc, argv, &i, &mp, &d.gen, &d.base_seed, &have_seed);
        if (common < 0) return 2;
        if (common > 0) continue;
        if (TAKES("-o", "--output")) outdir = v;
        else if (TAKES("--steps", "--steps")) {
            if (!cli_parse_int(v, &d.gen.steps)) return cli_usage_error("--steps %s: expected a whole number", v);
        } else if (TAKES("--sampler", "--sampler")) {
            if (sdc_batch_sampler(v, &d.gen.sampler, &karras) != SDC_OK) return cli_die("--sampler");
            if (karras) d.gen.karras = true;
        } else if (!strcmp(a, "--karras")) d.gen.karras = true;
        else if (TAKES("--batch-size", "--batch-size")) {
            if (!cli_parse_int(v, &batch) || batch < 1 || batch > 64)
                return cli_usage_error("--batch-size %s: expected 1 to 64", v);
        } else if (TAKES("--shard", "--shard")) {
            shard = v;
        } else if (!strcmp(a, "--force")) force = true;
        else if (TAKES("-i", "--init")) d.init_image = v;
        else if (TAKES("--mask", "--mask")) d.mask = v;
        else if (TAKES("--strength", "--strength")) {
            char *end;
            d.gen.strength = strtod(v, &end);
            if (end == v || *end || !(d.gen.strength > 0.0) || d.gen.strength > 1.0)
                return cli_usage_error("--strength %s: expected a number more than 0 and at most 1", v);
        }
        else if (a[0] == '-' && a[1]) return cli_usage_error("batch: unknown option or missing value: %s", a);
        else if (!list) list = a;
        else return cli_usage_error("batch: one PROMPTS file only: extra %s", a);
#undef TAKES
    }
    if (!mp.model_path) return cli_usage_error("batch: missing -m MODEL%s", "");
    if (!list) return cli_usage_error("batch: missing the PROMPTS file%s", "");
    if (!outdir || !*outdir) return cli_usage_error("batch: missing -o OUTDIR%s", "");
    if (shard && sdc_batch_parse_shard(shard, &k, &nshards) != SDC_OK) return cli_die(NULL);
    d.gen.prompt = "";
    if (sdc_check_gen_params(NULL, &d.gen) != SDC_OK) return cli_die(NULL);
    if (!make_dirs(outdir)) {
        fprintf(stderr, "sdc: output folder %s: %s\n", outdir, strerror(errno ? errno : EACCES));
        return 1;
    }
    char manifest_path[4352];
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.jsonl", outdir);
    if (!have_seed) {
        bool found = false;
        if (sdc_batch_manifest_base_seed(manifest_path, k, nshards, &d.base_seed, &found) != SDC_OK)
            return cli_die(NULL);
        if (found) fprintf(stderr, "sdc: base seed %llu (the last run's, from %s)\n", d.base_seed, manifest_path);
        else fprintf(stderr, "sdc: base seed %llu\n", d.base_seed = cli_random_seed());
    }
    sdc_batch_list jl;
    if (sdc_batch_parse_file(list, &d, &jl) != SDC_OK) return cli_die(NULL);

    state s = {.outdir = outdir,
               .run = {.source = list, .model = mp.model_path, .clip_skip = mp.clip_skip,
                       .base_seed = d.base_seed, .shard_k = k, .shard_n = nshards},
               .pr = {.tty = isatty(2) != 0},
               .stdout_tty = isatty(1) != 0};
    if (sdc_batch_manifest_open(manifest_path, &s.manifest) != SDC_OK) {
        sdc_batch_list_free(&jl);
        return cli_die(NULL);
    }
    int removed = sdc_batch_remove_temp(outdir, k, nshards);
    if (removed > 0) fprintf(stderr, "sdc: removed %d temporary file%s of an interrupted run\n", removed, removed > 1 ? "s" : "");

    /* this shard's jobs: bad lines and finished PNGs first, before loading */
    sdc_batch_job **todo = malloc(((size_t)jl.n + 1) * sizeof *todo);
    if (!todo) {
        close(s.manifest);
        sdc_batch_list_free(&jl);
        fprintf(stderr, "sdc: out of memory\n");
        return 1;
    }
    int ntodo = 0;
    for (int i = 0; i < jl.n; i++) s.pr.total += sdc_batch_in_shard(i, k, nshards);
    sync_counters(&s);
    for (int i = 0; i < jl.n; i++) {
        sdc_batch_job *j = &jl.jobs[i];
        if (!sdc_batch_in_shard(i, k, nshards)) continue;
        char name[128], path[4352];
        sdc_batch_filename(j, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s", outdir, name);
        if (j->error) {
            if (s.pr.tty) fputs("\r\033[K", stderr);
            fprintf(stderr, "%s\n", j->error);
            sdc_batch_result r = {.status = "failed", .error = j->error};
            s.failed++;
            record(&s, j, &r);
        } else if (!force && sdc_batch_png_ok(path)) {
            sdc_batch_result r = {.status = "skipped", .error = NULL};
            s.skipped++;
            record(&s, j, &r);
            if (!s.pr.tty) job_line(&s.pr, "%s%s skipped (done already)", name, "");
        } else {
            todo[ntodo++] = j;
        }
    }
    s.pr.to_render = ntodo;
    fprintf(stderr, "sdc: %s: %d jobs%s%s: %d to render, %d done already, %d bad\n", list, s.pr.total,
            nshards > 1 ? " in shard " : "", nshards > 1 ? shard : "", ntodo, s.skipped, s.failed);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    sdc_ctx *ctx = NULL;
    double t_start = sdc_now();
    int rc = 0;
    if (ntodo > 0 && !g_stop) {
        if (sdc_load(&mp, &ctx) != SDC_OK) {
            rc = cli_die(NULL);
            goto out;
        }
        fprintf(stderr, "sdc: %s: model loaded in %.1f s\n", sdc_backend_name(ctx), sdc_now() - t_start);
        for (int i = 0; i < ntodo; i++) { /* 0: the model's own size, also in the manifest */
            if (todo[i]->init_image) continue; /* 0: the image's, once it is read */
            if (!todo[i]->gen.width) todo[i]->gen.width = sdc_native_size(ctx);
            if (!todo[i]->gen.height) todo[i]->gen.height = sdc_native_size(ctx);
        }
    }
    if (s.pr.tty && ntodo) bar(&s.pr, 0);
    /* groups: a job and up to batch - 1 later compatible ones (looking at
     * most 4096 jobs ahead) */
    char *taken = calloc((size_t)ntodo + 1, 1);
    if (!taken) {
        fprintf(stderr, "sdc: out of memory\n");
        rc = 1;
        goto out;
    }
    for (int i = 0; i < ntodo && !g_stop; i++) {
        if (taken[i]) continue;
        if (todo[i]->init_image) { /* image to image: one at a time, its files read now */
            taken[i] = 1;
            render_init(&s, ctx, todo[i]);
            continue;
        }
        sdc_batch_job *grp[64];
        int n = 0;
        for (int j = i; j < ntodo && j < i + 4096 && n < batch; j++) {
            if (taken[j] || todo[j]->init_image || !sdc_batch_same_settings(&todo[i]->gen, &todo[j]->gen)) continue;
            if (sdc_check_gen_params(ctx, &todo[j]->gen) != SDC_OK) {
                taken[j] = 1;
                job_failed(&s, todo[j], sdc_last_error()); /* e.g. the model's VAE factor */
                continue;
            }
            grp[n++] = todo[j];
            taken[j] = 1;
        }
        if (n) render_group(&s, ctx, grp, n);
    }
    free(taken);
    if (s.pr.tty && ntodo) fputs("\r\033[K", stderr);
    double el = sdc_now() - t_start;
    int left = s.pr.total - s.pr.done;
    if (g_stop)
        fprintf(stderr, "sdc: interrupted: %d rendered, %d skipped, %d failed, %d not done; "
                "run the same command again to finish\n", s.rendered, s.skipped, s.failed, left);
    else if (s.rendered)
        fprintf(stderr, "sdc: %d rendered, %d skipped, %d failed (%.1f s, %.2f img/s)\n", s.rendered, s.skipped,
                s.failed, el, s.rendered / el);
    else
        fprintf(stderr, "sdc: %d rendered, %d skipped, %d failed\n", s.rendered, s.skipped, s.failed);
    if (ctx && sdc_device_memory_peak(ctx))
        fprintf(stderr, "sdc: peak device memory %.0f MiB\n", sdc_device_memory_peak(ctx) / 1048576.0);
    rc = g_stop ? 130 : s.failed ? 1 : 0;
out:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sdc_free(ctx);
    free(todo);
    close(s.manifest);
    sdc_batch_list_free(&jl);
    return rc;
}
