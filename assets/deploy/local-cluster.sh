#!/usr/bin/env bash
# A whole scaled-out flowtape on this machine, to try before deploying it:
# a 3-master + 3-replica Redis Cluster, ingest (simulated market) and a
# processor in durable mode, two gateways, and nginx in front of them
# (assets/deploy/nginx.conf). Everything listens on 127.0.0.1, lives in one
# temporary directory and stops on Ctrl-C.
#
#   cargo build --release
#   assets/deploy/local-cluster.sh            # then, in another terminal:
#   target/release/flowtape --server ws://127.0.0.1:8780/ws
#
# Environment: BIN (default target/release), BASE_PORT (default 7000: Redis
# 7000-7005, gateways 8781-8782, nginx 8780), SIM_RATE (default 500).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-target/release}
BASE_PORT=${BASE_PORT:-7000}
SIM_RATE=${SIM_RATE:-500}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in redis-server redis-cli "$NGINX" "$BIN/flowtape-server"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || {
    echo "missing: $tool (apt-get install redis-server nginx; cargo build --release)" >&2
    exit 1
  }
done

DIR=$(mktemp -d -t flowtape-local-XXXXXX)
PIDS=()
cleanup() {
  echo "stopping…"
  [ -f "$DIR/nginx/nginx.pid" ] && "$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -s stop 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "Redis Cluster on 127.0.0.1:${BASE_PORT}-$((BASE_PORT + 5)) (logs in $DIR)"
NODES=()
for i in 0 1 2 3 4 5; do
  port=$((BASE_PORT + i))
  mkdir -p "$DIR/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$DIR/redis-$port" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --appendonly yes --appendfsync everysec --save "" \
    --logfile "$DIR/redis-$port/redis.log" &
  PIDS+=($!)
  NODES+=("127.0.0.1:$port")
done
for node in "${NODES[@]}"; do
  until redis-cli -p "${node#*:}" ping >/dev/null 2>&1; do sleep 0.1; done
done
redis-cli --cluster create "${NODES[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/cluster-create.log"
until redis-cli -p "$BASE_PORT" cluster info | grep -q cluster_state:ok; do sleep 0.2; done

REDIS="redis+cluster://$(IFS=,; echo "${NODES[*]:0:3}")"
export FLOWTAPE_REDIS=$REDIS FLOWTAPE_LOG=${FLOWTAPE_LOG:-info}
"$BIN/flowtape-server" ingest --feed sim --sim-rate "$SIM_RATE" --wait-replicas 1 2>"$DIR/ingest.log" &
PIDS+=($!)
"$BIN/flowtape-server" process --wait-replicas 1 2>"$DIR/process.log" &
PIDS+=($!)
GATEWAYS=()
for port in 8781 8782; do
  "$BIN/flowtape-server" gateway --listen "127.0.0.1:$port" 2>"$DIR/gateway-$port.log" &
  PIDS+=($!)
  GATEWAYS+=("127.0.0.1:$port")
done

# nginx: the shipped config with its "# EDIT:" lines filled in for this directory.
mkdir -p "$DIR/nginx/logs" "$DIR/nginx/tmp"
{
  while IFS= read -r line; do
    case "$line" in
      *"# EDIT: gateway"*)
        # One server line per local gateway, in place of the examples.
        if [ -z "${wrote_gateways:-}" ]; then
          for gw in "${GATEWAYS[@]}"; do
            echo "        server $gw max_fails=1 fail_timeout=10s;"
          done
          wrote_gateways=1
        fi ;;
      *"# EDIT: listen"*) echo "        listen 127.0.0.1:8780 backlog=4096;" ;;
      *"# EDIT: user"*) ;;
      *"pid "*"# EDIT: path"*) echo "pid $DIR/nginx/nginx.pid;" ;;
      *"error_log "*"# EDIT: path"*) echo "error_log $DIR/nginx/logs/error.log warn;" ;;
      *"access_log "*"# EDIT: path"*) echo "    access_log $DIR/nginx/logs/access.log flowtape;" ;;
      *"_temp_path "*"# EDIT: path"*)
        name=${line%%_temp_path*}
        name=${name##* }
        echo "    ${name}_temp_path $DIR/nginx/tmp/$name;" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
} <assets/deploy/nginx.conf >"$DIR/nginx/nginx.conf"
"$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

cat <<INFO

flowtape is up:
  clients:   ws://127.0.0.1:8780/ws   (nginx → gateways ${GATEWAYS[*]})
  health:    curl -s 127.0.0.1:8780/healthz
  metrics:   curl -s 127.0.0.1:8781/metrics
  Redis:     $REDIS
  logs:      $DIR
Try a failover: kill -9 the redis-server that serves {ft:flow}
  (redis-cli -p $BASE_PORT cluster keyslot 'ft:{ft:flow}:events', then cluster nodes),
or a gateway: kill -9 the pid listening on 8781. Ctrl-C stops everything.
INFO
wait
