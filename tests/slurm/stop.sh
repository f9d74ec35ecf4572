#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start.sh STATE_DIR started: cancel its jobs, stop
# slurmd, slurmctld and munged by the PIDs recorded in STATE_DIR (never by name), and
# remove the /etc/slurm files start.sh wrote. Safe to run twice; keeps STATE_DIR/log.
set -uo pipefail

MARKER="# written by trainmap tests/slurm/start.sh"
CONF_DIR=/etc/slurm

[ $# -eq 1 ] || {
    echo "usage: $0 STATE_DIR" >&2
    exit 2
}
STATE=$(realpath -m "$1")

# stop PIDFILE COMMAND: SIGTERM the recorded process if it still runs COMMAND, wait up to
# 10 s, then SIGKILL. Checking /proc/PID/comm guards against a recycled PID.
stop() {
    local pidfile=$1 command=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$command" ]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

ours=false
grep -qsF "$MARKER" "$CONF_DIR/slurm.conf" && ours=true

# Cancel the test cluster's jobs first, so no slurmstepd outlives slurmd.
if $ours && [ -f "$STATE/slurmctld.pid" ]; then
    jobs=$(squeue --noheader --format=%i 2>/dev/null)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 30); do
            [ -z "$(squeue --noheader --format=%i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop "$STATE/slurmd.pid" slurmd
stop "$STATE/slurmctld.pid" slurmctld
stop "$STATE/munged.pid" munged

if [ -f "$STATE/munge-socket-dir" ]; then
    socket_dir=$(cat "$STATE/munge-socket-dir")
    case $socket_dir in /tmp/trainmap-munge.*) rm -rf "$socket_dir" ;; esac
    rm -f "$STATE/munge-socket-dir"
fi
if $ours; then
    rm -f "$CONF_DIR/slurm.conf"
    grep -qsF "$MARKER" "$CONF_DIR/gres.conf" && rm -f "$CONF_DIR/gres.conf"
fi
exit 0
