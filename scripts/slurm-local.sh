#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests (issue 10): slurmctld and slurmd on the
# local host, one partition "debug", no cgroups (containers usually lack them).
#
#   scripts/slurm-local.sh up       install (if missing), configure and start; wait until the node is idle
#   scripts/slurm-local.sh down     stop the daemons started by "up" (by their pid files)
#   scripts/slurm-local.sh status   show the daemons and `sinfo`
#
# Root only (it installs packages and runs the daemons as root). Debian/Ubuntu (apt-get).
# "up" is idempotent: run twice, it leaves a running cluster alone.
#
# ACCOUNTING (SLURM_LOCAL_ACCOUNTING, default "slurmdbd"): submitit reads every job state with
# `sacct` and has no squeue/scontrol fallback; without accounting storage sacct exits 1 ("Slurm
# accounting storage is disabled"), submitit logs "Bypassing sacct error ..., status may be
# inaccurate" and a cancelled or failed job stays UNKNOWN (never done). So by default "up" also
# installs slurmdbd and mariadb-server and runs them locally (about 20 s to install, 5 s to start).
# SLURM_LOCAL_ACCOUNTING=none: no database; jobcomp/filetxt records finished jobs, which only
# `sacct --completion` reads (submitit does not), so submitit's warning stays.
# (In Slurm 22.05 `sacct --completion` also mangles array tasks.) To switch modes: down, then up.
set -euo pipefail

# The clients (sinfo, sbatch, sacct) and slurmdbd read /etc/slurm by default: keep it there.
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}
ACCOUNTING=${SLURM_LOCAL_ACCOUNTING:-slurmdbd}
DBD_CONF=$CONF_DIR/slurmdbd.conf
DB_RUN_DIR=/run/mysqld
DB_SOCKET=$DB_RUN_DIR/mysqld.sock
DB_PIDFILE=$DB_RUN_DIR/mysqld.pid
# A local test database reachable only through its socket on this host.
DB_USER=slurm
DB_PASS=slurm-local

die() { echo "slurm-local: $*" >&2; exit 1; }
log() { echo "slurm-local: $*"; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts slurmctld/slurmd)"; }

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  local pkgs=""
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null || pkgs="slurm-wlm"
  command -v munged >/dev/null || pkgs="$pkgs munge"
  if [ "$ACCOUNTING" = slurmdbd ]; then
    command -v slurmdbd >/dev/null || pkgs="$pkgs slurmdbd"
    command -v mariadbd >/dev/null || pkgs="$pkgs mariadb-server"
  fi
  [ -n "$pkgs" ] || return 0
  command -v apt-get >/dev/null || die "missing$pkgs and no apt-get to install them"
  log "installing$pkgs (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: the packages' postinst must not try to start services (no systemd here).
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; made_policy=1; fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs; } >/tmp/slurm-local-apt.log 2>&1 || rc=$?
  [ -z "$made_policy" ] || rm -f $policy
  [ $rc -eq 0 ] || die "apt-get install$pkgs failed (see /tmp/slurm-local-apt.log)"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key >/dev/null
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  fi
  # munged refuses keys and directories with loose ownership or modes.
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  chmod 0400 /etc/munge/munge.key
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  log "starting munged"
  # runuser: munged must not run as root. Its pid file is /run/munge/munged.pid.
  runuser -u munge -- /usr/sbin/munged || die "munged failed to start (see /var/log/munge/munged.log)"
  for _ in $(seq 20); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.25
  done
  die "munged started but munge/unmunge does not work (see /var/log/munge/munged.log)"
}

accounting_lines() {
  case "$ACCOUNTING" in
    slurmdbd) printf '%s\n' "AccountingStorageType=accounting_storage/slurmdbd" "AccountingStorageHost=$1" ;;
    none) printf '%s\n' "AccountingStorageType=accounting_storage/none" "JobCompType=jobcomp/filetxt" \
            "JobCompLoc=$LOG_DIR/jobcomp.txt" ;;
    *) die "SLURM_LOCAL_ACCOUNTING must be slurmdbd or none, not '$ACCOUNTING'" ;;
  esac
}

db_ok() { mariadb --protocol=socket -S "$DB_SOCKET" -u root -e 'SELECT 1' >/dev/null 2>&1; }

start_db() {
  [ "$ACCOUNTING" = slurmdbd ] || return 0
  mkdir -p "$DB_RUN_DIR" "$LOG_DIR"
  chown mysql:mysql "$DB_RUN_DIR"
  if ! db_ok; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/tmp/slurm-local-db.log 2>&1 \
      || die "mariadb-install-db failed (see /tmp/slurm-local-db.log)"
    log "starting mariadbd"
    # Socket only (no TCP port). innodb_lock_wait_timeout=900 is what slurmdbd asks for; it would also
    # like a larger buffer pool (it logs "not recommended values: innodb_buffer_pool_size"), which a
    # test cluster with a few rows does not need.
    setsid mariadbd --user=mysql --datadir=/var/lib/mysql --socket="$DB_SOCKET" --pid-file="$DB_PIDFILE" \
      --skip-networking --innodb-buffer-pool-size=32M --innodb-lock-wait-timeout=900 --performance-schema=OFF \
      --log-error="$LOG_DIR/mariadb.log" </dev/null >/dev/null 2>&1 &
    for _ in $(seq 60); do db_ok && break; sleep 0.5; done
    db_ok || die "mariadbd did not answer within 30s (see $LOG_DIR/mariadb.log)"
  fi
  mariadb --protocol=socket -S "$DB_SOCKET" -u root -e "
    CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';" || die "could not create the slurm database user"
}

