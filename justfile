# Palaver's everyday commands. None of them is needed: each recipe is one plain cargo command you can run yourself.

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
