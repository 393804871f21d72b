/* sdapi.c - AUTOMATIC1111's API (/sdapi/v1) as sdc serve answers it, in the
 * request and response shapes of A1111's modules/api/models.py. Requests
 * are parsed strictly: a field of the wrong type, out of range, or asking
 * for what sdc does not do (hires fix, face restoration, styles, subseeds)
 * is a 422 naming the field; fields sdc does not know are ignored, as A1111
 * ignores them, and fields at their defaults are accepted whatever they
 * are. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli/batch.h"
#include "common.h"
#include "image/image.h"
#include "lora_apply.h"
#include "server/server.h"

/* ---------------------------------------------------------------- models */

/* the models one can select: the start model, and every .safetensors file
 * directly in --models-dir (nothing else is ever opened by name) */
typedef struct model_entry {
    char path[4096], file[256], name[256]; /* file: "x.safetensors"; name: "x" */
} model_entry;

static int list_models(const srv *s, model_entry **out) {
    int n = 0, cap = 8;
    model_entry *m = calloc((size_t)cap, sizeof *m);
    if (!m) return -1;
    const char *start = s->cfg.model.model_path;
    const char *base = strrchr(start, '/') ? strrchr(start, '/') + 1 : start;
    snprintf(m[0].path, sizeof m[0].path, "%.4095s", start);
    snprintf(m[0].file, sizeof m[0].file, "%.255s", base);
    n = 1;
    DIR *d = s->cfg.models_dir ? opendir(s->cfg.models_dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        const size_t len = strlen(e->d_name);
        if (len <= 12 || len >= sizeof m->file || strcmp(e->d_name + len - 12, ".safetensors")) continue;
        model_entry t;
        if (snprintf(t.path, sizeof t.path, "%s/%s", s->cfg.models_dir, e->d_name) >= (int)sizeof t.path) continue;
        struct stat sb;
        if (stat(t.path, &sb) || !S_ISREG(sb.st_mode) || !strcmp(t.path, start)) continue;
        snprintf(t.file, sizeof t.file, "%.255s", e->d_name);
        if (n == cap) {
            model_entry *g = realloc(m, (size_t)(cap *= 2) * sizeof *m);
            if (!g) break;
            m = g;
        }
        m[n++] = t;
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++) {
        snprintf(m[i].name, sizeof m[i].name, "%.255s", m[i].file);
        const size_t len = strlen(m[i].name);
        if (len > 12 && !strcmp(m[i].name + len - 12, ".safetensors")) m[i].name[len - 12] = '\0';
    }
    *out = m;
    return n;
}

/* A1111's title: "file [hash]" when the hash is known */
static void title_of(const model_entry *m, const char *hash, char *out, size_t n) {
    if (hash && *hash) snprintf(out, n, "%.255s [%.10s]", m->file, hash);
    else snprintf(out, n, "%.255s", m->file);
}

static void current_model(srv *s, char *path, char *name, char *hash, char *title) {
    srv_jobs_model(s->jobs, path, 4096, name, 256, hash, 11);
    model_entry m;
    snprintf(m.file, sizeof m.file, "%.255s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    title_of(&m, hash, title, 300);
}

static void get_models(srv *s, srv_reply *out) {
    model_entry *m = NULL;
    const int n = list_models(s, &m);
    if (n < 0) return srv_reply_detail(out, 500, "out of memory");
    char path[4096], name[256], hash[11], title[300];
    current_model(s, path, name, hash, title);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const bool loaded = !strcmp(m[i].path, path);
        char t[300];
        title_of(&m[i], loaded ? hash : NULL, t, sizeof t);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "title", t);
        cJSON_AddStringToObject(e, "model_name", m[i].name);
        if (loaded && hash[0]) cJSON_AddStringToObject(e, "hash", hash);
        else cJSON_AddNullToObject(e, "hash");
        cJSON_AddNullToObject(e, "sha256");
        cJSON_AddStringToObject(e, "filename", m[i].file);
        cJSON_AddNullToObject(e, "config");
        cJSON_AddItemToArray(arr, e);
    }
    free(m);
    srv_reply_json(out, 200, arr);
}

