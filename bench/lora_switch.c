/* lora_switch.c - what a LoRA switch costs against what a checkpoint load
 * costs, on the CPU backend (or CUDA with --backend cuda).
 *
 *   lora_switch_bench MODEL [--rank R] [--backend cpu|cuda] [--rounds N]
 *
 * Writes two random kohya LoRAs for MODEL's shapes into a temporary
 * folder, as trainers make them for SD 1.5 (fp16, alpha = rank / 2):
 *   attn: every U-Net attention block's linear and 1x1 modules (q, k, v,
 *         out, the feed-forward, proj_in / proj_out) and every text-encoder
 *         layer's (q, k, v, out, fc1, fc2) - kohya's default;
 *   locon: attn plus every U-Net convolution of the res blocks, the down-
 *         and upsamplers (LoCon, rank R on 3x3 kernels).
 * Then times sdc_load, the first merge of each (which opens and checks the
 * file), and N rounds of attn -> none -> locon -> attn ... (a batch whose
 * lines alternate), each a rebuild of every weight the old or the new set
 * changes from the checkpoint's own tensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context.h"
#include "lora_apply.h"
#include "sampling/rng.h"
#include "../tests/st_write.h"

static void random_f32(sdc_rng *r, float *v, size_t n, float scale) {
    sdc_rng_randn(r, v, n);
    for (size_t i = 0; i < n; i++) v[i] *= scale;
}

/* kohya's key of a weight: prefix + its module, '.' as '_' */
static void kohya_key(const char *prefix, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", prefix, name);
    out[strlen(out) - 7] = '\0'; /* ".weight" */
    for (char *c = out + strlen(prefix); *c; c++)
        if (*c == '.') *c = '_';
}

static int add_module(st_builder *b, sdc_rng *r, const char *prefix, const sdc_weight_src *s, int rank) {
    char key[512], n[600];
    kohya_key(prefix, s->name, key, sizeof key);
    const int kk = s->k ? s->k * s->k : 1;
    float *v = malloc((size_t)rank * s->cols * kk * sizeof *v), *u = malloc((size_t)s->rows * rank * sizeof *u);
    if (!v || !u) return -1;
    random_f32(r, v, (size_t)rank * s->cols * kk, 0.02f);
    random_f32(r, u, (size_t)s->rows * rank, 0.02f);
    const int64_t down4[4] = {rank, s->cols, s->k ? s->k : 1, s->k ? s->k : 1}, up4[4] = {s->rows, rank, 1, 1};
    const int64_t down2[2] = {rank, s->cols}, up2[2] = {s->rows, rank};
    const bool conv = s->k > 0;
    snprintf(n, sizeof n, "%s.lora_down.weight", key);
    int rc = st_builder_add_f16(b, n, conv ? 4 : 2, conv ? down4 : down2, v);
    snprintf(n, sizeof n, "%s.lora_up.weight", key);
    rc |= st_builder_add_f16(b, n, conv ? 4 : 2, conv ? up4 : up2, u);
    const float alpha = (float)rank / 2;
    snprintf(n, sizeof n, "%s.alpha", key);
    rc |= st_builder_add_f16(b, n, 0, NULL, &alpha);
    free(v), free(u);
    return rc;
}

/* Writes dir/NAME.safetensors; returns the modules written, -1 on failure. */
static int write_lora(sdc_ctx *ctx, const char *dir, const char *name, int rank, bool convs, uint64_t seed) {
    sdc_rng r;
    sdc_rng_seed(&r, seed);
    st_builder *b = st_builder_new();
    int n = 0;
    const sdc_weight_set *u = &ctx->unet->weights, *t = &ctx->te->weights;
    for (int i = 0; i < u->n_srcs; i++) {
        const sdc_weight_src *s = &u->srcs[i];
        const bool attn = strstr(s->name, ".attentions.") != NULL;
        const bool conv = convs && s->k > 0 && (strstr(s->name, ".resnets.") || strstr(s->name, "samplers."));
        if (!attn && !conv) continue;
        if (add_module(b, &r, "lora_unet_", s, rank)) return -1;
        n++;
    }
    for (int i = 0; i < t->n_srcs; i++) {
        if (add_module(b, &r, "lora_te_", &t->srcs[i], rank)) return -1;
        n++;
    }
    char meta[32];
    snprintf(meta, sizeof meta, "%d", rank);
    st_builder_meta(b, "ss_network_dim", meta);
    st_builder_meta(b, "ss_network_module", convs ? "lycoris.kohya" : "networks.lora");
    char *path = st_path(dir, name);
    const int rc = st_builder_write(b, path);
    free(path);
    st_builder_free(b);
    return rc ? -1 : n;
}

