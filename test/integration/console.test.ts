import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { apiKeyPrefixOf } from "../../src/domain/api-key.js";
import { OPEN_HOLDS_SHOWN_MAX } from "../../src/domain/limits.js";
import { ERROR_CATALOG } from "../../src/errors/catalog.js";
import { clickAndWait, launchChromium, type PageIncidents, signIn, watchIncidents } from "../support/browser.js";
import { uid } from "../support/fixtures.js";
import { HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/waiting.js";

// The operator console in a real browser (Debian's chromium through playwright-core), against
// the real server on a free port and the real database. No key cache: a revoke is seen at once.

let server: TestServer;
let browser: Browser;
let api: HttpTestClient;
let context: BrowserContext;
let page: Page;
let incidents: PageIncidents;
/** The server's log lines (level info and up). */
const logLines: string[] = [];
const loggedSince = (from: number) => logLines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>);

interface WalletJson {
  total: number;
  used: number;
  frozen: number;
  available: number;
}

const deposit = (customerId: string, amount: number, extra: Record<string, unknown> = {}) =>
  api.post("/v1/customers/deposit", { customer_id: customerId, amount, ...extra }).then(ok);

const customerJson = (customerId: string) =>
  api.get(`/v1/customers/${encodeURIComponent(customerId)}`).then((r) => ok<{ wallets: Record<string, WalletJson> }>(r));

/** The hidden fields of a form on the page (its CSRF token, its idempotency key, …), by name. */
const formFields = async (on: Page, form: string): Promise<Record<string, string>> =>
  Object.fromEntries(
    await on
      .locator(`${form} input[type=hidden]`)
      .evaluateAll((inputs) => inputs.map((i) => [i.getAttribute("name") ?? "", i.getAttribute("value") ?? ""] as const)),
  );

const consoleUrl = (path: string) => `${server.httpUrl}/console${path}`;

beforeAll(async () => {
  // The test connects from 127.0.0.1: a proxy it trusts, whose X-Forwarded-Proto it believes.
  server = await startTestServer(
    { API_KEY_CACHE_TTL_MS: "0", TRUSTED_PROXIES: "127.0.0.1" },
    { logDestination: { write: (line: string) => void logLines.push(line) } },
  );
  api = new HttpTestClient(server.httpUrl, server.apiKey);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

beforeEach(async () => {
  context = await browser.newContext();
  page = await context.newPage();
  incidents = watchIncidents(page);
});

afterEach(async () => {
  await context.close();
});

describe("console with a read key", () => {
  it("searches, opens a customer and shows what the API shows, with no action", async () => {
    const customerId = uid("acme");
    await deposit(customerId, 1_000, { name: "Ada Lovelace", email: "Ada@Example.com", description: "welcome" });
    await deposit(customerId, 500, { credit_type: "promo", expires_at: "2026-06-01T00:00:00Z", idempotency_key: uid("k") });
    const requestId = uid("req");
    const holdId = uid("hold");
    ok(
      await api.post(
        "/v1/billing/freeze",
        { customer_id: customerId, transaction_id: holdId, amount: 300, unfreeze_after_seconds: 3600 },
        {
          headers: { "x-request-id": requestId },
        },
      ),
    );
    ok(await api.post("/v1/billing/deduct", { customer_id: customerId, transaction_id: uid("job"), amount: 100 }));
    const readKey = await server.createKey({ scope: "read" });

    await signIn(page, server.httpUrl, readKey.key);
    expect(page.url()).toBe(consoleUrl("/customers"));

    // Names and emails match in any case; ids byte for byte.
    for (const [text, found] of [
      ["ada lov", true],
      ["ADA@EXAMPLE", true],
      [customerId.slice(0, 8), true],
      [customerId.slice(0, 8).toUpperCase(), false],
    ] as const) {
      await page.goto(consoleUrl(`/customers?q=${encodeURIComponent(text)}`));
      expect(await page.locator(`tr[data-customer-id="${customerId}"]`).count(), text).toBe(found ? 1 : 0);
    }

    await page.goto(consoleUrl("/customers?q=ada"));
    await clickAndWait(page, `a:has-text("${customerId}")`);
    expect(page.url()).toBe(consoleUrl(`/customers/${customerId}`));

    // The wallets as GetCustomer answers them.
    const { wallets } = await customerJson(customerId);
    expect(Object.keys(wallets).sort()).toEqual(["default", "promo"]);
    for (const [wallet, balance] of Object.entries(wallets)) {
      const shown: Record<string, number> = {};
      for (const field of ["total", "used", "frozen", "available"]) {
        const amount = await page.locator(`[data-wallet="${wallet}"] [data-field="${field}"]`).getAttribute("data-amount");
        shown[field] = Number(amount);
      }
      expect(shown).toEqual({ total: balance.total, used: balance.used, frozen: balance.frozen, available: balance.available });
    }
    expect(await page.getByTestId("balance-available").getAttribute("data-amount")).toBe("1100");

    // The open hold, with its deadline.
    expect(await page.locator(`#holds tr[data-transaction-id="${holdId}"]`).textContent()).toContain("unfrozen at 2026-01-01 01:00:00Z");

    // One chart point per ledger entry of the range (7 days), the last one the balance now.
    const chart = JSON.parse((await page.getByTestId("chart-data").getAttribute("data-points")) ?? "{}") as {
      points: Array<{ available: string; frozen: string }>;
    };
    const ledger = ok<{ total_count: number; items: Array<{ id: string }> }>(
      await api.get(`/v1/customers/${customerId}/ledger?created_after=2025-12-25T00:00:00Z`),
    );
    expect(ledger.total_count).toBe(4);
    expect(chart.points).toHaveLength(4);
    expect(chart.points.at(-1)).toMatchObject({ available: "1100", frozen: "300" });
    // 24 h: the same entries (all made now); the range picker swaps the chart in place.
    await page.click('#chart a:has-text("24 h")');
    await page.waitForSelector('[data-testid="chart-data"][data-range="24h"]', { state: "attached" });
    expect(JSON.parse((await page.getByTestId("chart-data").getAttribute("data-points")) ?? "{}").points).toHaveLength(4);
    expect(await page.locator("#chart canvas").count()).toBeGreaterThan(0);

    // The ledger's filters give the API's answers.
    const shownIds = () =>
      page.locator("#ledger tr[data-entry-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-entry-id")));
    expect(await shownIds()).toEqual(ledger.items.map((i) => i.id));
    await page.selectOption('#ledger select[name="op"]', "FREEZE");
    await page.click('#ledger button:has-text("Filter")');
    await page.waitForSelector('#ledger[data-op="FREEZE"]');
    const freezes = ok<{ items: Array<{ id: string }> }>(await api.get(`/v1/customers/${customerId}/ledger?operation_type=FREEZE`));
    expect(await shownIds()).toEqual(freezes.items.map((i) => i.id));
    await page.goto(consoleUrl(`/customers/${customerId}?before=2026-01-01T00:00`));
    expect(await page.getByTestId("ledger-empty").count()).toBe(1);
    const none = ok<{ items: unknown[] }>(await api.get(`/v1/customers/${customerId}/ledger?created_before=2026-01-01T00:00:00Z`));
    expect(none.items).toEqual([]);

    // Nothing to act with.
    expect(await page.getByTestId("deposit-form").count()).toBe(0);
    await page.goto(consoleUrl(`/transactions/${holdId}`));
    expect(await page.getByTestId("transaction-request-id").textContent()).toBe(requestId);
    expect(await page.getByTestId("key-prefix").textContent()).toBe(server.apiKey.slice(0, 16));
    expect(await page.locator('button:has-text("Unfreeze")').count()).toBe(0);
    expect(await page.locator("form[method=post]").count()).toBe(1); // sign out only
    expect(incidents).toEqual({ dialogs: [], errors: [] });
  });
});

