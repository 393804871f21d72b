/* test_image_load.c - init images and masks (image_load.h) against what
 * Pillow 11.0.0 gives for the same files (tools/fixtures_image_load.py):
 * ImageOps.exif_transpose then convert("RGB"), and AUTOMATIC1111's
 * create_binary_mask(round=True); the same from memory; hostile files
 * refused with a message that names them. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/decode.h"
#include "image/image_load.h"
#include "st_write.h"
#include "testutil.h"

#define DIR FIXTURES "/image_load/"

static char *g_dir;

static void setup(void) {
    g_dir = st_tmpdir();
    cr_assert_not_null(g_dir, "cannot create a temp dir");
}

static void teardown(void) {
    if (g_dir) st_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

TestSuite(image_load, .init = setup, .fini = teardown);

/* A whole file, malloc'd. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    cr_assert(len >= 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A binary PPM (P6, c = 3) or PGM (P5, c = 1) as Pillow writes them:
 * "P6\nW H\n255\n" then (h, w, c) bytes. */
static uint8_t *read_pnm(const char *path, int *w, int *h, int *c) {
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    int off = 0;
    char kind = 0;
    cr_assert_eq(sscanf((char *)b, "P%c %d %d 255%n", &kind, w, h, &off), 3, "%s: not a PNM", path);
    *c = kind == '6' ? 3 : 1;
    off++; /* the one whitespace byte after 255 */
    size_t bytes = (size_t)*w * (size_t)*h * (size_t)*c;
    cr_assert_eq(n, (size_t)off + bytes, "%s: %zu bytes", path, n);
    uint8_t *px = malloc(bytes);
    cr_assert_not_null(px);
    memcpy(px, b + off, bytes);
    free(b);
    return px;
}

/* got (h, w, c) against the reference file; returns the largest byte
 * difference and prints the first mismatches. */
static int compare(const char *what, const uint8_t *got, int w, int h, const char *ref_path) {
    int rw, rh, rc;
    uint8_t *ref = read_pnm(ref_path, &rw, &rh, &rc);
    cr_assert(w == rw && h == rh, "%s: %dx%d, Pillow %dx%d", what, w, h, rw, rh);
    int worst = 0, shown = 0;
    for (size_t i = 0; i < (size_t)w * h * rc; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        if (d && shown++ < 4)
            fprintf(stderr, "%s: byte %zu (x %zu, y %zu): sdc %d, Pillow %d\n", what, i,
                    i / rc % (size_t)w, i / rc / (size_t)w, got[i], ref[i]);
        if (d > worst) worst = d;
    }
    free(ref);
    return worst;
}

/* Every file with a Pillow reference; each is read as an image and as a
 * mask, from the file and from memory. */
