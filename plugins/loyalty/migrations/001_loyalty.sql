-- Loyalty: members, the points ledger and the lots it is made of, orders
-- seen, qualifying totals per day for tiers, the rewards catalogue and its
-- coupons, per-rule usage for limits, and operators' Lua rules.
--
-- Points are integers. Times are UTC epoch ms; days are UTC days since the
-- epoch (ms // 86400000).

-- One row per enrolled customer. balance is a cache of the sum of the
-- customer's ledger, kept by the trigger below in the same statement as the
-- ledger row, so it cannot disagree with it; CHECK keeps it from going
-- negative. qual_points / qual_spend are the customer's totals over the tier
-- window (loyalty_qual holds them per day).
CREATE TABLE loyalty_members(
  customer_id INTEGER PRIMARY KEY,
  joined_at INTEGER NOT NULL,
  anniv_md TEXT NOT NULL,               -- 'MM-DD' of joined_at (UTC)
  birth_md TEXT,                        -- 'MM-DD', no year: all the bonus needs
  tier TEXT NOT NULL,
  tier_since INTEGER NOT NULL,
  tier_reviewed_day INTEGER,            -- the day the downgrade policy last looked
  balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
  qual_points INTEGER NOT NULL DEFAULT 0,
  qual_spend INTEGER NOT NULL DEFAULT 0,
  purchases INTEGER NOT NULL DEFAULT 0,
  referred_by INTEGER
);
CREATE INDEX loyalty_members_anniv ON loyalty_members(anniv_md);
CREATE INDEX loyalty_members_birth ON loyalty_members(birth_md) WHERE birth_md IS NOT NULL;

-- Every change of points: earn, redeem, expire, adjust, reverse, transfer.
-- Append-only (triggers below). Erasure may only detach a row from its
-- customer (customer_id 0) and clear its texts (source, reason, actor,
-- detail), here or in other members' rows that name the erased customer
-- (a transfer's "from customer N"): points, kind, time and lot stay, so
-- the program's totals stay true.
CREATE TABLE loyalty_ledger(
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind = 'earn' OR kind = 'redeem' OR kind = 'expire' OR
                            kind = 'adjust' OR kind = 'reverse' OR kind = 'transfer'),
  points INTEGER NOT NULL CHECK (points != 0),
  lot_id INTEGER,             -- the lot an earn, adjust or transfer created, or an expiry emptied
  source TEXT,                -- what caused it, unique per customer: the idempotency key
  reason TEXT,
  actor TEXT,                 -- 'event:<id>', 'job:<name>', 'key:<id>', 'token', 'cli'
  detail TEXT,                -- JSON: points per rule, lots consumed, points not recovered
  at INTEGER NOT NULL
);
CREATE UNIQUE INDEX loyalty_ledger_source ON loyalty_ledger(customer_id, source)
  WHERE source IS NOT NULL;
CREATE INDEX loyalty_ledger_customer ON loyalty_ledger(customer_id, id);

CREATE TRIGGER loyalty_ledger_balance AFTER INSERT ON loyalty_ledger BEGIN
  UPDATE loyalty_members SET balance = balance + NEW.points WHERE customer_id = NEW.customer_id;
END;
CREATE TRIGGER loyalty_ledger_no_delete BEFORE DELETE ON loyalty_ledger BEGIN
  SELECT RAISE(ABORT, 'the loyalty ledger is append-only');
END;
CREATE TRIGGER loyalty_ledger_no_update BEFORE UPDATE ON loyalty_ledger
WHEN NOT (NEW.id = OLD.id AND NEW.kind = OLD.kind AND NEW.points = OLD.points AND
          NEW.at = OLD.at AND NEW.lot_id IS OLD.lot_id AND
          (NEW.customer_id = OLD.customer_id OR NEW.customer_id = 0) AND
          (NEW.source IS NULL OR NEW.source IS OLD.source) AND
          (NEW.reason IS NULL OR NEW.reason IS OLD.reason) AND
          (NEW.actor IS NULL OR NEW.actor IS OLD.actor) AND
          (NEW.detail IS NULL OR NEW.detail IS OLD.detail))
BEGIN
  SELECT RAISE(ABORT, 'the loyalty ledger is append-only');
END;

-- Points held, lot by lot: spending takes from the lots that expire first.
-- A lot is spendable from active_at (pending until then: a return window);
-- pending stays 1 until the activation job has announced it.
CREATE TABLE loyalty_lots(
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  points INTEGER NOT NULL CHECK (points > 0),
  remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= points),
  earned_at INTEGER NOT NULL,
  active_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  pending INTEGER NOT NULL DEFAULT 0,
  source TEXT
);
CREATE INDEX loyalty_lots_customer ON loyalty_lots(customer_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX loyalty_lots_expiry ON loyalty_lots(expires_at, id) WHERE remaining > 0;
CREATE INDEX loyalty_lots_pending ON loyalty_lots(active_at, id) WHERE pending = 1;

-- Purchases that earned, by the order's id: a replay of the same purchase
-- earns nothing, and a refund finds what to reverse.
CREATE TABLE loyalty_orders(
  order_id TEXT PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  spend INTEGER NOT NULL,          -- in the tier currency's minor units
  points INTEGER NOT NULL,
  refunded INTEGER NOT NULL DEFAULT 0,
  reversed INTEGER NOT NULL DEFAULT 0,
  lot_id INTEGER,
  day INTEGER NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX loyalty_orders_customer ON loyalty_orders(customer_id);

-- Refunds applied, keyed per order: the idempotency record of a refund
-- even when it reversed nothing (the points were already spent), with what
-- it should have reversed and what it could.
CREATE TABLE loyalty_refunds(
  order_id TEXT NOT NULL,
  refund_key TEXT NOT NULL,
  customer_id INTEGER NOT NULL,
  amount INTEGER NOT NULL,
  wanted INTEGER NOT NULL,
  taken INTEGER NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (order_id, refund_key)
) WITHOUT ROWID;
CREATE INDEX loyalty_refunds_customer ON loyalty_refunds(customer_id);

-- Qualifying points and spend per customer and day, for the rolling tier
-- window: the nightly job takes the days that leave the window off
-- loyalty_members.qual_*.
CREATE TABLE loyalty_qual(
  customer_id INTEGER NOT NULL,
  day INTEGER NOT NULL,
  points INTEGER NOT NULL DEFAULT 0,
  spend INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (customer_id, day)
) WITHOUT ROWID;
CREATE INDEX loyalty_qual_day ON loyalty_qual(day);

-- Points a rule awarded per customer and period ('d:20470', 'w:2923',
-- 'm:2026-01'), for the rule's limit.
CREATE TABLE loyalty_rule_usage(
  customer_id INTEGER NOT NULL,
  rule TEXT NOT NULL,
  period TEXT NOT NULL,
  points INTEGER NOT NULL,
  PRIMARY KEY (customer_id, rule, period)
) WITHOUT ROWID;

CREATE TABLE loyalty_rewards(
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  cost INTEGER NOT NULL CHECK (cost > 0),
  stock INTEGER CHECK (stock >= 0),       -- NULL: unlimited
  per_customer INTEGER CHECK (per_customer > 0),
  valid_days INTEGER NOT NULL CHECK (valid_days > 0),
  active INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL
);

-- Single-use coupons issued by redemptions.
CREATE TABLE loyalty_coupons(
  code TEXT PRIMARY KEY,
  reward_id INTEGER NOT NULL REFERENCES loyalty_rewards(id),
  customer_id INTEGER NOT NULL,
  ledger_id INTEGER NOT NULL,
  source TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  UNIQUE (customer_id, source)
);
CREATE INDEX loyalty_coupons_customer ON loyalty_coupons(customer_id, reward_id);

-- Earning rules and downgrade policies written in Lua by operators.
CREATE TABLE loyalty_lua_rules(
  name TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

-- The nightly jobs' progress: the last day taken off the tier window.
CREATE TABLE loyalty_state(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
