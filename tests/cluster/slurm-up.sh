#!/usr/bin/env bash
# Bring up a throw-away one-node SLURM cluster on this host so that
# `snakemake --executor slurm` (profiles/slurm) can be tested for real.
# Idempotent: re-running with an unchanged config leaves running daemons alone.
# Undo with tests/cluster/slurm-down.sh.
#
# Env knobs:
#   GANABLATE_SLURM_DIR          state, spool, logs, slurm.conf (/tmp/ganablate-slurm)
#   GANABLATE_SLURM_PARTITION    partition name (debug)
#   GANABLATE_SLURM_MEM_HEADROOM MiB of RAM kept back from SLURM (1024)
#   GANABLATE_SLURM_TIMEOUT      seconds to wait for the node to go idle (60)
#   GANABLATE_SLURM_CGROUPS      auto|yes|no: confine jobs with cgroups (auto)
set -euo pipefail

STATE=${GANABLATE_SLURM_DIR:-/tmp/ganablate-slurm}
PARTITION=${GANABLATE_SLURM_PARTITION:-debug}
HEADROOM=${GANABLATE_SLURM_MEM_HEADROOM:-1024}
TIMEOUT=${GANABLATE_SLURM_TIMEOUT:-60}
CGROUPS=${GANABLATE_SLURM_CGROUPS:-auto}
CONF=$STATE/etc/slurm.conf
# Client tools (sbatch/squeue/srun inside jobs, the Snakemake plugin) read the
# compiled-in default path, so we link it to our file instead of relying on
# every caller exporting SLURM_CONF.
SYSCONF=/etc/slurm/slurm.conf
MARK="# managed by ganablate tests/cluster/slurm-up.sh"

log() { echo "slurm-up: $*" >&2; }
die() {
  log "ERROR: $*"
  for f in "$STATE"/log/*.log /var/log/munge/munged.log; do
    [[ -f $f ]] && { echo "===== tail $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
# Node usable: registered (no "*" = not responding) and not drained/down.
ready() { [[ $(sinfo -h -n "$NODE" -o %T 2>/dev/null) =~ ^(idle|mixed|allocated)$ ]]; }

[[ $EUID -eq 0 ]] || die "must run as root (installs packages, starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

mkdir -p "$STATE"/{etc,log,run,ctld,spool}

# munge: SLURM's only auth plugin here; a key must exist and munged must run.
if [[ ! -s /etc/munge/munge.key ]]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  # Remember that we own it, so slurm-down.sh stops only a munged we started.
  cp /run/munge/munged.pid "$STATE/run/munged.pid"
  munge -n </dev/null | unmunge >/dev/null || die "munge round-trip failed"
fi

NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - HEADROOM ))

# cgroups make --mem a hard limit (OOM kill -> OUT_OF_MEMORY) and pin
# --cpus-per-task cores, like a production cluster. Only cgroup v1 is probed
# (tested); containers without a writable hierarchy fall back to plain
# process tracking, where --mem is only a scheduling constraint.
if [[ $CGROUPS == auto ]]; then
  probe=/sys/fs/cgroup/memory/ganablate-probe-$$
  if mkdir "$probe" 2>/dev/null; then rmdir "$probe"; CGROUPS=yes; else CGROUPS=no; fi
fi
if [[ $CGROUPS == yes ]]; then
  PLUGINS="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
JobAcctGatherType=jobacct_gather/cgroup"
  printf '%s\n' "CgroupPlugin=autodetect" "ConstrainRAMSpace=yes" \
    "ConstrainCores=yes" >"$STATE/etc/cgroup.conf"
else
  PLUGINS="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none"
  rm -f "$STATE/etc/cgroup.conf"
fi

if [[ -e $SYSCONF && ! -L $SYSCONF ]] && ! grep -qF "$MARK" "$SYSCONF"; then
  die "$SYSCONF exists and is not ours; refusing to overwrite a real SLURM config"
fi

mkdir -p "$(dirname "$SYSCONF")"
ln -sfn "$CONF" "$SYSCONF"

cat >"$CONF.new" <<EOF
$MARK
ClusterName=ganablate
SlurmctldHost=$NODE(127.0.0.1)
# root-run daemons: a test cluster, no need for a slurm service account
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
$PLUGINS
# No slurmdbd: sacct cannot work, so the Snakemake plugin must poll with squeue
# (status_command: squeue); squeue only sees finished jobs for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
# Per-core/per-MiB allocation so --cpus-per-task and --mem are honoured.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without this a job lacking --mem would be given the whole node's memory.
DefMemPerCPU=1024
# Reject at sbatch time a job that can never fit (e.g. a Snakemake group job
# summing more threads than the node has) instead of leaving it pending forever.
EnforcePartLimits=ALL
# A node marked down for not responding rejoins once slurmd registers again.
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

if cmp -s "$CONF.new" "$CONF" && alive "$STATE/run/slurmctld.pid" \
   && alive "$STATE/run/slurmd.pid" && ready; then
  rm "$CONF.new"
  log "already running with this config"
else
  mv "$CONF.new" "$CONF"
  "$(dirname "$0")/slurm-down.sh" --slurm-only
  log "starting slurmctld and slurmd (node $NODE: ${CPUS} CPUs, ${MEM_MB} MiB, cgroups=$CGROUPS)"
  # -c: start clean; recovered state would keep e.g. a node drained by an
  # earlier bad config, and no job outlives slurm-down.sh anyway.
  slurmctld -c -f "$CONF" || die "slurmctld failed to start"
  slurmd -f "$CONF" -N "$NODE" || die "slurmd failed to start"
fi

start=$SECONDS
until ready; do
  if (( SECONDS - start > TIMEOUT )); then
    sinfo -N -l >&2 || true
    scontrol show node "$NODE" >&2 || true
    die "node $NODE not idle after ${TIMEOUT}s"
  fi
  sleep 1
done
log "node $NODE idle after $((SECONDS - start))s; partition $PARTITION:"
sinfo -N -o "%N %P %T %c %m" >&2
