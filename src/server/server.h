/* server.h - `sdc serve`: one model in memory, rendering the requests of
 * AUTOMATIC1111's HTTP API (/sdapi/v1) in order. Three parts:
 *   http.c   the HTTP side (libmicrohttpd): limits, authentication, routing,
 *            JSON and error responses;
 *   jobs.c   the queue and the one worker thread that owns the model: jobs
 *            run in order, progress, interrupt and skip, model switching;
 *   sdapi.c  the API's endpoints: requests parsed strictly, responses in
 *            A1111's shapes (modules/api/models.py); sdapi_txt2img.c its
 *            txt2img; openai.c OpenAI's images API; web.c the page at /.
 * Every request is untrusted: bodies are bounded, JSON is parsed strictly,
 * a bad value is a 422 naming the field, and nothing in a request names a
 * file other than a model listed from --models-dir. */
#ifndef SDC_SERVER_H
#define SDC_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "sdc.h"

/* what `sdc serve` was started with */
typedef struct srv_config {
    sdc_params model;       /* the model loaded at start (model.model_path) */
    const char *models_dir; /* NULL: only the start model can be selected */
    const char *host;       /* "127.0.0.1" */
    int port;               /* 7860; 0: any free port (srv_port says which) */
    const char *auth;       /* "user:pass[,user2:pass2]" or NULL */
    int queue_max;          /* jobs waiting at most (16) */
    size_t body_max;        /* request body bytes at most (32 MiB) */
    int images_max;         /* batch_size x n_iter at most per request (64) */
    int preview_every;      /* 0: no live previews; else every N steps, /progress's
                               current_image (by TAESD when model.taesd_path) */
} srv_config;

srv_config srv_config_default(void);

typedef struct srv srv;

/* Load the model and start listening; 0, or -1 with sdc_last_error(). */
int srv_start(const srv_config *cfg, srv **out);
/* the port it listens on */
int srv_port(const srv *s);
/* Stop taking requests, finish the image in progress, answer the jobs
 * still waiting with an error, and free everything. */
void srv_stop(srv *s);

/* ----------------------------------------------------------------- jobs */

typedef struct srv_jobs srv_jobs;

/* one txt2img request: n = batch_size x n_iter images, seeds seed, seed+1 */
typedef struct srv_render {
    sdc_gen_params gen;      /* prompt and negative owned by the job; init_rgb and
                                mask too (img2img) */
    int batch_size, n_iter;
    /* filled by the worker */
    sdc_image *images;       /* n images; fewer when interrupted */
    int n_images;
    bool interrupted;
} srv_render;

typedef enum srv_job_kind { SRV_JOB_RENDER, SRV_JOB_SWITCH } srv_job_kind;

typedef struct srv_job srv_job;

/* The queue and its worker, which loads `model` (its path copied) and then
 * owns it; preview_every > 0: live previews of each render's first image
 * every so many steps (srv_jobs_preview). 0, or -1 with sdc_last_error(). */
int srv_jobs_start(const sdc_params *model, int queue_max, int preview_every, srv_jobs **out);
/* Finish the image in progress, fail the waiting jobs (and any new one),
 * join the worker; the queue's state stays readable until srv_jobs_free. */
void srv_jobs_stop(srv_jobs *q);
void srv_jobs_free(srv_jobs *q);

/* Queue a render and wait for it: 0 when it ran (r filled),
 * else an HTTP status (503 queue full, 500 render failed, 503 stopping)
 * with the reason in err. */
int srv_jobs_render(srv_jobs *q, srv_render *r, char *err, size_t err_n);
/* Queue a switch to the model at path and wait: 0, or a status and err. */
int srv_jobs_switch(srv_jobs *q, const char *path, char *err, size_t err_n);
void srv_render_free(srv_render *r);

/* A1111's interrupt (the job in progress stops and returns what it has) and
 * skip (the image in progress stops; the job goes on). */
void srv_jobs_interrupt(srv_jobs *q);
void srv_jobs_skip(srv_jobs *q);

typedef struct srv_progress {
    double progress, eta_relative; /* 0..1, seconds left (estimated) */
    int sampling_step, sampling_steps, job_count, job_no;
    bool busy, interrupted, skipped;
    char job_timestamp[32];
} srv_progress;
void srv_jobs_progress(srv_jobs *q, srv_progress *out);
/* The latest live preview of the job in progress (its first image), a
 * malloc'd copy of w * h * 3 bytes; NULL when there is none. */
unsigned char *srv_jobs_preview(srv_jobs *q, int *w, int *h);

/* renders run and jobs answered so far (batched jobs share one run) */
void srv_jobs_counts(srv_jobs *q, int *runs, int *jobs);

/* the loaded model: its path, name (file name without extension) and
 * short hash (10 hex, "" until known); copies into the caller's buffers */
void srv_jobs_model(srv_jobs *q, char *path, size_t path_n, char *name, size_t name_n, char *hash,
                    size_t hash_n);
/* A1111's /sdapi/v1/embeddings of the loaded model: {"loaded": {NAME:
 * {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}}, "skipped":
 * {...}} (the files it cannot use); empty without --embeddings-dir */
struct cJSON *srv_jobs_embeddings(srv_jobs *q);

/* ----------------------------------------------------- http.c / sdapi.c */

struct MHD_Daemon;

struct srv {
    srv_config cfg;
    srv_jobs *jobs;
    struct MHD_Daemon *daemon;
    int port;
    char **users; /* "user:pass" each */
    int n_users;
    int inflight; /* requests answered or being answered, not yet sent (atomic) */
};

/* a response: body malloc'd (freed by http.c), type its Content-Type */
typedef struct srv_reply {
    int status;
    char *body;
    size_t len;
    const char *type;
    int retry_after; /* seconds (503), 0: none */
} srv_reply;

/* sdapi.c: the reply to one request (a 404 for a path it does not serve) */
void sdapi_handle(srv *s, const char *method, const char *url, const char *body, size_t n, srv_reply *out);
/* openai.c: /v1/... (route: the path after "/v1/"); web.c: the page at / */
void openai_handle(srv *s, const char *method, const char *route, const char *body, size_t n, srv_reply *out);
void web_page(srv_reply *out);
/* a JSON reply (j is consumed; out of memory: a bare 500) */
struct cJSON;
void srv_reply_json(srv_reply *out, int status, struct cJSON *j);
/* an image as A1111 and OpenAI send it: its PNG (with its infotext) in
 * base64, malloc'd; NULL when out of memory */
char *srv_image_b64(const sdc_image *im);
/* a JSON reply {"detail": detail} with status (errors), and one for a
 * field: {"detail": [{"loc": ["body", field], "msg": msg, "type": type}]} */
void srv_reply_detail(srv_reply *out, int status, const char *detail);
void srv_reply_field(srv_reply *out, const char *field, const char *msg, const char *type);

/* --------------------------------------------------------------- base64 */

/* standard alphabet with padding; malloc'd, NUL-terminated */
char *srv_b64_encode(const unsigned char *data, size_t n);
/* decoded bytes (malloc'd) or NULL for text that is not base64; a data URL
 * prefix ("data:image/png;base64,") is skipped, whitespace is refused */
unsigned char *srv_b64_decode(const char *text, size_t *n);

#endif
