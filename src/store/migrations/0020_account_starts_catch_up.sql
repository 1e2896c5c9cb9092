-- 0019 marked the accounts still to start before it changed the column's default, so an account
-- an older build made between the two (its INSERT names no start_recorded) took the old default,
-- TRUE, and the sweeper would never look at its start. Marked here, read by 0019's index. (0019's
-- own text stays as it was: a run stopped part way through it goes on by statement position.)
UPDATE `accounts` SET `start_recorded` = FALSE WHERE `start_recorded` = TRUE AND `starts_at_ms` > FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000);
