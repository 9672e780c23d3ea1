/*
 * core_bench: decisions per second of the adjudication core on one thread over
 * a realistic mix (0-4 earlier uses, both OSes, every remedy and cause), and a
 * fixed-count mode for instruction counting under callgrind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adj.h"

#define SCENARIOS   4096
#define HISTORY_MAX 4

struct scenario {
    struct adj_facts facts;
    struct adj_history_entry entries[HISTORY_MAX];
    struct adj_history history;
    struct adj_claim claim;
};

static struct scenario scenarios[SCENARIOS];
static struct policy policy;
static struct policy_set policies = {&policy, 1};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void make_imei(char out[IMEI_LEN], uint32_t serial)
{
    memcpy(out, "35693803", 8);
    for (int i = 13; i >= 8; i--) {
        out[i] = (char)('0' + serial % 10);
        serial /= 10;
    }
    out[14] = imei_check_digit(out);
}

static void make_history(struct scenario *s, date_t applied)
{
    size_t n = rnd(HISTORY_MAX + 1);
    for (size_t i = 0; i < n; i++) {
        struct adj_history_entry *e = &s->entries[i];
        e->incident_on = applied + 30 + (date_t)rnd(700);
        e->remedy = rnd(3) == 0 ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
        e->status = rnd(5) == 0 ? ADJ_STATUS_DENIED : ADJ_STATUS_APPROVED;
        e->withdrawn = rnd(10) == 0;
        e->tag = i;
    }
    s->history.entries = s->entries;
    s->history.len = n;
    s->history.cap = HISTORY_MAX;
}

static void make_claim(struct scenario *s, date_t applied)
{
    struct adj_claim *c = &s->claim;
    memcpy(c->imei, s->facts.device.imei, IMEI_LEN);
    if (rnd(50) == 0)
        make_imei(c->imei, rnd(1000000));
    c->incident_on = applied + 20 + (date_t)rnd(900);
    c->cause = rnd(2) ? ADJ_CAUSE_PHYSICAL_DAMAGE : ADJ_CAUSE_NATURAL_FAILURE;
    c->damage =
        c->cause == ADJ_CAUSE_PHYSICAL_DAMAGE ? (enum adj_damage)(1 + rnd(4)) : ADJ_DAMAGE_NONE;
    c->remedy = rnd(3) == 0 ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
    c->repair_estimate = c->remedy == ADJ_REMEDY_REPAIR ? (int64_t)rnd(90000) : -1;
}

static void make_scenario(struct scenario *s, uint32_t i)
{
    date_t applied = date_from_ymd(2023, 1, 1) + (date_t)rnd(700);
    struct adj_facts *f = &s->facts;
    f->policies = &policies;
    f->sub.option = rnd(100) != 0;
    f->sub.applied_on = applied;
    f->sub.activated_on = applied + (date_t)rnd(3);
    f->sub.cancelled_on = rnd(20) == 0 ? applied + 400 + (date_t)rnd(400) : DATE_NONE;
    f->today = date_from_ymd(2026, 11, 26);
    f->device.present = rnd(40) != 0;
    make_imei(f->device.imei, i);
    f->device.os = rnd(2) ? DEVICE_OS_IOS : DEVICE_OS_ANDROID;
    f->device.release_date = applied - (date_t)rnd(1200);
    f->device.registered_on = f->sub.activated_on + (date_t)rnd(15);
    make_history(s, applied);
    make_claim(s, applied);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decides `count` claims round-robin over the scenarios; returns approvals. */
static uint64_t run(uint64_t count)
{
    uint64_t approved = 0;
    struct adj_decision d;
    for (uint64_t i = 0; i < count; i++) {
        const struct scenario *s = &scenarios[i % SCENARIOS];
        if (adj_decide(&s->facts, &s->history, &s->claim, &d, NULL) == CLAIMD_OK &&
            d.status == ADJ_STATUS_APPROVED)
            approved++;
    }
    return approved;
}

static void usage(void)
{
    fprintf(stderr, "usage: core_bench [--seconds S] [--iterations N]\n"
                    "  --seconds S     time the core for about S seconds (default 2)\n"
                    "  --iterations N  decide exactly N claims, print nothing timed\n"
                    "                  (for valgrind --tool=callgrind)\n");
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    uint64_t iterations = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = strtoull(argv[++i], NULL, 10);
        } else {
            usage();
            return 2;
        }
    }
    policy_default(&policy);
    for (uint32_t i = 0; i < SCENARIOS; i++)
        make_scenario(&scenarios[i], i);
    if (iterations > 0) {
        printf("decided %llu approved %llu\n", (unsigned long long)iterations,
               (unsigned long long)run(iterations));
        return 0;
    }
    run(SCENARIOS * 16); /* warm caches and branch predictors */
    uint64_t total = 0, approved = 0;
    double start = now_seconds(), elapsed;
    do {
        approved += run(1u << 20);
        total += 1u << 20;
        elapsed = now_seconds() - start;
    } while (elapsed < seconds);
    printf("decisions %llu  approved %.1f%%  %.1f ns/decision  %.2f M decisions/s\n",
           (unsigned long long)total, 100.0 * (double)approved / (double)total,
           elapsed * 1e9 / (double)total, (double)total / elapsed / 1e6);
    return 0;
}
