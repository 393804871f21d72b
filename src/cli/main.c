/* main.c - the sdc command line. Only this file exits. */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "cli/cli.h"
#include "text/conditioning.h"
#include "text/extra_networks.h"
#include "lora_apply.h"
#include "model/model.h"
#include "text/prompt.h"
#include "sdc.h"
#include "text/token_text.h"
#include "text/tokenizer.h"

#define SDC_VERSION "0.1.0"

static const char *USAGE =
    "sdc " SDC_VERSION " - Stable Diffusion text-to-image in C and CUDA\n"
    "\n"
    "usage:\n"
    "  sdc txt2img -m MODEL -p PROMPT [options]   text to image ('sdc txt2img --help')\n"
    "  sdc img2img -m MODEL -i IMAGE -p PROMPT [options]   image to image, inpainting ('sdc img2img --help')\n"
    "  sdc compare -m MODEL -p PROMPT [options]   sampler x steps grid ('sdc compare --help')\n"
    "  sdc batch -m MODEL PROMPTS -o OUTDIR [options]   render a prompt list ('sdc batch --help')\n"
    "  sdc serve -m MODEL [options]      AUTOMATIC1111's HTTP API, the model kept loaded ('sdc serve --help')\n"
    "  sdc inspect MODEL                 family, configuration and tensor summary\n"
    "  sdc tokenize [options] PROMPT     the 77 token ids SD feeds its text encoder\n"
    "      -m, --model MODEL   use MODEL's tokenizer files and padding\n"
    "      --vocab FILE        BPE vocabulary (default: the shipped one)\n"
    "      --pad-id N          padding id (49407 for SD 1.x, 0 for SD 2.x)\n"
    "      --pieces            print one token per line with its piece\n"
    "      --weights           parse emphasis and BREAK as txt2img does: every\n"
    "                          77-token window, each token with its piece and weight;\n"
    "                          the LoRAs of <lora:NAME:W> tags and their files first\n"
    "      --lora-dir DIR      where NAME.safetensors is looked for (default: MODEL's folder)\n"
    "      --embeddings-dir DIR  textual-inversion embeddings: their vectors marked\n"
    "  sdc encode -m MODEL [options] PROMPT   run the text encoder, print a summary\n"
    "      --clip-skip K       1 = last layer (default), 2 = penultimate, ...\n"
    "      --backend auto|cpu|cuda, --threads N, --precision and --vae-precision auto|fp32|fp16|bf16\n"
    "      -o FILE             also write the (77 * windows, width) float32 context, raw\n"
    "  sdc --help | --version\n"
    "\n"
    "MODEL is a single .safetensors checkpoint (SD 1.x or 2.x, original layout)\n"
    "or a diffusers folder (unet/, vae/, text_encoder/, tokenizer/).\n";

int cli_die(const char *what) {
    fprintf(stderr, "sdc: %s%s%s\n", what ? what : "", what ? ": " : "", sdc_last_error());
    return 1;
}

int cli_usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "sdc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'sdc --help' for usage\n");
    return 2;
}

bool cli_parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < -1000000000L || v > 1000000000L) return false;
    *out = (int)v;
    return true;
}

