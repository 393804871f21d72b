/* sdapi_txt2img.c - POST /sdapi/v1/txt2img: A1111's
 * StableDiffusionTxt2ImgProcessingAPI in, TextToImageResponse out (images
 * as base64 PNGs with their infotext, the request echoed in `parameters`,
 * `info` a JSON string with the seeds and infotexts). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "cli/batch.h"
#include "common.h"
#include "image/image.h"
#include "server/server.h"

void sdapi_txt2img(srv *s, const cJSON *body, srv_reply *out);

/* the fields read, with A1111's defaults; *bad names the first bad one */
typedef struct t2i {
    const char *prompt, *negative, *sampler, *scheduler;
    long long seed;
    int steps, width, height, batch_size, n_iter;
    double cfg_scale, eta;
} t2i;

static bool is_int(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

/* a field's value, or NULL when absent or null (its default then) */
static const cJSON *field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool get_str(const cJSON *o, const char *k, const char **v, srv_reply *out) {
    const cJSON *j = field(o, k);
    if (!j) return true;
    if (!cJSON_IsString(j)) return srv_reply_field(out, k, "str type expected", "type_error.str"), false;
    *v = j->valuestring;
    return true;
}

static bool get_int(const cJSON *o, const char *k, long long lo, long long hi, long long *v, srv_reply *out) {
    const cJSON *j = field(o, k);
    if (!j) return true;
    if (!is_int(j, (double)lo, (double)hi)) {
        char msg[128];
        snprintf(msg, sizeof msg, "an integer from %lld to %lld expected", lo, hi);
        return srv_reply_field(out, k, msg, "value_error.number"), false;
    }
    *v = (long long)j->valuedouble;
    return true;
}

static bool get_num(const cJSON *o, const char *k, double lo, double hi, double *v, srv_reply *out) {
    const cJSON *j = field(o, k);
    if (!j) return true;
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi)) {
        char msg[128];
        snprintf(msg, sizeof msg, "a number from %g to %g expected", lo, hi);
        return srv_reply_field(out, k, msg, "value_error.number"), false;
    }
    *v = j->valuedouble;
    return true;
}

/* fields whose non-default values ask for what sdc does not do */
static bool unsupported(const cJSON *o, srv_reply *out) {
    static const char *const flags[] = {"enable_hr", "restore_faces", "tiling"};
    for (int i = 0; i < 3; i++) {
        const cJSON *j = field(o, flags[i]);
        if (j && !cJSON_IsBool(j)) return srv_reply_field(out, flags[i], "bool type expected", "type_error.bool"), true;
        if (j && cJSON_IsTrue(j))
            return srv_reply_field(out, flags[i], "not supported by sdc (false expected)", "value_error"), true;
    }
    const cJSON *st = field(o, "styles");
    if (st && (!cJSON_IsArray(st) || cJSON_GetArraySize(st) > 0))
        return srv_reply_field(out, "styles", "styles are not supported by sdc (an empty list expected)",
                               "value_error"), true;
    const cJSON *ss = field(o, "subseed_strength");
    if (ss && (!cJSON_IsNumber(ss) || ss->valuedouble != 0))
        return srv_reply_field(out, "subseed_strength", "variation seeds are not supported by sdc (0 expected)",
                               "value_error"), true;
    const cJSON *sn = field(o, "script_name");
    if (sn && (!cJSON_IsString(sn) || sn->valuestring[0]))
        return srv_reply_field(out, "script_name", "scripts are not supported by sdc", "value_error"), true;
    return false;
}

