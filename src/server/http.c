/* http.c - the HTTP side of sdc serve, on libmicrohttpd: one thread per
 * connection (a render request waits in its own thread for its job), at
 * most 64 connections, idle ones closed after 60 s; a body over the limit
 * is a 413 (its bytes are read and dropped, never kept); HTTP Basic
 * authentication compared in constant time; every reply from sdapi.c. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "server/server.h"

#include <cjson/cJSON.h>

srv_config srv_config_default(void) {
    srv_config c;
    memset(&c, 0, sizeof c);
    c.model = sdc_params_default();
    c.host = "127.0.0.1";
    c.port = 7860;
    c.queue_max = 16;
    c.body_max = (size_t)32 << 20;
    c.images_max = 64;
    return c;
}

/* ---------------------------------------------------------------- replies */

void srv_reply_json(srv_reply *out, int status, cJSON *j) {
    out->status = status;
    out->body = j ? cJSON_PrintUnformatted(j) : NULL;
    out->len = out->body ? strlen(out->body) : 0;
    out->type = "application/json";
    cJSON_Delete(j);
    if (!out->body) { /* out of memory: say so without allocating */
        out->status = 500;
        out->len = 0;
    }
}

void srv_reply_detail(srv_reply *out, int status, const char *detail) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "detail", detail);
    srv_reply_json(out, status, j);
}

void srv_reply_field(srv_reply *out, const char *field, const char *msg, const char *type) {
    cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "detail"), *e = cJSON_CreateObject();
    cJSON *loc = cJSON_AddArrayToObject(e, "loc");
    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
    if (field) cJSON_AddItemToArray(loc, cJSON_CreateString(field));
    cJSON_AddStringToObject(e, "msg", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddItemToArray(arr, e);
    srv_reply_json(out, 422, j);
}

/* -------------------------------------------------------- authentication */

/* a == b in time that depends on the lengths only */
static bool same(const char *a, const char *b) {
    const size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < na; i++) d |= (unsigned char)a[i] ^ (unsigned char)b[i % (nb ? nb : 1)];
    return d == 0;
}

static bool authorized(const srv *s, struct MHD_Connection *c) {
    char *pass = NULL, *user = MHD_basic_auth_get_username_password(c, &pass);
    bool ok = false;
    if (user && pass) {
        const size_t n = strlen(user) + strlen(pass) + 2;
        char *both = malloc(n);
        if (both) {
            snprintf(both, n, "%s:%s", user, pass);
            for (int i = 0; i < s->n_users; i++) ok |= same(both, s->users[i]); /* every one compared */
            free(both);
        }
    }
    MHD_free(user);
    MHD_free(pass);
    return ok;
}

/* ------------------------------------------------------------ requests */

typedef struct conn_state {
    char *buf;
    size_t n, cap;
    bool too_large, counted;
} conn_state;

