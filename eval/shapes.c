/* shapes.c - the analyser of the shipped model's world; see shapes.h. */
#include "shapes.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* tools/shapes_dataset.py: COLOURS, SHAPES, POSITIONS, SIZES */
const char *const sdc_shapes_colour_names[SDC_SHAPES_NCOLOURS] = {
    "red", "green", "blue", "yellow", "purple", "orange", "white", "black"};
const uint8_t sdc_shapes_palette[SDC_SHAPES_NCOLOURS][3] = {
    {220, 30, 30}, {30, 170, 50}, {30, 60, 220}, {240, 220, 30},
    {140, 40, 180}, {245, 140, 20}, {245, 245, 245}, {15, 15, 15}};
const char *const sdc_shapes_kind_names[SDC_SHAPES_NKINDS] = {"circle", "square", "triangle", "star", "ring"};
const char *const sdc_shapes_position_names[SDC_SHAPES_NPOS] = {
    "top left", "top right", "bottom left", "bottom right", "center"};
static const float ANCHOR[SDC_SHAPES_NPOS][2] = {
    {0.25f, 0.25f}, {0.75f, 0.25f}, {0.25f, 0.75f}, {0.75f, 0.75f}, {0.5f, 0.5f}};

enum { CIRCLE, SQUARE, TRIANGLE, STAR, RING };
#define NRAYS 72
#define FG_DIST 40.0f   /* half of the closest palette pair (orange/yellow, 80.8) */
#define SQUARE_HALF 0.85f
#define STAR_INNER 0.45f

static int lookup(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}
int sdc_shapes_colour_index(const char *name) { return lookup(sdc_shapes_colour_names, SDC_SHAPES_NCOLOURS, name); }
int sdc_shapes_kind_index(const char *name) { return lookup(sdc_shapes_kind_names, SDC_SHAPES_NKINDS, name); }
int sdc_shapes_position_index(const char *name) {
    if (strcmp(name, "centre") == 0 || strcmp(name, "middle") == 0) name = "center";
    return lookup(sdc_shapes_position_names, SDC_SHAPES_NPOS, name);
}

static int nearest_colour(const float c[3]) {
    int best = 0;
    float bd = INFINITY;
    for (int i = 0; i < SDC_SHAPES_NCOLOURS; i++) {
        float d = 0;
        for (int k = 0; k < 3; k++) {
            float e = c[k] - sdc_shapes_palette[i][k];
            d += e * e;
        }
        if (d < bd) bd = d, best = i;
    }
    return best;
}

static int cmp_u8(const void *a, const void *b) { return *(const uint8_t *)a - *(const uint8_t *)b; }

/* Distance along the ray from the origin in direction (dx, dy) to the
 * boundary of the unit-size shape (circumradius 1, centred, upright, y down). */
static float template_radius(int kind, float dx, float dy) {
    if (kind == CIRCLE) return 1.0f;
    if (kind == SQUARE) return SQUARE_HALF / fmaxf(fabsf(dx), fabsf(dy));
    float px[10], py[10];
    int n;
    if (kind == TRIANGLE) {
        n = 3;
        const float s3 = 0.8660254f;
        px[0] = 0, py[0] = -1;
        px[1] = -s3, py[1] = 0.5f;
        px[2] = s3, py[2] = 0.5f;
    } else {
        n = 10;
        for (int k = 0; k < 10; k++) {
            double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? STAR_INNER : 1.0;
            px[k] = (float)(rr * cos(a)), py[k] = (float)(rr * sin(a));
        }
    }
    float best = 0;
    for (int i = 0; i < n; i++) {
        float ax = px[i], ay = py[i], bx = px[(i + 1) % n] - ax, by = py[(i + 1) % n] - ay;
        /* t d = a + u b  ->  solve for t, u */
        float det = dx * (-by) - dy * (-bx);
        if (fabsf(det) < 1e-9f) continue;
        float t = (ax * (-by) - ay * (-bx)) / det;
        float u = (dx * ay - dy * ax) / det;
        if (u >= -1e-6f && u <= 1 + 1e-6f && t > best) best = t;
    }
    return best;
}

/* Bilinear coverage at (x, y) in pixel-centre coordinates; 0 outside. */
static float coverage_at(const float *p, int w, int h, float x, float y) {
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float fx = x - x0, fy = y - y0, v = 0;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int xi = x0 + i, yj = y0 + j;
            if (xi < 0 || yj < 0 || xi >= w || yj >= h) continue;
            v += p[(size_t)yj * w + xi] * (i ? fx : 1 - fx) * (j ? fy : 1 - fy);
        }
    return v;
}

