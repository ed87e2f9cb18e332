#!/usr/bin/env bash
# The project's test command (README "Set-up"; .ci/run calls it). Installs what the tests need
# that cargo cannot, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hspq/target}"

# build.rs fetches the prebuilt libduckdb with `npm pack` (see build.rs for why).
if [ -z "${DUCKDB_LIB_DIR:-}" ] && ! command -v npm >/dev/null 2>&1; then
  echo "scripts/test.sh: npm is needed to fetch the prebuilt DuckDB library: apt-get install -y npm (or set DUCKDB_LIB_DIR)" >&2
  exit 2
fi

cargo fmt --all -- --check
cargo test --locked "$@"
