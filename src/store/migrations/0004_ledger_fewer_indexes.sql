DROP INDEX `ledger_account_idx` ON `ledger_entries`;--> statement-breakpoint
DROP INDEX `ledger_transaction_idx` ON `ledger_entries`;