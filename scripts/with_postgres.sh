#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL server on 127.0.0.1, for the two-backend tests.
#
#   scripts/with_postgres.sh COMMAND [ARGS...]
#
# Finds PostgreSQL's server programs (PATH, then Debian's /usr/lib/postgresql/*/bin; as root
# with apt it installs Debian's `postgresql` package when they are missing), makes a cluster in
# a temporary folder as a non-root user, starts it on a free port, creates a database and runs
# COMMAND with DDFT_TEST_PG_URL=postgresql+psycopg://ddft@127.0.0.1:PORT/ddft_test. The server
# and its folder are removed when COMMAND ends, however it ends. When no server can be had,
# COMMAND still runs, with DDFT_TEST_PG_SKIP saying why (the PostgreSQL tests skip with it).
# Exits with COMMAND's status.
set -euo pipefail

skip() {
    local reason=$1
    shift
    echo "with_postgres: no PostgreSQL for the tests: $reason" >&2
    export DDFT_TEST_PG_SKIP="$reason"
    unset DDFT_TEST_PG_URL
    exec "$@"
}

find_bindir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$found" ] && [ -x "$found/initdb" ]; then
        echo "$found"
    fi
}

if [ $# -eq 0 ]; then
    echo "usage: scripts/with_postgres.sh COMMAND [ARGS...]" >&2
    exit 2
fi

if [ -n "${DDFT_TEST_PG_URL:-}" ]; then
    # A server was given (a developer's own, or an outer run of this script): use it.
    exec "$@"
fi

bindir=$(find_bindir)
if [ -z "$bindir" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "with_postgres: installing Debian's postgresql package" >&2
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends postgresql; } >&2; then
            skip "apt-get could not install postgresql" "$@"
        fi
        bindir=$(find_bindir)
    fi
fi
if [ -z "$bindir" ]; then
    skip "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)" "$@"
fi

# initdb refuses to run as root: as root the cluster belongs to the postgres user.
as_owner=()
if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home postgres
    fi
    as_owner=(runuser -u postgres --)
fi

folder=$(mktemp -d "${TMPDIR:-/tmp}/ddft-pg.XXXXXX")
chmod 755 "$folder"
if [ "$(id -u)" = 0 ]; then
    chown postgres "$folder"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$folder/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$folder"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! "${as_owner[@]}" "$bindir/initdb" -D "$folder/data" -U ddft --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$folder/initdb.log" 2>&1; then
    cat "$folder/initdb.log" >&2
    trap - EXIT
    stop
    skip "initdb failed (its output is above)" "$@"
fi
# A test server: nothing here needs to survive a crash, so durability is traded for speed.
if ! "${as_owner[@]}" "$bindir/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w -t 60 \
        -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null; then
    cat "$folder/server.log" >&2
    trap - EXIT
    stop
    skip "the server did not start (its log is above)" "$@"
fi
"${as_owner[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U ddft ddft_test

export DDFT_TEST_PG_URL="postgresql+psycopg://ddft@127.0.0.1:$port/ddft_test"
echo "with_postgres: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') at $DDFT_TEST_PG_URL" >&2
status=0
"$@" || status=$?
exit "$status"
