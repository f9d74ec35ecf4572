#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster on localhost: munged, slurmctld, slurmd.
#
#   tests/slurm/start.sh STATE_DIR     # then: sinfo, sbatch, snakemake --executor slurm ...
#   tests/slurm/stop.sh STATE_DIR      # stops exactly the daemons started here, by PID
#
# Needs root and Debian's `slurmctld slurmd slurm-client munge` (tests/slurm/install.sh).
# Every file it writes lives in STATE_DIR, except /etc/slurm/slurm.conf and gres.conf:
# the executor plugin's job steps drop SLURM_CONF, so the config must sit at the default
# path. Both carry a marker line; an existing slurm.conf without it (a real cluster's) is
# never touched (exit 3). The cluster has one node `localhost` with this machine's CPUs,
# partition `test` (default), accounting off (status via squeue, hence MinJobAge=300,
# above 3x the executor's first status check delay) and one fake GPU (File=/dev/null) so
# that `--gpus=1` submissions are accepted. Exit codes: 0 up, 2 usage, 3 cannot start.
set -euo pipefail

MARKER="# written by trainmap tests/slurm/start.sh"
CONF_DIR=/etc/slurm
CTLD_PORT=${TRAINMAP_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${TRAINMAP_SLURMD_PORT:-16818}

die() {
    echo "tests/slurm/start.sh: $*" >&2
    exit 3
}

[ $# -eq 1 ] || {
    echo "usage: $0 STATE_DIR" >&2
    exit 2
}
[ "$(id -u)" -eq 0 ] || die "needs root (slurmd runs jobs as their user)"
for tool in munged mungekey slurmctld slurmd sinfo sbatch squeue scancel; do
    command -v "$tool" >/dev/null || die "'$tool' not found: run tests/slurm/install.sh"
done
for file in slurm.conf gres.conf; do
    if [ -e "$CONF_DIR/$file" ] && ! grep -qF "$MARKER" "$CONF_DIR/$file"; then
        die "$CONF_DIR/$file exists and was not written by this script; not touching it"
    fi
done

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=$(realpath -m "$1")
# A cluster of an earlier run that was killed before its stop.sh: stop it by its PIDs.
previous=$(sed -n "s|^$MARKER (state: \(.*\)); .*|\1|p" "$CONF_DIR/slurm.conf" 2>/dev/null || true)
if [ -n "$previous" ] && [ -d "$previous" ]; then
    "$HERE/stop.sh" "$previous" >/dev/null 2>&1 || true
fi
mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/log"
install -d -m 700 "$STATE/munge-key"
# munged insists that every directory above its socket is traversable by all users, which
# STATE_DIR's parents may not be (pytest's are 0700): the socket gets a directory in /tmp.
SOCKET_DIR=$(mktemp -d /tmp/trainmap-munge.XXXXXX)
chmod 755 "$SOCKET_DIR"
echo "$SOCKET_DIR" >"$STATE/munge-socket-dir"
SOCKET=$SOCKET_DIR/munge.socket

# Whatever fails from here on, stop what was started so far.
# shellcheck disable=SC2317  # called by the trap
stop_on_failure() {
    local status=$?
    [ "$status" -eq 0 ] || "$HERE/stop.sh" "$STATE" >/dev/null 2>&1 || true
}
trap stop_on_failure EXIT

mungekey --create --force --keyfile="$STATE/munge-key/munge.key"
munged --foreground --socket="$SOCKET" \
    --key-file="$STATE/munge-key/munge.key" --pid-file="$SOCKET_DIR/munged.pid" \
    --seed-file="$STATE/munge-key/munged.seed" --log-file="$STATE/log/munged.log" \
    >>"$STATE/log/munged.out" 2>&1 &
echo $! >"$STATE/munged.pid"

cpus=$(nproc)
mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
mkdir -p "$CONF_DIR"
cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER (state: $STATE); tests/slurm/stop.sh removes it
ClusterName=trainmaptest
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER (state: $STATE); tests/slurm/stop.sh removes it
NodeName=localhost Name=gpu File=/dev/null
EOF

# Wait for munged's socket before the SLURM daemons try to authenticate.
for _ in $(seq 50); do
    [ -S "$SOCKET" ] && break
    sleep 0.1
done
[ -S "$SOCKET" ] || die "munged did not start: $(cat "$STATE/log/munged.out")"

slurmctld -D -c -i >>"$STATE/log/slurmctld.out" 2>&1 &
echo $! >"$STATE/slurmctld.pid"
slurmd -D -N localhost >>"$STATE/log/slurmd.out" 2>&1 &
echo $! >"$STATE/slurmd.pid"

for _ in $(seq 60); do
    state=$(sinfo --noheader --nodes=localhost --format=%t 2>/dev/null || true)
    [ "$state" = idle ] && exit 0
    sleep 0.5
done
die "node did not become idle (state: '${state:-none}'); logs in $STATE/log"
