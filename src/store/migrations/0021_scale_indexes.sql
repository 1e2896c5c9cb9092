CREATE INDEX `events_customer_idx` ON `events` (`project_id`,`customer_id`,`project_position`);--> statement-breakpoint
CREATE INDEX `events_type_idx` ON `events` (`project_id`,`type`,`project_position`);--> statement-breakpoint
CREATE INDEX `ledger_void_idx` ON `ledger_entries` (`reverses_record_id`);