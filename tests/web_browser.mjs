// web_browser.mjs - the web UI end to end in Debian's Chromium, driven by
// npm playwright-core, against a real `parallax serve` on aidreams-260k
// (a model without a chat template: the chat falls back to /v1/completions).
//
//   chat      a message sent with Enter streams an answer equal to the API's
//             greedy answer for the same prompt; a second turn sends the
//             documented plain-text transcript; Shift+Enter is a newline;
//             TTFT and tokens/s are shown; a server error (max_tokens past the
//             context) is shown plainly in the answer
//   stop      through a relay that lets the SSE stream out one event at a
//             time (as the test allows: no timing involved), the answer is
//             seen growing, Stop ends it midway: a strict prefix of the greedy
//             answer, marked stopped, the connection closed; the chat works on
//   reload    conversations come back from localStorage, switchable from the list
//   safety    the Markdown renderer on hostile text (script, img onerror, svg
//             onload, javascript: links, ...) creates no element or attribute
//             that can run code; the same text as model output streamed
//             through the page (a faked /v1/chat/completions with reasoning)
//             renders inert, also after a reload; no CSP or Trusted Types
//             violation and no page error in the whole run
//   layout    1280x800 and 390x844 (no horizontal overflow, the conversation
//             drawer on the phone), keyboard focus order, WCAG contrast of the
//             main text colours (light and dark)
//   server    the single-node "Server" view fills from /metrics
// Screenshots of every screen at both widths go to --out (PNG artifacts).
//
//   node tests/web_browser.mjs --parallax build/parallax --model ../shared/models/aidreams-260k --out build/tests/out/web
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, harness, startServer, postJson, metrics } from './server_common.mjs';
import { DESKTOP, PHONE, sleep, loadChromium, launch, watch, shooter, startRelay, overflow as hOverflow } from './web_common.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const args = parseArgs(process.argv, {
  chromium: '/usr/bin/chromium',
  npm: path.join(here, '..', 'oracles', 'node_modules'),
  out: path.join(os.tmpdir(), 'parallax-web'),
});
const chromium = await loadChromium(args.chromium, args.npm);
const t = harness('web_browser');
const shots = path.join(args.out, 'screenshots');
const snap = shooter(shots);
const step = (s) => console.log(`-- ${s}`);

// ---- WCAG contrast of computed colours ----
function contrastProbe() {
  const parse = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const sel of ['body', '.muted', '.btn.primary', '.nav a', '.nav a[aria-current="page"]', '.stats', '.who', '.msg.user .content', '.md.content', '.notice', '.error', '.conv-open', '#input', '.act']) {
    const el = document.querySelector(sel);
    if (!el || !el.offsetParent && sel !== 'body') continue;
    const fg = parse(getComputedStyle(el).color).slice(0, 3);
    const l1 = lum(fg), l2 = lum(bgOf(el));
    out.push({ sel, ratio: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05) });
  }
  return out;
}

const srv = await startServer(args.parallax, ['-m', args.model, '--threads', '1']);
const relay = await startRelay(srv.url, { gated: true }); // events go out only when the test allows them
const browser = await launch(chromium, args.chromium, DESKTOP);
const ctx = browser.ctx;
const page = browser.page;
const problems = [];
watch(page, problems);

