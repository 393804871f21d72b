/* init_image.c - image-to-image and inpainting inputs on the host: the
 * init image and mask at the output size, in the numbers diffusers'
 * VaeImageProcessor hands its pipelines, and the latent sample of
 * prepare_latents. */
#include "init_image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image_ops.h"

/* src (sw x sh, ch channels) at W x H by AUTOMATIC1111's resize mode;
 * a copy when the sizes already agree (Pillow's resize is then the
 * identity, so diffusers sees the same pixels). */
static sdc_status to_size(const char *what, const unsigned char *src, int sw, int sh, int ch, int mode, int W,
                          int H, unsigned char **out) {
    if (!src || sw < 1 || sh < 1 || sw > SDC_INIT_MAX_SIDE || sh > SDC_INIT_MAX_SIDE)
        return sdc_fail(SDC_ERR_ARG, "%s: size %dx%d, expected 1 to %d pixels a side", what, sw, sh,
                        SDC_INIT_MAX_SIDE);
    if (sw == W && sh == H) {
        *out = malloc((size_t)W * H * ch);
        if (!*out) return sdc_fail(SDC_ERR_OOM, "out of memory for the %s", what);
        memcpy(*out, src, (size_t)W * H * ch);
        return SDC_OK;
    }
    sdc_status st = sdc_image_resize_mode(mode, src, sw, sh, ch, out, W, H);
    if (st != SDC_OK) { /* the message names what was resized (copied first: it is the same buffer) */
        char why[512];
        snprintf(why, sizeof why, "%s", sdc_last_error());
        return sdc_fail(st, "%s: %s", what, why);
    }
    return SDC_OK;
}

/* AUTOMATIC1111's masking.get_crop_region_v2: the box of the mask's
 * non-zero pixels (x1, y1, x2, y2, x2 and y2 exclusive) grown by pad and
 * clipped to the image; false for a blank mask. */
static bool crop_region(const unsigned char *m, int W, int H, int pad, int box[4]) {
    int x1 = W, y1 = H, x2 = -1, y2 = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (m[(size_t)y * W + x]) {
                x1 = x < x1 ? x : x1, x2 = x > x2 ? x : x2;
                y1 = y < y1 ? y : y1, y2 = y > y2 ? y : y2;
            }
    if (x2 < 0) return false;
    x2++, y2++;
    box[0] = x1 - pad > 0 ? x1 - pad : 0, box[1] = y1 - pad > 0 ? y1 - pad : 0;
    box[2] = x2 + pad < W ? x2 + pad : W, box[3] = y2 + pad < H ? y2 + pad : H;
    return true;
}

/* masking.expand_crop_region: the box grown to the processing size's
 * aspect ratio, kept inside the image (Python's // and int()). */
static void expand_region(int box[4], int pw, int ph, int W, int H) {
    int x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];
    const double ratio_crop = (double)(x2 - x1) / (y2 - y1), ratio = (double)pw / ph;
    if (ratio_crop > ratio) {
        const int diff = (int)((x2 - x1) / ratio - (y2 - y1));
        const int half = diff >= 0 ? diff / 2 : -((-diff + 1) / 2); /* floor division */
        y1 -= half, y2 += diff - half;
        if (y2 >= H) y1 -= y2 - H, y2 = H;
        if (y1 < 0) y2 -= y1, y1 = 0;
        if (y2 >= H) y2 = H;
    } else {
        const int diff = (int)((y2 - y1) * ratio - (x2 - x1));
        const int half = diff >= 0 ? diff / 2 : -((-diff + 1) / 2);
        x1 -= half, x2 += diff - half;
        if (x2 >= W) x1 -= x2 - W, x2 = W;
        if (x1 < 0) x2 -= x1, x1 = 0;
        if (x2 >= W) x2 = W;
    }
    box[0] = x1, box[1] = y1, box[2] = x2, box[3] = y2;
}

/* rows y0..y1, columns x0..x1 of src (W wide, ch channels), malloc'd */
static unsigned char *crop(const unsigned char *src, int W, int ch, const int box[4]) {
    const int w = box[2] - box[0], h = box[3] - box[1];
    unsigned char *out = malloc((size_t)w * h * ch);
    for (int y = 0; out && y < h; y++)
        memcpy(out + (size_t)y * w * ch, src + ((size_t)(box[1] + y) * W + box[0]) * ch, (size_t)w * ch);
    return out;
}

/* "Only masked": the mask at the image's size (blurred), its box grown by
 * the padding and to the output's aspect ratio; the image and mask cropped
 * to it and brought to W x H as AUTOMATIC1111 does (resize and fill). The
 * whole image and mask are kept for pasting back. A blank mask: plain image
 * to image, as A1111 falls back. */
