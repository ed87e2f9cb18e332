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

# What the tests need beyond cargo is installed beside the build (a new machine spends minutes
# on each; the build keeps both cores busy meanwhile), and waited for before the tests run.
prepare_system() {
  # Chromium, which renders `hspq report` in tests/report.rs.
  if ! command -v chromium >/dev/null 2>&1; then
    echo "scripts/test.sh: installing chromium for the hspq report tests" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  # psql, the PostgreSQL client the `hspq serve` tests connect with (tests/serve.rs).
  if ! command -v psql >/dev/null 2>&1; then
    echo "scripts/test.sh: installing postgresql-client (psql) for the hspq serve tests" >&2
    apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null
  fi
  # pgjdbc, the JDBC driver BI tools load, and a JDK to run its check (tests/serve_drivers.rs).
  if [ ! -f /usr/share/java/postgresql.jar ] || ! command -v java >/dev/null 2>&1; then
    echo "scripts/test.sh: installing libpostgresql-jdbc-java (pgjdbc) for the hspq serve tests" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libpostgresql-jdbc-java default-jdk-headless >/dev/null
  fi
}

# Python tools for the tests (an S3-compatible server, the notebook's packages, the DuckDB CLI
# for benchmarks, DuckDB 2.0 for the bundled SQL), in a virtualenv cached by the hash of the
# requirements, so a warm machine skips the install and a new one gets it.
venv="${HSPQ_VENV:-$HOME/.cache/hspq/venv}"
stamp="$venv/.requirements-$(cat tests/requirements.txt notebooks/requirements.txt tests/requirements-duckdb2.txt | sha256sum | cut -c1-16)"
prepare_python() {
  if [ ! -f "$stamp" ]; then
    echo "scripts/test.sh: installing the test tools into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      -r tests/requirements.txt -r notebooks/requirements.txt
    # A second DuckDB cannot share the venv with the first: it goes into a folder of its own
    # that a test puts on PYTHONPATH.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      --target "$venv/duckdb2" -r tests/requirements-duckdb2.txt
    touch "$stamp"
  fi
}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
prepare_system >"$logs/system" 2>&1 &
system=$!
prepare_python >"$logs/python" 2>&1 &
python=$!
# Waits for an install started above; on failure shows its output and stops.
settle() {
  if ! wait "$1"; then
    echo "scripts/test.sh: installing the $2 tools failed:" >&2
    cat "$logs/$2" >&2
    exit 2
  fi
  cat "$logs/$2" >&2
}

export HSPQ_VENV="$venv"
export HSPQ_MOTO_SERVER="$venv/bin/moto_server"

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# cargo-nextest runs the tests side by side (see .config/nextest.toml); plain cargo test runs one
# binary after another, twice as long.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-run "$@"
  settle "$system" system
  settle "$python" python
  cargo nextest run --locked "$@"
else
  echo "scripts/test.sh: cargo-nextest not found, running the tests one binary after another (cargo install cargo-nextest --locked runs them side by side)" >&2
  cargo test --locked --no-run "$@"
  settle "$system" system
  settle "$python" python
  cargo test --locked "$@"
fi
