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

# Debian's packaged server, installed and opened to trusted local TCP connections
# (this is a development machine; production points DATABASE_URL at its own server).
install_postgres() {
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed; install it (apt-get install postgresql) or set DATABASE_URL"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and this is not a Debian-like system; set DATABASE_URL"
    say "installing PostgreSQL from Debian packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    local version hba
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
}

ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ] && [[ "$DATABASE_URL" != *"@127.0.0.1"* && "$DATABASE_URL" != *"@localhost"* ]]; then
        return 0 # a remote server is the operator's to run
    fi
    command -v pg_isready >/dev/null || install_postgres
    pg_ready && return 0
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        say "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    elif ! command -v pg_ctlcluster >/dev/null; then
        install_postgres
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    wait_for_postgres
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        return 0
    fi
    command -v redis-server >/dev/null || {
        [ "$(id -u)" = 0 ] || die "Redis is not installed"
        say "installing Redis from Debian packages"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    }
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
    local venv installed
    venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/providers/.venv"
    installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiosmtpd"), m.version("moto"))' 2>/dev/null || true)"
    if [ "$installed" != "$AIOSMTPD_VERSION $MOTO_VERSION" ]; then
        say "installing aiosmtpd $AIOSMTPD_VERSION and moto $MOTO_VERSION into tests/providers/.venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" "moto[server]==$MOTO_VERSION"
    fi
}
