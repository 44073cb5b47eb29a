#!/usr/bin/env bash
# What the application's own statements cost on PostgreSQL, alone: the
# onboarding of a `user_created` job and the mark-sent of a `send_email`
# job, byte for byte from their .sql files, and `SELECT 1` (a round trip and
# nothing else). pgbench runs each prepared, 64 to a transaction (as the
# worker writes them), on 4 connections, committing with
# `synchronous_commit=off` as the worker's bookkeeping connections do. The
# `_set` lines run the same 64 jobs' writes as one statement, as the worker
# runs a batch's (`onboard_many.sql`, `mark_sent_many.sql`). The figure is
# the machine's CPU per job (PostgreSQL, the kernel and pgbench's own few
# µs), from /proc/stat over the run, so run it on an otherwise idle machine.
# BENCHMARKS.md reads the 64-worker ratio of the pipeline bench against it.
#
# usage: bench/pg-statements/run.sh [HOST] [SECONDS]
#   HOST: 127.0.0.1 (TCP, the default) or a socket directory such as /var/run/postgresql
#   SECONDS: how long `SELECT 1` runs (10 by default)
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
\i '$root/crates/tasuki-app/postgres/migrations/0004_write_sets.sql'
INSERT INTO users (email, age, name, created_at)
    SELECT 'u' || g || '@example.com', 30, 'Ada', now() FROM generate_series(1, 400000) g;
VACUUM ANALYZE users;
SQL

# 64 random keys :k1 to :k64 between FROM and TO, each from its own 64th of
# the range, so that no two are the same (a set statement writes a row once).
keys() { # FROM TO
    local span=$((($2 - $1 + 1) / 64))
    for n in $(seq 64); do
        echo "\\set k$n random($(($1 + (n - 1) * span)), $(($1 + n * span - 1)))"
    done
}
# A transaction of 64 statements, the Nth with the key :kN.
script() { # NAME FROM TO STATEMENT (with :k for the key)
    {
        keys "$2" "$3"
        echo "BEGIN;"
        for n in $(seq 64); do printf '%s;\n' "${4//:k/:k$n}"; done
        echo "COMMIT;"
    } > "$work/$1.sql"
}
# A transaction of one statement for 64 jobs, with :keys for their keys.
set_script() { # NAME FROM TO STATEMENT
    local keys
    keys=$(for n in $(seq 64); do printf ':k%s,' "$n"; done)
    {
        keys "$2" "$3"
        echo "BEGIN;"
        printf '%s;\n' "${4//:keys/ARRAY[${keys%,}]}"
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
each() { echo "array_fill($1, ARRAY[64])"; }
onboard_set=$(one_line "$queries/user/onboard_many.sql")
onboard_set=${onboard_set//\$1/:keys}; onboard_set=${onboard_set//\$2/$(each "now()")}
onboard_set=${onboard_set//\$3/$(each "'[\"chess-clubs\"]'::jsonb")}
onboard_set=${onboard_set//\$4/$(each "'europe'::text")}; onboard_set=${onboard_set//\$5/$(each "'gold'::text")}
onboard_set=${onboard_set//\$6/$(each "'welcome'::text")}; onboard_set=${onboard_set//\$7/$(each "'Welcome'::text")}
onboard_set=${onboard_set//\$8/$(each "'Hello'::text")}
mark_sent_set=$(one_line "$queries/email/mark_sent_many.sql")
mark_sent_set=${mark_sent_set//\$1/:keys}; mark_sent_set=${mark_sent_set//\$2/$(each "now()")}
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
        'BEGIN { printf "%-14s %8.0f jobs/s %6.0f µs of CPU each\n", n, t * 64, j * 10000 / (d * 64) }'
}
script round_trip 1 64 "SELECT 1 WHERE :k > 0"
measure round_trip -T "$seconds"
# Both fill the outbox that the mark-sents update.
# Each form onboards 79,872 users of its own half of the users (4 clients,
# 312 transactions of 64), so that both meet a user onboarded already as
# often (about 1 in 6).
script onboard 1 200000 "$onboard"
measure onboard -t 312
set_script onboard_set 200001 400000 "$onboard_set"
measure onboard_set -t 312
# The mark-sent of a sent email (or of an id that a conflict skipped)
# changes nothing. The outbox is numbered again without gaps, each form
# takes half of its ids, and as many jobs as a quarter of its half, at
# random, so that most find their email pending. It says how many did.
"${psql[@]}" <<SQL
CREATE TEMP TABLE outbox AS SELECT * FROM email_outbox ORDER BY id;
TRUNCATE email_outbox RESTART IDENTITY;
INSERT INTO email_outbox (user_id, kind, recipient, subject, body, status, created_at)
    SELECT user_id, kind, recipient, subject, body, status, created_at FROM outbox ORDER BY id;
VACUUM ANALYZE email_outbox;
SQL
read -r emails last < <("${psql[@]}" -AtF ' ' -c "SELECT count(*), max(id) FROM email_outbox")
half=$((last / 2))
transactions=$((emails / 8 / 64 / 4 + 1))
script mark_sent 1 "$half" "$mark_sent"
measure mark_sent -t "$transactions"
set_script mark_sent_set $((half + 1)) "$last" "$mark_sent_set"
measure mark_sent_set -t "$transactions"
"${psql[@]}" -Atc "SELECT format('mark_sent: %s emails sent, mark_sent_set: %s, by %s jobs each', count(*) FILTER (WHERE id <= $half), count(*) FILTER (WHERE id > $half), $((transactions * 4 * 64))) FROM email_outbox WHERE status = 'sent'"
"${psql[@]}" -c "DROP SCHEMA $schema CASCADE"