static bool parse(const srv *s, const cJSON *o, t2i *r, srv_reply *out) {
    *r = (t2i){"", "", NULL, NULL, -1, 50, 512, 512, 1, 1, 7.0, 0.0};
    long long steps = r->steps, w = r->width, h = r->height, bs = 1, ni = 1;
    if (!get_str(o, "prompt", &r->prompt, out) || !get_str(o, "negative_prompt", &r->negative, out) ||
        !get_str(o, "sampler_index", &r->sampler, out) || !get_str(o, "sampler_name", &r->sampler, out) ||
        !get_str(o, "scheduler", &r->scheduler, out) || !get_int(o, "seed", -1, 4294967295LL, &r->seed, out) ||
        !get_int(o, "steps", 1, 1000, &steps, out) || !get_int(o, "width", 8, 4096, &w, out) ||
        !get_int(o, "height", 8, 4096, &h, out) || !get_int(o, "batch_size", 1, 64, &bs, out) ||
        !get_int(o, "n_iter", 1, 1000, &ni, out) || !get_num(o, "cfg_scale", 0, 100, &r->cfg_scale, out) ||
        !get_num(o, "eta", 0, 1, &r->eta, out) || unsupported(o, out))
        return false;
    if (w % 8 || h % 8)
        return srv_reply_field(out, w % 8 ? "width" : "height", "a multiple of 8 expected", "value_error"), false;
    if (bs * ni > s->cfg.images_max) {
        char msg[128];
        snprintf(msg, sizeof msg, "batch_size x n_iter is %lld images, over this server's %d", bs * ni,
                 s->cfg.images_max);
        return srv_reply_field(out, "n_iter", msg, "value_error"), false;
    }
    r->steps = (int)steps, r->width = (int)w, r->height = (int)h, r->batch_size = (int)bs, r->n_iter = (int)ni;
    return true;
}

/* A1111's info JSON (processing.js) for the images of r */
static char *info_json(const t2i *q, const srv_render *r, const char *model, const char *hash,
                       unsigned long long seed) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", q->prompt);
    cJSON_AddStringToObject(o, "negative_prompt", q->negative);
    cJSON *ap = cJSON_AddArrayToObject(o, "all_prompts"), *an = cJSON_AddArrayToObject(o, "all_negative_prompts");
    cJSON *as = cJSON_AddArrayToObject(o, "all_seeds"), *asub = cJSON_AddArrayToObject(o, "all_subseeds");
    cJSON *it = cJSON_AddArrayToObject(o, "infotexts");
    for (int i = 0; i < r->n_images; i++) {
        cJSON_AddItemToArray(ap, cJSON_CreateString(q->prompt));
        cJSON_AddItemToArray(an, cJSON_CreateString(q->negative));
        cJSON_AddItemToArray(as, cJSON_CreateNumber((double)(seed + (unsigned long long)i)));
        cJSON_AddItemToArray(asub, cJSON_CreateNumber((double)(seed + (unsigned long long)i)));
        cJSON_AddItemToArray(it, cJSON_CreateString(r->images[i].infotext ? r->images[i].infotext : ""));
    }
    cJSON_AddNumberToObject(o, "seed", (double)seed);
    cJSON_AddNumberToObject(o, "subseed", (double)seed);
    cJSON_AddNumberToObject(o, "subseed_strength", 0);
    cJSON_AddNumberToObject(o, "width", q->width);
    cJSON_AddNumberToObject(o, "height", q->height);
    cJSON_AddStringToObject(o, "sampler_name", q->sampler);
    cJSON_AddNumberToObject(o, "cfg_scale", q->cfg_scale);
    cJSON_AddNumberToObject(o, "steps", q->steps);
    cJSON_AddNumberToObject(o, "batch_size", q->batch_size);
    cJSON_AddBoolToObject(o, "restore_faces", false);
    cJSON_AddNullToObject(o, "face_restoration_model");
    cJSON_AddStringToObject(o, "sd_model_name", model);
    if (hash[0]) cJSON_AddStringToObject(o, "sd_model_hash", hash);
    else cJSON_AddNullToObject(o, "sd_model_hash");
    cJSON_AddNullToObject(o, "sd_vae_name");
    cJSON_AddNullToObject(o, "sd_vae_hash");
    cJSON_AddNumberToObject(o, "seed_resize_from_w", -1);
    cJSON_AddNumberToObject(o, "seed_resize_from_h", -1);
    cJSON_AddNullToObject(o, "denoising_strength");
    cJSON_AddObjectToObject(o, "extra_generation_params");
    cJSON_AddNumberToObject(o, "index_of_first_image", 0);
    cJSON_AddArrayToObject(o, "styles");
    cJSON_AddStringToObject(o, "job_timestamp", "");
    cJSON_AddNumberToObject(o, "clip_skip", 1);
    cJSON_AddBoolToObject(o, "is_using_inpainting_conditioning", false);
    cJSON_AddStringToObject(o, "version", "sdc");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

