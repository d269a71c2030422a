// tokenizer_bench.mjs - the npm side of the tokenizer benchmark: writes a
// seeded ~1.2 MB mixed text (English prose, code, numbers, CJK, other
// scripts, emoji) if asked, and measures @huggingface/tokenizers' load time
// and encode throughput on it, for comparison with tests/bench_tokenizer.c
// run on the same file in the same session.
//
//   node tests/tokenizer_bench.mjs --make-text FILE
//   node tests/tokenizer_bench.mjs MODEL_DIR FILE [repeats]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const args = process.argv.slice(2);

function makeText(file) {
  let s = 42 >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const words = ("the of and to in a is that for it as was with be by on not he I this are or his from at which but have " +
    "an they you were her she there been one all we their has would when if can more will what about so no up out who " +
    "model tokenizer server request token network latency pipeline layer memory cluster scheduler throughput").split(" ");
  const code = ["for (int i = 0; i < n; i++) {\n    sum += x[i];\n}\n", "def f(x):\n    return x ** 2\n",
    "if err != nil {\n\treturn err\n}\n", "const y = await fetch(url, { method: \"POST\" });\n"];
  const cjk = ["我们今天讨论分布式推理系统。", "東京は日本の首都です。", "대규모 언어 모델을 서비스합니다."];
  const other = ["Привет, как дела? ", "مرحبا بالعالم ", "Ελληνικά κείμενα ", "café naïve résumé ", "😀🚀✨ "];
  let out = "";
  while (out.length < 1_200_000) {
    const r = rand();
    if (r < 0.75) {
      let sent = "";
      const n = 5 + Math.floor(rand() * 20);
      for (let i = 0; i < n; i++) sent += (i ? " " : "") + pick(words);
      out += sent.charAt(0).toUpperCase() + sent.slice(1) + pick([". ", ", ", "? ", "! ", ".\n", ".\n\n"]);
    } else if (r < 0.85) out += pick(code);
    else if (r < 0.92) out += pick(cjk);
    else if (r < 0.97) out += pick(other);
    else out += String(Math.floor(rand() * 1e6)) + " ";
  }
  fs.writeFileSync(file, out);
  console.log(`${file}: ${Buffer.byteLength(out)} bytes of mixed text`);
}

if (args[0] === "--make-text") {
  makeText(args[1]);
} else {
  const [dir, file, reps = "3"] = args;
  const require = createRequire(path.resolve("oracles/package.json"));
  const m = await import(require.resolve("@huggingface/tokenizers"));
  const Tokenizer = m.Tokenizer ?? m.default.Tokenizer;
  const text = fs.readFileSync(file, "utf8"), bytes = Buffer.byteLength(text);
  let t0 = performance.now();
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const tok = new Tokenizer(json, fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {});
  const load = (performance.now() - t0) / 1000;
  const times = [];
  let n = 0;
  for (let r = 0; r < Number(reps); r++) {
    t0 = performance.now();
    n = tok.encode(text, { add_special_tokens: false }).ids.length;
    times.push((performance.now() - t0) / 1000);
  }
  const best = Math.min(...times);
  console.log(`npm @huggingface/tokenizers ${path.basename(path.dirname(dir)) || dir}: load ${load.toFixed(3)} s, ` +
    `encode ${bytes} bytes -> ${n} tokens: best ${best.toFixed(3)} s = ${(bytes / best / 1e6).toFixed(2)} MB/s, ` +
    `${(n / best / 1e3).toFixed(0)}k tokens/s`);
}