describe("console paging", () => {
  it("pages customers newest first and the ledger by cursor", async () => {
    const tag = uid("Pager").replaceAll("-", "");
    const ids: string[] = [];
    for (let i = 0; i < 22; i += 1) {
      ids.push(uid("page"));
      await deposit(ids[i] ?? "", 1, { name: `${tag} ${i}` });
    }
    for (let i = 0; i < 21; i += 1) await deposit(ids[0] ?? "", 1);
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/customers?q=${tag.toLowerCase()}`));
    const rows = () => page.locator("tr[data-customer-id]").evaluateAll((r) => r.map((row) => row.getAttribute("data-customer-id")));
    expect(await rows()).toEqual([...ids].reverse().slice(0, 20));
    await clickAndWait(page, "[data-testid=next-page]");
    expect(await rows()).toEqual([ids[1], ids[0]]);
    expect(await page.getByTestId("next-page").count()).toBe(0);

    await page.goto(consoleUrl(`/customers/${ids[0]}`));
    const entries = () => page.locator("#ledger tr[data-entry-id]").evaluateAll((r) => r.map((row) => row.getAttribute("data-entry-id")));
    const first = await entries();
    await page.click("[data-testid=ledger-next]");
    await page.waitForSelector('#ledger:not([data-cursor=""])');
    const second = await entries();
    const all = ok<{ items: Array<{ id: string }> }>(await api.get(`/v1/customers/${ids[0]}/ledger?limit=100`)).items.map((i) => i.id);
    expect([...first, ...second]).toEqual(all);
    expect(all).toHaveLength(22);
  });
});

describe("console links from elsewhere", () => {
  it("open the page signed in (the session cookie is SameSite=Lax), and a request without the cookie never clears it", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 100);
    await signIn(page, server.httpUrl, server.apiKey);
    const session = (await context.cookies()).find((c) => c.name === "vb_console_session");
    expect({ sameSite: session?.sameSite, httpOnly: session?.httpOnly, path: session?.path }).toEqual({
      sameSite: "Lax",
      httpOnly: true,
      path: "/console",
    });
    // A page of no site at all (a link in a mail client, a ticket) linking to the customer.
    await page.setContent(`<a id="link" href="${consoleUrl(`/customers/${customerId}`)}">the customer</a>`);
    await clickAndWait(page, "#link");
    expect(new URL(page.url()).pathname).toBe(`/console/customers/${customerId}`);
    // Without the cookie: sent to sign in, and nothing tells the browser to drop a session it holds.
    const bare = await fetch(consoleUrl(`/customers/${customerId}`), { redirect: "manual" });
    expect(bare.status).toBe(303);
    expect(bare.headers.get("set-cookie") ?? "").not.toContain("vb_console_session");
  });
});

describe("console behind a TLS-terminating proxy", () => {
  it("marks its cookies Secure when a trusted proxy says the browser came over HTTPS, and only then", async () => {
    const signInPage = (proto: string | null) =>
      fetch(consoleUrl("/sign-in"), { headers: proto === null ? {} : { "x-forwarded-proto": proto } });
    const cookiesOf = (response: Response) => response.headers.getSetCookie();
    const overHttps = await signInPage("https");
    expect(cookiesOf(overHttps).map((c) => /; Secure(;|$)/.test(c))).toEqual([true]);
    // A scheme in capitals is the same scheme.
    expect(cookiesOf(await signInPage("HTTPS")).map((c) => /; Secure(;|$)/.test(c))).toEqual([true]);
    const overHttp = await signInPage(null);
    expect(cookiesOf(overHttp).map((c) => /; Secure(;|$)/.test(c))).toEqual([false]);
    // Told to come back over HTTPS only when it came over HTTPS (a browser ignores it over HTTP).
    expect([overHttps.headers.get("strict-transport-security"), overHttp.headers.get("strict-transport-security")]).toEqual([
      "max-age=31536000",
      null,
    ]);
    // Signing in through the proxy: the session cookie is Secure too.
    const csrfCookie = (cookiesOf(overHttps)[0] ?? "").split(";")[0] ?? "";
    const token = /name="_csrf" value="([^"]+)"/.exec(await overHttps.text())?.[1] ?? "";
    const signedIn = await fetch(consoleUrl("/sign-in"), {
      method: "POST",
      redirect: "manual",
      headers: { "x-forwarded-proto": "https", cookie: csrfCookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: token, api_key: server.apiKey }).toString(),
    });
    expect(signedIn.status).toBe(303);
    const session = cookiesOf(signedIn).find((c) => c.startsWith("vb_console_session="));
    expect(session).toMatch(/; Secure(;|$)/);
  });
});

describe("console sign-in", () => {
  const sessionOf = async (ctx: BrowserContext) => (await ctx.cookies()).find((c) => c.name === "vb_console_session")?.value ?? "";
  const pageWith = (session: string) =>
    fetch(consoleUrl("/customers"), { redirect: "manual", headers: { cookie: `vb_console_session=${session}` } });

  it("ends the browser's previous session, and takes a token of the key's rate limit", async () => {
    const from = logLines.length;
    await signIn(page, server.httpUrl, "not a key");
    await signIn(page, server.httpUrl, server.apiKey);
    const first = await sessionOf(context);
    await signIn(page, server.httpUrl, server.apiKey);
    const second = await sessionOf(context);
    expect(second).not.toBe(first);
    expect([(await pageWith(first)).status, (await pageWith(second)).status]).toEqual([303, 200]);
    await clickAndWait(page, "form.sign-out button");
    expect((await pageWith(second)).status).toBe(303);

    // A key of burst 9 and 10 calls in 10 s: its 1 s window ends sooner than a busy browser may
    // take between two steps, so its 10 s window is emptied through the API before each step
    // that must be refused, until it refuses with at least 5 s left.
    const slow = await server.createKey({ project: await server.createProject({ ratePerSecond: 1, burst: 9 }), scope: "read" });
    const api = new HttpTestClient(server.httpUrl, slow.key);
    const emptyTenSecondWindow = async () => {
      for (let calls = 0; ; calls++) {
        expect(calls, "calls to empty the key's 10 s window").toBeLessThan(200);
        const answer = await api.get("/v1/customers/nobody");
        if (answer.status === 429 && Number(answer.headers.get("retry-after")) >= 5) return;
        if (answer.status === 429) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    await signIn(page, server.httpUrl, slow.key);
    expect(new URL(page.url()).pathname).toBe("/console/customers");
    // Out of budget: the page says so, when to retry, and still offers sign-out, which takes no token.
    await emptyTenSecondWindow();
    const limited = await page.goto(consoleUrl("/customers"));
    expect([limited?.status(), await page.getByTestId("error-code").textContent()]).toEqual([429, "rate_limit_exceeded"]);
    expect(Number(limited?.headers()["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(Number(limited?.headers()["retry-after"])).toBeLessThanOrEqual(10);
    await clickAndWait(page, "form.sign-out button");
    expect([new URL(page.url()).pathname, await page.getByTestId("error-code").count()]).toEqual(["/console/sign-in", 0]);
    // Out of budget, a sign-in is refused and writes no session.
    await emptyTenSecondWindow();
    await signIn(page, server.httpUrl, slow.key);
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
    expect(await page.getByTestId("error-code").textContent()).toBe("rate_limit_exceeded");
    expect(await sessionOf(context)).toBe("");

    // Each sign-in, sign-out and refused or throttled attempt is one audit line: the key by id and prefix, never the key.
    const audit = loggedSince(from).filter((line) => typeof line.msg === "string" && line.msg.startsWith("console sign-"));
    const slowKeyId = audit.find((line) => line.keyPrefix === slow.prefix)?.apiKeyId;
    expect(audit.map(({ msg, keyPrefix, scope, code, client }) => ({ msg, keyPrefix, scope, code, client }))).toEqual([
      { msg: "console sign-in refused", keyPrefix: undefined, scope: undefined, code: "invalid_api_key", client: "127.0.0.1" },
      { msg: "console sign-in", keyPrefix: apiKeyPrefixOf(server.apiKey), scope: "write", code: undefined, client: "127.0.0.1" },
      { msg: "console sign-in", keyPrefix: apiKeyPrefixOf(server.apiKey), scope: "write", code: undefined, client: "127.0.0.1" },
      { msg: "console sign-out", keyPrefix: apiKeyPrefixOf(server.apiKey), scope: "write", code: undefined, client: "127.0.0.1" },
      { msg: "console sign-in", keyPrefix: slow.prefix, scope: "read", code: undefined, client: "127.0.0.1" },
      { msg: "console sign-out", keyPrefix: slow.prefix, scope: "read", code: undefined, client: "127.0.0.1" },
      { msg: "console sign-in refused", keyPrefix: slow.prefix, scope: undefined, code: "rate_limit_exceeded", client: "127.0.0.1" },
    ]);
    expect(typeof slowKeyId).toBe("string");
    expect(logLines.slice(from).some((line) => [slow.key, server.apiKey].some((key) => line.includes(key)))).toBe(false);
  });
});

describe("console with a write key", () => {
  it("deposits once through a form submitted twice, and unfreezes a hold", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 100);
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    await page.fill('#deposit input[name="amount"]', "250");
    await page.fill('#deposit input[name="expires_at"]', "2027-01-01T00:00");
    await page.fill('#deposit input[name="description"]', "goodwill for ticket 42");
    await clickAndWait(page, 'button:has-text("Review deposit")');
    expect(await page.getByTestId("confirm-text").textContent()).toBe(
      `Deposit 250 credits of type default (source default) to customer ${customerId}, spendable now, expiring 2027-01-01 00:00:00Z.`,
    );
    const confirmed = await formFields(page, "[data-testid=confirm-form]");
    await clickAndWait(page, 'button:has-text("Deposit 250 credits")');
    expect(await page.getByTestId("result-available").getAttribute("data-amount")).toBe("350");
    // The same form again (a double click, a resubmit after going back): a replay.
    const again = await page.request.post(consoleUrl(`/customers/${customerId}/deposit`), { form: confirmed });
    expect(again.status()).toBe(200);
    expect(await again.text()).toContain("This form was submitted before: nothing changed.");
    const { wallets } = await customerJson(customerId);
    expect(wallets.default?.available).toBe(350);

    const holdId = uid("hold");
    ok(await api.post("/v1/billing/freeze", { customer_id: customerId, transaction_id: holdId, amount: 50 }));
    await page.goto(consoleUrl(`/transactions/${holdId}`));
    await clickAndWait(page, 'button:has-text("Review unfreeze")');
    await clickAndWait(page, 'button:has-text("Unfreeze 50 credits")');
    expect(await page.getByTestId("result-available").getAttribute("data-amount")).toBe("350");
    await page.goto(consoleUrl(`/transactions/${holdId}`));
    expect(await page.getByTestId("status").textContent()).toBe("UNFROZEN");
    // Settled: no longer said to settle by itself.
    expect(await page.locator("dt", { hasText: "Settles by itself" }).count()).toBe(0);
    expect(
      await page
        .locator("[data-testid=entries] tr[data-operation]")
        .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-operation"))),
    ).toEqual(["FREEZE", "UNFREEZE"]);
    expect(incidents).toEqual({ dialogs: [], errors: [] });
  });
});

describe("console refusals", () => {
  it("refuses a wrong key with the API's words, a revoked key and a form without its CSRF token", async () => {
    const invalid = ERROR_CATALOG.invalid_api_key.message;
    for (const wrong of [`vb_test_${"x".repeat(40)}`, "not a key"]) {
      await signIn(page, server.httpUrl, wrong);
      expect(await page.getByTestId("error").textContent()).toBe(invalid);
      expect(page.url()).toBe(consoleUrl("/sign-in"));
    }
    const response = await page.request.post(consoleUrl("/sign-in"), { form: { api_key: server.apiKey } });
    expect(response.status()).toBe(403); // no CSRF token: no session either

    const customerId = uid("cust");
    await deposit(customerId, 10);
    // A read key's session may not act, even with the form's token.
    const reader = await server.createKey({ scope: "read" });
    await signIn(page, server.httpUrl, reader.key);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    const token = await page.locator("form.sign-out input[name=_csrf]").getAttribute("value");
    const denied = await page.request.post(consoleUrl(`/customers/${customerId}/deposit`), {
      form: { _csrf: token ?? "", amount: "5", description: "read key", idempotency_key: uid("k") },
    });
    expect(denied.status()).toBe(403);
    expect(await denied.text()).toContain('<code data-testid="error-code">permission_denied</code>');

    const key = await server.createKey({ scope: "write" });
    await signIn(page, server.httpUrl, key.key);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    const form = await formFields(page, "[data-testid=deposit-form]");
    const withoutToken: Record<string, string> = { ...form, amount: "5", description: "no token" };
    delete withoutToken._csrf;
    const refused = await page.request.post(consoleUrl(`/customers/${customerId}/deposit`), { form: withoutToken });
    expect(refused.status()).toBe(403);
    // A form that may come from another site is not shown back, filled, with a fresh token.
    expect(await refused.text()).not.toContain("deposit-form");
    expect((await customerJson(customerId)).wallets.default?.available).toBe(10);

    await server.revokeKey(key.prefix);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    expect(page.url()).toBe(consoleUrl(`/sign-in?ended=1&next=${encodeURIComponent(`/console/customers/${customerId}`)}`));
    await signIn(page, server.httpUrl, key.key);
    expect(await page.getByTestId("error").textContent()).toBe(ERROR_CATALOG.api_key_revoked.message);
    expect(incidents.dialogs).toEqual([]);
  });

  it("takes a form's token only with the session it was made for", async () => {
    const customerId = uid("bound");
    await deposit(customerId, 10);
    await page.goto(consoleUrl("/sign-in"));
    const { _csrf: beforeSignIn = "" } = await formFields(page, 'form[action="/console/sign-in"]');
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    const form = await formFields(page, "[data-testid=deposit-form]");
    const post = (token: string) =>
      page.request.post(consoleUrl(`/customers/${customerId}/deposit`), {
        form: { ...form, _csrf: token, amount: "5", description: "bound", idempotency_key: uid("k") },
      });
    // The same CSRF cookie throughout: only the binding to the session tells the tokens apart.
    expect((await post(beforeSignIn)).status()).toBe(403);
    await signIn(page, server.httpUrl, server.apiKey);
    const ofEndedSession = await post(form._csrf ?? "");
    expect(ofEndedSession.status()).toBe(403);
    expect(await ofEndedSession.text()).toContain('<code data-testid="error-code">permission_denied</code>');
    expect((await customerJson(customerId)).wallets.default?.available).toBe(10);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    const { _csrf: current = "" } = await formFields(page, "[data-testid=deposit-form]");
    expect((await post(current)).status()).toBe(200);
    expect((await customerJson(customerId)).wallets.default?.available).toBe(15);
  });

  it("logs a refusal with its code: no session, an unknown customer", async () => {
    const from = logLines.length;
    const requestId = uid("req");
    const noSession = await fetch(consoleUrl("/sign-out"), { method: "POST", headers: { "x-request-id": requestId } });
    expect(noSession.status).toBe(401);
    await signIn(page, server.httpUrl, server.apiKey);
    expect((await page.goto(consoleUrl(`/customers/${uid("nobody")}`)))?.status()).toBe(404);
    const calls = () => loggedSince(from).filter((line) => line.msg === "http call" && Number(line.status) >= 400);
    await waitFor(async () => calls().length >= 2, "both calls' log lines");
    expect(calls().map(({ route, code, status }) => ({ route, code, status }))).toEqual([
      { route: "POST /console/sign-out", code: "missing_api_key", status: 401 },
      { route: "GET /console/customers/:id", code: "customer_not_found", status: 404 },
    ]);
    expect(calls()[0]?.requestId).toBe(requestId);
  });

  it("shows another project's customer as it shows an unknown one", async () => {
    const customerId = uid("secret");
    await deposit(customerId, 10, { name: "Hidden" });
    const other = await server.createProject();
    const otherKey = await server.createKey({ project: other, scope: "read" });
    await signIn(page, server.httpUrl, otherKey.key);
    const main = async (path: string) => {
      const response = await page.goto(consoleUrl(path));
      return { status: response?.status(), html: (await page.locator("main").innerHTML()).replaceAll(path.split("/").pop() ?? "", "ID") };
    };
    const theirs = await main(`/customers/${customerId}`);
    const nobody = await main(`/customers/${uid("nobody")}`);
    expect(theirs.status).toBe(404);
    expect(theirs).toEqual(nobody);
    await page.goto(consoleUrl(`/customers?q=${customerId}`));
    expect(await page.getByTestId("no-customers").count()).toBe(1);
  });

  it("answers a query parameter given twice with a 400 page naming it, never a server error", async () => {
    const customerId = uid("twice");
    await deposit(customerId, 10);
    await signIn(page, server.httpUrl, server.apiKey);
    for (const [path, field] of [
      ["/customers?q=a&q=b", "q"],
      ["/customers?cursor=a&cursor=b", "cursor"],
      [`/customers/${customerId}?range=7d&range=all`, "range"],
    ] as const) {
      const response = await page.goto(consoleUrl(path));
      expect(response?.status(), path).toBe(400);
      expect(await page.getByTestId("error-code").textContent()).toBe("invalid_argument");
      expect(await page.getByTestId("error").textContent()).toBe(`Give ${field} once.`);
    }
    // The ledger's filters refuse in place, under the rest of the customer's page.
    const response = await page.goto(consoleUrl(`/customers/${customerId}?op=DEPOSIT&op=DEDUCT`));
    expect(response?.status()).toBe(200);
    expect(await page.getByTestId("ledger-error").textContent()).toBe("Give op once.");
  });

  it("refuses at the confirmation what the action would refuse: an expiry in the past, an unfreeze of no hold", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 100);
    const deductId = uid("tx");
    ok(await api.post("/v1/billing/deduct", { customer_id: customerId, transaction_id: deductId, amount: 30 }));
    const holdId = uid("hold");
    ok(await api.post("/v1/billing/freeze", { customer_id: customerId, transaction_id: holdId, amount: 20, unfreeze_after_seconds: 3600 }));
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/transactions/${holdId}`));
    expect(await page.getByTestId("auto-settlement").textContent()).toBe("UNFREEZE at 2026-01-01 01:00:00Z");

    await page.goto(consoleUrl(`/customers/${customerId}`));
    await page.fill('#deposit input[name="amount"]', "5");
    await page.fill('#deposit input[name="expires_at"]', "2025-12-31T23:00");
    await page.fill('#deposit input[name="description"]', "late");
    await clickAndWait(page, 'button:has-text("Review deposit")');
    expect(await page.getByTestId("error-code").textContent()).toBe("invalid_expires_at");
    expect(await page.getByTestId("error").textContent()).toBe("expires_at must be in the future.");
    expect(await page.getByTestId("back-to-customer").getAttribute("href")).toBe(`/console/customers/${customerId}`);
    // The refused form comes back as typed, with the key it was made with; corrected, it deposits.
    expect(await formFields(page, "[data-testid=deposit-form]")).toEqual({
      _csrf: expect.stringMatching(/.{20,}/),
      idempotency_key: expect.stringMatching(/^console-/),
    });
    const shown = async (name: string) => page.inputValue(`#deposit input[name="${name}"]`);
    expect(await Promise.all(["amount", "credit_type", "source", "expires_at", "description"].map(shown))).toEqual([
      "5",
      "default",
      "default",
      "2025-12-31T23:00",
      "late",
    ]);
    await page.fill('#deposit input[name="expires_at"]', "2026-12-31T23:00");
    await clickAndWait(page, 'button:has-text("Review deposit")');
    expect(await page.getByTestId("confirm-text").textContent()).toBe(
      `Deposit 5 credits of type default (source default) to customer ${customerId}, spendable now, expiring 2026-12-31 23:00:00Z.`,
    );
    await clickAndWait(page, 'button:has-text("Deposit 5 credits")');
    expect((await customerJson(customerId)).wallets.default?.available).toBe(55);

    await page.goto(consoleUrl(`/transactions/${holdId}`));
    const { _csrf: token = "" } = await formFields(page, "form[action$='/unfreeze/confirm']");
    const confirm = await page.request.post(consoleUrl(`/transactions/${deductId}/unfreeze/confirm`), { form: { _csrf: token } });
    expect(confirm.status()).toBe(400);
    expect(await confirm.text()).toContain('<code data-testid="error-code">no_unfreezable_records</code>');
    expect((await customerJson(customerId)).wallets.default?.available).toBe(55);
    // A hold settled already has nothing to unfreeze either.
    ok(await api.post("/v1/billing/consume", { transaction_id: holdId, actual_amount: 5 }));
    const settled = await page.request.post(consoleUrl(`/transactions/${holdId}/unfreeze/confirm`), { form: { _csrf: token } });
    expect(settled.status()).toBe(400);
    expect(await settled.text()).toContain("This hold is CONSUMED already: nothing is left to unfreeze.");
  });

  it("refuses forms it did not send, and impossible dates, as 4xx pages, never a server error", async () => {
    await page.goto(consoleUrl("/sign-in"));
    const { _csrf: token = "" } = await formFields(page, 'form[action="/console/sign-in"]');
    const form = (body: string, contentType = "application/x-www-form-urlencoded") =>
      page.request.post(consoleUrl("/sign-in"), { headers: { "content-type": contentType }, data: body });
    // The key twice is no key: the sign-in page with the API's words.
    const twice = await form(`_csrf=${encodeURIComponent(token)}&api_key=${server.apiKey}&api_key=x`);
    expect(twice.status()).toBe(401);
    expect(await twice.text()).toContain(ERROR_CATALOG.missing_api_key.message);
    for (const [body, contentType] of [
      ["x", "text/plain"],
      [`<k>${token}</k>`, "application/xml"],
      // The API's JSON is no console form, even with the token in it.
      [JSON.stringify({ _csrf: token, api_key: server.apiKey }), "application/json"],
    ] as const) {
      const refused = await form(body, contentType);
      expect(refused.status(), contentType).toBe(400);
      expect(await refused.text()).toContain('<code data-testid="error-code">invalid_argument</code>');
    }
    const large = await form(`_csrf=${encodeURIComponent(token)}&api_key=${"k".repeat(3_000_000)}`);
    expect(large.status()).toBe(400);
    expect(await large.text()).toContain("The form is too large.");

    const customerId = uid("dates");
    await deposit(customerId, 10);
    await signIn(page, server.httpUrl, server.apiKey);
    for (const after of ["2026-02-30T10:00", "2026-01-01T24:00"]) {
      await page.goto(consoleUrl(`/customers/${customerId}?after=${after}`));
      expect(await page.getByTestId("ledger-error").textContent(), after).toBe(
        "after must be a date and time (UTC), e.g. 2026-01-01T10:00.",
      );
    }
  });

  it("says when a customer has more open holds than it lists", async () => {
    const customerId = uid("holds");
    await deposit(customerId, 1_000);
    await signIn(page, server.httpUrl, server.apiKey);
    const freeze = (i: number) =>
      api.post("/v1/billing/freeze", { customer_id: customerId, transaction_id: `${customerId}-${i}`, amount: 1 }).then(ok);
    for (let i = 0; i < OPEN_HOLDS_SHOWN_MAX; i += 1) await freeze(i);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    expect(await page.locator("table.holds tbody tr").count()).toBe(OPEN_HOLDS_SHOWN_MAX);
    expect(await page.getByTestId("more-holds").count()).toBe(0);
    await freeze(OPEN_HOLDS_SHOWN_MAX);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    expect(await page.locator("table.holds tbody tr").count()).toBe(OPEN_HOLDS_SHOWN_MAX);
    expect(await page.getByTestId("more-holds").textContent()).toBe(
      `The customer has more open holds than the ${OPEN_HOLDS_SHOWN_MAX} newest shown here; the balance counts them all in frozen.`,
    );
  });

  it("greys sources that have expired, then ends a session once its time is up", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 10, { expires_at: new Date(server.clock.now() + 60_000).toISOString() });
    await deposit(customerId, 20);
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl("/customers"));
    expect(page.url()).toBe(consoleUrl("/customers"));
    server.clock.advance(2 * 60_000);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    expect(await page.locator("tr.account").evaluateAll((r) => r.map((row) => [row.getAttribute("data-status"), row.className]))).toEqual([
      ["EXPIRED", "account status-expired"],
      ["ACTIVE", "account status-active"],
    ]);
    server.clock.advance(60 * 60_000);
    // The session has ended: the sign-in says so, and leads back to the page asked for.
    const asked = `/customers/${customerId}?range=30d`;
    await page.goto(consoleUrl(asked));
    expect(page.url()).toBe(consoleUrl(`/sign-in?ended=1&next=${encodeURIComponent(`/console${asked}`)}`));
    expect(await page.getByTestId("error").textContent()).toBe("Your session has ended: sign in again.");
    await page.fill('input[name="api_key"]', server.apiKey);
    await clickAndWait(page, 'button:has-text("Sign in")');
    expect(page.url()).toBe(consoleUrl(asked));
    // An htmx request of an ended session is sent to the sign-in the same way, from the page it came from.
    const cookie = (await context.cookies()).find((c) => c.name === "vb_console_session");
    server.clock.advance(60 * 60_000);
    const fragment = await fetch(consoleUrl(`/customers/${customerId}/chart?range=7d`), {
      headers: { cookie: `${cookie?.name}=${cookie?.value}`, "hx-request": "true", "hx-current-url": consoleUrl(asked) },
      redirect: "manual",
    });
    expect([fragment.status, fragment.headers.get("hx-redirect")]).toEqual([
      401,
      `/console/sign-in?ended=1&next=${encodeURIComponent(`/console${asked}`)}`,
    ]);
    // A next that leads off the console is dropped: the customers, as always.
    await page.goto(consoleUrl("/sign-in?next=//evil.example/console/x"));
    expect(await page.locator('input[name="next"]').count()).toBe(0);
  });
});

