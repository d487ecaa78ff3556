#!/usr/bin/env bash
# A short scripted session on an embedded SQLite file, showing real output.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
mkdir -p .demo
rm -f .demo/creditctl.db .demo/creditctl.db-wal .demo/creditctl.db-shm
export CREDITCTL_DATABASE_URL="sqlite:///$PWD/.demo/creditctl.db"
export CREDITCTL_CONFIG="$PWD/creditctl.toml.example"
export CREDITCTL_OPERATOR=demo
cc() { echo; echo "\$ creditctl $*"; "$VENV/bin/creditctl" "$@"; }

cc init
cc users add alice@example.com --id alice --name "Alice Render"
cc users add bob@example.com --id bob --plan ultimate
cc credits grant alice 10 --reason "launch bonus" --expires 2099-01-01
cc credits deduct alice 60 --ref render-1
cc credits deduct alice 50 --ref render-2 --key render-2
echo; echo "# the same request again, with the same key, changes nothing:"
cc credits deduct alice 50 --ref render-2 --key render-2
echo; echo "# deduct until refused:"
set +e
cc credits deduct alice 10 --ref render-3
echo "exit code: $?"
set -e
cc run bob 25 --ref render-4 -- echo "rendering for bob (unlimited plan)"
cc credits balance alice --json
cc account alice
cc audit verify
