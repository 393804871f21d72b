/* image.h - decoded images to PNG files, with AUTOMATIC1111's "parameters"
 * text chunk, written atomically (a temporary file in the same folder, then
 * rename), so a failed or interrupted write never leaves a partial file. */
#ifndef SDC_IMAGE_H
#define SDC_IMAGE_H

#include <stdint.h>
#include "common.h"

/* VAE output (NHWC float, nominal range [-1, 1]) to 8-bit RGB as diffusers
 * does it: clamp((x / 2 + 0.5), 0, 1), then round(x * 255). rgb holds
 * h * w * 3 bytes. */
void sdc_image_to_u8(const float *x, int h, int w, uint8_t *rgb);

/* Write rgb (h * w * 3 bytes) as PNG at path; `parameters` (may be NULL) is
 * stored in a tEXt chunk with keyword "parameters" (iTXt, UTF-8, when the
 * text is not Latin-1). Atomic: temp file + fsync + rename. Errors name
 * the path. */
sdc_status sdc_png_write(const char *path, const uint8_t *rgb, int w, int h,
                         const char *parameters);

/* Read back the "parameters" text of a PNG written by sdc_png_write (for
 * tests and `sdc inspect` of images); *out is malloc'd, NULL if absent. */
sdc_status sdc_png_read_parameters(const char *path, char **out);

/* AUTOMATIC1111's infotext:
 *   PROMPT
 *   Negative prompt: NEG            (line omitted when neg is empty)
 *   Steps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512,
 *   Model hash: 6ce0161689, Model: v1-5-pruned-emaonly
 * (the last two lines are one line; fields with "," or ":" or newlines are
 * quoted as A1111 quotes them). extra (may be NULL) is appended as
 * ", extra". Returns a malloc'd string or NULL on out of memory. */
typedef struct sdc_infotext {
    const char *prompt, *negative_prompt;
    int steps;
    const char *sampler;     /* "DDIM", "Euler a", "DPM++ 2M Karras", ... */
    float cfg_scale;
    uint64_t seed;
    int width, height;
    const char *model_hash;  /* 10 hex chars, or NULL to omit */
    const char *model_name;  /* file name without extension, or NULL */
    const char *extra;       /* e.g. "Clip skip: 2, ENSD: ..." or NULL */
} sdc_infotext;
char *sdc_infotext_format(const sdc_infotext *t);

/* AUTOMATIC1111's model hash ("AutoV2"): the first 10 hex characters of the
 * SHA-256 of the whole file. out gets 11 bytes (NUL-terminated). */
sdc_status sdc_file_sha256_short(const char *path, char out[11]);

/* SHA-256 of a memory buffer (for tests and small inputs); out = 32 bytes. */
void sdc_sha256(const void *data, size_t n, uint8_t out[32]);

#endif
