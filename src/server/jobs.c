/* jobs.c - the queue of `sdc serve` and its one worker thread, which owns
 * the model: jobs run in the order they came, one at a time; the HTTP
 * threads wait on their own job. Progress, interrupt and skip are read and
 * set under the queue's lock; the worker asks them between steps. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/batch.h"
#include "common.h"
#include "context.h"
#include "image/image.h"
#include "server/server.h"

struct srv_job {
    srv_job_kind kind;
    srv_render *render; /* SRV_JOB_RENDER */
    char *path;         /* SRV_JOB_SWITCH */
    int status;         /* 0 done; else an HTTP status */
    char err[512];
    bool done;
    srv_job *next;
};

struct srv_jobs {
    pthread_mutex_t mu;
    pthread_cond_t work, done; /* work: the worker's; done: the waiters' */
    pthread_t worker;
    bool started, stopping;
    srv_job *head, *tail;
    int waiting, queue_max;
    sdc_params base;       /* what the start model was loaded with (its path aside) */
    sdc_ctx *ctx;          /* the worker's; replaced under mu */
    char *model_path;      /* under mu */
    char name[256], hash[11]; /* the model's, for other threads (under mu) */
    /* progress of the job in progress */
    srv_job *current;
    int step, steps, image, images, job_no;
    double t_start;
    bool interrupt, skip;
    char timestamp[32];
    int runs, jobs_done; /* renders run, jobs answered (batched jobs share a run) */
    int preview_every;   /* 0: no live previews */
    unsigned char *pv;   /* the latest preview of the job in progress, (pv_h, pv_w, 3); NULL: none */
    int pv_w, pv_h;
};

/* single-image requests waiting with the same settings go through the
 * U-Net as one batch, at most this many */
#define BATCH_MAX 4

static void job_free(srv_job *j) {
    if (!j) return;
    free(j->path);
    free(j);
}

void srv_render_free(srv_render *r) {
    if (!r) return;
    for (int i = 0; i < r->n_images; i++) sdc_image_free(&r->images[i]);
    free(r->images);
    free((char *)r->gen.prompt);
    free((char *)r->gen.negative_prompt);
    free((void *)r->gen.init_rgb);
    free((void *)r->gen.mask);
    r->images = NULL;
    r->n_images = 0;
    r->gen.prompt = r->gen.negative_prompt = NULL;
    r->gen.init_rgb = r->gen.mask = NULL;
}

/* ----------------------------------------------------------- the worker */

static void on_step(int step, int steps, double seconds, void *user) {
    (void)seconds;
    srv_jobs *q = user;
    pthread_mutex_lock(&q->mu);
    q->step = step, q->steps = steps;
    pthread_mutex_unlock(&q->mu);
}

static bool should_stop(int step, int steps, void *user) {
    (void)step, (void)steps;
    srv_jobs *q = user;
    pthread_mutex_lock(&q->mu);
    const bool stop = q->interrupt || q->skip; /* (stopping: the image in progress finishes) */
    pthread_mutex_unlock(&q->mu);
    return stop;
}

/* the latest preview, copied outside the lock */
static void on_preview(int step, int steps, const unsigned char *rgb, int w, int h, void *user) {
    (void)step, (void)steps;
    srv_jobs *q = user;
    unsigned char *copy = malloc((size_t)w * h * 3);
    if (!copy) return; /* a preview missed */
    memcpy(copy, rgb, (size_t)w * h * 3);
    pthread_mutex_lock(&q->mu);
    free(q->pv);
    q->pv = copy, q->pv_w = w, q->pv_h = h;
    pthread_mutex_unlock(&q->mu);
}

/* a render's callbacks: the batch's first image reports and previews */
static void callbacks(srv_jobs *q, sdc_gen_params *g, bool first) {
    g->on_step = first ? on_step : NULL;
    g->should_stop = first ? should_stop : NULL;
    g->on_preview = first && q->preview_every ? on_preview : NULL;
    g->preview_every = q->preview_every ? q->preview_every : 1;
    g->preview = q->base.taesd_path ? SDC_PREVIEW_TAESD : SDC_PREVIEW_CHEAP;
    g->user = q;
}

