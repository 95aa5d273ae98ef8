#!/usr/bin/env bash
# Fetch the Planetoid files ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}.
#
# Usage: scripts/get_datasets.sh [--mirror DIR] [--dest DIR] [NAME...]
#   NAME     cora, citeseer, pubmed (default: cora citeseer)
#   --dest   where the files go (default: datasets/ in the project root)
#   --mirror a folder holding ind.<name>.* to copy from; default $GCN_DATASET_MIRROR,
#            else ../shared/datasets/planetoid next to the project if it exists.
# Without a mirror the files are downloaded from the Planetoid repository
# (https://github.com/kimiyoung/planetoid) with curl or wget.
# Files already present and valid are kept, so running it again is cheap.
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base_url="https://github.com/kimiyoung/planetoid/raw/master/data"
exts=(x y tx ty allx ally graph test.index)

mirror="${GCN_DATASET_MIRROR:-}"
dest="$project_root/datasets"
names=()

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mirror) [[ $# -ge 2 ]] || { echo "error: --mirror needs a folder" >&2; exit 2; }; mirror="$2"; shift 2 ;;
    --dest) [[ $# -ge 2 ]] || { echo "error: --dest needs a folder" >&2; exit 2; }; dest="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) names+=("$(echo "$1" | tr '[:upper:]' '[:lower:]')"); shift ;;
  esac
done
[[ ${#names[@]} -gt 0 ]] || names=(cora citeseer)
for n in "${names[@]}"; do
  case "$n" in
    cora|citeseer|pubmed) ;;
    *) echo "error: unknown dataset '$n' (known: cora, citeseer, pubmed)" >&2; exit 2 ;;
  esac
done
if [[ -z "$mirror" && -d "$project_root/../shared/datasets/planetoid" ]]; then
  mirror="$project_root/../shared/datasets/planetoid"
fi
if [[ -n "$mirror" && ! -d "$mirror" ]]; then
  echo "error: mirror folder '$mirror' does not exist" >&2
  exit 1
fi

# A pickled file must be non-empty, start with the protocol-2 header \x80\x02 and
# end with the STOP opcode '.' (a file cut short is fetched again); test.index is
# plain text and only has to be non-empty.
valid() {
  local file="$1" ext="$2"
  [[ -s "$file" ]] || return 1
  [[ "$ext" == "test.index" ]] && return 0
  [[ "$(head -c 2 "$file" | od -An -tx1 | tr -d ' \n')" == "8002" ]] &&
    [[ "$(tail -c 1 "$file" | od -An -tx1 | tr -d ' \n')" == "2e" ]]
}

download() {
  local url="$1" out="$2"
  if command -v curl > /dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$out" "$url"
  elif command -v wget > /dev/null 2>&1; then
    wget -q -O "$out" "$url"
  else
    echo "error: neither curl nor wget is installed" >&2
    return 1
  fi
}

mkdir -p "$dest"
failed=0
for n in "${names[@]}"; do
  for e in "${exts[@]}"; do
    f="ind.$n.$e"
    target="$dest/$f"
    if valid "$target" "$e"; then
      continue
    fi
    tmp="$target.part.$$"
    if [[ -n "$mirror" && -f "$mirror/$f" ]]; then
      cp "$mirror/$f" "$tmp"
      chmod u+w "$tmp"
      how="copied from $mirror"
    elif download "$base_url/$f" "$tmp"; then
      how="downloaded from $base_url"
    else
      rm -f "$tmp"
      echo "error: could not get $f: not in a mirror${mirror:+ ($mirror)} and the download failed" >&2
      failed=1
      continue
    fi
    if ! valid "$tmp" "$e"; then
      rm -f "$tmp"
      echo "error: $f ($how) is empty, cut short or not a protocol-2 pickle" >&2
      failed=1
      continue
    fi
    mv "$tmp" "$target"
    echo "$f: $how"
  done
done
if [[ $failed -ne 0 ]]; then
  echo "Some files are missing. Pass --mirror DIR (or set GCN_DATASET_MIRROR) to copy them from a local" >&2
  echo "folder, or check the network; gcn-train also accepts --data-root / GCN_DATA_ROOT." >&2
  exit 1
fi
echo "Planetoid data (${names[*]}) ready in $dest"
