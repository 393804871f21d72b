/* image.h - decoded images to PNG files, with AUTOMATIC1111's "parameters"
 * text chunk, written atomically (a temporary file in the same folder, then
 * rename), so a failed or interrupted write never leaves a partial file. */
#ifndef SDC_IMAGE_H
#define SDC_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* VAE output (NHWC float, nominal range [-1, 1]) to 8-bit RGB as diffusers
 * does it: clamp((x / 2 + 0.5), 0, 1), then round(x * 255). rgb holds
 * h * w * 3 bytes. Float32 arithmetic throughout and round-half-to-even,
 * as numpy's round(), so every byte matches diffusers' "pil" output. NaN
 * (undefined in numpy's astype(uint8)) maps to 0. */
void sdc_image_to_u8(const float *x, int h, int w, uint8_t *rgb);

/* Write rgb (h * w * 3 bytes) as PNG at path; `parameters` (may be NULL) is
 * stored in a tEXt chunk with keyword "parameters" (iTXt, UTF-8, when the
 * text is not Latin-1), right after IHDR, as PIL does for A1111. The text
 * must be valid UTF-8 (SDC_ERR_ARG otherwise). Atomic: temp file
 * "path.XXXXXX.tmp" (".sdc.XXXXXX.tmp" in the same folder when that name
 * is too long) + fsync + rename; on failure the temp file is removed
 * and an existing file at path is left as it was. The new file gets mode
 * 0666 & ~umask. Errors name the path. */
sdc_status sdc_png_write(const char *path, const uint8_t *rgb, int w, int h,
                         const char *parameters);
/* The same PNG in memory: *out malloc'd, *out_len bytes; name (may be
 * NULL) is what errors call it. */
sdc_status sdc_png_encode(const char *name, const uint8_t *rgb, int w, int h,
                          const char *parameters, unsigned char **out,
                          size_t *out_len);

/* Read back the "parameters" text of a PNG written by sdc_png_write (for
 * tests and `sdc inspect` of images); *out is malloc'd UTF-8, NULL if
 * absent. Any PNG works: the signature, every chunk length and CRC and the
 * IHDR/IEND framing are checked (SDC_ERR_FORMAT); tEXt (Latin-1), zTXt and
 * iTXt (compressed or not) chunks are read, the first "parameters" wins.
 * Untrusted input: no chunk is read into memory before the file is known
 * to hold it, a text chunk over 16 MiB is skipped, a compressed one may
 * inflate to at most 16 MiB, and a parameters text with a NUL byte, or
 * iTXt text that is not UTF-8, is an error naming the chunk's offset. */
sdc_status sdc_png_read_parameters(const char *path, char **out);
/* The same from n bytes of PNG in memory (a request's upload); name (may
 * be NULL) is what errors call it. */
sdc_status sdc_png_parameters_mem(const char *name, const void *png, size_t n,
                                  char **out);

/* Largest image side sdc_image_read_rgb accepts, in pixels. */
#define SDC_IMAGE_MAX_SIDE 8192

/* Read a PNG or JPEG file (image-to-image input) as 8-bit RGB: *rgb is
 * malloc'd, *w * *h * 3 bytes, rows top to bottom; the same as
 * sdc_image_load (image_load.h), which says what is read and how: as
 * Pillow reads it (a JPEG's or a PNG's EXIF orientation applied, alpha
 * dropped, not composited). Untrusted input: the file is at most 256 MiB;
 * a PNG's structure is checked first (signature, IHDR first with valid
 * fields, every chunk's length and CRC, no unknown critical chunk, PLTE
 * where the colour type needs one, consecutive IDAT chunks, IEND last with
 * nothing after it); the size in IHDR or in the JPEG frame header must be
 * at most SDC_IMAGE_MAX_SIDE x SDC_IMAGE_MAX_SIDE (8192 x 8192) before any
 * pixel is decoded; a JPEG is decoded by libjpeg-turbo, which stops at its
 * first warning (corrupt data, a truncated file) and after 500 scans.
 * Errors (SDC_ERR_IO, SDC_ERR_FORMAT; SDC_ERR_UNSUPPORTED for another
 * format, a CMYK JPEG or an image over the size limit) name the file and
 * the chunk and byte offset where there is one; on failure *rgb is NULL
 * and *w, *h are 0. */
sdc_status sdc_image_read_rgb(const char *path, uint8_t **rgb, int *w, int *h);

/* AUTOMATIC1111's infotext:
 *   PROMPT
 *   Negative prompt: NEG            (line omitted when neg is empty)
 *   Steps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512,
 *   Model hash: 6ce0161689, Model: v1-5-pruned-emaonly
 * (the last two lines are one line; fields with "," or ":" or newlines are
 * quoted as A1111 quotes them). extra (may be NULL) is appended as
 * ", extra". Returns a malloc'd string or NULL on out of memory.
 * Details: "Schedule type: X" follows Sampler when schedule_type is set
 * (A1111 1.9+ writes "Sampler: DPM++ 2M, Schedule type: Karras"); the CFG
 * scale is printed as Python prints the number the web UI passes: an
 * integral value as an int ("7"), else the shortest repr ("7.5"); NULL or
 * "" string fields are omitted (NULL/"" prompts count as ""); the whole
 * text is strip()ped of leading and trailing whitespace as A1111 does. */
typedef struct sdc_infotext {
    const char *prompt, *negative_prompt;
    int steps;
    const char *sampler;     /* "DDIM", "Euler a", "DPM++ 2M Karras", ... */
    float cfg_scale;
    uint64_t seed;
    int width, height;
    const char *model_hash;  /* 10 hex chars, or NULL to omit */
    const char *model_name;  /* file name without extension, or NULL */
    const char *vae_hash;    /* a VAE of its own (--vae): 10 hex chars, or NULL */
    const char *vae_name;    /* its file name, or NULL */
    const char *extra;       /* e.g. "Clip skip: 2, ENSD: ..." or NULL */
    const char *schedule_type; /* "Karras", ... or NULL (omitted) */
} sdc_infotext;
char *sdc_infotext_format(const sdc_infotext *t);

/* v laid out as Python's float repr: the shortest digits that read back as
 * v (as a float when single, else as a double), fixed notation for decimal
 * exponents -4..15 with at least one decimal ("1.0", "0.6"), else "1e-05"
 * style; "nan", "inf", "-inf". */
void sdc_py_float_repr(double v, bool single, char *out, size_t n);

/* AUTOMATIC1111's model hash ("AutoV2"): the first 10 hex characters of the
 * SHA-256 of the whole file. out gets 11 bytes (NUL-terminated). */
sdc_status sdc_file_sha256_short(const char *path, char out[11]);

/* SHA-256 of a memory buffer (for tests and small inputs); out = 32 bytes. */
void sdc_sha256(const void *data, size_t n, uint8_t out[32]);

/* SHA-256 of a whole file, streamed in 4 MiB reads. Errors name the path. */
sdc_status sdc_file_sha256(const char *path, uint8_t out[32]);

/* Streaming SHA-256 (FIPS 180-4): init, update any number of times, final
 * (which wipes the context). */
typedef struct sdc_sha256_ctx {
    uint32_t state[8];
    uint64_t total;   /* bytes fed so far */
    uint8_t buf[64];  /* partial block */
    size_t fill;
} sdc_sha256_ctx;
void sdc_sha256_init(sdc_sha256_ctx *c);
void sdc_sha256_update(sdc_sha256_ctx *c, const void *data, size_t n);
void sdc_sha256_final(sdc_sha256_ctx *c, uint8_t out[32]);

/* Lowercase hex of a digest; out gets 65 bytes (NUL-terminated). */
void sdc_sha256_hex(const uint8_t digest[32], char out[65]);

/* The x86 SHA extensions are used when the CPU has them. For tests:
 * enable=false forces the portable code; returns whether the SHA
 * extensions are now in use. Not thread-safe against running hashes. */
bool sdc_sha256_use_hw(bool enable);

#endif