void sdc_shapes_analyse(const uint8_t *rgb, int w, int h, sdc_shapes_result *out) {
    memset(out, 0, sizeof *out);
    out->colour = out->kind = out->position = -1;
    size_t n = (size_t)w * h;
    /* 1. background: median of the 2-pixel border frame */
    uint8_t *border = malloc(n * 3 + 1);
    int *comp = malloc(n * sizeof(int) + 1);
    int *stack = malloc(n * sizeof(int) + 1);
    float *p = malloc(n * sizeof(float) + 1);
    if (!border || !comp || !stack || !p) goto done;
    float bg[3];
    for (int k = 0; k < 3; k++) {
        size_t m = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (x < 2 || y < 2 || x >= w - 2 || y >= h - 2) border[m++] = rgb[((size_t)y * w + x) * 3 + k];
        qsort(border, m, 1, cmp_u8);
        bg[k] = border[m / 2];
    }
    out->bg = nearest_colour(bg);

    /* 2. the largest 8-connected component of foreground pixels */
    for (size_t i = 0; i < n; i++) {
        float d = 0;
        for (int k = 0; k < 3; k++) {
            float e = rgb[i * 3 + k] - bg[k];
            d += e * e;
        }
        comp[i] = d > FG_DIST * FG_DIST ? 0 : -1; /* 0: unlabelled foreground */
    }
    int best_label = 0, best_area = 0, label = 0;
    for (size_t s = 0; s < n; s++) {
        if (comp[s] != 0) continue;
        int area = 0, top = 0;
        comp[s] = ++label;
        stack[top++] = (int)s;
        while (top) {
            int i = stack[--top], x = i % w, y = i / w;
            area++;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                    int j = yy * w + xx;
                    if (comp[j] == 0) comp[j] = label, stack[top++] = j;
                }
        }
        if (area > best_area) best_area = area, best_label = label;
    }
    out->area = best_area;
    if (best_area < 4) goto done;

    /* 3. shape colour: interior pixels of the component */
    double sum[3] = {0, 0, 0}, all[3] = {0, 0, 0};
    int n_in = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (comp[i] != best_label) continue;
            for (int k = 0; k < 3; k++) all[k] += rgb[i * 3 + k];
            bool interior = x > 0 && y > 0 && x < w - 1 && y < h - 1 && comp[i - 1] == best_label &&
                            comp[i + 1] == best_label && comp[i - w] == best_label && comp[i + w] == best_label;
            if (!interior) continue;
            for (int k = 0; k < 3; k++) sum[k] += rgb[i * 3 + k];
            n_in++;
        }
    float sc[3];
    for (int k = 0; k < 3; k++) sc[k] = (float)(n_in ? sum[k] / n_in : all[k] / best_area);
    out->colour = nearest_colour(sc);

    /* 4. coverage, centre, position */
    float axis[3], len2 = 0;
    for (int k = 0; k < 3; k++) axis[k] = sc[k] - bg[k], len2 += axis[k] * axis[k];
    if (len2 < 1.0f) len2 = 1.0f;
    double cw = 0, cx = 0, cy = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            float t = 0;
            for (int k = 0; k < 3; k++) t += (rgb[i * 3 + k] - bg[k]) * axis[k];
            t /= len2;
            p[i] = t < 0 ? 0 : t > 1 ? 1 : t;
            /* the centre: the component plus its anti-aliased rim */
            bool near = comp[i] == best_label;
            for (int dy = -1; dy <= 1 && !near; dy++)
                for (int dx = -1; dx <= 1 && !near; dx++) {
                    int xx = x + dx, yy = y + dy;
                    near = xx >= 0 && yy >= 0 && xx < w && yy < h && comp[yy * w + xx] == best_label;
                }
            if (near) cw += p[i], cx += p[i] * x, cy += p[i] * y;
        }
    if (cw <= 0) goto done;
    out->cx = (float)(cx / cw), out->cy = (float)(cy / cw);
    float bd = INFINITY;
    for (int a = 0; a < SDC_SHAPES_NPOS; a++) {
        float ex = (out->cx + 0.5f) / w - ANCHOR[a][0], ey = (out->cy + 0.5f) / h - ANCHOR[a][1];
        if (ex * ex + ey * ey < bd) bd = ex * ex + ey * ey, out->position = a;
    }

    /* 5. kind: a hole at the centre makes a ring; else the radial profile */
    float r_est = sqrtf((float)cw / (float)M_PI), hole = 0;
    for (int k = 0; k < 9; k++) {
        float a = (float)(k * 2 * M_PI / 8), rr = k == 8 ? 0 : 0.3f * r_est;
        hole += coverage_at(p, w, h, out->cx + rr * cosf(a), out->cy + rr * sinf(a));
    }
    hole /= 9;
    out->fit[RING] = hole;
    bool ring = hole < 0.5f;
    float prof[NRAYS], mean = 0;
    float rmax = 2.0f * (w > h ? w : h);
    for (int r = 0; r < NRAYS; r++) {
        float th = (float)(r * 2 * M_PI / NRAYS), dx = cosf(th), dy = sinf(th), t = 0;
        if (ring) /* march through the hole first */
            while (t < rmax && coverage_at(p, w, h, out->cx + t * dx, out->cy + t * dy) < 0.5f) t += 0.25f;
        while (t < rmax && coverage_at(p, w, h, out->cx + t * dx, out->cy + t * dy) >= 0.5f) t += 0.25f;
        prof[r] = t;
        mean += t;
    }
    mean /= NRAYS;
    out->radius = mean;
    if (ring) {
        out->kind = RING;
        for (int k = 0; k < RING; k++) out->fit[k] = INFINITY;
        goto done;
    }
    float best = INFINITY;
    for (int k = 0; k < RING; k++) {
        float tp[NRAYS], tm = 0, e = 0;
        for (int r = 0; r < NRAYS; r++) {
            float th = (float)(r * 2 * M_PI / NRAYS);
            tp[r] = template_radius(k, cosf(th), sinf(th));
            tm += tp[r];
        }
        tm /= NRAYS;
        for (int r = 0; r < NRAYS; r++) {
            float d = prof[r] / (mean > 0 ? mean : 1) - tp[r] / tm;
            e += d * d;
        }
        out->fit[k] = e / NRAYS;
        if (out->fit[k] < best) best = out->fit[k], out->kind = k;
    }
