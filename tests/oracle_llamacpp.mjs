// oracle_llamacpp.mjs - compares our forward pass with llama.cpp on random-weight
// models of real shapes (issue 2, "How it is checked", point 2).
//
//   node tests/oracle_llamacpp.mjs --build-dir BUILD --shapes qwen3-0.6b,llama-3.2-1b
//        [--models-dir DIR] [--threads 2] [--oracle-threads 1] [--keep-going]
//
// For each shape, tools/make_random_model writes the same random weights as a
// Hugging Face directory (for `parallax generate`) and as an F32 GGUF (for
// tools/llama_oracle, the prebuilt libllama). Models are cached in
// BUILD/oracle-models and rewritten only when the generator binary or its
// arguments change. For every prompt (fixed-seed random ids) both engines run
// the whole prompt, dump the logits at the last prompt position, and decode 16
// tokens greedily. A case passes when
//   max |ours - llama.cpp| <= 1e-3 * max |llama.cpp logit|   and
//   the 16 generated ids are identical.
// Prints one result line per case; exits 1 if any case failed.
// llama.cpp runs on one thread by default: its results do not depend on the
// thread count, and its spinning thread pool slows down badly when the two
// cores of a shared machine are busy with something else.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const TOL = 1e-3;
const N_GEN = 16;

// name -> generator flags and prompts. Prompt seeds were picked so that no
// greedy step of llama.cpp has a top-1/top-2 logit gap below ~0.01: a near
// tie would make the ids test measure rounding noise instead of correctness.
const CASES = {
  'qwen3-0.6b': { gen: ['--shape', 'qwen3-0.6b'], vocab: 151936, prompts: [[1, 6], [110, 4]] },
  'llama-3.2-1b': { gen: ['--shape', 'llama-3.2-1b'], vocab: 128256, prompts: [[1, 5], [110, 5]] },
  // tiny shapes: every architecture feature and loader path in a few seconds
  // (tiny-llama: llama3 rope scaling with original context 64, untied, f32, 3
  // shards; tiny-qwen2: qkv bias, f16, 2 shards; tiny-qwen3: q/k norms,
  // head_dim != hidden/heads, tied; tiny-mistral: untied)
  'tiny-qwen3': { gen: ['--shape', 'tiny-qwen3'], vocab: 300, prompts: [[1, 5], [120, 5]] },
  'tiny-llama': { gen: ['--shape', 'tiny-llama', '--hf-dtype', 'f32', '--shards', '3'], vocab: 320, prompts: [[1, 4], [120, 1]] },
  'tiny-qwen2': { gen: ['--shape', 'tiny-qwen2', '--hf-dtype', 'f16', '--shards', '2'], vocab: 300, prompts: [[1, 3], [120, 2]] },
  'tiny-mistral': { gen: ['--shape', 'tiny-mistral'], vocab: 300, prompts: [[1, 3], [120, 6]] },
};

function parseArgs(argv) {
  const o = { threads: 2, oracleThreads: 1, shapes: [], keepGoing: false };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--build-dir') o.build = argv[++i];
    else if (a === '--models-dir') o.models = argv[++i];
    else if (a === '--threads') o.threads = Number(argv[++i]);
    else if (a === '--oracle-threads') o.oracleThreads = Number(argv[++i]);
    else if (a === '--shapes') o.shapes = argv[++i].split(',').filter(Boolean);
    else if (a === '--keep-going') o.keepGoing = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.build) throw new Error('--build-dir is required');
  o.build = path.resolve(o.build);
  o.models ??= path.join(o.build, 'oracle-models');
  for (const s of o.shapes) if (!CASES[s]) throw new Error(`unknown shape ${s} (${Object.keys(CASES).join(', ')})`);
  return o;
}

