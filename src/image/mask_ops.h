/* mask_ops.h - the inpainting mask's blur and the "fill" of masked content,
 * exactly as AUTOMATIC1111 does them (modules/processing.py with OpenCV
 * 4.10, modules/masking.py with Pillow 11).
 *
 * Images are row-major: a mask is (h, w) bytes, an RGB image (h, w, 3);
 * 1 to SDC_MASK_MAX_SIDE pixels a side. */
#ifndef SDC_IMAGE_MASK_OPS_H
#define SDC_IMAGE_MASK_OPS_H

#include <stdint.h>
#include "common.h"

#define SDC_MASK_MAX_SIDE 8192
/* Largest blur accepted (A1111's slider stops at 64); the kernel is
 * 5 * blur + 1 pixels wide, and the time grows with it. */
#define SDC_MASK_BLUR_MAX 256

/* A1111's mask blur, in place on m (h, w): for blur_x > 0,
 * cv2.GaussianBlur(m, (2 * int(2.5 * blur_x + 0.5) + 1, 1), blur_x), then
 * for blur_y > 0 the same down the columns with (1, k). OpenCV's 8-bit
 * bit-exact path: the kernel from its software double-precision exp,
 * rounded to 8 fraction bits with error diffusion; mirrored borders
 * (BORDER_REFLECT_101); a side of 1 pixel is left as it is. blur_x or
 * blur_y <= 0 skips that direction; over SDC_MASK_BLUR_MAX is an error. */
sdc_status sdc_mask_blur(uint8_t *m, int w, int h, int blur_x, int blur_y);

/* A1111's masking.fill(image, mask), in place on rgb (h, w, 3): the image
 * with the masked part (mask (h, w), 255 = masked) cut away, blurred at
 * radii 256, 64, 16, 4, 2 and 0 (Pillow's GaussianBlur: three extended box
 * blurs on premultiplied RGBa) and composited over itself in that order
 * (1, 1, 2, 4, 2 and 1 times), so the hole holds the colours around it.
 * Pixels with mask 0 come out unchanged; partly masked ones change too. */
sdc_status sdc_inpaint_fill(uint8_t *rgb, const uint8_t *mask, int w, int h);

#endif
