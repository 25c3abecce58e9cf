#!/usr/bin/env bash
# Traffic policies in the load benchmark: what a cache hit and a rate limit check cost the data plane, measured as
# the chat phase of gatehouse-bench through a policy gateway against a plain one, at the same rate, in one run.
#
#   bench/policies.sh [gatehouse-bench flags…]        e.g. bench/policies.sh --timeout 2s
#
# - standalone: `bench` (no policy: every request reaches the mock) vs `cached` (cache_ttl 3600: every request
#   after the first is a HIT from process memory). Target: the hit costs less data-plane CPU than the passthrough.
# - split: `gatehouse control-plane` (PostgreSQL, a database made for the run) + `gatehouse data-plane` (Redis, a
#   prefix made for the run); `bench` vs gateways whose rate limit is never reached: fixed and sliding at 10^8 per
#   60 s (sliding above 10,000 is the slotted counter) and sliding at 10,000 per 60 s (the exact sorted-set log;
#   only when the run sends fewer than that), plus a Redis cache hit. Target: the limit adds < 0.3 ms at p99.
#
# Environment: BENCH_RATE (req/s, default 1000), BENCH_SECONDS (measured seconds per phase, default 5; each phase
# also has a 2 s warm-up), BENCH_MODES (standalone,split), BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/
# postgres: the server where the run's database is created and dropped), BENCH_REDIS_URL (redis://127.0.0.1:6379),
# BENCH_PIN, BENCH_SKIP_BUILD, BENCH_KEEP, BENCH_ACCOUNT, BENCH_ROUTABLE_TIMEOUT, GATEHOUSE_LOG as in run.sh.
# Exit status: 0 when every request succeeded, 1 when some failed, 2 when the setup failed. See bench/README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/gatehouse-target}
bin=$CARGO_TARGET_DIR/release
account=${BENCH_ACCOUNT:-bench}
rate=${BENCH_RATE:-1000}
seconds=${BENCH_SECONDS:-5}
warmup=2
modes=${BENCH_MODES:-standalone,split}
admin_db_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
export GATEHOUSE_LOG=${GATEHOUSE_LOG:-warn}

log() { printf 'policies.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 2
}