/* Apply the LoRA of prompt; the seconds it took (-1 on failure). */
static double apply(sdc_ctx *ctx, const char *prompt, int *touched) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = prompt;
    char *text = NULL;
    sdc_lora_use *u = NULL;
    int n = 0;
    const double t0 = sdc_now();
    if (sdc_job_loras(ctx, &g, &text, &u, &n) != SDC_OK || sdc_lora_apply(ctx, u, n) != SDC_OK) {
        fprintf(stderr, "lora_switch: %s: %s\n", prompt, sdc_last_error());
        return -1;
    }
    const double t = sdc_now() - t0;
    *touched = ctx->lora.n_touched;
    free(text);
    sdc_lora_uses_free(u, n);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: lora_switch_bench MODEL [--rank R] [--backend cpu|cuda] [--rounds N]\n");
        return 2;
    }
    int rank = 32, rounds = 3;
    sdc_backend_kind kind = SDC_BACKEND_CPU;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend")) kind = !strcmp(argv[i + 1], "cuda") ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU;
    }
    if (rank < 1 || rank > 1024 || rounds < 1) {
        fprintf(stderr, "lora_switch: --rank 1..1024, --rounds 1 or more\n");
        return 2;
    }
    char *dir = st_tmpdir();
    sdc_params mp = sdc_params_default();
    mp.model_path = argv[1];
    mp.backend = kind;
    mp.lora_dir = dir;
    sdc_ctx *ctx = NULL;
    double t0 = sdc_now();
    if (!dir || sdc_load(&mp, &ctx) != SDC_OK) {
        fprintf(stderr, "lora_switch: %s\n", sdc_last_error());
        return 1;
    }
    const double t_load = sdc_now() - t0;
    const int n_attn = write_lora(ctx, dir, "attn.safetensors", rank, false, 1);
    const int n_locon = write_lora(ctx, dir, "locon.safetensors", rank, true, 2);
    if (n_attn < 0 || n_locon < 0) {
        fprintf(stderr, "lora_switch: writing the LoRAs failed\n");
        return 1;
    }
    char cpu[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    for (char line[512]; f && fgets(line, sizeof line, f);)
        if (!strncmp(line, "model name", 10)) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    if (f) fclose(f);
    printf("lora_switch: %s, backend %s, %s, %ld cores\n", argv[1], sdc_backend_name(ctx), cpu,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("checkpoint load (sdc_load): %.2f s\n", t_load);
    printf("LoRAs: rank %d fp16, attn %d modules, locon %d modules\n", rank, n_attn, n_locon);
    int touched = 0;
    double t = apply(ctx, "x <lora:attn:0.8>", &touched);
    printf("first merge of attn (opens and checks the file): %.3f s, %d weights\n", t, touched);
    t = apply(ctx, "x <lora:locon:0.8>", &touched);
    printf("first switch to locon (opens and checks the file): %.3f s, %d weights\n", t, touched);
    static const char *const cycle[3] = {"x <lora:attn:0.8>", "x", "x <lora:locon:0.8>"};
    static const char *const what[3] = {"locon -> attn", "attn -> none", "none -> locon"};
    double sum[3] = {0}, worst[3] = {0};
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            t = apply(ctx, cycle[k], &touched);
            if (t < 0) return 1;
            sum[k] += t;
            if (t > worst[k]) worst[k] = t;
        }
    for (int k = 0; k < 3; k++)
        printf("switch %-14s mean %.3f s, worst %.3f s (%d rounds)\n", what[k], sum[k] / rounds, worst[k], rounds);
    sdc_free(ctx);
    st_rmtree(dir);
    free(dir);
    return 0;
}
