#!/usr/bin/env bash
# Shared by bin/serve, bin/test and bin/bench: find or start the services Arrears needs.
set -euo pipefail

PG_HOST="${PGHOST:-127.0.0.1}"
PG_PORT="${PGPORT:-5432}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror: %s\033[0m\n' "$*" >&2; exit 1; }

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

wait_for_postgres() {
    for _ in $(seq 1 60); do
        pg_ready && return 0
        sleep 0.5
    done
    die "PostgreSQL did not become ready on $PG_HOST:$PG_PORT within 30 s"
}

# Debian's packaged server: installed when missing, its newest cluster started when
# stopped, and opened to trusted TCP connections from this machine (a development or CI
# machine; production points DATABASE_URL at its own server). A machine may come with the
# package installed and its cluster on password authentication: the trust lines are set
# whoever installed it.
apt_install() {
    [ "$(id -u)" = 0 ] || die "$1 is missing; install it as root (apt-get install $*)"
    command -v apt-get >/dev/null || die "$1 is missing and this is not a Debian-like system"
    say "installing $* from Debian packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

# Sets the local cluster's IPv4 and IPv6 loopback lines to trust; says whether it changed.
trust_local_tcp() {
    local hba
    hba="/etc/postgresql/$1/main/pg_hba.conf"
    [ -f "$hba" ] || return 1
    grep -qE '^host\s+all\s+all\s+(127\.0\.0\.1/32|::1/128)\s+trust\s*$' "$hba" && return 1
    [ "$(id -u)" = 0 ] || die "PostgreSQL on $PG_HOST:$PG_PORT asks for a password; set DATABASE_URL, or as root let bin/ scripts trust local connections"
    say "trusting local TCP connections to PostgreSQL $1 ($hba)"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
}

ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ] && [[ "$DATABASE_URL" != *"@127.0.0.1"* && "$DATABASE_URL" != *"@localhost"* ]]; then
        return 0 # a remote server is the operator's to run
    fi
    command -v pg_ctlcluster >/dev/null && [ -n "$(postgres_version)" ] || apt_install postgresql
    local version
    version="$(postgres_version)"
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql after installing it"
    if trust_local_tcp "$version" && pg_ready; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    if ! pg_ready; then
        say "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    wait_for_postgres
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null ||
        die "PostgreSQL on $PG_HOST:$PG_PORT refuses user postgres without a password (see above)"
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        return 0
    fi
    command -v redis-server >/dev/null || apt_install redis-server
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 40); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "Redis did not start on 127.0.0.1:6379"
}

ensure_cargo() {
    command -v cargo >/dev/null || die "cargo is not installed; install Rust from rustup.rs"
}

# Installs a test directory's pinned npm packages from its committed lock file when
# node_modules is missing or older than it: ensure_node_packages DIR WHAT.
ensure_node_packages() {
    local dir
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$1"
    if [ -f "$dir/node_modules/.package-lock.json" ] && [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        return 0
    fi
    command -v npm >/dev/null || die "npm is not installed; install Node.js 20 or later ($1 needs it for $2)"
    say "installing $2 ($1)"
    (cd "$dir" && npm ci --no-audit --no-fund)
}

# Elastic's request types for the test that checks every Elasticsearch request body
# (tests/api/es_spec.rs).
ensure_es_spec() {
    ensure_node_packages tests/es-spec "Elastic's request types"
}

# What the providers are checked against (tests/api/providers.rs, webhooks.rs, s3.rs):
# Twilio's OpenAPI description served by Prism's validating mock, Twilio's and Meta's own
# Node libraries, a real SMTP server (aiosmtpd) and a real S3 server (moto's server
# mode), the Python ones pinned here, in tests/providers/.venv.
AIOSMTPD_VERSION=1.4.6
MOTO_VERSION=5.2.5
ensure_provider_mocks() {
    ensure_node_packages tests/providers "the providers' descriptions, libraries and Prism"
    local venv installed root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$root/tests/providers/.venv"
    # The environment lives beside cargo's target (kept between CI runs, where a fresh
    # clone would otherwise install it again); the tests find it at tests/providers/.venv.
    if [ ! -e "$venv" ] && [ ! -L "$venv" ]; then
        mkdir -p "${CARGO_TARGET_DIR:-$root/target}"
        ln -s "$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")/providers-venv" "$venv"
    fi
    installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiosmtpd"), m.version("moto"))' 2>/dev/null || true)"
    if [ "$installed" != "$AIOSMTPD_VERSION $MOTO_VERSION" ]; then
        say "installing aiosmtpd $AIOSMTPD_VERSION and moto $MOTO_VERSION into tests/providers/.venv"
        python3 -m venv "$(realpath -m "$venv")"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" "moto[server]==$MOTO_VERSION"
    fi
}

