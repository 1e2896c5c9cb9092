CREATE TABLE `api_keys` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`key_hash` char(64) NOT NULL,
	`prefix` varchar(32) NOT NULL,
	`label` varchar(128) NOT NULL DEFAULT '',
	`scope` varchar(8) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`last_used_at` datetime(3),
	`revoked_at` datetime(3),
	CONSTRAINT `api_keys_id` PRIMARY KEY(`id`),
	CONSTRAINT `api_keys_hash_uq` UNIQUE(`key_hash`),
	CONSTRAINT `api_keys_prefix_uq` UNIQUE(`prefix`),
	CONSTRAINT `api_keys_scope_known` CHECK(`api_keys`.`scope` IN ('read', 'write'))
);
--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD `api_key_id` bigint unsigned;--> statement-breakpoint
ALTER TABLE `projects` ADD `mode` varchar(8) DEFAULT 'test' NOT NULL;--> statement-breakpoint
ALTER TABLE `projects` ADD `rate_per_second` int unsigned DEFAULT 5000 NOT NULL;--> statement-breakpoint
ALTER TABLE `projects` ADD `burst` int unsigned DEFAULT 10000 NOT NULL;--> statement-breakpoint
ALTER TABLE `transactions` ADD `api_key_id` bigint unsigned;--> statement-breakpoint
CREATE INDEX `api_keys_project_idx` ON `api_keys` (`project_id`);--> statement-breakpoint
ALTER TABLE `projects` ADD CONSTRAINT `projects_mode_known` CHECK (`projects`.`mode` IN ('live', 'test'));--> statement-breakpoint
-- hand-written:
-- Prefixes are base62, where case matters: compare them byte for byte whatever the database's
-- default collation (as 0002 does for the other tables).
ALTER TABLE `api_keys` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
