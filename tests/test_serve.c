/* test_serve.c - sdc serve driven in-process over loopback HTTP (a plain
 * socket client below), on the tiny test model and the CPU backend: the
 * API's shapes against A1111's, the images against the library's own,
 * progress and interrupt, model switching, hostile requests answered with
 * their status while the server goes on, and a load of concurrent clients. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "image/image.h"
#include "image/image_ops.h"
#include "server/server.h"
#include "st_write.h"
#include "testutil.h"

/* ------------------------------------------------------------ a client */

typedef struct resp {
    int status;
    char *head, *body; /* head: the status line and headers */
    size_t n;
} resp;

static void resp_free(resp *r) {
    free(r->head), free(r->body);
    memset(r, 0, sizeof *r);
}

/* one request on a new connection; auth "user:pass" or NULL */
static resp http(int port, const char *method, const char *path, const char *auth, const char *body, size_t n) {
    resp r = {0};
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to port %d", port);
    char hdr[1024], b64auth[256] = "";
    if (auth) {
        char *e = srv_b64_encode((const unsigned char *)auth, strlen(auth));
        snprintf(b64auth, sizeof b64auth, "Authorization: Basic %s\r\n", e);
        free(e);
    }
    const int hl = snprintf(hdr, sizeof hdr,
                            "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%sContent-Type: "
                            "application/json\r\nContent-Length: %zu\r\n\r\n",
                            method, path, b64auth, n);
    cr_assert_eq(write(fd, hdr, (size_t)hl), hl);
    for (size_t off = 0; off < n;) {
        const ssize_t w = write(fd, body + off, n - off);
        if (w <= 0) break; /* (the server may close early on a body it refuses) */
        off += (size_t)w;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (ssize_t k; (k = read(fd, buf + len, cap - len - 1)) > 0;) {
        len += (size_t)k;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(sep, "no HTTP response (%zu bytes)", len);
    *sep = '\0';
    r.head = strdup(buf);
    r.n = len - (size_t)(sep + 4 - buf);
    r.body = malloc(r.n + 1);
    memcpy(r.body, sep + 4, r.n + 1);
    cr_assert_eq(sscanf(buf, "HTTP/1.%*d %d", &r.status), 1, "status line: %.40s", buf);
    free(buf);
    return r;
}

static resp post(int port, const char *path, const char *json) {
    return http(port, "POST", path, NULL, json, strlen(json));
}

static cJSON *json_of(const resp *r) {
    cJSON *j = cJSON_Parse(r->body);
    cr_assert_not_null(j, "not JSON: %.200s", r->body);
    return j;
}

/* ------------------------------------------------------------ a server */

static srv *start(const char *models_dir, const char *auth, int queue_max, size_t body_max) {
    srv_config c = srv_config_default();
    c.model.model_path = FIXTURES "/tiny_sd1.safetensors";
    c.model.backend = SDC_BACKEND_CPU;
    c.models_dir = models_dir;
    c.auth = auth;
    c.port = 0;
    if (queue_max) c.queue_max = queue_max;
    if (body_max) c.body_max = body_max;
    srv *s = NULL;
    cr_assert_eq(srv_start(&c, &s), 0, "%s", sdc_last_error());
    return s;
}

static const char *T2I = "{\"prompt\": \"a red circle\", \"negative_prompt\": \"blurry\", \"seed\": 42, "
                         "\"steps\": 3, \"width\": 32, \"height\": 32, \"cfg_scale\": 6.5, "
                         "\"sampler_name\": \"Euler a\", \"batch_size\": 2, \"n_iter\": 2, "
                         "\"restore_faces\": false, \"styles\": [], \"subseed_strength\": 0, "
                         "\"some_future_field\": {\"x\": 1}}";

/* txt2img: 4 images, seeds 42..45, each PNG carrying its infotext, the
 * pixels the library renders for the same settings; parameters echo the
 * request; info has A1111's keys. */
Test(serve, txt2img_shapes_and_pixels, .timeout = 300) {
    srv *s = start(NULL, NULL, 0, 0);
    const int port = srv_port(s);
    resp r = post(port, "/sdapi/v1/txt2img", T2I);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.head, "application/json"), "%s", r.head);
    cJSON *j = json_of(&r), *imgs = cJSON_GetObjectItem(j, "images"), *par = cJSON_GetObjectItem(j, "parameters");
    cr_assert_eq(cJSON_GetArraySize(imgs), 4);
    cr_assert_str_eq(cJSON_GetObjectItem(par, "prompt")->valuestring, "a red circle");
    cr_assert_not_null(cJSON_GetObjectItem(par, "some_future_field"), "the request is echoed whole");
    cJSON *info = cJSON_Parse(cJSON_GetObjectItem(j, "info")->valuestring);
    cr_assert_not_null(info, "info is a JSON string");
    static const char *const keys[] = {"prompt", "all_prompts", "negative_prompt", "seed", "all_seeds", "subseed",
                                       "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
                                       "sd_model_name", "infotexts", "index_of_first_image", "job_timestamp"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        cr_assert_not_null(cJSON_GetObjectItem(info, keys[k]), "info has no \"%s\"", keys[k]);
    cr_assert_eq(cJSON_GetObjectItem(info, "seed")->valuedouble, 42);
    cJSON *seeds = cJSON_GetObjectItem(info, "all_seeds"), *texts = cJSON_GetObjectItem(info, "infotexts");
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(cJSON_GetArrayItem(seeds, i)->valuedouble, 42 + i);
        size_t n = 0;
        unsigned char *png = srv_b64_decode(cJSON_GetArrayItem(imgs, i)->valuestring, &n);
        cr_assert_not_null(png, "image %d is not base64", i);
        char *text = NULL;
        cr_assert_eq(sdc_png_parameters_mem("image", png, n, &text), SDC_OK, "%s", sdc_last_error());
        cr_assert_str_eq(text, cJSON_GetArrayItem(texts, i)->valuestring);
        cr_assert(strstr(text, "Sampler: Euler a, CFG scale: 6.5"), "%s", text);
        /* the library, same settings */
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = "a red circle", g.negative_prompt = "blurry", g.seed = 42 + (unsigned)i;
        g.steps = 3, g.width = g.height = 32, g.cfg_scale = 6.5f, g.sampler = "euler_a";
        sdc_image want;
        cr_assert_eq(sdc_txt2img(ctx, &g, &want), SDC_OK, "%s", sdc_last_error());
        unsigned char *wpng = NULL;
        size_t wn = 0;
        cr_assert_eq(sdc_png_encode("want", want.rgb, 32, 32, want.infotext, &wpng, &wn), SDC_OK);
        /* batch_size 2 goes through the U-Net as one batch: the library's
         * batch tolerance (pixels within 1); here the bytes match or the
         * pixels are that close */
        if (wn != n || memcmp(wpng, png, n)) {
            uint8_t *rgb = NULL;
            int w = 0, h = 0;
            char *p = st_path("/tmp", "sdc-serve-test.png");
            FILE *f = fopen(p, "wb");
            fwrite(png, 1, n, f), fclose(f);
            cr_assert_eq(sdc_image_read_rgb(p, &rgb, &w, &h), SDC_OK, "%s", sdc_last_error());
            unlink(p), free(p);
            for (int k = 0; k < 32 * 32 * 3; k++)
                cr_assert(abs((int)rgb[k] - (int)want.rgb[k]) <= 1, "image %d differs from the library's", i);
            free(rgb);
        }
        free(wpng), free(png), free(text);
        sdc_image_free(&want);
    }
    sdc_free(ctx);
    cJSON_Delete(info), cJSON_Delete(j);
    resp_free(&r);
    srv_stop(s);
}

