/*
 * The decision pipeline against a real database: every field of a decision
 * as stored and as read back, replays and reuse of a claim_ref, unknown
 * subscriptions, and a batch of one subscription's claims decided in order.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "loopdb.h"

static struct loopdb ld;

static void setup(void)
{
    loopdb_setup(&ld, &(struct loopdb_opts){.nconns = 2});
}

static void teardown(void)
{
    loopdb_teardown(&ld);
}

TestSuite(pipeline, .init = setup, .fini = teardown, .timeout = 60);

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* Every column of a stored claim, '|'-separated, NULL as "-". */
static const char *row_of(const char *claim_ref, int tenant)
{
    return loopdb_val(
        &ld,
        "SELECT concat_ws('|', seq, claim_ref, subscription_id, encode(fingerprint, 'hex'), imei, "
        "incident_on, cause, coalesce(damage, '-'), remedy, coalesce(repair_estimate::text, '-'), "
        "status, array_to_string(reasons, ','), covered_amount, customer_charge, "
        "coalesce(use_number::text, '-'), uses_remaining, window_start, window_end, "
        "coalesce(loaner, '-'), policy_version, " RECORD_TS(
            "decided_at") ", api_key_id, "
                          "subscription_snapshot::text, coalesce(device_snapshot::text, '-'), "
                          "array_to_string(counted_uses, ','), coalesce(withdrawn_at::text, '-'), "
                          "coalesce(withdrawn_by_key_id::text, '-')) "
                          "FROM claims WHERE tenant_id = %d AND claim_ref = '%s'",
        tenant, claim_ref);
}

static void get_claim(int tenant, const char *ref, struct store_op *op)
{
    loopdb_op(op, STORE_GET_CLAIM, tenant, ref);
    cr_assert_eq(loopdb_store(&ld, 0, op), 0);
}

/* Worked example 2 on the seed (C-1 is use 1): every column of the row. */
Test(pipeline, approval_every_field_stored_and_read_back)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 1);
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.ref = "C-2",
                                        .incident = "2024-06-01",
                                        .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                                        .damage = ADJ_DAMAGE_SCREEN,
                                        .remedy = ADJ_REMEDY_REPAIR,
                                        .estimate = 62000});
    loopdb_decide(&ld, 0, r, 1);
    cr_assert_eq(r->rc, 0);
    cr_assert(!r->replayed);
    cr_assert_eq(r->rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(r->rec.reasons, 1u << ADJ_R_CAP_EXCEEDED);
    cr_assert_eq(r->rec.covered_amount, 50000);
    cr_assert_eq(r->rec.customer_charge, 12000);
    cr_assert_eq(r->rec.use_number, 2);
    cr_assert_eq(r->rec.uses_remaining, 0);
    cr_assert_eq(r->rec.loaner, ADJ_LOANER_ANDROID);
    cr_assert_eq(r->rec.window.start, loopdb_date("2024-04-01"));
    cr_assert_eq(r->rec.window.end, loopdb_date("2025-03-31"));
    cr_assert_str_eq(r->rec.policy_version, "2025-01");
    cr_assert_eq(strlen(r->rec.decided_at), 29, "decided_at %s", r->rec.decided_at);
    cr_assert_str_eq(r->rec.decided_at + 23, "+09:00");
    cr_assert_str_eq(r->rec.claim_ref, "C-2");
    cr_assert_str_eq(r->rec.subscription_ref, "L-1");
    cr_assert_str_eq(r->rec.withdrawn_at, "");
    cr_assert_gt(r->rec.seq, 1);

    char fp[65], want[2048];
    hex(r->fingerprint, sizeof(r->fingerprint), fp);
    snprintf(want, sizeof(want),
             "%lld|C-2|1|%s|356938035643809|2024-06-01|physical_damage|screen|repair|62000|"
             "approved|cap_exceeded|50000|12000|2|0|2024-04-01|2025-03-31|android|2025-01|%s|1|"
             "{\"applied_on\": \"2024-04-01\", \"activated_on\": \"2024-04-03\", "
             "\"cancelled_on\": null, \"device_protection\": true}|"
             "{\"os\": \"android\", \"imei\": \"356938035643809\", \"model\": \"Pixel 6\", "
             "\"release_date\": \"2022-01-20\", \"registered_on\": \"2024-04-10\", "
             "\"purchased_from\": \"other\"}|1|-|-",
             (long long)r->rec.seq, fp, r->rec.decided_at);
    cr_assert_str_eq(row_of("C-2", 1), want);

    struct store_op op;
    get_claim(1, "C-2", &op);
    loopdb_assert_record_eq(&r->rec, &op.rec);
}

