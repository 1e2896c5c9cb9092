CREATE TABLE `entitlement_events` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`entitlement_id` bigint unsigned NOT NULL,
	`feature_key` varchar(128) NOT NULL,
	`type` varchar(16) NOT NULL,
	`old_value` text,
	`new_value` text,
	`source` varchar(64),
	`description` varchar(1024),
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `entitlement_events_id` PRIMARY KEY(`id`),
	CONSTRAINT `entitlement_events_type` CHECK(`entitlement_events`.`type` IN ('SET', 'REMOVE'))
);
--> statement-breakpoint
CREATE TABLE `entitlements` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`feature_key` varchar(128) NOT NULL,
	`value` text NOT NULL,
	`valid_from_ms` bigint,
	`valid_until_ms` bigint,
	`source` varchar(64),
	`description` varchar(1024),
	`metadata` text,
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `entitlements_id` PRIMARY KEY(`id`),
	CONSTRAINT `entitlements_key_uq` UNIQUE(`project_id`,`customer_pk`,`feature_key`),
	CONSTRAINT `entitlements_window` CHECK(`entitlements`.`valid_from_ms` IS NULL OR `entitlements`.`valid_until_ms` IS NULL OR `entitlements`.`valid_until_ms` > `entitlements`.`valid_from_ms`)
);
--> statement-breakpoint
CREATE TABLE `slot_events` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`pool_id` bigint unsigned NOT NULL,
	`holding_id` bigint unsigned,
	`type` varchar(16) NOT NULL,
	`wallet` varchar(64) NOT NULL,
	`source` varchar(64) NOT NULL,
	`amount` bigint NOT NULL,
	`resource_id` varchar(128),
	`description` varchar(1024),
	`idempotency_key` varchar(128),
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `slot_events_id` PRIMARY KEY(`id`),
	CONSTRAINT `slot_events_amount_pos` CHECK(`slot_events`.`amount` > 0),
	CONSTRAINT `slot_events_type` CHECK(`slot_events`.`type` IN ('GRANT_CAPACITY', 'REVOKE_CAPACITY', 'CLAIM', 'RELEASE'))
);
--> statement-breakpoint
CREATE TABLE `slot_holdings` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`pool_id` bigint unsigned NOT NULL,
	`wallet` varchar(64) NOT NULL,
	`resource_id` varchar(128) NOT NULL,
	`held_resource_id` varchar(128),
	`amount` bigint NOT NULL DEFAULT 0,
	`created_at` datetime(3) NOT NULL,
	`released_at` datetime(3),
	CONSTRAINT `slot_holdings_id` PRIMARY KEY(`id`),
	CONSTRAINT `slot_holdings_held_uq` UNIQUE(`project_id`,`customer_pk`,`wallet`,`held_resource_id`),
	CONSTRAINT `slot_holdings_amount_pos` CHECK(`slot_holdings`.`amount` > 0),
	CONSTRAINT `slot_holdings_held_is_resource` CHECK(`slot_holdings`.`held_resource_id` IS NULL OR (`slot_holdings`.`held_resource_id` = `slot_holdings`.`resource_id` AND `slot_holdings`.`released_at` IS NULL))
);
--> statement-breakpoint
CREATE TABLE `slot_keys` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`idempotency_key` varchar(128) NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`request_fingerprint` char(64) NOT NULL,
	`response` mediumtext NOT NULL,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `slot_keys_id` PRIMARY KEY(`id`),
	CONSTRAINT `slot_keys_project_key_uq` UNIQUE(`project_id`,`idempotency_key`)
);
--> statement-breakpoint
CREATE TABLE `slot_pools` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`wallet` varchar(64) NOT NULL,
	`source` varchar(64) NOT NULL,
	`capacity` bigint NOT NULL DEFAULT 0,
	`in_use` bigint NOT NULL DEFAULT 0,
	`status` varchar(16) NOT NULL DEFAULT 'ACTIVE',
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `slot_pools_id` PRIMARY KEY(`id`),
	CONSTRAINT `slot_pools_key_uq` UNIQUE(`project_id`,`customer_pk`,`wallet`,`source`),
	CONSTRAINT `slot_pools_in_use_nonneg` CHECK(`slot_pools`.`in_use` >= 0),
	CONSTRAINT `slot_pools_within_capacity` CHECK(`slot_pools`.`in_use` <= `slot_pools`.`capacity`),
	CONSTRAINT `slot_pools_status` CHECK(`slot_pools`.`status` IN ('ACTIVE', 'SUSPENDED'))
);
--> statement-breakpoint
CREATE INDEX `entitlement_events_customer_idx` ON `entitlement_events` (`project_id`,`customer_pk`,`id`);--> statement-breakpoint
CREATE INDEX `slot_events_customer_idx` ON `slot_events` (`project_id`,`customer_pk`,`id`);--> statement-breakpoint
CREATE INDEX `slot_events_pool_idx` ON `slot_events` (`pool_id`);--> statement-breakpoint
CREATE INDEX `slot_holdings_resource_idx` ON `slot_holdings` (`project_id`,`customer_pk`,`wallet`,`resource_id`,`id`);--> statement-breakpoint
CREATE INDEX `slot_holdings_pool_idx` ON `slot_holdings` (`pool_id`);--> statement-breakpoint
-- hand-written:
-- Ids, wallets and feature keys compare byte for byte, whatever collation the database has (see 0002).
ALTER TABLE `slot_pools` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
ALTER TABLE `slot_holdings` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
ALTER TABLE `slot_events` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
ALTER TABLE `slot_keys` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
ALTER TABLE `entitlements` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
ALTER TABLE `entitlement_events` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
-- The slot and entitlement histories are append-only, like the ledger: the database refuses to change or remove an event.
CREATE TRIGGER `slot_events_no_update` BEFORE UPDATE ON `slot_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'slot_events is append-only';
--> statement-breakpoint
CREATE TRIGGER `slot_events_no_delete` BEFORE DELETE ON `slot_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'slot_events is append-only';
--> statement-breakpoint
CREATE TRIGGER `entitlement_events_no_update` BEFORE UPDATE ON `entitlement_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'entitlement_events is append-only';
--> statement-breakpoint
CREATE TRIGGER `entitlement_events_no_delete` BEFORE DELETE ON `entitlement_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'entitlement_events is append-only';
