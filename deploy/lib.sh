# Shared by deploy/run and deploy/test: system packages and a private PostgreSQL cluster.
# shellcheck shell=bash

qy_log() { printf 'qianyun: %s\n' "$*" >&2; }

# Installs what a fresh Debian machine lacks; apt-get update runs once, and only when needed.
qy_install_packages() {
    local wanted=(postgresql postgresql-contrib libpq-dev libxml2-dev libssl-dev pkg-config python3 "$@")
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    qy_log "installing system packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { qy_log "need root (or sudo) to install: ${missing[*]}"; return 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

qy_pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$dir/initdb" ] || { qy_log "PostgreSQL server binaries not found under /usr/lib/postgresql"; return 1; }
    echo "$dir"
}

# The cluster runs as `postgres` when we are root (initdb refuses root), else as ourselves.
qy_pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }

qy_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

qy_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# qy_pg_init DATADIR: a new cluster with peer auth on the socket and SCRAM over TCP.
qy_pg_init() {
    local data=$1 bindir
    bindir=$(qy_pg_bindir)
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
    chmod 700 "$data"
    qy_as_pg "$bindir/initdb" -D "$data" -U "$(qy_pg_user)" --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
}

# qy_pg_start DATADIR SOCKETDIR PORT [extra postgres -c settings…]
qy_pg_start() {
    local data=$1 sockets=$2 port=$3 bindir opts
    shift 3
    bindir=$(qy_pg_bindir)
    mkdir -p "$sockets"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$sockets"; fi
    chmod 700 "$sockets"
    opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$sockets"
    for setting in "$@"; do opts="$opts -c $setting"; done
    # setsid: Ctrl-C in the terminal reaches the service, which stops first; the cluster is
    # stopped afterwards, cleanly, by our own trap.
    qy_as_pg setsid "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w -t 60 start >/dev/null
}

qy_pg_stop() {
    local data=$1 bindir
    bindir=$(qy_pg_bindir) || return 0
    [ -f "$data/postmaster.pid" ] || return 0
    qy_as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# qy_psql SOCKETDIR PORT SQL: runs SQL as the cluster's superuser over the socket (peer auth).
qy_psql() {
    local sockets=$1 port=$2 sql=$3
    qy_as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$sockets" -p "$port" -U "$(qy_pg_user)" -d postgres -c "$sql"
}

# qy_cda_schema ROOT: copies HL7's CDA R2 schema (with SDTC extensions) into ROOT/schemas/cda
# from the shared corpora when it is there and the folder has none (see schemas/cda/README.md).
qy_cda_schema() {
    local root=$1 source
    source="$root/../shared/corpora/cda/schema/extensions/SDTC"
    [ -f "$root/schemas/cda/infrastructure/cda/CDA_SDTC.xsd" ] && return 0
    [ -d "$source" ] || { qy_log "no CDA schema found; documents will be filed without a schema check"; return 0; }
    cp -R "$source/." "$root/schemas/cda/"
}

qy_random_base64() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }
qy_random_password() { head -c 24 /dev/urandom | base64 | tr -d '\n/+='; }

# qy_pip_install MODULE SPEC: installs a Python peer used by tests and benchmarks when missing
# (pip refuses system-wide installs on Debian without the flag; a user install needs no root).
qy_pip_install() {
    python3 -c "import $1" 2>/dev/null && return 0
    if ! python3 -m pip --version >/dev/null 2>&1; then qy_install_packages python3-pip; fi
    python3 -m pip install -q "$2" 2>/dev/null \
        || python3 -m pip install -q --user --break-system-packages "$2" \
        || { echo "could not install $2 with pip" >&2; return 1; }
}