# The address `arrears serve` (started with BIND=127.0.0.1:0 and LOG_FORMAT=json, its log
# going to LOG) logged as `listening`: listening_address LOG PID. A server binds port 0
# and says which port it got; no port is found free first and bound later, when another
# process may take it.
listening_address() {
    local log="$1" pid="$2" addr
    for _ in $(seq 1 600); do
        addr="$(grep -m 1 '"message":"listening"' "$log" 2>/dev/null | sed -E 's/.*"addr":"([^"]+)".*/\1/')" || true
        if [ -n "$addr" ]; then
            printf '%s\n' "$addr"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; die "arrears stopped before it listened"; }
        sleep 0.1
    done
    tail -20 "$log" >&2
    die "arrears did not say where it listens within 60 s"
}

# PostgreSQL's connection limit, raised (and the cluster restarted) when below N: the test
# suite runs several tests at once, each with a pool of its own.
ensure_postgres_connections() {
    local want="$1" have version
    have="$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'SHOW max_connections')"
    [ "$have" -ge "$want" ] && return 0
    version="$(postgres_version)"
    [ "$(id -u)" = 0 ] && [ -n "$version" ] ||
        die "PostgreSQL allows $have connections; the tests need $want (ALTER SYSTEM SET max_connections = $want, then restart it)"
    say "raising PostgreSQL's max_connections from $have to $want (restarting it)"
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "ALTER SYSTEM SET max_connections = $want"
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    wait_for_postgres
}

# cargo-nextest (the test runner: each test in a process of its own, several at once,
# each one's time printed), built from crates.io into cargo's bin directory when missing
# or of another version (a few minutes, once per machine).
NEXTEST_VERSION=0.9.151
ensure_nextest() {
    if [[ "$(cargo nextest --version 2>/dev/null | head -n 1)" == "cargo-nextest $NEXTEST_VERSION "* ]]; then
        return 0
    fi
    # Unoptimised (--debug): it only lists and starts test processes, and builds in less
    # than half the CPU time of a release build on a cold machine.
    say "installing cargo-nextest $NEXTEST_VERSION (built from crates.io, once per machine)"
    cargo install --quiet --debug --locked --version "$NEXTEST_VERSION" --no-default-features --features default-no-update cargo-nextest
}

# Debian's Chromium, for the browser tests (bin/e2e) and the screenshots.
ensure_chromium() {
    [ -x /usr/bin/chromium ] || apt_install chromium
}

# The database names the test scripts and the test suite create, dropped with their
# sessions (what a run that was killed left behind). The template databases the tests
# copy (arrears_template_*) are kept: the next run reuses the current one.
drop_test_databases() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'arrears\_test\_%' OR datname LIKE 'arrears\_e2e\_%'" |
        while read -r db; do
            psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
        done
}

# Phases and their times: `phase NAME COMMAND...` runs COMMAND (a program, not a shell
# function) and appends NAME, its seconds and its status to $ARREARS_PHASES when set;
# `print_phases` prints the table. .ci/run prints it at the end of every run.
phase() {
    local name="$1" started=$SECONDS status=0
    shift
    say "$name"
    "$@" || status=$?
    if [ -n "${ARREARS_PHASES:-}" ]; then
        printf '%s\t%s\t%s\n' "$name" "$((SECONDS - started))" "$status" >>"$ARREARS_PHASES"
    fi
    return "$status"
}

record_phase() { # record_phase NAME SECONDS: a phase timed by its caller
    if [ -n "${ARREARS_PHASES:-}" ]; then
        printf '%s\t%s\t0\n' "$1" "$2" >>"$ARREARS_PHASES"
    fi
}

print_phases() {
    [ -s "${ARREARS_PHASES:-}" ] || return 0
    awk -F '\t' '
        BEGIN { printf "\n%-44s %8s  %s\n", "phase", "seconds", "result" }
        { total += $2; printf "%-44s %8d  %s\n", $1, $2, ($3 == 0 ? "ok" : "FAILED (" $3 ")") }
        END { printf "%-44s %8d  (%d min %d s; phases side by side count each)\n", "sum of the phases", total, total / 60, total % 60 }
    ' "$ARREARS_PHASES" >&2
}
