#!/usr/bin/env bash
# The gateway load benchmark in one run: builds release, starts a mock provider and a standalone gateway on
# 127.0.0.1 (OpenAI and Anthropic pointed at the mock), creates two gateways (`bench` without logs, `bench-logged`
# with them) and a dynamic route on `bench` (bench10), then runs gatehouse-bench direct to the mock and through the
# gateways (provider-native and /compat).
#
#   bench/run.sh [gatehouse-bench flags…]       e.g. bench/run.sh --rate 500 --duration 5s
#   bench/run.sh --phases concurrent --concurrent-streams 500,2000
#   bench/run.sh --phases compat                 # /compat translated to Anthropic vs provider-native
#   bench/run.sh --phases routes                 # model named directly vs the dynamic route bench10 on /compat
#
# Environment: BENCH_PIN=0 to let the scheduler place the processes (default 1: gateway on CPU 1, mock and client on
# CPU 0), BENCH_DIRECT_ONLY=1 to measure the mock alone (no gateway built or started), BENCH_SKIP_BUILD=1,
# BENCH_KEEP=1 to keep the logs, BENCH_ACCOUNT, BENCH_ROUTABLE_TIMEOUT (seconds, default 15), GATEHOUSE_LOG (warn),
# BENCH_GATEHOUSE_BIN to run another gatehouse binary (a saved build, for A/B runs; default the release build).
# Exit status: gatehouse-bench's (1 when requests failed), 2 when the setup failed. See bench/README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/gatehouse-target}
bin=$CARGO_TARGET_DIR/release
account=${BENCH_ACCOUNT:-bench}
gateway=bench
logged_gateway=bench-logged

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 2
}

