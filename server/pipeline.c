/*
 * The decision pipeline. It owns the queue of waiting claims, a fixed set of
 * batch slots (one per pool connection, every buffer allocated at creation)
 * and the set of subscriptions in flight, which keeps a subscription's claims
 * out of two transactions at once so that their order holds.
 *
 * A batch is one implicit transaction in libpq's pipeline mode: the reads go
 * out with a flush request (no Sync, so the transaction stays open), the core
 * decides when they are back, and the INSERT goes out with the Sync that
 * commits. Any error before the Sync rolls everything back. A unique
 * violation or deadlock means a concurrent writer: the batch is re-run and
 * then sees what that writer committed.
 */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgutil.h"

#include "log.h"

/* ------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------ */

#define TS(expr) RECORD_TS(expr)

const struct pgconn_statement pipeline_statements[] = {
    {"pl_lock",
     "SELECT s.id, s.subscription_ref, " FACTS_SELECT " FROM subscriptions s LEFT JOIN devices d "
     "ON d.tenant_id = s.tenant_id AND d.subscription_id = s.id "
     "WHERE s.tenant_id = $1::bigint AND s.subscription_ref = ANY ($2::text[]) "
     "ORDER BY s.id FOR UPDATE OF s"},
    {"pl_existing",
     "SELECT encode(c.fingerprint, 'hex'), " RECORD_SELECT " FROM claims c "
     "JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.id = c.subscription_id "
     "WHERE c.tenant_id = $1::bigint AND c.claim_ref = ANY ($2::text[])"},
    {"pl_history",
     "SELECT s.id, c.seq, c.incident_on, c.remedy, c.withdrawn_at IS NOT NULL "
     "FROM unnest($2::text[], $3::date[], $4::date[]) AS r(ref, lo, hi) "
     "JOIN subscriptions s ON s.tenant_id = $1::bigint AND s.subscription_ref = r.ref "
     "JOIN claims c ON c.tenant_id = $1::bigint AND c.subscription_id = s.id "
     "AND c.status = 'approved' AND c.incident_on BETWEEN r.lo AND r.hi "
     "ORDER BY s.id, c.seq"},
    {"pl_seq", "SELECT nextval(pg_get_serial_sequence('claims', 'seq')) "
               "FROM generate_series(1, $1::int)"},
    {"pl_insert",
     "INSERT INTO claims (tenant_id, seq, claim_ref, subscription_id, fingerprint, imei, "
     "incident_on, cause, damage, remedy, repair_estimate, status, reasons, covered_amount, "
     "customer_charge, use_number, uses_remaining, window_start, window_end, loaner, "
     "policy_version, api_key_id, subscription_snapshot, device_snapshot, counted_uses) "
     "SELECT $1::bigint, r.seq, r.claim_ref, r.sub_id, decode(r.fp, 'hex'), r.imei, r.incident_on, "
     "r.cause, r.damage, r.remedy, r.est, r.status, string_to_array(r.reasons, ','), r.covered, "
     "r.charge, r.use_number, r.uses_remaining, r.ws, r.we, r.loaner, r.pv, r.key_id, "
     "jsonb_build_object('applied_on', s.applied_on, 'activated_on', s.activated_on, "
     "'cancelled_on', s.cancelled_on, 'device_protection', s.device_protection), "
     "CASE WHEN d.subscription_id IS NULL THEN NULL ELSE jsonb_build_object('imei', d.imei, "
     "'os', d.os, 'model', d.model, 'release_date', d.release_date, 'purchased_from', "
     "d.purchased_from, 'registered_on', d.registered_on) END, "
     "string_to_array(r.counted, ',')::bigint[] "
     "FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::date[], "
     "$8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], "
     "$14::bigint[], $15::bigint[], $16::int[], $17::int[], $18::date[], $19::date[], "
     "$20::text[], $21::text[], $22::bigint[], $23::text[]) WITH ORDINALITY AS r(seq, claim_ref, "
     "sub_id, fp, imei, incident_on, cause, damage, remedy, est, status, reasons, covered, "
     "charge, use_number, uses_remaining, ws, we, loaner, pv, key_id, counted, ord) "
     "JOIN subscriptions s ON s.tenant_id = $1::bigint AND s.id = r.sub_id "
     "LEFT JOIN devices d ON d.tenant_id = $1::bigint AND d.subscription_id = r.sub_id "
     "ORDER BY r.ord "
     "RETURNING seq, " TS("decided_at")},
};
const size_t pipeline_nstatements = sizeof(pipeline_statements) / sizeof(pipeline_statements[0]);

enum { Q_LOCK = 0, Q_EXISTING, Q_HISTORY, Q_SEQ, Q_READS, Q_INSERT = Q_READS };

#define INSERT_PARAMS 23
#define COUNTED_MAX   32

/* ------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------ */

enum req_state {
    RS_PENDING = 0, /* to decide */
    RS_NOTFOUND,    /* no such subscription */
    RS_REPLAY,      /* stored before with the same body */
    RS_CONFLICT,    /* stored before with another body */
    RS_REFUSED,     /* refused by the core (no policy, future): nothing stored */
    RS_DECIDED,     /* decided now; inserted with the batch */
};

struct batch_sub {
    const char *ref;
    uint64_t hash;
    bool found;
    int64_t id;
    struct adj_subscription sub;
    struct adj_device dev;
    size_t hist_start;
    size_t hist_len;
    date_t lo;
    date_t hi;
};

/* Per claim of a batch: its subscription, its state and what it counted. */
struct batch_item {
    size_t sub;
    enum req_state state;
    size_t group_pos; /* position among its subscription's decided claims */
    int64_t seq;
    int ncounted;
    uint64_t counted[COUNTED_MAX];
};

