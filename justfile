# Palaver's everyday commands. None of them is needed: each recipe is one plain cargo command you can run yourself,
# except `cluster` and `cluster-stop`, short scripts for a three-node cluster on this machine (README, Run a cluster).

# The server on 127.0.0.1:8080 with the embedded SQLite database.
run:
    cargo run --release

# Every test that needs no database server (PostgreSQL tests run too when TEST_DATABASE_URL is set).
test:
    cargo test --workspace

# The whole suite against the local PostgreSQL, as CI runs it.
test-pg url="postgres://postgres@127.0.0.1:5432/test":
    TEST_DATABASE_URL={{url}} CI=true cargo test --workspace

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The server against PostgreSQL.
run-pg url="postgres://postgres@127.0.0.1:5432/postgres":
    PALAVER_DATABASE_URL={{url}} cargo run --release

# A short standard benchmark (persist, idle connections, fan-out) against a server you started with the bench settings:
# PALAVER_BCRYPT_COST=4 PALAVER_WS_MESSAGE_LIMIT=10000000 PALAVER_HTTP_REQUESTS_PER_MINUTE=100000000
# PALAVER_REGISTRATIONS_PER_HOUR=100000000 PALAVER_WS_CONNECTIONS_PER_IP=1000000 cargo run --release (BENCHMARKS.md).
bench url="http://127.0.0.1:8080":
    cargo run --release -p palaver-bench -- --url {{url}} persist --clients 32 --in-flight 8 --seconds 10
    cargo run --release -p palaver-bench -- --url {{url}} connections --connections 2000 --concurrency 100 --hold 2 --probes 100
    cargo run --release -p palaver-bench -- --url {{url}} fanout --rooms 10 --members 100 --rate 250 --seconds 5

# Starts nats-server when none answers on 127.0.0.1:4222, creates the database when it is missing, builds once, and
# gives every node the one dev JWT secret generated into ./data/cluster-jwt-secret. Logs: ./data/node-N.log. Other
# PALAVER_* variables pass through: set PALAVER_CLUSTER_NAME when another cluster with these node ids uses this NATS.
# Three nodes of one cluster in the background on 127.0.0.1:8081–8083 (stop them with `just cluster-stop`).
cluster url="postgres://postgres@127.0.0.1:5432/palaver_cluster":
    #!/usr/bin/env bash
    set -euo pipefail
    data="$PWD/data"
    mkdir -p "$data"
    for n in 1 2 3; do
        if [ -f "$data/node-$n.pid" ] && kill -0 "$(cat "$data/node-$n.pid")" 2>/dev/null; then
            echo "node-$n is running already (pid $(cat "$data/node-$n.pid")): just cluster-stop first" >&2
            exit 1
        fi
    done
    nats_answers() { (exec 3<>/dev/tcp/127.0.0.1/4222 && head -c 4 <&3 | grep -q INFO) 2>/dev/null; }
    if ! nats_answers; then
        # As .ci/run starts it, without JetStream: Palaver uses core NATS only.
        start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$data/nats.pid" \
            --exec "$(command -v nats-server)" -- -a 127.0.0.1 -p 4222 -l "$data/nats.log"
        for _ in $(seq 1 20); do nats_answers && break; sleep 0.5; done
        nats_answers || { echo "nats-server does not answer on 127.0.0.1:4222 (see $data/nats.log)" >&2; exit 1; }
        echo "started nats-server on 127.0.0.1:4222 (log $data/nats.log)"
    fi
    url="{{url}}"
    if ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
        name="${url##*/}"; name="${name%%\?*}"
        psql "${url%/*}/postgres" -qc "create database \"$name\""
        echo "created database $name"
    fi
    if [ ! -s "$data/cluster-jwt-secret" ]; then
        (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$data/cluster-jwt-secret")
    fi
    cargo build --release --bin palaver
    bin="${CARGO_TARGET_DIR:-target}/release/palaver"
    for n in 1 2 3; do
        PALAVER_DATABASE_URL="$url" PALAVER_NATS_URL=nats://127.0.0.1:4222 PALAVER_NODE_ID="node-$n" \
        PALAVER_LISTEN="127.0.0.1:808$n" PALAVER_JWT_SECRET="$(cat "$data/cluster-jwt-secret")" \
        PALAVER_TRUSTED_PROXIES=127.0.0.1 nohup "$bin" >"$data/node-$n.log" 2>&1 &
        echo $! >"$data/node-$n.pid"
    done
    for n in 1 2 3; do
        for _ in $(seq 1 40); do curl -fs "http://127.0.0.1:808$n/readyz" >/dev/null && break; sleep 0.5; done
        echo "node-$n http://127.0.0.1:808$n pid $(cat "$data/node-$n.pid"): $(curl -s "http://127.0.0.1:808$n/readyz")"
    done
    echo "logs in $data/node-N.log; stop with: just cluster-stop"

# Stops the nodes of `just cluster` (and the nats-server it started, if it started one) by their saved pids.
cluster-stop:
    #!/usr/bin/env bash
    set -uo pipefail
    # The nodes first (each closes its sockets with 1001 and exits within its 10 s grace), then NATS.
    for name in node-1 node-2 node-3 nats; do
        [ -f "data/$name.pid" ] || continue
        pid="$(cat "data/$name.pid")"
        if kill -TERM "$pid" 2>/dev/null; then
            for _ in $(seq 1 24); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            echo "stopped $name (pid $pid)"
        fi
        rm -f "data/$name.pid"
    done
