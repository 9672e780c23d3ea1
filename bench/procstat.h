/*
 * CPU accounting for the benchmarks, from /proc (Linux): a process, a
 * PostgreSQL cluster (its postmaster and children) and the whole machine.
 */
#ifndef CLAIMD_BENCH_PROCSTAT_H
#define CLAIMD_BENCH_PROCSTAT_H

/** utime + stime of a process, in seconds (0 when it is gone). */
double procstat_pid_seconds(long pid);

/**
 * The postmaster and its children (backends, WAL writer, checkpointer...),
 * plus what exited children left in the postmaster's cutime, in seconds.
 * Other clusters on the machine are left out.
 */
double procstat_cluster_seconds(long postmaster);

/** Busy (all but idle and iowait) and total CPU seconds of the machine since boot. */
void procstat_machine_seconds(double *busy, double *total);

#endif
