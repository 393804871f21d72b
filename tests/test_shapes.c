/* The analyser of the shipped model's world (eval/shapes.c) on exact
 * dataset renders (tests/fixtures/shapes, tools/fixtures_shapes.py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../eval/shapes.h"
#include "testutil.h"

#define SIDE 64

/* The truth renders: n images of 64x64x3, malloc'd. */
static uint8_t *load_truth(int n) {
    size_t bytes = (size_t)n * SIDE * SIDE * 3;
    uint8_t *px = malloc(bytes + 1);
    cr_assert_not_null(px);
    gzFile g = gzopen(FIXTURES "/shapes/truth.rgb.gz", "rb");
    cr_assert_not_null(g, "cannot open truth.rgb.gz");
    cr_assert_eq(gzread(g, px, (unsigned)bytes), (int)bytes, "truth.rgb.gz is short");
    cr_assert_eq(gzread(g, px + bytes, 1), 0, "truth.rgb.gz is longer than its jsonl says");
    gzclose(g);
    return px;
}

/* On the exact images of the world, every attribute of every image must be
 * read right: the analyser is the judge of make eval. */
Test(shapes, analyser_reads_dataset_renders) {
    sdc_shapes_item *items;
    int n;
    cr_assert_eq(sdc_shapes_items_load(FIXTURES "/shapes/truth.jsonl", &items, &n), SDC_OK, "%s",
                 sdc_last_error());
    cr_assert_geq(n, 400);
    uint8_t *px = load_truth(n);
    sdc_shapes_score s = {0};
    int kinds[SDC_SHAPES_NKINDS] = {0};
    for (int i = 0; i < n; i++) {
        sdc_shapes_result r;
        sdc_shapes_analyse(px + (size_t)i * SIDE * SIDE * 3, SIDE, SIDE, &r);
        sdc_shapes_score_add(&s, &items[i], &r);
        kinds[items[i].kind]++;
        if (r.kind != items[i].kind || r.colour != items[i].colour || r.bg != items[i].bg ||
            r.position != items[i].position)
            printf("truth %d: %s %s on %s at %s -> %s %s on %s at %s (fit %.3f %.3f %.3f %.3f, hole %.2f)\n", i,
                   sdc_shapes_kind_names[items[i].kind], sdc_shapes_colour_names[items[i].colour],
                   sdc_shapes_colour_names[items[i].bg], sdc_shapes_position_names[items[i].position],
                   r.kind >= 0 ? sdc_shapes_kind_names[r.kind] : "-",
                   r.colour >= 0 ? sdc_shapes_colour_names[r.colour] : "-", sdc_shapes_colour_names[r.bg],
                   r.position >= 0 ? sdc_shapes_position_names[r.position] : "-", r.fit[0], r.fit[1], r.fit[2],
                   r.fit[3], r.fit[4]);
    }
    for (int k = 0; k < SDC_SHAPES_NKINDS; k++) cr_expect_geq(kinds[k], 40, "too few %s", sdc_shapes_kind_names[k]);
    cr_expect_eq(s.bg, n, "background %d/%d", s.bg, n);
    cr_expect_eq(s.colour, n, "colour %d/%d", s.colour, n);
    cr_expect_eq(s.kind, n, "kind %d/%d", s.kind, n);
    cr_expect_eq(s.position, n, "position %d/%d", s.position, n);
    free(px);
    sdc_shapes_items_free(items, n);
}

/* An empty (uniform) image has no shape: nothing but the background. */
Test(shapes, uniform_image_has_no_shape) {
    uint8_t px[SIDE * SIDE * 3];
    for (int i = 0; i < SIDE * SIDE; i++) memcpy(px + i * 3, sdc_shapes_palette[2], 3);
    sdc_shapes_result r;
    sdc_shapes_analyse(px, SIDE, SIDE, &r);
    cr_assert_eq(r.bg, 2);
    cr_assert_eq(r.kind, -1);
    cr_assert_eq(r.colour, -1);
    cr_assert_eq(r.position, -1);
}

Test(shapes, items_errors_name_line) {
    char path[] = "/tmp/sdc-shapes-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"prompt\": \"a\", \"shape\": \"circle\", \"colour\": \"red\", \"bg\": \"blue\", \"position\": \"center\"}\n"
          "{\"prompt\": \"b\", \"shape\": \"hexagon\", \"colour\": \"red\", \"bg\": \"blue\", \"position\": \"center\"}\n",
          f);
    fclose(f);
    sdc_shapes_item *items;
    int n;
    cr_assert_neq(sdc_shapes_items_load(path, &items, &n), SDC_OK);
    cr_assert_not_null(strstr(sdc_last_error(), ":2: unknown shape \"hexagon\""), "%s", sdc_last_error());
    cr_assert_null(items);
    unlink(path);
}
