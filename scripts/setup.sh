#!/usr/bin/env bash
# Installs everything the project needs on Debian 12: the packages listed in
# scripts/apt-packages.txt (apt-get update runs once, and only when something
# is missing) and the pinned npm packages of oracles/package.json into
# oracles/node_modules (ignored by git). Safe to run again: it does nothing
# when everything is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi

missing=()
while read -r pkg; do
  case "$pkg" in ''|'#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$root/scripts/apt-packages.txt"
# node and npm may come from elsewhere (nodesource, nvm): accept working binaries.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages already installed"
fi

stamp="$root/oracles/node_modules/.parallax-stamp"
if [ ! -f "$stamp" ] || [ "$root/oracles/package.json" -nt "$stamp" ] || \
   { [ -f "$root/oracles/package-lock.json" ] && [ "$root/oracles/package-lock.json" -nt "$stamp" ]; }; then
  echo "setup: installing npm packages into oracles/node_modules"
  if [ -f "$root/oracles/package-lock.json" ]; then
    (cd "$root/oracles" && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$root/oracles" && npm install --no-audit --no-fund --loglevel=error)
  fi
  touch "$stamp"
else
  echo "setup: npm packages already installed"
fi

# llama.h/ggml.h for tools/llama_oracle: the prebuilt libllama of
# @node-llama-cpp/linux-x64 ships no headers; npm node-llama-cpp of the same
# version carries the llama.cpp source it was built from. Only its tarball is
# fetched (npm pack: no dependencies, no install scripts, none of the CUDA/Vulkan
# binary packages a full install would pull in); tools/llama_oracle.cmake
# extracts the headers into the build folder.
nlc_version=$(node -p "require('$root/oracles/node_modules/@node-llama-cpp/linux-x64/package.json').version")
vendor="$root/oracles/node_modules/.parallax-vendor"
if [ ! -f "$vendor/node-llama-cpp-$nlc_version.tgz" ]; then
  echo "setup: fetching node-llama-cpp@$nlc_version (llama.cpp headers for the oracle)"
  rm -rf "$vendor/partial" && mkdir -p "$vendor/partial"
  (cd "$vendor/partial" && npm pack "node-llama-cpp@$nlc_version" --loglevel=error >/dev/null)
  mv "$vendor/partial/node-llama-cpp-$nlc_version.tgz" "$vendor/" && rmdir "$vendor/partial"
fi
