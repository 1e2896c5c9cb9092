-- The ledger is append-only: the database itself refuses to change or remove an entry.
CREATE TRIGGER `ledger_entries_no_update` BEFORE UPDATE ON `ledger_entries` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ledger_entries is append-only';
--> statement-breakpoint
CREATE TRIGGER `ledger_entries_no_delete` BEFORE DELETE ON `ledger_entries` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ledger_entries is append-only';
--> statement-breakpoint
-- Until API keys exist every call runs in this project.
INSERT INTO `projects` (`id`, `name`, `created_at`) VALUES (1, 'default', UTC_TIMESTAMP(3));