// splitmix64: fixed-seed prompt ids, independent of node's Math.random
function promptIds(n, seed, vocab) {
  let x = BigInt(seed) & 0xffffffffffffffffn;
  const M = 0xffffffffffffffffn;
  const ids = [];
  for (let i = 0; i < n; i++) {
    x = (x + 0x9e3779b97f4a7c15n) & M;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    z ^= z >> 31n;
    ids.push(Number(z % BigInt(vocab)));
  }
  return ids;
}

const RUN_TIMEOUT_S = 600; // one engine on one prompt; a hang must not eat the whole ctest timeout

function run(cmd, args, what) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: RUN_TIMEOUT_S * 1000, killSignal: 'SIGKILL' });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.error && r.error.code === 'ETIMEDOUT') return { status: `killed after ${RUN_TIMEOUT_S} s`, stdout: r.stdout ?? '', stderr: r.stderr ?? '', secs };
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status === null) return { ...r, status: `killed by ${r.signal}`, secs };
  return { ...r, secs };
}

function fileHash(p) {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

function ensureModel(o, name, gen) {
  const hfDir = path.join(o.models, name);
  const gguf = path.join(o.models, `${name}.gguf`);
  const stampFile = path.join(o.models, `${name}.stamp`);
  const args = [...gen, '--hf-out', hfDir, '--gguf-out', gguf];
  const stamp = JSON.stringify({ generator: fileHash(o.makeModel), args: gen });
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp && fs.existsSync(gguf) &&
      fs.existsSync(path.join(hfDir, 'config.json'))) {
    return { hfDir, gguf, genSecs: 0 };
  }
  fs.mkdirSync(o.models, { recursive: true });
  fs.rmSync(stampFile, { force: true });
  fs.rmSync(hfDir, { recursive: true, force: true });
  fs.rmSync(gguf, { force: true });
  console.log(`[${name}] writing random model: make_random_model ${args.join(' ')}`);
  const r = spawnSync(o.makeModel, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`make_random_model failed for ${name} (status ${r.status})`);
  fs.writeFileSync(stampFile, stamp);
  return { hfDir, gguf, genSecs: null };
}

// PX_DROP_MODELS=1 (set by .ci/run): a fresh clone gains nothing from keeping
// gigabytes of models for a next run, and a shared disk may be short of them.
function dropModel(o, name) {
  for (const p of [path.join(o.models, name), path.join(o.models, `${name}.gguf`), path.join(o.models, `${name}.stamp`)]) {
    fs.rmSync(p, { recursive: true, force: true });
  }
}

function readF32(p) {
  const b = fs.readFileSync(p);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function lastLine(s) {
  const lines = s.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1] : '';
}

