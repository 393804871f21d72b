/* fuzz_sdapi.c - libFuzzer target: the requests sdc serve answers.
 *
 * Input: the first byte picks a route (A1111's txt2img, options, png-info
 * and the GET endpoints, OpenAI's images and models, the page, a path it
 * does not serve), the rest is the request body. It goes through
 * sdapi_handle (src/server/sdapi.c and the handlers it calls) exactly as
 * the HTTP side passes it, with the job queue replaced by the stubs below
 * (a render answers one 8x8 image per requested image; a model switch
 * succeeds), so nothing renders and no model is loaded. Every reply must
 * have a status from the API's set, a body, and, for JSON replies, a body
 * that parses; a 200 to txt2img must carry as many images as asked.
 *
 * Seeds: fuzz/seeds/sdapi/ (requests A1111's clients send); dictionary
 * fuzz/sdapi.dict. Run from the repository root:
 *   build-fuzz/fuzz/fuzz_sdapi -dict=fuzz/sdapi.dict CORPUS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "server/server.h"

/* ----------------------------------------------------- the queue, stubbed */

struct srv_jobs {
    int unused;
};

int srv_jobs_render(srv_jobs *q, srv_render *r, char *err, size_t err_n) {
    (void)q, (void)err, (void)err_n;
    const int n = r->batch_size * r->n_iter;
    r->images = calloc((size_t)n, sizeof *r->images);
    if (!r->images) return 500;
    for (int i = 0; i < n; i++) {
        sdc_image *im = &r->images[i];
        im->width = im->height = 8;
        im->rgb = calloc(8 * 8 * 3, 1);
        im->infotext = strdup(r->gen.prompt ? r->gen.prompt : "");
        r->n_images++;
    }
    return 0;
}

int srv_jobs_switch(srv_jobs *q, const char *path, char *err, size_t err_n) {
    (void)q, (void)path, (void)err, (void)err_n;
    return 0;
}

void srv_render_free(srv_render *r) {
    for (int i = 0; i < r->n_images; i++) free(r->images[i].rgb), free(r->images[i].infotext);
    free(r->images);
    free((char *)r->gen.prompt);
    free((char *)r->gen.negative_prompt);
    memset(r, 0, sizeof *r);
}

int srv_jobs_start(const sdc_params *model, int queue_max, int preview_every, srv_jobs **out) {
    (void)model, (void)queue_max, (void)preview_every, *out = NULL;
    return -1;
}
void srv_jobs_stop(srv_jobs *q) { (void)q; }
void srv_jobs_free(srv_jobs *q) { (void)q; }
void srv_jobs_interrupt(srv_jobs *q) { (void)q; }
void srv_jobs_skip(srv_jobs *q) { (void)q; }
void srv_jobs_progress(srv_jobs *q, srv_progress *o) {
    (void)q;
    memset(o, 0, sizeof *o);
    snprintf(o->job_timestamp, sizeof o->job_timestamp, "0");
}
unsigned char *srv_jobs_preview(srv_jobs *q, int *w, int *h) {
    (void)q, *w = *h = 0;
    return NULL;
}
void srv_jobs_counts(srv_jobs *q, int *runs, int *jobs) { (void)q, *runs = *jobs = 0; }
void srv_jobs_model(srv_jobs *q, char *path, size_t path_n, char *name, size_t name_n, char *hash, size_t hash_n) {
    (void)q;
    snprintf(path, path_n, "weights/sdc-shapes.safetensors");
    snprintf(name, name_n, "sdc-shapes");
    snprintf(hash, hash_n, "0123456789");
}

/* ------------------------------------------------------------- the target */

static srv g_srv;
static struct srv_jobs g_jobs;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_srv.cfg = srv_config_default();
    g_srv.cfg.model.model_path = "weights/sdc-shapes.safetensors";
    g_srv.cfg.models_dir = "weights";
    g_srv.cfg.images_max = 8;
    g_srv.jobs = &g_jobs;
    return 0;
}

static const struct {
    const char *method, *url;
} ROUTES[] = {
    {"POST", "/sdapi/v1/txt2img"},          {"POST", "/sdapi/v1/options"},   {"POST", "/sdapi/v1/png-info"},
    {"POST", "/v1/images/generations"},     {"GET", "/sdapi/v1/progress"},   {"GET", "/sdapi/v1/sd-models"},
    {"GET", "/sdapi/v1/options"},           {"GET", "/v1/models"},           {"GET", "/"},
    {"POST", "/sdapi/v1/interrupt"},        {"PUT", "/sdapi/v1/txt2img"},    {"POST", "/sdapi/v1/img2img"},
    {"GET", "/sdapi/v1/../../etc/passwd"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const size_t r = data[0] % (sizeof ROUTES / sizeof *ROUTES);
    /* the body as http.c hands it over: NUL-terminated after its bytes */
    char *body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    srv_reply rp;
    sdapi_handle(&g_srv, ROUTES[r].method, ROUTES[r].url, body, size - 1, &rp);
    static const int ok[] = {200, 400, 404, 405, 413, 422, 500, 501, 503};
    int known = 0;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) known |= rp.status == ok[i];
    FUZZ_CHECK(known);
    FUZZ_CHECK(rp.body && rp.len > 0); /* (a body is len bytes, not a C string) */
    FUZZ_CHECK(rp.type != NULL);
    if (!strcmp(rp.type, "application/json")) {
        FUZZ_CHECK(memchr(rp.body, '\0', rp.len) == NULL);
        cJSON *j = cJSON_ParseWithLength(rp.body, rp.len);
        FUZZ_CHECK(j != NULL);
        if (rp.status == 200 && r == 0) { /* txt2img: the images asked for */
            cJSON *req = cJSON_Parse(body);
            const cJSON *bs = cJSON_GetObjectItemCaseSensitive(req, "batch_size"),
                        *ni = cJSON_GetObjectItemCaseSensitive(req, "n_iter");
            const int want = (cJSON_IsNumber(bs) ? bs->valueint : 1) * (cJSON_IsNumber(ni) ? ni->valueint : 1);
            FUZZ_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")) == want);
            cJSON_Delete(req);
        }
        cJSON_Delete(j);
    }
    free(rp.body);
    free(body);
    return 0;
}