# Pinning: the gateway gets a core to itself; the client and the mock share the other. Without it the three
# processes migrate between the two cores and the added-latency tail measures the scheduler more than the gateway.
pin_gateway=() pin_load=()
if [[ ${BENCH_PIN:-1} == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  pin_gateway=(taskset -c 1) pin_load=(taskset -c 0)
fi

# The concurrent-streams phase holds thousands of sockets at once in the client, the mock and the gateway (two per
# stream there): raise the soft open-files limit to the hard one for all three. gatehouse-bench checks its own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

direct_only=${BENCH_DIRECT_ONLY:-0}
binaries=(mock-provider gatehouse-bench)
packages=(-p gatehouse-mock-providers -p gatehouse-bench)
if [[ $direct_only != 1 ]]; then
  binaries+=(gatehouse)
  packages+=(-p gatehouse)
fi
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building release: ${binaries[*]}"
  (cd "$root" && cargo build --release "${packages[@]}") ||
    die "build failed (BENCH_DIRECT_ONLY=1 measures the mock alone when gatehouse does not build)"
fi
for b in "${binaries[@]}"; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing"
done
gatehouse_bin=${BENCH_GATEHOUSE_BIN:-$bin/gatehouse}
[[ $direct_only == 1 || -x $gatehouse_bin ]] || die "$gatehouse_bin is missing"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints what follows PREFIX on the first matching line of FILE, waiting up to SECONDS while PID lives.
wait_line() {
  local file=$1 prefix=$2 seconds=$3 pid=$4 line deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    line=$(sed -n "s#^${prefix}##p" "$file" | head -n 1)
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

if [[ $direct_only == 1 ]]; then
  "${pin_load[@]}" "$bin/gatehouse-bench" --direct "http://$mock/v1" --anthropic-direct "http://$mock" \
    --mock-pid "$mock_pid" "$@"
  exit $?
fi

GATEHOUSE_LOG=${GATEHOUSE_LOG:-warn} "${pin_gateway[@]}" "$gatehouse_bin" --data-dir "$tmp/data" \
  --api-listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 \
  --provider-base-url "openai=http://$mock/v1" --provider-base-url "anthropic=http://$mock" \
  >"$tmp/gatehouse.out" 2>"$tmp/gatehouse.err" &
gh_pid=$!
pids+=("$gh_pid")
api=$(wait_line "$tmp/gatehouse.out" 'management API listening on http://' 60 "$gh_pid") ||
  die "gatehouse did not start: $(tail -n 20 "$tmp/gatehouse.err")"
inference=$(wait_line "$tmp/gatehouse.out" 'inference listening on http://' 10 "$gh_pid") ||
  die "gatehouse printed no inference address: $(tail -n 20 "$tmp/gatehouse.err")"
token=$(sed -n 's/^  export GATEHOUSE_TOKEN=//p' "$tmp/gatehouse.out" | head -n 1)
[[ -n $token ]] || die "no first-start admin token on gatehouse's stdout"
log "gatehouse (pid $gh_pid): management API $api, inference $inference"

# Two gateways: `bench` without logs (every phase) and `bench-logged` with `collect_logs: true` (the chat phase
# again, for the CPU of logging on vs off).
create_gateway() {
  local id=$1 collect=$2 status
  status=$(curl -sS -o "$tmp/create.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"id\":\"$id\",\"cache_invalidate_on_update\":false,\"cache_ttl\":0,\"collect_logs\":$collect,\"rate_limiting_interval\":0,\"rate_limiting_limit\":0}" \
    "http://$api/client/v4/accounts/$account/ai-gateway/gateways") || die "the management API did not answer"
  [[ $status == 200 ]] || die "creating gateway $id answered $status: $(cat "$tmp/create.json")"
}
create_gateway "$gateway" false
create_gateway "$logged_gateway" true

# The routes phase's dynamic route on `bench` (`model: "dynamic/bench10"` on /compat), 10 elements, every one walked
# by the phase's requests (they send cf-aig-metadata {"tier":"standard","user":"bench-user"} and x-team: bench):
# start → tier (metadata, false goes on) → size (body) → team ($or/$in over headers) → split (percentage 50/50,
# both halves to the same next element) → quota (rate, count per metadata.user, a limit never reached) → region
# ($nin over metadata, absent: true) → streamed ($not over body.stream) → pool (model: two OpenAI targets weighted
# 3:1, circuit breaker) → end. gatehouse-bench's routes phase expects these targets and weights
# (bench/src/routes_phase.rs, ROUTE_TARGETS). Conditions that would leave the path go straight to pool.
route_name=bench10
route_elements='[
 {"id":"start","type":"start","outputs":{"next":{"elementId":"tier"}}},
 {"id":"tier","type":"conditional","properties":{"conditions":{"metadata.tier":{"$eq":"gold"}}},
  "outputs":{"true":{"elementId":"pool"},"false":{"elementId":"size"}}},
 {"id":"size","type":"conditional","properties":{"conditions":{"body.max_tokens":{"$lte":4096},"body.temperature":{"$lt":1}}},
  "outputs":{"true":{"elementId":"team"},"false":{"elementId":"pool"}}},
 {"id":"team","type":"conditional",
  "properties":{"conditions":{"$or":[{"headers.x-team":{"$in":["search","support","bench"]}},{"headers.x-priority":{"$gte":5}}]}},
  "outputs":{"true":{"elementId":"split"},"false":{"elementId":"pool"}}},
 {"id":"split","type":"percentage","outputs":{"50%":{"elementId":"quota"},"else":{"elementId":"quota"}}},
 {"id":"quota","type":"rate","properties":{"key":"metadata.user","limit":1000000000,"limitType":"count","window":60},
  "outputs":{"success":{"elementId":"region"},"fallback":{"elementId":"pool"}}},
 {"id":"region","type":"conditional","properties":{"conditions":{"metadata.region":{"$nin":["eu","apac"]}}},
  "outputs":{"true":{"elementId":"streamed"},"false":{"elementId":"pool"}}},
 {"id":"streamed","type":"conditional","properties":{"conditions":{"$not":{"body.stream":true}}},
  "outputs":{"true":{"elementId":"pool"},"false":{"elementId":"pool"}}},
 {"id":"pool","type":"model","properties":{"provider":"openai","model":"gpt-4o-mini","retries":0,"timeout":10000,
  "targets":[{"provider":"openai","model":"gpt-4o-mini","weight":3,"priority":0},
             {"provider":"openai","model":"gpt-4o-mini-2024-07-18","weight":1,"priority":1}],
  "balance":"weighted",
  "circuit_breaker":{"failures":5,"error_rate":0.5,"min_requests":10,"window":30,"cooldown":30}},
  "outputs":{"success":{"elementId":"end"},"fallback":{"elementId":"end"}}},
 {"id":"end","type":"end","outputs":{}}
]'
create_route() {
  local status
  status=$(curl -sS -o "$tmp/route.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\":\"$route_name\",\"elements\":$route_elements}" \
    "http://$api/client/v4/accounts/$account/ai-gateway/gateways/$gateway/routes") || die "the management API did not answer"
  # Only the routes phase needs it: a gatehouse without routes (an older saved build) runs the other phases.
  [[ $status == 200 ]] || log "WARNING: creating route $route_name answered $status: $(head -c 300 "$tmp/route.json"); the routes phase will report errors"
}
create_route

# Config reaches the data plane asynchronously: wait until a request goes through, so the run measures a warm
# gateway. If it never does, run anyway: the direct half is still measured and the through half reports errors.
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
wait_routable() {
  local url=$1 code=000 deadline=$((SECONDS + ${BENCH_ROUTABLE_TIMEOUT:-15}))
  while ((SECONDS < deadline)); do
    code=$(curl -s -o "$tmp/probe.json" -w '%{http_code}' -X POST -H 'Authorization: Bearer sk-test' \
      -H 'content-type: application/json' -d "$body" "$url/chat/completions") || code=000
    if [[ $code == 200 ]]; then
      log "gateway routable at $url"
      return 0
    fi
    sleep 0.2
  done
  log "WARNING: $url never answered 200 (last: $code $(head -c 300 "$tmp/probe.json" 2>/dev/null)); its half will report errors"
}
through="http://$inference/v1/$account/$gateway/openai"
through_logged="http://$inference/v1/$account/$logged_gateway/openai"
compat_through="http://$inference/v1/$account/$gateway/compat"
wait_routable "$through"
wait_routable "$through_logged"
# The route reaches the data plane with the gateway's config: wait for it too (the routes phase's headers).
body="{\"model\":\"dynamic/$route_name\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}"
wait_routable "$compat_through"

# The operator token lets the logs-on phases read the log writer's counter (GET /admin/log-ingest): they wait
# until it has stored their records before reading the gateway's CPU, and report how many it stored.
set +e
BENCH_ADMIN_TOKEN=$token "${pin_load[@]}" "$bin/gatehouse-bench" --direct "http://$mock/v1" --through "$through" \
  --through-logged "$through_logged" \
  --anthropic-direct "http://$mock" --anthropic-through "http://$inference/v1/$account/$gateway/anthropic" \
  --compat-through "$compat_through" --admin-api "http://$api" \
  --gateway-pid "$gh_pid" --mock-pid "$mock_pid" "$@"
rc=$?
set -e
if ((rc != 0)); then
  log "gatehouse-bench exited $rc; the gateway's last log lines:"
  tail -n 20 "$tmp/gatehouse.err" >&2 || true
fi
kill -0 "$gh_pid" 2>/dev/null || log "WARNING: gatehouse is no longer running"
exit "$rc"
