// server_hub.mjs - Hugging Face downloads (src/server/hub.c) against a fake hub
// on loopback (tests/fake_hub.mjs); nothing here touches the internet.
//
//   node tests/server_hub.mjs --driver BUILD/tests/test_hub_fetch --model AIDREAMS_DIR
//        --work DIR [--parallax BUILD/parallax]
//
// The fake hub serves the aidreams-260k directory as repo "test-org/aidreams"
// (and a gated copy). Checked: the standard cache layout (blobs named by ETag,
// relative snapshot symlinks, refs/main), only the needed files fetched,
// identical bytes, reuse without downloads, offline use (HF_HUB_OFFLINE and an
// unreachable hub), resume after a cut connection and from a partial
// .incomplete file (Range requests), two processes sharing one cache, a corrupted LFS download rejected by its
// sha256, gated repos and HF_TOKEN, unknown repos and revisions, and finally
// `parallax serve -m test-org/aidreams` answering a completion.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startFakeHub } from './fake_hub.mjs';
import { harness, parseArgs, postJson, startServer } from './server_common.mjs';

const o = parseArgs(process.argv);
const h = harness('server_hub');
if (!fs.existsSync(path.join(o.model, 'config.json'))) { console.log(`SKIP: no model at ${o.model}`); process.exit(77); }
const REPO = 'test-org/aidreams', GATED = 'test-org/gated';

function run(args, env) {
  return new Promise((resolve) => {
    execFile(o.driver, args, { env: { ...process.env, HF_HUB_OFFLINE: '', HF_TOKEN: '', HF_HUB_CACHE: '', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout.trim(), err: stderr }));
  });
}

function freshHome(name) {
  const d = path.join(path.resolve(o.work), name);
  fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(d, { recursive: true });
  return d;
}

const hub = await startFakeHub({
  [REPO]: { dir: o.model, revisions: { v1: 'a'.repeat(40) } },
  [GATED]: { dir: o.model, token: 'hf_secret' },
});
const env = (home, extra = {}) => ({ HF_HOME: home, HF_ENDPOINT: hub.url, ...extra });
const repoDir = (home) => path.join(home, 'hub', 'models--test-org--aidreams');
const resolves = () => hub.log.filter((l) => l.method === 'GET' && (l.url.includes('/resolve/') || l.url.startsWith('/cdn/')));
const wanted = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

async function testFirstDownload() {
  const home = freshHome('first');
  const r = await run([REPO], env(home));
  h.check(r.code === 0, 'download exits 0', r.err);
  const sha = hub.repos[REPO].sha;
  const snap = path.join(repoDir(home), 'snapshots', sha);
  h.check(r.out === snap, 'prints the snapshot directory', r.out);
  h.check(fs.readFileSync(path.join(repoDir(home), 'refs', 'main'), 'utf8') === sha, 'refs/main holds the commit');
  h.check(JSON.stringify(fs.readdirSync(snap).sort()) === JSON.stringify(wanted), 'exactly the needed files', fs.readdirSync(snap));
  for (const f of wanted) {
    const p = path.join(snap, f);
    const link = fs.readlinkSync(p);
    h.check(link === `../../blobs/${hub.repos[REPO].files[f].etag}`, `${f} links to its blob`, link);
    h.check(fs.readFileSync(p).equals(fs.readFileSync(path.join(o.model, f))), `${f} has the same bytes`);
  }
  h.check(!fs.readdirSync(path.join(repoDir(home), 'blobs')).some((f) => f.endsWith('.incomplete')), 'no .incomplete left');
  h.check(!hub.log.some((l) => l.url.includes('reference/') || l.url.includes('README')), 'unneeded files not fetched');
  return home;
}

