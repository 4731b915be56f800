#!/usr/bin/env bash
# Stop the test cluster started by slurm-up.sh. Idempotent, never fails.
#   --slurm-only   keep munged running (slurm-up.sh uses this for restarts)
set -uo pipefail

STATE=${GANABLATE_SLURM_DIR:-/tmp/ganablate-slurm}
SYSCONF=/etc/slurm/slurm.conf

# Kill the daemon whose pid is in $1, but only if it is still the process
# named $2 (pid files outlive reboots and pids get reused).
stop() {
  local pidfile=$1 name=$2 pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
    echo "slurm-down: stopped $name ($pid)" >&2
  fi
  rm -f "$pidfile"
}

# Cancel jobs first, otherwise their slurmstepd/processes outlive slurmd.
if [[ -s $STATE/run/slurmctld.pid ]] && command -v squeue >/dev/null; then
  jobs=$(timeout 10 squeue -h -t PD,R,CG -o %A 2>/dev/null)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086  # one argument per job id
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 20); do
      [[ -z $(timeout 5 squeue -h -t R,CG -o %A 2>/dev/null) ]] && break
      sleep 0.5
    done
  fi
fi

stop "$STATE/run/slurmd.pid" slurmd
stop "$STATE/run/slurmctld.pid" slurmctld
# slurmd leaves its (now empty) cgroup v1 hierarchy behind; tidy it up.
for d in /sys/fs/cgroup/*/"slurm_$(hostname -s)"; do
  [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done

if [[ ${1:-} != --slurm-only ]]; then
  stop "$STATE/run/munged.pid" munged
  [[ $(readlink "$SYSCONF" 2>/dev/null) == "$STATE/etc/slurm.conf" ]] && rm -f "$SYSCONF"
fi
exit 0
