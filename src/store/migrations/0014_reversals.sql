-- Reversals (issue 18): REFUND and VOID ledger entries name what they reverse; a charge keeps
-- what refunds gave back of it; the refund's read of its charge's entries (per account) goes by
-- ledger_transaction_idx instead of the customer's whole ledger. Numbered 0014 to follow the
-- migrations of the branches merged before it; only the columns, the index and the CHECKs are new
-- (ledger_entries stays append-only: nothing here updates a row).
ALTER TABLE `ledger_entries` DROP CONSTRAINT `ledger_operation_valid`;--> statement-breakpoint
ALTER TABLE `idempotency_outcomes` DROP CONSTRAINT `idempotency_outcomes_scope_valid`;--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD `reverses_transaction_id` varchar(128);--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD `reverses_record_id` bigint unsigned;--> statement-breakpoint
ALTER TABLE `transactions` ADD `refunded_amount` bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD CONSTRAINT `ledger_refund_reverses_charge` CHECK ((`ledger_entries`.`operation` = 'REFUND') = (`ledger_entries`.`reverses_transaction_id` IS NOT NULL));--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD CONSTRAINT `ledger_void_reverses_deposit` CHECK ((`ledger_entries`.`operation` = 'VOID') = (`ledger_entries`.`reverses_record_id` IS NOT NULL));--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD CONSTRAINT `ledger_operation_valid` CHECK (`ledger_entries`.`operation` IN ('DEPOSIT', 'DEDUCT', 'FREEZE', 'CONSUME', 'UNFREEZE', 'EXPIRE', 'REFUND', 'VOID'));--> statement-breakpoint
ALTER TABLE `idempotency_outcomes` ADD CONSTRAINT `idempotency_outcomes_scope_valid` CHECK (`idempotency_outcomes`.`scope` IN ('DEPOSIT', 'SPEND', 'SETTLE', 'SLOT', 'REFUND', 'VOID'));--> statement-breakpoint
ALTER TABLE `transactions` ADD CONSTRAINT `transactions_refunded_within_charge` CHECK (`transactions`.`refunded_amount` >= 0 AND `transactions`.`refunded_amount` <= CASE WHEN `transactions`.`kind` = 'DEDUCT' THEN `transactions`.`amount` ELSE `transactions`.`consumed_amount` END);--> statement-breakpoint
CREATE INDEX `ledger_transaction_idx` ON `ledger_entries` (`transaction_pk`);