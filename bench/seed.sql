-- bench/seed.sql: the benchmark tenant 'bench', its API key and N subscriptions
-- 'bench-1'..'bench-N' with the option and a registered device each. Run as the
-- owner:  psql -v ON_ERROR_STOP=1 -v n=10000 -f bench/seed.sql OWNER_URL
--
-- Set-based and idempotent: a second run adds nothing (ON CONFLICT DO NOTHING).
-- Dates are relative to today (Japan, the cluster's time zone), so claims with
-- an incident in the last 300 days always fall after registration:
--   applied_on    400..699 days ago (spread by the subscription number g),
--   activated_on  0..2 days after applied_on,
--   registered_on 0..14 days after activation (policy: day 14 is the last),
--   release_date  0..899 days before applied_on, so that a natural failure is
--                 past the 36 months of cover for part of the devices.
-- Devices are 40 % iOS, 60 % Android; IMEIs are '35' + g on 12 digits + the
-- Luhn check digit (doubling every second digit from the left, as core/imei.c).

BEGIN;

INSERT INTO tenants (name) VALUES ('bench') ON CONFLICT (name) DO NOTHING;

-- Any 32-byte hash will do: the pipeline is driven without HTTP.
INSERT INTO api_keys (tenant_id, key_hash)
SELECT t.id, sha256(convert_to('claimd-bench-key', 'UTF8'))
  FROM tenants t
 WHERE t.name = 'bench'
ON CONFLICT (key_hash) DO NOTHING;

INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, activated_on,
                           device_protection)
SELECT t.id, 'bench-' || g, current_date - a.age, current_date - a.age + g % 3, true
  FROM tenants t
 CROSS JOIN generate_series(1, :n) AS g
 CROSS JOIN LATERAL (SELECT 400 + (g * 37) % 300 AS age) a
 WHERE t.name = 'bench'
ON CONFLICT (tenant_id, subscription_ref) DO NOTHING;

INSERT INTO devices (tenant_id, subscription_id, imei, os, model, release_date,
                     purchased_from, registered_on)
SELECT s.tenant_id, s.id, i.base || i.check_digit,
       CASE WHEN x.g % 5 < 2 THEN 'ios' ELSE 'android' END,
       CASE WHEN x.g % 5 < 2 THEN 'iPhone ' || (11 + x.g % 5) ELSE 'Pixel ' || (5 + x.g % 4) END,
       s.applied_on - (x.g * 53) % 900, 'other', s.activated_on + x.g % 15
  FROM tenants t
  JOIN subscriptions s ON s.tenant_id = t.id AND s.subscription_ref LIKE 'bench-%'
 CROSS JOIN LATERAL (SELECT substr(s.subscription_ref, 7)::int AS g) x
 CROSS JOIN LATERAL (SELECT '35' || lpad(x.g::text, 12, '0') AS base) b
 CROSS JOIN LATERAL (
       SELECT b.base,
              ((10 - sum(CASE WHEN p % 2 = 0
                              THEN (ARRAY[0, 2, 4, 6, 8, 1, 3, 5, 7, 9])[substr(b.base, p, 1)::int + 1]
                              ELSE substr(b.base, p, 1)::int END) % 10) % 10)::text AS check_digit
         FROM generate_series(1, 14) AS p) i
 WHERE t.name = 'bench'
ON CONFLICT DO NOTHING;

COMMIT;

ANALYZE tenants, api_keys, subscriptions, devices;