static const char *const CASES[] = {
    "j420.jpg", "j444.jpg", "j422.jpg", "grey.jpg", "progressive.jpg", "scans500.jpg",
    "exif6.jpg", "exif3.jpg", "exif2.jpg", "exif4.jpg", "exif5.jpg", "exif7.jpg", "exif8.jpg",
    "exif_long6.jpg", "exif_be8.jpg", "exif_count2.jpg", "exif_dup.jpg", "exif_rational6.jpg",
    "exif_float6.jpg", "exif_ascii6.jpg", "exif_byte6.jpg", "exif_value9.jpg", "exif_value0.jpg",
    "exif_after_bad.jpg", "exif_before_bad.jpg", "exif_badtype.jpg", "exif_short_ifd.jpg",
    "exif_ifd_past_end.jpg", "exif_ifd_at20.jpg", "exif_double_prefix.jpg", "exif_corrupt.jpg",
    "exif_tiny.jpg", "exif_split.jpg", "exif_two.jpg", "png_exif6.png",
    "mask_rgba_partial.png", "mask_rgba_opaque.png", "mask_grey.png", "mask_palette.png",
    "palette_short.png", "grey16.png", "la16.png", "la8.png", "rgba16.png", "rgb16.png",
    "rgba16_opaque.png",
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static void ref_name(char *out, size_t cap, const char *file, const char *suffix) {
    const char *dot = strrchr(file, '.');
    snprintf(out, cap, DIR "%.*s%s", (int)(dot - file), file, suffix);
}

Test(image_load, rgb_matches_pillow) {
    /* Tolerance: exact (0). Measured: 0 on every file; Pillow's wheel
     * decodes with libjpeg-turbo 3.0.4, this suite with the system's
     * (2.1.5 on Debian 12): ISLOW and fancy upsampling agree bit for bit. */
    for (size_t k = 0; k < N_CASES; k++) {
        char path[256], ref[256];
        snprintf(path, sizeof path, DIR "%s", CASES[k]);
        ref_name(ref, sizeof ref, CASES[k], ".rgb.ppm");
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        cr_assert_eq(sdc_image_load(path, &rgb, &w, &h), SDC_OK, "%s", sdc_last_error());
        int worst = compare(CASES[k], rgb, w, h, ref);
        cr_expect_eq(worst, 0, "%s: largest difference %d", CASES[k], worst);
        free(rgb);
    }
}

Test(image_load, mask_matches_create_binary_mask) {
    /* Tolerance: exact (0). Measured: 0 on every file. */
    for (size_t k = 0; k < N_CASES; k++) {
        char path[256], ref[256];
        snprintf(path, sizeof path, DIR "%s", CASES[k]);
        ref_name(ref, sizeof ref, CASES[k], ".mask.pgm");
        uint8_t *m = NULL;
        int w = 0, h = 0;
        cr_assert_eq(sdc_mask_load(path, &m, &w, &h), SDC_OK, "%s", sdc_last_error());
        int worst = compare(CASES[k], m, w, h, ref);
        cr_expect_eq(worst, 0, "%s: mask: largest difference %d", CASES[k], worst);
        free(m);
    }
}

Test(image_load, memory_reads_as_the_file) {
    for (size_t k = 0; k < N_CASES; k++) {
        char path[256];
        snprintf(path, sizeof path, DIR "%s", CASES[k]);
        size_t n = 0;
        unsigned char *bytes = slurp(path, &n);
        for (int mask = 0; mask < 2; mask++) {
            uint8_t *a = NULL, *b = NULL;
            int aw, ah, bw, bh;
            sdc_status sa = mask ? sdc_mask_load(path, &a, &aw, &ah) : sdc_image_load(path, &a, &aw, &ah);
            sdc_status sb = mask ? sdc_mask_load_mem("upload", bytes, n, &b, &bw, &bh)
                                 : sdc_image_load_mem("upload", bytes, n, &b, &bw, &bh);
            cr_assert(sa == SDC_OK && sb == SDC_OK, "%s: %s", CASES[k], sdc_last_error());
            cr_assert(aw == bw && ah == bh);
            cr_assert_arr_eq(a, b, (size_t)aw * ah * (mask ? 1 : 3), "%s", CASES[k]);
            free(a), free(b);
        }
        free(bytes);
    }
    /* sdc_image_read_rgb is sdc_image_load: it reads a JPEG now */
    uint8_t *a = NULL, *b = NULL;
    int w, h, w2, h2;
    cr_assert_eq(sdc_image_read_rgb(DIR "exif6.jpg", &a, &w, &h), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_image_load(DIR "exif6.jpg", &b, &w2, &h2), SDC_OK);
    cr_assert(w == 32 && h == 48 && w2 == w && h2 == h);
    cr_assert_arr_eq(a, b, (size_t)w * h * 3);
    free(a), free(b);
}

/* A failure: status, NULL/0 outputs, a message naming the file. */
static void expect_refused(const char *path, bool mask, sdc_status want, const char *needle) {
    uint8_t *px = (uint8_t *)1;
    int w = -1, h = -1;
    sdc_status st = mask ? sdc_mask_load(path, &px, &w, &h) : sdc_image_load(path, &px, &w, &h);
    cr_assert_eq(st, want, "%s: status %d (%s)", path, (int)st, sdc_last_error());
    cr_assert(px == NULL && w == 0 && h == 0, "%s: outputs not cleared", path);
    cr_assert(strstr(sdc_last_error(), path), "%s: message: %s", path, sdc_last_error());
    cr_assert(strstr(sdc_last_error(), needle), "%s: message: %s (expected \"%s\")", path,
              sdc_last_error(), needle);
}

Test(image_load, hostile_files_are_refused) {
    static const struct {
        const char *file;
        sdc_status st;
        const char *needle;
    } bad[] = {
        {"truncated.jpg", SDC_ERR_FORMAT, "Premature end of JPEG file"},
        {"no_eoi.jpg", SDC_ERR_FORMAT, "Premature end of JPEG file"}, /* Pillow: truncated */
        {"huge_sof.jpg", SDC_ERR_UNSUPPORTED, "60000x60000"},
        {"empty.jpg", SDC_ERR_UNSUPPORTED, "the file is empty"},
        {"not_image.jpg", SDC_ERR_UNSUPPORTED, "not a PNG or JPEG image (the file starts with 74 68"},
        {"cmyk.jpg", SDC_ERR_UNSUPPORTED, "a CMYK JPEG"},
        {"scans501.jpg", SDC_ERR_UNSUPPORTED, "more than 500 scans"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char path[256];
        snprintf(path, sizeof path, DIR "%s", bad[k].file);
        expect_refused(path, false, bad[k].st, bad[k].needle);
        expect_refused(path, true, bad[k].st, bad[k].needle);
    }
    expect_refused(DIR "missing.jpg", false, SDC_ERR_IO, "cannot open");
}

Test(image_load, memory_errors_name_the_upload) {
    size_t n = 0;
    unsigned char *b = slurp(DIR "truncated.jpg", &n);
    uint8_t *px = (uint8_t *)1;
    int w = -1, h = -1;
    cr_assert_eq(sdc_image_load_mem("init_images[0]", b, n, &px, &w, &h), SDC_ERR_FORMAT);
    cr_assert(px == NULL && w == 0 && h == 0);
    cr_assert(strstr(sdc_last_error(), "init_images[0]: corrupt JPEG"), "%s", sdc_last_error());
    cr_assert_eq(sdc_mask_load_mem("mask", b, 0, &px, &w, &h), SDC_ERR_UNSUPPORTED);
    cr_assert(strstr(sdc_last_error(), "mask: not a PNG or JPEG image (the file is empty)"), "%s",
              sdc_last_error());
    cr_assert_eq(sdc_mask_load_mem(NULL, "GIF89a", 6, &px, &w, &h), SDC_ERR_UNSUPPORTED);
    cr_assert(strstr(sdc_last_error(), "image: not a PNG or JPEG image"), "%s", sdc_last_error());
    cr_assert_eq(sdc_image_load_mem("x", NULL, 5, &px, &w, &h), SDC_ERR_ARG);
    cr_assert_eq(sdc_image_load_mem("x", b, n, NULL, &w, &h), SDC_ERR_ARG);
    free(b);
    /* over 256 MiB: refused before a byte is read (malloc'd, never touched) */
    size_t big = ((size_t)256 << 20) + 1;
    void *huge = malloc(big);
    cr_assert_not_null(huge);
    cr_assert_eq(sdc_image_load_mem("big", huge, big, &px, &w, &h), SDC_ERR_UNSUPPORTED);
    cr_assert(strstr(sdc_last_error(), "more than 256 MiB"), "%s", sdc_last_error());
    free(huge);
}

Test(image_load, large_file_is_refused_unread) {
    /* a sparse 256 MiB + 1 file: refused from its size alone */
    char *p = st_path(g_dir, "big.jpg");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, ((off_t)256 << 20) + 1), 0);
    close(fd);
    expect_refused(p, false, SDC_ERR_UNSUPPORTED, "more than 256 MiB");
    free(p);
}

