/* sdapi_txt2img.c - POST /sdapi/v1/txt2img and /img2img: A1111's
 * StableDiffusionTxt2ImgProcessingAPI / StableDiffusionImg2ImgProcessingAPI
 * in, TextToImageResponse / ImageToImageResponse out (images as base64 PNGs
 * with their infotext, the request echoed in `parameters`, `info` a JSON
 * string with the seeds and infotexts). img2img's images come as base64
 * PNG or JPEG (a "data:image/...;base64," prefix allowed, as A1111's
 * decode_base64_to_image takes it); its defaults are A1111's API's:
 * denoising_strength 0.75, mask_blur 4, inpainting_fill 0 (fill),
 * inpaint_full_res true ("only masked"), inpaint_full_res_padding 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "cli/batch.h"
#include "common.h"
#include "image/image.h"
#include "image/image_ops.h"
#include "server/server.h"

void sdapi_txt2img(srv *s, const cJSON *body, srv_reply *out);
void sdapi_img2img(srv *s, const cJSON *body, srv_reply *out);

/* the fields read, with A1111's defaults; *bad names the first bad one */
typedef struct t2i {
    const char *prompt, *negative, *sampler, *scheduler;
    long long seed;
    int steps, width, height, batch_size, n_iter;
    double cfg_scale, eta;
    /* img2img */
    bool img2img, full_res, invert;
    double strength;
    int mask_blur, fill, padding, resize_mode;
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

static bool get_bool(const cJSON *o, const char *k, bool *v, srv_reply *out) {
    const cJSON *j = field(o, k);
    if (!j) return true;
    if (!cJSON_IsBool(j)) return srv_reply_field(out, k, "bool type expected", "type_error.bool"), false;
    *v = cJSON_IsTrue(j);
    return true;
}

/* img2img's own fields, A1111's API defaults */
static bool parse_img2img(const cJSON *o, t2i *r, srv_reply *out) {
    long long blur = 4, fill = 0, pad = 0, invert = 0, mode = 0;
    r->strength = 0.75, r->full_res = true;
    if (!get_num(o, "denoising_strength", 0, 1, &r->strength, out) ||
        !get_int(o, "mask_blur", 0, 64, &blur, out) || !get_int(o, "inpainting_fill", 0, 3, &fill, out) ||
        !get_bool(o, "inpaint_full_res", &r->full_res, out) ||
        !get_int(o, "inpaint_full_res_padding", 0, 1024, &pad, out) ||
        !get_int(o, "inpainting_mask_invert", 0, 1, &invert, out) || !get_int(o, "resize_mode", 0, 3, &mode, out))
        return false;
    if (!(r->strength > 0))
        return srv_reply_field(out, "denoising_strength", "more than 0 expected (0 would run no step)",
                               "value_error"), false;
    if (mode == 3)
        return srv_reply_field(out, "resize_mode", "latent upscaling (3) is not in sdc: 0, 1 or 2 expected",
                               "value_error"), false;
    r->mask_blur = (int)blur, r->fill = (int)fill, r->padding = (int)pad, r->invert = invert != 0;
    r->resize_mode = (int)mode;
    return true;
}

static bool parse(const srv *s, const cJSON *o, t2i *r, srv_reply *out) {
    const bool img2img = r->img2img;
    *r = (t2i){"", "", NULL, NULL, -1, 50, 512, 512, 1, 1, 7.0, 0.0, img2img, false, false, 0, 0, 0, 0, 0};
    if (img2img && !parse_img2img(o, r, out)) return false;
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
    if (q->img2img) cJSON_AddNumberToObject(o, "denoising_strength", q->strength);
    else cJSON_AddNullToObject(o, "denoising_strength");
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

/* A base64 image of field k (PNG or JPEG) decoded: RGB, or the mask's one
 * channel (A1111's create_binary_mask rules) when mask; false with a 422. */
static bool b64_image(const char *k, const char *text, bool mask, unsigned char **px, int *w, int *h,
                      srv_reply *out) {
    if (!strncmp(text, "data:image/", 11)) { /* A1111: split(";")[1].split(",")[1] */
        const char *comma = strchr(text, ',');
        if (!comma) return srv_reply_field(out, k, "a data URL without a comma", "value_error"), false;
        text = comma + 1;
    }
    size_t n = 0;
    unsigned char *bytes = srv_b64_decode(text, &n);
    if (!bytes) return srv_reply_field(out, k, "invalid base64", "value_error"), false;
    sdc_status st = mask ? sdc_mask_load_mem(k, bytes, n, px, w, h) : sdc_image_load_mem(k, bytes, n, px, w, h);
    free(bytes);
    if (st != SDC_OK) return srv_reply_field(out, k, sdc_last_error(), "value_error"), false;
    return true;
}

static void generate(srv *s, const cJSON *body, srv_reply *out, bool img2img) {
    t2i q;
    q.img2img = img2img;
    if (!parse(s, body, &q, out)) return;
    unsigned char *init = NULL, *mask = NULL;
    int iw = 0, ih = 0, mw = 0, mh = 0;
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
    if (img2img) {
        const cJSON *ii = field(body, "init_images"), *m = field(body, "mask");
        if (!ii || !cJSON_IsArray(ii) || cJSON_GetArraySize(ii) != 1 || !cJSON_IsString(cJSON_GetArrayItem(ii, 0)))
            return srv_reply_field(out, "init_images", "a list of one base64 image expected", "value_error");
        if (m && !cJSON_IsString(m)) return srv_reply_field(out, "mask", "str type expected", "type_error.str");
        if (!b64_image("init_images", cJSON_GetArrayItem(ii, 0)->valuestring, false, &init, &iw, &ih, out)) return;
        if (m && !b64_image("mask", m->valuestring, true, &mask, &mw, &mh, out)) {
            free(init);
            return;
        }
        if (mask && q.invert)
            for (size_t i = 0; i < (size_t)mw * mh; i++) mask[i] = (unsigned char)(255 - mask[i]);
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
    if (img2img) { /* the render owns the pixels from here */
        r.gen.init_rgb = init, r.gen.init_width = iw, r.gen.init_height = ih;
        r.gen.mask = mask, r.gen.mask_width = mw, r.gen.mask_height = mh;
        r.gen.strength = q.strength;
        r.gen.resize_mode = q.resize_mode;
        r.gen.mask_blur = q.mask_blur;
        r.gen.inpaint_fill = q.fill;
        r.gen.inpaint_full_res = q.full_res;
        r.gen.inpaint_full_res_padding = q.padding;
    }
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

void sdapi_txt2img(srv *s, const cJSON *body, srv_reply *out) { generate(s, body, out, false); }
void sdapi_img2img(srv *s, const cJSON *body, srv_reply *out) { generate(s, body, out, true); }
