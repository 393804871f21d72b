/* cli.h - helpers shared by the command-line front end (main.c, cli_*.c). */
#ifndef SDC_CLI_H
#define SDC_CLI_H

#include <stdbool.h>

#include "sdc.h"

/* "sdc: [what: ]<last error>" on stderr; returns 1. */
int cli_die(const char *what);
/* "sdc: <fmt with arg>" and a pointer to --help on stderr; returns 2. */
int cli_usage_error(const char *fmt, const char *arg);

bool cli_parse_int(const char *s, int *out);
bool cli_parse_float(const char *s, float *out);
bool cli_parse_u64(const char *s, unsigned long long *out);
/* 0 on success, -1 for an unknown name */
int cli_parse_backend(const char *s, sdc_backend_kind *out);
bool cli_parse_pair(const char *s, char sep, int *a, int *b);
int cli_parse_precision(const char *s, sdc_precision *out);

/* The options every rendering command shares: -m, -n, --spacing, --cfg,
 * --seed, -W, -H, --eta, --clip-skip, --backend, --threads, --precision,
 * --vae-precision. When argv[*i]
 * is one of them its value is stored (the seed in *seed) and *i advanced:
 * returns 1; 0 when it is not one of them; -1 after printing a usage error
 * for a bad or missing value (exit with 2). */
int cli_common_option(int argc, char **argv, int *i, sdc_params *mp, sdc_gen_params *g,
                      unsigned long long *seed, bool *have_seed);
/* A random 32-bit seed (from /dev/urandom). */
unsigned long long cli_random_seed(void);

int cli_txt2img(int argc, char **argv);
int cli_img2img(int argc, char **argv);
int cli_batch(int argc, char **argv);
int cli_compare(int argc, char **argv);
int cli_serve(int argc, char **argv);

#endif