Test(image_load, corrupt_jpeg_data_is_an_error) {
    /* libjpeg warns about a bad Huffman code or bytes in the entropy data
     * and goes on; sdc stops there (Pillow would give a damaged picture).
     * Flipping bytes in j444.jpg's entropy data, one at a time, must give
     * either an error naming the file or an image: never a crash. */
    size_t n = 0;
    unsigned char *b = slurp(DIR "j444.jpg", &n);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < n && !sos; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xDA) sos = i;
    cr_assert(sos > 0);
    int refused = 0;
    for (size_t i = sos + 20; i < n - 2; i += 97) {
        unsigned char keep = b[i];
        b[i] = 0xFF; /* a marker prefix inside the data */
        uint8_t *px = NULL;
        int w, h;
        sdc_status st = sdc_image_load_mem("flipped", b, n, &px, &w, &h);
        if (st != SDC_OK) {
            refused++;
            cr_assert(strstr(sdc_last_error(), "flipped: corrupt JPEG"), "%s", sdc_last_error());
        }
        free(px);
        b[i] = keep;
    }
    /* measured: 38 of the 39 refused; the other decodes, to another picture,
     * without a warning from libjpeg */
    cr_assert_gt(refused, 30, "%d refused", refused);
    free(b);
}

Test(image_load, exif_reader_is_bounded) {
    /* every prefix of an EXIF block (a truncated APP1) reads without a
     * fault and gives either no orientation or the block's */
    unsigned char t[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
    for (size_t n = 0; n <= sizeof t; n++) {
        unsigned char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees overreads */
        memcpy(copy, t, n);
        int o = sdc_exif_orientation(copy, n);
        cr_assert(o == (n >= 22 ? 6 : 1), "prefix %zu: %d", n, o);
        free(copy);
    }
    /* an IFD offset near 2^32, an entry count of 65535 */
    unsigned char far[] = {'M', 'M', 0, 42, 0xFF, 0xFF, 0xFF, 0xF0, 0xFF, 0xFF};
    cr_assert_eq(sdc_exif_orientation(far, sizeof far), 1);
    unsigned char many[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 0xFF, 0xFF};
    cr_assert_eq(sdc_exif_orientation(many, sizeof many), 1);
}

Test(image_load, orientation_transposes_as_pillow) {
    /* a 3x2 picture of one byte a pixel, turned each way (Pillow's
     * transpose methods; the fixtures check the same on real files) */
    static const uint8_t want[9][6] = {
        {0}, {1, 2, 3, 4, 5, 6}, {3, 2, 1, 6, 5, 4}, {6, 5, 4, 3, 2, 1}, {4, 5, 6, 1, 2, 3},
        {1, 4, 2, 5, 3, 6}, {4, 1, 5, 2, 6, 3}, {6, 3, 5, 2, 4, 1}, {3, 6, 2, 5, 1, 4},
    };
    for (int o = 1; o <= 8; o++) {
        uint8_t *px = malloc(6);
        memcpy(px, want[1], 6);
        int w = 3, h = 2;
        cr_assert_eq(sdc_orient("t", &px, &w, &h, 1, o), SDC_OK);
        cr_assert(o >= 5 ? w == 2 && h == 3 : w == 3 && h == 2, "orientation %d: %dx%d", o, w, h);
        cr_assert_arr_eq(px, want[o], 6, "orientation %d", o);
        free(px);
    }
}
