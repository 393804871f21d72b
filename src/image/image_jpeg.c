/* image_jpeg.c - JPEG decoding for init images and masks, by the system's
 * libjpeg-turbo, as Pillow decodes a JPEG it opens: libjpeg's defaults
 * (the accurate integer IDCT JDCT_ISLOW, fancy upsampling), libjpeg's own
 * guess of the colour space (JFIF and Adobe markers), RGB out; a greyscale
 * file gives R = G = B, as Pillow's "L" converted to "RGB" does.
 *
 * The file is hostile until decoded:
 *   - libjpeg's fatal errors longjmp back here (its default exits);
 *   - its warnings are errors too: corrupt entropy data, a premature end,
 *     a bogus progression. Pillow refuses a truncated file; it would
 *     accept the others with a damaged picture, sdc refuses them;
 *   - the size from the frame header is checked against
 *     SDC_IMAGE_MAX_SIDE before any pixel is decoded;
 *   - a progress monitor stops a file of more than 500 scans, libjpeg-
 *     turbo's own limit for its TurboJPEG API (each scan of a progressive
 *     file goes over the whole image; a small file can hold thousands);
 *   - CMYK and YCCK files, and component counts other than 1 and 3, are
 *     refused before decoding (Pillow reads CMYK; sdc does not convert it).
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h> /* jpeglib.h uses FILE and size_t without including them */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image/decode.h"
#include "image/image.h"

#define JPEG_SCAN_LIMIT 500

/* libjpeg's error manager with the place to jump back to. */
typedef struct jpeg_fail {
    struct jpeg_error_mgr mgr; /* first: libjpeg's cinfo->err points here */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    bool scan_limit; /* stopped by on_progress, not by libjpeg */
} jpeg_fail;

/* Everything a decode changes lives here, in the caller's frame, not in
 * the function that calls setjmp: after the longjmp its values are the
 * last ones stored (C11 7.13.2.1 leaves non-volatile locals of that
 * function indeterminate, which is why nothing there is read after it). */
typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    jpeg_fail fail;
    struct jpeg_progress_mgr progress;
    uint8_t *px;          /* (h, w, 3) output, freed on failure */
    unsigned char *exif;  /* the Exif APP1 segments' bytes, concatenated */
    sdc_status status;    /* a failure decided here (not by libjpeg) */
} jpeg_job;

static void on_error(j_common_ptr c) {
    jpeg_fail *f = (jpeg_fail *)c->err;
    c->err->format_message(c, f->msg);
    longjmp(f->jump, 1);
}

/* level -1 is a warning (corrupt or missing data): an error here; higher
 * levels are trace messages, ignored. */
static void on_message(j_common_ptr c, int level) {
    if (level < 0) on_error(c);
}

/* Called before each step of input: stop after JPEG_SCAN_LIMIT scans. */
static void on_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > JPEG_SCAN_LIMIT) {
        jpeg_fail *f = (jpeg_fail *)c->err;
        f->scan_limit = true;
        longjmp(f->jump, 1);
    }
}

/* The Exif APP1 segments as Pillow joins them (JpegImagePlugin.APP): the
 * first whole, each later one without its "Exif\0\0"; returned without the
 * first prefix (what sdc_exif_orientation takes). *n = 0 when none. */
static sdc_status collect_exif(jpeg_job *j, const char *name, size_t *n) {
    size_t total = 0;
    for (jpeg_saved_marker_ptr m = j->cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6))
            total += m->data_length - 6;
    *n = 0;
    if (!total) return SDC_OK;
    j->exif = malloc(total);
    if (!j->exif)
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory for %zu bytes of EXIF", name, total);
    for (jpeg_saved_marker_ptr m = j->cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6)) {
            memcpy(j->exif + *n, m->data + 6, m->data_length - 6);
            *n += m->data_length - 6;
        }
    return SDC_OK;
}

