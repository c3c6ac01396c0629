#!/usr/bin/env bash
# A real single-node SLURM cluster for tests and CI.
#
#   tests/slurm/cluster.sh start  [WORKDIR]   start munge (if needed), slurmctld, slurmd
#   tests/slurm/cluster.sh stop   [WORKDIR]   stop only the daemons this script started
#   tests/slurm/cluster.sh status [WORKDIR]   report health; prints `export SLURM_CONF=...`
#
# WORKDIR defaults to $QDPHONON_SLURM_WORKDIR or /tmp/qdphonon-slurm.  It holds the
# generated slurm.conf, state/spool directories, logs and the PIDs we started.
#
# Needs root and the Debian packages slurm-wlm + munge (slurmctld, slurmd, munged
# and the client commands).  No slurmdbd, no systemd.  Never uninstalls anything;
# never kills a daemon it did not start (cp2k depends on libmunge2, and a munged
# that was already running is left alone).
#
# Client commands (sbatch/squeue/sinfo/scancel) must see our slurm.conf:
#   eval "$(tests/slurm/cluster.sh status | grep '^export SLURM_CONF=')"
# Caveat: snakemake-executor-plugin-slurm's job step strips every SLURM_* variable
# (SLURM_CONF included) before running the in-job `srun`, so inside a job the
# default /etc/slurm/slurm.conf is read.  If that file does not exist, `start`
# creates it as a symlink to our conf (and `stop` removes it again, only if it is
# still our symlink).  If a foreign /etc/slurm/slurm.conf exists it is never
# touched; `start` then warns that srun inside plugin jobs will use that file.
#
# Environment knobs:
#   SLURM_TEST_START_TIMEOUT  seconds to wait for the node to be idle (default 60)
#   SLURM_TEST_CPUS           declare this many CPUs (>= real ones oversubscribes,
#                             via SlurmdParameters=config_overrides)
#   SLURM_TEST_DEF_MEM_PER_CPU  DefMemPerCPU in MB (default RealMemory/CPUs/2)
set -u -o pipefail

ACTION=${1:-status}
W=${2:-${QDPHONON_SLURM_WORKDIR:-/tmp/qdphonon-slurm}}
W=$(mkdir -p "$W" && cd "$W" && pwd -P)
CONF=$W/etc/slurm.conf
PIDS=$W/pids                 # lines "<name> <pid>" of the daemons we started
ETC_LINK=/etc/slurm/slurm.conf
ETC_LINK_MARK=$W/etc_symlink_created
MUNGE_SOCKET=/run/munge/munge.socket.2
START_TIMEOUT=${SLURM_TEST_START_TIMEOUT:-60}
NODE=$(hostname -s)
CLUSTER=qdphonon

log() { echo "cluster.sh: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root"; exit 2
    fi
}

have_slurm() {
    for b in slurmctld slurmd munged sinfo sbatch squeue scontrol; do
        command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$b" >/dev/null 2>&1 || {
            log "missing binary: $b (apt-get install slurm-wlm munge)"; return 1; }
    done
}
export PATH=$PATH:/usr/sbin:/usr/bin

# ---------------------------------------------------------------- PID bookkeeping
recorded_pid() { [ -f "$PIDS" ] && awk -v n="$1" '$1==n {print $2}' "$PIDS" | tail -1; }

# true if PID is alive and its executable is the expected daemon (guards PID reuse)
pid_is() {
    local pid=$1 name=$2 stat
    [ -n "$pid" ] || return 1
    # one read of /proc/PID/stat: "PID (comm) STATE ..."; a zombie (exited, not yet
    # reaped) does not count as running
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ "$stat" == "$pid ($name) "[^Z]* ]]
}

record_pid() { echo "$1 $2" >>"$PIDS"; }

kill_recorded() {
    local name=$1 pid
    pid=$(recorded_pid "$name")
    if pid_is "$pid" "$name"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 50); do pid_is "$pid" "$name" || break; sleep 0.2; done
        if pid_is "$pid" "$name"; then
            log "$name ($pid) ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            sleep 0.2
        fi
        log "stopped $name ($pid)"
    fi
}

# ---------------------------------------------------------------- munge
munge_works() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

ensure_munge() {
    if munge_works; then
        local pid; pid=$(recorded_pid munged)
        if pid_is "$pid" munged; then log "munged already running (ours, $pid)"
        else log "munged already running (not ours; left alone)"; fi
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        log "generating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    touch "$W/log/munged.log"; chown munge:munge "$W/log/munged.log"
    rm -f /run/munge/munged.pid
    # munged daemonizes itself and writes its PID file.
    runuser -u munge -- munged --log-file="$W/log/munged.log" \
        --pid-file=/run/munge/munged.pid --socket="$MUNGE_SOCKET" </dev/null >>"$W/log/munged.log" 2>&1 9>&- || {
        log "munged failed to start"; cat "$W/log/munged.log" >&2; return 1; }
    local pid=""
    for _ in $(seq 1 50); do
        pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
        munge_works && [ -n "$pid" ] && break
        sleep 0.1
    done
    if ! munge_works; then log "munged not answering"; cat "$W/log/munged.log" >&2; return 1; fi
    record_pid munged "$pid"
    log "started munged ($pid)"
}