function main() {
  const o = parseArgs(process.argv);
  o.parallax = path.join(o.build, 'parallax');
  o.makeModel = path.join(o.build, 'tools', 'make_random_model');
  o.oracle = path.join(o.build, 'tools', 'llama_oracle');
  for (const [p, why] of [[o.parallax, 'the parallax binary'], [o.makeModel, 'tools/make_random_model'],
    [o.oracle, 'tools/llama_oracle (needs scripts/setup.sh before cmake configures)']]) {
    if (!fs.existsSync(p)) {
      console.error(`oracle_llamacpp: missing ${p}: ${why} is not built`);
      process.exit(1);
    }
  }
  const tmp = fs.mkdtempSync(path.join(o.models, '..', 'oracle-run-'));
  let failed = 0;
  const t0 = Date.now();
  try {
    for (const name of o.shapes) {
      const c = CASES[name];
      const tg = Date.now();
      const m = ensureModel(o, name, c.gen);
      console.log(`[${name}] model ${m.genSecs === 0 ? 'cached' : `written in ${((Date.now() - tg) / 1000).toFixed(1)} s`}: ${m.hfDir}`);
      for (const [n, seed] of c.prompts) {
        const ids = promptIds(n, seed, c.vocab).join(',');
        const refLogits = path.join(tmp, `${name}-${n}.llama.f32`);
        const ourLogits = path.join(tmp, `${name}-${n}.ours.f32`);
        const tag = `[${name}] prompt ${n} token${n > 1 ? 's' : ''}`;
        const ref = run(o.oracle, ['-m', m.gguf, '--ids', ids, '-n', String(N_GEN), '--threads', String(o.oracleThreads),
          '--logits-out', refLogits], 'llama_oracle');
        if (ref.status !== 0) {
          console.log(`${tag}: FAIL llama_oracle exited ${ref.status}\n${ref.stderr}`);
          failed++;
          continue;
        }
        const gapLine = ref.stderr.split('\n').find((l) => l.includes('top1-top2 gaps:')) ?? '';
        const gaps = gapLine.replace(/.*gaps:/, '').trim().split(/\s+/).map(Number);
        const ours = run(o.parallax, ['generate', '-m', m.hfDir, '--ids', ids, '-n', String(N_GEN), '--temp', '0',
          '--dtype', 'f32', '--threads', String(o.threads), '--ignore-eos', '--print-ids', '--logits-out', ourLogits], 'parallax');
        if (ours.status !== 0) {
          console.log(`${tag}: FAIL parallax generate exited ${ours.status}\n${ours.stderr.slice(-4000)}`);
          failed++;
          continue;
        }
        const refIds = lastLine(ref.stdout);
        const ourIds = lastLine(ours.stdout);
        const a = readF32(refLogits);
        let b;
        try {
          b = readF32(ourLogits);
        } catch (e) {
          console.log(`${tag}: FAIL no logits from parallax (${e.message})`);
          failed++;
          continue;
        }
        let maxDiff = 0, maxRef = 0, argDiff = -1, nonFinite = 0;
        if (a.length === b.length) {
          for (let i = 0; i < a.length; i++) {
            if (!Number.isFinite(b[i])) { nonFinite++; continue; }
            const d = Math.abs(a[i] - b[i]);
            if (d > maxDiff) { maxDiff = d; argDiff = i; }
            maxRef = Math.max(maxRef, Math.abs(a[i]));
          }
        }
        const ratio = maxDiff / maxRef;
        const logitsOk = a.length === b.length && nonFinite === 0 && ratio <= TOL;
        const idsOk = refIds === ourIds;
        const status = logitsOk && idsOk ? 'ok' : 'FAIL';
        console.log(`${tag}: ${status}  max|diff| ${maxDiff.toExponential(3)} (at id ${argDiff}), ` +
          `max|logit| ${maxRef.toFixed(4)}, ratio ${ratio.toExponential(3)} (limit ${TOL}), ` +
          `ids ${idsOk ? 'identical' : 'DIFFER'}; llama.cpp ${ref.secs.toFixed(1)} s, parallax ${ours.secs.toFixed(1)} s`);
        if (a.length !== b.length) console.log(`  logits length: llama.cpp ${a.length}, parallax ${b.length}`);
        if (nonFinite) console.log(`  parallax gave ${nonFinite} non-finite logits`);
        if (!idsOk) {
          const r = refIds.split(','), u = ourIds.split(',');
          const k = r.findIndex((x, i) => x !== u[i]);
          console.log(`  llama.cpp: ${refIds}\n  parallax:  ${ourIds}`);
          if (k >= 0) console.log(`  first difference at step ${k}; llama.cpp's top1-top2 gap there: ${gaps[k]}`);
        } else {
          console.log(`  ids: ${refIds}  (smallest llama.cpp top1-top2 gap ${Math.min(...gaps).toPrecision(3)})`);
        }
        if (status !== 'ok') failed++;
        if (failed && !o.keepGoing) break;
      }
      if (process.env.PX_DROP_MODELS === '1') dropModel(o, name);
      if (failed && !o.keepGoing) break;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`oracle_llamacpp: ${failed ? `${failed} case(s) FAILED` : 'all cases passed'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}

main();
