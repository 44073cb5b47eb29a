#!/usr/bin/env bash
# What the application's own statements cost on PostgreSQL, alone: the
# onboarding of a `user_created` job and the mark-sent of a `send_email`
# job, byte for byte from their .sql files, and `SELECT 1` (a round trip and
# nothing else). pgbench runs each prepared, 64 to a transaction (as the
# worker writes them), on 4 connections, committing with
# `synchronous_commit=off` as the worker's bookkeeping connections do; the
# figure is the machine's CPU per statement (PostgreSQL, the kernel and
# pgbench's own few µs), from /proc/stat over the run, so run it on an
# otherwise idle machine. BENCHMARKS.md reads the 64-worker ratio of the
# pipeline bench against it.
#
# usage: bench/pg-statements/run.sh [HOST] [SECONDS]
#   HOST: 127.0.0.1 (TCP, the default) or a socket directory such as /var/run/postgresql
set -euo pipefail
host=${1:-127.0.0.1}
seconds=${2:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
queries=$root/crates/tasuki-app/postgres/queries
schema=tasuki_bench_statements
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PGOPTIONS="-c search_path=$schema -c client_min_messages=warning -c synchronous_commit=off"
psql=(psql -h "$host" -U postgres -d postgres -q -v ON_ERROR_STOP=1)

"${psql[@]}" <<SQL
DROP SCHEMA IF EXISTS $schema CASCADE;
CREATE SCHEMA $schema;
\i '$root/crates/tasuki-app/postgres/migrations/0001_init.sql'
INSERT INTO users (email, age, name, created_at)
    SELECT 'u' || g || '@example.com', 30, 'Ada', now() FROM generate_series(1, 400000) g;
VACUUM ANALYZE users;
SQL

# A transaction of 64 statements, the Nth with its own random key :kN.
script() { # NAME KEYS STATEMENT (with :k for the key)
    {
        for n in $(seq 64); do echo "\\set k$n random(1, $2)"; done
        echo "BEGIN;"
        for n in $(seq 64); do printf '%s;\n' "${3//:k/:k$n}"; done
        echo "COMMIT;"
    } > "$work/$1.sql"
}
one_line() { grep -v '^--' "$1" | tr '\n' ' '; }
onboard=$(one_line "$queries/user/onboard.sql")
onboard=${onboard//\$1/:k}; onboard=${onboard//\$2/now()}
onboard=${onboard//\$3/\'[\"chess-clubs\"]\'::jsonb}; onboard=${onboard//\$4/\'europe\'}
onboard=${onboard//\$5/\'gold\'}; onboard=${onboard//\$6/\'welcome\'}
onboard=${onboard//\$7/\'Welcome\'}; onboard=${onboard//\$8/\'Hello\'}
mark_sent=$(one_line "$queries/email/mark_sent.sql")
mark_sent=${mark_sent//\$1/:k}; mark_sent=${mark_sent//\$2/now()}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
measure() { # NAME PGBENCH_ARGS...
    local name=$1 before after out done tps
    shift
    before=$(busy)
    out=$(pgbench -h "$host" -U postgres -n -M prepared -c 4 -j 1 "$@" -f "$work/$name.sql" postgres)
    after=$(busy)
    done=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<< "$out")
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<< "$out")
    # jiffies are 1/100 s: µs per statement = jiffies * 10,000 / statements
    awk -v n="$name" -v j=$((after - before)) -v d="$done" -v t="$tps" \
        'BEGIN { printf "%-12s %8.0f statements/s %6.0f µs of CPU each\n", n, t * 64, j * 10000 / (d * 64) }'
}
script round_trip 1 "SELECT 1 WHERE :k > 0"
measure round_trip -T "$seconds"
script onboard 400000 "$onboard"
measure onboard -T "$seconds" # also fills the outbox that the mark-sent updates
# The mark-sent of a sent email (or of an id that a conflict skipped)
# changes nothing: as many statements as a quarter of the outbox, at random
# ids, so that most find their email pending. It says how many did.
read -r emails last < <("${psql[@]}" -AtF ' ' -c "SELECT count(*), max(id) FROM email_outbox")
script mark_sent "$last" "$mark_sent"
transactions=$((emails / 4 / 64 / 4 + 1))
measure mark_sent -t "$transactions"
"${psql[@]}" -Atc "SELECT format('mark_sent: %s emails sent by %s statements', count(*), $((transactions * 4 * 64))) FROM email_outbox WHERE status = 'sent'"
"${psql[@]}" -c "DROP SCHEMA $schema CASCADE"
