/* backend_cpu_memory.c - how much more host memory the CPU backend could
 * take: /proc/meminfo's MemAvailable, or less where the process's cgroup
 * has a memory limit (limit - usage), as the kernel would enforce it.
 * These are the kernel's files, read bounded and parsed strictly all the
 * same; a file that is absent or not understood says nothing. */
#include "backend/backend_cpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole small file into buf (NUL-terminated); false if it cannot be read
 * or does not fit. */
static bool read_small(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    const size_t n = fread(buf, 1, cap - 1, f);
    const bool whole = !ferror(f) && feof(f);
    fclose(f);
    buf[n] = '\0';
    return whole;
}

/* a decimal count at s, then only blanks; *end (may be NULL) after it */
static bool parse_count(const char *s, unsigned long long *v, const char **end) {
    while (*s == ' ' || *s == '\t') s++;
    if (*s < '0' || *s > '9') return false;
    char *e = NULL;
    errno = 0;
    *v = strtoull(s, &e, 10);
    if (errno) return false;
    if (end) *end = e;
    return true;
}

bool sdc_meminfo_available(const char *text, size_t *bytes) {
    static const char key[] = "MemAvailable:";
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, key, sizeof key - 1)) continue;
        unsigned long long kb;
        const char *e;
        if (!parse_count(line + sizeof key - 1, &kb, &e) || strncmp(e, " kB", 3) || kb > SIZE_MAX / 1024)
            return false;
        *bytes = (size_t)kb * 1024;
        return true;
    }
    return false;
}

/* a cgroup file of one count (or "max": no limit, *v = SIZE_MAX) */
static bool parse_cgroup_value(const char *text, unsigned long long *v) {
    const char *e;
    if (!strcmp(text, "max\n") || !strcmp(text, "max")) {
        *v = SIZE_MAX;
        return true;
    }
    if (!parse_count(text, v, &e)) return false;
    return !strcmp(e, "\n") || !*e;
}

bool sdc_cgroup_room(const char *limit, const char *usage, size_t *bytes) {
    unsigned long long l, u;
    if (!parse_cgroup_value(limit, &l) || !parse_cgroup_value(usage, &u)) return false;
    if (l == SIZE_MAX) *bytes = SIZE_MAX; /* no limit */
    else *bytes = l <= u ? 0 : (size_t)(l - u > SIZE_MAX ? SIZE_MAX : l - u);
    return true;
}

/* The room under the memory limit of cgroup directory dir (v2 file names,
 * else v1's). */
static bool cgroup_dir_room(const char *dir, size_t *bytes) {
    static const char *const names[2][2] = {{"memory.max", "memory.current"},
                                            {"memory.limit_in_bytes", "memory.usage_in_bytes"}};
    char path[4352], limit[64], usage[64];
    for (int v = 0; v < 2; v++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[v][0]);
        if (!read_small(path, limit, sizeof limit)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, names[v][1]);
        if (read_small(path, usage, sizeof usage) && sdc_cgroup_room(limit, usage, bytes)) return true;
    }
    return false;
}

/* The process's memory cgroup from /proc/self/cgroup ("0::/path" for v2,
 * "N:...memory...:/path" for v1), under /sys/fs/cgroup; where that
 * directory is not visible (a container's own namespace), the mount's
 * root, which is then the container's. */
static bool cgroup_room(size_t *bytes) {
    char text[4096], dir[4200];
    if (!read_small("/proc/self/cgroup", text, sizeof text)) return false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        const char *ctl = c1 + 1, *path = c2 + 1;
        const bool v2 = !*ctl, v1 = strstr(ctl, "memory") != NULL;
        if (!v2 && !v1) continue;
        const char *mnt = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
        snprintf(dir, sizeof dir, "%s%s", mnt, path);
        if (cgroup_dir_room(dir, bytes) || cgroup_dir_room(mnt, bytes)) return true;
    }
    return false;
}

bool sdc_cpu_available(sdc_backend *be, size_t *bytes) {
    (void)be;
    char text[16384];
    size_t mem = 0, room = 0;
    if (!read_small("/proc/meminfo", text, sizeof text) || !sdc_meminfo_available(text, &mem)) return false;
    *bytes = cgroup_room(&room) && room < mem ? room : mem;
    return true;
}