void sdapi_txt2img(srv *s, const cJSON *body, srv_reply *out) {
    t2i q;
    if (!parse(s, body, &q, out)) return;
    if (!q.sampler) q.sampler = "Euler"; /* A1111's sampler_index default */
    const char *sampler = NULL;
    int karras = 0;
    if (sdc_batch_sampler(q.sampler, &sampler, &karras) != SDC_OK)
        return srv_reply_field(out, "sampler_name", sdc_last_error(), "value_error");
    if (q.scheduler && strcasecmp(q.scheduler, "automatic")) {
        if (strcasecmp(q.scheduler, "karras"))
            return srv_reply_field(out, "scheduler", "Automatic or Karras expected (sdc has no other schedule)",
                                   "value_error");
        karras = 1;
    }
    unsigned long long seed = (unsigned long long)q.seed;
    if (q.seed < 0) { /* A1111's random seed: 32 bits */
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)(sdc_now() * 1e6);
        seed = r;
    }
    srv_render r;
    memset(&r, 0, sizeof r);
    r.gen = sdc_gen_params_default();
    r.gen.prompt = strdup(q.prompt);
    r.gen.negative_prompt = strdup(q.negative);
    r.gen.width = q.width, r.gen.height = q.height, r.gen.steps = q.steps;
    r.gen.sampler = sampler;
    r.gen.karras = karras != 0;
    r.gen.cfg_scale = (float)q.cfg_scale;
    r.gen.eta = sampler && !strcmp(sampler, "ddim") ? (float)q.eta : 0.0f;
    r.gen.seed = seed;
    r.batch_size = q.batch_size, r.n_iter = q.n_iter;
    if (!r.gen.prompt || !r.gen.negative_prompt) {
        srv_render_free(&r);
        return srv_reply_detail(out, 500, "out of memory");
    }
    if (sdc_check_gen_params(NULL, &r.gen) != SDC_OK) {
        srv_render_free(&r);
        return srv_reply_field(out, NULL, sdc_last_error(), "value_error");
    }
    char err[512] = "";
    const int st = srv_jobs_render(s->jobs, &r, err, sizeof err);
    if (st) {
        srv_render_free(&r);
        if (st == 422) return srv_reply_field(out, NULL, err, "value_error");
        srv_reply_detail(out, st, err);
        if (st == 503) out->retry_after = 5;
        return;
    }
    char path[4096], name[256], hash[11];
    srv_jobs_model(s->jobs, path, sizeof path, name, sizeof name, hash, sizeof hash);
    cJSON *o = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(o, "images");
    bool ok = true;
    for (int i = 0; i < r.n_images && ok; i++) {
        char *b64 = srv_image_b64(&r.images[i]);
        ok = b64 != NULL;
        if (ok) cJSON_AddItemToArray(imgs, cJSON_CreateString(b64));
        free(b64);
    }
    cJSON_AddItemToObject(o, "parameters", cJSON_Duplicate(body, true)); /* the request, echoed */
    char *info = info_json(&q, &r, name, hash, seed);
    cJSON_AddStringToObject(o, "info", info ? info : "{}");
    free(info);
    srv_render_free(&r);
    if (!ok) {
        cJSON_Delete(o);
        return srv_reply_detail(out, 500, "out of memory encoding the images");
    }
    srv_reply_json(out, 200, o);
}
