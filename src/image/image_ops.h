/* image_ops.h - the pixel work of image to image and inpainting, in one
 * include: reading init images and masks (image_load.h), resizing as
 * Pillow and AUTOMATIC1111 do (resize.h), mask blur and fill (mask_ops.h). */
#ifndef SDC_IMAGE_OPS_H
#define SDC_IMAGE_OPS_H
#include "image/image_load.h"
#include "image/mask_ops.h"
#include "image/resize.h"
#endif
