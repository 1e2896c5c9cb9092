-- An account whose start comes later changes the customer's available balance with no write, so
-- the sweeper re-decides the customer's balance alerts when it starts, once (`start_recorded`).
-- Added as TRUE (instant, no row rewritten: every account that has started is done), then the
-- accounts still to start are marked FALSE, then the default becomes FALSE: an account that an
-- older build makes during a rolling upgrade is looked at once by the sweeper.
ALTER TABLE `accounts` ADD `start_recorded` boolean DEFAULT true NOT NULL;--> statement-breakpoint
UPDATE `accounts` SET `start_recorded` = FALSE WHERE `starts_at_ms` > FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000);--> statement-breakpoint
ALTER TABLE `accounts` ALTER COLUMN `start_recorded` SET DEFAULT false;--> statement-breakpoint
CREATE INDEX `accounts_start_idx` ON `accounts` (`start_recorded`,`starts_at_ms`);