describe("console on a phone", () => {
  it("fits a 375-pixel screen: no page scrolls sideways, but for wide tables in their own scroller", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 100);
    ok(await api.post("/v1/billing/freeze", { customer_id: customerId, transaction_id: uid("hold"), amount: 10 }));
    const phone = await browser.newContext({ viewport: { width: 375, height: 800 } });
    try {
      const small = await phone.newPage();
      await signIn(small, server.httpUrl, server.apiKey);
      for (const path of ["/customers", `/customers/${customerId}`]) {
        await small.goto(consoleUrl(path));
        const overflow = await small.locator("html").evaluate((html) => {
          const width = html.clientWidth;
          const outside = [...html.querySelectorAll("body *")].filter(
            (e) => e.getBoundingClientRect().right > width + 1 && e.closest(".scroll") === null,
          );
          return { scrollWidth: html.scrollWidth, width, outside: outside.map((e) => e.tagName) };
        });
        expect(overflow, path).toEqual({ scrollWidth: 375, width: 375, outside: [] });
      }
    } finally {
      await phone.close();
    }
  });
});

describe("console beside the API", () => {
  it("is served on the HTTP port with a strict CSP, and stays out of /openapi.json", async () => {
    const response = await fetch(consoleUrl("/sign-in"));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-security-policy")).toContain("script-src 'self';");
    expect(response.headers.get("content-security-policy")).not.toContain("unsafe-inline");
    expect(response.headers.get("x-request-id")).toMatch(/\S/);
    const paths = Object.keys(ok<{ paths: Record<string, unknown> }>(await api.get("/openapi.json")).paths);
    expect(paths.filter((p) => p.startsWith("/console"))).toEqual([]);
    expect(paths).toContain("/v1/customers/{customer_id}/ledger");
  });

  it("serves its assets, cached an hour, and answers any other name 404, names Object.prototype has included", async () => {
    // An object's lookup found these: the missing file's rejection went unhandled and ended the process.
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty", "nothing.js"]) {
      const response = await fetch(consoleUrl(`/assets/${name}`));
      expect({ name, status: response.status }).toEqual({ name, status: 404 });
    }
    expect((await fetch(`${server.httpUrl}/v1/health`)).status).toBe(200);
    const css = await fetch(consoleUrl("/assets/console.css"));
    expect(css.status).toBe(200);
    expect(css.headers.get("cache-control")).toBe("public, max-age=3600");
  });
});

