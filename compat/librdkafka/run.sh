#!/usr/bin/env bash
# Builds librdkafka's own test runner from Debian's source package and runs selected tests
# against an already running Kafka-protocol broker. See README.md beside this file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${SHOAL_LIBRDKAFKA_CACHE:-$REPO/.cache/librdkafka}"

BOOTSTRAP="127.0.0.1:9092"
TESTS=""
# bookworm ships librdkafka 2.0.2 (needs patch_source); trixie ships 2.8.0, whose test 0001
# fails about 1 run in 5 on a client-side 1 s destroy delay, so it is not the default.
SUITE="bookworm"
KAFKA_VERSION="4.0.0"
TEST_TIMEOUT=300
BUILD_ONLY=0
RUNNER_ARGS=()

# Build and run-time needs. They are installed by this script because CI machines are fresh.
APT_PACKAGES=(build-essential dpkg-dev pkg-config python3 xz-utils debian-archive-keyring
              libssl-dev zlib1g-dev libzstd-dev liblz4-dev)

usage() {
    cat <<EOF
Usage: $0 [options] [-- test-runner-args...]

Fetches librdkafka's source (Debian source package), builds its test runner once
(cached in $CACHE), and runs the selected tests against a running broker.

Options:
  --bootstrap HOST:PORT   broker to test (default $BOOTSTRAP)
  --tests 0001,0019/full  tests to run; ID/full runs one without -Q (default: $HERE/tests.allow)
  --suite NAME            Debian suite to take the source from (default $SUITE)
  --kafka-version V       broker version the tests assume (default $KAFKA_VERSION)
  --timeout SECONDS       wall-clock limit per test (default $TEST_TIMEOUT)
  --build-only            fetch and build, run nothing
  -h, --help              this text
Arguments after -- go to test-runner as is, e.g. -- -P for idempotent producers.
Environment: SHOAL_LIBRDKAFKA_CACHE overrides the cache directory.
EOF
}

log() { printf '[librdkafka] %s\n' "$*" >&2; }
die() { printf '[librdkafka] error: %s\n' "$*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap) BOOTSTRAP="${2:?--bootstrap needs HOST:PORT}"; shift 2 ;;
        --tests) TESTS="${2:?--tests needs a list}"; shift 2 ;;
        --suite) SUITE="${2:?--suite needs a name}"; shift 2 ;;
        --kafka-version) KAFKA_VERSION="${2:?--kafka-version needs a version}"; shift 2 ;;
        --timeout) TEST_TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
        --build-only) BUILD_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; RUNNER_ARGS=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$SUITE" =~ ^[a-z-]+$ ]] || die "bad suite name: $SUITE"
