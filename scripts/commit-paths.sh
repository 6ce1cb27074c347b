#!/usr/bin/env bash
# Commit only the given paths, through a private index, so work that other people have staged in the shared
# index is never swept into this commit. Usage: scripts/commit-paths.sh "message" path [path ...]
set -euo pipefail
message=$1; shift
[ $# -gt 0 ] || { echo "usage: $0 message path..." >&2; exit 2; }
top=$(git rev-parse --show-toplevel)
cd "$top"
index=$(mktemp "${TMPDIR:-/tmp}/bastion-index.XXXXXX")
trap 'rm -f "$index"' EXIT
for attempt in 1 2 3 4 5; do
  parent=$(git rev-parse HEAD)
  GIT_INDEX_FILE=$index git read-tree "$parent"
  GIT_INDEX_FILE=$index git add -A -- "$@"
  tree=$(GIT_INDEX_FILE=$index git write-tree)
  if [ "$tree" = "$(git rev-parse "$parent^{tree}")" ]; then echo "nothing to commit in: $*" >&2; exit 1; fi
  commit=$(git commit-tree "$tree" -p "$parent" -m "$message")
  if git update-ref refs/heads/main "$commit" "$parent" 2>/dev/null; then
    git reset -q -- "$@" 2>/dev/null || true   # the shared index now agrees with HEAD for these paths
    echo "committed $(git rev-parse --short "$commit"): $message"
    exit 0
  fi
  sleep 1   # someone else committed in between: rebuild on the new HEAD
done
echo "could not commit: HEAD kept moving" >&2
exit 1