done:
    free(border);
    free(comp);
    free(stack);
    free(p);
}

/* ---- items and scores ---------------------------------------------------- */

void sdc_shapes_items_free(sdc_shapes_item *items, int n) {
    for (int i = 0; items && i < n; i++) free(items[i].prompt);
    free(items);
}

static sdc_status item_field(const char *path, int line, const cJSON *o, const char *key,
                             int (*index)(const char *), int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        return sdc_fail(SDC_ERR_ARG, "%s:%d: \"%s\" missing or not a string", path, line, key);
    *out = index(v->valuestring);
    if (*out < 0) return sdc_fail(SDC_ERR_ARG, "%s:%d: unknown %s \"%s\"", path, line, key, v->valuestring);
    return SDC_OK;
}

static sdc_status parse_item(const char *path, int line, const char *text, sdc_shapes_item *it) {
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return sdc_fail(SDC_ERR_ARG, "%s:%d: not a JSON object", path, line);
    }
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    sdc_status st = SDC_OK;
    if (pr && !cJSON_IsString(pr)) st = sdc_fail(SDC_ERR_ARG, "%s:%d: \"prompt\" is not a string", path, line);
    if (!st) st = item_field(path, line, o, "shape", sdc_shapes_kind_index, &it->kind);
    if (!st) st = item_field(path, line, o, "colour", sdc_shapes_colour_index, &it->colour);
    if (!st) st = item_field(path, line, o, "bg", sdc_shapes_colour_index, &it->bg);
    if (!st) st = item_field(path, line, o, "position", sdc_shapes_position_index, &it->position);
    if (!st && pr && !(it->prompt = strdup(pr->valuestring))) st = sdc_fail(SDC_ERR_OOM, "%s:%d: out of memory", path, line);
    cJSON_Delete(o);
    return st;
}

sdc_status sdc_shapes_items_load(const char *path, sdc_shapes_item **items, int *n) {
    *items = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return sdc_fail(SDC_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int line = 0, have = 0;
    sdc_status st = SDC_OK;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        line++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        if (len == 0) continue;
        if (*n == have) {
            have = have ? 2 * have : 64;
            sdc_shapes_item *m = realloc(*items, (size_t)have * sizeof **items);
            if (!m) {
                st = sdc_fail(SDC_ERR_OOM, "%s:%d: out of memory", path, line);
                break;
            }
            *items = m;
        }
        memset(&(*items)[*n], 0, sizeof **items);
        if ((st = parse_item(path, line, buf, &(*items)[*n])) != SDC_OK) break;
        (*n)++;
    }
    free(buf);
    fclose(f);
    if (!st && *n == 0) st = sdc_fail(SDC_ERR_ARG, "%s: no items", path);
    if (st) {
        sdc_shapes_items_free(*items, *n);
        *items = NULL;
        *n = 0;
    }
    return st;
}

void sdc_shapes_score_add(sdc_shapes_score *s, const sdc_shapes_item *t, const sdc_shapes_result *r) {
    bool bg = r->bg == t->bg, colour = r->colour == t->colour, kind = r->kind == t->kind,
         pos = r->position == t->position;
    s->n++;
    s->bg += bg, s->colour += colour, s->kind += kind, s->position += pos;
    s->all += bg && colour && kind && pos;
}