/* the lists and options A1111's clients read on connecting */
Test(serve, lists_and_options, .timeout = 120) {
    srv *s = start(NULL, NULL, 0, 0);
    const int port = srv_port(s);
    static const char *const paths[] = {"samplers", "schedulers", "upscalers", "sd-models", "sd-vae", "loras",
                                        "latent-upscale-modes", "prompt-styles"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char p[64];
        snprintf(p, sizeof p, "/sdapi/v1/%s", paths[i]);
        resp r = http(port, "GET", p, NULL, "", 0);
        cr_assert_eq(r.status, 200, "%s: %d", p, r.status);
        cJSON *j = json_of(&r);
        cr_assert(cJSON_IsArray(j), "%s: a list expected", p);
        cJSON_Delete(j);
        resp_free(&r);
    }
    resp r = http(port, "GET", "/sdapi/v1/options", NULL, "", 0);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "sd_model_checkpoint")->valuestring, "tiny_sd1.safetensors");
    cJSON_Delete(j), resp_free(&r);
    r = http(port, "GET", "/sdapi/v1/samplers", NULL, "", 0);
    cr_assert(strstr(r.body, "\"name\":\"Euler a\""), "%s", r.body);
    resp_free(&r);
    srv_stop(s);
}

/* -------------------------------------------------- progress, interrupt */

typedef struct bg {
    int port;
    const char *body;
    resp r;
} bg;

static void *bg_post(void *arg) {
    bg *b = arg;
    b->r = post(b->port, "/sdapi/v1/txt2img", b->body);
    return NULL;
}

/* a render's progress moves; interrupt ends it with the image it has
 * (the first of the two iterations asked for, 1000 steps each: it is
 * interrupted within its first 30 steps or so) */
Test(serve, progress_and_interrupt, .timeout = 300) {
    srv *s = start(NULL, NULL, 0, 0);
    bg b = {srv_port(s), "{\"prompt\": \"a square\", \"steps\": 1000, \"width\": 32, \"height\": 32, \"n_iter\": 2}",
            {0}};
    pthread_t t;
    pthread_create(&t, NULL, bg_post, &b);
    double last = -1;
    int seen = 0;
    for (int tries = 0; tries < 3000 && seen < 2; tries++) {
        usleep(10000);
        resp r = http(b.port, "GET", "/sdapi/v1/progress", NULL, "", 0);
        cJSON *j = json_of(&r), *st = cJSON_GetObjectItem(j, "state");
        const double p = cJSON_GetObjectItem(j, "progress")->valuedouble;
        const int step = cJSON_GetObjectItem(st, "sampling_step")->valueint;
        cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "current_image")), "no live previews asked for");
        if (step > 0 && p > last) {
            cr_assert(p > 0 && p < 0.5, "progress %g (still in the first of two images)", p);
            cr_assert_eq(cJSON_GetObjectItem(st, "sampling_steps")->valueint, 1000);
            cr_assert_eq(cJSON_GetObjectItem(st, "job_count")->valueint, 1);
            last = p;
            seen++;
        }
        cJSON_Delete(j), resp_free(&r);
    }
    cr_assert_eq(seen, 2, "the progress did not move");
    resp r = post(b.port, "/sdapi/v1/interrupt", "");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    pthread_join(t, NULL);
    cr_assert_eq(b.r.status, 200, "%s", b.r.body);
    cJSON *j = json_of(&b.r);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")), 1, "interrupt: the image in progress only");
    cJSON_Delete(j), resp_free(&b.r);
    srv_stop(s);
}

