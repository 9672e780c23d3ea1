-- bench/naive_claim.sql: the naive baseline, a pgbench script deciding one claim
-- per transaction: BEGIN; lock the subscription row and read its facts; read its
-- live uses in the window; INSERT the decided claim; COMMIT.
--
--   pgbench -n -f bench/naive_claim.sql -D n=N -D tid=TENANT_ID -D key=API_KEY_ID
--           -c C -j J -T SECONDS URL
--
-- Over the 'bench' tenant of bench/seed.sql (subscriptions 'bench-1'..'bench-N',
-- each with the option and a registered device; the claim carries that device's
-- IMEI). The decision follows policy.md under the version in force on the
-- incident, for the contract_year window and incidents on or after applied_on
-- (all the seed produces): every failing check in order (option_not_enrolled,
-- option_cancelled, incident_before_coverage, natural_failure_expired,
-- exchange_not_offered_ios, frequency_limit), else approved as use uses+1 with
-- the repair cap (cap_exceeded) or the exchange fee of the window's exchanges.
-- The row satisfies every CHECK of the claims table and carries the same audit
-- columns the pipeline writes (snapshots, counted_uses).
--
-- Written for pgbench's default simple query mode: text variables set by \gset
-- are substituted inside quotes (':ws'), which -M extended/prepared would not do.
-- Every \gset value is non-NULL (coalesce) for the same reason.

\set sid random(1, :n)
\set back random(0, 299)
\set cause random(0, 1)
\set dmg random(1, 4)
\set remedy random(0, 2)
\set est random(1000, 90000)
\set uniq random(1, 999999999999999)

BEGIN;

-- Lock the subscription (claims of one subscription are decided one at a time)
-- and read its facts, the policy in force and the contract-year window of the
-- incident; the checks that need no history are evaluated here.
SELECT s.id AS sub_id,
       (current_date - :back) AS inc,
       p.name AS pv, p.repair_cap AS cap, p.max_uses AS max_uses,
       p.exchange_fees AS fees, p.loaner_os AS loaner_os,
       (s.applied_on + make_interval(years => w.k))::date AS ws,
       (s.applied_on + make_interval(years => w.k + 1))::date - 1 AS we,
       array_to_string(array_remove(ARRAY[
           CASE WHEN NOT s.device_protection THEN 'option_not_enrolled' END,
           CASE WHEN s.cancelled_on <= current_date - :back THEN 'option_cancelled' END,
           CASE WHEN current_date - :back < d.registered_on THEN 'incident_before_coverage' END,
           CASE WHEN :cause = 0 AND current_date - :back
                     >= (d.release_date + make_interval(months => p.natural_failure_months))::date
                THEN 'natural_failure_expired' END,
           CASE WHEN :remedy = 0 AND d.os = 'ios' AND NOT p.ios_exchange
                THEN 'exchange_not_offered_ios' END], NULL), ',') AS fact_fails
  FROM subscriptions s
  JOIN devices d ON d.tenant_id = s.tenant_id AND d.subscription_id = s.id
 CROSS JOIN LATERAL (
       SELECT * FROM policy_versions
        WHERE effective_from <= current_date - :back
        ORDER BY effective_from DESC LIMIT 1) p
 CROSS JOIN LATERAL (
       SELECT max(g) AS k FROM generate_series(0, 100) AS g
        WHERE (s.applied_on + make_interval(years => g))::date <= current_date - :back) w
 WHERE s.tenant_id = :tid AND s.subscription_ref = 'bench-' || :sid
   FOR UPDATE OF s
\gset

-- The live uses in the window (approved, not withdrawn), the exchanges among
-- them and their decision order for counted_uses.
SELECT count(*) AS uses,
       count(*) FILTER (WHERE remedy = 'exchange') AS exch,
       coalesce(string_agg(seq::text, ',' ORDER BY seq), '') AS counted
  FROM claims
 WHERE tenant_id = :tid AND subscription_id = :sub_id AND status = 'approved'
   AND withdrawn_at IS NULL AND incident_on BETWEEN ':ws' AND ':we'
\gset

-- The decided claim, with the facts it used.
INSERT INTO claims (tenant_id, claim_ref, subscription_id, fingerprint, imei, incident_on,
                    cause, damage, remedy, repair_estimate, status, reasons, covered_amount,
                    customer_charge, use_number, uses_remaining, window_start, window_end,
                    loaner, policy_version, api_key_id, subscription_snapshot,
                    device_snapshot, counted_uses)
SELECT s.tenant_id, c.ref, s.id, sha256(convert_to(c.ref, 'UTF8')), d.imei, c.inc,
       c.cause, c.damage, c.remedy, c.est,
       CASE WHEN c.ok THEN 'approved' ELSE 'denied' END,
       CASE WHEN NOT c.ok THEN c.fails
            WHEN c.est > :cap THEN ARRAY['cap_exceeded'] ELSE '{}'::text[] END,
       CASE WHEN c.ok AND c.remedy = 'repair' THEN least(c.est, :cap) ELSE 0 END,
       CASE WHEN NOT c.ok THEN 0
            WHEN c.remedy = 'repair' THEN c.est - least(c.est, :cap)
            ELSE (':fees'::bigint[])[:exch + 1] END,
       CASE WHEN c.ok THEN :uses + 1 END,
       CASE WHEN c.ok THEN :max_uses - :uses - 1 ELSE greatest(:max_uses - :uses, 0) END,
       ':ws', ':we',
       CASE WHEN c.ok AND c.remedy = 'repair' THEN ':loaner_os' END,
       ':pv', :key,
       jsonb_build_object('applied_on', s.applied_on, 'activated_on', s.activated_on,
                          'cancelled_on', s.cancelled_on,
                          'device_protection', s.device_protection),
       jsonb_build_object('imei', d.imei, 'os', d.os, 'model', d.model,
                          'release_date', d.release_date, 'purchased_from', d.purchased_from,
                          'registered_on', d.registered_on),
       string_to_array(':counted', ',')::bigint[]
  FROM (SELECT f.*, cardinality(f.fails) = 0 AS ok
          FROM (SELECT 'N-' || :client_id || '-' || :uniq AS ref,
                       ':inc'::date AS inc,
                       CASE WHEN :cause = 0 THEN 'natural_failure' ELSE 'physical_damage' END AS cause,
                       CASE WHEN :cause = 0 THEN NULL
                            ELSE (ARRAY['screen', 'water', 'total_loss', 'other'])[:dmg] END AS damage,
                       CASE WHEN :remedy = 0 THEN 'exchange' ELSE 'repair' END AS remedy,
                       CASE WHEN :remedy = 0 THEN NULL ELSE :est END AS est,
                       string_to_array(':fact_fails', ',')
                       || CASE WHEN :uses >= :max_uses THEN ARRAY['frequency_limit']
                               ELSE '{}'::text[] END AS fails) f) c
  JOIN subscriptions s ON s.tenant_id = :tid AND s.id = :sub_id
  JOIN devices d ON d.tenant_id = s.tenant_id AND d.subscription_id = s.id
ON CONFLICT DO NOTHING;

COMMIT;