/* A denial without a device: NULL use, loaner, estimate and device snapshot. */
Test(pipeline, denial_every_field_stored_and_read_back)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 1);
    loopdb_claim(
        &ld, r,
        &(struct loopdb_claim){
            .tenant = 2, .ref = "D-1", .incident = "2025-04-02", .remedy = ADJ_REMEDY_EXCHANGE});
    loopdb_decide(&ld, 0, r, 1);
    cr_assert_eq(r->rc, 0);
    cr_assert_eq(r->rec.status, ADJ_STATUS_DENIED);
    cr_assert_eq(r->rec.reasons, 1u << ADJ_R_DEVICE_NOT_REGISTERED);
    cr_assert_eq(r->rec.use_number, 0);
    cr_assert_eq(r->rec.uses_remaining, 2);
    cr_assert_eq(r->rec.loaner, ADJ_LOANER_NONE);
    cr_assert_eq(r->rec.repair_estimate, -1);

    char fp[65], want[2048];
    hex(r->fingerprint, sizeof(r->fingerprint), fp);
    snprintf(want, sizeof(want),
             "%lld|D-1|2|%s|356938035643809|2025-04-02|natural_failure|-|exchange|-|denied|"
             "device_not_registered|0|0|-|2|2025-04-01|2026-03-31|-|2025-01|%s|2|"
             "{\"applied_on\": \"2024-04-01\", \"activated_on\": \"2024-04-03\", "
             "\"cancelled_on\": null, \"device_protection\": true}|-||-|-",
             (long long)r->rec.seq, fp, r->rec.decided_at);
    cr_assert_str_eq(row_of("D-1", 2), want);

    struct store_op op;
    get_claim(2, "D-1", &op);
    loopdb_assert_record_eq(&r->rec, &op.rec);
}

/* The seed holds C-1 (approved, 2024-05-01): worked examples 2 and 3 follow. */
Test(pipeline, decides_in_order_and_records)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 2);
    loopdb_claim(&ld, &r[0],
                 &(struct loopdb_claim){.ref = "C-2",
                                        .incident = "2024-06-01",
                                        .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                                        .damage = ADJ_DAMAGE_SCREEN,
                                        .remedy = ADJ_REMEDY_REPAIR,
                                        .estimate = 62000});
    loopdb_claim(&ld, &r[1],
                 &(struct loopdb_claim){.ref = "C-3",
                                        .incident = "2024-07-01",
                                        .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                                        .damage = ADJ_DAMAGE_SCREEN,
                                        .remedy = ADJ_REMEDY_EXCHANGE});
    loopdb_decide(&ld, 0, r, 2);
    cr_assert_eq(r[0].rc, 0);
    cr_assert_eq(r[0].rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(r[0].rec.use_number, 2);
    cr_assert_eq(r[1].rc, 0);
    cr_assert_eq(r[1].rec.status, ADJ_STATUS_DENIED);
    cr_assert_eq(r[1].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT);
    cr_assert_eq(r[1].rec.uses_remaining, 0);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT status || ' ' || use_number || ' ' || "
                                     "array_to_string(counted_uses, ',') FROM claims "
                                     "WHERE claim_ref = 'C-2'"),
                     "approved 2 1");
    char want[64];
    snprintf(want, sizeof(want), "1,%lld", (long long)r[0].rec.seq);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT array_to_string(counted_uses, ',') FROM claims "
                                     "WHERE claim_ref = 'C-3'"),
                     want);
}

/* Same body: the stored decision, once. Another body: claim_ref_reused. */
Test(pipeline, replay_and_reuse)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 3);
    struct loopdb_claim c = {.ref = "C-2",
                             .incident = "2024-06-01",
                             .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                             .damage = ADJ_DAMAGE_SCREEN,
                             .remedy = ADJ_REMEDY_REPAIR,
                             .estimate = 62000};
    loopdb_claim(&ld, &r[0], &c);
    loopdb_decide(&ld, 0, &r[0], 1);
    cr_assert_eq(r[0].rc, 0);
    cr_assert(!r[0].replayed);

    loopdb_claim(&ld, &r[1], &c);
    loopdb_decide(&ld, 0, &r[1], 1);
    cr_assert_eq(r[1].rc, 0);
    cr_assert(r[1].replayed);
    loopdb_assert_record_eq(&r[1].rec, &r[0].rec);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims WHERE claim_ref = 'C-2'"), "1");

    c.estimate = 1000;
    loopdb_claim(&ld, &r[2], &c);
    loopdb_decide(&ld, 0, &r[2], 1);
    cr_assert_eq(r[2].rc, CLAIMD_ECONFLICT);
    cr_assert(!r[2].replayed);
    char fp[65], want[128];
    hex(r[0].fingerprint, sizeof(r[0].fingerprint), fp);
    snprintf(want, sizeof(want), "1 %s 62000", fp);
    cr_assert_str_eq(loopdb_val(&ld,
                                "SELECT count(*) || ' ' || min(encode(fingerprint, 'hex')) || "
                                "' ' || min(repair_estimate) FROM claims WHERE claim_ref = 'C-2'"),
                     want);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims"), "2");
}