/* live previews (serve --preview-every 2, cheap and --taesd): while a
 * render runs, /progress's current_image is a PNG of the image's size in
 * base64 */
Test(serve, progress_current_image, .timeout = 300) {
    for (int k = 0; k < 2; k++) {
        srv_config c = srv_config_default();
        c.model.model_path = FIXTURES "/tiny_sd1.safetensors";
        c.model.backend = SDC_BACKEND_CPU;
        c.model.taesd_path = k ? FIXTURES "/preview/taesd_tiny.safetensors" : NULL;
        c.port = 0;
        c.preview_every = 2;
        srv *s = NULL;
        cr_assert_eq(srv_start(&c, &s), 0, "%s", sdc_last_error());
        bg b = {srv_port(s), "{\"prompt\": \"a square\", \"steps\": 1000, \"width\": 32, \"height\": 24}", {0}};
        pthread_t t;
        pthread_create(&t, NULL, bg_post, &b);
        unsigned char *png = NULL;
        size_t n = 0;
        for (int tries = 0; tries < 3000 && !png; tries++) {
            usleep(10000);
            resp r = http(b.port, "GET", "/sdapi/v1/progress", NULL, "", 0);
            cJSON *j = json_of(&r), *img = cJSON_GetObjectItem(j, "current_image");
            cr_assert(img && (cJSON_IsNull(img) || cJSON_IsString(img)), "%s", r.body);
            if (cJSON_IsString(img)) png = srv_b64_decode(img->valuestring, &n);
            cJSON_Delete(j), resp_free(&r);
        }
        cr_assert_not_null(png, "no current_image came during the render");
        char *dir = st_tmpdir(), *path = st_path(dir, "preview.png");
        cr_assert_eq(st_write_bytes(path, png, n), 0);
        unsigned char *rgb = NULL;
        int w = 0, h = 0;
        cr_assert_eq(sdc_image_read_rgb(path, &rgb, &w, &h), SDC_OK, "%s", sdc_last_error());
        cr_assert(w == 32 && h == 24, "current_image is %dx%d", w, h);
        resp r = post(b.port, "/sdapi/v1/interrupt", "");
        resp_free(&r);
        pthread_join(t, NULL);
        cr_assert_eq(b.r.status, 200, "%s", b.r.body);
        resp_free(&b.r);
        r = http(b.port, "GET", "/sdapi/v1/progress", NULL, "", 0); /* idle: none */
        cr_assert(strstr(r.body, "\"current_image\":null"), "%s", r.body);
        resp_free(&r);
        free(rgb), free(png), free(path);
        st_rmtree(dir);
        free(dir);
        srv_stop(s);
    }
}

/* ---------------------------------------------------------- model switch */

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    cr_assert(a && b, "copy %s -> %s", from, to);
    char buf[65536];
    for (size_t k; (k = fread(buf, 1, sizeof buf, a)) > 0;) fwrite(buf, 1, k, b);
    fclose(a), fclose(b);
}

/* --models-dir lists its .safetensors files (nothing else); options
 * switches to one by name, and the next image is that model's; a name
 * outside the list is a 422, and the model in use stays */
