/* resize.h - 8-bit image resizing exactly as Pillow 11 does it with
 * Image.resize(size, Image.LANCZOS, box), and AUTOMATIC1111's three resize
 * modes for image-to-image (modules/images.py resize_image with no
 * upscaler), built on it.
 *
 * Images are row-major (h, w, channels) bytes, channels 1 (L) or 3 (RGB),
 * 1 to SDC_RESIZE_MAX_SIDE pixels a side. Results are malloc'd. */
#ifndef SDC_IMAGE_RESIZE_H
#define SDC_IMAGE_RESIZE_H

#include <stdint.h>
#include "common.h"

#define SDC_RESIZE_MAX_SIDE 8192

/* Pillow's resampling filters that A1111's resizing uses */
typedef enum sdc_resample {
    SDC_RESAMPLE_LANCZOS, /* Image.LANCZOS: windowed sinc, 3 lobes */
    SDC_RESAMPLE_BICUBIC  /* Image.BICUBIC, Pillow's default: cubic convolution, a = -0.5 */
} sdc_resample;

/* Pillow's im.resize((dw, dh), filter, box): src (sh, sw, ch) to *dst
 * (dh, dw, ch). box (left, top, right, bottom; may be NULL for the whole
 * image) is the source rectangle, in float pixels as Pillow takes it; it
 * must lie inside the image and may have zero width or height (Pillow then
 * spreads the filter over the first or last rows, which A1111's resize and
 * fill relies on). Bit-exact with Pillow 11.0.0. */
sdc_status sdc_image_resample(sdc_resample filter, const uint8_t *src, int sw, int sh, int ch, const float *box,
                              uint8_t **dst, int dw, int dh);
/* The same with LANCZOS. */
sdc_status sdc_image_resize(const uint8_t *src, int sw, int sh, int ch, const float *box, uint8_t **dst, int dw,
                            int dh);

/* A1111's resize_image(mode, im, dw, dh) with LANCZOS:
 *   0  just resize (the aspect ratio changes);
 *   1  crop and resize: scaled to cover dw x dh, centred, the overflow cut;
 *   2  resize and fill: scaled to fit, centred on black, and the bars filled
 *      with the image's edge rows (or columns) stretched across them (with
 *      BICUBIC: A1111 names no filter there, so Pillow's default applies).
 * src (sh, sw, ch) to *dst (dh, dw, ch). Where A1111 pastes a grey ("L")
 * image on its RGB canvas, each of the three channels equals the L result,
 * so the one channel returned here is what A1111's image holds. Two cases
 * where Pillow raises and A1111 stops are errors here too (a side scaled to
 * 0 pixels in mode 2) or skipped (a bar 0 pixels thick in mode 2, only at an
 * odd output size). */
sdc_status sdc_image_resize_mode(int mode, const uint8_t *src, int sw, int sh, int channels, uint8_t **dst, int dw,
                                 int dh);

#endif