struct batch {
    struct pgjob job; /* first: the pool hands this back */
    struct pipeline *p;
    bool in_use;
    int64_t tenant_id;
    size_t n;
    struct pipeline_req **reqs;
    struct batch_item *items;
    size_t nsubs;
    struct batch_sub *subs;
    struct adj_history_entry *history; /* ADJ_HISTORY_MAX entries, grouped by sub */
    size_t nhist;
    int64_t *seqs;
    size_t nseqs;
    struct adj_claim *group;        /* scratch: one subscription's claims */
    size_t *group_idx;              /* scratch: their batch indexes */
    struct adj_outcome *outcomes;   /* scratch: their outcomes */
    struct adj_history_entry *work; /* scratch: their history */
    int query;                      /* index of the command whose results arrive */
    bool writing;                   /* the INSERT and Sync are out */
    bool failed;                    /* a command failed: the transaction is lost */
    char sqlstate[6];
    size_t next_seq_row; /* RETURNING rows matched so far */
    char *buf;
    size_t buf_len;
    size_t buf_cap;
    bool buf_overflow;
};

/* Subscriptions in flight: open addressing on their hash, with counts. */
struct subset {
    uint64_t *keys;
    uint32_t *counts;
    size_t cap; /* a power of two */
};

struct pipeline {
    struct dbpool *pool;
    struct pipeline_config cfg;
    const struct policy_set *policies;
    date_t today;
    struct pipeline_req *head;
    struct pipeline_req *tail;
    size_t queued;
    struct batch *batches;
    size_t nbatches;
    struct subset inflight;
    uint64_t *blocked; /* scratch of form(): subscriptions held back this round */
    struct pipeline_stats stats;
    bool kicking;
    bool kick_again;
};

static void kick(struct pipeline *p);

/* ------------------------------------------------------------------------
 * Hashing and the in-flight set
 * ------------------------------------------------------------------------ */

