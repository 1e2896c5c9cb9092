import { type Browser, chromium, type Page } from "playwright-core";

/** Debian's chromium (`apt-get install -y chromium`; .ci/run installs it when missing). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Headless as root, without the background traffic this network refuses (docs: ../shared/toolchain.md). */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });

/** What a page did that it should not: dialogs opened (a script ran) and console errors. */
export interface PageIncidents {
  readonly dialogs: string[];
  readonly errors: string[];
}

/** Records every dialog (dismissed) and console or page error of the page. */
export function watchIncidents(page: Page): PageIncidents {
  const incidents: PageIncidents = { dialogs: [], errors: [] };
  page.on("dialog", (dialog) => {
    incidents.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  page.on("console", (message) => {
    if (message.type() === "error") incidents.errors.push(message.text());
  });
  page.on("pageerror", (error) => incidents.errors.push(error.message));
  return incidents;
}

/** Signs in on the console's form; the page is then wherever the console sent it. */
export async function signIn(page: Page, baseUrl: string, apiKey: string): Promise<void> {
  await page.goto(`${baseUrl}/console/sign-in`);
  await page.fill('input[name="api_key"]', apiKey);
  await clickAndWait(page, 'button:has-text("Sign in")');
}

/** Clicks what navigates (a link, a form's button) and waits until the next page has loaded. */
export async function clickAndWait(page: Page, selector: string): Promise<void> {
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click(selector)]);
}
