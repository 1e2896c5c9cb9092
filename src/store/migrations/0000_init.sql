CREATE TABLE `accounts` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`credit_type` varchar(64) NOT NULL,
	`source` varchar(64) NOT NULL,
	`starts_at_ms` bigint NOT NULL,
	`expires_at_ms` bigint NOT NULL,
	`total` bigint NOT NULL DEFAULT 0,
	`used` bigint NOT NULL DEFAULT 0,
	`frozen` bigint NOT NULL DEFAULT 0,
	`expiry_recorded` boolean NOT NULL DEFAULT false,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `accounts_id` PRIMARY KEY(`id`),
	CONSTRAINT `accounts_key_uq` UNIQUE(`project_id`,`customer_pk`,`credit_type`,`source`,`starts_at_ms`,`expires_at_ms`),
	CONSTRAINT `accounts_total_nonneg` CHECK(`accounts`.`total` >= 0),
	CONSTRAINT `accounts_used_nonneg` CHECK(`accounts`.`used` >= 0),
	CONSTRAINT `accounts_frozen_nonneg` CHECK(`accounts`.`frozen` >= 0),
	CONSTRAINT `accounts_within_total` CHECK(`accounts`.`used` + `accounts`.`frozen` <= `accounts`.`total`)
);
--> statement-breakpoint
CREATE TABLE `allocations` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`transaction_pk` bigint unsigned NOT NULL,
	`seq` int NOT NULL,
	`account_id` bigint unsigned NOT NULL,
	`amount` bigint NOT NULL DEFAULT 0,
	CONSTRAINT `allocations_id` PRIMARY KEY(`id`),
	CONSTRAINT `allocations_tx_seq_uq` UNIQUE(`transaction_pk`,`seq`),
	CONSTRAINT `allocations_amount_pos` CHECK(`allocations`.`amount` > 0)
);
--> statement-breakpoint
CREATE TABLE `customers` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_id` varchar(128) NOT NULL,
	`name` varchar(255) NOT NULL DEFAULT '',
	`email` varchar(255) NOT NULL DEFAULT '',
	`metadata` text NOT NULL,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `customers_id` PRIMARY KEY(`id`),
	CONSTRAINT `customers_project_customer_uq` UNIQUE(`project_id`,`customer_id`)
);
--> statement-breakpoint
CREATE TABLE `deposit_keys` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`idempotency_key` varchar(128) NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`request_fingerprint` char(64) NOT NULL,
	`response` mediumtext NOT NULL,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `deposit_keys_id` PRIMARY KEY(`id`),
	CONSTRAINT `deposit_keys_project_key_uq` UNIQUE(`project_id`,`idempotency_key`)
);
--> statement-breakpoint
CREATE TABLE `ledger_entries` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`account_id` bigint unsigned NOT NULL,
	`operation` varchar(16) NOT NULL,
	`amount` bigint NOT NULL,
	`credit_type` varchar(64) NOT NULL,
	`source` varchar(64) NOT NULL,
	`transaction_pk` bigint unsigned,
	`transaction_id` varchar(128) NOT NULL DEFAULT '',
	`idempotency_key` varchar(128) NOT NULL DEFAULT '',
	`business_type` int NOT NULL DEFAULT 0,
	`description` varchar(1024) NOT NULL DEFAULT '',
	`metadata` text NOT NULL,
	`automatic` boolean NOT NULL DEFAULT false,
	`overage` boolean NOT NULL DEFAULT false,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `ledger_entries_id` PRIMARY KEY(`id`),
	CONSTRAINT `ledger_amount_pos` CHECK(`ledger_entries`.`amount` > 0)
);
--> statement-breakpoint
CREATE TABLE `projects` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`name` varchar(128) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `projects_id` PRIMARY KEY(`id`),
	CONSTRAINT `projects_name_uq` UNIQUE(`name`)
);
--> statement-breakpoint
CREATE TABLE `transactions` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`transaction_id` varchar(128) NOT NULL,
	`customer_pk` bigint unsigned NOT NULL,
	`kind` varchar(16) NOT NULL,
	`status` varchar(16) NOT NULL,
	`amount` bigint NOT NULL DEFAULT 0,
	`consumed_amount` bigint NOT NULL DEFAULT 0,
	`returned_amount` bigint NOT NULL DEFAULT 0,
	`overage_amount` bigint NOT NULL DEFAULT 0,
	`credit_types` text NOT NULL,
	`business_type` int NOT NULL DEFAULT 0,
	`description` varchar(1024) NOT NULL DEFAULT '',
	`metadata` text NOT NULL,
	`request_fingerprint` char(64) NOT NULL,
	`response` mediumtext NOT NULL,
	`settle_response` mediumtext,
	`auto_action` varchar(16),
	`auto_at` datetime(3),
	`settled_automatically` boolean NOT NULL DEFAULT false,
	`created_at` datetime(3) NOT NULL,
	`settled_at` datetime(3),
	CONSTRAINT `transactions_id` PRIMARY KEY(`id`),
	CONSTRAINT `transactions_project_tx_uq` UNIQUE(`project_id`,`transaction_id`),
	CONSTRAINT `transactions_amounts_nonneg` CHECK(`transactions`.`amount` > 0 AND `transactions`.`consumed_amount` >= 0 AND `transactions`.`returned_amount` >= 0 AND `transactions`.`overage_amount` >= 0)
);
--> statement-breakpoint
CREATE INDEX `accounts_expiry_idx` ON `accounts` (`expiry_recorded`,`expires_at_ms`);--> statement-breakpoint
CREATE INDEX `ledger_customer_idx` ON `ledger_entries` (`project_id`,`customer_pk`,`id`);--> statement-breakpoint
CREATE INDEX `ledger_account_idx` ON `ledger_entries` (`account_id`);--> statement-breakpoint
CREATE INDEX `ledger_transaction_idx` ON `ledger_entries` (`transaction_pk`);--> statement-breakpoint
CREATE INDEX `transactions_due_idx` ON `transactions` (`status`,`auto_at`);