static uint64_t hash_sub(int64_t tenant, const char *ref)
{
    uint64_t h = 1469598103934665603u ^ (uint64_t)tenant;
    for (const char *s = ref; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h | 1; /* 0 marks an empty slot */
}

static size_t slot_of(const struct subset *s, uint64_t key)
{
    size_t i = (size_t)(key * 0x9e3779b97f4a7c15u) & (s->cap - 1);
    while (s->keys[i] != 0 && s->keys[i] != key)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static bool subset_has(const struct subset *s, uint64_t key)
{
    return s->keys[slot_of(s, key)] == key;
}

static void subset_add(struct subset *s, uint64_t key)
{
    size_t i = slot_of(s, key);
    s->keys[i] = key;
    s->counts[i]++;
}

/* Removes one count; an emptied slot is refilled by backward shifting. */
static void subset_remove(struct subset *s, uint64_t key)
{
    size_t i = slot_of(s, key);
    if (s->keys[i] != key || --s->counts[i] > 0)
        return;
    size_t mask = s->cap - 1, j = i;
    s->keys[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (s->keys[j] == 0)
            return;
        size_t home = (size_t)(s->keys[j] * 0x9e3779b97f4a7c15u) & mask;
        if (((j - home) & mask) < ((j - i) & mask))
            continue;
        s->keys[i] = s->keys[j];
        s->counts[i] = s->counts[j];
        s->keys[j] = 0;
        s->counts[j] = 0;
        i = j;
    }
}

/* ------------------------------------------------------------------------
 * Parameter text: PostgreSQL array literals in the batch's buffer
 * ------------------------------------------------------------------------ */

static void buf_reset(struct batch *b)
{
    b->buf_len = 0;
    b->buf_overflow = false;
}

static void put(struct batch *b, const char *s, size_t n)
{
    if (b->buf_len + n + 1 > b->buf_cap) {
        b->buf_overflow = true;
        return;
    }
    memcpy(b->buf + b->buf_len, s, n);
    b->buf_len += n;
}

static void put_str(struct batch *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_int(struct batch *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    put(b, tmp, (size_t)n);
}

static void put_date(struct batch *b, date_t d)
{
    char tmp[DATE_STR_SIZE];
    date_format(d, tmp);
    put(b, tmp, DATE_STR_SIZE - 1);
}

/* Starts a NUL-terminated string in the buffer; returns its offset. */
static size_t begin(struct batch *b)
{
    return b->buf_len;
}

/* Terminates the string begun at off; returns it (NULL after an overflow). */
static const char *end(struct batch *b, size_t off)
{
    if (b->buf_overflow)
        return NULL;
    b->buf[b->buf_len++] = '\0';
    return b->buf + off;
}

/* An array element separator. */
static void sep(struct batch *b, size_t i)
{
    if (i > 0)
        put(b, ",", 1);
}

/*
 * A quoted text element. Every value put here is a validated reference,
 * enum name, hex string or list of codes: none holds '"' or '\\', so quoting
 * needs no escapes, and quoting keeps a reference named NULL a string.
 */
static void put_quoted(struct batch *b, const char *s)
{
    put(b, "\"", 1);
    put_str(b, s);
    put(b, "\"", 1);
}

/* ------------------------------------------------------------------------
 * Phase one: lock, facts, stored claims, history, sequence numbers
 * ------------------------------------------------------------------------ */

static const char *tenant_text(struct batch *b)
{
    size_t off = begin(b);
    put_int(b, b->tenant_id);
    return end(b, off);
}

static const char *sub_refs(struct batch *b)
{
    size_t off = begin(b);
    put(b, "{", 1);
    for (size_t i = 0; i < b->nsubs; i++) {
        sep(b, i);
        put_quoted(b, b->subs[i].ref);
    }
    put(b, "}", 1);
    return end(b, off);
}

static const char *claim_refs(struct batch *b)
{
    size_t off = begin(b);
    put(b, "{", 1);
    for (size_t i = 0; i < b->n; i++) {
        sep(b, i);
        put_quoted(b, b->reqs[i]->claim_ref);
    }
    put(b, "}", 1);
    return end(b, off);
}

static const char *sub_dates(struct batch *b, bool hi)
{
    size_t off = begin(b);
    put(b, "{", 1);
    for (size_t i = 0; i < b->nsubs; i++) {
        sep(b, i);
        put_date(b, hi ? b->subs[i].hi : b->subs[i].lo);
    }
    put(b, "}", 1);
    return end(b, off);
}

/*
 * Every window holds its claim's incident and spans at most 12 months, so
 * the uses a claim can count lie within 12 months either side of it: a safe
 * range to read before the subscription's dates are known. After the reads,
 * decide_sub() checks it against the core's own adj_history_range.
 */
static void history_bounds(struct batch *b)
{
    for (size_t i = 0; i < b->nsubs; i++) {
        b->subs[i].lo = DATE_NONE;
        b->subs[i].hi = DATE_NONE;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct batch_sub *s = &b->subs[b->items[i].sub];
        date_t d = b->reqs[i]->claim.incident_on;
        date_t lo = date_add_months(d, -12), hi = date_add_months(d, 12);
        if (s->lo == DATE_NONE || lo < s->lo)
            s->lo = lo;
        if (s->hi == DATE_NONE || hi > s->hi)
            s->hi = hi;
    }
}

static int send_reads(struct batch *b, struct pgconn *c)
{
    char count[24];
    buf_reset(b);
    history_bounds(b);
    snprintf(count, sizeof(count), "%zu", b->n);
    const char *tenant = tenant_text(b), *subs = sub_refs(b), *refs = claim_refs(b);
    const char *lo = sub_dates(b, false), *hi = sub_dates(b, true);
    if (b->buf_overflow)
        return CLAIMD_ECAPACITY;
    const char *lock[] = {tenant, subs};
    const char *existing[] = {tenant, refs};
    const char *history[] = {tenant, subs, lo, hi};
    const char *seq[] = {count};
    int rc = pgconn_send(c, "pl_lock", 2, lock);
    rc = rc ? rc : pgconn_send(c, "pl_existing", 2, existing);
    rc = rc ? rc : pgconn_send(c, "pl_history", 4, history);
    rc = rc ? rc : pgconn_send(c, "pl_seq", 1, seq);
    return rc ? rc : pgconn_flush_request(c);
}

static int job_start(struct pgjob *job, struct pgconn *c)
{
    struct batch *b = (struct batch *)job;
    b->query = 0;
    b->writing = false;
    b->failed = false;
    b->sqlstate[0] = '\0';
    b->nhist = 0;
    b->nseqs = 0;
    b->next_seq_row = 0;
    for (size_t i = 0; i < b->n; i++) {
        b->items[i].state = RS_PENDING;
        b->items[i].ncounted = 0;
        b->items[i].seq = 0;
    }
    for (size_t i = 0; i < b->nsubs; i++) {
        b->subs[i].found = false;
        b->subs[i].hist_len = 0;
    }
    return send_reads(b, c);
}

/* ------------------------------------------------------------------------
 * Reading rows
 * ------------------------------------------------------------------------ */

static date_t col_date(const PGresult *res, int row, int col)
{
    date_t d = DATE_NONE;
    const char *s = PQgetvalue(res, row, col);
    if (!PQgetisnull(res, row, col) && date_parse(s, strlen(s), &d) != 0)
        d = DATE_NONE;
    return d;
}

static int64_t col_int(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static struct batch_sub *sub_by_ref(struct batch *b, const char *ref)
{
    for (size_t i = 0; i < b->nsubs; i++) {
        if (strcmp(b->subs[i].ref, ref) == 0)
            return &b->subs[i];
    }
    return NULL;
}

static struct batch_sub *sub_by_id(struct batch *b, int64_t id)
{
    for (size_t i = 0; i < b->nsubs; i++) {
        if (b->subs[i].found && b->subs[i].id == id)
            return &b->subs[i];
    }
    return NULL;
}

static int read_lock(struct batch *b, const PGresult *res)
{
    for (int row = 0; row < PQntuples(res); row++) {
        struct batch_sub *s = sub_by_ref(b, PQgetvalue(res, row, 1));
        if (s == NULL)
            continue;
        s->found = true;
        s->id = col_int(res, row, 0);
        if (record_read_facts(res, row, 2, &s->sub, &s->dev) != 0)
            return CLAIMD_EDB;
    }
    return 0;
}

/* A stored claim under one of the batch's claim_refs: a replay or a reuse. */
static int read_existing(struct batch *b, const PGresult *res)
{
    char hex[2 * PIPELINE_FINGERPRINT_LEN + 1];
    for (int row = 0; row < PQntuples(res); row++) {
        const char *ref = PQgetvalue(res, row, 2);
        for (size_t i = 0; i < b->n; i++) {
            struct pipeline_req *r = b->reqs[i];
            if (strcmp(r->claim_ref, ref) != 0)
                continue;
            pgutil_hex(r->fingerprint, PIPELINE_FINGERPRINT_LEN, hex);
            if (strcmp(hex, PQgetvalue(res, row, 0)) != 0) {
                b->items[i].state = RS_CONFLICT;
                continue;
            }
            if (record_read(res, row, 1, &r->rec) != 0)
                return CLAIMD_EDB;
            b->items[i].state = RS_REPLAY;
        }
    }
    return 0;
}

/* History rows come ordered by subscription id: each one's rows are contiguous. */
static int read_history(struct batch *b, const PGresult *res)
{
    struct batch_sub *cur = NULL;
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t sub_id = col_int(res, row, 0);
        if (cur == NULL || cur->id != sub_id) {
            cur = sub_by_id(b, sub_id);
            if (cur == NULL)
                return CLAIMD_EDB;
            cur->hist_start = b->nhist;
            cur->hist_len = 0;
        }
        if (b->nhist >= ADJ_HISTORY_MAX)
            return CLAIMD_ECAPACITY;
        struct adj_history_entry *e = &b->history[b->nhist++];
        e->tag = (uint64_t)col_int(res, row, 1);
        e->incident_on = col_date(res, row, 2);
        e->remedy = strcmp(PQgetvalue(res, row, 3), "exchange") == 0 ? ADJ_REMEDY_EXCHANGE
                                                                     : ADJ_REMEDY_REPAIR;
        e->status = ADJ_STATUS_APPROVED;
        e->withdrawn = PQgetvalue(res, row, 4)[0] == 't';
        cur->hist_len++;
    }
    return 0;
}

static void read_seqs(struct batch *b, const PGresult *res)
{
    for (int row = 0; row < PQntuples(res) && b->nseqs < b->n; row++)
        b->seqs[b->nseqs++] = col_int(res, row, 0);
}

/* ------------------------------------------------------------------------
 * Deciding
 * ------------------------------------------------------------------------ */

static date_t today_of(const struct pipeline *p)
{
    return p->today != DATE_NONE ? p->today : date_japan_of_unix((int64_t)time(NULL));
}

/* The uses claim j of a group counted: history uses in its window, earlier approvals of the group.
 */
static int collect_counted(struct batch_item *it, const struct adj_history *h,
                           const struct adj_decision *d, size_t j)
{
    it->ncounted = 0;
    for (size_t k = 0; k < h->len; k++) {
        const struct adj_history_entry *e = &h->entries[k];
        if (e->status != ADJ_STATUS_APPROVED || e->withdrawn || e->incident_on < d->window.start ||
            e->incident_on > d->window.end)
            continue;
        if ((e->tag & ADJ_TAG_BATCH) && (e->tag & ~ADJ_TAG_BATCH) >= j)
            continue;
        if (it->ncounted == COUNTED_MAX)
            return CLAIMD_ECAPACITY;
        it->counted[it->ncounted++] = e->tag;
    }
    return 0;
}

/* Decides the pending claims of subscription k, in batch order, through the core. */
static int decide_sub(struct batch *b, size_t k, date_t today)
{
    struct batch_sub *s = &b->subs[k];
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].sub != k || b->items[i].state != RS_PENDING)
            continue;
        b->group[n] = b->reqs[i]->claim;
        b->group_idx[n++] = i;
    }
    if (n == 0)
        return 0;
    memcpy(b->work, b->history + s->hist_start, s->hist_len * sizeof(*b->work));
    struct adj_history h = {b->work, s->hist_len, s->hist_len + n};
    struct adj_facts f = {b->p->policies, s->sub, s->dev, today};
    struct window need;
    if (adj_history_range(&f, b->group, n, &need) == 0 && (need.start < s->lo || need.end > s->hi))
        return CLAIMD_EDB; /* the history read would not hold every use the core counts */
    if (adj_decide_batch(&f, &h, b->group, n, b->outcomes) != 0)
        return CLAIMD_ECAPACITY;
    for (size_t j = 0; j < n; j++) {
        struct batch_item *it = &b->items[b->group_idx[j]];
        struct pipeline_req *r = b->reqs[b->group_idx[j]];
        it->group_pos = j;
        if (b->outcomes[j].rc != 0) {
            it->state = RS_REFUSED;
            r->rc = b->outcomes[j].rc;
            continue;
        }
        it->state = RS_DECIDED;
        record_from_decision(&r->rec, &r->claim, &b->outcomes[j].decision);
        int rc = collect_counted(it, &h, &b->outcomes[j].decision, j);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Batch tags of counted uses become the sequence numbers of those claims. */
static void resolve_counted(struct batch *b, size_t k)
{
    for (size_t i = 0; i < b->n; i++) {
        struct batch_item *it = &b->items[i];
        if (it->sub != k || it->state != RS_DECIDED)
            continue;
        for (int u = 0; u < it->ncounted; u++) {
            if (!(it->counted[u] & ADJ_TAG_BATCH))
                continue;
            size_t j = (size_t)(it->counted[u] & ~ADJ_TAG_BATCH);
            for (size_t x = 0; x < b->n; x++) {
                if (b->items[x].sub == k && b->items[x].state == RS_DECIDED &&
                    b->items[x].group_pos == j) {
                    it->counted[u] = (uint64_t)b->items[x].seq;
                    break;
                }
            }
        }
    }
}

static int decide_all(struct batch *b)
{
    date_t today = today_of(b->p);
    for (size_t i = 0; i < b->n; i++) {
        struct batch_item *it = &b->items[i];
        /* A missing subscription answers 404 before a reused claim_ref's 409. */
        bool open = it->state == RS_PENDING || it->state == RS_CONFLICT;
        if (open && !b->subs[it->sub].found)
            it->state = RS_NOTFOUND;
    }
    for (size_t k = 0; k < b->nsubs; k++) {
        int rc = decide_sub(b, k, today);
        if (rc != 0)
            return rc;
    }
    size_t next = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].state != RS_DECIDED)
            continue;
        if (next >= b->nseqs)
            return CLAIMD_EDB;
        b->items[i].seq = b->seqs[next++];
    }
    for (size_t k = 0; k < b->nsubs; k++)
        resolve_counted(b, k);
    return 0;
}