# ---------------------------------------------------------------- slurm.conf
write_conf() {
    mkdir -p "$W/etc" "$W/state" "$W/spool" "$W/log" "$W/run"
    local hw cpus mem nodeline params="" defmem
    hw=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    # leave a little slack so slurmd never reports "Low RealMemory"
    mem=$(( mem > 1024 ? mem - 256 : mem ))
    if [ -n "${SLURM_TEST_CPUS:-}" ] && [ "$SLURM_TEST_CPUS" != "$cpus" ]; then
        cpus=$SLURM_TEST_CPUS
        nodeline="NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN"
        params="SlurmdParameters=config_overrides"
    else
        # slurmd -C line minus its NodeName/RealMemory, plus our address
        nodeline="NodeName=$NODE NodeAddr=127.0.0.1 $(sed -e 's/NodeName=[^ ]* //' \
            -e 's/RealMemory=[0-9]*//' -e 's/UpTime=.*//' <<<"$hw") RealMemory=$mem State=UNKNOWN"
    fi
    defmem=${SLURM_TEST_DEF_MEM_PER_CPU:-$(( mem / cpus / 2 ))}
    : >"$W/etc/plugstack.conf"
    cat >"$CONF.tmp" <<EOF
# Generated by tests/slurm/cluster.sh -- single-node test cluster, no accounting.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/run/slurmctld.pid
SlurmdPidFile=$W/run/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$W/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
# PMIx lets srun start OpenMPI ranks (Debian: libpmix-dev provides the libpmix.so Slurm loads)
MpiDefault=pmix
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without DefMemPerCPU a job with no memory request gets the whole node
DefMemPerCPU=$defmem
# keep finished jobs visible to squeue for 10 min: snakemake-executor-plugin-slurm
# uses squeue for status (no slurmdbd) and falls back to sacct if MinJobAge is low
MinJobAge=600
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MessageTimeout=20
$params
$nodeline
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

ensure_etc_link() {
    # see header: the plugin strips SLURM_CONF inside jobs
    if [ -L "$ETC_LINK" ] && [ "$(readlink "$ETC_LINK")" = "$CONF" ]; then
        return 0
    fi
    if [ -e "$ETC_LINK" ] || [ -L "$ETC_LINK" ]; then
        log "WARNING: $ETC_LINK exists and is not ours; it is left alone, so srun" \
            "inside snakemake-executor-plugin-slurm jobs (which drop SLURM_CONF) reads it"
        return 0
    fi
    mkdir -p "$(dirname "$ETC_LINK")"
    ln -s "$CONF" "$ETC_LINK" && echo "$ETC_LINK" >"$ETC_LINK_MARK"
    log "created symlink $ETC_LINK -> $CONF"
}

remove_etc_link() {
    if [ -f "$ETC_LINK_MARK" ]; then
        if [ -L "$ETC_LINK" ] && [ "$(readlink "$ETC_LINK")" = "$CONF" ]; then
            rm -f "$ETC_LINK"
            log "removed symlink $ETC_LINK"
        fi
        rm -f "$ETC_LINK_MARK"
    fi
}

# ---------------------------------------------------------------- health
node_state() { SLURM_CONF=$CONF timeout 10 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1; }

healthy() {
    pid_is "$(recorded_pid slurmctld)" slurmctld || return 1
    pid_is "$(recorded_pid slurmd)" slurmd || return 1
    munge_works || return 1
    case "$(node_state)" in
        idle|mix|alloc|comp|idle~|resv) return 0 ;;   # usable
        *) return 1 ;;
    esac
}

