/* image_load.h - init images and masks for image-to-image and inpainting:
 * PNG and JPEG, from a file or from memory (a request's upload), read as
 * diffusers' load_image and AUTOMATIC1111 read them through Pillow 11:
 * ImageOps.exif_transpose, then convert("RGB") for an image, and
 * create_binary_mask(image, round=True) for a mask.
 *
 *   uint8_t *rgb; int w, h;
 *   if (sdc_image_load("in.jpg", &rgb, &w, &h) != SDC_OK) ... sdc_last_error()
 *   ... rgb[(y * w + x) * 3 + k] ...
 *   free(rgb);
 *
 * What Pillow sees, and so what sdc gives:
 *   - JPEG: libjpeg's defaults (JDCT_ISLOW, fancy upsampling); greyscale
 *     as R = G = B. EXIF orientation (APP1 "Exif", tag 0x0112, 1-8)
 *     applied as exif_transpose applies it, read as leniently as Pillow
 *     reads it (exif.c); an orientation outside 1-8 or a broken EXIF block
 *     is ignored.
 *   - PNG: any colour type and depth. 16-bit samples become their high
 *     byte (Pillow's "RGB;16B", "RGBA;16B", "LA;16B"), except 16-bit grey,
 *     which Pillow opens as "I;16" and converts by clamping to 255 (300
 *     and 65535 both give 255). A palette's missing entries are black (a
 *     PLTE shorter than the indices used). The eXIf chunk's orientation is
 *     applied, as for a JPEG (the last eXIf chunk wins).
 *   - Image: alpha is dropped, not composited (diffusers' convert("RGB");
 *     AUTOMATIC1111 flattens an RGBA init image onto its background colour
 *     instead, which is not done here).
 *   - Mask: where Pillow's mode is RGBA (PNG colour type 6, 8 or 16 bits,
 *     and 16-bit grey+alpha, which Pillow opens as RGBA) and the alpha is
 *     not all 255: alpha > 128 ? 255 : 0. Otherwise the image in Pillow's
 *     L: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 of the RGB
 *     above; a palette's transparency and 8-bit grey+alpha's alpha play no
 *     part (Pillow's modes "P" and "LA"). The EXIF orientation is applied
 *     to a mask too (diffusers' load_image; AUTOMATIC1111 turns only the
 *     init image).
 * Where sdc does not follow Pillow: it refuses what Pillow would decode
 * with a warning (a JPEG with corrupt entropy data or extraneous bytes, a
 * bogus progression), a JPEG of more than 500 scans, CMYK and YCCK JPEGs;
 * an EXIF block whose TIFF header is broken is ignored where Pillow's
 * exif_transpose would raise (for a PNG, or a JPEG whose JFIF header
 * carries a DPI); XMP orientation and ImageMagick's "Raw profile type
 * exif" PNG text are not read.
 *
 * Untrusted input: at most 256 MiB of file or memory, at most
 * SDC_IMAGE_MAX_SIDE (8192) pixels a side, checked from the header before
 * any pixel is decoded; a PNG's structure is checked first (see
 * sdc_image_read_rgb in image.h); a JPEG's decoder stops at its first
 * warning. Errors (SDC_ERR_IO, SDC_ERR_FORMAT, SDC_ERR_UNSUPPORTED for
 * another format or a size over the limit, SDC_ERR_OOM) name the file (or
 * `name`, for memory; "image" when NULL) and what was wrong; on failure
 * the output is NULL and *w, *h are 0. */
#ifndef SDC_IMAGE_LOAD_H
#define SDC_IMAGE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "image/image.h"

/* (h, w, 3) RGB, malloc'd. */
sdc_status sdc_image_load(const char *path, uint8_t **rgb, int *w, int *h);
/* (h, w) mask, 0..255, malloc'd. */
sdc_status sdc_mask_load(const char *path, uint8_t **m, int *w, int *h);
/* The same from n bytes in memory. */
sdc_status sdc_image_load_mem(const char *name, const void *data, size_t n, uint8_t **rgb,
                              int *w, int *h);
sdc_status sdc_mask_load_mem(const char *name, const void *data, size_t n, uint8_t **m,
                             int *w, int *h);

#endif