/* ------------------------------------------------------------------------
 * Phase two: one INSERT of every decision, and the Sync that commits
 * ------------------------------------------------------------------------ */

typedef void (*column_fn)(struct batch *b, size_t i);

static void c_seq(struct batch *b, size_t i)
{
    put_int(b, b->items[i].seq);
}

static void c_ref(struct batch *b, size_t i)
{
    put_quoted(b, b->reqs[i]->claim_ref);
}

static void c_sub(struct batch *b, size_t i)
{
    put_int(b, b->subs[b->items[i].sub].id);
}

static void c_fp(struct batch *b, size_t i)
{
    char hex[2 * PIPELINE_FINGERPRINT_LEN + 1];
    pgutil_hex(b->reqs[i]->fingerprint, PIPELINE_FINGERPRINT_LEN, hex);
    put_quoted(b, hex);
}

static void c_imei(struct batch *b, size_t i)
{
    put(b, "\"", 1);
    put(b, b->reqs[i]->claim.imei, IMEI_LEN);
    put(b, "\"", 1);
}

static void c_incident(struct batch *b, size_t i)
{
    put_date(b, b->reqs[i]->claim.incident_on);
}

static void c_cause(struct batch *b, size_t i)
{
    put_quoted(b, adj_cause_name(b->reqs[i]->claim.cause));
}

