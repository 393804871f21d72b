/* batch.h - `sdc batch`, the library side: prompt lists to jobs, shards,
 * output names, the manifest, and the check that a finished PNG is intact.
 *
 * A prompt list has one job description per line; each line's format is
 * detected on its own (after stripping surrounding whitespace):
 *   - empty, or starting with '#': skipped;
 *   - starting with '{': a JSON object (JSON Lines);
 *   - starting with "--": AUTOMATIC1111's "prompts from file" options
 *     (shlex quoting: --prompt "a cat" --steps 20 --sampler_name "Euler a");
 *   - anything else: the prompt itself.
 * JSON and A1111 lines take the same keys: prompt, negative_prompt, seed,
 * steps, cfg_scale, sampler_name, width, height, batch_size, n_iter, and for
 * image to image init_image, mask (paths, relative to the list's folder)
 * and denoising_strength (A1111's img2img names). A1111's
 * keys that only say where it saves (outpath_samples, outpath_grids,
 * prompt_for_display, do_not_save_samples, do_not_save_grid) are accepted
 * and ignored; restore_faces and tiling are accepted when false; keys that
 * would change the image in ways sdc does not do (styles, subseed, ...) and
 * unknown keys make the line fail. A line's batch_size x n_iter expands into
 * that many jobs with seeds seed, seed + 1, ... as A1111 does.
 *
 * A line that cannot be used becomes one job with `error` set ("FILE:LINE:
 * reason"), so it keeps its index and every other job keeps its own. */
#ifndef SDC_BATCH_H
#define SDC_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "sdc.h"

typedef struct sdc_batch_job {
    int index;            /* 0-based over the whole list, bad lines included */
    int line;             /* 1-based line of the list */
    sdc_gen_params gen;   /* prompt and negative owned by the job; sampler and
                             spacing static or the defaults' */
    bool seed_given;      /* the line gave the seed (else base seed + index) */
    char *init_image;     /* image to image: the image's path (NULL: text to image); */
    char *mask;           /* the mask's (NULL: none); both owned, read when the job renders */
    char *error;          /* NULL, or "FILE:LINE: reason": nothing to render */
} sdc_batch_job;

typedef struct sdc_batch_list {
    sdc_batch_job *jobs;
    int n;
} sdc_batch_list;

/* What a line does not say. gen.prompt is ignored; gen.negative_prompt,
 * gen.sampler and gen.spacing must outlive the list. */
typedef struct sdc_batch_defaults {
    sdc_gen_params gen;   /* gen.strength: the lines' default denoising_strength */
    unsigned long long base_seed;
    const char *init_image, *mask; /* for lines that name none (NULL: none), used as they are */
} sdc_batch_defaults;

/* Bounds on a prompt list (untrusted input): a file of at most 256 MiB,
 * at most 1,000,000 jobs in all (a line that would go past that becomes
 * a job with an error, as any bad line does). */
#define SDC_BATCH_MAX_FILE (256 << 20)
#define SDC_BATCH_MAX_JOBS 1000000

/* Parse a whole list (text of len bytes, NUL bytes not allowed in lines);
 * `source` names it in messages. Bad lines become jobs with an error, so
 * this fails only for out of memory. Every good job has passed
 * sdc_check_gen_params(NULL, ...). */
sdc_status sdc_batch_parse(const char *text, size_t len, const char *source,
                           const sdc_batch_defaults *d, sdc_batch_list *out);
/* The same for a file (SDC_ERR_IO naming it when unreadable,
 * SDC_ERR_FORMAT when larger than SDC_BATCH_MAX_FILE). */
sdc_status sdc_batch_parse_file(const char *path, const sdc_batch_defaults *d,
                                sdc_batch_list *out);
void sdc_batch_list_free(sdc_batch_list *l);

