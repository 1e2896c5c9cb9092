/**
 * `npm run screenshots`: refreshes the console's screenshots in docs/ (the README shows them).
 * Starts the service on free ports over a throwaway database, writes a month of demo history
 * with a hand-moved clock, signs in with Debian's chromium and photographs a customer page on a
 * laptop and a phone screen. Tests never write into the repository; this script does.
 */
import { fileURLToPath } from "node:url";
import { clickAndWait, launchChromium, signIn } from "../test/support/browser.js";
import { HttpTestClient, ok } from "../test/support/http.js";
import { startTestServer } from "../test/support/server.js";

const DOCS = (name: string) => fileURLToPath(new URL(`../docs/${name}`, import.meta.url));
const HOUR_MS = 3_600_000;

async function seed(api: HttpTestClient, advance: (ms: number) => void): Promise<string> {
  const customerId = "cus_8841";
  const deposit = (amount: number, extra: Record<string, unknown> = {}) =>
    api.post("/v1/customers/deposit", { customer_id: customerId, amount, ...extra }).then(ok);
  await deposit(50_000, {
    name: "Grace Hopper",
    email: "grace@example.com",
    metadata: { plan: "team", region: "eu-west" },
    description: "Team plan, monthly credits",
  });
  await deposit(5_000, { credit_type: "promo", expires_at: "2026-01-20T00:00:00Z", description: "Launch promotion" });
  for (let day = 0; day < 28; day += 1) {
    advance(20 * HOUR_MS);
    ok(
      await api.post("/v1/billing/deduct", { customer_id: customerId, transaction_id: `render-${day}`, amount: 900 + ((day * 137) % 700) }),
    );
    advance(4 * HOUR_MS);
    if (day % 9 === 8) await deposit(20_000, { description: "Top-up" });
  }
  ok(
    await api.post("/v1/billing/freeze", {
      customer_id: customerId,
      transaction_id: "export-7781",
      amount: 2_500,
      unfreeze_after_seconds: 86_400,
    }),
  );
  await deposit(10, { customer_id: "cus_8840", name: "Alan Turing", email: "alan@example.com" });
  return customerId;
}

async function main(): Promise<void> {
  const server = await startTestServer({ LOG_LEVEL: "silent" });
  const browser = await launchChromium();
  try {
    const api = new HttpTestClient(server.httpUrl, server.apiKey);
    const customerId = await seed(api, (ms) => server.clock.advance(ms));
    for (const shot of [
      { file: "console.png", viewport: { width: 1280, height: 1100 } },
      { file: "console-phone.png", viewport: { width: 390, height: 844 } },
    ]) {
      const page = await browser.newPage({ viewport: shot.viewport, deviceScaleFactor: 1 });
      await signIn(page, server.httpUrl, server.apiKey);
      await page.goto(`${server.httpUrl}/console/customers?q=cus_`);
      await clickAndWait(page, `a:has-text("${customerId}")`);
      await page.click('#chart a:has-text("30 d")');
      await page.waitForSelector('[data-testid="chart-data"][data-range="30d"]', { state: "attached" });
      await page.waitForSelector("#chart canvas");
      await page.evaluate("window.scrollTo(0, 0)");
      await page.screenshot({ path: DOCS(shot.file) });
      await page.close();
      process.stdout.write(`wrote docs/${shot.file}\n`);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