static void c_damage(struct batch *b, size_t i)
{
    const char *d = adj_damage_name(b->reqs[i]->claim.damage);
    if (d == NULL)
        put_str(b, "NULL");
    else
        put_quoted(b, d);
}

static void c_remedy(struct batch *b, size_t i)
{
    put_quoted(b, adj_remedy_name(b->reqs[i]->claim.remedy));
}

static void c_estimate(struct batch *b, size_t i)
{
    int64_t e = b->reqs[i]->claim.repair_estimate;
    if (e < 0)
        put_str(b, "NULL");
    else
        put_int(b, e);
}

static void c_status(struct batch *b, size_t i)
{
    put_quoted(b, adj_status_name(b->reqs[i]->rec.status));
}

static void c_reasons(struct batch *b, size_t i)
{
    put(b, "\"", 1);
    for (int r = 0, first = 1; r < ADJ_R_COUNT; r++) {
        if (!(b->reqs[i]->rec.reasons & (1u << r)))
            continue;
        if (!first)
            put(b, ",", 1);
        put_str(b, adj_reason_name((enum adj_reason)r));
        first = 0;
    }
    put(b, "\"", 1);
}

static void c_covered(struct batch *b, size_t i)
{
    put_int(b, b->reqs[i]->rec.covered_amount);
}

static void c_charge(struct batch *b, size_t i)
{
    put_int(b, b->reqs[i]->rec.customer_charge);
}

static void c_use(struct batch *b, size_t i)
{
    if (b->reqs[i]->rec.use_number == 0)
        put_str(b, "NULL");
    else
        put_int(b, b->reqs[i]->rec.use_number);
}

static void c_remaining(struct batch *b, size_t i)
{
    put_int(b, b->reqs[i]->rec.uses_remaining);
}

static void c_wstart(struct batch *b, size_t i)
{
    put_date(b, b->reqs[i]->rec.window.start);
}

static void c_wend(struct batch *b, size_t i)
{
    put_date(b, b->reqs[i]->rec.window.end);
}

static void c_loaner(struct batch *b, size_t i)
{
    const char *l = adj_loaner_name(b->reqs[i]->rec.loaner);
    if (l == NULL)
        put_str(b, "NULL");
    else
        put_quoted(b, l);
}

static void c_policy(struct batch *b, size_t i)
{
    put_quoted(b, b->reqs[i]->rec.policy_version);
}

static void c_key(struct batch *b, size_t i)
{
    put_int(b, b->reqs[i]->api_key_id);
}

static void c_counted(struct batch *b, size_t i)
{
    put(b, "\"", 1);
    for (int u = 0; u < b->items[i].ncounted; u++) {
        if (u > 0)
            put(b, ",", 1);
        put_int(b, (int64_t)b->items[i].counted[u]);
    }
    put(b, "\"", 1);
}

/* Columns $2..$23 of pl_insert, in order. */
static const column_fn insert_columns[INSERT_PARAMS - 1] = {
    c_seq,    c_ref,      c_sub,    c_fp,      c_imei,    c_incident, c_cause, c_damage,
    c_remedy, c_estimate, c_status, c_reasons, c_covered, c_charge,   c_use,   c_remaining,
    c_wstart, c_wend,     c_loaner, c_policy,  c_key,     c_counted,
};

/* One array literal of a column over the decided claims. */
static const char *column(struct batch *b, column_fn fn)
{
    size_t off = begin(b), k = 0;
    put(b, "{", 1);
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].state != RS_DECIDED)
            continue;
        sep(b, k++);
        fn(b, i);
    }
    put(b, "}", 1);
    return end(b, off);
}

static size_t decided_count(const struct batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->items[i].state == RS_DECIDED;
    return n;
}

static int send_insert(struct batch *b, struct pgconn *c)
{
    const char *params[INSERT_PARAMS];
    buf_reset(b);
    params[0] = tenant_text(b);
    for (int i = 0; i < INSERT_PARAMS - 1; i++)
        params[i + 1] = column(b, insert_columns[i]);
    if (b->buf_overflow)
        return CLAIMD_ECAPACITY;
    return pgconn_send(c, "pl_insert", INSERT_PARAMS, params);
}

