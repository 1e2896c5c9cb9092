-- One lease mechanism: the migrations and the first key now take their leases in `leases`
-- (store/leases-store.ts); `service_leases` held them before. A row left in it is stale.
DROP TABLE IF EXISTS `service_leases`;
