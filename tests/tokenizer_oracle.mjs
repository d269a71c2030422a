// tokenizer_oracle.mjs - writes the expected token ids and decoded texts of a
// test corpus, computed by independent tokenizer implementations (npm
// @huggingface/tokenizers, cross-checked with @lenml/tokenizers), for
// test_tokenizer_oracle.c to compare with ours.
//
//   node tests/tokenizer_oracle.mjs MODEL_DIR OUT.json [--random N] [--seed S] [--decode-random N]
//
// The corpus is a curated edge-case list plus N random strings from a seeded
// generator that mixes scripts, whitespace, digits, emoji (with ZWJ and skin
// tones), combining marks, contractions and the model's special tokens.
// Texts are stored as hex of their UTF-8 bytes so that every byte survives.
// With --decode-random N it also adds N random id sequences and their
// decoded text (byte-level models only: for SentencePiece byte fallback
// @huggingface/tokenizers replaces invalid UTF-8 differently from Rust).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.resolve("oracles/package.json"));
const load = async (name) => {
  const m = await import(require.resolve(name));
  return m.default && !m.Tokenizer && !m.TokenizerLoader ? m.default : m;
};
const { Tokenizer } = await load("@huggingface/tokenizers");
const lenml = await load("@lenml/tokenizers");

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const [modelDir, outPath] = args;
if (!modelDir || !outPath) {
  console.error("usage: node tests/tokenizer_oracle.mjs MODEL_DIR OUT.json [--random N] [--seed S] [--decode-random N]");
  process.exit(2);
}
const nRandom = opt("--random", 10000), seed = opt("--seed", 1234), nDecode = opt("--decode-random", 0);

const tokJson = JSON.parse(fs.readFileSync(path.join(modelDir, "tokenizer.json"), "utf8"));
const cfgPath = path.join(modelDir, "tokenizer_config.json");
const tokCfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
const hf = new Tokenizer(tokJson, tokCfg);
const lm = lenml.TokenizerLoader.fromPreTrained({ tokenizerJSON: tokJson, tokenizerConfig: tokCfg });

// ---- seeded generator (mulberry32) ----
let state = seed >>> 0;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const range = (lo, hi) => String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));

const specials = tokJson.added_tokens.map((t) => t.content);
const words = ["the", "The", "hello", "world", "tokenizer", "don't", "I'm", "they're", "we've", "you'll", "it's",
  "HELLO", "naïve", "café", "Zürich", "straße", "東京", "こんにちは", "안녕하세요", "привет", "مرحبا", "שלום",
  "नमस्ते", "สวัสดี", "Ελληνικά", "function", "return", "x += 1;", "<div>", "http://example.com/a?b=c",
  "user@example.com", "3.14159", "1,000,000", "2024-01-01", "    ", "\t", "\n", "\r\n", "...", "—", "“quoted”"];
// Each unit is a small random piece of text of one kind.
const units = [
  () => pick(words),
  () => " ".repeat(1 + Math.floor(rand() * 4)),
  () => pick(["\n", "\n\n", "\t", "\r\n", " \n", "\n ", "\u00a0", "\u3000", "\u2009", "\u0085", "\u000b", "\u000c", "\u180e", "\u200b", "\ufeff"]),
  () => String(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 8)))),
  () => range(0x21, 0x7e) + range(0x21, 0x7e),
  () => range(0x61, 0x7a).repeat(1 + Math.floor(rand() * 3)) + range(0x41, 0x5a),
  () => range(0xc0, 0x17f) + range(0xc0, 0x24f),                 // Latin-1 / Latin Extended
  () => pick(["e", "a", "o", "n"]) + range(0x300, 0x36f),       // combining marks
  () => (range(0xc0, 0x17f) + range(0x1e00, 0x1eff)).normalize("NFD"), // decomposed letters (NFC recomposes)
  () => range(0x1100, 0x1112) + range(0x1161, 0x1175) + (rand() < 0.5 ? range(0x11a8, 0x11c2) : ""), // Hangul jamo
  () => pick(["\u0b95\u0bc6\u0bbe", "\u0d15\u0d46\u0d3e", "\u212b", "\u2126", "\u212a", "\u0344", "\u1e9b\u0323",
    "\u0958", "a\u0328\u0301\u0323", "\u00c5\u030a"]),       // two-part vowels, singletons, reordering
  () => range(0x391, 0x3c9) + range(0x410, 0x44f),               // Greek, Cyrillic
  () => range(0x5d0, 0x5ea) + range(0x627, 0x64a),               // Hebrew, Arabic
  () => range(0x905, 0x939) + range(0x93e, 0x94c),               // Devanagari with vowel signs
  () => range(0xe01, 0xe2e) + range(0xe30, 0xe39),               // Thai
  () => range(0x4e00, 0x9fa5).repeat(1) + range(0x4e00, 0x9fa5), // CJK
  () => range(0x3041, 0x3096) + range(0x30a1, 0x30fa),           // kana
  () => range(0xac00, 0xd7a3),                                   // Hangul syllables
  () => range(0x1f300, 0x1f64f),                                 // emoji
  () => pick(["👨\u200d👩\u200d👧", "👍🏽", "❤️", "🏳️\u200d🌈", "🇫🇷", "1️⃣"]),
  () => pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re"]),
  () => range(0x2000, 0x206f) + range(0x20a0, 0x20bf),           // punctuation, currency
  () => range(0x2190, 0x22ff),                                   // arrows, math
  () => range(0xff01, 0xff5e),                                   // fullwidth forms
  () => pick(specials.length ? specials : ["<s>"]),
  // astral letters from blocks old enough (Unicode <= 4) that every library here agrees on them:
  // Linear B, Gothic, Deseret, math alphanumerics, CJK extension B
  () => pick([() => range(0x10000, 0x1005d), () => range(0x10330, 0x1034a), () => range(0x10400, 0x1044f),
    () => range(0x1d400, 0x1d6a5), () => range(0x20000, 0x2a6d6)])(),
];
const randomString = () => {
  const n = 1 + Math.floor(rand() * 12);
  let s = "";
  for (let i = 0; i < n; i++) s += pick(units)();
  return s;
};