/* the images of r, batch_size at a time through the U-Net */
static void run_render(srv_jobs *q, srv_job *j) {
    srv_render *r = j->render;
    const int n = r->batch_size * r->n_iter;
    r->images = calloc((size_t)n, sizeof *r->images);
    sdc_gen_params *g = calloc((size_t)r->batch_size, sizeof *g);
    if (!r->images || !g) {
        free(g);
        j->status = 500;
        snprintf(j->err, sizeof j->err, "out of memory for %d images", n);
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->images = n;
    pthread_mutex_unlock(&q->mu);
    for (int it = 0; it < r->n_iter; it++) {
        pthread_mutex_lock(&q->mu);
        const bool stop = q->interrupt || q->stopping;
        q->skip = false;
        q->image = it * r->batch_size;
        q->step = 0;
        pthread_mutex_unlock(&q->mu);
        if (stop) break;
        for (int b = 0; b < r->batch_size; b++) {
            g[b] = r->gen;
            g[b].seed = r->gen.seed + (unsigned long long)(it * r->batch_size + b);
            callbacks(q, &g[b], b == 0);
        }
        sdc_status st = r->batch_size == 1 ? sdc_txt2img(q->ctx, &g[0], &r->images[r->n_images])
                                           : sdc_txt2img_batch(q->ctx, g, r->batch_size, &r->images[r->n_images]);
        if (st != SDC_OK) {
            j->status = st == SDC_ERR_ARG ? 422 : 500;
            snprintf(j->err, sizeof j->err, "%s", sdc_last_error());
            break;
        }
        r->n_images += r->batch_size;
    }
    pthread_mutex_lock(&q->mu);
    r->interrupted = q->interrupt;
    pthread_mutex_unlock(&q->mu);
    free(g);
}

/* the model's name and hash for the other threads (worker only) */
static void publish(srv_jobs *q, sdc_ctx *ctx, char *path) {
    pthread_mutex_lock(&q->mu);
    q->ctx = ctx;
    if (path) free(q->model_path), q->model_path = path;
    snprintf(q->name, sizeof q->name, "%s", ctx && ctx->model_name ? ctx->model_name : "");
    snprintf(q->hash, sizeof q->hash, "%s", ctx ? ctx->model_hash : "");
    pthread_mutex_unlock(&q->mu);
}

static bool single(const srv_job *j) {
    return j->kind == SRV_JOB_RENDER && j->render->batch_size == 1 && j->render->n_iter == 1;
}

/* the waiting single-image jobs that can join j's batch, taken off the
 * queue (under mu): at most BATCH_MAX in all, j first */
static int take_batch(srv_jobs *q, srv_job *j, srv_job **out) {
    int m = 0;
    out[m++] = j;
    if (!single(j)) return m;
    for (srv_job **pp = &q->head; *pp && m < BATCH_MAX;) {
        srv_job *k = *pp;
        if (single(k) && sdc_batch_same_settings(&k->render->gen, &j->render->gen)) {
            *pp = k->next;
            if (q->tail == k) q->tail = NULL;
            q->waiting--;
            out[m++] = k;
        } else {
            pp = &k->next;
        }
    }
    if (!q->tail) /* the tail again, after removals */
        for (srv_job *k = q->head; k; k = k->next) q->tail = k;
    return m;
}

/* m single-image jobs as one batch; each gets its image or the error */
static void run_batch(srv_jobs *q, srv_job **js, int m) {
    sdc_gen_params g[BATCH_MAX];
    sdc_image img[BATCH_MAX];
    memset(img, 0, sizeof img);
    for (int i = 0; i < m; i++) {
        g[i] = js[i]->render->gen;
        callbacks(q, &g[i], i == 0);
    }
    pthread_mutex_lock(&q->mu);
    q->images = 1;
    pthread_mutex_unlock(&q->mu);
    const sdc_status st = sdc_txt2img_batch(q->ctx, g, m, img);
    pthread_mutex_lock(&q->mu);
    const bool interrupted = q->interrupt;
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < m; i++) {
        srv_render *r = js[i]->render;
        r->interrupted = interrupted;
        if (st != SDC_OK) {
            js[i]->status = st == SDC_ERR_ARG ? 422 : 500;
            snprintf(js[i]->err, sizeof js[i]->err, "%s", sdc_last_error());
            continue;
        }
        r->images = malloc(sizeof *r->images);
        if (!r->images) {
            sdc_image_free(&img[i]);
            js[i]->status = 500;
            snprintf(js[i]->err, sizeof js[i]->err, "out of memory");
            continue;
        }
        r->images[0] = img[i];
        r->n_images = 1;
    }
}