/* What the frame header says, checked before decoding: size, colour. */
static sdc_status check_header(const struct jpeg_decompress_struct *ci, const char *name) {
    if (ci->image_width > SDC_IMAGE_MAX_SIDE || ci->image_height > SDC_IMAGE_MAX_SIDE)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the JPEG image is %ux%u pixels; at most "
                        "%dx%d are read", name, ci->image_width, ci->image_height,
                        SDC_IMAGE_MAX_SIDE, SDC_IMAGE_MAX_SIDE);
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: a %s JPEG; sdc reads greyscale and "
                        "colour (YCbCr or RGB) JPEGs only (convert it to RGB first)",
                        name, ci->jpeg_color_space == JCS_CMYK ? "CMYK" : "YCCK");
    bool grey = ci->num_components == 1 && ci->jpeg_color_space == JCS_GRAYSCALE;
    bool colour = ci->num_components == 3 &&
                  (ci->jpeg_color_space == JCS_YCbCr || ci->jpeg_color_space == JCS_RGB);
    if (!grey && !colour)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: a JPEG of %d components in an unknown "
                        "colour space; sdc reads greyscale (1) and colour (3) JPEGs",
                        name, ci->num_components);
    return SDC_OK;
}

/* The decode proper; returns 0, or 1 after libjpeg failed (j->fail.msg).
 * j->status is set where sdc itself refuses the file. */
static int jpeg_run(jpeg_job *j, const char *name, const unsigned char *b, size_t n,
                    int *orientation) {
    struct jpeg_decompress_struct *ci = &j->cinfo;
    if (setjmp(j->fail.jump)) return 1;
    jpeg_create_decompress(ci);
    ci->progress = &j->progress;
    jpeg_mem_src(ci, b, (unsigned long)n);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(ci, TRUE); /* TRUE: a file of tables only is an error */
    if ((j->status = check_header(ci, name)) != SDC_OK) return 0;
    size_t exif_n = 0;
    if ((j->status = collect_exif(j, name, &exif_n)) != SDC_OK) return 0;
    *orientation = exif_n ? sdc_exif_orientation(j->exif, exif_n) : 1;

    ci->out_color_space = JCS_RGB;
    jpeg_start_decompress(ci); /* a multi-scan file is read whole here */
    size_t row = (size_t)ci->output_width * 3;
    j->px = malloc(row * ci->output_height); /* both sides 1..8192 */
    if (!j->px) {
        j->status = sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %ux%u image", name,
                             ci->output_width, ci->output_height);
        return 0;
    }
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW r = j->px + row * ci->output_scanline;
        if (jpeg_read_scanlines(ci, &r, 1) != 1) { /* not from memory; no loop */
            j->status = sdc_fail(SDC_ERR_FORMAT, "%s: corrupt JPEG: no data for row %u",
                                 name, ci->output_scanline);
            return 0;
        }
    }
    jpeg_finish_decompress(ci); /* reads on to EOI: a file without one fails */
    return 0;
}

sdc_status sdc_jpeg_decode(const char *name, const unsigned char *b, size_t n,
                           sdc_decoded *out) {
    memset(out, 0, sizeof *out);
    jpeg_job *j = calloc(1, sizeof *j); /* zeroed: destroy is safe at any point */
    if (!j) return sdc_fail(SDC_ERR_OOM, "%s: out of memory", name);
    j->cinfo.err = jpeg_std_error(&j->fail.mgr);
    j->fail.mgr.error_exit = on_error;
    j->fail.mgr.emit_message = on_message;
    j->progress.progress_monitor = on_progress;
    j->status = SDC_OK;
    int orientation = 1;
    int failed = jpeg_run(j, name, b, n, &orientation);
    sdc_status st = j->status;
    if (failed && j->fail.scan_limit)
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: a JPEG of more than %d scans; sdc stops "
                      "there, as libjpeg-turbo's TurboJPEG does", name, JPEG_SCAN_LIMIT);
    else if (failed)
        st = sdc_fail(j->fail.mgr.msg_code == JERR_OUT_OF_MEMORY ? SDC_ERR_OOM : SDC_ERR_FORMAT,
                      "%s: corrupt JPEG: %s", name, j->fail.msg);
    if (st == SDC_OK) {
        out->px = j->px;
        out->w = (int)j->cinfo.output_width;
        out->h = (int)j->cinfo.output_height;
        out->c = 3;
        out->orientation = orientation;
    } else {
        free(j->px);
    }
    jpeg_destroy_decompress(&j->cinfo);
    free(j->exif);
    free(j);
    return st;
}
