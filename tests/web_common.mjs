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
// single node (404), the chat-template probe on a model without one (400);
// the join command asked for by a page that may not have it (403), and a
// setup the scheduler refuses (404, 409) in the tests that provoke them.
const EXPECTED_CONSOLE = [{ text: /status of 404/ }, { text: /status of 400/ }, { text: /status of 403/, url: /\/cluster\/join$/ },
  { text: /status of 409/, url: /\/cluster\/setup$/ }];

/** Collects problems on page into the array `problems`. */
export function watch(page, problems) {
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (/Content Security Policy|Trusted Type|TrustedHTML|TrustedScript/i.test(text)) problems.push(`CSP: ${text}`);
    else if (m.type() === 'error' && !EXPECTED_CONSOLE.some((x) => x.text.test(text) && (!x.url || x.url.test(m.location()?.url ?? '')))) {
      problems.push(`console error: ${text} (${m.location()?.url ?? '?'})`);
    }
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
 * One SSE event of an OpenAI stream as several: the text of the chunk
 * (choices[0].text, or delta.content / delta.reasoning_content) cut into
 * pieces of at most `piece` characters, each its own event (finish_reason and
 * usage only on the last). A fast server sends many tokens in one event; cut
 * like this, the page is seen to grow in steps the test controls. Anything
 * else passes unchanged.
 */
export function splitEvent(ev, piece = 6) {
  const m = /^data: (\{.*\})\n\n$/s.exec(ev);
  if (!m) return [ev];
  let o;
  try { o = JSON.parse(m[1]); } catch { return [ev]; }
  const c = o?.choices?.[0];
  if (!c) return [ev];
  const key = typeof c.text === 'string' ? ['text'] : typeof c.delta?.content === 'string' && c.delta.content ? ['delta', 'content']
    : typeof c.delta?.reasoning_content === 'string' ? ['delta', 'reasoning_content'] : null;
  const text = key ? (key.length === 1 ? c.text : c.delta[key[1]]) : '';
  if (!key || [...text].length <= piece || c.logprobs) return [ev];
  const chars = [...text], out = [];
  for (let k = 0; k < chars.length; k += piece) {
    const last = k + piece >= chars.length;
    const copy = JSON.parse(m[1]);
    const cc = copy.choices[0];
    if (key.length === 1) cc.text = chars.slice(k, k + piece).join('');
    else cc.delta[key[1]] = chars.slice(k, k + piece).join('');
    if (!last) {
      if ('finish_reason' in cc) cc.finish_reason = null;
      if ('usage' in copy) copy.usage = null;
    }
    out.push(`data: ${JSON.stringify(copy)}\n\n`);
  }
  return out;
}

/**
 * A relay in front of a server that holds its SSE streams back, so a test
 * can watch an answer grow and stop it midway. opts: a number (ms between
 * events), or {delayMs, gated}. Gated, an event goes out only when the test
 * allows it (relay.allow(n); allow(Infinity) opens the gate): nothing
 * depends on timing, however loaded the machine; and (split, the default
 * when gated) each event's text is cut into small pieces (splitEvent). stats.forwarded counts the
 * events sent, stats.clientClosedEarly the streams the browser closed before
 * the end; relay.waitClosedEarly(n) waits for the latter.
 */
export function startRelay(target, opts = 45) {
  const { delayMs = 0, gated = false, split = gated } = typeof opts === 'number' ? { delayMs: opts } : opts;
  const stats = { streams: 0, clientClosedEarly: 0, forwarded: 0 };
  let budget = gated ? 0 : Infinity;
  const wakers = new Set();
  const kick = () => { for (const w of [...wakers]) w(); };
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
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i + 2);
          buf = buf.slice(i + 2);
          queue.push(...(split ? splitEvent(ev) : [ev]));
        }
        kick();
      });
      ur.on('end', () => { ended = true; kick(); });
      const pump = () => {
        wakers.delete(pump);
        if (res.destroyed) return;
        if (queue.length && budget > 0) {
          res.write(queue.shift());
          stats.forwarded++;
          budget--;
          if (delayMs) setTimeout(pump, delayMs);
          else setImmediate(pump);
          return;
        }
        if (!queue.length && ended) { res.end(buf); return; }
        wakers.add(pump); /* more data, the end, or more budget wakes it */
      };
      res.on('close', () => { wakers.delete(pump); });
      pump();
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
    res.on('close', () => {
      if (!res.writableFinished) { stats.clientClosedEarly++; up.destroy(); kick(); }
    });
  });
  const relay = {
    stats,
    server,
    allow: (n = 1) => { budget += n; kick(); },
    waitClosedEarly: async (n = 1, ms = 10000) => {
      const t0 = Date.now();
      while (stats.clientClosedEarly < n && Date.now() - t0 < ms) await sleep(20);
      return stats.clientClosedEarly >= n;
    },
  };
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ ...relay, url: `http://127.0.0.1:${server.address().port}` })));
}
