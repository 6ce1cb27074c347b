#!/usr/bin/env bash
# Build the Lambda deployment package into build/lambda/ (docs/dev/deploy-contract.md):
# the project's wheel and its dependencies for manylinux x86_64 / CPython 3.11, no Docker needed.
# The CDK Lambda stack (Code.from_asset) and the SAM template (CodeUri) both read this directory.
# Usage: scripts/build-lambda.sh [PYTHON]   (PYTHON defaults to .venv/bin/python, then python3)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
out="$root/build/lambda"
wheels="$root/build/lambda-wheel"

rm -rf "$out" "$wheels"
mkdir -p "$out" "$wheels"

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$root"
wheel="$(ls "$wheels"/mcp_bastion-*.whl)"

# Binary wheels for the Lambda platform only (never a local build for this machine's platform).
# The `aws` extra (Mangum, boto3) is used when the project defines it; pip notes a missing extra and goes on.
"$python" -m pip install --quiet --no-compile \
  --target "$out" \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --implementation cp --python-version 3.11 --abi cp311 \
  --only-binary=:all: \
  "${wheel}[aws]"

# Tests, caches and the ripgrep binary are dead weight on Lambda (the GitHub API backend searches there).
find "$out" -type d -name "__pycache__" -prune -exec rm -rf {} +
rm -f "$out/bin/rg"

test -f "$out/bastion/aws/lambda_handler.py" || {
  echo "build/lambda lacks bastion/aws/lambda_handler.py (the handler the stacks name)" >&2
  exit 1
}
du -sh "$out"