/* The reads are back: decide, then write (or only commit the reads). */
static void write_phase(struct batch *b, struct pgconn *c)
{
    int rc = decide_all(b);
    if (rc == 0 && decided_count(b) > 0) {
        rc = send_insert(b, c);
        b->query = Q_INSERT;
    }
    if (rc != 0) {
        b->failed = true;
        log_msg(LOG_ERROR, "pipeline", "batch of %zu claims not written: %s", b->n,
                claimd_rc_name(rc));
    }
    b->writing = true;
    if (pgconn_sync(c) != 0)
        b->failed = true;
}

/* RETURNING seq, decided_at: rows come in insertion (batch) order. */
static void read_inserted(struct batch *b, const PGresult *res)
{
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t seq = col_int(res, row, 0);
        for (size_t i = b->next_seq_row; i < b->n; i++) {
            if (b->items[i].state != RS_DECIDED || b->items[i].seq != seq)
                continue;
            struct claim_record *rec = &b->reqs[i]->rec;
            rec->seq = seq;
            snprintf(rec->decided_at, sizeof(rec->decided_at), "%s", PQgetvalue(res, row, 1));
            b->next_seq_row = i + 1;
            break;
        }
    }
}

/* ------------------------------------------------------------------------
 * The job's callbacks
 * ------------------------------------------------------------------------ */

static int read_rows(struct batch *b, const PGresult *res)
{
    switch (b->query) {
    case Q_LOCK:
        return read_lock(b, res);
    case Q_EXISTING:
        return read_existing(b, res);
    case Q_HISTORY:
        return read_history(b, res);
    case Q_SEQ:
        read_seqs(b, res);
        return 0;
    default:
        if (b->writing)
            read_inserted(b, res);
        return 0;
    }
}

static void failed_command(struct batch *b, struct pgconn *c, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!b->failed && PQresultStatus(res) != PGRES_PIPELINE_ABORTED) {
        snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", state != NULL ? state : "");
        log_msg(LOG_DEBUG, "pipeline", "batch command failed: %s", pgconn_error(c, res));
    }
    b->failed = true;
    /* The reads went out without a Sync: send it, or the abort never ends. */
    if (!b->writing) {
        b->writing = true;
        if (pgconn_sync(c) != 0)
            pgconn_reset(c);
    }
}

static void job_result(struct pgjob *job, struct pgconn *c, const PGresult *res)
{
    struct batch *b = (struct batch *)job;
    if (res == NULL) {
        bool reads_done = b->query == Q_SEQ;
        b->query++;
        if (reads_done && !b->failed)
            write_phase(b, c);
        return;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        failed_command(b, c, res);
        return;
    }
    if (!b->failed && read_rows(b, res) != 0) {
        log_msg(LOG_ERROR, "pipeline", "unexpected rows in a batch");
        failed_command(b, c, res);
    }
}

static int job_sync(struct pgjob *job, struct pgconn *c)
{
    return 0;
}

/* SQLSTATEs that mean "a concurrent transaction got there first": re-run. */
static bool retryable(const char *sqlstate)
{
    return strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "40P01") == 0 ||
           strcmp(sqlstate, "40001") == 0;
}

static void release_subs(struct batch *b)
{
    for (size_t k = 0; k < b->nsubs; k++)
        subset_remove(&b->p->inflight, b->subs[k].hash);
}

/* Puts a batch's claims back at the head of the queue, in their order. */
static void requeue(struct batch *b)
{
    struct pipeline *p = b->p;
    for (size_t i = b->n; i-- > 0;) {
        struct pipeline_req *r = b->reqs[i];
        r->_next = p->head;
        p->head = r;
        if (p->tail == NULL)
            p->tail = r;
        p->queued++;
    }
    release_subs(b);
    b->in_use = false;
    b->n = 0;
    p->stats.in_flight--;
}

static int outcome_rc(struct batch *b, size_t i)
{
    switch (b->items[i].state) {
    case RS_DECIDED:
        return 0;
    case RS_REPLAY:
        b->reqs[i]->replayed = true;
        return 0;
    case RS_NOTFOUND:
        return CLAIMD_ENOTFOUND;
    case RS_CONFLICT:
        return CLAIMD_ECONFLICT;
    case RS_REFUSED:
        return b->reqs[i]->rc;
    default:
        return CLAIMD_EDB;
    }
}

/* Answers every claim of the batch, then frees the slot and starts more work. */
static void finish(struct batch *b, int rc)
{
    struct pipeline *p = b->p;
    for (size_t i = 0; i < b->n; i++) {
        struct pipeline_req *r = b->reqs[i];
        r->replayed = false;
        r->rc = rc != 0 ? rc : outcome_rc(b, i);
        if (r->rc == 0 && r->rec.claim_ref[0] == '\0') {
            memcpy(r->rec.claim_ref, r->claim_ref, sizeof(r->rec.claim_ref));
            memcpy(r->rec.subscription_ref, r->subscription_ref, sizeof(r->rec.subscription_ref));
        }
        r->done(r);
    }
    release_subs(b);
    b->in_use = false;
    b->n = 0;
    p->stats.in_flight--;
    kick(p);
}

/*
 * The retry budget belongs to the claims, not to the batch slot: a re-run
 * puts them back in the queue and form() may group them anew. A batch is
 * re-run while none of its claims has used up max_retries.
 */
static bool may_retry(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->reqs[i]->_retries >= b->p->cfg.max_retries)
            return false;
    }
    for (size_t i = 0; i < b->n; i++)
        b->reqs[i]->_retries++;
    return true;
}