bool cli_parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (!*s || *end || errno || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool cli_parse_u64(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return false;
    *out = v;
    return true;
}

/* "AxB" (sep 'x') or "A,B" (sep ','): two whole numbers */
bool cli_parse_pair(const char *s, char sep, int *a, int *b) {
    const char *m = strchr(s, sep);
    if (!m || m == s || strlen(m + 1) == 0 || strlen(s) > 24) return false;
    char first[32];
    memcpy(first, s, (size_t)(m - s));
    first[m - s] = '\0';
    return cli_parse_int(first, a) && cli_parse_int(m + 1, b);
}

unsigned long long cli_random_seed(void) {
    unsigned int s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    if (fd >= 0) close(fd);
    return s;
}

int cli_common_option(int argc, char **argv, int *i, sdc_params *mp, sdc_gen_params *g,
                      unsigned long long *seed, bool *have_seed) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
#define IS(s, l) (!strcmp(a, s) || !strcmp(a, l))
    if (IS("--encode-empty-negative", "--encode-empty-negative")) { /* SDXL: "" encoded, not zeros */
        g->encode_empty_negative = true;
        return 1;
    }
    if (!(IS("-m", "--model") || IS("--prompt-2", "--prompt-2") || IS("--negative-2", "--negative-prompt-2") ||
          IS("--original-size", "--original-size") || IS("--target-size", "--target-size") || IS("--crop", "--crop") || IS("-n", "--negative") || IS("--spacing", "--spacing") || IS("--cfg", "--cfg-scale") ||
          IS("--seed", "--seed") || IS("-W", "--width") || IS("-H", "--height") || IS("--eta", "--eta") ||
          IS("--clip-skip", "--clip-skip") || IS("--backend", "--backend") || IS("--threads", "--threads") ||
          IS("--precision", "--precision") || IS("--vae-precision", "--vae-precision") ||
          IS("--lora", "--lora") || IS("--lora-dir", "--lora-dir") || IS("--embeddings-dir", "--embeddings-dir") ||
          IS("--vae", "--vae")))
        return 0;
    if (!v) return cli_usage_error("%s: missing value", a), -1;
    (*i)++;
    if (IS("-m", "--model")) mp->model_path = v;
    else if (IS("--lora-dir", "--lora-dir")) mp->lora_dir = v;
    else if (IS("--vae", "--vae")) mp->vae_path = v;
    else if (IS("--embeddings-dir", "--embeddings-dir")) mp->embeddings_dir = v;
    else if (IS("--lora", "--lora")) { /* FILE[:W] or FILE:TE_W:UNET_W, repeatable */
        static sdc_lora loras[16];
        if (g->n_loras == 16) return cli_usage_error("--lora %s: at most 16 --lora files", v), -1;
        sdc_lora_ref r;
        if (sdc_lora_ref_parse_arg(v, &r) != SDC_OK) return cli_die(NULL), -1;
        if (g->loras != loras) g->n_loras = 0;
        loras[g->n_loras++] = (sdc_lora){r.name, r.te, r.unet}; /* r.name lives as long as the process */
        g->loras = loras;
    }
    else if (IS("-n", "--negative")) g->negative_prompt = v;
    else if (IS("--prompt-2", "--prompt-2")) g->prompt_2 = v;
    else if (IS("--negative-2", "--negative-prompt-2")) g->negative_prompt_2 = v;
    else if (IS("--original-size", "--original-size") || IS("--target-size", "--target-size")) {
        int w = 0, h = 0;
        if (!cli_parse_pair(v, 'x', &w, &h) || w < 1 || h < 1)
            return cli_usage_error(a[2] == 'o' ? "--original-size %s: expected WIDTHxHEIGHT in pixels, e.g. 1024x1024"
                                               : "--target-size %s: expected WIDTHxHEIGHT in pixels, e.g. 1024x1024", v), -1;
        if (a[2] == 'o') g->original_width = w, g->original_height = h;
        else g->target_width = w, g->target_height = h;
    } else if (IS("--crop", "--crop")) {
        if (!cli_parse_pair(v, ',', &g->crop_left, &g->crop_top) || g->crop_left < 0 || g->crop_top < 0)
            return cli_usage_error("--crop %s: expected X,Y: the crop's left and top edges in pixels, e.g. 0,0", v), -1;
    }
    else if (IS("--spacing", "--spacing")) g->spacing = v;
    else if (IS("--cfg", "--cfg-scale")) {
        if (!cli_parse_float(v, &g->cfg_scale)) return cli_usage_error("--cfg %s: expected a number", v), -1;
    } else if (IS("--seed", "--seed")) {
        if (!cli_parse_u64(v, seed)) return cli_usage_error("--seed %s: expected 0 to 18446744073709551615", v), -1;
        *have_seed = true;
    } else if (IS("-W", "--width")) {
        if (!cli_parse_int(v, &g->width)) return cli_usage_error("--width %s: expected a whole number", v), -1;
    } else if (IS("-H", "--height")) {
        if (!cli_parse_int(v, &g->height)) return cli_usage_error("--height %s: expected a whole number", v), -1;
    } else if (IS("--eta", "--eta")) {
        if (!cli_parse_float(v, &g->eta)) return cli_usage_error("--eta %s: expected a number", v), -1;
    } else if (IS("--clip-skip", "--clip-skip")) {
        if (!cli_parse_int(v, &mp->clip_skip) || mp->clip_skip < 1)
            return cli_usage_error("--clip-skip %s: expected 1 or more", v), -1;
    } else if (IS("--backend", "--backend")) {
        if (cli_parse_backend(v, &mp->backend) != 0)
            return cli_usage_error("--backend %s: expected auto, cpu or cuda", v), -1;
    } else if (IS("--precision", "--precision") || IS("--vae-precision", "--vae-precision")) {
        const bool vae = a[2] == 'v';
        if (cli_parse_precision(v, vae ? &mp->vae_precision : &mp->precision) != 0)
            return cli_usage_error(vae ? "--vae-precision %s: expected auto, fp32, fp16 or bf16"
                                       : "--precision %s: expected auto, fp32, fp16 or bf16", v), -1;
    } else if (!cli_parse_int(v, &mp->n_threads) || mp->n_threads < 0) {
        return cli_usage_error("--threads %s: expected 0 (all) or more", v), -1;
    }
#undef IS
    return 1;
}

