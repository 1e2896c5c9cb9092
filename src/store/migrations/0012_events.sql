-- Hand-edited: every table compares ids byte for byte whatever the database's default collation (see 0002).
CREATE TABLE `balance_alerts` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_id` varchar(128) NOT NULL,
	`credit_type` varchar(64) NOT NULL DEFAULT '',
	`threshold` bigint NOT NULL,
	`state` varchar(16) NOT NULL DEFAULT 'armed',
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `balance_alerts_id` PRIMARY KEY(`id`),
	CONSTRAINT `balance_alerts_key_uq` UNIQUE(`project_id`,`customer_id`,`credit_type`),
	CONSTRAINT `balance_alerts_threshold_pos` CHECK(`balance_alerts`.`threshold` > 0),
	CONSTRAINT `balance_alerts_state_known` CHECK(`balance_alerts`.`state` IN ('armed', 'low', 'depleted'))
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
CREATE TABLE `event_prune_marks` (
	`project_id` bigint unsigned NOT NULL,
	`pruned_through` bigint unsigned NOT NULL,
	CONSTRAINT `event_prune_marks_project_id` PRIMARY KEY(`project_id`)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
CREATE TABLE `event_publishers` (
	`name` varchar(64) NOT NULL,
	`position` bigint unsigned NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `event_publishers_name` PRIMARY KEY(`name`)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
CREATE TABLE `events` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`event_id` varchar(100) NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_id` varchar(128),
	`type` varchar(40) NOT NULL,
	`transaction_id` varchar(128),
	`payload` json NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`position` bigint unsigned,
	`project_position` bigint unsigned,
	CONSTRAINT `events_id` PRIMARY KEY(`id`),
	CONSTRAINT `events_event_id_uq` UNIQUE(`event_id`),
	CONSTRAINT `events_position_uq` UNIQUE(`position`),
	CONSTRAINT `events_project_position_uq` UNIQUE(`project_id`,`project_position`)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
-- IF NOT EXISTS since the service creates `leases` itself before migrating: its lease protects
-- the migrations (store/leases-store.ts). Databases that ran this without it are unaffected.
CREATE TABLE IF NOT EXISTS `leases` (
	`name` varchar(64) NOT NULL,
	`owner` varchar(128) NOT NULL,
	`expires_at` datetime(3) NOT NULL,
	CONSTRAINT `leases_name` PRIMARY KEY(`name`)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
--> statement-breakpoint
CREATE TABLE `settings` (
	`name` varchar(64) NOT NULL,
	`value` varchar(255) NOT NULL,
	CONSTRAINT `settings_name` PRIMARY KEY(`name`)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
