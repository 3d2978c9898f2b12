-- The platform's id of the order line a license was issued for (Shopify line item,
-- WooCommerce order item, ...), so a refund naming lines revokes only those lines' licenses.
-- NULL for licenses of platforms without line identities and for every license issued before.
ALTER TABLE licenses ADD COLUMN line_id TEXT
