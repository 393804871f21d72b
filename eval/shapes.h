/* shapes.h - the world of sdc's shipped model (tools/shapes_dataset.py)
 * and an analyser that reads a rendered image back into its attributes:
 * background colour, shape colour, shape kind and position.
 *
 * The analyser is written for single-shape images on a plain background
 * (what `make eval` asks the model for):
 *   1. background: per-channel median of a 2-pixel border frame, named by
 *      the nearest palette colour;
 *   2. foreground: pixels farther than 40 (RGB distance; half the closest
 *      pair of palette colours, orange/yellow) from the background; the
 *      largest 8-connected component is the shape;
 *   3. shape colour: mean of the component's interior pixels (all four
 *      neighbours in it), named by the nearest palette colour;
 *   4. coverage p = projection of each pixel onto the background -> shape
 *      colour line, in [0, 1]; the p-weighted centroid of the component is
 *      the shape's centre, and the nearest of the five anchor points its
 *      position;
 *   5. kind: a ring if the coverage around the centre is low (a hole);
 *      otherwise the radial profile r(theta) (72 rays, marched in quarter
 *      pixels through bilinear coverage until it drops below 1/2),
 *      normalised to mean 1, is matched against the exact profiles of the
 *      circle, square, triangle and star; the closest (mean squared
 *      difference) wins. Shapes are always upright in this world.
 */
#ifndef SDC_SHAPES_H
#define SDC_SHAPES_H

#include <stdint.h>

#include "common.h"

#define SDC_SHAPES_NCOLOURS 8
#define SDC_SHAPES_NKINDS 5
#define SDC_SHAPES_NPOS 5

extern const char *const sdc_shapes_colour_names[SDC_SHAPES_NCOLOURS];
extern const uint8_t sdc_shapes_palette[SDC_SHAPES_NCOLOURS][3];
extern const char *const sdc_shapes_kind_names[SDC_SHAPES_NKINDS];
extern const char *const sdc_shapes_position_names[SDC_SHAPES_NPOS];

typedef struct {
    int bg;          /* colour index */
    int colour;      /* colour index, -1 when no shape was found */
    int kind;        /* kind index, -1 when no shape was found */
    int position;    /* position index, -1 when no shape was found */
    int area;        /* pixels in the shape's component */
    float cx, cy;    /* centre, in pixels */
    float radius;    /* mean of the radial profile, pixels (outer for a ring) */
    float fit[SDC_SHAPES_NKINDS]; /* profile distance to each kind (ring: hole coverage) */
} sdc_shapes_result;

/* Analyse an 8-bit RGB image (h x w x 3, row-major). */
void sdc_shapes_analyse(const uint8_t *rgb, int w, int h, sdc_shapes_result *out);

/* Index of a name in the tables above, or -1. */
int sdc_shapes_colour_index(const char *name);
int sdc_shapes_kind_index(const char *name);
int sdc_shapes_position_index(const char *name);

/* One prompt of the world with its truth (a line of eval_prompts.jsonl:
 * {"prompt", "shape", "colour", "bg", "position", ...}). */
typedef struct {
    char *prompt;
    int kind, colour, bg, position;
} sdc_shapes_item;

/* Read a JSON Lines file of items; *items is malloc'ed (free with
 * sdc_shapes_items_free). Errors name the file and line. */
sdc_status sdc_shapes_items_load(const char *path, sdc_shapes_item **items, int *n);
void sdc_shapes_items_free(sdc_shapes_item *items, int n);

/* Per-attribute tallies of analysed images against their truth. */
typedef struct {
    int n, bg, colour, kind, position, all;
} sdc_shapes_score;

void sdc_shapes_score_add(sdc_shapes_score *s, const sdc_shapes_item *truth, const sdc_shapes_result *r);

#endif