dump_logs() {
    for f in "$W"/log/*.log "$W"/log/*.stderr; do
        [ -f "$f" ] || continue
        echo "----- $f (tail) -----" >&2
        tail -n 40 "$f" >&2
    done
    echo "----- sinfo -----" >&2
    SLURM_CONF=$CONF timeout 10 sinfo -N -l >&2 2>&1 || true
    SLURM_CONF=$CONF timeout 10 scontrol show node "$NODE" >&2 2>&1 || true
}

# ---------------------------------------------------------------- actions
do_stop() {
    if [ -f "$PIDS" ] && pid_is "$(recorded_pid slurmctld)" slurmctld; then
        # cancel whatever is still queued/running on our cluster so no slurmstepd lingers
        SLURM_CONF=$CONF timeout 15 scancel --full --quiet --partition=debug 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(SLURM_CONF=$CONF timeout 5 squeue -h -t R,CG,PD -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    kill_recorded slurmd
    kill_recorded slurmctld
    kill_recorded munged
    rm -f "$PIDS"
    remove_etc_link
}

# slurmctld/slurmd of an earlier session on this workdir that we no longer have a PID
# for (a killed test run, an overwritten pid file) would hold the ports: stop them.
kill_strays() {
    local pid name
    for name in slurmd slurmctld; do
        for pid in $(pgrep -x "$name" 2>/dev/null); do
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || continue
            log "stopping stray $name ($pid) on $CONF"
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 50); do pid_is "$pid" "$name" || break; sleep 0.2; done
            pid_is "$pid" "$name" && kill -KILL "$pid" 2>/dev/null
        done
    done
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_ports_free() {
    local port
    for port in 6817 6818; do
        for _ in $(seq 1 50); do port_busy "$port" || break; sleep 0.2; done
        if port_busy "$port"; then
            log "port $port is still in use:"; ss -Hltnp "sport = :$port" >&2 || true
            return 1
        fi
    done
}

launch_daemons() {
    # (9>&- : the daemons must not inherit our lock fd)
    # foreground daemons (-D) detached with setsid; $! is the daemon's own PID.
    # -i: ignore unreadable old state; -c: start from a clean job state
    setsid slurmctld -D -c -i -f "$CONF" </dev/null >>"$W/log/slurmctld.stderr" 2>&1 9>&- &
    record_pid slurmctld $!
    setsid slurmd -D -f "$CONF" -N "$NODE" </dev/null >>"$W/log/slurmd.stderr" 2>&1 9>&- &
    record_pid slurmd $!
}

# 0: node usable; 1: a daemon died; 2: timed out
wait_ready() {
    local t0=$1
    st=""
    while [ $((SECONDS - t0)) -lt "$START_TIMEOUT" ]; do
        pid_is "$(recorded_pid slurmctld)" slurmctld || { log "slurmctld died"; return 1; }
        pid_is "$(recorded_pid slurmd)" slurmd || { log "slurmd died"; return 1; }
        st=$(node_state)
        case "$st" in
            idle|mix|alloc) log "node $NODE is $st after $((SECONDS - t0)) s (workdir $W)"; return 0 ;;
            down*|drain*|drng*|fail*|inval*)
                # ReturnToService=2 should clear this; nudge once in a while
                SLURM_CONF=$CONF scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    return 2
}

do_start() {
    need_root
    have_slurm || exit 2
    mkdir -p "$W/log"
    if [ -f "$PIDS" ]; then
        if healthy; then
            log "already running and healthy (workdir $W)"
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        log "stale/unhealthy cluster in $W: stopping our daemons and restarting"
        do_stop
    fi
    local t0=$SECONDS attempt rc
    write_conf
    ensure_etc_link
    ensure_munge || { do_stop; exit 1; }
    for attempt in 1 2; do
        kill_strays
        wait_ports_free || true
        launch_daemons
        wait_ready "$t0"; rc=$?
        if [ $rc -eq 0 ]; then echo "export SLURM_CONF=$CONF"; return 0; fi
        [ $rc -eq 2 ] && break
        log "attempt $attempt failed; daemon logs:"; dump_logs
        kill_recorded slurmd; kill_recorded slurmctld
        rm -rf "$W/state" "$W/spool"; mkdir -p "$W/state" "$W/spool"
        sleep 1
    done
    log "cluster did not become ready within ${START_TIMEOUT} s (node state: '${st}')"
    dump_logs
    do_stop
    exit 1
}

do_status() {
    local rc=0 name pid
    echo "workdir: $W"
    for name in munged slurmctld slurmd; do
        pid=$(recorded_pid "$name")
        if pid_is "$pid" "$name"; then echo "$name: running (pid $pid, started by us)"
        elif [ "$name" = munged ] && munge_works; then echo "munged: running (not started by us)"
        else echo "$name: not running"; rc=3; fi
    done
    if [ -f "$CONF" ]; then
        # only ask slurmctld if it runs (sinfo would otherwise block until its timeout)
        if pid_is "$(recorded_pid slurmctld)" slurmctld; then
            echo "node $NODE: $(node_state || true)"
        fi
        echo "export SLURM_CONF=$CONF"
    fi
    [ $rc -eq 0 ] && healthy || rc=3
    return $rc
}

case "$ACTION" in
    start) ;;
    stop|status) ;;
    *) echo "usage: $0 start|stop|status [WORKDIR]" >&2; exit 2 ;;
esac

# one cluster.sh at a time per workdir (parallel pytest sessions, CI retries)
exec 9>"$W/.lock"
flock -w 180 9 || { log "could not lock $W/.lock"; exit 1; }

case "$ACTION" in
    start) do_start ;;
    stop) need_root; do_stop ;;
    status) do_status; exit $? ;;
esac
