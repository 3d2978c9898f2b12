-- Which subscription an order, invoice, payment intent or charge id belongs to, so an event
-- naming only that id (a refund, a dispute) finds its subscription with one indexed read.
-- Filled from the ids the subscriptions have already seen.
CREATE TABLE subscription_orders (
    integration_id TEXT NOT NULL REFERENCES integrations(id),
    order_id TEXT NOT NULL,
    subscription_external_id TEXT NOT NULL,
    PRIMARY KEY (integration_id, order_id)
);
INSERT OR IGNORE INTO subscription_orders (integration_id, order_id, subscription_external_id)
SELECT s.integration_id, j.value, s.external_id
FROM subscriptions s, json_each(s.state, '$.order_ids') j
WHERE json_valid(s.state)