const shot = (name, p = page) => snap(p, name);
async function stored(p = page) {
  return p.evaluate(() => JSON.parse(localStorage.getItem('parallax.conversations.v1') || '[]'));
}
async function greedy(prompt, extra = {}) {
  const r = await postJson(`${srv.url}/v1/completions`, { prompt, temperature: 0, ...extra });
  if (r.status !== 200) throw new Error(`greedy oracle: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.choices[0].text;
}
async function setSettings(p, { temperature, maxTokens }) {
  await p.click('#settings-btn');
  t.check(await p.isVisible('#settings'), 'Settings opens');
  if (temperature !== undefined) await p.fill('#set-temperature', String(temperature));
  if (maxTokens !== undefined) await p.fill('#set-max-tokens', String(maxTokens));
  await p.click('#settings-close');
  t.check(await p.isHidden('#settings'), 'Settings closes');
}
async function waitAnswer(p = page, n) {
  await p.waitForFunction((k) => {
    const a = document.querySelectorAll('.msg.assistant');
    return a.length >= k && !a[k - 1].classList.contains('streaming') && a[k - 1].getAttribute('aria-busy') === 'false';
  }, n, { timeout: 30000 });
}
const answerText = (p, k) => p.evaluate((i) => document.querySelectorAll('.msg.assistant .content')[i].innerText, k);
const norm = (s) => s.replace(/\s+/g, ' ').trim();

try {
  // ---------------- chat against the real server ----------------
  step('load');
  await page.goto(`${srv.url}/`);
  await page.waitForSelector('body.ready');
  t.check(await page.isVisible('#view-chat'), 'the chat is the first view');
  t.check((await page.textContent('#model-info')).includes('aidreams-260k'), 'the model name is shown', await page.textContent('#model-info'));
  t.check(await page.isHidden('a[data-view="setup"]') && await page.isHidden('a[data-view="join"]'), 'single node: no Setup/Join');
  t.check((await page.textContent('#nav-cluster')).trim() === 'Server', 'single node: the cluster view is called Server');
  await page.waitForSelector('#conn.ok');
  await shot('chat-empty-desktop');
  const focused = await page.evaluate(() => document.activeElement?.id);
  t.check(focused === 'input', 'the message box has the focus on load', focused);

  step('greedy answer');
  await setSettings(page, { temperature: 0 });
  const prompt1 = 'Once upon a time';
  await page.fill('#input', prompt1);
  await page.keyboard.press('Enter');
  await waitAnswer(page, 1);
  const want1 = await greedy(prompt1);
  let conv = (await stored())[0];
  t.check(conv?.messages?.[0]?.content === prompt1, 'the user message is stored', conv?.messages?.[0]);
  t.check(conv?.messages?.[1]?.content === want1, 'the streamed answer equals the API greedy answer', { got: conv?.messages?.[1]?.content, want: want1 });
  t.check(norm(await answerText(page, 0)) === norm(want1), 'the rendered answer shows that text');
  t.check(conv?.messages?.[1]?.mode === 'completion', 'no chat template: answered through /v1/completions');
  t.check(await page.isVisible('#notice') && /no chat template/.test(await page.textContent('#notice')), 'a notice explains the completion fallback');
  const stats1 = await page.textContent('.msg.assistant .stats');
  t.check(/TTFT [\d.]+ ms/.test(stats1) && /[\d.]+ tok\/s/.test(stats1) && /\d+ tokens/.test(stats1), 'TTFT, tokens and tokens/s are shown', stats1);
  t.check((await page.textContent('#chat-title')) === prompt1, 'the conversation is titled by its first message');
  t.check(await page.isVisible('.msg.assistant [data-action="regenerate"]') && await page.isVisible('.msg.assistant [data-action="copy"]'),
    'copy and regenerate are offered');
  await shot('chat-answer-desktop');

  step('copy and regenerate');
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
  await page.click('.msg.assistant [data-action="copy"]');
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  t.check(clip === want1, 'Copy puts the answer on the clipboard', clip);
  await page.click('.msg.assistant [data-action="regenerate"]');
  await waitAnswer(page, 1);
  conv = (await stored())[0];
  t.check(conv.messages.length === 2 && conv.messages[1].content === want1, 'Regenerate (greedy) gives the same answer in place', conv.messages.length);

  step('second turn and Shift+Enter');
  await page.click('#new-chat');
  t.check((await page.textContent('#chat-title')) === 'New chat', 'New chat opens an empty conversation');
  await setSettings(page, { maxTokens: 8 });
  await page.fill('#input', 'Hello');
  await page.keyboard.press('Enter');
  await waitAnswer(page, 1);
  await page.type('#input', 'A dream');
  await page.keyboard.press('Shift+Enter');
  await page.type('#input', 'of stars');
  t.check((await page.inputValue('#input')) === 'A dream\nof stars', 'Shift+Enter adds a new line', await page.inputValue('#input'));
  await page.keyboard.press('Enter');
  await waitAnswer(page, 2);
  conv = (await stored())[0];
  const a1 = conv.messages[1].content;
  t.check(a1 === await greedy('Hello', { max_tokens: 8 }), 'turn 1 (max tokens 8) equals the API', a1);
  const want2 = await greedy(`Hello${a1}\n\nA dream\nof stars`, { max_tokens: 8 });
  t.check(conv.messages[3]?.content === want2, 'turn 2 sends the conversation as plain text (docs/web.md)', { got: conv.messages[3]?.content, want: want2 });
  t.check(/hit max tokens/.test(await page.textContent('.msg.assistant:last-of-type .stats')), 'finish_reason length is shown');

  step('server error shown plainly');
  await setSettings(page, { maxTokens: 100000 });
  await page.fill('#input', 'Tell me more');
  await page.keyboard.press('Enter');
  await waitAnswer(page, 3);
  const err = await page.textContent('.msg.assistant:last-of-type .error');
  t.check(await page.isVisible('.msg.assistant:last-of-type .error') && /HTTP 400/.test(err) && /max_tokens/.test(err),
    'the server\'s error is shown in the answer', err);
  await shot('chat-error-desktop');
  await setSettings(page, { maxTokens: '' });

  // ---------------- stop midway (slowed stream) ----------------
  step('stop midway');
  // The relay holds the stream back and lets one event out at a time: the
  // answer is seen growing event by event, and Stop lands while most of it
  // is still held, whatever the machine's load.
  const full1 = await postJson(`${srv.url}/v1/completions`, { prompt: prompt1, temperature: 0 });
  const tokens1 = full1.json?.usage?.completion_tokens ?? 0;
  t.check(tokens1 > 12, 'the greedy answer is long enough to stop midway', tokens1);
  const slow = await ctx.newPage();
  watch(slow);
  await slow.goto(`${relay.url}/`);
  await slow.waitForSelector('body.ready');
  await setSettings(slow, { temperature: 0 });
  await slow.fill('#input', prompt1);
  await slow.keyboard.press('Enter');
  const contentLen = (p, k) => p.evaluate((i) => document.querySelectorAll('.msg.assistant')[i]?.querySelector('.content')?.innerText.length ?? 0, k);
  const seen = [];
  for (let k = 0; k < 4; k++) {
    const before = await contentLen(slow, 0);
    relay.allow(1);
    try {
      await slow.waitForFunction((n) => (document.querySelector('.msg.assistant .content')?.innerText.length ?? 0) > n, before, { timeout: 15000 });
    } catch { /* checked below */ }
    seen.push(await contentLen(slow, 0));
  }
  t.check(new Set(seen).size === 4 && seen.every((x, i) => !i || x > seen[i - 1]), 'the answer is seen growing, event by event', seen);
  t.check(await slow.isVisible('#stop') && await slow.isHidden('#send'), 'Stop replaces Send while answering');
  t.check(await slow.getAttribute('.msg.assistant', 'aria-busy') === 'true', 'the streaming answer is aria-busy');
  await shot('chat-streaming-desktop', slow);
  await slow.click('#stop');
  await waitAnswer(slow, 1);
  const stopped = (await stored(slow))[0].messages[1];
  t.check(stopped.stopped === true, 'the answer is marked stopped', stopped);
  t.check(stopped.content.length > 0 && stopped.content.length < want1.length && want1.startsWith(stopped.content),
    'the stopped answer is a strict prefix of the greedy answer', { got: stopped.content.length, full: want1.length });
  t.check(/stopped/.test(await slow.textContent('.msg.assistant .who')), 'the answer says stopped');
  t.check(await relay.waitClosedEarly(1), 'Stop closed the stream', relay.stats);
  t.check(await slow.isVisible('#send') && await slow.isHidden('#stop'), 'Send is back after Stop');
  await shot('chat-stopped-desktop', slow);
  // Esc stops too
  await slow.fill('#input', 'Once upon a time there was');
  await slow.keyboard.press('Enter');
  relay.allow(2);
  await slow.waitForFunction(() => (document.querySelectorAll('.msg.assistant')[1]?.querySelector('.content')?.innerText.length ?? 0) > 0,
    null, { timeout: 15000 });
  await slow.keyboard.press('Escape');
  await waitAnswer(slow, 2);
  t.check((await stored(slow))[0].messages[3]?.stopped === true, 'Esc stops an answer too');
  t.check(await relay.waitClosedEarly(2), 'Esc closed its stream too', relay.stats);
  await slow.close();

  // ---------------- reload ----------------
  step('reload');
  await page.reload();
  await page.waitForSelector('body.ready');
  const titles = await page.$$eval('#conv-list .conv-open', (b) => b.map((x) => x.textContent));
  t.check(titles.length === 2 && titles.includes(prompt1) && titles.includes('Hello'), 'both conversations are listed after a reload', titles);
  t.check((await page.$$('.msg')).length === 6, 'the open conversation is shown again', (await page.$$('.msg')).length);
  await page.click(`#conv-list .conv-open:text-is("${prompt1}")`);
  t.check((await page.textContent('#chat-title')) === prompt1, 'a listed conversation opens');
  t.check(norm(await answerText(page, 0)) === norm(want1), 'with its answer');
  t.check(/TTFT/.test(await page.textContent('.msg.assistant .stats')), 'and its stats');

  // ---------------- markdown safety ----------------
  step('renderer on hostile input');
  const hostile = [
    '<script>window.__xss = "script"</script>',
    '<img src=x onerror="window.__xss = \'img\'">',
    '<svg onload="window.__xss = \'svg\'"><circle r=1 /></svg>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    '[click me](javascript:window.__xss=%22link%22)',
    '[click me too](JaVaScRiPt:window.__xss=1)',
    '[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
    '<javascript:window.__xss=1>',
    '![pic](javascript:window.__xss=1) ![pic2](http://127.0.0.1:1/x.png)',
    '`<script>in code</script>` and **<b onmouseover=alert(1)>bold</b>**',
    '```html\n</code></pre><script>window.__xss="fence"</script>\n```',
    '| a | <img src=x onerror=alert(1)> |\n|---|---|\n| <script>x</script> | [l](javascript:x) |',
    '> <style>body{display:none}</style> quoted',
    '- <a href="javascript:alert(1)">list link</a>\n- <form action=x><input></form>',
    '<details open ontoggle="window.__xss=\'details\'">x</details>',
    '&lt;script&gt; entity &#60;img src=x onerror=alert(1)&#62;',
  ].join('\n\n');
  const report = await page.evaluate(async (src) => {
    const { renderMarkdown } = await import('/js/markdown.js');
    const box = document.createElement('div');
    box.className = 'md';
    document.body.appendChild(box);
    renderMarkdown(src, box);
    await new Promise((ok) => setTimeout(ok, 300));
    const tags = [...box.querySelectorAll('*')].map((e) => e.tagName.toLowerCase());
    const attrs = [...box.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => `${a.name}=${a.value}`));
    const hrefs = [...box.querySelectorAll('a')].map((a) => a.getAttribute('href'));
    const out = { tags: [...new Set(tags)], attrs, hrefs, text: box.textContent, xss: window.__xss ?? null };
    box.remove();
    return out;
  }, hostile);
  const allowedTags = new Set(['p', 'br', 'code', 'pre', 'strong', 'em', 'del', 'a', 'ul', 'ol', 'li', 'blockquote', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'div', 'span', 'button', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
  t.check(report.tags.every((x) => allowedTags.has(x)), 'only Markdown elements are created', report.tags);
  t.check(!report.tags.some((x) => ['script', 'img', 'svg', 'iframe', 'style', 'form', 'input', 'details'].includes(x)), 'no script/img/svg/iframe/style/form element');
  t.check(report.attrs.every((a) => !/^on/i.test(a)), 'no event handler attribute', report.attrs.filter((a) => /^on/i.test(a)));
  t.check(report.hrefs.every((hr) => /^(https?:|mailto:)/.test(hr)), 'links are http(s)/mailto only', report.hrefs);
  t.check(report.xss === null, 'nothing ran', report.xss);
  t.check(report.text.includes('<script>window.__xss = "script"</script>') && report.text.includes('<img src=x onerror='),
    'the markup is shown as text');
  t.check(report.text.includes('&lt;script&gt;'), 'entities are not decoded into markup');

  step('hostile model output through the chat (faked stream with reasoning)');
  const fakeChunks = [
    { reasoning_content: 'Let me think about <script>window.__xss="think"</script> this.' },
    { reasoning_content: ' **Plan**: answer with a table.' },
    { content: '## Result\n\nHere is <img src=x onerror="window.__xss=\'answer\'"> and ' },
    { content: '<script>window.__xss="answer"</script> as text.\n\n| model | layers |\n|:--|--:|\n| aidreams | 4 |\n\n' },
    { content: '```js\nconsole.log("<b>hi</b>");\n```\n\n1. first\n2. second\n   - nested [link](https://example.com/a?b=1)\n\n[bad](javascript:window.__xss=1)' },
  ];
  const sse = [{ role: 'assistant', content: '' }, ...fakeChunks].map((delta, k) => `data: ${JSON.stringify({
    id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 0, model: 'aidreams-260k',
    choices: [{ index: 0, delta, finish_reason: k === fakeChunks.length ? 'stop' : null }], usage: null })}\n\n`).join('') +
    `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 9, completion_tokens: 42, total_tokens: 51 } })}\n\ndata: [DONE]\n\n`;
  await page.route('**/v1/chat/completions', (route) => route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream' }, body: sse }));
  await page.reload();
  await page.waitForSelector('body.ready');
  await page.click('#new-chat');
  await page.fill('#input', 'Show me markdown');
  await page.keyboard.press('Enter');
  await waitAnswer(page, 1);
  const chat = await page.evaluate(async () => {
    await new Promise((ok) => setTimeout(ok, 300));
    const msg = document.querySelector('.msg.assistant');
    const det = msg.querySelector('details.thinking');
    return {
      xss: window.__xss ?? null,
      bad: msg.querySelectorAll('script, img, iframe, svg, style').length,
      on: [...msg.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name)).filter((n) => /^on/i.test(n)),
      hrefs: [...msg.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      table: msg.querySelectorAll('.content table td').length,
      alignRight: msg.querySelector('.content table td:nth-child(2)')?.style.textAlign,
      code: msg.querySelector('.content pre code.language-js')?.textContent,
      ol: msg.querySelectorAll('.content ol > li').length,
      nested: msg.querySelectorAll('.content ol li ul li').length,
      h2: msg.querySelector('.content h2')?.textContent,
      thinkVisible: !!det && !det.hidden,
      thinkOpen: det?.open,
      thinkText: det?.querySelector('.think-body')?.textContent,
      text: msg.querySelector('.content').textContent,
      stats: msg.querySelector('.stats').textContent,
    };
  });
  t.check(chat.xss === null && chat.bad === 0 && chat.on.length === 0, 'model output with <script>/<img onerror> renders inert', chat);
  t.check(chat.text.includes('<img src=x onerror=') && chat.text.includes('<script>window.__xss="answer"</script>'), 'and is shown as text');
  t.check(chat.hrefs.length === 1 && chat.hrefs[0] === 'https://example.com/a?b=1', 'only the https link is a link', chat.hrefs);
  t.check(chat.table === 2 && chat.alignRight === 'right', 'a table renders with its alignment', chat);
  t.check(chat.code === 'console.log("<b>hi</b>");', 'a fenced code block renders with its language', chat.code);
  t.check(chat.ol === 2 && chat.nested === 1 && chat.h2 === 'Result', 'lists (nested) and headings render', chat);
  t.check(chat.thinkVisible && chat.thinkOpen === false, 'reasoning_content is in a folded thinking section', chat);
  t.check(chat.thinkText?.includes('<script>window.__xss="think"</script>'), 'thinking text is shown as text too');
  t.check(/42 tokens/.test(chat.stats), 'tokens come from the usage chunk', chat.stats);
  await page.click('details.thinking summary');
  t.check(await page.evaluate(() => document.querySelector('details.thinking').open), 'the thinking section opens on click');
  await shot('chat-markdown-desktop');
  await page.unroute('**/v1/chat/completions');
  await page.reload();
  await page.waitForSelector('body.ready');
  const again = await page.evaluate(async () => {
    await new Promise((ok) => setTimeout(ok, 300));
    const msg = document.querySelector('.msg.assistant');
    return { xss: window.__xss ?? null, bad: msg.querySelectorAll('script, img, iframe, svg, style').length, table: !!msg.querySelector('table') };
  });
  t.check(again.xss === null && again.bad === 0 && again.table, 'after a reload the stored answer still renders inert', again);

  // ---------------- keyboard ----------------
  step('keyboard');
  await page.focus('#input');
  await page.keyboard.press('Tab');
  t.check(await page.evaluate(() => document.activeElement?.id) === 'send', 'Tab from the message box reaches Send');
  await page.focus('#settings-btn');
  await page.keyboard.press('Enter');
  t.check(await page.isVisible('#settings') && await page.evaluate(() => document.activeElement?.id) === 'set-temperature',
    'Settings opens from the keyboard with the focus inside');
  await page.keyboard.press('Escape');
  t.check(await page.isHidden('#settings'), 'Esc closes Settings');
  const focusable = await page.evaluate(() => [...document.querySelectorAll('button, a[href], input, textarea')]
    .filter((e) => e.offsetParent && !e.disabled).every((e) => e.tabIndex >= 0));
  t.check(focusable, 'every visible control is reachable with Tab');

  // ---------------- contrast ----------------
  step('contrast');
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    const ratios = await page.evaluate(contrastProbe);
    const low = ratios.filter((r) => r.ratio < 4.5);
    t.check(ratios.length >= 8 && low.length === 0, `text contrast >= 4.5:1 (${scheme})`, low.length ? low : ratios.length);
    if (scheme === 'dark') await shot('chat-markdown-desktop-dark');
  }
  await page.emulateMedia({ colorScheme: 'light' });

  // ---------------- server view ----------------
  step('server view');
  await page.click('a[data-view="cluster"]');
  await page.waitForFunction(() => /^\d[\d,]*$/.test(document.getElementById('m-gen')?.textContent ?? ''), null, { timeout: 10000 });
  const gen = Number((await page.textContent('#m-gen')).replace(/,/g, ''));
  const mgen = (await metrics(srv.url)).parallax_generation_tokens_total;
  t.check(gen > 0 && gen <= mgen, 'the Server view shows the tokens generated (from /metrics)', { gen, mgen });
  t.check(/aidreams-260k/.test(await page.textContent('#cluster-body')), 'and the model');
  await sleep(1200);
  await shot('server-desktop');

  // ---------------- phone ----------------
  step('phone');
  await page.setViewportSize(PHONE);
  await shot('server-phone');
  const overflow = () => hOverflow(page);
  t.check(await overflow() <= 0, 'Server view: no horizontal scroll at 390 px', await overflow());
  await page.click('a[data-view="chat"]');
  await page.click(`#menu-btn`);
  t.check(await page.isVisible('#sidebar') && (await page.getAttribute('#menu-btn', 'aria-expanded')) === 'true', 'the menu opens the conversation drawer');
  await sleep(400); // the slide-in
  await shot('chat-drawer-phone');
  await page.click(`#conv-list .conv-open:text-is("${prompt1}")`);
  t.check(await page.evaluate(() => !document.body.classList.contains('sidebar-open')), 'choosing a conversation closes the drawer');
  t.check(await overflow() <= 0, 'Chat: no horizontal scroll at 390 px', await overflow());
  await shot('chat-answer-phone');
  await page.click(`#menu-btn`);
  await page.click(`#conv-list .conv-open:text-is("Show me markdown")`);
  await shot('chat-markdown-phone');
  t.check(await overflow() <= 0, 'Markdown answer: no horizontal scroll at 390 px (tables and code scroll inside)', await overflow());
  await page.click('#settings-btn');
  await shot('settings-phone');
  const sw = await page.evaluate(() => document.getElementById('settings').getBoundingClientRect().width);
  t.check(sw <= 390, 'Settings fits the phone', sw);
  await page.click('#settings-close');
  await page.click('#new-chat').catch(() => {});
  await page.click(`#menu-btn`).catch(() => {});
  await page.setViewportSize(DESKTOP);

  t.check(problems.length === 0, 'no page error, CSP/Trusted Types violation or unexpected console error', problems);
} catch (e) {
  t.check(false, 'the browser run completed', e.stack ?? String(e));
  await shot('failure').catch(() => {});
} finally {
  await browser.close();
  relay.server.close();
  const r = await srv.stop();
  t.check(r.code === 0, 'server exits 0 on SIGTERM', r);
}
console.log(`screenshots: ${shots}`);
t.finish();
