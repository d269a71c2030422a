#!/usr/bin/env bash
# cli_bench.sh PARALLAX MODEL_DIR - `parallax bench` against `parallax serve` on
# the real tiny model for a few seconds: every request completes, the report is
# sane (tokens = requests x max_tokens at every level, latencies ordered,
# prompts of the asked length), and it agrees with the server's own /metrics
# (generated tokens, requests that ended by length, no prefix-cache hits since
# prompts never repeat). Then the error paths: bad flags exit 2 with one line,
# an unreachable server exits 1. Skips (77) without node or curl.
set -u
px=$1 model=$2
command -v node >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

"$px" serve -m "$model" --port 0 -t 2 >"$tmp/serve.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 1 300); do
  url=$(sed -n 's/.* on \(http:\/\/[^ ]*\) .*/\1/p' "$tmp/serve.log" | head -n 1)
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/serve.log" >&2; echo "FAIL: parallax serve did not start" >&2; exit 1; }

metric() { # metric NAME -> its value (summed over labels matching the optional filter $2)
  curl -s "$url/metrics" | awk -v n="parallax_$1" -v f="${2:-}" \
    '$1 == n || (index($1, n "{") == 1 && index($1, f) > 0) { s += $2 } END { printf "%d\n", s }'
}
gen0=$(metric generation_tokens_total) len0=$(metric requests_finished_total 'reason="length"')
hit0=$(metric prefix_cache_hits_tokens_total)

max_tokens=24 prompt=20
"$px" bench -u "$url" -c 1,4 --duration 1.5 --prompt-ids 512 --prompt-tokens $prompt -n $max_tokens \
  --warmup 0 --json "$tmp/bench.json" >"$tmp/bench.out" 2>"$tmp/bench.err"
rc=$?
[ $rc -eq 0 ] && ok || { bad "bench exited $rc"; cat "$tmp/bench.out" "$tmp/bench.err" >&2; }
grep -q "concurrency 4:" "$tmp/bench.err" && ok || bad "no progress lines on stderr"
grep -Eq '^ +4 +[0-9]+ +0 ' "$tmp/bench.out" && ok || bad "no summary row for concurrency 4: $(cat "$tmp/bench.out")"

# the report: per level, all completed, tokens = requests x max_tokens, sane latencies
check=$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const M = +process.argv[2], P = +process.argv[3], errs = [];
  if (r.levels.length !== 2) errs.push("levels: " + r.levels.length);
  let tokens = 0, reqs = 0;
  for (const l of r.levels) {
    const c = "c=" + l.concurrency + ": ";
    if (l.requests < l.concurrency) errs.push(c + "only " + l.requests + " requests");
    if (l.completed !== l.requests || l.failed !== 0) errs.push(c + l.completed + "/" + l.requests + " completed");
    if (l.output_tokens !== l.requests * M) errs.push(c + "tokens " + l.output_tokens + " != " + l.requests + " x " + M);
    if (l.short_outputs !== 0) errs.push(c + "short outputs");
    if (l.prompt_tokens_mean !== P) errs.push(c + "prompt tokens " + l.prompt_tokens_mean);
    if (!(l.output_tok_s > 0) || Math.abs(l.output_tok_s * l.wall_s - l.output_tokens) > 1e-6 * l.output_tokens)
      errs.push(c + "tok/s " + l.output_tok_s + " x wall " + l.wall_s);
    for (const k of ["ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"]) {
      const s = l[k];
      if (!(s.n > 0 && s.min >= 0 && s.min <= s.p50 && s.p50 <= s.p99 && s.p99 <= s.max && s.mean >= s.min && s.mean <= s.max))
        errs.push(c + k + " " + JSON.stringify(s));
    }
    if (l.ttft_ms.n !== l.requests - l.no_text || l.e2e_ms.n !== l.requests) errs.push(c + "latency samples");
    if (!(l.e2e_ms.min >= l.ttft_ms.min && l.e2e_ms.max <= l.wall_s * 1000 + 1)) errs.push(c + "e2e outside ttft..wall");
    tokens += l.output_tokens; reqs += l.requests;
  }
  console.log(errs.length ? "ERR " + errs.join("; ") : "OK " + tokens + " " + reqs);
' "$tmp/bench.json" $max_tokens $prompt)
case "$check" in OK*) ok ;; *) bad "report: $check" ;; esac
read -r _ tokens reqs <<<"$check"

# the server counted the same
gen=$(( $(metric generation_tokens_total) - gen0 ))
len=$(( $(metric requests_finished_total 'reason="length"') - len0 ))
hit=$(( $(metric prefix_cache_hits_tokens_total) - hit0 ))
[ "$gen" = "${tokens:-x}" ] && ok || bad "server generated $gen tokens, bench counted ${tokens:-?}"
[ "$len" = "${reqs:-x}" ] && ok || bad "server finished $len requests by length, bench sent ${reqs:-?}"
[ "$hit" = 0 ] && ok || bad "prefix cache hit $hit tokens: prompts repeated"

# chat route and text prompts (the tiny model has no chat template: every request fails -> exit 1)
"$px" bench -u "$url/v1" -c 2 --requests 4 --prompt-tokens 8 -n 4 -q >"$tmp/text.out" 2>&1 && ok || bad "text prompts: $(cat "$tmp/text.out")"
"$px" bench -u "$url" --chat -c 1 --requests 1 -n 4 -q >"$tmp/chat.out" 2>&1
[ $? -eq 1 ] && grep -q "chat template" "$tmp/chat.out" && ok || bad "chat without a template: $(cat "$tmp/chat.out")"
# a report that cannot be written (full disk) fails the run with a message, never a crash
"$px" bench -u "$url" -c 1 --requests 2 --prompt-tokens 8 -n 4 -q --json /dev/full >"$tmp/full.out" 2>&1
[ $? -eq 1 ] && grep -q -- "--json: cannot write /dev/full: No space left" "$tmp/full.out" && ok || bad "--json /dev/full: $(cat "$tmp/full.out")"

# usage errors: exit 2, one line naming the flag
expect_usage() { # word -- args...
  local w=$1; shift 2
  local err rc
  err=$("$px" bench "$@" 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && case "$err" in *"$w"*) true ;; *) false ;; esac \
    && ok || bad "bench $*: rc $rc, '$err'"
}
expect_usage "--concurrency" -- --concurrency 0
expect_usage "--max-tokens" -- --max-tokens x
expect_usage "--prompt-ids" -- --chat --prompt-ids 100
expect_usage "--url" -- --url ftp://x
expect_usage "--frobnicate" -- --frobnicate

# a server that is not there: exit 1 and say so
kill "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=
err=$("$px" bench -u "$url" -c 1 --requests 1 -q 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && case "$err" in *"warmup request failed"*) true ;; *) false ;; esac && ok || bad "no server: rc $rc, '$err'"

echo "cli_bench: $passed passed, $failed failed"
[ $failed -eq 0 ]