Test(serve, switch_models, .timeout = 300) {
    char *dir = st_tmpdir(), *m2 = st_path(dir, "second.safetensors"), *other = st_path(dir, "notes.txt");
    copy_file(FIXTURES "/tiny_sd2.safetensors", m2);
    copy_file(FIXTURES "/prompt_syntax.json", other);
    srv *s = start(dir, NULL, 0, 0);
    const int port = srv_port(s);
    resp r = http(port, "GET", "/sdapi/v1/sd-models", NULL, "", 0);
    cJSON *j = json_of(&r);
    cr_assert_eq(cJSON_GetArraySize(j), 2, "%s", r.body);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "model_name")->valuestring, "second");
    cJSON_Delete(j), resp_free(&r);
    r = post(port, "/sdapi/v1/options", "{\"sd_model_checkpoint\": \"../tiny_sd2.safetensors\"}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    resp_free(&r);
    r = post(port, "/sdapi/v1/options", "{\"sd_model_checkpoint\": \"notes.txt\"}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    resp_free(&r);
    r = post(port, "/sdapi/v1/options", "{\"sd_model_checkpoint\": \"second.safetensors\", \"anything\": 1}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = http(port, "GET", "/sdapi/v1/options", NULL, "", 0);
    cr_assert(strstr(r.body, "\"sd_model_checkpoint\":\"second.safetensors"), "%s", r.body);
    resp_free(&r);
    r = post(port, "/sdapi/v1/txt2img", "{\"prompt\": \"x\", \"steps\": 2, \"width\": 32, \"height\": 32}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "Model: second"), "the image is not the second model's");
    resp_free(&r);
    r = post(port, "/sdapi/v1/options", "{\"sd_model_checkpoint\": \"tiny_sd1\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    srv_stop(s);
    st_rmtree(dir);
    free(dir), free(m2), free(other);
}

/* ------------------------------------------------------- hostile requests */

/* each answered with its status and a JSON detail, and a good request
 * still renders afterwards */
Test(serve, bad_requests, .timeout = 300) {
    srv *s = start(NULL, NULL, 0, 65536);
    const int port = srv_port(s);
    static const struct {
        const char *path, *body, *field;
        int status;
    } cases[] = {
        {"/sdapi/v1/txt2img", "{\"prompt\": ", NULL, 422},
        {"/sdapi/v1/txt2img", "[1, 2]", NULL, 422},
        {"/sdapi/v1/txt2img", "{\"prompt\": 5}", "prompt", 422},
        {"/sdapi/v1/txt2img", "{\"steps\": \"20\"}", "steps", 422},
        {"/sdapi/v1/txt2img", "{\"steps\": 2.5}", "steps", 422},
        {"/sdapi/v1/txt2img", "{\"steps\": 0}", "steps", 422},
        {"/sdapi/v1/txt2img", "{\"width\": 100}", "width", 422},
        {"/sdapi/v1/txt2img", "{\"height\": 1e9}", "height", 422},
        {"/sdapi/v1/txt2img", "{\"seed\": -2}", "seed", 422},
        {"/sdapi/v1/txt2img", "{\"cfg_scale\": \"7\"}", "cfg_scale", 422},
        {"/sdapi/v1/txt2img", "{\"sampler_name\": \"Heun\"}", "sampler_name", 422},
        {"/sdapi/v1/txt2img", "{\"scheduler\": \"exponential\"}", "scheduler", 422},
        {"/sdapi/v1/txt2img", "{\"enable_hr\": true}", "enable_hr", 422},
        {"/sdapi/v1/txt2img", "{\"styles\": [\"cinematic\"]}", "styles", 422},
        {"/sdapi/v1/txt2img", "{\"batch_size\": 64, \"n_iter\": 64}", "n_iter", 422},
        {"/sdapi/v1/png-info", "{\"image\": \"not base64!\"}", "image", 422},
        {"/sdapi/v1/png-info", "{\"image\": \"R0lGODlh\"}", "image", 422},
        {"/sdapi/v1/png-info", "{}", "image", 422},
        {"/sdapi/v1/options", "{\"sd_model_checkpoint\": 3}", "sd_model_checkpoint", 422},
        {"/sdapi/v1/nothing", "{}", NULL, 404},
        {"/etc/passwd", "", NULL, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        resp r = post(port, cases[i].path, cases[i].body);
        cr_assert_eq(r.status, cases[i].status, "%s %s: %d %s", cases[i].path, cases[i].body, r.status, r.body);
        cJSON *j = json_of(&r), *d = cJSON_GetObjectItem(j, "detail");
        cr_assert_not_null(d, "no detail: %s", r.body);
        if (cases[i].field) {
            cJSON *loc = cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "loc");
            cr_assert_str_eq(cJSON_GetArrayItem(loc, 1)->valuestring, cases[i].field, "%s", r.body);
        }
        cJSON_Delete(j), resp_free(&r);
    }
    /* a NUL inside the body, a body over the limit, a method not served */
    resp r = http(port, "POST", "/sdapi/v1/txt2img", NULL, "{\"prompt\": \"a\"}\0{", 17);
    cr_assert_eq(r.status, 422, "%s", r.body);
    resp_free(&r);
    const size_t big = 200000;
    char *huge = malloc(big + 32);
    memcpy(huge, "{\"prompt\": \"", 12);
    memset(huge + 12, 'a', big);
    memcpy(huge + 12 + big, "\"}", 3);
    r = post(port, "/sdapi/v1/txt2img", huge);
    cr_assert_eq(r.status, 413, "%d %s", r.status, r.body);
    resp_free(&r);
    free(huge);
    r = http(port, "DELETE", "/sdapi/v1/options", NULL, "", 0);
    cr_assert_eq(r.status, 405, "%d", r.status);
    resp_free(&r);
    /* and the server still renders */
    r = post(port, "/sdapi/v1/txt2img", "{\"prompt\": \"fine\", \"steps\": 2, \"width\": 32, \"height\": 32}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    srv_stop(s);
}

/* --api-auth: no credentials, wrong ones and a wrong user are 401 with a
 * Basic challenge; each listed user gets in */
Test(serve, auth, .timeout = 120) {
    srv *s = start(NULL, "alice:s3cret,bob:pw:with:colons", 0, 0);
    const int port = srv_port(s);
    static const char *const bad[] = {NULL, "alice:s3cre", "alice:s3cret2", "mallory:s3cret", "bob:pw", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        resp r = http(port, "GET", "/sdapi/v1/options", bad[i], "", 0);
        cr_assert_eq(r.status, 401, "%s: %d", bad[i] ? bad[i] : "(none)", r.status);
        cr_assert(strstr(r.head, "WWW-Authenticate: Basic"), "%s", r.head);
        resp_free(&r);
    }
    static const char *const good[] = {"alice:s3cret", "bob:pw:with:colons"};
    for (int i = 0; i < 2; i++) {
        resp r = http(port, "GET", "/sdapi/v1/options", good[i], "", 0);
        cr_assert_eq(r.status, 200, "%s: %d", good[i], r.status);
        resp_free(&r);
    }
    srv_stop(s);
}

/* ------------------------------------------------------------------ load */

typedef struct client {
    int port, requests, ok, busy;
} client;

static void *client_run(void *arg) {
    client *c = arg;
    for (int i = 0; i < c->requests; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"prompt\": \"load %d\", \"seed\": %d, \"steps\": 1, \"width\": 32, "
                                    "\"height\": 32, \"cfg_scale\": 1}", i, i);
        resp r = post(c->port, "/sdapi/v1/txt2img", body);
        if (r.status == 200 && strstr(r.body, "\"images\":[\"iVBOR")) c->ok++;
        else if (r.status == 503) c->busy++;
        resp_free(&r);
    }
    return NULL;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* 16 clients at once, 208 requests in all, a queue that holds them all:
 * every one answered with its image, within the time limit; the
 * process's memory after the second half is what it was after the first
 * (within 8 MiB: the allocator's slack) */
Test(serve, load_16_clients, .timeout = 600) {
    srv *s = start(NULL, NULL, 64, 0);
    long rss[2] = {0, 0};
    for (int round = 0; round < 2; round++) {
        const double t0 = sdc_now();
        client c[16];
        pthread_t t[16];
        for (int i = 0; i < 16; i++) {
            c[i] = (client){srv_port(s), round ? 7 : 6, 0, 0}; /* 96, then 112 requests */
            pthread_create(&t[i], NULL, client_run, &c[i]);
        }
        int ok = 0, busy = 0, sent = 0;
        for (int i = 0; i < 16; i++) {
            pthread_join(t[i], NULL);
            ok += c[i].ok, busy += c[i].busy, sent += c[i].requests;
        }
        cr_assert_eq(ok, sent, "round %d: %d of %d answered with an image (%d busy)", round, ok, sent, busy);
        rss[round] = rss_kb();
        fprintf(stderr, "serve load round %d: %d requests from 16 clients, all answered with an image, 0 errors, "
                        "in %.2f s; RSS %ld KiB\n", round, sent, sdc_now() - t0, rss[round]);
    }
    cr_assert(rss[1] - rss[0] < 8192, "memory grew %ld KiB between the rounds", rss[1] - rss[0]);
    srv_stop(s);
}

/* ------------------------------------------------- OpenAI's API, the page */

/* /v1/models and /v1/images/generations in OpenAI's shapes, its errors
 * naming the parameter; the page at / (its behaviour in a browser is
 * checked by hand: see the README) */
Test(serve, openai_and_page, .timeout = 300) {
    srv *s = start(NULL, NULL, 0, 0);
    const int port = srv_port(s);
    resp r = http(port, "GET", "/v1/models", NULL, "", 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "list");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0), "id")->valuestring,
                     "tiny_sd1");
    cJSON_Delete(j), resp_free(&r);
    r = post(port, "/v1/images/generations",
             "{\"prompt\": \"a red circle\", \"n\": 2, \"size\": \"32x32\", \"response_format\": \"b64_json\", "
             "\"model\": \"whatever\", \"quality\": \"hd\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_of(&r);
    cJSON *data = cJSON_GetObjectItem(j, "data");
    cr_assert_eq(cJSON_GetArraySize(data), 2);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "created")));
    for (int i = 0; i < 2; i++) {
        size_t n = 0;
        unsigned char *png = srv_b64_decode(cJSON_GetObjectItem(cJSON_GetArrayItem(data, i), "b64_json")->valuestring,
                                            &n);
        cr_assert_not_null(png);
        char *text = NULL;
        cr_assert_eq(sdc_png_parameters_mem("image", png, n, &text), SDC_OK, "%s", sdc_last_error());
        cr_assert(strstr(text, "a red circle\n") && strstr(text, "Size: 32x32"), "%s", text);
        free(png), free(text);
    }
    cJSON_Delete(j), resp_free(&r);
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"n\": 1}", "prompt"},
        {"{\"prompt\": \"x\", \"n\": 0}", "n"},
        {"{\"prompt\": \"x\", \"n\": 11}", "n"},
        {"{\"prompt\": \"x\", \"n\": 6e115}", "n"}, /* (found by fuzz_sdapi: was undefined behaviour) */
        {"{\"prompt\": \"x\", \"size\": \"33x32\"}", "size"},
        {"{\"prompt\": \"x\", \"size\": \"32x32px\"}", "size"},
        {"{\"prompt\": \"x\", \"response_format\": \"url\"}", "response_format"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = post(port, "/v1/images/generations", bad[i].body);
        cr_assert_eq(r.status, 400, "%s: %d %s", bad[i].body, r.status, r.body);
        j = json_of(&r);
        cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "param")->valuestring, bad[i].param);
        cJSON_Delete(j), resp_free(&r);
    }
    r = http(port, "GET", "/", NULL, "", 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.head, "text/html"), "%s", r.head);
    cr_assert(strstr(r.body, "api('txt2img'") && strstr(r.body, "api('progress')"), "the page's script");
    resp_free(&r);
    srv_stop(s);
}

