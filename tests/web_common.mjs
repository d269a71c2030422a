// web_common.mjs - what the browser tests share: finding Debian's Chromium and
// npm playwright-core (skip, exit 77, when either is missing), launching it
// headless with a fresh profile, watching a page for errors (page errors,
// CSP / Trusted Types violations, unexpected console errors, requests that
// leave the machine), and screenshots.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { skipUnless } from './server_common.mjs';

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Resolves playwright-core's chromium from npmDir, or exits 77. */
export async function loadChromium(executable, npmDir) {
  await skipUnless(fs.existsSync(executable), `${executable} is not installed (Debian package chromium)`);
  try {
    return createRequire(path.join(npmDir, 'x.js'))('playwright-core').chromium;
  } catch {
    await skipUnless(false, `npm playwright-core is not installed in ${npmDir} (scripts/setup.sh)`);
  }
  return null;
}

/** A persistent context on a fresh --user-data-dir; close() also removes it. */
export async function launch(chromium, executable, viewport = DESKTOP) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'parallax-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: executable,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--disable-dev-shm-usage'],
    viewport,
  });
  return {
    ctx,
    page: ctx.pages()[0] ?? await ctx.newPage(),
    close: async () => {
      await ctx.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Console errors the UI causes on purpose: the /cluster/status probe on a
// single node (404), the chat-template probe on a model without one (400).
const EXPECTED_CONSOLE = [/status of 404/, /status of 400/];

/** Collects problems on page into the array `problems`. */
export function watch(page, problems) {
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (/Content Security Policy|Trusted Type|TrustedHTML|TrustedScript/i.test(text)) problems.push(`CSP: ${text}`);
    else if (m.type() === 'error' && !EXPECTED_CONSOLE.some((re) => re.test(text))) problems.push(`console error: ${text}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) && u.protocol !== 'data:') problems.push(`request off the server: ${r.url()}`);
  });
}

export function shooter(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return (page, name) => page.screenshot({ path: path.join(dir, `${name}.png`) });
}

/** Horizontal overflow of the page in px (> 0: it scrolls sideways). */
export const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