# Pinning as in run.sh: the data plane alone on CPU 1, client and mock (and the idle control plane) on CPU 0. Redis
# and PostgreSQL are the machine's own services and stay where the scheduler puts them.
pin_gateway=() pin_load=()
if [[ ${BENCH_PIN:-1} == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  pin_gateway=(taskset -c 1) pin_load=(taskset -c 0)
fi

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building release"
  (cd "$root" && cargo build --release -p gatehouse -p gatehouse-bench -p gatehouse-mock-providers) ||
    die "build failed"
fi
for b in gatehouse gatehouse-bench mock-provider; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-policies.XXXXXX")
suffix="$$_$RANDOM"
database="gh_bench_policies_$suffix"
prefix="gh-bench-policies-$suffix:"
database_made=0 redis_used=0 mock_pid=
pids=()
# Stops the gatehouse processes of a part, so the next part has the cores to itself.
stop_all() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  [[ -n $mock_pid ]] && pids+=("$mock_pid")
  stop_all
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
mock=$(wait_line "$tmp/mock.out" 'mock provider listening on http://' 10 "$mock_pid") ||
  die "the mock provider did not start: $(cat "$tmp/mock.err")"
log "mock provider on $mock (pid $mock_pid)"

# create_gateway API TOKEN ID EXTRA_JSON: a gateway without logs, with the given policy fields.
create_gateway() {
  local api=$1 token=$2 id=$3 extra=$4 status
  status=$(curl -sS -o "$tmp/create.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"id\":\"$id\",\"cache_invalidate_on_update\":false,\"collect_logs\":false,$extra}" \
    "http://$api/client/v4/accounts/$account/ai-gateway/gateways") || die "the management API did not answer"
  [[ $status == 200 ]] || die "creating gateway $id answered $status: $(cat "$tmp/create.json")"
}
no_policy='"cache_ttl":0,"rate_limiting_interval":0,"rate_limiting_limit":0'

# Config reaches the data plane asynchronously: wait until a request through the gateway answers 200.
wait_routable() {
  local url=$1 code=000 deadline=$((SECONDS + ${BENCH_ROUTABLE_TIMEOUT:-15}))
  local body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
  while ((SECONDS < deadline)); do
    code=$(curl -s -o "$tmp/probe.json" -w '%{http_code}' -X POST -H 'Authorization: Bearer sk-test' \
      -H 'content-type: application/json' -d "$body" "$url/chat/completions") || code=000
    [[ $code == 200 ]] && return 0
    sleep 0.2
  done
  log "WARNING: $url never answered 200 (last: $code $(head -c 300 "$tmp/probe.json" 2>/dev/null))"
}

rc=0
# bench_through LABEL PID THROUGH_URL [--through-also L=URL…]: the chat phase direct, through THROUGH_URL and each
# further gateway, one after the other at the same rate; the table goes to stderr and $tmp/LABEL.json keeps the JSON.
bench_through() {
  local label=$1 pid=$2 through=$3 status=0
  shift 3
  "${pin_load[@]}" "$bin/gatehouse-bench" --phases chat --rate "$rate" --duration "${seconds}s" \
    --warmup "${warmup}s" --direct "http://$mock/v1" --through "$through" --gateway-pid "$pid" "$@" \
    >"$tmp/$label.out" || status=$?
  grep -v '^{' "$tmp/$label.out" >&2 || true
  tail -n 1 "$tmp/$label.out" >"$tmp/$label.json"
  ((status == 0)) || rc=$status
  ((status < 2)) || die "gatehouse-bench could not run ($label)"
}

# The verdicts the issue asks for, from the JSON: data-plane threads' CPU per request of a hit over the
# passthrough's, and a rate-limited gateway's p99 over the plain one's.
verdicts() {
  jq -r --arg mode "$1" '
    def r(x): if x == null then "-" else (x * 10 | round / 10 | tostring) end;
    .chat as $c | ($c.through.data_plane_cpu_ms / $c.through.sent * 1000) as $dp |
    "\($mode): direct p50/p99 \(r($c.direct.latency.p50_us))/\(r($c.direct.latency.p99_us)) µs; through `bench` p50/p99 \(r($c.through.latency.p50_us))/\(r($c.through.latency.p99_us)) µs, CPU \(r($c.gateway_cpu_per_request_us)) µs/request (data-plane threads \(r($dp)))",
    (.chat_also[] |
      "  \(.label): p50/p99 \(r(.latency.p50_us))/\(r(.latency.p99_us)) µs (p99 \(r(.added_p99_vs_through_us)) µs vs bench), CPU \(r(.gateway_cpu_per_request_us)) µs/request (ratio \(.cpu_ratio_vs_through)), data-plane threads \(r(.data_plane_cpu_per_request_us)) (ratio \(.data_plane_cpu_ratio_vs_through)), errors \(.errors | add // 0), sample \(.sample_header)" +
      (if $mode == "standalone" and (.label | startswith("cache")) then
         "; target hit < passthrough (data-plane threads): " +
         (if .data_plane_cpu_ratio_vs_through == null then "-" elif .data_plane_cpu_ratio_vs_through < 1 then "met" else "MISSED" end) +
         (if .sample_header == "HIT" then "" else "; WARNING: the sample was not a HIT" end)
       elif (.label | startswith("cache")) and .sample_header != "HIT" then "; WARNING: the sample was not a HIT"
       elif (.label | startswith("rl")) then
         "; target added p99 < 300 µs: " +
         (if .added_p99_vs_through_us == null then "-" elif .added_p99_vs_through_us < 300 then "met" else "MISSED" end)
       else "" end))
  ' "$tmp/$1.json" >&2
}

standalone() {
  GATEHOUSE_LOG=$GATEHOUSE_LOG "${pin_gateway[@]}" "$bin/gatehouse" --data-dir "$tmp/data" \
    --api-listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 \
    --provider-base-url "openai=http://$mock/v1" >"$tmp/standalone.log" 2>"$tmp/standalone.err" &
  local gh=$!
  pids+=("$gh")
  local api inference token
  api=$(wait_line "$tmp/standalone.log" 'management API listening on http://' 60 "$gh") ||
    die "gatehouse did not start: $(tail -n 20 "$tmp/standalone.err")"
  inference=$(wait_line "$tmp/standalone.log" 'inference listening on http://' 10 "$gh") ||
    die "gatehouse printed no inference address"
  token=$(sed -n 's/^  export GATEHOUSE_TOKEN=//p' "$tmp/standalone.log" | head -n 1)
  [[ -n $token ]] || die "no first-start admin token on gatehouse's stdout"
  log "standalone gatehouse (pid $gh): API $api, inference $inference"
  create_gateway "$api" "$token" bench "$no_policy"
  create_gateway "$api" "$token" cached '"cache_ttl":3600,"rate_limiting_interval":0,"rate_limiting_limit":0'
  local base="http://$inference/v1/$account"
  wait_routable "$base/bench/openai"
  wait_routable "$base/cached/openai"
  bench_through standalone "$gh" "$base/bench/openai" --through-also "cache-hit=$base/cached/openai" "$@"
  stop_all
  verdicts standalone
}

split() {
  psql -q "$admin_db_url" -c "CREATE DATABASE \"$database\"" >/dev/null || die "cannot create database $database"
  database_made=1 redis_used=1
  local env=(
    "GATEHOUSE_DATABASE_URL=${admin_db_url%/*}/$database"
    "GATEHOUSE_REDIS_URL=$redis_url"
    "GATEHOUSE_REDIS_PREFIX=$prefix"
    "GATEHOUSE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)"
    "GATEHOUSE_PROVIDER_BASE_URLS=openai=http://$mock/v1"
  )
  env "${env[@]}" "$bin/gatehouse" migrate >/dev/null || die "gatehouse migrate failed"
  local token
  token=$(env "${env[@]}" "$bin/gatehouse" token create --account "$account" --scope ai-gateway:edit \
    --scope ai-gateway:read --description policies-bench) || die "gatehouse token create failed"
  env "${env[@]}" "${pin_load[@]}" "$bin/gatehouse" control-plane --api-listen 127.0.0.1:0 \
    >"$tmp/cp.log" 2>"$tmp/cp.err" &
  local cp=$!
  pids+=("$cp")
  env "${env[@]}" "${pin_gateway[@]}" "$bin/gatehouse" data-plane --proxy-listen 127.0.0.1:0 \
    >"$tmp/dp.log" 2>"$tmp/dp.err" &
  local dp=$!
  pids+=("$dp")
  local api inference
  api=$(wait_line "$tmp/cp.log" 'management API listening on http://' 60 "$cp") ||
    die "the control plane did not start: $(tail -n 20 "$tmp/cp.err")"
  inference=$(wait_line "$tmp/dp.log" 'inference listening on http://' 60 "$dp") ||
    die "the data plane did not start: $(tail -n 20 "$tmp/dp.err")"
  log "split: control plane (pid $cp) API $api; data plane (pid $dp) inference $inference"
  local limit=100000000 base="http://$inference/v1/$account"
  create_gateway "$api" "$token" bench "$no_policy"
  create_gateway "$api" "$token" rl-fixed \
    "\"cache_ttl\":0,\"rate_limiting_interval\":60,\"rate_limiting_limit\":$limit,\"rate_limiting_technique\":\"fixed\""
  create_gateway "$api" "$token" rl-sliding \
    "\"cache_ttl\":0,\"rate_limiting_interval\":60,\"rate_limiting_limit\":$limit,\"rate_limiting_technique\":\"sliding\""
  create_gateway "$api" "$token" cached '"cache_ttl":3600,"rate_limiting_interval":0,"rate_limiting_limit":0'
  local also=(--through-also "rl-fixed=$base/rl-fixed/openai" --through-also "rl-sliding=$base/rl-sliding/openai")
  # The exact log holds one entry per admitted request for 60 s: its limit (at most 10,000) must exceed what the
  # phase sends, probes included, or the run would measure refusals.
  if ((rate * (seconds + warmup) + 100 <= 10000)); then
    create_gateway "$api" "$token" rl-sliding-log \
      '"cache_ttl":0,"rate_limiting_interval":60,"rate_limiting_limit":10000,"rate_limiting_technique":"sliding"'
    also+=(--through-also "rl-sliding-log=$base/rl-sliding-log/openai")
    wait_routable "$base/rl-sliding-log/openai"
  else
    log "rl-sliding-log left out: $rate req/s for $((seconds + warmup)) s would exceed its 10,000 per 60 s"
  fi
  also+=(--through-also "cache-hit-redis=$base/cached/openai")
  for g in bench rl-fixed rl-sliding cached; do wait_routable "$base/$g/openai"; done
  bench_through split "$dp" "$base/bench/openai" "${also[@]}" "$@"
  stop_all
  verdicts split
}

log "rate $rate req/s, $seconds s measured + $warmup s warm-up per phase; load $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ,$modes, == *,standalone,* ]]; then standalone "$@"; fi
if [[ ,$modes, == *,split,* ]]; then split "$@"; fi
exit "$rc"
