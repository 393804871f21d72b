/* decode.h - what the image readers of src/image/ share among themselves
 * (image_load.c: files, PNG, the conversions; image_jpeg.c: JPEG; exif.c:
 * the EXIF orientation). Not for use outside src/image/. */
#ifndef SDC_IMAGE_DECODE_H
#define SDC_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* A decoded image as Pillow's image mode holds it, before it is converted
 * to RGB or to a mask. */
typedef struct sdc_decoded {
    uint8_t *px;     /* (h, w, c) malloc'd, rows top to bottom */
    int w, h;
    int c;           /* 3: RGB; 4: RGBA, where Pillow's mode is "RGBA" and
                      * the caller asked for the alpha (a mask) */
    int orientation; /* EXIF orientation 1..8 to apply (1: as stored) */
} sdc_decoded;

/* A JPEG of n bytes (image_jpeg.c): decoded to RGB (c = 3), its EXIF
 * orientation read. Errors name `name`; out->px is NULL on failure. */
sdc_status sdc_jpeg_decode(const char *name, const unsigned char *b, size_t n,
                           sdc_decoded *out);

/* The orientation Pillow's ImageOps.exif_transpose applies for an EXIF
 * block (tiff: its bytes after the "Exif\0\0" prefix, n bytes): 2..8, or 1
 * for none (no tag, a value outside 2..8, a block Pillow cannot read).
 * Bounded: every read is checked against n. */
int sdc_exif_orientation(const unsigned char *tiff, size_t n);

/* Transpose px ((h, w, c), malloc'd) for an EXIF orientation as Pillow's
 * Image.transpose does; *px is replaced, *w and *h swapped for 5..8. */
sdc_status sdc_orient(const char *name, uint8_t **px, int *w, int *h, int c,
                      int orientation);

#endif
