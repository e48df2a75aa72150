-- One row per customer the plugin has seen; times are UTC epoch ms.
CREATE TABLE activity_customers(
  customer_id INTEGER PRIMARY KEY,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  touches INTEGER NOT NULL DEFAULT 0,
  orders INTEGER NOT NULL DEFAULT 0,
  refunds INTEGER NOT NULL DEFAULT 0,
  first_order_at INTEGER,
  dormant_since INTEGER);
CREATE INDEX activity_customers_last_seen ON activity_customers(last_seen)
  WHERE dormant_since IS NULL;

-- Net revenue per customer and currency, in minor units.
CREATE TABLE activity_revenue(
  customer_id INTEGER NOT NULL,
  currency TEXT NOT NULL,
  amount INTEGER NOT NULL,
  PRIMARY KEY (customer_id, currency)) WITHOUT ROWID;