Test(pipeline, unknown_subscription_is_not_found_and_not_stored)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 3);
    loopdb_add_sub(&ld, 1, "L-T1", "2024-04-01", "2024-04-03", true);
    loopdb_claim(&ld, &r[0],
                 &(struct loopdb_claim){.ref = "C-9", .sub = "L-404", .incident = "2024-06-01"});
    /* L-T1 is tenant 1's: for tenant 2 it does not exist. */
    loopdb_claim(
        &ld, &r[1],
        &(struct loopdb_claim){.tenant = 2, .ref = "C-9", .sub = "L-T1", .incident = "2024-06-01"});
    loopdb_decide(&ld, 0, &r[0], 1);
    loopdb_decide(&ld, 0, &r[1], 1);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(r[i].rc, CLAIMD_ENOTFOUND);
        cr_assert(!r[i].replayed);
    }
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims WHERE claim_ref = 'C-9'"), "0");
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims"), "1");

    /* Nothing was reserved: the same claim_ref on an existing subscription is decided. */
    loopdb_claim(&ld, &r[2], &(struct loopdb_claim){.ref = "C-9", .incident = "2024-06-01"});
    loopdb_decide(&ld, 0, &r[2], 1);
    cr_assert_eq(r[2].rc, 0);
    cr_assert(!r[2].replayed);
    cr_assert_eq(r[2].rec.use_number, 2);
}

/* A replay after a withdrawal answers the claim as it stands: withdrawn. */
Test(pipeline, replay_of_withdrawn_claim_shows_withdrawn)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 2);
    struct loopdb_claim c = {.ref = "C-2",
                             .incident = "2024-06-01",
                             .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                             .damage = ADJ_DAMAGE_SCREEN,
                             .remedy = ADJ_REMEDY_REPAIR,
                             .estimate = 62000};
    loopdb_claim(&ld, &r[0], &c);
    loopdb_decide(&ld, 0, &r[0], 1);
    cr_assert_eq(r[0].rc, 0);

    struct store_op op;
    loopdb_op(&op, STORE_WITHDRAW, 1, "C-2");
    cr_assert_eq(loopdb_store(&ld, 0, &op), 0);
    cr_assert_eq(op.verdict, SUB_OK);
    cr_assert(op.rec.withdrawn);

    loopdb_claim(&ld, &r[1], &c);
    loopdb_decide(&ld, 0, &r[1], 1);
    cr_assert_eq(r[1].rc, 0);
    cr_assert(r[1].replayed);
    cr_assert(r[1].rec.withdrawn);
    cr_assert_eq(r[1].rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(r[1].rec.use_number, 2);
    cr_assert_neq(r[1].rec.withdrawn_at[0], '\0');
    loopdb_assert_record_eq(&r[1].rec, &op.rec);
    cr_assert_str_eq(r[1].rec.decided_at, r[0].rec.decided_at);
}

/*
 * Two lock holders keep both connections busy, so six claims of one
 * subscription accumulate and go together into one batch: one transaction
 * (one decided_at), decided in the order sent, each seeing the approvals
 * before it, with seqs in submission order.
 */