int cli_parse_precision(const char *s, sdc_precision *out) {
    for (int p = SDC_PRECISION_AUTO; p <= SDC_PRECISION_BF16; p++)
        if (!strcmp(s, sdc_precision_name((sdc_precision)p))) {
            *out = (sdc_precision)p;
            return 0;
        }
    return -1;
}

int cli_parse_backend(const char *s, sdc_backend_kind *out) {
    if (!strcmp(s, "auto")) *out = SDC_BACKEND_AUTO;
    else if (!strcmp(s, "cpu")) *out = SDC_BACKEND_CPU;
    else if (!strcmp(s, "cuda")) *out = SDC_BACKEND_CUDA;
    else return -1;
    return 0;
}

static int cmd_inspect(int argc, char **argv) {
    if (argc != 1) return cli_usage_error("inspect takes exactly one MODEL argument%s", "");
    sdc_model_files *m = NULL;
    if (sdc_model_open(argv[0], &m) != SDC_OK) return cli_die(NULL);
    sdc_model_print(m, stdout);
    sdc_model_close(m);
    return 0;
}

/* The LoRAs of a prompt's tags, each with the file it applies (when a
 * LoRA folder is known), then each 77-token window of the prompt as
 * txt2img encodes it, embeddings' vectors marked. */
static int print_weighted(sdc_tokenizer *tok, const char *prompt, int pad, const char *lora_dir,
                          const sdc_embedding_db *db) {
    char *text = NULL;
    sdc_lora_ref *refs = NULL;
    int n_refs = 0;
    if (sdc_extra_networks_parse(prompt, &text, &refs, &n_refs) != SDC_OK) return cli_die(NULL);
    for (int i = 0; i < n_refs; i++) {
        char *path = NULL;
        printf("lora %s: te %g, unet %g", refs[i].name, refs[i].te, refs[i].unet);
        if (!lora_dir) printf(" (give -m or --lora-dir to see its file)\n");
        else if (sdc_lora_find(lora_dir, refs[i].name, &path) == SDC_OK) printf(", file %s\n", path);
        else printf(", not applied: %s\n", sdc_last_error());
        free(path);
    }
    sdc_lora_refs_free(refs, n_refs);
    sdc_prompt p;
    sdc_status st = sdc_prompt_tokenize_ti(tok, text, pad, db, &p);
    free(text);
    if (st != SDC_OK) return cli_die(NULL);
    for (int c = 0; c < p.n_chunks; c++) {
        printf("chunk %d of %d\n", c + 1, p.n_chunks);
        for (int i = 0; i < SDC_CLIP_CTX; i++) {
            const char *piece = sdc_tokenizer_piece(tok, p.chunks[c].ids[i]);
            char emb[300] = "";
            for (int f = 0; f < p.n_fixes; f++) {
                const sdc_prompt_fix *fx = &p.fixes[f];
                const int k = i - fx->offset - 1;
                if (fx->chunk == c && k >= 0 && k < db->e[fx->emb].n_vecs)
                    snprintf(emb, sizeof emb, " embedding %s vector %d", db->e[fx->emb].name, k + 1);
            }
            printf("%2d %5d %-24s %g%s\n", i, p.chunks[c].ids[i], piece ? piece : "?",
                   (double)p.chunks[c].weights[i], emb);
        }
    }
    sdc_prompt_free(&p);
    return 0;
}

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *prompt = NULL, *lora_dir = NULL, *emb_dir = NULL;
    int pad = -1;
    bool pieces = false, weights = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(a, "--lora-dir") && i + 1 < argc) lora_dir = argv[++i];
        else if (!strcmp(a, "--embeddings-dir") && i + 1 < argc) emb_dir = argv[++i];
        else if (!strcmp(a, "--pad-id") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], &pad) || pad < 0 || pad > 49407)
                return cli_usage_error("--pad-id %s: expected an id in 0..49407", argv[i]);
        } else if (!strcmp(a, "--pieces")) pieces = true;
        else if (!strcmp(a, "--weights")) weights = true;
        else if (a[0] == '-' && a[1]) return cli_usage_error("tokenize: unknown option %s", a);
        else if (!prompt) prompt = a;
        else return cli_usage_error("tokenize: one PROMPT only (quote it): extra %s", a);
    }
    if (!prompt) return cli_usage_error("tokenize: missing PROMPT%s", "");
    sdc_model_files *m = NULL;
    if (model && sdc_model_open(model, &m) != SDC_OK) return cli_die(NULL);
    if (pad < 0) pad = m ? m->config.text.pad_id : SDC_CLIP_EOS;
    sdc_tokenizer *tok = NULL;
    if (sdc_tokenizer_open_default(vocab, m ? m->tokenizer_vocab : NULL,
                                   m ? m->tokenizer_merges : NULL, &tok) != SDC_OK) {
        sdc_model_close(m);
        return cli_die(NULL);
    }
    const int width = m ? m->config.text.width : 0;
    char *dir = lora_dir ? strdup(lora_dir) : model ? sdc_lora_default_dir(model) : NULL;
    sdc_model_close(m);
    int ids[SDC_CLIP_CTX], n_all = 0;
    int rc = 0;
    if (weights) {
        sdc_embedding_db *db = NULL;
        if (emb_dir && sdc_embeddings_load(emb_dir, tok, width, &db) != SDC_OK) rc = cli_die(NULL);
        else rc = print_weighted(tok, prompt, pad, dir, db);
        sdc_embeddings_free(db);
        free(dir);
        goto done;
    }
    free(dir);
    if (sdc_tokenizer_encode_padded(tok, prompt, pad, ids, SDC_CLIP_CTX, NULL) != SDC_OK ||
        sdc_tokenizer_encode(tok, prompt, NULL, 0, &n_all) != SDC_OK) {
        rc = cli_die(NULL);
        goto done;
    }
    const int keep = SDC_CLIP_CTX - 2;
    if (n_all > keep) {
        int *all = malloc((size_t)n_all * sizeof *all);
        char *dropped = malloc((size_t)n_all * 16 + 1);
        if (all && dropped && sdc_tokenizer_encode(tok, prompt, all, n_all, &n_all) == SDC_OK) {
            sdc_tokens_to_text(tok, all + keep, n_all - keep, dropped, (size_t)n_all * 16 + 1);
            fprintf(stderr, "sdc: warning: the prompt is %d tokens; only %d fit in one window, so these "
                    "words are dropped here: \"%s\" (txt2img encodes them in further windows; see --weights)\n",
                    n_all, keep, dropped);
        }
        free(all);
        free(dropped);
    }
    for (int i = 0; i < SDC_CLIP_CTX; i++) {
        if (pieces) {
            const char *p = sdc_tokenizer_piece(tok, ids[i]);
            printf("%2d %5d %s\n", i, ids[i], p ? p : "?");
        } else {
            printf("%d%c", ids[i], i + 1 < SDC_CLIP_CTX ? ' ' : '\n');
        }
    }