[[ "$TEST_TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds"

SUITE_DIR="$CACHE/$SUITE"
SRC="$SUITE_DIR/src"
STAMP="$SUITE_DIR/.built"
RUNNER="$SRC/tests/test-runner"
DSC=""

ensure_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing packages (install as root): ${missing[*]}"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# A private apt state holds the deb-src entry, so the machine's apt configuration stays as it was.
apt_private() {
    local cmd="$1"; shift
    "$cmd" -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$CACHE/apt/sources" \
        -o Dir::State::Lists="$CACHE/apt/lists" \
        -o Dir::Cache="$CACHE/apt/cache" \
        -o APT::Sandbox::User=root \
        "$@"
}

fetch_source() {
    mkdir -p "$CACHE/apt/sources" "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
    cat >"$CACHE/apt/sources/debian-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    log "fetching librdkafka source from Debian $SUITE"
    apt_private apt-get update -q >/dev/null
    rm -rf "$SUITE_DIR/dl" "$SRC"
    mkdir -p "$SUITE_DIR/dl"
    (cd "$SUITE_DIR/dl" && apt_private apt-get source -q --download-only "librdkafka/$SUITE" >/dev/null)
    local found=()
    shopt -s nullglob
    found=("$SUITE_DIR"/dl/librdkafka_*.dsc)
    shopt -u nullglob
    [[ ${#found[@]} -eq 1 ]] || die "expected one .dsc in $SUITE_DIR/dl, found ${#found[@]}"
    DSC="${found[0]}"
    dpkg-source -q -x "$DSC" "$SRC" >/dev/null 2>&1 || die "dpkg-source could not unpack $DSC"
}

# librdkafka < 2.2 skips one byte too few per tagged field (upstream PR #4278), so it cannot
# parse any response that carries tagged fields, e.g. ApiVersions v3 with SupportedFeatures.
# The fix matters for testing brokers, not the client, so it is applied when the bug is there.
patch_source() {
    local hdr="$SRC/src/rdkafka_buf.h"
    if grep -q '(size_t)(_taglen - 1)' "$hdr"; then
        log "applying upstream fix for tagged-field skipping (librdkafka PR #4278)"
        sed -i 's/if (_taglen > 1)/if (_taglen > 0)/; s/(size_t)(_taglen - 1))/(size_t)_taglen)/' "$hdr"
    fi
}

build() {
    local start jobs
    start=$SECONDS
    jobs="$(nproc 2>/dev/null || echo 2)"
    log "building librdkafka and its test runner (takes a minute or two)"
    (
        cd "$SRC"
        ./configure --disable-gssapi --disable-curl --disable-sasl >"$SUITE_DIR/configure.log" 2>&1 \
            || { tail -n 30 "$SUITE_DIR/configure.log" >&2; exit 1; }
        { make -j"$jobs" libs && make -j"$jobs" -C tests test-runner; } >"$SUITE_DIR/build.log" 2>&1 \
            || { tail -n 30 "$SUITE_DIR/build.log" >&2; exit 1; }
    ) || die "build failed; logs in $SUITE_DIR"
    [[ -x "$RUNNER" ]] || die "build finished without $RUNNER"
    log "built in $((SECONDS - start)) s"
}

prepare() {
    mkdir -p "$SUITE_DIR"
    # Concurrent runs share one cache; the lock makes the second wait instead of building twice.
    exec 9>"$SUITE_DIR/.lock"
    flock 9
    if [[ -f "$STAMP" && -x "$RUNNER" ]]; then
        log "using cached build: $(cat "$STAMP") in $SRC"
    else
        ensure_packages
        fetch_source
        patch_source
        build
        basename "$DSC" .dsc >"$STAMP"
    fi
    flock -u 9
    exec 9>&-
}

read_tests() {
    local raw
    if [[ -n "$TESTS" ]]; then
        raw="${TESTS//,/ }"
    else
        [[ -f "$HERE/tests.allow" ]] || die "no --tests given and $HERE/tests.allow is missing"
        raw="$(sed -e 's/#.*//' "$HERE/tests.allow")"
    fi
    local id
    for id in $raw; do
        # ID/full: run without quick mode, whose sub-tests not marked quick return at once.
        [[ "$id" =~ ^[0-9]{4}(/full)?$ ]] || die "test id must be 4 digits (or ID/full), got: $id"
        echo "$id"
    done
}

check_broker() {
    local host="${BOOTSTRAP%:*}" port="${BOOTSTRAP##*:}"
    [[ -n "$host" && "$port" =~ ^[0-9]+$ ]] || die "--bootstrap must be HOST:PORT, got: $BOOTSTRAP"
    timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null \
        || die "no broker accepts connections at $BOOTSTRAP"
}

# Prints pass, skip or "fail: why" for one test; a test that did not run at all counts as fail.
run_one() {
    local spec="$1" logf="$2" rc=0
    local id="${spec%/full}" quick=(-Q)
    [[ "$spec" == */full ]] && quick=()
    (
        cd "$SRC/tests"
        export RDKAFKA_TEST_CONF="$CONF" TESTS="$id" TEST_KAFKA_VERSION="$KAFKA_VERSION"
        # Tests that create topics with configs run Kafka's kafka-topics (kafka_path/bin).
        export KAFKA_PATH="$HERE/kafka_path" BROKERS="$BOOTSTRAP"
        export LD_LIBRARY_PATH="$SRC/src:$SRC/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        # No -E: tests are picked by id, and sockem (in-process socket emulation) needs no cluster.
        exec timeout -k 10 "$TEST_TIMEOUT" ./test-runner "${quick[@]}" "${RUNNER_ARGS[@]}"
    ) >"$logf" 2>&1 </dev/null || rc=$?
    rm -f "$SRC"/tests/stats_*.json
    if [[ $rc -eq 0 ]] && grep -aq "Test ${id}_[^ ]* PASSED" "$logf"; then
        echo pass
    elif [[ $rc -eq 0 ]] && grep -aq "Test ${id}_[^ ]* SKIPPED" "$logf"; then
        echo skip
    elif [[ $rc -eq 0 ]]; then
        echo "fail: test-runner ran no test $id (unknown id, or excluded by flags)"
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "fail: timed out after $TEST_TIMEOUT s"
    else
        echo "fail: rc=$rc"
    fi
}

main() {
    local ids
    ids="$(read_tests)"
    [[ -n "$ids" ]] || die "no tests selected"
    prepare
    [[ $BUILD_ONLY -eq 1 ]] && { log "build ready: $RUNNER"; return 0; }
    check_broker

    local logs="$SUITE_DIR/logs"
    mkdir -p "$logs"
    CONF="$logs/test.conf"
    printf 'bootstrap.servers=%s\n' "$BOOTSTRAP" >"$CONF"

    local id result start elapsed passed=0 failed=0 skipped=0
    for id in $ids; do
        start=$(date +%s.%N)
        result="$(run_one "$id" "$logs/${id%/full}.log")"
        elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        case "$result" in
            pass) passed=$((passed + 1)); log "PASS $id (${elapsed} s)" ;;
            skip) skipped=$((skipped + 1)); log "SKIP $id (${elapsed} s): skipped by test-runner" ;;
            *)
                failed=$((failed + 1))
                log "FAIL $id (${elapsed} s, ${result#fail: }); log: $logs/${id%/full}.log"
                tail -n 25 "$logs/${id%/full}.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' >&2
                ;;
        esac
    done
    if [[ $skipped -gt 0 ]]; then
        echo "librdkafka: $passed passed, $failed failed, $skipped skipped"
    else
        echo "librdkafka: $passed passed, $failed failed"
    fi
    [[ $failed -eq 0 ]]
}

main