describe("console escaping", () => {
  it("renders names, descriptions and metadata as text, running no script", async () => {
    const customerId = uid("xss");
    const name = "<script>alert('name')</script>";
    const email = '"><img src=x onerror=alert(1)>@example.com';
    const rtl = "\u202Eevil\u202C 🎉 שלום";
    await deposit(customerId, 100, {
      name,
      email,
      description: "<script>alert('d')</script>",
      metadata: { "<b>key</b>": rtl, plain: email },
    });
    const holdId = uid("hold");
    ok(
      await api.post("/v1/billing/freeze", {
        customer_id: customerId,
        transaction_id: holdId,
        amount: 10,
        description: '"><img src=x onerror=alert(2)>',
        metadata: { "\"'><svg onload=alert(3)>": rtl },
      }),
    );
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/customers?q=${encodeURIComponent("<script>")}`));
    expect(await page.locator(`tr[data-customer-id="${customerId}"] td:nth-child(2)`).textContent()).toBe(name);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    expect(await page.getByTestId("customer-name").textContent()).toBe(name);
    expect(await page.locator(".facts dt.meta-key").allTextContents()).toEqual(["<b>key</b>", "plain"]);
    expect(await page.locator(".facts dd.meta-value").allTextContents()).toEqual([rtl, email]);
    expect(await page.locator("#ledger td[dir=auto]").allTextContents()).toContain("<script>alert('d')</script>");
    await page.goto(consoleUrl(`/transactions/${holdId}`));
    expect(await page.getByTestId("description").textContent()).toBe('"><img src=x onerror=alert(2)>');
    expect(await page.locator(".facts dt.meta-key").allTextContents()).toEqual(["\"'><svg onload=alert(3)>"]);
    expect(await page.locator("main img, main svg, main b").count()).toBe(0);
    expect(incidents).toEqual({ dialogs: [], errors: [] });
    // An id that cannot be one, typed into the URL: a 404 page that does not repeat it (the browser logs the status).
    await page.goto(consoleUrl(`/customers/${encodeURIComponent("<script>alert(4)</script>")}`));
    expect(await page.getByTestId("not-found").textContent()).toBe(
      "This is not a customer id: ids are 1-128 characters of letters, digits and _ . : @ -.",
    );
    expect(await page.locator("main script").count()).toBe(0);
    expect(incidents.dialogs).toEqual([]);
  });
});