/* ------------------------------------------------ the queue and its end */

static int job_count(int port) {
    resp r = http(port, "GET", "/sdapi/v1/progress", NULL, "", 0);
    cJSON *j = json_of(&r);
    const int n = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "state"), "job_count")->valueint;
    cJSON_Delete(j), resp_free(&r);
    return n;
}

static void wait_jobs(int port, int n) {
    for (int tries = 0; tries < 6000 && job_count(port) != n; tries++) usleep(5000);
    cr_assert_eq(job_count(port), n, "job_count never reached %d", n);
}

static const char *LONG = "{\"prompt\": \"long\", \"steps\": 1000, \"width\": 32, \"height\": 32, \"n_iter\": 3}";

/* single-image requests with the same settings that wait together go
 * through the U-Net as one batch, each answered with its own image; a full
 * queue answers 503 with Retry-After; a client gone mid-render costs
 * nothing to the others */
Test(serve, batching_queue_full_and_disconnect, .timeout = 300) {
    srv *s = start(NULL, NULL, 4, 0);
    const int port = srv_port(s);
    int runs0 = 0, jobs0 = 0;
    srv_jobs_counts(s->jobs, &runs0, &jobs0);
    bg lg = {port, LONG, {0}};
    pthread_t tl, t[4];
    pthread_create(&tl, NULL, bg_post, &lg);
    wait_jobs(port, 1);
    static const char *const bodies[4] = {
        "{\"prompt\": \"a red circle\", \"seed\": 1, \"steps\": 2, \"width\": 32, \"height\": 32}",
        "{\"prompt\": \"a blue square\", \"seed\": 2, \"steps\": 2, \"width\": 32, \"height\": 32}",
        "{\"prompt\": \"a green star\", \"seed\": 3, \"steps\": 2, \"width\": 32, \"height\": 32, \"cfg_scale\": 5}",
        "{\"prompt\": \"a ring\", \"seed\": 4, \"steps\": 2, \"width\": 32, \"height\": 32}"};
    bg b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (bg){port, bodies[i], {0}};
        pthread_create(&t[i], NULL, bg_post, &b[i]);
        wait_jobs(port, 2 + i);
    }
    /* the queue holds 4: the next is turned away */
    resp r = post(port, "/sdapi/v1/txt2img", bodies[0]);
    cr_assert_eq(r.status, 503, "%d %s", r.status, r.body);
    cr_assert(strstr(r.head, "Retry-After: 5"), "%s", r.head);
    resp_free(&r);
    /* a client that sends a render and leaves */
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char gone[] = "POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    cr_assert_eq(write(fd, gone, sizeof gone - 1), (ssize_t)(sizeof gone - 1));
    close(fd);
    r = post(port, "/sdapi/v1/interrupt", "");
    resp_free(&r);
    pthread_join(tl, NULL);
    cr_assert_eq(lg.r.status, 200, "%s", lg.r.body);
    resp_free(&lg.r);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(b[i].r.status, 200, "request %d: %s", i, b[i].r.body);
        cJSON *j = json_of(&b[i].r), *info = cJSON_Parse(cJSON_GetObjectItem(j, "info")->valuestring);
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")), 1);
        cr_assert_eq(cJSON_GetObjectItem(info, "seed")->valuedouble, i + 1, "request %d got another's image", i);
        cJSON_Delete(info), cJSON_Delete(j), resp_free(&b[i].r);
    }
    int runs = 0, jobs = 0;
    srv_jobs_counts(s->jobs, &runs, &jobs);
    cr_assert_eq(jobs - jobs0, 5, "jobs answered: %d", jobs - jobs0);
    cr_assert_eq(runs - runs0, 2, "the four waiting requests ran in %d renders, not one batch", runs - runs0 - 1);
    /* (the departed client's job may still be waiting or running) */
    r = post(port, "/sdapi/v1/txt2img", bodies[1]);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    srv_stop(s);
}

