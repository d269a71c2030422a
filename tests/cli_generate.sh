#!/usr/bin/env bash
# cli_generate.sh PARALLAX MODEL_DIR - `parallax generate` end to end on the
# real tiny model: the greedy ids equal llama.cpp's reference, and each kind of
# bad input gives exit code != 0 with one error line naming the flag or file.
set -u
px=$1 model=$2
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

ref() { # ref INDEX FIELD -> comma-separated ids from reference/greedy_32.json
  node -e 'const r=require(process.argv[1]).results[+process.argv[2]]; console.log(r[process.argv[3]].join(","))' \
    "$(realpath "$model")/reference/greedy_32.json" "$1" "$2"
}
want=$(ref 0 generated_ids)
got=$("$px" generate -m "$model" --ids 1,303,281,269,435,447,275 -n 32 --temp 0 --ignore-eos --print-ids -t 2 2>/dev/null | tail -n 1)
[ "$got" = "$want" ] && ok || bad "greedy ids: got $got want $want"

# -p goes through the tokenizer: all 5 reference prompts give the reference ids,
# and the printed text of prompt 0 is the prompt followed by llama.cpp's continuation
for i in 0 1 2 3 4; do
  text=$(node -e 'process.stdout.write(require(process.argv[1]).results[+process.argv[2]].prompt)' \
    "$(realpath "$model")/reference/greedy_32.json" $i)
  got=$("$px" generate -m "$model" -p "$text" -n 32 --temp 0 --ignore-eos --print-ids 2>/dev/null | tail -n 1)
  [ "$got" = "$(ref $i generated_ids)" ] && ok || bad "-p prompt $i: got $got want $(ref $i generated_ids)"
done
full=$("$px" generate -m "$model" -p "I dream of" -n 32 --temp 0 --ignore-eos 2>/dev/null)
want_text=$(node -e 'const r=require(process.argv[1]).results[0]; process.stdout.write(r.prompt + r.continuation_text)' \
  "$(realpath "$model")/reference/greedy_32.json")
[ "$full" = "$want_text" ] && ok || bad "-p text: got '$full' want '$want_text'"

# same seed, same output; temperature sampling stays in the vocabulary
a=$("$px" generate -m "$model" --ids 1,303 -n 16 --temp 1.0 --seed 7 --print-ids 2>/dev/null | tail -n 1)
b=$("$px" generate -m "$model" --ids 1,303 -n 16 --temp 1.0 --seed 7 --print-ids 2>/dev/null | tail -n 1)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "seeded sampling not reproducible: $a vs $b"

# stops at EOS unless --ignore-eos: prompt 3 of the reference reaches EOS (2) at step 22
ids=$("$px" generate -m "$model" --ids "$(ref 3 prompt_ids)" -n 32 --temp 0 --print-ids 2>/dev/null | tail -n 1)
want3=$(ref 3 generated_ids)
[ "$ids" = "${want3%%,2,*},2" ] && ok || bad "did not stop at EOS: $ids"

# --logits-out writes vocab floats
tmp=$(mktemp -d)
"$px" generate -m "$model" --ids 1,303 -n 1 --temp 0 --logits-out "$tmp/l.f32" >/dev/null 2>&1
[ "$(stat -c %s "$tmp/l.f32" 2>/dev/null)" = 2048 ] && ok || bad "--logits-out did not write 512 floats"

# bad input: non-zero exit, one line on stderr, naming the culprit
expect_error() { # expected_words... -- args...
  local words=() ; while [ "$1" != -- ]; do words+=("$1"); shift; done; shift
  local err rc
  err=$("$px" "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 0 ]; then bad "'$*' succeeded"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then bad "'$*' printed more than one line: $err"; return; fi
  for w in "${words[@]}"; do
    case "$err" in *"$w"*) ;; *) bad "'$*': error '$err' lacks '$w'"; return ;; esac
  done
  ok
}
expect_error "-m" -- generate --ids 1,2
expect_error "--ids" -- generate -m "$model" --ids 1,x,3
expect_error "--dtype" "q7" -- generate -m "$model" --ids 1 --dtype q7
expect_error "-n" -- generate -m "$model" --ids 1 -n -5
expect_error "--temp" -- generate -m "$model" --ids 1 --temp abc
expect_error "--bogus" -- generate -m "$model" --ids 1 --bogus
expect_error "$tmp/nope" "config.json" -- generate -m "$tmp/nope" --ids 1
expect_error "vocabulary" -- generate -m "$model" --ids 1,99999
expect_error "context" -- generate -m "$model" --ids "$(seq -s, 1 200)"
expect_error "unknown command" -- frobnicate
expect_error "needs a value" -- generate -m
# a full disk is an error, not a crash: /dev/full fails at the flush in fclose
expect_error "--logits-out" "/dev/full" -- generate -m "$model" --ids 1,303 -n 1 --logits-out /dev/full

rm -rf "$tmp"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
