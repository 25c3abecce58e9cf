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
#   bench/run.sh --phases telemetry              # metrics + OTLP export on vs off: a second gateway process
#
# Only when --phases names telemetry: a second mock-provider as the OTLP collector stand-in (it answers POST
# /v1/traces with 200 and discards the body), a second gatehouse with --metrics false (its own data dir and ports,
# pinned like the first), gateway `bench-telemetry` on both with the same settings (logs off, as `bench`), and on the
# first one its `otel` set to one OTLP/JSON exporter to the collector.
#
# Environment: BENCH_PIN=0 to let the scheduler place the processes (default 1: gateway on CPU 1, mock and client on
# CPU 0), BENCH_DIRECT_ONLY=1 to measure the mock alone (no gateway built or started), BENCH_SKIP_BUILD=1,
# BENCH_KEEP=1 to keep the logs, BENCH_ACCOUNT, BENCH_ROUTABLE_TIMEOUT (seconds, default 15), GATEHOUSE_LOG (warn),
# BENCH_GATEHOUSE_BIN to run another gatehouse binary (a saved build, for A/B runs; default the release build),
# BENCH_TELEMETRY_OTEL=0 to leave the telemetry phase's `on` gateway without an exporter (metrics alone),
# BENCH_TELEMETRY_LOGS=1 to give the telemetry gateway `collect_logs: true` on both sides.
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

