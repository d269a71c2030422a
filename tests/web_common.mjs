// web_common.mjs - what the browser tests share: finding Debian's Chromium and
// npm playwright-core (skip, exit 77, when either is missing), launching it
// headless with a fresh profile, watching a page for errors (page errors,
// CSP / Trusted Types violations, unexpected console errors, requests that
// leave the machine), and screenshots.
import fs from 'node:fs';
import http from 'node:http';
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

/**
 * A relay in front of a server that slows its SSE streams down (one event
 * every delayMs), so a test can watch an answer grow and stop it midway;
 * stats.clientClosedEarly counts streams the browser closed before the end.
 */
export function startRelay(target, delayMs) {
  const stats = { streams: 0, clientClosedEarly: 0 };
  const server = http.createServer((req, res) => {
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (ur) => {
      const sse = (ur.headers['content-type'] ?? '').startsWith('text/event-stream');
      res.writeHead(ur.statusCode, ur.headers);
      if (!sse) { ur.pipe(res); return; }
      stats.streams++;
      let buf = '';
      let ended = false;
      const queue = [];
      ur.setEncoding('utf8');
      ur.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) { queue.push(buf.slice(0, i + 2)); buf = buf.slice(i + 2); }
      });
      ur.on('end', () => { ended = true; });
      const pump = () => {
        if (res.destroyed) return;
        if (queue.length) res.write(queue.shift());
        else if (ended) { res.end(buf); return; }
        setTimeout(pump, delayMs);
      };
      pump();
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
    res.on('close', () => {
      if (!res.writableFinished) { stats.clientClosedEarly++; up.destroy(); }
    });
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ url: `http://127.0.0.1:${server.address().port}`, stats, server })));
}