static sdc_status only_masked(const sdc_gen_params *p, int W, int H, sdc_init_inputs *in) {
    const int W0 = p->init_width, H0 = p->init_height;
    in->orig_rgb = malloc((size_t)W0 * H0 * 3);
    if (!in->orig_rgb) return sdc_fail(SDC_ERR_OOM, "out of memory for the init image");
    memcpy(in->orig_rgb, p->init_rgb, (size_t)W0 * H0 * 3);
    in->W0 = W0, in->H0 = H0;
    SDC_TRY(to_size("mask", p->mask, p->mask_width, p->mask_height, 1, 0, W0, H0, &in->overlay));
    if (p->mask_blur > 0) SDC_TRY(sdc_mask_blur(in->overlay, W0, H0, p->mask_blur, p->mask_blur));
    if (!crop_region(in->overlay, W0, H0, p->inpaint_full_res_padding, in->box)) {
        free(in->overlay), free(in->orig_rgb);
        in->overlay = in->orig_rgb = NULL;
        return to_size("init image", p->init_rgb, W0, H0, 3, p->resize_mode, W, H, &in->rgb);
    }
    expand_region(in->box, W, H, W0, H0);
    in->full_res = true;
    unsigned char *ci = crop(p->init_rgb, W0, 3, in->box), *cm = crop(in->overlay, W0, 1, in->box);
    const int bw = in->box[2] - in->box[0], bh = in->box[3] - in->box[1];
    sdc_status st = ci && cm ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory for the mask's box");
    if (st == SDC_OK) st = to_size("init image", ci, bw, bh, 3, 2, W, H, &in->rgb);
    if (st == SDC_OK) st = to_size("mask", cm, bw, bh, 1, 2, W, H, &in->soft);
    free(ci), free(cm);
    return st;
}

/* The mask blurred at its own size, then brought to W x H, in A1111's
 * order (processing.py blurs image_mask before resize_image). */
static sdc_status blurred_to_size(const sdc_gen_params *p, int W, int H, unsigned char **out) {
    const int mw = p->mask_width, mh = p->mask_height;
    if (p->mask_blur <= 0 || mw < 1 || mh < 1 || mw > SDC_INIT_MAX_SIDE || mh > SDC_INIT_MAX_SIDE)
        return to_size("mask", p->mask, mw, mh, 1, p->resize_mode, W, H, out);
    unsigned char *m = malloc((size_t)mw * mh);
    if (!m) return sdc_fail(SDC_ERR_OOM, "out of memory for the mask");
    memcpy(m, p->mask, (size_t)mw * mh);
    sdc_status st = sdc_mask_blur(m, mw, mh, p->mask_blur, p->mask_blur);
    if (st == SDC_OK) st = to_size("mask", m, mw, mh, 1, p->resize_mode, W, H, out);
    free(m);
    return st;
}

sdc_status sdc_init_inputs_make(const sdc_gen_params *p, int W, int H, sdc_init_inputs *in) {
    memset(in, 0, sizeof *in);
    in->W = W, in->H = H;
    if (!p->init_rgb) {
        if (p->mask) return sdc_fail(SDC_ERR_ARG, "a mask without an init image: inpainting needs both");
        return SDC_OK;
    }
    if (p->resize_mode < 0 || p->resize_mode > 2)
        return sdc_fail(SDC_ERR_ARG, "resize mode %d: expected 0 (just resize), 1 (crop and resize) or 2 (resize "
                        "and fill)", p->resize_mode);
    const size_t npx = (size_t)W * H;
    sdc_status st = SDC_OK;
    if (p->mask && p->inpaint_full_res) {
        st = only_masked(p, W, H, in);
    } else {
        st = to_size("init image", p->init_rgb, p->init_width, p->init_height, 3, p->resize_mode, W, H, &in->rgb);
        if (st == SDC_OK && p->mask) st = blurred_to_size(p, W, H, &in->soft);
        if (st == SDC_OK && p->mask && p->mask_blur > 0) {
            /* A1111's overlay: the original through the blurred mask doubled, clipped */
            in->overlay = malloc(npx), in->orig_rgb = malloc(npx * 3);
            if (st == SDC_OK && (!in->overlay || !in->orig_rgb)) st = sdc_fail(SDC_ERR_OOM, "out of memory");
            for (size_t i = 0; st == SDC_OK && i < npx; i++)
                in->overlay[i] = (unsigned char)(in->soft[i] > 127 ? 255 : 2 * in->soft[i]);
            if (st == SDC_OK) memcpy(in->orig_rgb, in->rgb, npx * 3);
            in->W0 = W, in->H0 = H;
        }
    }
    /* A1111 fills the masked area from its surroundings for every masked
     * content but "original" (processing.py: inpainting_fill != 1); the
     * latent fills then replace what is under the mask anyway */
    if (st == SDC_OK && in->soft && p->inpaint_fill != 1) st = sdc_inpaint_fill(in->rgb, in->soft, W, H);
    if (st == SDC_OK) {
        in->image = malloc(npx * 3 * sizeof(float));
        if (in->soft) {
            in->masked = malloc(npx * 3 * sizeof(float));
            in->mask = malloc(npx * sizeof(float));
        }
        if (!in->image || (in->soft && (!in->masked || !in->mask)))
            st = sdc_fail(SDC_ERR_OOM, "out of memory for a %dx%d init image", W, H);
    }
    if (st != SDC_OK) {
        sdc_init_inputs_free(in);
        return st;
    }
    /* numpy: astype(float32) / 255.0, then 2.0 * x - 1.0, each in float32 */
    for (size_t i = 0; i < npx * 3; i++) {
        const float x = (float)in->rgb[i] / 255.0f;
        in->image[i] = 2.0f * x - 1.0f;
    }
    if (in->soft) /* the mask processor: / 255, binarised at 0.5; the masked image keeps mask < 0.5 */
        for (size_t i = 0; i < npx; i++) {
            const float m = (float)in->soft[i] / 255.0f >= 0.5f ? 1.0f : 0.0f;
            in->mask[i] = m;
            for (int c = 0; c < 3; c++) in->masked[3 * i + c] = m < 0.5f ? in->image[3 * i + c] : 0.0f;
        }
    return SDC_OK;
}