static void job_done(struct pgjob *job, int rc)
{
    struct batch *b = (struct batch *)job;
    struct pipeline *p = b->p;
    if (rc == 0 && !b->failed) {
        p->stats.batches++;
        p->stats.claims += b->n;
        if (p->cfg.committed != NULL)
            p->cfg.committed(p->cfg.committed_arg, b->n);
        finish(b, 0);
        return;
    }
    if (rc == 0 && retryable(b->sqlstate) && may_retry(b)) {
        p->stats.retries++;
        requeue(b);
        kick(p);
        return;
    }
    p->stats.failed++;
    if (rc == 0)
        log_msg(LOG_ERROR, "pipeline", "batch of %zu claims failed (SQLSTATE %s)", b->n,
                b->sqlstate[0] != '\0' ? b->sqlstate : "none");
    /* A timeout or a conflict retried to the end is worth a retry by the client: 503. */
    finish(b,
           rc != 0 ? rc : (b->sqlstate[0] != '\0' ? pgconn_failure_rc(b->sqlstate) : CLAIMD_EDB));
}

static const struct pgjob_ops batch_ops = {job_start, job_result, job_sync, job_done};

/* ------------------------------------------------------------------------
 * Forming batches
 * ------------------------------------------------------------------------ */

static bool blocked(const struct pipeline *p, size_t nblocked, uint64_t hash)
{
    for (size_t i = 0; i < nblocked; i++) {
        if (p->blocked[i] == hash)
            return true;
    }
    return false;
}

static bool ref_in_batch(const struct batch *b, const char *ref)
{
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->reqs[i]->claim_ref, ref) == 0)
            return true;
    }
    return false;
}

static void add_to_batch(struct batch *b, struct pipeline_req *r)
{
    size_t k = 0;
    while (k < b->nsubs &&
           (b->subs[k].hash != r->_sub_hash || strcmp(b->subs[k].ref, r->subscription_ref) != 0))
        k++;
    if (k == b->nsubs) {
        b->subs[k].ref = r->subscription_ref;
        b->subs[k].hash = r->_sub_hash;
        b->nsubs++;
    }
    b->items[b->n].sub = k;
    b->reqs[b->n++] = r;
}

/*
 * Takes claims of the head's tenant, in queue order, whose subscription is not
 * in flight. A claim whose claim_ref is already in the batch waits for the
 * next one (it will replay what this one stores), and so does every later
 * claim of its subscription, so that a subscription's order never changes.
 */
static void form(struct pipeline *p, struct batch *b)
{
    struct pipeline_req *prev = NULL, *r = p->head;
    size_t nblocked = 0, scanned = 0;
    b->n = b->nsubs = 0;
    /* The tenant of the first claim that can go: one busy subscription holds back no one else. */
    const struct pipeline_req *first = p->head;
    while (first != NULL && subset_has(&p->inflight, first->_sub_hash))
        first = first->_next;
    if (first == NULL)
        return;
    b->tenant_id = first->tenant_id;
    while (r != NULL && b->n < p->cfg.max_batch && scanned++ < 4 * p->cfg.max_batch) {
        struct pipeline_req *next = r->_next;
        bool ok = r->tenant_id == b->tenant_id && !subset_has(&p->inflight, r->_sub_hash) &&
                  !blocked(p, nblocked, r->_sub_hash);
        if (ok && ref_in_batch(b, r->claim_ref)) {
            ok = false;
            p->blocked[nblocked++] = r->_sub_hash;
        }
        if (ok) {
            if (prev != NULL)
                prev->_next = next;
            else
                p->head = next;
            if (p->tail == r)
                p->tail = prev;
            p->queued--;
            r->_next = NULL;
            add_to_batch(b, r);
        } else {
            prev = r;
        }
        r = next;
    }
    for (size_t k = 0; k < b->nsubs; k++)
        subset_add(&p->inflight, b->subs[k].hash);
}

static struct batch *free_batch(struct pipeline *p)
{
    for (size_t i = 0; i < p->nbatches; i++) {
        if (!p->batches[i].in_use)
            return &p->batches[i];
    }
    return NULL;
}

static void fail_queue(struct pipeline *p, int rc)
{
    struct pipeline_req *r;
    while ((r = p->head) != NULL) {
        p->head = r->_next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        r->_next = NULL;
        r->rc = rc;
        r->done(r);
    }
}

/* Starts a batch on every idle connection while claims can go. */
static void kick_once(struct pipeline *p)
{
    struct batch *b;
    if (p->head != NULL && !dbpool_can_serve(p->pool)) {
        fail_queue(p, CLAIMD_EUNAVAIL);
        return;
    }
    while (p->head != NULL && dbpool_idle_conn(p->pool) != NULL && (b = free_batch(p)) != NULL) {
        form(p, b);
        if (b->n == 0)
            return;
        b->in_use = true;
        p->stats.in_flight++;
        if (dbpool_submit(p->pool, &b->job) != 0)
            requeue(b);
    }
}

/* Re-entrant calls (a callback that submits) are folded into the running one. */
static void kick(struct pipeline *p)
{
    if (p->kicking) {
        p->kick_again = true;
        return;
    }
    p->kicking = true;
    do {
        p->kick_again = false;
        kick_once(p);
    } while (p->kick_again);
    p->kicking = false;
}

static void pool_changed(struct dbpool *pool, void *arg)
{
    kick(arg);
}

/* ------------------------------------------------------------------------
 * Life cycle and submission
 * ------------------------------------------------------------------------ */

