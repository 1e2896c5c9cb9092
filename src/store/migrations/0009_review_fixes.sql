ALTER TABLE `entitlements` MODIFY COLUMN `metadata` mediumtext;--> statement-breakpoint
ALTER TABLE `entitlement_events` ADD `api_key_id` bigint unsigned;--> statement-breakpoint
ALTER TABLE `slot_events` ADD `api_key_id` bigint unsigned;