async function testReuse(home) {
  const before = resolves().length;
  const r = await run([REPO], env(home));
  h.check(r.code === 0 && resolves().length === before, 'second run downloads nothing', { code: r.code, gets: resolves().length - before });
  const off = await run([REPO], env(home, { HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' }));
  h.check(off.code === 0 && off.out === r.out, 'HF_HUB_OFFLINE=1 uses the cache', off.err);
  const down = await run([REPO], env(home, { HF_ENDPOINT: 'http://127.0.0.1:9' }));
  h.check(down.code === 0 && down.out === r.out, 'an unreachable hub falls back to the cache', down.err);
  const none = await run([REPO], env(freshHome('empty'), { HF_HUB_OFFLINE: '1' }));
  h.check(none.code === 1 && /not in the cache/.test(none.err), 'offline without a cache is a clear error', none.err);
}

async function testResumeAfterCut() {
  const home = freshHome('cut');
  const size = hub.repos[REPO].files['model.safetensors'].data.length;
  hub.cutNext['model.safetensors'] = Math.floor(size / 3);
  const from = hub.log.length;
  const r = await run([REPO, '--quiet'], env(home));
  h.check(r.code === 0, 'a cut download is retried and completes', r.err);
  const ranged = hub.log.slice(from).filter((l) => l.url.startsWith('/cdn/') && l.method === 'GET' && l.range);
  h.check(ranged.length >= 1 && ranged[0].range === `bytes=${Math.floor(size / 3)}-`, 'the retry asks for the rest (Range)', ranged);
  const snap = r.out;
  h.check(snap && fs.readFileSync(path.join(snap, 'model.safetensors')).equals(fs.readFileSync(path.join(o.model, 'model.safetensors'))),
    'the resumed file is identical');
}

async function testResumePartialFile() {
  const home = freshHome('partial');
  const f = hub.repos[REPO].files['model.safetensors'];
  fs.mkdirSync(path.join(repoDir(home), 'blobs'), { recursive: true });
  fs.writeFileSync(path.join(repoDir(home), 'blobs', `${f.etag}.incomplete`), f.data.subarray(0, 100000));
  const from = hub.log.length;
  const r = await run([REPO, '--quiet'], env(home));
  const gets = hub.log.slice(from).filter((l) => l.url.startsWith('/cdn/') && l.method === 'GET');
  h.check(r.code === 0 && gets.length === 1 && gets[0].range === 'bytes=100000-', 'an .incomplete file is resumed', { err: r.err, gets });
  h.check(r.code === 0 && fs.readFileSync(path.join(r.out, 'model.safetensors')).equals(f.data), 'the resumed blob is identical');
}

// Two processes (two workers on one machine) fetch the same repo into one cache
// at once: the second waits for the first's blob instead of writing the same
// .incomplete file beside it.
async function testConcurrentDownloads() {
  const home = freshHome('concurrent');
  hub.stall['model.safetensors'] = 700;
  const from = hub.log.length;
  const [a, b] = await Promise.all([run([REPO, '--quiet'], env(home)), run([REPO, '--quiet'], env(home))]);
  delete hub.stall['model.safetensors'];
  const gets = hub.log.slice(from).filter((l) => l.url.startsWith('/cdn/') && l.method === 'GET');
  h.check(a.code === 0 && b.code === 0 && a.out === b.out, 'two processes fetching one repo into one cache both succeed',
    { a: a.err, b: b.err });
  h.check(gets.length === 1, 'their shared blob is downloaded once', gets);
  const want = hub.repos[REPO].files['model.safetensors'].data;
  h.check(a.code === 0 && fs.readFileSync(path.join(a.out, 'model.safetensors')).equals(want), 'and is identical');
}

async function testCorrupt() {
  const home = freshHome('corrupt');
  hub.corrupt.add('model.safetensors');
  const r = await run([REPO, '--quiet'], env(home));
  hub.corrupt.clear();
  h.check(r.code === 1 && /sha256/.test(r.err), 'a corrupted LFS file is rejected', r.err);
  h.check(!fs.existsSync(path.join(repoDir(home), 'refs', 'main')), 'no ref to an incomplete snapshot');
}

async function testAuthAndErrors() {
  const home = freshHome('gated');
  const denied = await run([GATED, '--quiet'], env(home));
  h.check(denied.code === 1 && /HF_TOKEN/.test(denied.err), 'a gated repo without a token names HF_TOKEN', denied.err);
  const from = hub.log.length;
  const ok = await run([GATED, '--quiet'], env(home, { HF_TOKEN: 'hf_secret' }));
  h.check(ok.code === 0, 'HF_TOKEN opens a gated repo', ok.err);
  h.check(hub.log.slice(from).filter((l) => !l.url.startsWith('/cdn/')).every((l) => l.auth === 'Bearer hf_secret'),
    'the token is sent as a Bearer header');
  const missing = await run(['test-org/nope', '--quiet'], env(home));
  h.check(missing.code === 1 && /no such repository/.test(missing.err), 'an unknown repo is a clear error', missing.err);
  const badRev = await run([REPO, '--revision', 'nobranch', '--quiet'], env(home));
  h.check(badRev.code === 1 && /nobranch/.test(badRev.err), 'an unknown revision is a clear error', badRev.err);
  const v1 = await run([REPO, '--revision', 'v1', '--quiet'], env(home));
  h.check(v1.code === 0 && fs.readFileSync(path.join(repoDir(home), 'refs', 'v1'), 'utf8') === 'a'.repeat(40),
    'a branch revision writes refs/BRANCH', v1.err);
  const notRepo = await run(['../etc/passwd', '--quiet'], env(home));
  h.check(notRepo.code === 1 && /not a Hugging Face repo id/.test(notRepo.err), 'a path that is no repo id is refused', notRepo.err);
}

async function testServe(home) {
  if (!o.parallax) return;
  const srv = await startServer(o.parallax, ['-m', REPO, '--kv-cache-memory', '16M', '-t', '1'], { env: env(home) });
  const r = await postJson(`${srv.url}/v1/completions`, { model: REPO, prompt: 'I dream of', max_tokens: 8, temperature: 0 });
  h.check(r.status === 200 && r.json.choices[0].text.length > 0 && r.json.model === REPO, 'parallax serve -m REPO_ID answers', r.body);
  const st = await srv.stop();
  h.check(st.code === 0, 'the server exits cleanly', st);
}

try {
  const home = await testFirstDownload();
  await testReuse(home);
  await testResumeAfterCut();
  await testResumePartialFile();
  await testConcurrentDownloads();
  await testCorrupt();
  await testAuthAndErrors();
  await testServe(home);
} catch (e) {
  h.check(false, 'unexpected exception', e.stack);
}
await hub.close();
h.finish();
