-- Every ledger entry gets its position in its customer's ledger (`sequence`: 1, 2, … gapless, in
-- commit order) and the balance it leaves (`balance_*`: total, used and frozen over the accounts
-- whose credits no EXPIRE entry has removed). The customer row carries its last position, so a
-- write numbers its entries under the customer's lock without reading the ledger.
--
-- An expiry now always records what was left, even nothing (amount 0): that entry removes the
-- account from balance_after. Accounts recorded before with nothing left get that entry here.
ALTER TABLE `ledger_entries` DROP CONSTRAINT `ledger_amount_pos`;--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD CONSTRAINT `ledger_amount_pos` CHECK (`ledger_entries`.`amount` > 0 OR `ledger_entries`.`operation` = 'EXPIRE');--> statement-breakpoint
ALTER TABLE `customers` ADD `ledger_sequence` bigint DEFAULT 0 NOT NULL, ADD `ledger_total` bigint DEFAULT 0 NOT NULL,
  ADD `ledger_used` bigint DEFAULT 0 NOT NULL, ADD `ledger_frozen` bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ledger_entries` ADD `sequence` bigint NULL, ADD `balance_total` bigint NULL, ADD `balance_used` bigint NULL,
  ADD `balance_frozen` bigint NULL;--> statement-breakpoint
INSERT INTO `ledger_entries` (`project_id`, `customer_pk`, `account_id`, `operation`, `amount`, `credit_type`, `source`,
  `transaction_pk`, `transaction_id`, `idempotency_key`, `business_type`, `description`, `metadata`, `automatic`, `overage`,
  `created_at`, `api_key_id`)
SELECT a.`project_id`, a.`customer_pk`, a.`id`, 'EXPIRE', 0, a.`credit_type`, a.`source`, NULL, '', '', 0, '', '{}', TRUE, FALSE,
  UTC_TIMESTAMP(3), NULL
FROM `accounts` a
WHERE a.`expiry_recorded` = TRUE
  AND NOT EXISTS (SELECT 1 FROM `ledger_entries` l WHERE l.`account_id` = a.`id` AND l.`operation` = 'EXPIRE')
ORDER BY a.`customer_pk`, a.`id`;--> statement-breakpoint
-- The one UPDATE the ledger ever sees: existing entries numbered in id order (their commit order
-- under the customer's lock). The append-only trigger is dropped for it and created again below.
DROP TRIGGER IF EXISTS `ledger_entries_no_update`;--> statement-breakpoint
UPDATE `ledger_entries` l
JOIN (
  SELECT d.`id`,
    ROW_NUMBER() OVER (PARTITION BY d.`customer_pk` ORDER BY d.`id`) AS seq,
    SUM(d.dt) OVER (PARTITION BY d.`customer_pk` ORDER BY d.`id`) AS bt,
    SUM(d.du) OVER (PARTITION BY d.`customer_pk` ORDER BY d.`id`) AS bu,
    SUM(d.df) OVER (PARTITION BY d.`customer_pk` ORDER BY d.`id`) AS bf
  FROM (
    SELECT e.`id`, e.`customer_pk`,
      CASE WHEN x.first_expire IS NOT NULL AND e.`id` > x.first_expire THEN 0
        WHEN e.`id` = x.first_expire THEN -x.t
        WHEN e.`operation` = 'DEPOSIT' THEN e.`amount` ELSE 0 END AS dt,
      CASE WHEN x.first_expire IS NOT NULL AND e.`id` > x.first_expire THEN 0
        WHEN e.`id` = x.first_expire THEN -x.u
        WHEN e.`operation` IN ('DEDUCT', 'CONSUME') THEN e.`amount` ELSE 0 END AS du,
      CASE WHEN x.first_expire IS NOT NULL AND e.`id` > x.first_expire THEN 0
        WHEN e.`id` = x.first_expire THEN -x.f
        WHEN e.`operation` = 'FREEZE' THEN e.`amount`
        WHEN e.`operation` = 'CONSUME' AND e.`overage` = FALSE THEN -e.`amount`
        WHEN e.`operation` = 'UNFREEZE' THEN -e.`amount` ELSE 0 END AS df
    FROM `ledger_entries` e
    LEFT JOIN (
      SELECT fe.`account_id`, fe.first_expire,
        COALESCE(SUM(CASE WHEN p.`operation` = 'DEPOSIT' THEN p.`amount` END), 0) AS t,
        COALESCE(SUM(CASE WHEN p.`operation` IN ('DEDUCT', 'CONSUME') THEN p.`amount` END), 0) AS u,
        COALESCE(SUM(CASE WHEN p.`operation` = 'FREEZE' THEN p.`amount`
          WHEN p.`operation` = 'CONSUME' AND p.`overage` = FALSE THEN -p.`amount`
          WHEN p.`operation` = 'UNFREEZE' THEN -p.`amount` END), 0) AS f
      FROM (SELECT `account_id`, MIN(`id`) AS first_expire FROM `ledger_entries` WHERE `operation` = 'EXPIRE' GROUP BY `account_id`) fe
      LEFT JOIN `ledger_entries` p ON p.`account_id` = fe.`account_id` AND p.`id` < fe.first_expire
      GROUP BY fe.`account_id`, fe.first_expire
    ) x ON x.`account_id` = e.`account_id`
  ) d
) n ON n.`id` = l.`id`
SET l.`sequence` = n.seq, l.`balance_total` = n.bt, l.`balance_used` = n.bu, l.`balance_frozen` = n.bf;--> statement-breakpoint
CREATE TRIGGER `ledger_entries_no_update` BEFORE UPDATE ON `ledger_entries` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ledger_entries is append-only';--> statement-breakpoint
ALTER TABLE `ledger_entries` MODIFY `sequence` bigint NOT NULL, MODIFY `balance_total` bigint NOT NULL,
  MODIFY `balance_used` bigint NOT NULL, MODIFY `balance_frozen` bigint NOT NULL,
  ADD CONSTRAINT `ledger_customer_sequence_uq` UNIQUE(`customer_pk`, `sequence`);--> statement-breakpoint
UPDATE `customers` c
JOIN (SELECT `customer_pk`, MAX(`sequence`) AS last FROM `ledger_entries` GROUP BY `customer_pk`) m ON m.`customer_pk` = c.`id`
JOIN `ledger_entries` l ON l.`customer_pk` = m.`customer_pk` AND l.`sequence` = m.last
SET c.`ledger_sequence` = m.last, c.`ledger_total` = l.`balance_total`, c.`ledger_used` = l.`balance_used`,
  c.`ledger_frozen` = l.`balance_frozen`;
