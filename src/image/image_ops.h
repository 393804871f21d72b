/* TEMPORARY contract (replaced by the image-ops work) */
#ifndef SDC_IMAGE_OPS_H
#define SDC_IMAGE_OPS_H
#include <stdint.h>
#include "common.h"
#include "image/mask_ops.h"
#include "image/resize.h"
sdc_status sdc_image_load(const char *path, uint8_t **rgb, int *w, int *h);
sdc_status sdc_mask_load(const char *path, uint8_t **m, int *w, int *h);
sdc_status sdc_image_load_mem(const char *name, const void *data, size_t n, uint8_t **rgb, int *w, int *h);
sdc_status sdc_mask_load_mem(const char *name, const void *data, size_t n, uint8_t **m, int *w, int *h);
#endif