bool pipeline_ref_valid(const char *s, size_t len)
{
    if (len < 1 || len > REF_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool req_valid(const struct pipeline_req *r)
{
    size_t cl = strnlen(r->claim_ref, sizeof(r->claim_ref));
    size_t sl = strnlen(r->subscription_ref, sizeof(r->subscription_ref));
    return r->done != NULL && cl < sizeof(r->claim_ref) && sl < sizeof(r->subscription_ref) &&
           pipeline_ref_valid(r->claim_ref, cl) && pipeline_ref_valid(r->subscription_ref, sl) &&
           adj_claim_validate(&r->claim, NULL) == 0;
}

int pipeline_submit(struct pipeline *p, struct pipeline_req *r)
{
    if (!req_valid(r))
        return CLAIMD_EINVAL;
    if (!dbpool_can_serve(p->pool))
        return CLAIMD_EUNAVAIL;
    if (p->queued >= p->cfg.max_queue)
        return CLAIMD_EOVERLOAD;
    r->rc = 0;
    r->replayed = false;
    memset(&r->rec, 0, sizeof(r->rec));
    r->_sub_hash = hash_sub(r->tenant_id, r->subscription_ref);
    r->_retries = 0;
    r->_next = NULL;
    if (p->tail != NULL)
        p->tail->_next = r;
    else
        p->head = r;
    p->tail = r;
    p->queued++;
    kick(p);
    return 0;
}

int pipeline_fingerprint(struct pipeline_req *r)
{
    char text[512], incident[DATE_STR_SIZE];
    const struct adj_claim *c = &r->claim;
    const char *damage = adj_damage_name(c->damage);
    date_format(c->incident_on, incident);
    int n = snprintf(text, sizeof(text), "claim/1|%s|%.*s|%s|%s|%s|%s|%lld", r->subscription_ref,
                     IMEI_LEN, c->imei, incident, adj_cause_name(c->cause),
                     damage != NULL ? damage : "", adj_remedy_name(c->remedy),
                     (long long)c->repair_estimate);
    return pgutil_sha256(text, (size_t)n, r->fingerprint) == 0 ? 0 : CLAIMD_EDB;
}

void pipeline_stats(const struct pipeline *p, struct pipeline_stats *out)
{
    *out = p->stats;
    out->queued = p->queued;
}

size_t pipeline_room(const struct pipeline *p)
{
    return p->queued < p->cfg.max_queue ? p->cfg.max_queue - p->queued : 0;
}

void pipeline_set_policies(struct pipeline *p, const struct policy_set *policies)
{
    p->policies = policies;
}

void pipeline_set_today(struct pipeline *p, date_t today)
{
    p->today = today;
}

static int batch_alloc(struct batch *b, struct pipeline *p)
{
    size_t m = p->cfg.max_batch;
    b->p = p;
    b->job.ops = &batch_ops;
    b->reqs = calloc(m, sizeof(*b->reqs));
    b->items = calloc(m, sizeof(*b->items));
    b->subs = calloc(m, sizeof(*b->subs));
    b->history = calloc(ADJ_HISTORY_MAX, sizeof(*b->history));
    b->work = calloc(ADJ_HISTORY_MAX + m, sizeof(*b->work));
    b->seqs = calloc(m, sizeof(*b->seqs));
    b->group = calloc(m, sizeof(*b->group));
    b->group_idx = calloc(m, sizeof(*b->group_idx));
    b->outcomes = calloc(m, sizeof(*b->outcomes));
    b->buf_cap = m * 1024 + 4096;
    b->buf = malloc(b->buf_cap);
    bool ok = b->reqs && b->items && b->subs && b->history && b->work && b->seqs && b->group &&
              b->group_idx && b->outcomes && b->buf;
    return ok ? 0 : UV_ENOMEM;
}

static void batch_free(struct batch *b)
{
    free(b->reqs);
    free(b->items);
    free(b->subs);
    free(b->history);
    free(b->work);
    free(b->seqs);
    free(b->group);
    free(b->group_idx);
    free(b->outcomes);
    free(b->buf);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

int pipeline_create(struct pipeline **out, struct dbpool *pool, const struct pipeline_config *cfg,
                    const struct policy_set *policies)
{
    if (cfg->max_batch < 1 || cfg->max_batch > ADJ_BATCH_MAX || pool->nconns == 0)
        return CLAIMD_EINVAL;
    struct pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return UV_ENOMEM;
    p->pool = pool;
    p->cfg = *cfg;
    p->policies = policies;
    p->today = DATE_NONE;
    p->nbatches = pool->nconns;
    p->batches = calloc(p->nbatches, sizeof(*p->batches));
    p->blocked = calloc(cfg->max_batch * 4, sizeof(*p->blocked));
    p->inflight.cap = pow2_at_least(4 * cfg->max_batch * p->nbatches);
    p->inflight.keys = calloc(p->inflight.cap, sizeof(uint64_t));
    p->inflight.counts = calloc(p->inflight.cap, sizeof(uint32_t));
    int rc = p->batches && p->blocked && p->inflight.keys && p->inflight.counts ? 0 : UV_ENOMEM;
    for (size_t i = 0; rc == 0 && i < p->nbatches; i++)
        rc = batch_alloc(&p->batches[i], p);
    if (rc != 0) {
        pipeline_destroy(p);
        return rc;
    }
    dbpool_on_change(pool, pool_changed, p);
    *out = p;
    return 0;
}

void pipeline_destroy(struct pipeline *p)
{
    if (p == NULL)
        return;
    if (p->pool != NULL && p->pool->_change_arg == p)
        dbpool_on_change(p->pool, NULL, NULL);
    for (size_t i = 0; p->batches != NULL && i < p->nbatches; i++)
        batch_free(&p->batches[i]);
    free(p->batches);
    free(p->blocked);
    free(p->inflight.keys);
    free(p->inflight.counts);
    free(p);
}
