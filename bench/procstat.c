/* CPU time of processes, of a PostgreSQL cluster and of the machine, from /proc (Linux). */
#include "procstat.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fields 14..17 of /proc/<pid>/stat (utime stime cutime cstime) and the parent, in ticks. */
static bool proc_stat(const char *pid, long *ppid, unsigned long long t[4])
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    char *paren = strrchr(line, ')');
    return paren != NULL &&
           sscanf(paren + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                  ppid, &t[0], &t[1], &t[2], &t[3]) == 5;
}

double procstat_pid_seconds(long pid)
{
    char name[32];
    long ppid;
    unsigned long long t[4];
    snprintf(name, sizeof(name), "%ld", pid);
    return proc_stat(name, &ppid, t) ? (double)(t[0] + t[1]) / (double)sysconf(_SC_CLK_TCK) : 0;
}

/*
 * The postmaster and its children (backends, WAL writer, checkpointer...),
 * plus what children that have exited left in the postmaster's cutime.
 */
double procstat_cluster_seconds(long postmaster)
{
    unsigned long long ticks = 0;
    DIR *d = postmaster > 0 ? opendir("/proc") : NULL;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        long ppid, pid = strtol(e->d_name, NULL, 10);
        unsigned long long t[4];
        if (pid <= 0 || !proc_stat(e->d_name, &ppid, t))
            continue;
        if (pid == postmaster)
            ticks += t[0] + t[1] + t[2] + t[3];
        else if (ppid == postmaster)
            ticks += t[0] + t[1];
    }
    if (d != NULL)
        closedir(d);
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

void procstat_machine_seconds(double *busy, double *total)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    *busy = *total = 0;
    if (f == NULL)
        return;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return;
    double tck = (double)sysconf(_SC_CLK_TCK), sum = 0;
    for (int i = 0; i < 8; i++)
        sum += (double)v[i];
    *total = sum / tck;
    *busy = (sum - (double)v[3] - (double)v[4]) / tck; /* minus idle and iowait */
}
