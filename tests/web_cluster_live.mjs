// web_cluster_live.mjs - the web UI's whole flow in Debian's Chromium (npm
// playwright-core) against a real cluster on this machine: `parallax run`
// started WITHOUT a model (--model-dir pointing at the aidreams fixture's
// folder), the model chosen in the page, and `parallax join` workers started
// with exactly the command the Join page shows.
//
//   setup    the page opens on Setup: no model yet, the model list shows
//            aidreams-260k (4 layers, its size) against the memory joined
//            nodes offer; choosing it with 2 nodes POSTs /cluster/setup and
//            moves to Join
//   join     the real command (with the token: the page is on loopback) =
//            the one parallax run printed; a worker started with its
//            arguments shows a loading progress bar (its load slowed down by
//            PARALLAX_TEST_LOAD_DELAY_MS) that grows, then turns ready, and a
//            second one too, without a reload
//   chat     Next: chat; the streamed answer equals the API's greedy answer;
//            Stop midway (through a relay that lets events out only when the
//            test allows) leaves a strict prefix; a reload finds the
//            conversations
//   failure  the Cluster view shows both slices and the pipeline; a worker
//            killed with SIGKILL turns failed (kept, hatched) and the event
//            log says it left; a new worker takes its layers, the pipeline
//            is rebuilt and the chat answers again (= greedy)
// Screenshots at 1280x800 and 390x844 go to --out (names start with "live-").
//
//   node tests/web_cluster_live.mjs --parallax build/parallax --model ../shared/models/aidreams-260k --out build/tests/out/web
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, harness, postJson } from './server_common.mjs';
import { DESKTOP, PHONE, sleep, loadChromium, launch, watch, shooter, startRelay, overflow } from './web_common.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const args = parseArgs(process.argv, {
  chromium: '/usr/bin/chromium',
  npm: path.join(here, '..', 'oracles', 'node_modules'),
  out: path.join(os.tmpdir(), 'parallax-web'),
});
const chromium = await loadChromium(args.chromium, args.npm);
const t = harness('web_cluster_live');
const snap = shooter(path.join(args.out, 'screenshots'));
const step = (s) => console.log(`-- ${s}`);

// ---- processes (every one is killed when the test exits, however it exits) ----
const children = new Set();
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });

function spawnTracked(argv, env = {}) {
  const proc = spawn(args.parallax, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(proc);
  const p = { proc, log: '' };
  proc.stdout.on('data', (d) => { p.log += d; });
  proc.stderr.on('data', (d) => { p.log += d; });
  p.exited = new Promise((ok) => proc.on('exit', (code, signal) => { children.delete(proc); ok({ code, signal }); }));
  p.stop = async () => {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30000);
    const r = await p.exited;
    clearTimeout(timer);
    return r;
  };
  return p;
}