void sdc_init_inputs_free(sdc_init_inputs *in) {
    free(in->image), free(in->masked), free(in->mask), free(in->rgb), free(in->soft);
    free(in->orig_rgb), free(in->overlay);
    memset(in, 0, sizeof *in);
}

void sdc_mask_to_latent(const float *mask, int H, int W, float *out, int h, int w) {
    for (int y = 0; y < h; y++) {
        const int sy = (int)((long long)y * H / h);
        for (int x = 0; x < w; x++) out[(size_t)y * w + x] = mask[(size_t)sy * W + (int)((long long)x * W / w)];
    }
}

void sdc_latent_sample(const float *moments, const float *eps, int C, int h, int w, float scale, float *out) {
    for (int c = 0; c < C; c++)
        for (int i = 0; i < h * w; i++) {
            const float mean = moments[(size_t)i * 2 * C + c];
            float lv = moments[(size_t)i * 2 * C + C + c];
            lv = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
            const float sd = expf(0.5f * lv);
            const size_t k = (size_t)c * h * w + i;
            out[k] = scale * (mean + sd * eps[k]);
        }
}

/* PIL's alpha_composite of the original (alpha 255 - soft) over the result
 * (opaque): 7 fractional bits and its divide-by-255 shifts. */
void sdc_overlay(unsigned char *rgb, const unsigned char *orig, const unsigned char *soft, int W, int H) {
    for (size_t i = 0; i < (size_t)W * H; i++) {
        const unsigned a = 255u - soft[i];
        const unsigned c1 = a << 7, c2 = (255u - a) << 7;
        for (int c = 0; c < 3; c++) {
            const unsigned t = orig[3 * i + c] * c1 + rgb[3 * i + c] * c2 + (0x80u << 7);
            rgb[3 * i + c] = (unsigned char)((((t >> 8) + t) >> 8) >> 7);
        }
    }
}

sdc_status sdc_init_finish(const sdc_init_inputs *in, sdc_image *img) {
    if (!in->overlay) return SDC_OK;
    if (!in->full_res) { /* the same size: the original composited over the render */
        sdc_overlay(img->rgb, in->orig_rgb, in->overlay, img->width, img->height);
        return SDC_OK;
    }
    /* A1111's uncrop: the render brought to the box (crop and resize), pasted
     * into the whole image, then the original composited over it */
    const int bw = in->box[2] - in->box[0], bh = in->box[3] - in->box[1];
    unsigned char *piece = NULL, *canvas = malloc((size_t)in->W0 * in->H0 * 3);
    if (!canvas) return sdc_fail(SDC_ERR_OOM, "out of memory for the %dx%d result", in->W0, in->H0);
    sdc_status st = to_size("result", img->rgb, img->width, img->height, 3, 1, bw, bh, &piece);
    if (st != SDC_OK) {
        free(canvas);
        return st;
    }
    memcpy(canvas, in->orig_rgb, (size_t)in->W0 * in->H0 * 3);
    for (int y = 0; y < bh; y++)
        memcpy(canvas + ((size_t)(in->box[1] + y) * in->W0 + in->box[0]) * 3, piece + (size_t)y * bw * 3,
               (size_t)bw * 3);
    free(piece);
    sdc_overlay(canvas, in->orig_rgb, in->overlay, in->W0, in->H0);
    free(img->rgb);
    img->rgb = canvas;
    img->width = in->W0, img->height = in->H0;
    return SDC_OK;
}
