/* TEMPORARY contract (replaced by the image-ops work) */
#ifndef SDC_IMAGE_OPS_H
#define SDC_IMAGE_OPS_H
#include <stdint.h>
#include "common.h"
sdc_status sdc_image_resize_mode(int mode, const uint8_t *src, int sw, int sh, int channels, uint8_t **dst, int dw,
                                 int dh);
sdc_status sdc_mask_blur(uint8_t *m, int w, int h, int blur_x, int blur_y);
sdc_status sdc_inpaint_fill(uint8_t *rgb, const uint8_t *mask, int w, int h);
sdc_status sdc_image_load(const char *path, uint8_t **rgb, int *w, int *h);
sdc_status sdc_mask_load(const char *path, uint8_t **m, int *w, int *h);
sdc_status sdc_image_load_mem(const char *name, const void *data, size_t n, uint8_t **rgb, int *w, int *h);
sdc_status sdc_mask_load_mem(const char *name, const void *data, size_t n, uint8_t **m, int *w, int *h);
#endif
