import { createServer, type Server } from "node:http";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { clickAndWait, launchChromium, type PageIncidents, signIn, watchIncidents } from "../support/browser.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { uid } from "../support/fixtures.js";
import { HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";

// The operator console reviewed as an attacker and as an operator, in a real browser (Debian's
// chromium through playwright-core) against the real server and database.

let server: TestServer;
let browser: Browser;
let api: HttpTestClient;
let context: BrowserContext;
let page: Page;
let incidents: PageIncidents;

const consoleUrl = (path: string, base = server.httpUrl) => `${base}/console${path}`;
const deposit = (customerId: string, amount: number, extra: Record<string, unknown> = {}) =>
  api.post("/v1/customers/deposit", { customer_id: customerId, amount, ...extra }).then(ok);

/** Resolves, with its status, once the page's next htmx request has been answered and its answer handled (swapped or not). */
const nextHtmxAnswer = (on: Page): Promise<unknown> =>
  // Registered before the click that sends it: a page's evaluations and input run in order.
  on.evaluate(
    `new Promise((resolve) => document.addEventListener("htmx:afterRequest", (event) => resolve(event.detail.xhr.status), { once: true }))`,
  );

beforeAll(async () => {
  server = await startTestServer({ API_KEY_CACHE_TTL_MS: "0" });
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

describe("values a caller of the API stored", () => {
  it("are text on every page that shows them, in the HTML and in the browser, and run no script", async () => {
    const hostile = `<script>alert('x')</script>"><img src=x onerror=alert(1)>'\u202Egnp.exe javascript:alert(2)`;
    const customerId = `javascript:${uid("xss")}`;
    await deposit(customerId, 100, {
      name: hostile,
      email: hostile,
      description: hostile,
      metadata: { '"><svg onload=alert(3)>': hostile },
    });
    const holdId = uid("hold");
    const hold = { customer_id: customerId, transaction_id: holdId, amount: 10, description: hostile, metadata: { k: hostile } };
    ok(await api.post("/v1/billing/freeze", hold));
    ok(await api.post("/v1/entitlement/set", { customer_id: customerId, feature_key: "seats", value: hostile, description: hostile }));
    await signIn(page, server.httpUrl, server.apiKey);
    const pages: string[] = [];
    const visit = async (path: string) => {
      const response = await page.goto(consoleUrl(path));
      expect(response?.status(), path).toBe(200);
      pages.push(await page.content());
      expect(await page.locator("main img, main svg, main script").count(), path).toBe(0);
    };
    await visit(`/customers?q=${encodeURIComponent("<script>")}`);
    expect(await page.locator(`tr[data-customer-id="${customerId}"] td[dir=auto]`).allTextContents()).toEqual([hostile, hostile]);
    await visit(`/customers/${encodeURIComponent(customerId)}`);
    expect(await page.getByTestId("customer-name").textContent()).toBe(hostile);
    expect(await page.locator(`#holds tr[data-transaction-id="${holdId}"] td[dir=auto]`).textContent()).toBe(hostile);
    expect(await page.locator("#entitlements td[dir=auto]").allTextContents()).toEqual(["seats", hostile, hostile]);
    expect(await page.locator("#ledger td[dir=auto]").allTextContents()).toEqual([hostile, hostile]);
    // The part htmx swaps in, as its HTML (opened alone, a bare fragment would have the browser ask for /favicon.ico).
    const part = await page.request.get(consoleUrl(`/customers/${encodeURIComponent(customerId)}/ledger`));
    expect(part.status()).toBe(200);
    pages.push(await part.text());
    await visit(`/transactions/${holdId}`);
    expect(await page.getByTestId("description").textContent()).toBe(hostile);
    // The operator's own typing comes back as text too: a reason with markup, on the confirmation and in the ledger.
    await page.goto(consoleUrl(`/customers/${encodeURIComponent(customerId)}`));
    await page.fill('#deposit input[name="amount"]', "5");
    await page.fill('#deposit input[name="description"]', hostile);
    await clickAndWait(page, 'button:has-text("Review deposit")');
    expect(await page.locator(".confirm q").textContent()).toBe(hostile);
    pages.push(await page.content());
    await clickAndWait(page, 'button:has-text("Deposit 5 credits")');
    await visit(`/customers/${encodeURIComponent(customerId)}`);
    expect(await page.locator("#ledger td[dir=auto]").first().textContent()).toBe(hostile);
    for (const html of pages) {
      expect(html).not.toContain("<img src=x");
      expect(html).not.toContain("<script>alert");
      expect(html).not.toContain("<svg onload");
    }
    expect(incidents).toEqual({ dialogs: [], errors: [] });
  });
});

describe("text from a link", () => {
  it("is never shown as the page's words: an id that cannot be one is said to be none, not repeated", async () => {
    await signIn(page, server.httpUrl, server.apiKey);
    const planted = "Session locked. Paste your write key at https://evil.example/unlock";
    for (const what of ["customer", "transaction"]) {
      const response = await page.goto(consoleUrl(`/${what}s/${encodeURIComponent(planted)}`));
      expect(response?.status(), what).toBe(404);
      expect(await page.getByTestId("not-found").textContent(), what).toBe(
        `This is not a ${what} id: ids are 1-128 characters of letters, digits and _ . : @ -.`,
      );
      expect(await page.content(), what).not.toContain("evil.example");
    }
    // A well-formed id is named, as before.
    const nobody = uid("nobody");
    await page.goto(consoleUrl(`/customers/${nobody}`));
    expect(await page.getByTestId("not-found").textContent()).toBe(`This project has no customer ${nobody}.`);
  });
});

describe("unicode in a customer's name", () => {
  it("stays inside its own part of the page title: an override cannot turn the console's words around", async () => {
    const customerId = uid("bidi");
    const name = "\u202Eevil";
    await deposit(customerId, 10, { name });
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    // First strong isolate … pop directional isolate: whatever the name opens ends with it.
    expect(await page.title()).toBe(`\u2068${name}\u2069 · velobase-billing console`);
    expect(await page.getByTestId("customer-name").textContent()).toBe(name);
  });
});

describe("page links that are not valid", () => {
  it("say so in the console's words (its cursor), never the API's page_token", async () => {
    const customerId = uid("cursor");
    await deposit(customerId, 10);
    await signIn(page, server.httpUrl, server.apiKey);
    const message = "This page link is not valid for this search (its cursor was made for another one): start again from the first page.";
    const list = await page.goto(consoleUrl("/customers?cursor=not-a-cursor"));
    expect(list?.status()).toBe(400);
    expect(await page.getByTestId("error-code").textContent()).toBe("invalid_page_token");
    expect(await page.getByTestId("error").textContent()).toBe(message);
    // A ledger cursor of one customer on another's page, and a made-up one: refused in place.
    const other = uid("cursor");
    await deposit(other, 1);
    for (let i = 0; i < 20; i += 1) await deposit(other, 1);
    await page.goto(consoleUrl(`/customers/${other}`));
    const next = new URL((await page.getByTestId("ledger-next").getAttribute("href")) ?? "", server.httpUrl);
    for (const cursor of [next.searchParams.get("cursor") ?? "", "zzz"]) {
      const response = await page.goto(consoleUrl(`/customers/${customerId}?cursor=${cursor}`));
      expect(response?.status()).toBe(200);
      expect(await page.getByTestId("ledger-error").textContent()).toBe(message);
    }
  });
});

describe("a project without customers", () => {
  it("says it has none yet, and a search that finds nothing says so", async () => {
    const empty = await server.createProject();
    const key = await server.createKey({ project: empty, scope: "read" });
    await signIn(page, server.httpUrl, key.key);
    expect(page.url()).toBe(consoleUrl("/customers"));
    expect(await page.getByTestId("no-customers").textContent()).toBe(
      "This project has no customers yet: its first deposit (or slot grant) makes one.",
    );
    await page.goto(consoleUrl("/customers?q=acme"));
    expect(await page.getByTestId("no-customers").textContent()).toBe("No customer matches.");
    expect(incidents).toEqual({ dialogs: [], errors: [] });
  });
});

describe("the ledger's reversals", () => {
  it("say what they reverse: a void names the deposit's entry, a refund links its charge", async () => {
    const customerId = uid("reverse");
    const made = await deposit(customerId, 100);
    const recordId = String(made.record_id);
    ok(await api.post("/v1/customers/deposit/void", { customer_id: customerId, record_id: recordId, void_id: uid("void"), amount: 10 }));
    const charge = uid("charge");
    ok(await api.post("/v1/billing/deduct", { customer_id: customerId, transaction_id: charge, amount: 5 }));
    ok(await api.post("/v1/billing/refund", { transaction_id: charge, refund_id: uid("refund"), amount: 2 }));
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(consoleUrl(`/customers/${customerId}`));
    const operation = (op: string) => page.locator(`#ledger tr[data-operation="${op}"] td:nth-child(3)`).textContent();
    expect(await operation("VOID")).toBe(`VOID of entry ${recordId}`);
    expect(await operation("REFUND")).toBe("REFUND");
    expect(await page.locator('#ledger tr[data-operation="REFUND"] a').getAttribute("href")).toBe(`/console/transactions/${charge}`);
  });
});

describe("a form posted without a session", () => {
  it("asks to sign in, and says a session ended only when one did", async () => {
    const customerId = uid("nosession");
    await deposit(customerId, 10);
    const post = (cookie: string | null) =>
      fetch(consoleUrl(`/customers/${customerId}/deposit`), {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...(cookie ? { cookie } : {}) },
        body: "amount=5&description=x",
      });
    const bare = await post(null);
    expect(bare.status).toBe(401);
    expect(/data-testid="error">([^<]*)</.exec(await bare.text())?.[1]).toBe("Sign in to go on.");
    const ended = await post("vb_console_session=gone.signature");
    expect(ended.status).toBe(401);
    expect(/data-testid="error">([^<]*)</.exec(await ended.text())?.[1]).toBe("Your session has ended: sign in again.");
  });
});

describe("a page of another site that opens the console", () => {
  let other: Server;
  let otherUrl: string;
  beforeAll(async () => {
    // localhost is another site than 127.0.0.1: a page that opens the console in a new window.
    other = createServer((_request, response) => {
      response.setHeader("content-type", "text/html");
      response.end("<!doctype html><title>elsewhere</title><p>elsewhere</p>");
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    otherUrl = `http://localhost:${(other.address() as { port: number }).port}/`;
  });
  afterAll(async () => {
    await new Promise((resolve) => other.close(resolve));
  });

  it("keeps no hold on its window (Cross-Origin-Opener-Policy), so it cannot send it elsewhere later", async () => {
    await signIn(page, server.httpUrl, server.apiKey);
    await page.goto(otherUrl);
    const [popup] = await Promise.all([
      context.waitForEvent("page"),
      page.evaluate(`window.opened = window.open(${JSON.stringify(consoleUrl("/customers"))}, "_blank"); undefined`),
    ]);
    await popup.waitForLoadState("load");
    expect(popup.url()).toBe(consoleUrl("/customers"));
    // With the opener cut, the handle the other site holds is to a closed window, and the console has no opener.
    expect(await page.evaluate("window.opened.closed")).toBe(true);
    expect(await popup.evaluate("window.opener === null")).toBe(true);
    const response = await fetch(consoleUrl("/sign-in"));
    expect([response.headers.get("cross-origin-opener-policy"), response.headers.get("cross-origin-resource-policy")]).toEqual([
      "same-origin",
      "same-origin",
    ]);
  });
});

describe("an htmx update that fails", () => {
  it("shows its error where the part it was to replace stood, instead of nothing", async () => {
    // A server of its own, whose database the test can cut.
    const proxy = new TcpProxy(3306);
    const port = await proxy.start();
    const db = uniqueDatabaseUrl("vb_console");
    const own = await startTestServer({ DATABASE_URL: db.url.replace("127.0.0.1:3306", `127.0.0.1:${port}`), API_KEY_CACHE_TTL_MS: "0" });
    try {
      const customerId = uid("htmx");
      ok(await new HttpTestClient(own.httpUrl, own.apiKey).post("/v1/customers/deposit", { customer_id: customerId, amount: 10 }));
      await signIn(page, own.httpUrl, own.apiKey);
      await page.goto(consoleUrl(`/customers/${customerId}`, own.httpUrl));
      // Working: the range picker replaces the chart in place.
      let answered = nextHtmxAnswer(page);
      await page.click('#chart a:has-text("30 d")');
      expect(await answered).toBe(200);
      expect(await page.getByTestId("chart-data").getAttribute("data-range")).toBe("30d");

      await proxy.cut();
      answered = nextHtmxAnswer(page);
      await page.click('#chart a:has-text("all")');
      expect(await answered).toBe(503);
      expect(await page.locator("#chart [data-testid=error-code]").count()).toBe(1);
      expect(await page.locator("#chart [data-testid=error-code]").textContent()).toBe("service_unavailable");
      expect(await page.locator("#chart [role=alert]").count()).toBe(1);
      // A link back to the page as it stood, the rest of the page untouched.
      expect(await page.locator("#chart a[data-testid=reload]").getAttribute("href")).toBe(`/console/customers/${customerId}`);
      expect(await page.locator("header.top, #ledger").count()).toBe(2);
      expect(page.url()).toBe(consoleUrl(`/customers/${customerId}`, own.httpUrl));

      await proxy.restore();
      await clickAndWait(page, "#chart a[data-testid=reload]");
      expect(await page.getByTestId("chart-data").getAttribute("data-range")).toBe("7d");
      expect(incidents.dialogs).toEqual([]);
    } finally {
      await proxy.restore();
      await own.stop();
      await db.drop();
    }
  });
});
