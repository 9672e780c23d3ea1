-- The first policy version, 2025-01, effective 2020-01-01: the published
-- terms of the BYOD device-protection option, exactly as policy.md's table.
-- Later versions are new migrations that insert a row; a row is never
-- updated once claims may have been decided under it.
INSERT INTO policy_versions
    (name, effective_from, monthly_fee, free_months, repair_cap, exchange_fees, max_uses,
     frequency_window, natural_failure_months, registration_days, ios_exchange, loaner_os)
VALUES
    ('2025-01', DATE '2020-01-01', 550, 2, 50000, ARRAY[5500, 8800]::bigint[], 2,
     'contract_year', 36, 14, false, 'android');
