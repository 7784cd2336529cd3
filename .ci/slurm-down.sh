#!/usr/bin/env bash
# Stops the cluster .ci/slurm-up.sh started (the daemons named by the pid
# files under CNN_SLURM_DIR, default /tmp/cnn-slurm) and removes its files.
set -uo pipefail

dir="${CNN_SLURM_DIR:-/tmp/cnn-slurm}"
[ -d "$dir" ] || exit 0
stop() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}
stop "$dir/slurmd.pid"
stop "$dir/slurmctld.pid"
stop "$dir/munge/munged.pid"
rm -rf "$dir"
echo "slurm-down: stopped the cluster in $dir" >&2
