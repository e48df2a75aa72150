-- A loyalty program as the nightly jobs find it, built straight into the
-- plugin's tables for scripts/bench-plugins (far faster than earning every
-- point through events): :members customers and members, 5 lots each with
-- their earn rows in the ledger (the balance trigger keeps balances), and
-- qualifying days for the tier window. Lots earned a year ago today expire
-- tonight (about 1 in 365); their qualifying days leave the window; the
-- members whose anniversary is today have their tier reviewed.
-- Parameters: :members, :today (UTC days since the epoch), :now (epoch ms,
-- when the jobs will run: the lots of one day, 1 in 365, expired in the
-- hour before).
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :members)
INSERT INTO customers(id, external_id, created_at, updated_at)
SELECT i, printf('L%07d', i), (:today - 800) * 86400000, (:today - 800) * 86400000 FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :members)
INSERT INTO loyalty_members(customer_id, joined_at, anniv_md, tier, tier_since, purchases)
SELECT i, (:today - 1 - i % 730) * 86400000,
       strftime('%m-%d', (:today - 1 - i % 730) * 86400, 'unixepoch'), 'member', (:today - 400) * 86400000, 5
FROM n;

-- Lot k of member i: earned (i * 5 + k) % 365 days after a year ago. Lots
-- are numbered in the order they were earned, as a ledger that grew over
-- the year numbers them: tonight's expiring lots sit together, their
-- members all over the table.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :members),
     k(k) AS (VALUES (0), (1), (2), (3), (4)),
     l AS (SELECT i, k, 50 + (i * 7 + k * 13) % 1000 AS pts,
                  :now - 3600000 - 365 * 86400000 + ((i * 5 + k) % 365) * 86400000 AS earned
           FROM n, k)
INSERT INTO loyalty_lots(customer_id, points, remaining, earned_at, active_at, expires_at, source)
SELECT i, pts, pts, earned, earned, earned + 365 * 86400000, 'bench:' || (i * 5 + k) FROM l ORDER BY earned, i, k;

INSERT INTO loyalty_ledger(customer_id, kind, points, lot_id, source, actor, at)
SELECT customer_id, 'earn', points, id, source, 'bench', earned_at FROM loyalty_lots ORDER BY id;

INSERT INTO loyalty_qual(customer_id, day, points, spend)
SELECT customer_id, earned_at / 86400000, sum(points), sum(points) * 100 FROM loyalty_lots
GROUP BY customer_id, earned_at / 86400000;

UPDATE loyalty_members AS m SET qual_points = q.p, qual_spend = q.s
FROM (SELECT customer_id, sum(points) AS p, sum(spend) AS s FROM loyalty_qual GROUP BY customer_id) AS q
WHERE q.customer_id = m.customer_id;
UPDATE loyalty_members SET tier = CASE WHEN qual_points >= 5000 THEN 'gold' WHEN qual_points >= 1000 THEN 'silver'
                                       ELSE 'member' END;

-- Only tonight's anniversaries are due (the job ran last night).
INSERT INTO loyalty_state(key, value) VALUES ('reviewed_through', :today - 1)
  ON CONFLICT(key) DO UPDATE SET value = excluded.value;
COMMIT;
PRAGMA synchronous = FULL;
