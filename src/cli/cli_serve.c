/* cli_serve.c - `sdc serve`: arguments, the warning for an open server
 * without a password, and SIGINT/SIGTERM (the image in progress finishes,
 * the waiting requests get an error, the process exits 0). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static const char *HELP =
    "usage: sdc serve -m MODEL [options]\n"
    "\n"
    "Keeps MODEL loaded and renders the requests of AUTOMATIC1111's HTTP API\n"
    "(/sdapi/v1: txt2img, progress, interrupt, skip, sd-models, options, png-info,\n"
    "samplers, schedulers, ...), one at a time, in the order they come.\n"
    "\n"
    "  -m, --model MODEL     the model loaded at start (.safetensors or diffusers folder)\n"
    "  --models-dir DIR      the .safetensors files in DIR can be selected too (POST\n"
    "                        /sdapi/v1/options {\"sd_model_checkpoint\": NAME}); nothing\n"
    "                        else on the file system is reachable from a request\n"
    "  --host ADDR           IPv4 address to listen on (default 127.0.0.1: this machine only)\n"
    "  --listen              listen on every address (--host 0.0.0.0)\n"
    "  --port N              port (default 7860, A1111's; 0: any free one)\n"
    "  --api-auth U:P[,U2:P2]  HTTP Basic authentication for every request\n"
    "  --queue N             requests waiting at most (default 16; more get 503)\n"
    "  --backend B           auto (default), cpu or cuda\n"
    "  --precision P         auto (default), fp32, fp16 (CUDA) or bf16\n"
    "  --vae-precision P     the VAE's (see sdc txt2img --help)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --vae FILE            a VAE of its own instead of the model's (every model loaded)\n"
    "  --lora-dir DIR        where a prompt's <lora:NAME:W> finds NAME.safetensors (default:\n"
    "                        the model's folder)\n"
    "  --embeddings-dir DIR  textual-inversion embeddings (*.safetensors), by file name\n"
    "  --preview-every N     live previews every N steps: /sdapi/v1/progress gives the\n"
    "                        latest as current_image (AUTOMATIC1111's cheap projection)\n"
    "  --taesd FILE          the previews by TAESD's decoder (madebyollin/taesd's\n"
    "                        taesd_decoder.safetensors) instead\n";

int cli_serve(int argc, char **argv) {
    srv_config cfg = srv_config_default();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int n = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--listen")) {
            cfg.host = "0.0.0.0";
            continue;
        } else if (!v) {
            return cli_usage_error("%s: unknown option, or its value is missing", a);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            cfg.model.model_path = v;
        } else if (!strcmp(a, "--models-dir")) {
            cfg.models_dir = v;
        } else if (!strcmp(a, "--host")) {
            cfg.host = v;
        } else if (!strcmp(a, "--port")) {
            if (!cli_parse_int(v, &n) || n < 0 || n > 65535) return cli_usage_error("--port %s: expected 0..65535", v);
            cfg.port = n;
        } else if (!strcmp(a, "--api-auth")) {
            cfg.auth = v;
        } else if (!strcmp(a, "--queue")) {
            if (!cli_parse_int(v, &n) || n < 1 || n > 4096) return cli_usage_error("--queue %s: expected 1..4096", v);
            cfg.queue_max = n;
        } else if (!strcmp(a, "--backend")) {
            if (cli_parse_backend(v, &cfg.model.backend)) return cli_usage_error("--backend %s: auto, cpu or cuda", v);
        } else if (!strcmp(a, "--precision")) {
            if (cli_parse_precision(v, &cfg.model.precision))
                return cli_usage_error("--precision %s: auto, fp32, fp16 or bf16", v);
        } else if (!strcmp(a, "--vae-precision")) {
            if (cli_parse_precision(v, &cfg.model.vae_precision))
                return cli_usage_error("--vae-precision %s: auto, fp32, fp16 or bf16", v);
        } else if (!strcmp(a, "--preview-every")) {
            if (!cli_parse_int(v, &n) || n < 1 || n > 1000)
                return cli_usage_error("--preview-every %s: expected 1..1000 steps", v);
            cfg.preview_every = n;
        } else if (!strcmp(a, "--taesd")) {
            cfg.model.taesd_path = v;
        } else if (!strcmp(a, "--vae")) {
            cfg.model.vae_path = v;
        } else if (!strcmp(a, "--lora-dir")) {
            cfg.model.lora_dir = v;
        } else if (!strcmp(a, "--embeddings-dir")) {
            cfg.model.embeddings_dir = v;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_int(v, &n) || n < 0) return cli_usage_error("--threads %s: expected a count", v);
            cfg.model.n_threads = n;
        } else {
            return cli_usage_error("%s: unknown option", a);
        }
        i++;
    }
    if (!cfg.model.model_path) return cli_usage_error("serve needs a model (-m MODEL)%s", "");
    if (cfg.model.taesd_path && !cfg.preview_every)
        return cli_usage_error("--taesd draws the live previews: give --preview-every N too%s", "");
    if (strcmp(cfg.host, "127.0.0.1") && !cfg.auth)
        fprintf(stderr, "sdc serve: warning: listening on %s without --api-auth: anyone who can reach this "
                        "machine can render on it\n", cfg.host);
    /* SIGINT and SIGTERM for this thread's sigwait, blocked in every
     * thread the server starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is not the server's end */
    srv *s = NULL;
    if (srv_start(&cfg, &s)) return cli_die("serve");
    fprintf(stderr, "sdc serve: %s on http://%s:%d/ (AUTOMATIC1111's API at /sdapi/v1)\n", cfg.model.model_path,
            cfg.host, srv_port(s));
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "sdc serve: %s: finishing the image in progress\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_stop(s);
    fprintf(stderr, "sdc serve: stopped\n");
    return 0;
}