static void get_options(srv *s, srv_reply *out) {
    char path[4096], name[256], hash[11], title[300];
    current_model(s, path, name, hash, title);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sd_model_checkpoint", title);
    if (hash[0]) cJSON_AddStringToObject(o, "sd_checkpoint_hash", hash);
    else cJSON_AddNullToObject(o, "sd_checkpoint_hash");
    cJSON_AddStringToObject(o, "sd_vae", "Automatic");
    cJSON_AddNumberToObject(o, "CLIP_stop_at_last_layers", s->cfg.model.clip_skip > 0 ? s->cfg.model.clip_skip : 1);
    cJSON_AddStringToObject(o, "samples_format", "png");
    cJSON_AddBoolToObject(o, "enable_pnginfo", true);
    srv_reply_json(out, 200, o);
}

/* POST options: sd_model_checkpoint (a title, file or model name of a listed
 * model) switches the model; other options are accepted and ignored */
static void set_options(srv *s, const cJSON *body, srv_reply *out) {
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(body, "sd_model_checkpoint");
    if (!ck || cJSON_IsNull(ck)) return srv_reply_json(out, 200, cJSON_CreateNull());
    if (!cJSON_IsString(ck)) return srv_reply_field(out, "sd_model_checkpoint", "str type expected", "type_error.str");
    model_entry *m = NULL;
    const int n = list_models(s, &m);
    if (n < 0) return srv_reply_detail(out, 500, "out of memory");
    char want[300];
    snprintf(want, sizeof want, "%.299s", ck->valuestring);
    char *br = strstr(want, " ["); /* a title: "file [hash]" */
    if (br) *br = '\0';
    int found = -1;
    for (int i = 0; i < n && found < 0; i++)
        if (!strcmp(want, m[i].file) || !strcmp(want, m[i].name)) found = i;
    if (found < 0) {
        free(m);
        char msg[400];
        snprintf(msg, sizeof msg, "model '%s' not found (GET /sdapi/v1/sd-models lists them)", ck->valuestring);
        return srv_reply_field(out, "sd_model_checkpoint", msg, "value_error");
    }
    char err[512] = "";
    const int st = srv_jobs_switch(s->jobs, m[found].path, err, sizeof err);
    free(m);
    if (st) return srv_reply_detail(out, st, err);
    srv_reply_json(out, 200, cJSON_CreateNull());
}

/* ------------------------------------------------------------- progress */

/* the latest live preview as A1111 sends it: a PNG in base64; NULL if none */
static char *preview_b64(srv *s) {
    int w, h;
    unsigned char *rgb = srv_jobs_preview(s->jobs, &w, &h), *png = NULL;
    size_t n = 0;
    char *b64 = NULL;
    if (rgb && sdc_png_encode("preview", rgb, w, h, NULL, &png, &n) == SDC_OK) b64 = srv_b64_encode(png, n);
    free(rgb), free(png);
    return b64;
}

static void get_progress(srv *s, srv_reply *out) {
    srv_progress p;
    srv_jobs_progress(s->jobs, &p);
    cJSON *o = cJSON_CreateObject(), *st = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "progress", p.progress);
    cJSON_AddNumberToObject(o, "eta_relative", p.eta_relative);
    cJSON_AddBoolToObject(st, "skipped", p.skipped);
    cJSON_AddBoolToObject(st, "interrupted", p.interrupted);
    cJSON_AddBoolToObject(st, "stopping_generation", false);
    cJSON_AddStringToObject(st, "job", p.busy ? "txt2img" : "");
    cJSON_AddNumberToObject(st, "job_count", p.job_count);
    cJSON_AddStringToObject(st, "job_timestamp", p.job_timestamp);
    cJSON_AddNumberToObject(st, "job_no", p.job_no);
    cJSON_AddNumberToObject(st, "sampling_step", p.sampling_step);
    cJSON_AddNumberToObject(st, "sampling_steps", p.sampling_steps);
    cJSON_AddItemToObject(o, "state", st);
    char *img = preview_b64(s); /* with live previews on, while a render runs */
    if (img) cJSON_AddStringToObject(o, "current_image", img);
    else cJSON_AddNullToObject(o, "current_image");
    free(img);
    cJSON_AddStringToObject(o, "textinfo", "");
    srv_reply_json(out, 200, o);
}