/* stopping (SIGTERM): the image in progress finishes whole, the job's
 * further images are not started, the waiting requests get a 503 */
Test(serve, stop_finishes_the_image_in_progress, .timeout = 300) {
    srv *s = start(NULL, NULL, 0, 0);
    const int port = srv_port(s);
    bg lg = {port, "{\"prompt\": \"long\", \"steps\": 300, \"width\": 32, \"height\": 32, \"n_iter\": 3}", {0}};
    bg w = {port, "{\"prompt\": \"waiting\", \"steps\": 2, \"width\": 32, \"height\": 32}", {0}};
    pthread_t tl, tw;
    pthread_create(&tl, NULL, bg_post, &lg);
    wait_jobs(port, 1);
    pthread_create(&tw, NULL, bg_post, &w);
    wait_jobs(port, 2);
    srv_stop(s);
    pthread_join(tl, NULL), pthread_join(tw, NULL);
    cr_assert_eq(lg.r.status, 200, "%s", lg.r.body);
    cJSON *j = json_of(&lg.r), *info = cJSON_Parse(cJSON_GetObjectItem(j, "info")->valuestring);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")), 1, "the image in progress only");
    cr_assert(strstr(cJSON_GetArrayItem(cJSON_GetObjectItem(info, "infotexts"), 0)->valuestring, "Steps: 300"));
    cJSON_Delete(info), cJSON_Delete(j), resp_free(&lg.r);
    cr_assert_eq(w.r.status, 503, "%d %s", w.r.status, w.r.body);
    cr_assert(strstr(w.r.body, "shutting down"), "%s", w.r.body);
    resp_free(&w.r);
}

