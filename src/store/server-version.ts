/**
 * The servers this build runs on, and why: `SKIP LOCKED` (the sweeper) needs MariaDB 10.6; the
 * migrations' `DROP CONSTRAINT` needs MySQL 8.0.19 (before 8.0.16 MySQL parsed CHECK constraints
 * and ignored them). A Galera cluster must be MariaDB's: the causal reads use MariaDB's
 * `SET STATEMENT … FOR`, which a MySQL-based cluster (Percona XtraDB Cluster) refuses.
 */
export const SERVERS_SUPPORTED = "MariaDB 10.6 or later (a Galera cluster too), or MySQL 8.0.19 or later";

const MINIMUM = { mariadb: [10, 6, 0], mysql: [8, 0, 19] } as const;

/** Why this build cannot run on a server whose `SELECT VERSION()` is `version`, or null when it can (or the version is not one it can read). */
export function unsupportedServer(version: string, galera: boolean): string | null {
  // MariaDB's handshake once carried a "5.5.5-" prefix for old clients; VERSION() does not, but a proxy may.
  const reported = version.replace(/^5\.5\.5-/, "");
  const parts = /^(\d+)\.(\d+)\.(\d+)/.exec(reported);
  const mariadb = /mariadb/i.test(reported);
  if (galera && !mariadb) return `a Galera cluster of MySQL (${reported}) is not supported: ${SERVERS_SUPPORTED}`;
  if (!parts) return null;
  const found = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const minimum = mariadb ? MINIMUM.mariadb : MINIMUM.mysql;
  if (compareVersions(found, minimum) >= 0) return null;
  return `${mariadb ? "MariaDB" : "MySQL"} ${found.join(".")} is older than this build supports: ${SERVERS_SUPPORTED}`;
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}