/* ---------------------------------------------------------------- lists */

static void get_samplers(srv_reply *out) {
    static const char *const names[] = {"DDIM", "DDPM", "Euler", "Euler a", "DPM++ 2M"};
    static const char *const alias[] = {"ddim", "ddpm", "k_euler", "k_euler_a", "k_dpmpp_2m"};
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < 5; i++) {
        cJSON *e = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(e, "aliases");
        cJSON_AddStringToObject(e, "name", names[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(alias[i]));
        cJSON_AddObjectToObject(e, "options");
        cJSON_AddItemToArray(arr, e);
    }
    srv_reply_json(out, 200, arr);
}

static void get_schedulers(srv_reply *out) {
    static const char *const names[] = {"automatic", "karras"}, *const labels[] = {"Automatic", "Karras"};
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < 2; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", names[i]);
        cJSON_AddStringToObject(e, "label", labels[i]);
        cJSON_AddNullToObject(e, "aliases");
        cJSON_AddNumberToObject(e, "default_rho", i ? 7.0 : -1.0);
        cJSON_AddBoolToObject(e, "need_inner_model", false);
        cJSON_AddItemToArray(arr, e);
    }
    srv_reply_json(out, 200, arr);
}

static void get_upscalers(srv_reply *out) {
    cJSON *arr = cJSON_CreateArray(), *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", "None");
    cJSON_AddNullToObject(e, "model_name");
    cJSON_AddNullToObject(e, "model_path");
    cJSON_AddNullToObject(e, "model_url");
    cJSON_AddNumberToObject(e, "scale", 4);
    cJSON_AddItemToArray(arr, e);
    srv_reply_json(out, 200, arr);
}

/* A1111's list of LoRAs: every .safetensors file in the LoRA folder, by
 * its stem (the NAME of <lora:NAME:W>); metadata is not read here. */
static void get_loras(srv *s, srv_reply *out) {
    char *dir = s->cfg.model.lora_dir ? strdup(s->cfg.model.lora_dir) : sdc_lora_default_dir(s->cfg.model.model_path);
    char **paths = NULL;
    const int n = dir ? sdc_lora_list(dir, &paths) : 0;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/');
        base = base ? base + 1 : paths[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(base) - 12), base); /* ".safetensors" */
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "alias", name);
        cJSON_AddStringToObject(e, "path", paths[i]);
        cJSON_AddObjectToObject(e, "metadata");
        cJSON_AddItemToArray(arr, e);
        free(paths[i]);
    }
    free(paths);
    free(dir);
    srv_reply_json(out, 200, arr);
}

static void get_embeddings(srv *s, srv_reply *out) { srv_reply_json(out, 200, srv_jobs_embeddings(s->jobs)); }

/* ------------------------------------------------------------- png-info */

static void png_info(const cJSON *body, srv_reply *out) {
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(body, "image");
    if (!cJSON_IsString(im)) return srv_reply_field(out, "image", "str type expected", "type_error.str");
    size_t n = 0;
    unsigned char *png = srv_b64_decode(im->valuestring, &n);
    if (!png) return srv_reply_field(out, "image", "not base64 (RFC 4648, padded)", "value_error");
    char *text = NULL;
    sdc_status st = sdc_png_parameters_mem("image", png, n, &text);
    free(png);
    if (st != SDC_OK) return srv_reply_field(out, "image", sdc_last_error(), "value_error");
    cJSON *o = cJSON_CreateObject(), *items = cJSON_AddObjectToObject(o, "items");
    cJSON_AddStringToObject(o, "info", text ? text : "");
    if (text) cJSON_AddStringToObject(items, "parameters", text);
    cJSON_AddObjectToObject(o, "parameters");
    free(text);
    srv_reply_json(out, 200, o);
}

