#!/usr/bin/env node
// compare_llamacpp.mjs - our speed against llama.cpp's on this machine, in one
// run (issue 5). Not part of CI's pass/fail: speeds on a shared machine are
// noisy, so every number is min/median/max of -r runs and each of our tests
// runs right next to llama.cpp's matching one.
//
//   node scripts/compare_llamacpp.mjs [--build-dir build] [--models-dir DIR]
//        [--shapes qwen3-0.6b,llama-3.2-1b] [--types f16,q8_0,q4_0] [--threads 1,2]
//        [-p 128,512] [-n 64] [-r 3] [--kv f16|f32] [--accuracy] [--no-speed]
//
// Needs the release build with tools/llama_bench and tools/llama_oracle
// (scripts/setup.sh fetches the prebuilt libllama of npm @node-llama-cpp/linux-x64
// and the headers of the same llama.cpp release).
//  1. tools/make_random_model writes each shape once as a Hugging Face
//     directory (bf16) and an F32 GGUF with the same weights (cached in
//     BUILD/oracle-models, shared with tests/oracle_llamacpp.mjs).
//  2. llama_bench quantize (llama_model_quantize of the same libllama) makes
//     the F16, Q8_0 and Q4_0 GGUFs; Q4_0 with --pure, so token_embd/output are
//     Q4_0 too, as ours are (like with like).
//  3. For each shape x type x threads: `parallax bench-model --dtype T` on the
//     HF directory (quantized on load), then `llama_bench bench` on the GGUF of
//     the matching type; both: pp128, pp512, tg64 (prefill into an empty cache;
//     decode from an empty cache with logits every token), F16 KV cache
//     (llama-bench's default; --kv f32 for both to change it), one warm-up.
//  4. Prints the table with the ratio ours / llama.cpp of the medians, and for
//     decode the memory-bandwidth roofline: read bandwidth (measured by
//     bench-model with the same threads, in the same run) / bytes of weights
//     one decode step reads, and both engines' tg64 as a fraction of it.
// --accuracy adds, per shape: the logits at the last position of a 256-token
// prompt from f32, q8_0 and q4_0 weights in both engines, and each quantized
// result's RMS / max error relative to its own engine's f32 (in units of the
// f32 logits' standard deviation) and whether the top-1 id agrees.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const OUR_DTYPE = { f16: 'f16', bf16: 'bf16', q8_0: 'q8_0', q4_0: 'q4_0' };
const LLAMA_TYPE = { f16: 'f16', bf16: 'bf16', q8_0: 'q8_0', q4_0: 'q4_0' };

function parseArgs(argv) {
  const o = { build: 'build', shapes: ['qwen3-0.6b', 'llama-3.2-1b'], types: ['f16', 'q8_0', 'q4_0'], threads: [1, 2],
    pp: '128,512', n: 64, r: 3, kv: 'f16', accuracy: false, speed: true };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--build-dir') o.build = v();
    else if (a === '--models-dir') o.models = v();
    else if (a === '--shapes') o.shapes = v().split(',');
    else if (a === '--types') o.types = v().split(',');
    else if (a === '--threads') o.threads = v().split(',').map(Number);
    else if (a === '-p') o.pp = v();
    else if (a === '-n') o.n = Number(v());
    else if (a === '-r') o.r = Number(v());
    else if (a === '--kv') o.kv = v();
    else if (a === '--accuracy') o.accuracy = true;
    else if (a === '--no-speed') o.speed = false;
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(new URL(import.meta.url)).toString().split('\n').filter((l) => l.startsWith('//')).join('\n'));
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  o.build = path.resolve(o.build);
  o.models ??= path.join(o.build, 'oracle-models');
  for (const t of o.types) if (!OUR_DTYPE[t]) throw new Error(`unknown type ${t}`);
  return o;
}

