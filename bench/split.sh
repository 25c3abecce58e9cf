#!/usr/bin/env bash
# The load benchmark in split mode (issue 14's virtual keys): builds release, starts on 127.0.0.1 a mock provider,
# `gatehouse control-plane` on a PostgreSQL database made for the run and `gatehouse data-plane` on Redis (a prefix
# made for the run), creates gateway `bench` (no logs, no cache, no rate limit), its stored OpenAI key and one
# virtual key whose limits are never reached (RPM 10^8, TPM 10^12, a budget of 1,000,000 USD a month), then runs
# gatehouse-bench's keys phase: the same chat completion with the client's provider key and with the virtual key,
# in alternating rounds, open loop and saturated. The data plane is started without a database URL. Around the run
# it reports Redis round trips per keyed request (MONITOR), the key's counters in Redis, and the data plane's
# connections (none to PostgreSQL). It stops the processes, drops the database and deletes the prefix at exit.
#
#   bench/split.sh [gatehouse-bench flags…]     e.g. bench/split.sh --rate 500 --duration 20s --keys-rounds 6
#   bench/split.sh --phases chat,closed         # other phases against the split data plane (default: keys)
#
# Environment: BENCH_DATABASE_URL (or TEST_DATABASE_URL; default postgres://postgres@127.0.0.1:5432/postgres: the
# server where the run's database is created and dropped), BENCH_REDIS_URL (redis://127.0.0.1:6379/),
# BENCH_PERF=PREFIX to record `perf record -e cpu-clock` of the data-plane process after the run, under an extra,
# unmeasured keyed-only load into PREFIX-keyed.data and then a plain-only one into PREFIX-plain.data
# (BENCH_PERF_SECONDS each, default 10; BENCH_PERF_LOAD open (at --rate, default) or closed (saturated);
# BENCH_PERF_CALL_GRAPH, default fp, e.g. dwarf,16384), and BENCH_PIN, BENCH_SKIP_BUILD,
# BENCH_KEEP, BENCH_ACCOUNT, BENCH_ROUTABLE_TIMEOUT, GATEHOUSE_LOG, BENCH_GATEHOUSE_BIN as in run.sh.
# Exit status: gatehouse-bench's (1 when requests failed), 2 when the setup failed. See bench/README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/gatehouse-target}
bin=$CARGO_TARGET_DIR/release
account=${BENCH_ACCOUNT:-bench}
gateway=bench
admin_db_url=${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/}
export GATEHOUSE_LOG=${GATEHOUSE_LOG:-warn}

log() { printf 'split.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 2
}

