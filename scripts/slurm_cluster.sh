#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, to try the suite's cluster path (and to test
# it in CI): slurmctld, slurmd and slurmdbd with MariaDB accounting, authenticated by munge.
#
#   scripts/slurm_cluster.sh up       # install what is missing (Debian/Ubuntu, as root), configure, start
#   scripts/slurm_cluster.sh install  # only install what is missing (CI does it while pip runs)
#   scripts/slurm_cluster.sh status   # sinfo and squeue
#   scripts/slurm_cluster.sh down     # stop every daemon it started (by their pid files)
#
# Everything lives in $NERO_SLURM_DIR (default /tmp/nero-slurm): configs, state, logs, pid files.
# Commands must see the config: export SLURM_CONF=$NERO_SLURM_DIR/slurm.conf (printed by `up`).
# Settings that matter for the suite: accounting (so that submitit sees a job cancelled before it
# wrote its result), DefMemPerCPU (else one job takes the node's whole memory), a short credential
# lifetime (a requeued job restarts in about 10 s, not 2 min), and EnforcePartLimits=ALL (an
# impossible request is refused at submission instead of pending forever).
set -euo pipefail

DIR=${NERO_SLURM_DIR:-/tmp/nero-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)
PACKAGES=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)

say() { printf 'slurm_cluster: %s\n' "$*" >&2; }

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "missing ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${missing[*]}) or run as root"
    exit 2
  fi
  say "installing ${missing[*]}"
  # No service manager here: the packages' own start scripts may fail; we start the daemons ourselves.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "$what did not come up within ${seconds}s; see the logs in $DIR"
  exit 1
}

start_munge() {
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 munge munge -n
    pgrep -u munge -x munged | head -n 1 > "$DIR/munged.pid"
  fi
}

start_mariadb() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! mysqladmin ping >/dev/null 2>&1; then
    # its pid file where the mysql user may write it; a copy beside the others for `down`
    (/usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/nero.pid >"$DIR/mariadb.log" 2>&1 &)
    wait_for 60 MariaDB mysqladmin ping
    cp /run/mysqld/nero.pid "$DIR/mariadb.pid"
  fi
  mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

write_configs() {
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  chown -R slurm:slurm "$DIR/state" "$DIR/log"
  cat > "$CONF" <<EOF
# Written by scripts/slurm_cluster.sh: a single-node cluster for trying the suite's SLURM path.
ClusterName=nero
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( mem_mb / cpus / 2 ))
EnforcePartLimits=ALL
MinJobAge=30
KillWait=10
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm "$DIR/slurmdbd.conf" && chmod 600 "$DIR/slurmdbd.conf"
}

up() {
  install_missing
  mkdir -p "$DIR"
  export SLURM_CONF=$CONF
  write_configs
  start_munge
  start_mariadb
  pgrep -x slurmdbd >/dev/null || slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster nero >/dev/null 2>&1 || true
  sacctmgr -i add account nero Cluster=nero >/dev/null 2>&1 || true
  sacctmgr -i add user root Account=nero >/dev/null 2>&1 || true
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  wait_for 60 "the node" bash -c "sinfo -h -o %T | grep -qx idle"
  say "up: $(sinfo -h -o '%D node, %c CPUs, %m MB, %T'); export SLURM_CONF=$CONF"
}

stop() {  # stop NAME: the daemon whose pid file is $DIR/NAME.pid
  local pidfile=$DIR/$1.pid pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

down() {
  export SLURM_CONF=$CONF
  scancel --user="$(id -un)" 2>/dev/null || true
  stop slurmd
  stop slurmctld
  stop slurmdbd
  stop mariadb
  stop munged
  say "down"
}

case "${1:-}" in
  up) up ;;
  install) install_missing ;;
  down) down ;;
  status) export SLURM_CONF=$CONF; sinfo; squeue ;;
  -h|--help|help) echo "usage: $0 up|install|down|status (see the comment at the top of $0)" ;;
  *) echo "usage: $0 up|install|down|status" >&2; exit 2 ;;
esac