const edge = [
  "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t\n", "a", "Hello world", "Hello  world  ",
  " leading space", "trailing space ", "12345678901234567890", "1 2 3", "3.14 + 2.71 = 5.85", "don't I'm we're you'll",
  "DON'T I'M", "café naïve résumé", "e\u0301 a\u0300 n\u0303", "Å Å", "中文测试，你好世界。", "日本語のテキスト",
  "한국어 텍스트", "Привет, мир!", "مرحبا بالعالم", "👋🌍 emoji ✨", "👨‍👩‍👧‍👦 family 🏳️‍🌈", "👍🏻👍🏿",
  "\u200b\u200c\u200d\ufeff", "\u00a0\u2007\u202f", "tab\tseparated\tvalues", "line1\nline2\r\nline3\rline4",
  "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>", "<|begin_of_text|><|eot_id|>",
  "text<|im_end|>more", "<think>\nreasoning\n</think>\n\nanswer", "a".repeat(1000), "ab".repeat(700),
  "supercalifragilisticexpialidocious".repeat(20), " ".repeat(300), "\n".repeat(50), "x\u0300".repeat(40),
  "😀".repeat(100), "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "∑∫∂√∞≠≤≥", "\u0000nul\u0001ctrl\u007f", "def f(x):\n    return x**2\n",
  "{\"json\": [1, 2, 3], \"k\": null}", "https://huggingface.co/docs?x=1&y=2#frag", "ﬁ ﬂ ﬀ ℌ ① ㍿",
  "İstanbul ı ǅ ß ẞ", "'s's's 'S 'll've", "1️⃣2️⃣", "Ā ā Ă ă ſ ſt", "\ud83d\ude00 end",
];

const encodeHF = (s, special) => Array.from(hf.encode(s, { add_special_tokens: special }).ids);
const encodeLM = (s, special) => Array.from(lm.encode(s, { add_special_tokens: special }));
const decodeHF = (ids, skip) => (ids.length ? hf.decode(ids, { skip_special_tokens: skip }) : "");
const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

const cases = [];
let disagreements = 0;
const add = (text, kind) => {
  const ids = encodeHF(text, true), plain = encodeHF(text, false);
  const c = { kind, text: hex(text), ids, ids_plain: plain, decoded: hex(decodeHF(plain, false)), decoded_skip: hex(decodeHF(ids, true)) };
  const other = encodeLM(text, true);
  if (!same(other, ids)) {
    c.lenml_ids = other;
    disagreements++;
  }
  cases.push(c);
};
for (const s of edge) add(s, "edge");
for (let i = 0; i < nRandom; i++) add(randomString(), "random");
// a few long mixed texts
for (let i = 0; i < 5; i++) {
  let s = "";
  while (s.length < 5000) s += randomString() + " ";
  add(s, "long");
}

const decodeCases = [];
const vocabSize = [...Object.values(tokJson.model.vocab), ...tokJson.added_tokens.map((t) => t.id)].reduce((a, b) => Math.max(a, b), 0) + 1;
for (let i = 0; i < nDecode; i++) {
  const n = 1 + Math.floor(rand() * 16), ids = [];
  for (let k = 0; k < n; k++) ids.push(Math.floor(rand() * vocabSize));
  decodeCases.push({ ids, decoded: hex(decodeHF(ids, false)), decoded_skip: hex(decodeHF(ids, true)) });
}

fs.writeFileSync(outPath, JSON.stringify({ model: modelDir, seed, oracle: "@huggingface/tokenizers 0.2.0",
  cross_check: "@lenml/tokenizers 3.7.2", disagreements, cases, decode_cases: decodeCases }));
console.log(`${path.basename(outPath)}: ${cases.length} texts, ${decodeCases.length} id sequences, ` +
  `${disagreements} where the two npm tokenizers disagree`);
