#!/usr/bin/env bash
# Builds the test binary of franz-go's kgo package (the module zip from the Go module proxy holds
# its test files) and runs selected integration tests against an already running Kafka-protocol
# broker. See README.md beside this file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${SHOAL_FRANZ_GO_CACHE:-$REPO/.cache/franz-go}"
GO_CACHE="${SHOAL_GO_CACHE:-$REPO/.cache/go}"

MODULE="github.com/twmb/franz-go"
VERSION="v1.22.3"
BOOTSTRAP="127.0.0.1:9092"
TESTS=""
TEST_TIMEOUT=300
# Empty: kgo's own default, 500000 records for each ETL test.
RECORDS=""
BUILD_ONLY=0
RUNNER_ARGS=()

usage() {
    cat <<EOF
Usage: $0 [options] [-- test-binary-args...]

Fetches $MODULE@$VERSION from the Go module proxy, builds the test binary of its pkg/kgo
once (cached in $CACHE), and runs the selected tests against a running broker.

Options:
  --bootstrap HOST:PORT   broker to test (default $BOOTSTRAP)
  --tests A,B,...         test names to run (default: names in $HERE/tests.allow)
  --timeout SECONDS       wall-clock limit per test (default $TEST_TIMEOUT)
  --records N             KGO_TEST_RECORDS, records of the ETL tests (default: kgo's, 500000)
  --build-only            fetch and build, run nothing
  -h, --help              this text
Arguments after -- go to the test binary as is, e.g. -- -test.count=3.
Environment: SHOAL_FRANZ_GO_CACHE moves the build cache, SHOAL_GO_CACHE the Go caches;
KGO_LOG_LEVEL (info, debug, none) is passed through to the tests.
EOF
}

log() { printf '[franz-go] %s\n' "$*" >&2; }
die() { printf '[franz-go] error: %s\n' "$*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap) BOOTSTRAP="${2:?--bootstrap needs HOST:PORT}"; shift 2 ;;
        --tests) TESTS="${2:?--tests needs a list}"; shift 2 ;;
        --timeout) TEST_TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
        --records) RECORDS="${2:?--records needs a number}"; shift 2 ;;
        --build-only) BUILD_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; RUNNER_ARGS=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$TEST_TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds"
[[ -z "$RECORDS" || "$RECORDS" =~ ^[1-9][0-9]*$ ]] || die "--records must be a positive number"
command -v go >/dev/null || die "go is not on PATH"

# The Go caches live in the repository's ignored .cache, never in the user's GOPATH.
export GOPATH="$GO_CACHE" GOMODCACHE="$GO_CACHE/pkg/mod" GOCACHE="$GO_CACHE/build"
export GOFLAGS=-mod=mod
BINARY="$CACHE/kgo-$VERSION.test"

build() {
    local start src
    start=$SECONDS
    log "fetching $MODULE@$VERSION from the module proxy"
    src="$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -n "$src" && -d "$src/pkg/kgo" ]] || die "go mod download gave no source directory"
    log "building the pkg/kgo test binary (a minute or three on a clean Go cache)"
    # The module cache is read-only; go test -c writes only the binary and the build cache.
    (cd "$src" && go test -c -o "$BINARY.tmp" ./pkg/kgo) >"$CACHE/build.log" 2>&1 \
        || { tail -n 30 "$CACHE/build.log" >&2; die "build failed; log in $CACHE/build.log"; }
    mv "$BINARY.tmp" "$BINARY"
    log "built in $((SECONDS - start)) s"
}

prepare() {
    mkdir -p "$CACHE"
    # Concurrent runs share one cache; the lock makes the second wait instead of building twice.
    exec 9>"$CACHE/.lock"
    flock 9
    if [[ -x "$BINARY" ]]; then
        log "using cached build: $BINARY"
    else
        build
    fi
    flock -u 9
    exec 9>&-
}

read_tests() {
    local raw name
    if [[ -n "$TESTS" ]]; then
        raw="${TESTS//,/ }"
    else
        [[ -f "$HERE/tests.allow" ]] || die "no --tests given and $HERE/tests.allow is missing"
        raw="$(sed -e 's/#.*//' "$HERE/tests.allow")"
    fi
    for name in $raw; do
        [[ "$name" =~ ^Test[A-Za-z0-9_]*$ ]] || die "not a Go test name: $name"
        echo "$name"
    done
}

check_broker() {
    local host="${BOOTSTRAP%:*}" port="${BOOTSTRAP##*:}"
    [[ -n "$host" && "$port" =~ ^[0-9]+$ ]] || die "--bootstrap must be HOST:PORT, got: $BOOTSTRAP"
    timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null \
        || die "no broker accepts connections at $BOOTSTRAP"
}

# Prints pass or "fail: why". A test that skips itself (the broker does not advertise what it
# needs) or that did not run at all (unknown name) counts as failed: the list names tests that
# must pass.
run_one() {
    local name="$1" logf="$2" rc=0
    (
        cd "$CACHE/work"
        # One replica: Shoal reports replication factor 1 (the object store holds the copies).
        export KGO_SEEDS="$BOOTSTRAP" KGO_TEST_RF=1
        [[ -n "$RECORDS" ]] && export KGO_TEST_RECORDS="$RECORDS"
        exec timeout -k 10 "$TEST_TIMEOUT" "$BINARY" -test.run "^${name}\$" -test.v \
            -test.timeout "${TEST_TIMEOUT}s" "${RUNNER_ARGS[@]}"
    ) >"$logf" 2>&1 </dev/null || rc=$?
    if [[ $rc -eq 0 ]] && grep -aq "^--- PASS: ${name} " "$logf"; then
        echo pass
    elif grep -aq "^--- SKIP: ${name} " "$logf"; then
        # The skip reason is the test's last log line before its SKIP line.
        echo "fail: skipped itself: $(grep -a -B1 "^--- SKIP: ${name} " "$logf" | head -n 1 | sed 's/^ *//')"
    elif [[ $rc -eq 0 ]]; then
        echo "fail: the test binary ran no test $name (unknown name)"
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "fail: timed out after $TEST_TIMEOUT s"
    else
        echo "fail: rc=$rc"
    fi
}

main() {
    local names
    names="$(read_tests)"
    [[ -n "$names" ]] || die "no tests selected"
    prepare
    [[ $BUILD_ONLY -eq 1 ]] && { log "build ready: $BINARY"; return 0; }
    check_broker

    local logs="$CACHE/logs"
    mkdir -p "$logs" "$CACHE/work"

    local name result start elapsed passed=0 failed=0
    for name in $names; do
        start=$(date +%s.%N)
        result="$(run_one "$name" "$logs/$name.log")"
        elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        case "$result" in
            pass) passed=$((passed + 1)); log "PASS $name (${elapsed} s)" ;;
            *)
                failed=$((failed + 1))
                log "FAIL $name (${elapsed} s, ${result#fail: }); log: $logs/$name.log"
                # kgo's client logs go to the same stream; the test's own lines are indented.
                grep -a -E '^(    |--- |=== |FAIL|panic)' "$logs/$name.log" | tail -n 25 \
                    | sed 's/^/    /' >&2 || true
                ;;
        esac
    done
    echo "franz-go: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

main