/* A sampler name as A1111 or sdc spells it, any case: "DDIM", "Euler",
 * "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "k_euler_a", "ddim", "euler_a",
 * "dpmpp_2m", ... *sampler gets sdc's name (static), *karras 1 when the name
 * says Karras, else 0. SDC_ERR_ARG with the choices when unknown. */
sdc_status sdc_batch_sampler(const char *name, const char **sampler, int *karras);

/* Python's shlex.split(line) (POSIX mode): *argv is one malloc'd block
 * (free(*argv) frees all). SDC_ERR_FORMAT for an unterminated quote or a
 * trailing backslash. */
sdc_status sdc_batch_shlex(const char *line, char ***argv, int *argc);

/* "K/N", 1 <= K <= N: the jobs with index % N == K - 1. */
sdc_status sdc_batch_parse_shard(const char *s, int *k, int *n);
static inline bool sdc_batch_in_shard(int index, int k, int n) { return index % n == k - 1; }

/* The prompt lower-cased, each run of non-alphanumerics (ASCII) one '-',
 * none at either end, at most 40 characters (out needs 41 bytes). */
void sdc_batch_slug(const char *prompt, char out[41]);
/* "NNNNN-SEED-slug.png" ("NNNNN-SEED.png" when the slug is empty). */
void sdc_batch_filename(const sdc_batch_job *j, char *out, size_t cap);

/* Whether the file exists and is a complete PNG: signature, every chunk's
 * CRC, IHDR first, IEND last, and the image data inflating to exactly the
 * size IHDR implies. */
bool sdc_batch_png_ok(const char *path);

/* Remove the temporary files an interrupted PNG write left in dir
 * ("NNNNN-....png.XXXXXX.tmp") for jobs of shard k/n only, so shards
 * running side by side never touch each other's. Returns how many. */
int sdc_batch_remove_temp(const char *dir, int k, int n);

/* Whether two jobs can share one sdc_txt2img_batch call (same size, steps,
 * sampler, Karras, spacing, eta, and LoRAs: their prompts' <lora:...> tags
 * and --lora files). */
bool sdc_batch_same_settings(const sdc_gen_params *a, const sdc_gen_params *b);

/* ---- manifest: OUTDIR/manifest.jsonl, one JSON object per job ---------- */

typedef struct sdc_batch_run {
    const char *source;          /* the prompt list */
    const char *model;
    int clip_skip;
    unsigned long long base_seed;
    int shard_k, shard_n;
} sdc_batch_run;

typedef struct sdc_batch_result {
    const char *status;          /* "ok", "skipped" or "failed" */
    const char *error;           /* NULL or the reason */
    int group_size;              /* images rendered together (0: none) */
    double seconds;              /* this image's share of the wall time */
    double seconds_encode, seconds_denoise, seconds_decode;
    double seconds_lora;         /* the LoRA switch before this image's group (0: none) */
} sdc_batch_result;

/* One manifest line (no newline), malloc'd; NULL for out of memory. Keys:
 * job, line, source, file (null for a failed line), status, error, prompt,
 * negative_prompt, seed, base_seed, steps, sampler, karras, spacing,
 * cfg_scale, width, height, eta, clip_skip, model, shard, group_size,
 * seconds, seconds_encode, seconds_denoise, seconds_decode, seconds_lora, time. */
char *sdc_batch_manifest_line(const sdc_batch_job *j, const sdc_batch_result *r,
                              const sdc_batch_run *run);

/* Open (create) the manifest for appending. */
sdc_status sdc_batch_manifest_open(const char *path, int *fd);
/* line + '\n' in one write(), then fsync, so a line is on disk before the
 * next job starts and concurrent shards never interleave. */
sdc_status sdc_batch_manifest_append(int fd, const char *line);

/* The base seed the last run of shard k/n recorded in the manifest:
 * *found false when the file or such a line is absent. */
sdc_status sdc_batch_manifest_base_seed(const char *path, int k, int n,
                                        unsigned long long *seed, bool *found);

#endif