/* ------------------------------------------------------------ img2img */

static char *file_b64(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static unsigned char buf[1 << 20];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return srv_b64_encode(buf, n);
}

/* /sdapi/v1/img2img: an init image (and a data: URL mask) answered with
 * the library's own pixels for the same settings and the request's
 * image-to-image fields in the infotext; A1111's API defaults for the
 * inpainting fields (mask blur 4, only masked, padding 0, fill) */
Test(serve, img2img_and_inpainting, .timeout = 300) {
    srv *s = start(NULL, NULL, 0, 0);
    const int port = srv_port(s);
    char *init = file_b64(FIXTURES "/img2img/init32.png"), *mask = file_b64(FIXTURES "/img2img/mask32.png");
    char *body = malloc(strlen(init) + strlen(mask) + 512);
    sprintf(body, "{\"prompt\": \"a red circle\", \"seed\": 7, \"steps\": 4, \"width\": 32, \"height\": 32, "
                  "\"sampler_name\": \"Euler\", \"denoising_strength\": 0.6, \"init_images\": [\"%s\"]}", init);
    resp r = post(port, "/sdapi/v1/img2img", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *j = json_of(&r);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")), 1);
    cJSON *info = cJSON_Parse(cJSON_GetObjectItem(j, "info")->valuestring);
    cr_assert_float_eq(cJSON_GetObjectItem(info, "denoising_strength")->valuedouble, 0.6, 1e-12);
    size_t n = 0;
    unsigned char *png = srv_b64_decode(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "images"), 0)->valuestring, &n);
    char *text = NULL;
    cr_assert_eq(sdc_png_parameters_mem("image", png, n, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(strstr(text, "Denoising strength: 0.6"), "%s", text);
    cr_assert_null(strstr(text, "Mask blur"), "no mask, no mask fields: %s", text);
    /* the library, same settings: the same PNG */
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a red circle", g.seed = 7, g.steps = 4, g.width = g.height = 32, g.sampler = "euler";
    g.strength = 0.6, g.cfg_scale = 7.0f; /* the API's default CFG */
    cr_assert_eq(sdc_image_load(FIXTURES "/img2img/init32.png", (uint8_t **)&g.init_rgb, &g.init_width,
                                &g.init_height), SDC_OK, "%s", sdc_last_error());
    sdc_image want;
    cr_assert_eq(sdc_txt2img(ctx, &g, &want), SDC_OK, "%s", sdc_last_error());
    unsigned char *wpng = NULL;
    size_t wn = 0;
    cr_assert_eq(sdc_png_encode("want", want.rgb, 32, 32, want.infotext, &wpng, &wn), SDC_OK);
    uint8_t *px = NULL;
    int pw = 0, ph = 0;
    cr_assert_eq(sdc_image_load_mem("image", png, n, &px, &pw, &ph), SDC_OK, "%s", sdc_last_error());
    cr_assert(pw == 32 && ph == 32 && !memcmp(px, want.rgb, 32 * 32 * 3), "the server's pixels are the library's");
    cr_assert_str_eq(text, want.infotext);
    free(px);
    free(wpng), free(png), free(text), sdc_image_free(&want);
    cJSON_Delete(info), cJSON_Delete(j), resp_free(&r);

    /* inpainting with A1111's API defaults: pixels the blurred mask leaves
     * alone are the original's, and the infotext names the fields */
    sprintf(body, "{\"prompt\": \"a red circle\", \"seed\": 7, \"steps\": 4, \"width\": 32, \"height\": 32, "
                  "\"init_images\": [\"%s\"], \"mask\": \"data:image/png;base64,%s\"}", init, mask);
    r = post(port, "/sdapi/v1/img2img", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_of(&r);
    png = srv_b64_decode(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "images"), 0)->valuestring, &n);
    cr_assert_eq(sdc_png_parameters_mem("image", png, n, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(strstr(text, "Denoising strength: 0.75, Mask blur: 4, Masked content: fill, Inpaint area: Only "
                           "masked, Masked area padding: 0"), "%s", text);
    uint8_t *got = NULL, *m = NULL;
    int w = 0, h = 0;
    cr_assert_eq(sdc_image_load_mem("image", png, n, &got, &w, &h), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_mask_load(FIXTURES "/img2img/mask32.png", &m, &w, &h), SDC_OK);
    cr_assert_eq(sdc_mask_blur(m, w, h, 4, 4), SDC_OK);
    int kept = 0;
    for (int i = 0; i < w * h; i++)
        if (m[i] == 0) {
            kept++;
            for (int c = 0; c < 3; c++)
                cr_assert_eq(got[3 * i + c], g.init_rgb[3 * i + c], "pixel %d outside the mask changed", i);
        }
    cr_assert_gt(kept, 100, "the test mask leaves pixels alone");
    free(got), free(m), free(png), free(text), free((void *)g.init_rgb);
    cJSON_Delete(j), resp_free(&r);

    /* bad image fields: a 422 naming the field, and the server goes on */
    static const struct {
        const char *fmt, *field;
    } bad[] = {
        {"{\"init_images\": []}", "init_images"},
        {"{\"init_images\": \"%s\"}", "init_images"},
        {"{\"init_images\": [\"not base64!\"]}", "init_images"},
        {"{\"init_images\": [\"R0lGODlhAQABAAAAACw=\"]}", "init_images"},
        {"{\"init_images\": [\"%s\"], \"mask\": 5}", "mask"},
        {"{\"init_images\": [\"%s\"], \"mask\": \"data:image/png;base64\"}", "mask"},
        {"{\"init_images\": [\"%s\"], \"denoising_strength\": 0}", "denoising_strength"},
        {"{\"init_images\": [\"%s\"], \"denoising_strength\": 1.5}", "denoising_strength"},
        {"{\"init_images\": [\"%s\"], \"resize_mode\": 3}", "resize_mode"},
        {"{\"init_images\": [\"%s\"], \"mask_blur\": -1}", "mask_blur"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sprintf(body, bad[i].fmt, init);
        r = post(port, "/sdapi/v1/img2img", body);
        cr_assert_eq(r.status, 422, "%s: %d %s", bad[i].fmt, r.status, r.body);
        j = json_of(&r);
        cJSON *loc = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "detail"), 0), "loc");
        cr_assert_str_eq(cJSON_GetArrayItem(loc, 1)->valuestring, bad[i].field, "%s", r.body);
        cJSON_Delete(j), resp_free(&r);
    }
    sdc_free(ctx);
    free(body), free(init), free(mask);
    srv_stop(s);
}

