import { thrownBy } from "../support/code-of.js";
import { describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { closedValueOf, oneOf } from "../../src/store/row-values.js";

describe("stored values of a closed set", () => {
  const STATES = ["ARMED", "LOW"] as const;

  it("closedValueOf answers a known value, and a corrupt row is an assertion naming the column, never the value", () => {
    expect(closedValueOf("LOW", STATES, "balance_alerts.state")).toBe("LOW");
    const thrown = thrownBy(() => closedValueOf("card-4111", STATES, "balance_alerts.state"));
    expect(thrown).not.toBeInstanceOf(BillingError);
    expect(thrown.message).toBe("stored balance_alerts.state is not one of its known values");
  });

  it("oneOf, for a transaction's columns, answers freeze_records_inconsistent with the column and value", () => {
    expect(() => oneOf("BOGUS", STATES, "status")).toThrow(
      expect.objectContaining({ code: "freeze_records_inconsistent", facts: { column: "status", value: "BOGUS" } }),
    );
  });
});
