import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { isLostConnection, translateStoreError } from "../../src/store/run-transaction.js";
import { isConnectionFailure } from "../../src/store/sql-errors.js";
import { SERVER_URL } from "../support/database.js";

describe("a statement on a connection mysql2 has closed", () => {
  it("is a lost connection (fatal, without errno or code): retried before COMMIT, service_unavailable after", async () => {
    const connection = await mysql.createConnection(SERVER_URL);
    await connection.end();
    const error = await connection.query("SELECT 1").then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ message: "Can't add new command when connection is in closed state", fatal: true });
    expect(isConnectionFailure(error)).toBe(true);
    expect(isLostConnection(error)).toBe(true);
    const translated = translateStoreError(error);
    expect(translated instanceof BillingError && translated.code).toBe("service_unavailable");
  });
});