done:
    sdc_tokenizer_free(tok);
    return rc;
}

static int cmd_encode(int argc, char **argv) {
    sdc_params p = sdc_params_default();
    const char *prompt = NULL, *out_path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) p.model_path = argv[++i];
        else if (!strcmp(a, "-o") && i + 1 < argc) out_path = argv[++i];
        else if (!strcmp(a, "--clip-skip") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], &p.clip_skip) || p.clip_skip < 1)
                return cli_usage_error("--clip-skip %s: expected 1 or more", argv[i]);
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], &p.n_threads) || p.n_threads < 0)
                return cli_usage_error("--threads %s: expected 0 (all) or more", argv[i]);
        } else if (!strcmp(a, "--backend") && i + 1 < argc) {
            const char *b = argv[++i];
            if (cli_parse_backend(b, &p.backend) != 0)
                return cli_usage_error("--backend %s: expected auto, cpu or cuda", b);
        } else if (a[0] == '-' && a[1]) return cli_usage_error("encode: unknown option %s", a);
        else if (!prompt) prompt = a;
        else return cli_usage_error("encode: one PROMPT only (quote it): extra %s", a);
    }
    if (!p.model_path) return cli_usage_error("encode: missing -m MODEL%s", "");
    if (!prompt) return cli_usage_error("encode: missing PROMPT%s", "");
    sdc_ctx *ctx = NULL;
    if (sdc_load(&p, &ctx) != SDC_OK) return cli_die(NULL);
    int w = sdc_context_dim(ctx);
    float *ctxv = NULL;
    int chunks = 0, rc = 0;
    if (sdc_encode_conditioning(ctx, prompt, &ctxv, &chunks) != SDC_OK) {
        rc = cli_die("encode");
    } else {
        const size_t n = (size_t)chunks * SDC_CLIP_CTX * w;
        double sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++) sum += ctxv[i], sq += (double)ctxv[i] * ctxv[i];
        printf("context (%d, %d) on %s, %d window%s: mean %.6f, rms %.6f, [0][0..3] %.6f %.6f %.6f %.6f\n",
               chunks * SDC_CLIP_CTX, w, sdc_backend_name(ctx), chunks, chunks > 1 ? "s" : "", sum / (double)n,
               sqrt(sq / (double)n), ctxv[0], ctxv[1], ctxv[2], ctxv[3]);
        if (out_path) {
            FILE *fp = fopen(out_path, "wb");
            if (!fp || fwrite(ctxv, sizeof(float), n, fp) != n || fclose(fp) != 0) {
                fprintf(stderr, "sdc: %s: could not write the context\n", out_path);
                rc = 1;
            }
        }
    }
    free(ctxv);
    sdc_free(ctx);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("sdc " SDC_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(argv[1], "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(argv[1], "encode")) return cmd_encode(argc - 2, argv + 2);
    if (!strcmp(argv[1], "txt2img")) return cli_txt2img(argc - 2, argv + 2);
    if (!strcmp(argv[1], "img2img")) return cli_img2img(argc - 2, argv + 2);
    if (!strcmp(argv[1], "batch")) return cli_batch(argc - 2, argv + 2);
    if (!strcmp(argv[1], "compare")) return cli_compare(argc - 2, argv + 2);
    if (!strcmp(argv[1], "serve")) return cli_serve(argc - 2, argv + 2);
    return cli_usage_error("unknown command '%s'", argv[1]);
}
