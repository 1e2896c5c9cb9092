ALTER TABLE `event_publishers` ADD `last_event_id` varchar(100);--> statement-breakpoint
ALTER TABLE `event_publishers` ADD `last_event_position` bigint unsigned;--> statement-breakpoint
ALTER TABLE `event_publishers` ADD `target` varchar(300);