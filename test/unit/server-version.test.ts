import { describe, expect, it } from "vitest";
import { SERVERS_SUPPORTED, unsupportedServer } from "../../src/store/server-version.js";

describe("unsupportedServer", () => {
  it("takes MariaDB from 10.6 and MySQL from 8.0.19, as VERSION() reports them", () => {
    expect(unsupportedServer("10.11.19-MariaDB-0+deb12u1", false)).toBeNull();
    expect(unsupportedServer("10.6.0-MariaDB", true)).toBeNull();
    expect(unsupportedServer("11.4.2-MariaDB-log", false)).toBeNull();
    expect(unsupportedServer("5.5.5-10.11.6-MariaDB", false)).toBeNull();
    expect(unsupportedServer("8.0.19", false)).toBeNull();
    expect(unsupportedServer("8.0.35-27", false)).toBeNull();
    expect(unsupportedServer("8.4.0", false)).toBeNull();
    expect(unsupportedServer("9.1.0", false)).toBeNull();
  });

  it("refuses older servers, and a Galera cluster that is not MariaDB's, saying what it needs", () => {
    expect(unsupportedServer("10.5.26-MariaDB", false)).toBe(`MariaDB 10.5.26 is older than this build supports: ${SERVERS_SUPPORTED}`);
    expect(unsupportedServer("8.0.18", false)).toBe(`MySQL 8.0.18 is older than this build supports: ${SERVERS_SUPPORTED}`);
    expect(unsupportedServer("5.7.44-log", false)).toBe(`MySQL 5.7.44 is older than this build supports: ${SERVERS_SUPPORTED}`);
    expect(unsupportedServer("8.0.36-28.1", true)).toBe(`a Galera cluster of MySQL (8.0.36-28.1) is not supported: ${SERVERS_SUPPORTED}`);
  });

  it("does not refuse a version it cannot read", () => {
    expect(unsupportedServer("", false)).toBeNull();
    expect(unsupportedServer("custom-build", false)).toBeNull();
  });
});