# Pinning as in run.sh: the data plane alone on CPU 1; the client, the mock and the (idle) control plane on CPU 0.
# Redis and PostgreSQL are the machine's own services and stay where the scheduler puts them.
pin_gateway=() pin_load=()
if [[ ${BENCH_PIN:-1} == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  pin_gateway=(taskset -c 1) pin_load=(taskset -c 0)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

for tool in psql redis-cli curl jq; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building release: gatehouse gatehouse-bench mock-provider"
  (cd "$root" && cargo build --release -p gatehouse -p gatehouse-bench -p gatehouse-mock-providers) ||
    die "build failed"
fi
gatehouse_bin=${BENCH_GATEHOUSE_BIN:-$bin/gatehouse}
for b in "$gatehouse_bin" "$bin/gatehouse-bench" "$bin/mock-provider"; do
  [[ -x $b ]] || die "$b is missing"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-split.XXXXXX")
suffix="$$_$RANDOM"
database="gh_bench_split_$suffix"
prefix="gh-bench-split-$suffix:"
database_made=0 redis_used=0 perf_pid=
pids=()
cleanup() {
  local pid
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if ((database_made)); then
    psql -q "$admin_db_url" -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null ||
      log "WARNING: could not drop database $database"
  fi
  if ((redis_used)); then
    # Only this run's keys: the prefix is unique to it.
    redis-cli -u "$redis_url" --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null ||
      log "WARNING: could not delete Redis keys ${prefix}*"
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints what follows PREFIX on the first matching line of FILE, waiting up to SECONDS while PID lives.
wait_line() {
  local file=$1 prefix=$2 seconds=$3 pid=$4 line deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    line=$(sed -n "s#^${prefix}##p" "$file" 2>/dev/null | head -n 1) # the file may not exist yet
    if [[ -n $line ]]; then
      printf '%s\n' "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

"${pin_load[@]}" "$bin/mock-provider" --listen 127.0.0.1:0 >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
pids+=("$mock_pid")
mock=$(wait_line "$tmp/mock.out" 'mock provider listening on http://' 10 "$mock_pid") ||
  die "the mock provider did not start: $(cat "$tmp/mock.err")"
log "mock provider on $mock (pid $mock_pid)"

psql -q "$admin_db_url" -c "CREATE DATABASE \"$database\"" >/dev/null || die "cannot create database $database"
database_made=1 redis_used=1
# The data plane gets no database URL: whatever it serves (a key lookup included) cannot reach PostgreSQL.
node_env=(
  "GATEHOUSE_REDIS_URL=$redis_url"
  "GATEHOUSE_REDIS_PREFIX=$prefix"
  "GATEHOUSE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)"
)
env=("GATEHOUSE_DATABASE_URL=${admin_db_url%/*}/$database" "${node_env[@]}")
env "${env[@]}" "$gatehouse_bin" migrate >/dev/null || die "gatehouse migrate failed"
token=$(env "${env[@]}" "$gatehouse_bin" token create --account "$account" --scope ai-gateway:edit \
  --scope ai-gateway:read --description split-bench) || die "gatehouse token create failed"
env "${env[@]}" "${pin_load[@]}" "$gatehouse_bin" control-plane --api-listen 127.0.0.1:0 \
  >"$tmp/cp.out" 2>"$tmp/cp.err" &
cp_pid=$!
pids+=("$cp_pid")
env -u GATEHOUSE_DATABASE_URL "${node_env[@]}" "${pin_gateway[@]}" "$gatehouse_bin" data-plane --proxy-listen 127.0.0.1:0 \
  --provider-base-url "openai=http://$mock/v1" >"$tmp/dp.out" 2>"$tmp/dp.err" &
dp_pid=$!
pids+=("$dp_pid")
api=$(wait_line "$tmp/cp.out" 'management API listening on http://' 60 "$cp_pid") ||
  die "the control plane did not start: $(tail -n 20 "$tmp/cp.err")"
inference=$(wait_line "$tmp/dp.out" 'inference listening on http://' 60 "$dp_pid") ||
  die "the data plane did not start: $(tail -n 20 "$tmp/dp.err")"
log "control plane (pid $cp_pid) API $api; data plane (pid $dp_pid) inference $inference"

# post PATH BODY: a management API call that must answer 200; its body is left in $tmp/answer.json.
post() {
  local path=$1 body=$2 status
  status=$(curl -sS -o "$tmp/answer.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "$body" \
    "http://$api/client/v4/accounts/$account/ai-gateway$path") || die "the management API did not answer"
  [[ $status == 200 ]] || die "POST $path answered $status: $(cat "$tmp/answer.json")"
}
post /gateways "{\"id\":\"$gateway\",\"cache_invalidate_on_update\":false,\"cache_ttl\":0,\"collect_logs\":false,\"rate_limiting_interval\":0,\"rate_limiting_limit\":0}"
post "/gateways/$gateway/provider_configs" \
  '{"alias":"default","default_config":true,"provider_slug":"openai","secret":"sk-bench"}'
post /keys '{"name":"bench","limits":{"rpm":100000000,"tpm":1000000000000,"budget":{"amount_usd":1000000,"period":"month"}}}'
key=$(jq -r '.result.key // empty' "$tmp/answer.json")
key_id=$(jq -r '.result.id // empty' "$tmp/answer.json")
[[ $key == ghk_* ]] || die "the key's creation answered no key: $(cat "$tmp/answer.json")"
log "virtual key $key_id ($(jq -r '.result.preview // empty' "$tmp/answer.json")), limits $(jq -c .result.limits "$tmp/answer.json")"

# Config reaches the data plane through Redis: wait until a request with each credential answers 200.
through="http://$inference/v1/$account/$gateway/openai"
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
wait_routable() {
  local what=$1 bearer=$2 code=000 deadline=$((SECONDS + ${BENCH_ROUTABLE_TIMEOUT:-15}))
  while ((SECONDS < deadline)); do
    code=$(curl -s -o "$tmp/probe.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $bearer" \
      -H 'content-type: application/json' -d "$body" "$through/chat/completions") || code=000
    if [[ $code == 200 ]]; then
      log "$what: routable"
      return 0
    fi
    sleep 0.2
  done
  log "WARNING: $what never answered 200 (last: $code $(head -c 300 "$tmp/probe.json" 2>/dev/null)); its side will report errors"
}
wait_routable "without a key" sk-test
wait_routable "with the virtual key" "$key"

phases=(--phases keys)
for arg in "$@"; do [[ $arg == --phases || $arg == --phases=* ]] && phases=(); done
# Redis commands per keyed request: 1,000 keyed requests alone (1 s at 1,000/s, unmeasured) while MONITOR
# records the commands that name this run's prefix (every key of its processes does; other users of the same
# server are left out), by command name.
redis-cli -u "$redis_url" MONITOR >"$tmp/monitor.txt" 2>/dev/null &
monitor_pid=$!
pids+=("$monitor_pid")
sleep 0.3
BENCH_VIRTUAL_KEY=$key "${pin_load[@]}" "$bin/gatehouse-bench" --direct "http://$mock/v1" --through "$through" \
  --phases keys --keys-sides keyed --keys-loads open --rate 1000 --duration 1s --warmup 0s --keys-rounds 1 \
  --json-only >/dev/null 2>"$tmp/count.err" || log "WARNING: the counted keyed load failed: $(tail -n 3 "$tmp/count.err")"
sleep 0.5
kill -TERM "$monitor_pid" 2>/dev/null || true
wait "$monitor_pid" 2>/dev/null || true
# Lines from `[0 lua]` are what the scripts called inside Redis, not round trips: counted apart.
grep -F "\"$prefix" "$tmp/monitor.txt" | grep -vF ' lua]' >"$tmp/monitor.sent" || true
commands=$(wc -l <"$tmp/monitor.sent")
in_scripts=$(grep -F "\"$prefix" "$tmp/monitor.txt" | grep -cF ' lua]' || true)
by_name=$(awk '{ print $4 }' "$tmp/monitor.sent" | tr -d '"' | sort | uniq -c | sort -rn |
  awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
log "Redis round trips per keyed request: $(awk -v c="$commands" 'BEGIN { printf "%.2f", c / 1000 }') ($commands for 1,000 keyed requests: $by_name; $in_scripts calls inside scripts)"

log "1-minute load before the run: $(cut -d' ' -f1 /proc/loadavg)"
set +e
BENCH_VIRTUAL_KEY=$key "${pin_load[@]}" "$bin/gatehouse-bench" --direct "http://$mock/v1" --through "$through" \
  --gateway-pid "$dp_pid" --mock-pid "$mock_pid" "${phases[@]}" "$@" >"$tmp/bench.out"
rc=$?
set -e
grep -v '^{' "$tmp/bench.out" || true
tail -n 1 "$tmp/bench.out"
if ((rc != 0)); then
  log "gatehouse-bench exited $rc; the data plane's last log lines:"
  tail -n 20 "$tmp/dp.err" >&2 || true
fi
kill -0 "$dp_pid" 2>/dev/null || log "WARNING: the data plane is no longer running"
log "1-minute load after the run: $(cut -d' ' -f1 /proc/loadavg)"
# The data plane was started without a database URL; its sockets say the same: none to PostgreSQL's port, one or
# more to Redis's.
pg_port=$(sed -nE 's#^[a-z]+://([^/]*@)?[^/:]+:([0-9]+)(/.*)?$#\2#p' <<<"$admin_db_url")
redis_port=$(sed -nE 's#^[a-z]+://([^/]*@)?[^/:]+:([0-9]+)(/.*)?$#\2#p' <<<"$redis_url")
dp_sockets=$(ss -Htnp 2>/dev/null | grep -F "pid=$dp_pid," || true)
log "data plane's TCP connections to PostgreSQL (:${pg_port:-5432}): $(grep -cE ":${pg_port:-5432} +users" <<<"$dp_sockets" || true); to Redis (:${redis_port:-6379}): $(grep -cE ":${redis_port:-6379} +users" <<<"$dp_sockets" || true)"

# The key's counters in Redis: the run's keyed requests were counted against its limits there (RPM, TPM, budget).
vk_names=$(redis-cli -u "$redis_url" --scan --pattern "${prefix}*vk:*" | sed "s#^${prefix}##; s#$key_id#KEY#" | sort)
vk_keys=$(grep -c . <<<"$vk_names" || true)
log "Redis keys of the virtual key's counters: $vk_keys ($(paste -sd' ' <<<"$vk_names"))$( ((vk_keys > 0)) || echo ' WARNING: none: the key was not counted')"

# Profiles: the data plane under the keyed load alone and then under the plain load alone (same load and length,
# unmeasured), each into a file of its own, so the two can be compared symbol by symbol.
if [[ -n ${BENCH_PERF:-} ]]; then
  command -v perf >/dev/null || die "BENCH_PERF needs perf"
  seconds=${BENCH_PERF_SECONDS:-10}
  for side in keyed plain; do
    out="$BENCH_PERF-$side.data"
    log "perf: recording the data plane (pid $dp_pid) for ${seconds} s of $side load into $out"
    perf record -e cpu-clock --call-graph "${BENCH_PERF_CALL_GRAPH:-fp}" -p "$dp_pid" -o "$out" \
      -- sleep "$((seconds + 2))" 2>"$tmp/perf.err" &
    perf_pid=$!
    sleep 0.5
    BENCH_VIRTUAL_KEY=$key "${pin_load[@]}" "$bin/gatehouse-bench" --direct "http://$mock/v1" \
      --through "$through" --gateway-pid "$dp_pid" --phases keys --keys-sides "$side" \
      --keys-loads "${BENCH_PERF_LOAD:-open}" \
      --duration "${seconds}s" --closed-duration "${seconds}s" --warmup 0s --keys-rounds 1 --json-only \
      >"$BENCH_PERF-$side.json" 2>"$tmp/perf-load.err" ||
      log "WARNING: the $side load for perf failed: $(tail -n 3 "$tmp/perf-load.err")"
    wait "$perf_pid" || log "WARNING: perf exited non-zero: $(tail -n 3 "$tmp/perf.err")"
    perf_pid=
    log "perf: $(tail -n 1 "$tmp/perf.err"); $(jq -r --arg side "$side" '[.keys.open, .keys.closed] | map(.[$side] // empty) |
      map("\(.sent) requests measured, \(.gateway_cpu_per_request_us) µs CPU each") | join("; ")' \
      "$BENCH_PERF-$side.json" 2>/dev/null) (the load's JSON: $BENCH_PERF-$side.json)"
  done
  log "perf: read with: perf report -i $BENCH_PERF-keyed.data --no-children --sort symbol"
fi
exit "$rc"
