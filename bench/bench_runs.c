/* bench_runs.c - whole programs as the benchmark's subjects: `sdc txt2img`
 * and, where the user names its binary (--sdcpp), stable-diffusion.cpp's
 * CLI, each run as a child process on the same model, size, sampler,
 * steps, guidance and thread count, its wall time and peak resident memory
 * taken from the kernel (wait4), its own log parsed for its stages. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "common.h"

/* Run argv to completion with stdout and stderr into a temporary file;
 * *log gets its text (malloc'd). 0 when it exited with 0. */
static int run_child(char *const argv[], double *wall, double *rss_gib, char **log) {
    char path[] = "/tmp/sdc-bench-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return -1;
    unlink(path);
    const double t0 = sdc_now();
    const pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        close(fd);
        return -1;
    }
    *wall = sdc_now() - t0;
    *rss_gib = ru.ru_maxrss / 1048576.0;
    const off_t n = lseek(fd, 0, SEEK_END);
    *log = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (*log) {
        ssize_t got = n > 0 ? pread(fd, *log, (size_t)n, 0) : 0;
        (*log)[got > 0 ? got : 0] = '\0';
    }
    close(fd);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* the number after the last occurrence of `key` in s, or -1 */
static double after_last(const char *s, const char *key) {
    const char *hit = NULL;
    for (const char *p = s; (p = strstr(p, key)); p++) hit = p;
    return hit ? atof(hit + strlen(key)) : -1.0;
}

/* the sum of the numbers after every occurrence of `key` (a stage that
 * prints once per model component), or -1 where there is none */
static double after_all(const char *s, const char *key) {
    double sum = 0;
    bool any = false;
    for (const char *p = s; (p = strstr(p, key)); p++) sum += atof(p + strlen(key)), any = true;
    return any ? sum : -1.0;
}

int bench_sdc_cli(const char *sdc, const char *model, int px, int steps, int threads, cli_result *r) {
    char size[16], st[16], th[16];
    snprintf(size, sizeof size, "%d", px);
    snprintf(st, sizeof st, "%d", steps);
    snprintf(th, sizeof th, "%d", threads);
    char *argv[] = {(char *)sdc, "txt2img", "-m", (char *)model, "-p", "a photograph of an astronaut riding a horse",
                    "-W", size, "-H", size, "--steps", st, "--cfg", "7", "--sampler", "euler", "--seed", "42",
                    "--threads", th, "--backend", "cpu", "-o", "/tmp/sdc-bench-cli.png", NULL};
    char *log = NULL;
    memset(r, 0, sizeof *r);
    const int rc = run_child(argv, &r->wall, &r->rss_gib, &log);
    if (rc && log) fprintf(stderr, "bench: %s failed:\n%s\n", sdc, log);
    free(log);
    unlink("/tmp/sdc-bench-cli.png");
    return rc;
}

int bench_sdcpp(const char *bin, const char *model, int px, int steps, int threads, cli_result *r) {
    char size[16], st[16], th[16];
    snprintf(size, sizeof size, "%d", px);
    snprintf(st, sizeof st, "%d", steps);
    snprintf(th, sizeof th, "%d", threads);
    char *argv[] = {(char *)bin, "-m", (char *)model, "-p", "a photograph of an astronaut riding a horse",
                    "-W", size, "-H", size, "--steps", st, "--cfg-scale", "7", "--sampling-method", "euler",
                    "-s", "42", "-t", th, "--eager-load", "-o", "/tmp/sdc-bench-sdcpp.png", "-v", NULL};
    char *log = NULL;
    memset(r, 0, sizeof *r);
    const int rc = run_child(argv, &r->wall, &r->rss_gib, &log);
    if (rc) {
        fprintf(stderr, "bench: %s failed:\n%s\n", bin, log ? log : "");
    } else if (log) {
        r->load = after_all(log, "loading tensors completed, taking ");
        r->sampling = after_last(log, "sampling completed, taking ");
        r->decode = after_last(log, "decode_first_stage completed, taking ");
    }
    free(log);
    unlink("/tmp/sdc-bench-sdcpp.png");
    return rc;
}