/* ---------------------------------------------------------------- route */

void sdapi_txt2img(srv *s, const cJSON *body, srv_reply *out);
void sdapi_img2img(srv *s, const cJSON *body, srv_reply *out);

void sdapi_handle(srv *s, const char *method, const char *url, const char *body, size_t n, srv_reply *out) {
    memset(out, 0, sizeof *out);
    const bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (get && (!strcmp(url, "/") || !strcmp(url, "/index.html"))) return web_page(out);
    if (!strncmp(url, "/v1/", 4)) return openai_handle(s, method, url + 4, body, n, out);
    static const char pre[] = "/sdapi/v1/";
    if (strncmp(url, pre, sizeof pre - 1)) return srv_reply_detail(out, 404, "Not Found");
    const char *r = url + sizeof pre - 1;
    if (get) {
        if (!strcmp(r, "progress")) return get_progress(s, out);
        if (!strcmp(r, "sd-models")) return get_models(s, out);
        if (!strcmp(r, "options")) return get_options(s, out);
        if (!strcmp(r, "samplers")) return get_samplers(out);
        if (!strcmp(r, "schedulers")) return get_schedulers(out);
        if (!strcmp(r, "upscalers")) return get_upscalers(out);
        if (!strcmp(r, "embeddings")) return get_embeddings(s, out);
        if (!strcmp(r, "loras")) return get_loras(s, out);
        if (!strcmp(r, "latent-upscale-modes") || !strcmp(r, "sd-vae") ||
            !strcmp(r, "hypernetworks") || !strcmp(r, "face-restorers") || !strcmp(r, "prompt-styles") ||
            !strcmp(r, "realesrgan-models") || !strcmp(r, "scripts"))
            return srv_reply_json(out, 200, cJSON_CreateArray());
    }
    if (post) {
        if (!strcmp(r, "interrupt")) return srv_jobs_interrupt(s->jobs), srv_reply_json(out, 200, cJSON_CreateObject());
        if (!strcmp(r, "skip")) return srv_jobs_skip(s->jobs), srv_reply_json(out, 200, cJSON_CreateObject());
        if (!strcmp(r, "refresh-checkpoints")) return srv_reply_json(out, 200, cJSON_CreateNull());
        if (!strcmp(r, "txt2img") || !strcmp(r, "img2img") || !strcmp(r, "options") || !strcmp(r, "png-info")) {
            /* the body is NUL-terminated by http.c; one inside it is refused */
            if (memchr(body, '\0', n)) return srv_reply_field(out, NULL, "a NUL byte in the body", "value_error");
            const char *end = NULL;
            cJSON *j = cJSON_ParseWithLengthOpts(body, n + 1, &end, true);
            if (!j || !cJSON_IsObject(j)) {
                char msg[128];
                snprintf(msg, sizeof msg, "a JSON object expected (invalid JSON near byte %zu)",
                         end && end >= body ? (size_t)(end - body) : (size_t)0);
                cJSON_Delete(j);
                return srv_reply_field(out, NULL, msg, "value_error.jsondecode");
            }
            if (!strcmp(r, "txt2img")) sdapi_txt2img(s, j, out);
            else if (!strcmp(r, "img2img")) sdapi_img2img(s, j, out);
            else if (!strcmp(r, "options")) set_options(s, j, out);
            else png_info(j, out);
            cJSON_Delete(j);
            return;
        }
    }
    return srv_reply_detail(out, get || post ? 404 : 405, get || post ? "Not Found" : "Method Not Allowed");
}
