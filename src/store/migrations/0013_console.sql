-- The operator console (issue 21): its sign-in sessions; lower-cased, indexed copies of customer
-- names and emails for case-insensitive search (the columns themselves compare byte for byte);
-- the request id of the call that made each transaction; a customer's open holds by index.
CREATE TABLE `console_sessions` (
	`id_hash` char(64) NOT NULL,
	`project_id` bigint unsigned NOT NULL,
	`api_key_id` bigint unsigned NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`expires_at` datetime(3) NOT NULL,
	CONSTRAINT `console_sessions_id_hash` PRIMARY KEY(`id_hash`)
);
--> statement-breakpoint
ALTER TABLE `customers` ADD `name_search` varchar(255) GENERATED ALWAYS AS (LOWER(`name`)) STORED;--> statement-breakpoint
ALTER TABLE `customers` ADD `email_search` varchar(255) GENERATED ALWAYS AS (LOWER(`email`)) STORED;--> statement-breakpoint
ALTER TABLE `transactions` ADD `request_id` varchar(128);--> statement-breakpoint
CREATE INDEX `console_sessions_expiry_idx` ON `console_sessions` (`expires_at`);--> statement-breakpoint
CREATE INDEX `console_sessions_key_idx` ON `console_sessions` (`api_key_id`);--> statement-breakpoint
CREATE INDEX `customers_name_search_idx` ON `customers` (`project_id`,`name_search`);--> statement-breakpoint
CREATE INDEX `customers_email_search_idx` ON `customers` (`project_id`,`email_search`);--> statement-breakpoint
CREATE INDEX `transactions_customer_status_idx` ON `transactions` (`customer_pk`,`status`);