function sh(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what} failed (status ${r.status}):\n${cmd} ${args.join(' ')}\n${(r.stderr || '').slice(-3000)}`);
  return r.stdout;
}

const fileHash = (p) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

// the same cache layout and stamp as tests/oracle_llamacpp.mjs
function ensureModel(o, name) {
  const hfDir = path.join(o.models, name), gguf = path.join(o.models, `${name}.gguf`);
  const stampFile = path.join(o.models, `${name}.stamp`), gen = ['--shape', name];
  const stamp = JSON.stringify({ generator: fileHash(o.makeModel), args: gen });
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp && fs.existsSync(gguf) &&
      fs.existsSync(path.join(hfDir, 'config.json'))) return { hfDir, gguf };
  fs.mkdirSync(o.models, { recursive: true });
  for (const p of [stampFile, hfDir, gguf]) fs.rmSync(p, { recursive: true, force: true });
  console.error(`[${name}] writing the random-weight model (HF bf16 + F32 GGUF)`);
  sh(o.makeModel, [...gen, '--hf-out', hfDir, '--gguf-out', gguf, '--quiet'], 'make_random_model');
  fs.writeFileSync(stampFile, stamp);
  return { hfDir, gguf };
}

function ensureQuantized(o, name, src, type) {
  const out = path.join(o.models, `${name}-${type}.gguf`), stampFile = `${out}.stamp`;
  const stamp = `${fs.statSync(src).mtimeMs} ${type} pure`;
  if (fs.existsSync(out) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp) return out;
  console.error(`[${name}] llama_model_quantize -> ${type}`);
  sh(o.llamaBench, ['quantize', src, out, LLAMA_TYPE[type], ...(type === 'q4_0' ? ['--pure'] : [])], 'quantize');
  fs.writeFileSync(stampFile, stamp);
  return out;
}

// "pp512 t=2: min A med B max C tok/s" lines -> { pp512: {min, med, max} }
function parseBench(text) {
  const res = {};
  for (const m of text.matchAll(/^(pp\d+|tg\d+) t=\d+: min ([\d.]+) med ([\d.]+) max ([\d.]+)/gm))
    res[m[1]] = { min: +m[2], med: +m[3], max: +m[4] };
  const bw = text.match(/^bandwidth ([\d.]+) GB\/s roofline ([\d.]+) tok\/s/m);
  if (bw) res.bandwidth = +bw[1], res.roofline = +bw[2];
  const pt = text.match(/ per_token (\d+)/);
  if (pt) res.perToken = +pt[1];
  return res;
}

const fmt = (x) => (x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const cell = (s) => (s ? `${fmt(s.med)} [${fmt(s.min)}-${fmt(s.max)}]` : '-');

function speed(o, shape, model) {
  const rows = [];
  const tests = [...o.pp.split(',').map((p) => `pp${p}`), `tg${o.n}`];
  for (const type of o.types) {
    const gguf = ensureQuantized(o, shape, model.gguf, type);
    for (const t of o.threads) {
      const common = ['-t', String(t), '-p', o.pp, '-n', String(o.n), '-r', String(o.r)];
      console.error(`[${shape}] ${type} t=${t}: parallax bench-model, then llama.cpp`);
      const ours = parseBench(sh(o.parallax, ['bench-model', '-m', model.hfDir, '--dtype', OUR_DTYPE[type],
        '--kv-dtype', o.kv, ...common], 'parallax bench-model'));
      const theirs = parseBench(sh(o.llamaBench, ['bench', '-m', gguf, '--kv', o.kv, ...common], 'llama_bench'));
      for (const test of tests) {
        const a = ours[test], b = theirs[test];
        const row = { shape, type, t, test, ours: a, theirs: b, ratio: a && b ? a.med / b.med : undefined };
        if (test.startsWith('tg') && ours.roofline) {
          row.roofline = ours.roofline;
          row.bandwidth = ours.bandwidth;
        }
        rows.push(row);
      }
    }
  }
  return rows;
}

function printTable(rows, o) {
  console.log(`\nparallax vs llama.cpp (${o.kv.toUpperCase()} KV cache; tokens/s: median [min-max] of ${o.r}; ratio = median/median)`);
  console.log('| model | weights | threads | test | parallax | llama.cpp | ratio | roofline (GB/s) | parallax/roofline | llama.cpp/roofline |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const roof = r.roofline ? `${fmt(r.roofline)} (${r.bandwidth.toFixed(1)})` : '';
    const fo = r.roofline && r.ours ? `${(100 * r.ours.med / r.roofline).toFixed(0)}%` : '';
    const ft = r.roofline && r.theirs ? `${(100 * r.theirs.med / r.roofline).toFixed(0)}%` : '';
    console.log(`| ${r.shape} | ${r.type} | ${r.t} | ${r.test} | ${cell(r.ours)} | ${cell(r.theirs)} | ` +
      `${r.ratio ? r.ratio.toFixed(2) : '-'} | ${roof} | ${fo} | ${ft} |`);
  }
}

// ---- accuracy: logits of a 256-token prompt, quantized vs f32, in each engine ----

function promptIds(n, vocab) {
  let x = 20240611n;
  const M = (1n << 64n) - 1n, ids = [];
  for (let i = 0; i < n; i++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & M;
    ids.push(Number((x >> 33n) % BigInt(vocab)));
  }
  return ids;
}

function readF32(p) {
  const b = fs.readFileSync(p);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function errors(ref, got) {
  let mean = 0;
  for (const v of ref) mean += v;
  mean /= ref.length;
  let v2 = 0, e2 = 0, emax = 0, a = 0, b = 0;
  for (let i = 0; i < ref.length; i++) {
    v2 += (ref[i] - mean) ** 2;
    e2 += (got[i] - ref[i]) ** 2;
    emax = Math.max(emax, Math.abs(got[i] - ref[i]));
    if (ref[i] > ref[a]) a = i;
    if (got[i] > got[b]) b = i;
  }
  const sd = Math.sqrt(v2 / ref.length);
  return { rms: Math.sqrt(e2 / ref.length) / sd, max: emax / sd, top1: a === b };
}

function accuracy(o, shape, model) {
  const vocab = JSON.parse(fs.readFileSync(path.join(model.hfDir, 'config.json'), 'utf8')).vocab_size;
  const ids = promptIds(256, vocab).join(','), tmp = fs.mkdtempSync(path.join(o.build, 'compare-'));
  const out = {};
  try {
    for (const type of ['f32', 'q8_0', 'q4_0']) {
      const gguf = type === 'f32' ? model.gguf : ensureQuantized(o, shape, model.gguf, type);
      const lf = path.join(tmp, `llama-${type}.f32`), pf = path.join(tmp, `ours-${type}.f32`);
      sh(o.oracle, ['-m', gguf, '--ids', ids, '-n', '1', '--threads', '2', '--logits-out', lf], 'llama_oracle');
      sh(o.parallax, ['generate', '-m', model.hfDir, '--ids', ids, '-n', '1', '--temp', '0', '--dtype', type,
        '--threads', '2', '--logits-out', pf], 'parallax generate');
      out[type] = { llama: readF32(lf), ours: readF32(pf) };
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`\n[${shape}] logits at the last of 256 prompt tokens, error vs the same engine's f32 (in f32-logit standard deviations)`);
  console.log('| weights | parallax rms | parallax max | parallax top-1 = f32 | llama.cpp rms | llama.cpp max | llama.cpp top-1 = f32 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const type of ['q8_0', 'q4_0']) {
    const a = errors(out.f32.ours, out[type].ours), b = errors(out.f32.llama, out[type].llama);
    console.log(`| ${type} | ${a.rms.toFixed(4)} | ${a.max.toFixed(3)} | ${a.top1 ? 'yes' : 'no'} | ${b.rms.toFixed(4)} | ` +
      `${b.max.toFixed(3)} | ${b.top1 ? 'yes' : 'no'} |`);
  }
  const f = errors(out.f32.llama, out.f32.ours);
  console.log(`f32: parallax vs llama.cpp rms ${f.rms.toExponential(2)}, max ${f.max.toExponential(2)}`);
}

function main() {
  const o = parseArgs(process.argv);
  o.parallax = path.join(o.build, 'parallax');
  o.makeModel = path.join(o.build, 'tools', 'make_random_model');
  o.llamaBench = path.join(o.build, 'tools', 'llama_bench');
  o.oracle = path.join(o.build, 'tools', 'llama_oracle');
  for (const p of [o.parallax, o.makeModel, o.llamaBench, o.oracle])
    if (!fs.existsSync(p)) {
      console.error(`compare_llamacpp: missing ${p} (release build after scripts/setup.sh)`);
      process.exit(1);
    }
  const t0 = Date.now(), rows = [];
  console.log(`machine: ${fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)[1]}, ` +
    `${fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm).length} CPUs; load average ` +
    `${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  for (const shape of o.shapes) {
    const model = ensureModel(o, shape);
    if (o.speed) rows.push(...speed(o, shape, model));
    if (o.accuracy) accuracy(o, shape, model);
  }
  if (rows.length) printTable(rows, o);
  console.log(`\ncompare_llamacpp: done in ${((Date.now() - t0) / 60000).toFixed(1)} min; load average now ` +
    `${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
}

main();
