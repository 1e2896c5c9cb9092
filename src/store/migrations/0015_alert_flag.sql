-- A write reads a customer's balance alerts only when the customer has any: `has_alerts` is read
-- with the customer's lock and kept by SetAlert and DeleteAlert under that lock. Existing alerts
-- set it here. (Only this column is new: the snapshot beside this file also records the event
-- tables of 0012, which the snapshot of 0014 had left out.)
ALTER TABLE `customers` ADD `has_alerts` boolean DEFAULT false NOT NULL;--> statement-breakpoint
UPDATE `customers` c SET c.`has_alerts` = TRUE
WHERE EXISTS (SELECT 1 FROM `balance_alerts` b WHERE b.`project_id` = c.`project_id` AND b.`customer_id` = c.`customer_id`);
