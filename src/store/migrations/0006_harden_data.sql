ALTER TABLE `customers` MODIFY COLUMN `metadata` mediumtext NOT NULL;--> statement-breakpoint
ALTER TABLE `ledger_entries` MODIFY COLUMN `metadata` mediumtext NOT NULL;--> statement-breakpoint
ALTER TABLE `transactions` MODIFY COLUMN `metadata` mediumtext NOT NULL;--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD CONSTRAINT `ledger_operation_valid` CHECK (`ledger_entries`.`operation` IN ('DEPOSIT', 'DEDUCT', 'FREEZE', 'CONSUME', 'UNFREEZE', 'EXPIRE'));--> statement-breakpoint
ALTER TABLE `transactions` ADD CONSTRAINT `transactions_kind_valid` CHECK (`transactions`.`kind` IN ('DEDUCT', 'FREEZE'));--> statement-breakpoint
ALTER TABLE `transactions` ADD CONSTRAINT `transactions_status_valid` CHECK (`transactions`.`status` IN ('DEDUCTED', 'FROZEN', 'CONSUMED', 'UNFROZEN'));--> statement-breakpoint
ALTER TABLE `transactions` ADD CONSTRAINT `transactions_auto_action_valid` CHECK (`transactions`.`auto_action` IS NULL OR `transactions`.`auto_action` IN ('UNFREEZE', 'CONSUME'));--> statement-breakpoint
-- hand-written:
-- Finding 8: "no start" is now stored one millisecond before the first valid instant
-- (NO_START_MS), so a starts_at of 0001-01-01T00:00:00Z is stored as sent. Accounts stored with
-- the old bound have always been answered as having no start; they keep that meaning.
UPDATE `accounts` SET `starts_at_ms` = -62135596800001 WHERE `starts_at_ms` = -62135596800000;