static enum MHD_Result send_reply(struct MHD_Connection *c, srv_reply *rp, bool auth_fail) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rp->len, rp->body ? rp->body : (void *)"", MHD_RESPMEM_MUST_COPY);
    free(rp->body);
    rp->body = NULL;
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rp->type ? rp->type : "application/json");
    char retry[16];
    if (rp->retry_after > 0) {
        snprintf(retry, sizeof retry, "%d", rp->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    }
    enum MHD_Result res = auth_fail ? MHD_queue_basic_auth_fail_response(c, "sdc", r)
                                    : MHD_queue_response(c, (unsigned)rp->status, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    srv *s = cls;
    conn_state *st = *con_cls;
    if (!st) { /* the headers: a declared length past the limit fails now */
        st = calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        *con_cls = st;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.body_max) st->too_large = true;
        return MHD_YES;
    }
    if (*upload_data_size) { /* the body, bounded */
        const size_t add = *upload_data_size;
        *upload_data_size = 0;
        if (st->too_large) return MHD_YES;
        if (add > s->cfg.body_max - st->n) {
            st->too_large = true;
            free(st->buf);
            st->buf = NULL;
            st->n = st->cap = 0;
            return MHD_YES;
        }
        if (st->n + add + 1 > st->cap) {
            size_t cap = st->cap ? st->cap : 4096;
            while (cap < st->n + add + 1) cap *= 2;
            char *b = realloc(st->buf, cap);
            if (!b) return MHD_NO;
            st->buf = b, st->cap = cap;
        }
        memcpy(st->buf + st->n, upload_data, add);
        st->n += add;
        st->buf[st->n] = '\0';
        return MHD_YES;
    }
    srv_reply rp = {0};
    st->counted = true; /* in flight until on_done: srv_stop waits for the reply to go out */
    __atomic_add_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
    if (s->n_users && !authorized(s, c)) {
        srv_reply_detail(&rp, 401, "Incorrect username or password");
        return send_reply(c, &rp, true);
    }
    if (st->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is over %zu bytes", s->cfg.body_max);
        srv_reply_detail(&rp, 413, msg);
        return send_reply(c, &rp, false);
    }
    sdapi_handle(s, method, url, st->buf ? st->buf : "", st->n, &rp);
    return send_reply(c, &rp, false);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c, (void)toe;
    srv *s = cls;
    conn_state *st = *con_cls;
    if (st && st->counted) __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
    if (st) free(st->buf), free(st);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- start */

static int parse_users(srv *s, const char *spec) {
    if (!spec || !*spec) return 0;
    char *copy = strdup(spec);
    if (!copy) return sdc_fail(SDC_ERR_OOM, "out of memory"), -1;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strchr(t, ':') || t[0] == ':') {
            sdc_fail(SDC_ERR_ARG, "--api-auth: \"%s\" is not user:password", t); /* (before t's memory goes) */
            free(copy);
            return -1;
        }
        char **u = realloc(s->users, (size_t)(s->n_users + 1) * sizeof *u);
        if (!u || !(u[s->n_users] = strdup(t))) {
            if (u) s->users = u;
            free(copy);
            return sdc_fail(SDC_ERR_OOM, "out of memory"), -1;
        }
        s->users = u;
        s->n_users++;
    }
    free(copy);
    if (!s->n_users) return sdc_fail(SDC_ERR_ARG, "--api-auth: no user:password given"), -1;
    return 0;
}

int srv_start(const srv_config *cfg, srv **out) {
    *out = NULL;
    srv *s = calloc(1, sizeof *s);
    if (!s) return sdc_fail(SDC_ERR_OOM, "out of memory"), -1;
    s->cfg = *cfg;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (cfg->port < 0 || cfg->port > 65535 || inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        free(s);
        return sdc_fail(SDC_ERR_ARG, "--host %s --port %d: expected an IPv4 address and a port 0..65535", cfg->host,
                        cfg->port), -1;
    }
    if (parse_users(s, cfg->auth) || srv_jobs_start(&cfg->model, cfg->queue_max, cfg->preview_every, &s->jobs)) {
        srv_stop(s);
        return -1;
    }
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                 on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, on_done, s, MHD_OPTION_END);
    if (!s->daemon) {
        srv_stop(s);
        return sdc_fail(SDC_ERR_IO, "cannot listen on %s:%d (in use, or not an address of this machine)", cfg->host,
                        cfg->port), -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    *out = s;
    return 0;
}

int srv_port(const srv *s) { return s->port; }

void srv_stop(srv *s) {
    if (!s) return;
    /* the jobs first: the image in progress finishes, the waiting ones
     * get their error, and their connections their reply; then the
     * connections end, and only then the queue's memory goes */
    srv_jobs_stop(s->jobs);
    /* the replies of the requests in flight go out first (10 s at most:
     * a new request now gets its 503 at once) */
    for (int i = 0; i < 1000 && __atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST) > 0; i++) usleep(10000);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    srv_jobs_free(s->jobs);
    for (int i = 0; i < s->n_users; i++) free(s->users[i]);
    free(s->users);
    free(s);
}
