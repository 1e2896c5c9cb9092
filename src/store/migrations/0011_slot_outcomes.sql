ALTER TABLE `idempotency_outcomes` DROP CONSTRAINT `idempotency_outcomes_scope_valid`;--> statement-breakpoint
ALTER TABLE `idempotency_outcomes` ADD CONSTRAINT `idempotency_outcomes_scope_valid` CHECK (`idempotency_outcomes`.`scope` IN ('DEPOSIT', 'SPEND', 'SETTLE', 'SLOT'));--> statement-breakpoint
-- hand-written:
-- Grant and Revoke keep their stored responses in the one envelope, under scope SLOT: the rows of
-- slot_keys move as they are (same key space, same fingerprints, same encoded responses), so a
-- capacity change made before the upgrade still replays after it. The drop (drizzle-kit's) is
-- placed here because it must follow the copy.
INSERT INTO `idempotency_outcomes` (`project_id`, `scope`, `idempotency_key`, `customer_pk`, `request_fingerprint`, `response`, `created_at`)
  SELECT `project_id`, 'SLOT', `idempotency_key`, `customer_pk`, `request_fingerprint`, `response`, `created_at` FROM `slot_keys`;
--> statement-breakpoint
DROP TABLE `slot_keys`;
