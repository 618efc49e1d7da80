#!/bin/bash
# One mentions replica serving a snapshot inside a memory cgroup (v1) capped at CAP_MB,
# loaded by wrk; prints wrk's figures, the replica's resident memory and the cgroup's.
#
#   bench/mentions_memory_cap.sh DATA_DIR CGROUP_DIR CAP_MB
#
# DATA_DIR comes from bench/mentions_snapshot.py; CGROUP_DIR is a memory cgroup to make
# (e.g. /sys/fs/cgroup/memory/hubbub). The page cache is dropped first, so the replica
# starts cold, as after a reboot; the second wrk run shows it warm.
set -euo pipefail
DATA_DIR=$1 CGROUP=$2 CAP_MB=$3 PORT=${PORT:-8730}
mkdir -p "$CGROUP"
sync && echo 1 > /proc/sys/vm/drop_caches
echo $((CAP_MB * 1024 * 1024)) > "$CGROUP/memory.limit_in_bytes"
bash -c "echo \$\$ > $CGROUP/cgroup.procs; exec env HUBBUB_DATA_DIR=$DATA_DIR \
  HUBBUB_LOG_LEVEL=warning .venv/bin/hubbub serve --role mentions --port $PORT" &
SERVER=$!
trap 'kill $SERVER' EXIT
until ss -ltn | grep -q ":$PORT "; do sleep 0.2; done
cat > "$DATA_DIR/paths.lua" <<LUA
local paths = {}
for line in io.lines("$DATA_DIR/paths.txt") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
LUA
for connections in 4 8; do
  wrk -t1 -c$connections -d10s --latency -s "$DATA_DIR/paths.lua" "http://127.0.0.1:$PORT" \
    | grep -E "Requests/sec|  50%|  99%|Non-2xx|Socket errors"
done
grep -E "VmRSS|RssAnon|RssFile" "/proc/$(pgrep -f "port $PORT" | head -1)/status"
echo "cgroup: $(( $(cat "$CGROUP/memory.max_usage_in_bytes") / 1048576 )) MB at most," \
  "limit hit $(cat "$CGROUP/memory.failcnt") times"