write_dbd_conf() {
  umask 077
  cat >"$DBD_CONF.new" <<CONF
# Written by scripts/slurm-local.sh: accounting for the one-node test cluster.
AuthType=auth/munge
DbdHost=localhost
# Root in a container (see slurm.conf).
SlurmUser=root
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=$DB_USER
StoragePass=$DB_PASS
CONF
  mv -f "$DBD_CONF.new" "$DBD_CONF"
  umask 022
}

start_dbd() {
  [ "$ACCOUNTING" = slurmdbd ] || return 0
  write_dbd_conf
  if ! pid_alive "$RUN_DIR/slurmdbd.pid"; then
    log "starting slurmdbd"
    slurmdbd || die "slurmdbd failed to start (see $LOG_DIR/slurmdbd.log)"
  fi
  for _ in $(seq 60); do
    sacctmgr -n -P list cluster >/dev/null 2>&1 && break
    sleep 0.5
  done
  sacctmgr -n -P list cluster >/dev/null 2>&1 || die "slurmdbd does not answer sacctmgr within 30s (see $LOG_DIR/slurmdbd.log)"
  if [ -z "$(sacctmgr -n -P list cluster local format=cluster 2>/dev/null)" ]; then
    sacctmgr -i add cluster local >/dev/null || die "sacctmgr add cluster local failed"
  fi
}

write_conf() {
  local host node
  host=$(hostname -s)
  # The node as slurmd sees it (CPUs, sockets, cores, threads, memory); UpTime is not a config key.
  node=$(slurmd -C | grep '^NodeName=' ) || die "slurmd -C failed"
  mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
  cat >"$CONF.new" <<CONF
# Written by scripts/slurm-local.sh: a one-node cluster for tests. Rewritten on every "up".
ClusterName=local
SlurmctldHost=$host
# We are root in a container with no "slurm" service setup: the daemons run as root.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups in a container: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
# No mail on this node (slurmctld otherwise logs "MailProg is invalid").
MailProg=/bin/true
ReturnToService=2
# A cancelled job gets SIGKILL 5 s after SIGTERM (default 30 s; submitit's jobs ignore SIGTERM, so
# its CPUs stay allocated that long).
KillWait=5
JobAcctGatherType=jobacct_gather/linux
$(accounting_lines "$host")
$node
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  if cmp -s "$CONF.new" "$CONF"; then rm -f "$CONF.new"; else mv -f "$CONF.new" "$CONF"; CONF_CHANGED=1; fi
}

start_daemons() {
  if [ -n "${CONF_CHANGED:-}" ] && pid_alive "$RUN_DIR/slurmctld.pid" && pid_alive "$RUN_DIR/slurmd.pid"; then
    log "slurm.conf changed: scontrol reconfigure"
    scontrol reconfigure || die "scontrol reconfigure failed (try: $0 down; $0 up)"
  fi
  if ! pid_alive "$RUN_DIR/slurmctld.pid"; then
    log "starting slurmctld"
    # -i: ignore state left by an earlier cluster that is incompatible with this conf.
    slurmctld -f "$CONF" -i || die "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
  fi
  if ! pid_alive "$RUN_DIR/slurmd.pid"; then
    log "starting slurmd"
    slurmd -f "$CONF" || die "slurmd failed to start (see $LOG_DIR/slurmd.log)"
  fi
}

wait_idle() {
  local deadline=$((SECONDS + WAIT_S)) state=""
  while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
    case "$state" in
      idle|mixed|allocated|completing) log "node $(hostname -s) is $state"; return ;;
      drain*|down*) scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node not idle after ${WAIT_S}s (sinfo state: '${state:-no answer}'; see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log)"
}

stop_pidfile() {
  local name=$1 pidfile=$2 pid
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }; sleep 0.25; done
  log "$name did not stop after 30s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

cmd_up() {
  need_root
  install_packages
  start_munge
  write_conf
  start_db
  start_dbd
  start_daemons
  wait_idle
}

cmd_down() {
  need_root
  stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
  stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
  stop_pidfile slurmdbd "$RUN_DIR/slurmdbd.pid"
  stop_pidfile mariadbd "$DB_PIDFILE"
  stop_pidfile munged /run/munge/munged.pid
}

cmd_status() {
  local rc=0 d
  local daemons="slurmctld slurmd"
  grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF" 2>/dev/null && daemons="slurmdbd $daemons"
  for d in $daemons; do
    if pid_alive "$RUN_DIR/$d.pid"; then echo "$d: running (pid $(cat "$RUN_DIR/$d.pid"))"
    else echo "$d: stopped"; rc=1; fi
  done
  if pid_alive /run/munge/munged.pid; then echo "munged: running (pid $(cat /run/munge/munged.pid))"
  else echo "munged: stopped"; rc=1; fi
  if [ "${daemons%% *}" = slurmdbd ]; then
    if pid_alive "$DB_PIDFILE"; then echo "mariadbd: running (pid $(cat "$DB_PIDFILE"))"
    else echo "mariadbd: stopped"; rc=1; fi
  fi
  [ $rc -eq 0 ] && sinfo
  return $rc
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
