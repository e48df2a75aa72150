-- Segment definitions: a rule (canonical JSON of lib/rule.lua's tree), a
-- Lua predicate (source, with an optional rule as its SQL pre-filter), or
-- a static list. status 'building' until a full evaluation has run since
-- the last change; rebuild_next is where that evaluation has reached.
CREATE TABLE segments_defs(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('dynamic', 'lua', 'static')),
  rule TEXT,
  source TEXT,
  description TEXT,
  status TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('building', 'ready')),
  rebuild_next INTEGER NOT NULL DEFAULT 0,
  members INTEGER NOT NULL DEFAULT 0 CHECK (members >= 0),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  built_at INTEGER
);

-- Who is in which segment now. members in segments_defs is kept by the
-- triggers, so it can never disagree with this table.
CREATE TABLE segments_members(
  segment_id INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  entered_at INTEGER NOT NULL,
  PRIMARY KEY (segment_id, customer_id)
) WITHOUT ROWID;
CREATE INDEX segments_members_customer ON segments_members(customer_id);
CREATE TRIGGER segments_members_in AFTER INSERT ON segments_members BEGIN
  UPDATE segments_defs SET members = members + 1 WHERE id = NEW.segment_id;
END;
CREATE TRIGGER segments_members_out AFTER DELETE ON segments_members BEGIN
  UPDATE segments_defs SET members = members - 1 WHERE id = OLD.segment_id;
END;

-- Facts per customer (lib/facts.lua): purchases, lifecycle stage, RFM
-- (scores 1-5 and group, from the nightly job), loyalty tier. changed = 1
-- marks rows whose stage, scores or tier changed and whose segments have
-- not been evaluated since.
CREATE TABLE segments_profile(
  customer_id INTEGER PRIMARY KEY,
  first_order_at INTEGER,
  last_order_at INTEGER,
  orders INTEGER NOT NULL DEFAULT 0,
  frequency INTEGER NOT NULL DEFAULT 0,
  monetary INTEGER NOT NULL DEFAULT 0,
  stage TEXT,
  r INTEGER, f INTEGER, m INTEGER,
  rfm_group TEXT,
  tier TEXT,
  changed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX segments_profile_changed ON segments_profile(customer_id) WHERE changed = 1;
-- The RFM thresholds are read by rank (ORDER BY ... LIMIT 1 OFFSET k).
CREATE INDEX segments_profile_recency ON segments_profile(last_order_at) WHERE frequency > 0;
CREATE INDEX segments_profile_frequency ON segments_profile(frequency) WHERE frequency > 0;
CREATE INDEX segments_profile_monetary ON segments_profile(monetary) WHERE frequency > 0;

-- Each customer's next time edge (lib/engine.lua, M.reschedule).
CREATE TABLE segments_due(
  customer_id INTEGER PRIMARY KEY,
  due_at INTEGER NOT NULL
);
CREATE INDEX segments_due_at ON segments_due(due_at);

-- Counts of draft rules (rule: its text) run by the preview job:
-- cancellable, resumable.
CREATE TABLE segments_previews(
  id INTEGER PRIMARY KEY,
  rule TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
  next_id INTEGER NOT NULL DEFAULT 0,
  last_id INTEGER NOT NULL,
  matched INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  created_at INTEGER NOT NULL,
  finished_at INTEGER
);

-- Customers erased on request: their row and the types and times of their
-- events stay in the core (for counts), so every evaluation leaves them
-- out, as if merged away. Only the id is kept.
CREATE TABLE segments_erased(
  customer_id INTEGER PRIMARY KEY
);

-- version: bumped by every change of a definition (processes cache the
-- compiled definitions per version); profiles_at / profiles_id: how far
-- the profiles job has read the customers' changes.
CREATE TABLE segments_state(
  key TEXT PRIMARY KEY,
  value
);