# Whether gatehouse-bench's flags name phase $1 in --phases (or its default list does).
bench_args=("$@")
wants_phase() {
  local phases=chat,stream,closed,compat,routes,concurrent prev='' arg
  for arg in "${bench_args[@]}"; do
    [[ $prev == --phases ]] && phases=$arg
    [[ $arg == --phases=* ]] && phases=${arg#--phases=}
    prev=$arg
  done
  [[ ,$phases, == *",$1,"* ]]
}
telemetry=0
if [[ $direct_only != 1 ]] && wants_phase telemetry; then telemetry=1; fi
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
    line=$(sed -n "s#^${prefix}##p" "$file" 2>/dev/null | head -n 1)
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

# Starts a standalone gatehouse named $1 (its files $tmp/$1.*, data in $tmp/$1-data) with any further flags, pinned to
# the gateway's core; sets started_pid, started_api, started_inference and started_token.
start_gatehouse() {
  local name=$1
  shift
  GATEHOUSE_LOG=${GATEHOUSE_LOG:-warn} "${pin_gateway[@]}" "$gatehouse_bin" --data-dir "$tmp/$name-data" \
    --api-listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 \
    --provider-base-url "openai=http://$mock/v1" --provider-base-url "anthropic=http://$mock" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  started_pid=$!
  pids+=("$started_pid")
  started_api=$(wait_line "$tmp/$name.out" 'management API listening on http://' 60 "$started_pid") ||
    die "$name did not start: $(tail -n 20 "$tmp/$name.err")"
  started_inference=$(wait_line "$tmp/$name.out" 'inference listening on http://' 10 "$started_pid") ||
    die "$name printed no inference address: $(tail -n 20 "$tmp/$name.err")"
  started_token=$(sed -n 's/^  export GATEHOUSE_TOKEN=//p' "$tmp/$name.out" | head -n 1)
  [[ -n $started_token ]] || die "no first-start admin token on $name's stdout"
  log "$name (pid $started_pid): management API $started_api, inference $started_inference"
}

# The telemetry phase's `on` side is this process: metrics on whatever the environment says.
if [[ $telemetry == 1 ]]; then export GATEHOUSE_METRICS=true; fi
start_gatehouse gatehouse
gh_pid=$started_pid api=$started_api inference=$started_inference token=$started_token

# The settings of every gateway the run creates, logs on or off ($1).
gateway_body() {
  printf '{"id":"%s","cache_invalidate_on_update":false,"cache_ttl":0,"collect_logs":%s,"rate_limiting_interval":0,"rate_limiting_limit":0%s}' \
    "$1" "$2" "${3:+,$3}"
}
# Creates (POST) or replaces (PUT) gateway $2 with body $3 on the management API $4 with token $5 (default: the first
# gatehouse's).
gateway_call() {
  local method=$1 id=$2 body=$3 at=${4:-$api} auth=${5:-$token} url status
  url="http://$at/client/v4/accounts/$account/ai-gateway/gateways"
  [[ $method == PUT ]] && url+="/$id"
  status=$(curl -sS -o "$tmp/create.json" -w '%{http_code}' -X "$method" \
    -H "Authorization: Bearer $auth" -H 'content-type: application/json' -d "$body" "$url") ||
    die "the management API at $at did not answer"
  [[ $status == 200 ]] || die "$method gateway $id at $at answered $status: $(cat "$tmp/create.json")"
}
create_gateway() { gateway_call POST "$1" "$(gateway_body "$1" "$2")"; }

# Two gateways: `bench` without logs (every phase) and `bench-logged` with `collect_logs: true` (the chat phase
# again, for the CPU of logging on vs off).
create_gateway "$gateway" false
create_gateway "$logged_gateway" true

# The telemetry phase: the collector stand-in, the second (`off`) gatehouse, and gateway `bench-telemetry` on both,
# logs off as `bench`; then its `otel` set on the first (`on`) and set empty on the second, so both went through the
# same create and replace.
telemetry_gateway=bench-telemetry
# BENCH_TELEMETRY_LOGS=1: `collect_logs: true` on both sides (the span then adds to a record that exists anyway).
telemetry_logs=false
if [[ ${BENCH_TELEMETRY_LOGS:-0} == 1 ]]; then telemetry_logs=true; fi
if [[ $telemetry == 1 ]]; then
  "${pin_load[@]}" "$bin/mock-provider" --listen 127.0.0.1:0 >"$tmp/collector.out" 2>"$tmp/collector.err" &
  collector_pid=$!
  pids+=("$collector_pid")
  collector=$(wait_line "$tmp/collector.out" 'mock provider listening on http://' 10 "$collector_pid") ||
    die "the collector stand-in did not start: $(cat "$tmp/collector.err")"
  log "OTLP collector stand-in on $collector (pid $collector_pid)"
  start_gatehouse gatehouse-off --metrics false
  off_pid=$started_pid off_api=$started_api off_inference=$started_inference off_token=$started_token
  exporter="\"otel\":[{\"url\":\"http://$collector/v1/traces\",\"headers\":{},\"content_type\":\"json\"}]"
  # BENCH_TELEMETRY_OTEL=0: no exporter on the `on` side either, so the phase measures metrics alone.
  if [[ ${BENCH_TELEMETRY_OTEL:-1} == 0 ]]; then exporter='"otel":[]'; fi
  gateway_call POST "$telemetry_gateway" "$(gateway_body "$telemetry_gateway" "$telemetry_logs")"
  gateway_call PUT "$telemetry_gateway" "$(gateway_body "$telemetry_gateway" "$telemetry_logs" "$exporter")"
  gateway_call POST "$telemetry_gateway" "$(gateway_body "$telemetry_gateway" "$telemetry_logs")" "$off_api" "$off_token"
  gateway_call PUT "$telemetry_gateway" "$(gateway_body "$telemetry_gateway" "$telemetry_logs" '"otel":[]')" "$off_api" "$off_token"
fi

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

telemetry_args=()
if [[ $telemetry == 1 ]]; then
  body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
  telemetry_on="http://$inference/v1/$account/$telemetry_gateway/openai"
  telemetry_off="http://$off_inference/v1/$account/$telemetry_gateway/openai"
  wait_routable "$telemetry_on"
  wait_routable "$telemetry_off"
  # The exporter reaches the data plane with the gateway's replaced config, maybe after the first 200: send a
  # request at a time until the `on` process counts an exported span (batches leave at least once a second).
  exported=0 deadline=$((SECONDS + ${BENCH_ROUTABLE_TIMEOUT:-15}))
  [[ ${BENCH_TELEMETRY_OTEL:-1} == 0 ]] && deadline=0
  while ((SECONDS < deadline)); do
    curl -s -o /dev/null -X POST -H 'Authorization: Bearer sk-test' -H 'content-type: application/json' \
      -d "$body" "$telemetry_on/chat/completions" || true
    exported=$(curl -s "http://$inference/metrics" | sed -n 's/^gatehouse_otlp_spans_exported_total //p' | head -n 1)
    [[ ${exported:-0} != 0 ]] && break
    sleep 0.5
  done
  if [[ ${BENCH_TELEMETRY_OTEL:-1} == 0 ]]; then
    log "BENCH_TELEMETRY_OTEL=0: no exporter on the telemetry gateway, metrics alone"
  elif [[ ${exported:-0} == 0 ]]; then
    log "WARNING: the telemetry gateway exported no span to the collector within ${BENCH_ROUTABLE_TIMEOUT:-15} s"
  else
    log "the telemetry gateway exports spans ($exported so far)"
  fi
  telemetry_args=(--telemetry-on "$telemetry_on" --telemetry-off "$telemetry_off" --telemetry-off-pid "$off_pid"
    --telemetry-otel "$([[ ${BENCH_TELEMETRY_OTEL:-1} == 0 ]] && echo false || echo true)")
fi

# The operator token lets the logs-on phases read the log writer's counter (GET /admin/log-ingest): they wait
# until it has stored their records before reading the gateway's CPU, and report how many it stored.
set +e
BENCH_ADMIN_TOKEN=$token "${pin_load[@]}" "$bin/gatehouse-bench" --direct "http://$mock/v1" --through "$through" \
  --through-logged "$through_logged" \
  --anthropic-direct "http://$mock" --anthropic-through "http://$inference/v1/$account/$gateway/anthropic" \
  --compat-through "$compat_through" --admin-api "http://$api" \
  --gateway-pid "$gh_pid" --mock-pid "$mock_pid" "${telemetry_args[@]}" "$@"
rc=$?
set -e
if ((rc != 0)); then
  log "gatehouse-bench exited $rc; the gateway's last log lines:"
  tail -n 20 "$tmp/gatehouse.err" >&2 || true
fi
kill -0 "$gh_pid" 2>/dev/null || log "WARNING: gatehouse is no longer running"
if [[ $telemetry == 1 ]]; then
  kill -0 "$off_pid" 2>/dev/null || log "WARNING: the second gatehouse (metrics off) is no longer running"
fi
exit "$rc"
