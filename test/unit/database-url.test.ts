import { describe, expect, it } from "vitest";
import { DatabaseUrlError, parseDatabaseUrl, redactDatabaseUrl } from "../../src/store/database-url.js";

describe("DATABASE_URL", () => {
  it("reads one host as today", () => {
    expect(parseDatabaseUrl("mysql://root@127.0.0.1:3306/velobase")).toEqual({
      user: "root",
      password: "",
      hosts: [{ host: "127.0.0.1", port: 3306 }],
      database: "velobase",
    });
  });

  it("reads several hosts, default ports, percent-encoded credentials and an IPv6 host", () => {
    expect(parseDatabaseUrl("mysql://bill%40ops:p%3Ass%2Cw@db1:3311,db2,[::1]:3313/ledger_1")).toEqual({
      user: "bill@ops",
      password: "p:ss,w",
      hosts: [
        { host: "db1", port: 3311 },
        { host: "db2", port: 3306 },
        { host: "::1", port: 3313 },
      ],
      database: "ledger_1",
    });
  });

  it("refuses what is not a mysql URL with hosts", () => {
    for (const bad of [
      "postgres://h/db",
      "mysql:///db",
      "mysql://h1,,h2/db",
      "mysql://h1:99999/db",
      "mysql://h1:abc/db",
      "mysql://u:%zz@h/db",
      // No database, or one the service cannot name unquoted; options nobody reads.
      "mysql://root@h:3306",
      "mysql://root@h/bad-name",
      "mysql://root@h/velobase/extra",
      "mysql://root@h/velobase?ssl=true",
    ]) {
      expect(() => parseDatabaseUrl(bad), bad).toThrow(DatabaseUrlError);
    }
  });

  it("masks the password when redacted, never repeats it", () => {
    expect(redactDatabaseUrl("mysql://root:hunter2@10.0.0.1:3311,10.0.0.2:3312/velobase")).toBe(
      "mysql://root:***@10.0.0.1:3311,10.0.0.2:3312/velobase",
    );
    expect(redactDatabaseUrl("mysql://root:hunter2@h1,,h2/velobase")).toBe("<unparseable url>");
  });
});