static void run_switch(srv_jobs *q, srv_job *j) {
    pthread_mutex_lock(&q->mu);
    const bool same = q->ctx && q->model_path && !strcmp(q->model_path, j->path);
    sdc_ctx *old = q->ctx;
    if (!same) q->ctx = NULL;
    pthread_mutex_unlock(&q->mu);
    if (same) return; /* already loaded */
    sdc_params p = q->base;
    /* the old model goes first: two in memory at once may not fit */
    sdc_free(old);
    p.model_path = j->path;
    sdc_ctx *ctx = NULL;
    if (sdc_load(&p, &ctx) == SDC_OK) {
        publish(q, ctx, strdup(j->path));
        return;
    }
    j->status = 500;
    snprintf(j->err, sizeof j->err, "%s", sdc_last_error());
    /* back to the one that worked */
    p.model_path = q->model_path;
    if (sdc_load(&p, &ctx) != SDC_OK) ctx = NULL;
    publish(q, ctx, NULL);
}

static void *worker(void *arg) {
    srv_jobs *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping) pthread_cond_wait(&q->work, &q->mu);
        if (!q->head) break; /* stopping with nothing waiting */
        srv_job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->waiting--;
        j->next = NULL;
        if (q->stopping) { /* SIGTERM: the waiting jobs get an error */
            j->status = 503;
            snprintf(j->err, sizeof j->err, "the server is shutting down");
            j->done = true;
            pthread_cond_broadcast(&q->done);
            continue;
        }
        srv_job *batch[BATCH_MAX];
        const int m = take_batch(q, j, batch); /* batch[0] is j */
        q->current = j;
        q->job_no++;
        q->interrupt = q->skip = false;
        q->step = q->steps = q->image = q->images = 0;
        free(q->pv), q->pv = NULL; /* the last job's */
        q->t_start = sdc_now();
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(q->timestamp, sizeof q->timestamp, "%Y%m%d%H%M%S", &tm);
        pthread_mutex_unlock(&q->mu);
        if (!q->ctx && j->kind == SRV_JOB_RENDER) {
            for (int i = 0; i < m; i++) {
                batch[i]->status = 503;
                snprintf(batch[i]->err, sizeof batch[i]->err, "no model is loaded (the last switch failed)");
            }
        } else if (m > 1) {
            run_batch(q, batch, m);
            publish(q, q->ctx, NULL);
        } else if (j->kind == SRV_JOB_RENDER) {
            run_render(q, j);
            publish(q, q->ctx, NULL); /* (the hash is known after the first image) */
        } else {
            run_switch(q, j);
        }
        pthread_mutex_lock(&q->mu);
        q->current = NULL;
        q->runs++;
        for (int i = 0; i < m; i++) batch[i]->done = true, q->jobs_done++;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ------------------------------------------------------------ the queue */

int srv_jobs_start(const sdc_params *model, int queue_max, int preview_every, srv_jobs **out) {
    *out = NULL;
    srv_jobs *q = calloc(1, sizeof *q);
    if (!q) return sdc_fail(SDC_ERR_OOM, "out of memory"), -1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    q->queue_max = queue_max > 0 ? queue_max : 16;
    q->preview_every = preview_every > 0 ? preview_every : 0;
    q->base = *model;
    q->model_path = strdup(model->model_path ? model->model_path : "");
    sdc_ctx *ctx = NULL;
    if (!q->model_path || sdc_load(model, &ctx) != SDC_OK) {
        srv_jobs_free(q);
        return -1;
    }
    publish(q, ctx, NULL);
    if (pthread_create(&q->worker, NULL, worker, q) != 0) {
        srv_jobs_free(q);
        return sdc_fail(SDC_ERR_BACKEND, "could not start the render thread"), -1;
    }
    q->started = true;
    *out = q;
    return 0;
}

void srv_jobs_stop(srv_jobs *q) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    if (q->started) pthread_join(q->worker, NULL);
    q->started = false;
}

void srv_jobs_free(srv_jobs *q) {
    if (!q) return;
    srv_jobs_stop(q);
    sdc_free(q->ctx);
    free(q->model_path);
    free(q->pv);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->done);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* queue j and wait for it; the job is freed here */
static int submit(srv_jobs *q, srv_job *j, char *err, size_t err_n) {
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        snprintf(err, err_n, "the server is shutting down");
        job_free(j);
        return 503;
    }
    if (q->waiting >= q->queue_max) {
        pthread_mutex_unlock(&q->mu);
        snprintf(err, err_n, "the queue is full (%d jobs waiting)", q->queue_max);
        job_free(j);
        return 503;
    }
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
    q->waiting++;
    pthread_cond_signal(&q->work);
    while (!j->done) pthread_cond_wait(&q->done, &q->mu);
    pthread_mutex_unlock(&q->mu);
    const int status = j->status;
    if (status) snprintf(err, err_n, "%s", j->err);
    job_free(j);
    return status;
}