Test(pipeline, batch_of_one_subscription_decided_in_order)
{
    char imei[16];
    loopdb_imei(imei, 777);
    loopdb_add_sub(&ld, 1, "L-8", "2024-04-01", "2024-04-03", true);
    loopdb_add_sub(&ld, 1, "L-9", "2024-04-01", "2024-04-03", true);
    loopdb_add_sub(&ld, 1, "L-B", "2024-04-01", "2024-04-03", true);
    loopdb_add_device(&ld, 1, "L-B", imei, "2024-04-10");
    PGconn *holder = loopdb_lock_subs(&ld, "'L-8', 'L-9'");

    struct pipeline_req *blk = loopdb_reqs(&ld, 2), *r = loopdb_reqs(&ld, 6);
    loopdb_claim(&ld, &blk[0],
                 &(struct loopdb_claim){.ref = "X", .sub = "L-8", .incident = "2024-06-01"});
    loopdb_claim(&ld, &blk[1],
                 &(struct loopdb_claim){.ref = "Y", .sub = "L-9", .incident = "2024-06-01"});
    cr_assert_eq(loopdb_submit(&ld, 0, &blk[0]), 0);
    cr_assert_eq(loopdb_submit(&ld, 0, &blk[1]), 0);
    loopdb_wait_lock_waiters(&ld, 2);

    const struct {
        const char *ref, *incident;
        enum adj_cause cause;
        enum adj_damage damage;
        enum adj_remedy remedy;
        int64_t estimate;
    } in[6] = {
        {"B-A", "2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, ADJ_DAMAGE_NONE, ADJ_REMEDY_REPAIR, 30000},
        {"B-B", "2024-06-01", ADJ_CAUSE_PHYSICAL_DAMAGE, ADJ_DAMAGE_SCREEN, ADJ_REMEDY_EXCHANGE, 0},
        {"B-C", "2024-07-01", ADJ_CAUSE_NATURAL_FAILURE, ADJ_DAMAGE_NONE, ADJ_REMEDY_REPAIR, 10000},
        {"B-D", "2025-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE, ADJ_DAMAGE_WATER, ADJ_REMEDY_EXCHANGE, 0},
        {"B-E", "2025-06-01", ADJ_CAUSE_PHYSICAL_DAMAGE, ADJ_DAMAGE_OTHER, ADJ_REMEDY_EXCHANGE, 0},
        {"B-F", "2025-07-01", ADJ_CAUSE_PHYSICAL_DAMAGE, ADJ_DAMAGE_SCREEN, ADJ_REMEDY_REPAIR,
         70000},
    };
    for (int i = 0; i < 6; i++) {
        loopdb_claim(&ld, &r[i],
                     &(struct loopdb_claim){.ref = in[i].ref,
                                            .sub = "L-B",
                                            .imei = imei,
                                            .incident = in[i].incident,
                                            .cause = in[i].cause,
                                            .damage = in[i].damage,
                                            .remedy = in[i].remedy,
                                            .estimate = in[i].estimate});
        cr_assert_eq(loopdb_submit(&ld, 0, &r[i]), 0);
    }
    struct pipeline_stats st;
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.queued, 6);
    cr_assert_eq(st.in_flight, 2);
    cr_assert_eq(st.batches, 0);

    loopdb_unlock(holder);
    loopdb_run_done(&ld, 20000);
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.batches, 3, "the six claims should form one batch");
    cr_assert_eq(st.claims, 8);
    cr_assert_eq(st.retries, 0);

    const struct {
        enum adj_status status;
        int use, remaining;
        int64_t covered, charge;
    } want[6] = {
        {ADJ_STATUS_APPROVED, 1, 1, 30000, 0}, {ADJ_STATUS_APPROVED, 2, 0, 0, 5500},
        {ADJ_STATUS_DENIED, 0, 0, 0, 0},       {ADJ_STATUS_APPROVED, 1, 1, 0, 5500},
        {ADJ_STATUS_APPROVED, 2, 0, 0, 8800},  {ADJ_STATUS_DENIED, 0, 0, 0, 0},
    };
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(r[i].rc, 0, "%s", in[i].ref);
        cr_assert_eq(r[i].rec.status, want[i].status, "%s", in[i].ref);
        cr_assert_eq(r[i].rec.use_number, want[i].use, "%s", in[i].ref);
        cr_assert_eq(r[i].rec.uses_remaining, want[i].remaining, "%s", in[i].ref);
        cr_assert_eq(r[i].rec.covered_amount, want[i].covered, "%s", in[i].ref);
        cr_assert_eq(r[i].rec.customer_charge, want[i].charge, "%s", in[i].ref);
        cr_assert_str_eq(r[i].rec.decided_at, r[0].rec.decided_at, "one transaction");
        if (want[i].status == ADJ_STATUS_DENIED)
            cr_assert_eq(r[i].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT, "%s", in[i].ref);
        if (i > 0)
            cr_assert_gt(r[i].rec.seq, r[i - 1].rec.seq, "seq follows submission order");
    }

    /* The uses each decision counted, as seqs of the claims of this batch. */
    char want_counted[256];
    long long s[6];
    for (int i = 0; i < 6; i++)
        s[i] = (long long)r[i].rec.seq;
    snprintf(want_counted, sizeof(want_counted),
             "B-A:;B-B:%lld;B-C:%lld,%lld;B-D:;B-E:%lld;"
             "B-F:%lld,%lld",
             s[0], s[0], s[1], s[3], s[3], s[4]);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(claim_ref || ':' || "
                                     "array_to_string(counted_uses, ','), ';' ORDER BY seq) "
                                     "FROM claims WHERE claim_ref LIKE 'B-%%'"),
                     want_counted);
    cr_assert_eq(blk[0].rc, 0);
    cr_assert_eq(blk[1].rc, 0);
}
