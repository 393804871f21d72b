/* openai.c - OpenAI's images API as sdc serve answers it: POST
 * /v1/images/generations (prompt, n, size, response_format b64_json) and
 * GET /v1/models, in OpenAI's shapes, errors as {"error": {"message",
 * "type", "param", "code"}}. Images render with sdc's defaults (the
 * model's own size unless `size` says otherwise, a random seed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "image/image.h"
#include "server/server.h"

static void oa_error(srv_reply *out, int status, const char *param, const char *msg) {
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    srv_reply_json(out, status, j);
}

static void models(srv *s, srv_reply *out) {
    char path[4096], name[256], hash[11];
    srv_jobs_model(s->jobs, path, sizeof path, name, sizeof name, hash, sizeof hash);
    cJSON *j = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(j, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON_AddStringToObject(m, "id", name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "sdc");
    cJSON_AddItemToArray(d, m);
    srv_reply_json(out, 200, j);
}

static void generations(srv *s, const cJSON *b, srv_reply *out) {
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(b, "prompt");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(b, "n");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(b, "size");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(b, "response_format");
    if (!cJSON_IsString(prompt) || !prompt->valuestring[0])
        return oa_error(out, 400, "prompt", "prompt: a non-empty string is required");
    int count = 1, w = 0, h = 0;
    if (n && !cJSON_IsNull(n)) {
        /* (the range first: a huge double converted to int is undefined) */
        if (!cJSON_IsNumber(n) || !(n->valuedouble >= 1 && n->valuedouble <= 10) ||
            n->valuedouble != floor(n->valuedouble))
            return oa_error(out, 400, "n", "n: an integer from 1 to 10 expected");
        count = (int)n->valuedouble;
    }
    if (size && !cJSON_IsNull(size)) {
        char tail = 0;
        if (!cJSON_IsString(size) || sscanf(size->valuestring, "%dx%d%c", &w, &h, &tail) != 2 || w < 8 || h < 8 ||
            w > 4096 || h > 4096 || w % 8 || h % 8)
            return oa_error(out, 400, "size", "size: \"WIDTHxHEIGHT\" expected, multiples of 8 up to 4096");
    }
    if (fmt && !cJSON_IsNull(fmt) && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "b64_json")))
        return oa_error(out, 400, "response_format", "response_format: sdc serve answers b64_json only (no URLs)");
    srv_render r;
    memset(&r, 0, sizeof r);
    r.gen = sdc_gen_params_default();
    r.gen.prompt = strdup(prompt->valuestring);
    r.gen.negative_prompt = strdup("");
    r.gen.width = w, r.gen.height = h;
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) seed = (uint32_t)(sdc_now() * 1e6);
    r.gen.seed = seed;
    r.batch_size = 1, r.n_iter = count;
    if (!r.gen.prompt || !r.gen.negative_prompt) {
        srv_render_free(&r);
        return oa_error(out, 500, NULL, "out of memory");
    }
    char err[512] = "";
    const int st = srv_jobs_render(s->jobs, &r, err, sizeof err);
    if (st) {
        srv_render_free(&r);
        oa_error(out, st == 422 ? 400 : st, NULL, err);
        if (st == 503) out->retry_after = 5;
        return;
    }
    cJSON *j = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddNumberToObject(j, "created", (double)time(NULL));
    bool ok = true;
    for (int i = 0; i < r.n_images && ok; i++) {
        char *b64 = srv_image_b64(&r.images[i]);
        ok = b64 != NULL;
        if (!ok) break;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "b64_json", b64);
        cJSON_AddStringToObject(e, "revised_prompt", r.gen.prompt);
        cJSON_AddItemToArray(data, e);
        free(b64);
    }
    cJSON_AddItemToObject(j, "data", data);
    srv_render_free(&r);
    if (!ok) {
        cJSON_Delete(j);
        return oa_error(out, 500, NULL, "out of memory encoding the images");
    }
    srv_reply_json(out, 200, j);
}

void openai_handle(srv *s, const char *method, const char *route, const char *body, size_t n, srv_reply *out) {
    if (!strcmp(route, "models") && !strcmp(method, "GET")) return models(s, out);
    if (!strcmp(route, "images/generations") && !strcmp(method, "POST")) {
        if (memchr(body, '\0', n)) return oa_error(out, 400, NULL, "a NUL byte in the body");
        cJSON *j = cJSON_ParseWithLengthOpts(body, n + 1, NULL, true);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return oa_error(out, 400, NULL, "the body is not a JSON object");
        }
        generations(s, j, out);
        cJSON_Delete(j);
        return;
    }
    oa_error(out, 404, NULL, "not found");
}