int srv_jobs_render(srv_jobs *q, srv_render *r, char *err, size_t err_n) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return snprintf(err, err_n, "out of memory"), 500;
    j->kind = SRV_JOB_RENDER;
    j->render = r;
    return submit(q, j, err, err_n);
}

int srv_jobs_switch(srv_jobs *q, const char *path, char *err, size_t err_n) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return snprintf(err, err_n, "out of memory"), 500;
    }
    j->kind = SRV_JOB_SWITCH;
    return submit(q, j, err, err_n);
}

void srv_jobs_interrupt(srv_jobs *q) {
    pthread_mutex_lock(&q->mu);
    if (q->current) q->interrupt = true;
    pthread_mutex_unlock(&q->mu);
}

void srv_jobs_skip(srv_jobs *q) {
    pthread_mutex_lock(&q->mu);
    if (q->current) q->skip = true;
    pthread_mutex_unlock(&q->mu);
}

void srv_jobs_progress(srv_jobs *q, srv_progress *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&q->mu);
    o->busy = q->current != NULL;
    o->job_count = q->waiting + (o->busy ? 1 : 0);
    o->job_no = q->job_no;
    o->interrupted = q->interrupt;
    o->skipped = q->skip;
    o->sampling_step = q->step;
    o->sampling_steps = q->steps;
    if (o->busy && q->images > 0 && q->steps > 0) {
        /* the images before this batch, and this batch's steps */
        const double done = (double)q->image + (double)q->step / q->steps;
        o->progress = done / q->images;
        if (o->progress > 1) o->progress = 1;
        const double elapsed = sdc_now() - q->t_start;
        if (o->progress > 0) o->eta_relative = elapsed / o->progress - elapsed;
    }
    snprintf(o->job_timestamp, sizeof o->job_timestamp, "%s", o->busy ? q->timestamp : "0");
    pthread_mutex_unlock(&q->mu);
}

unsigned char *srv_jobs_preview(srv_jobs *q, int *w, int *h) {
    unsigned char *copy = NULL;
    *w = *h = 0;
    pthread_mutex_lock(&q->mu);
    if (q->current && q->pv && (copy = malloc((size_t)q->pv_w * q->pv_h * 3))) {
        memcpy(copy, q->pv, (size_t)q->pv_w * q->pv_h * 3);
        *w = q->pv_w, *h = q->pv_h;
    }
    pthread_mutex_unlock(&q->mu);
    return copy;
}

void srv_jobs_counts(srv_jobs *q, int *runs, int *jobs) {
    pthread_mutex_lock(&q->mu);
    *runs = q->runs, *jobs = q->jobs_done;
    pthread_mutex_unlock(&q->mu);
}

void srv_jobs_model(srv_jobs *q, char *path, size_t path_n, char *name, size_t name_n, char *hash, size_t hash_n) {
    pthread_mutex_lock(&q->mu);
    snprintf(path, path_n, "%s", q->model_path ? q->model_path : "");
    snprintf(name, name_n, "%s", q->name);
    snprintf(hash, hash_n, "%s", q->hash);
    pthread_mutex_unlock(&q->mu);
}

cJSON *srv_jobs_embeddings(srv_jobs *q) {
    cJSON *o = cJSON_CreateObject(), *loaded = cJSON_AddObjectToObject(o, "loaded"),
          *skipped = cJSON_AddObjectToObject(o, "skipped");
    pthread_mutex_lock(&q->mu); /* the context is replaced (and freed) only after it is taken out under mu */
    const sdc_embedding_db *db = q->ctx ? q->ctx->emb : NULL;
    for (int i = 0; db && i < db->n; i++) {
        const sdc_embedding *e = &db->e[i];
        if (!e->n_ids) continue; /* a second file of one name */
        cJSON *x = cJSON_AddObjectToObject(e->error ? skipped : loaded, e->name);
        cJSON_AddNullToObject(x, "step");
        cJSON_AddNullToObject(x, "sd_checkpoint");
        cJSON_AddNullToObject(x, "sd_checkpoint_name");
        if (e->error) {
            cJSON_AddNullToObject(x, "shape");
            cJSON_AddNullToObject(x, "vectors");
        } else {
            cJSON_AddNumberToObject(x, "shape", db->width);
            cJSON_AddNumberToObject(x, "vectors", e->n_vecs);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return o;
}