// No -m: the page chooses the model. The Hugging Face cache is an empty
// folder, so the list holds exactly the --model-dir models.
const modelDir = path.dirname(path.resolve(args.model));
const hfHome = fs.mkdtempSync(path.join(os.tmpdir(), 'parallax-web-hf-'));
async function startScheduler() {
  const p = spawnTracked(['run', '--model-dir', modelDir, '--host', '127.0.0.1', '--port', '0', '--cluster-port', '0',
    '--cluster-host', '127.0.0.1', '--no-beacon', '--heartbeat-ms', '200', '--dead-after', '1.5', '--state-dir', path.join(hfHome, 'state')],
  { HF_HOME: hfHome, HF_HUB_CACHE: '', HUGGINGFACE_HUB_CACHE: '', HF_HUB_OFFLINE: '1' });
  const t0 = Date.now();
  while (Date.now() - t0 < 60000) {
    const m = /HTTP on http:\/\/([^\s,]+):(\d+), cluster port (\d+)/.exec(p.log);
    const cmd = /^\s*(parallax join -s \S+ --token px1_[A-Za-z0-9_-]+)\s*$/m.exec(p.log);
    if (m && cmd) return Object.assign(p, { url: `http://127.0.0.1:${m[2]}`, clusterPort: Number(m[3]), printed: cmd[1] });
    if (p.proc.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`the scheduler did not start:\n${p.log}`);
}

/** Runs the page's join command, word for word, plus a fixed slice and name. */
function startWorker(command, id, start, end, env = {}) {
  const argv = command.replace(/^parallax\s+/, '').split(/\s+/);
  return spawnTracked([...argv, '--no-probe', '-t', '1', '--node-id', id, '--start-layer', String(start), '--end-layer', String(end)], env);
}

const sched = await startScheduler();
const relay = await startRelay(sched.url, { gated: true }); // stream events go out only when the test allows
const browser = await launch(chromium, args.chromium, DESKTOP);
const { ctx, page } = browser;
const problems = [];
watch(page, problems);
const workers = [];

async function until(what, fn, arg, ms = 15000, p = page) {
  try {
    await p.waitForFunction(fn, arg, { timeout: ms });
    return t.check(true, what);
  } catch {
    return t.check(false, what, 'timed out');
  }
}
async function both(name) {
  await page.evaluate(() => { window.scrollTo(0, 0); document.querySelector('main').scrollTop = 0; });
  await snap(page, `live-${name}-desktop`);
  await page.setViewportSize(PHONE);
  await sleep(350);
  t.check(await overflow(page) <= 0, `${name}: no horizontal scroll at 390 px`, await overflow(page));
  await snap(page, `live-${name}-phone`);
  await page.setViewportSize(DESKTOP);
}
async function greedy(prompt) {
  const r = await postJson(`${sched.url}/v1/completions`, { prompt, temperature: 0 });
  if (r.status !== 200) throw new Error(`greedy oracle: ${r.status} ${r.body}`);
  return r.json.choices[0].text;
}
async function ask(p, text, n) {
  await p.fill('#input', text);
  await p.keyboard.press('Enter');
  await p.waitForFunction((k) => {
    const a = document.querySelectorAll('.msg.assistant');
    return a.length >= k && a[k - 1].getAttribute('aria-busy') === 'false';
  }, n, { timeout: 30000 });
  return p.evaluate((k) => {
    const c = JSON.parse(localStorage.getItem('parallax.conversations.v1'))[0];
    return c.messages[2 * k - 1];
  }, n);
}
async function setTemperature0(p) {
  await p.click('#settings-btn');
  await p.fill('#set-temperature', '0');
  await p.click('#settings-close');
}

try {
  step('setup');
  await page.goto(`${sched.url}/`);
  await page.waitForSelector('body.ready');
  t.check(await page.isVisible('#view-setup'), 'a scheduler without a model opens on Setup');
  await until('Setup says no model is chosen', () => /No model chosen yet/.test(document.getElementById('setup-model-card')?.textContent ?? ''));
  await until('the model list shows aidreams-260k', () => !!document.querySelector('#setup-models .model-item[data-path$="/aidreams-260k"]'));
  const item = await page.textContent('#setup-models .model-item[data-path$="/aidreams-260k"]');
  const size = fs.statSync(path.join(path.resolve(args.model), 'model.safetensors')).size;
  const kib = `${(size / 1024).toFixed(0)} KiB`;
  t.check(/LlamaForCausalLM/.test(item) && /4 layers/.test(item) && /hidden 64/.test(item) && item.includes(`needs ${kib}`),
    'the listed model shows its architecture, layers, hidden size and the memory it needs', item);
  t.check(/more than the joined nodes offer/.test(item), 'against the memory of the joined nodes (none yet)', item);
  t.check(/offered by joined nodes 0 B/.test(await page.textContent('#setup-mem-card')), 'the memory card: nothing offered yet');
  t.check(await page.isChecked('#setup-models input[value$="/aidreams-260k"]'), 'the only usable model is preselected');
  await page.fill('#setup-nodes', '2');
  await both('setup');
  const before = await fetch(`${sched.url}/v1/models`);
  t.check(before.status === 503 && /no model is chosen/.test(await before.text()), '/v1 answers 503 before the choice');
  await page.evaluate(() => { window.__noReload = true; });
  await page.click('#setup-models input[value$="/aidreams-260k"]');
  await page.click('#setup-use');

  step('join');
  await until('Use this model moves to Join', () => location.hash === '#/join' && !document.getElementById('view-join').hidden);
  await until('the join command carries the real token', () => document.getElementById('join-cmd')?.dataset.secret === 'yes');
  const cmd = await page.textContent('#join-cmd');
  t.check(cmd === sched.printed, 'the page shows exactly the command parallax run printed', { page: cmd, printed: sched.printed });
  t.check(cmd.startsWith(`parallax join -s 127.0.0.1:${sched.clusterPort} --token px1_`), 'it names the cluster port and the token', cmd);
  t.check(await page.isHidden('#join-token-note'), 'no placeholder note');
  await until('the banner waits for nodes', () => /Waiting for nodes/.test(document.getElementById('join-state')?.textContent ?? ''));
  const st0 = await (await fetch(`${sched.url}/cluster/status`)).json();
  t.check(st0.model === 'aidreams-260k' && st0.workers_needed === 2 && st0.state === 'waiting', 'the scheduler took the model and the node count', st0);
  workers.push(startWorker(cmd, 'w1', 0, 2, { PARALLAX_TEST_LOAD_DELAY_MS: '150' }));
  await until('the first worker appears', () => !!document.querySelector('#join-body tr[data-node="w1"]'));
  await until('it shows a loading progress bar partly filled', () => {
    const bar = document.querySelector('#join-body tr[data-node="w1"] [role="progressbar"]');
    const v = Number(bar?.getAttribute('aria-valuenow'));
    return bar && v > 0 && v < 100;
  }, null, 20000);
  const p1 = Number(await page.getAttribute('#join-body tr[data-node="w1"] [role="progressbar"]', 'aria-valuenow'));
  t.check(/Loading aidreams-260k/.test(await page.textContent('#join-state')), 'the banner says which model loads');
  t.check(/\d+ % · [\d.]+ KiB of [\d.]+ KiB/.test(await page.textContent('#join-body tr[data-node="w1"] .progress-text')), 'with the bytes loaded',
    await page.textContent('#join-body tr[data-node="w1"]'));
  await both('join-loading');
  await until('the bar grows', (v) => {
    const bar = document.querySelector('#join-body tr[data-node="w1"] [role="progressbar"]');
    return !bar || Number(bar.getAttribute('aria-valuenow')) > v;
  }, p1, 20000);
  workers.push(startWorker(cmd, 'w2', 2, 4));
  await until('both workers turn ready', () => document.querySelectorAll('#join-body tr[data-status="ready"]').length === 2, null, 30000);
  await until('the banner says ready', () => /cluster is ready/.test(document.getElementById('join-state')?.textContent ?? ''));
  t.check(await page.evaluate(() => window.__noReload === true), 'without a reload');
  await both('join-ready');

  step('chat');
  await page.click('#join-next');
  await until('Next: chat opens the chat', () => location.hash === '#/chat' && !document.getElementById('view-chat').hidden);
  await setTemperature0(page);
  const want = await greedy('Once upon a time');
  const got = await ask(page, 'Once upon a time', 1);
  t.check(got.content === want, 'the streamed answer through the pipeline equals the API greedy answer', { got: got.content, want });
  t.check(/TTFT/.test(await page.textContent('.msg.assistant .stats')), 'TTFT and tokens/s are shown');
  await both('chat');

  step('stop midway');
  const slow = await ctx.newPage();
  watch(slow, problems);
  await slow.goto(`${relay.url}/#/chat`);
  await slow.waitForSelector('body.ready');
  await setTemperature0(slow);
  await slow.fill('#input', 'Once upon a time');
  await slow.keyboard.press('Enter');
  relay.allow(3); // three pieces of the answer out, the rest held back
  await until('the answer grows', () => (document.querySelector('.msg.assistant .content')?.innerText.length ?? 0) > 0, null, 15000, slow);
  await slow.click('#stop');
  await until('it stops', () => document.querySelector('.msg.assistant')?.getAttribute('aria-busy') === 'false', null, 15000, slow);
  const part = await slow.evaluate(() => JSON.parse(localStorage.getItem('parallax.conversations.v1'))[0].messages[1]);
  t.check(part.stopped && part.content.length > 0 && part.content.length < want.length && want.startsWith(part.content),
    'the stopped answer is a strict prefix of the greedy answer', { got: part.content.length, full: want.length });
  await slow.close();

  step('reload');
  await page.reload();
  await page.waitForSelector('body.ready');
  const titles = await page.$$eval('#conv-list .conv-open', (b) => b.map((x) => x.textContent));
  t.check(titles.includes('Once upon a time'), 'the conversation is listed after a reload', titles);
  t.check((await page.evaluate(() => document.querySelector('.msg.assistant .content')?.innerText ?? '')).replace(/\s+/g, ' ').trim() ===
    want.replace(/\s+/g, ' ').trim(), 'and shows its answer');

  step('a worker dies');
  await page.click('a[data-view="cluster"]');
  await until('the allocation shows both slices', () => document.querySelectorAll('.alloc-bar').length === 2);
  t.check(/w1 \[0, 2\)/.test(await page.textContent('.pipeline')) && /w2 \[2, 4\)/.test(await page.textContent('.pipeline')), 'the pipeline w1 -> w2 is shown');
  await both('cluster');
  workers[1].proc.kill('SIGKILL');
  await until('the killed worker is marked failed', () => document.querySelector('#cluster-body tr[data-node="w2"]')?.dataset.status === 'failed');
  t.check(await page.evaluate(() => document.querySelectorAll('.alloc-bar.failed').length === 1), 'its bar is drawn failed');
  t.check(/w2 left the cluster/.test(await page.textContent('#events')), 'the event log says it left');
  t.check(/No complete pipeline/.test(await page.textContent('#cluster-body')), 'no pipeline is left');
  await both('cluster-failed');

  step('a replacement');
  workers.push(startWorker(cmd, 'w3', 2, 4));
  await until('the pipeline is rebuilt through the new worker', () => /w3 \[2, 4\)/.test(document.querySelector('.pipeline')?.textContent ?? ''));
  t.check(await page.evaluate(() => document.querySelector('#cluster-body tr[data-node="w2"]')?.dataset.status) === 'failed', 'the dead worker stays marked');
  await both('cluster-recovered');
  await page.click('a[data-view="chat"]');
  await page.click('#new-chat');
  const again = await ask(page, 'Once upon a time', 1);
  t.check(again.content === want, 'the rebuilt pipeline answers the same', { got: again.content, want });

  t.check(problems.length === 0, 'no page error, CSP violation or unexpected console error', problems);
} catch (e) {
  t.check(false, 'the browser run completed', e.stack ?? String(e));
  await snap(page, 'live-failure').catch(() => {});
} finally {
  await browser.close();
  relay.server.close();
  for (const w of workers) await w.stop();
  fs.rmSync(hfHome, { recursive: true, force: true });
  const r = await sched.stop();
  t.check(r.code === 0, 'the scheduler exits 0 on SIGTERM', { ...r, log: r.code === 0 ? '' : sched.log.slice(-2000) });
}
t.finish();
