-- Tables of a plugin start with its name and an underscore: the host lets a
-- plugin's SQL touch only those (and read the core tables its permissions
-- grant). Migrations run once each, in order, in a transaction.
CREATE TABLE {{name}}_orders(
  id INTEGER PRIMARY KEY,
  event_id INTEGER NOT NULL UNIQUE,
  customer_id INTEGER NOT NULL,
  type TEXT NOT NULL,
  amount INTEGER NOT NULL,      -- minor units (cents)
  currency TEXT NOT NULL,
  at INTEGER NOT NULL);         -- epoch milliseconds, UTC
CREATE INDEX {{name}}_orders_customer ON {{name}}_orders(customer_id);
CREATE TABLE {{name}}_summaries(
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  orders INTEGER NOT NULL,
  total INTEGER NOT NULL);
