ALTER TABLE `customers` MODIFY COLUMN `metadata` mediumtext NOT NULL;--> statement-breakpoint
ALTER TABLE `ledger_entries` MODIFY COLUMN `metadata` mediumtext NOT NULL;--> statement-breakpoint
ALTER TABLE `transactions` MODIFY COLUMN `metadata` mediumtext NOT NULL;