/* LoRAs through the API as front-ends send them: listed by /loras (and the
 * embeddings by /embeddings), applied
 * by a prompt's tag (the infotext carries its hash), a missing one an
 * error for that request alone. */
Test(serve, loras, .timeout = 300) {
    srv_config c = srv_config_default();
    c.model.model_path = FIXTURES "/tiny_sd1.safetensors";
    c.model.backend = SDC_BACKEND_CPU;
    c.model.lora_dir = FIXTURES "/lora";
    c.model.embeddings_dir = FIXTURES "/lora";
    c.port = 0;
    srv *s = NULL;
    cr_assert_eq(srv_start(&c, &s), 0, "%s", sdc_last_error());
    const int port = srv_port(s);
    resp r = http(port, "GET", "/sdapi/v1/loras", NULL, "", 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "\"name\":\"kohya\"") && strstr(r.body, "\"name\":\"loha\""), "%s", r.body);
    resp_free(&r);
    /* the embeddings: the two of the folder loaded, its LoRA files skipped */
    r = http(port, "GET", "/sdapi/v1/embeddings", NULL, "", 0);
    cJSON *j = json_of(&r), *loaded = cJSON_GetObjectItem(j, "loaded"), *skipped = cJSON_GetObjectItem(j, "skipped");
    cr_assert_eq(cJSON_GetArraySize(loaded), 2, "%s", r.body);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(loaded, "sdcstyle"), "vectors")->valueint, 2, "%s", r.body);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(loaded, "sdcthing"), "shape")->valueint, 16, "%s", r.body);
    cr_assert_not_null(cJSON_GetObjectItem(skipped, "kohya"), "%s", r.body);
    cJSON_Delete(j), resp_free(&r);
    r = post(port, "/sdapi/v1/txt2img",
             "{\"prompt\": \"a red circle <lora:kohya:0.8>\", \"seed\": 1, \"steps\": 2, \"width\": 32, "
             "\"height\": 32}");
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    const char *h = strstr(r.body, "Lora hashes: ");
    cr_assert(h, "no Lora hashes in the infotexts");
    cr_assert(strstr(h, "kohya: "), "%.80s", h);
    resp_free(&r);
    r = post(port, "/sdapi/v1/txt2img",
             "{\"prompt\": \"a red circle <lora:missing:1>\", \"steps\": 2, \"width\": 32, \"height\": 32}");
    cr_assert_geq(r.status, 400, "%d", r.status);
    cr_assert(strstr(r.body, "missing.safetensors"), "%s", r.body);
    resp_free(&r);
    r = post(port, "/sdapi/v1/txt2img", "{\"prompt\": \"a red circle\", \"steps\": 2, \"width\": 32, \"height\": 32}");
    cr_assert_eq(r.status, 200, "the next request renders: %d %s", r.status, r.body);
    resp_free(&r);
    srv_stop(s);
}
