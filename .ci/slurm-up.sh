#!/usr/bin/env bash
# A one-node Slurm cluster on this machine for the Slurm tests: installs
# Debian's slurm-wlm and munge when missing, then starts munged, slurmctld
# and slurmd as root from files under one directory (CNN_SLURM_DIR, default
# /tmp/cnn-slurm) and waits until `sinfo` shows the node idle. Nothing is
# written outside that directory: clients find the cluster through
#   export SLURM_CONF=$CNN_SLURM_DIR/slurm.conf
# which this script prints as its last line. .ci/slurm-down.sh stops it.
set -euo pipefail

dir="${CNN_SLURM_DIR:-/tmp/cnn-slurm}"
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-up: run as root (slurmd starts jobs as their users)" >&2
  exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# A cluster left by an earlier run is stopped first.
"$(dirname "$0")/slurm-down.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir"/{munge,state,spool,log}
chmod 700 "$dir/munge"

# munged with a fresh key and its own socket (not the system's).
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force \
  --key-file="$dir/munge/munge.key" \
  --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" \
  --seed-file="$dir/munge/munged.seed" \
  --log-file="$dir/log/munged.log"

host="$(hostname -s)"
cpus="$(nproc)"
cat > "$dir/slurm.conf" <<CONF
# Written by .ci/slurm-up.sh: a one-node cluster for cnn's Slurm tests.
ClusterName=cnn-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ReturnToService=2
KillWait=30
MinJobAge=300
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"

slurmctld -i
slurmd

# The node answers once slurmd has registered (a few seconds).
for _ in $(seq 1 60); do
  state="$(sinfo -h -N -o %t 2>/dev/null | head -n1 || true)"
  if [ "$state" = "idle" ]; then
    echo "slurm-up: node $host idle ($cpus CPUs), partition debug, files in $dir" >&2
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm-up: the node did not become idle in 60 s (state '${state:-none}'); logs in $dir/log" >&2
exit 1
