#!/bin/sh
# /init of the Linux guest's initramfs, run by busybox sh as PID 1.
#
# It sets up the basics, loads the virtio modules, then does what the
# kernel command line's `guest.run=<mode>` asks (default: shell) and powers
# off. Options, all on the kernel command line:
#
#   guest.run=check    print what the guest sees, run a busy workload with
#                      counter-check, then `guest: check PASS` or
#                      `guest: check FAIL <why>`
#   guest.run=shell    an interactive shell on the console (job control on);
#                      powers off when it exits
#   guest.busy=<s>     how long check's busy workload runs (default 10)
#   guest.idle=<s>     how long check idles (sleeps, its vCPUs halted)
#                      before the busy workload (default 0)
#   guest.name=<name>  the hostname (and so the shell prompt)
#
# Every line meant for the host starts with `guest: `.
#
# See guest-images/linux/README.md; tools/src/linux.rs builds the initramfs.

# Applets are linked at boot rather than listed in the archive, so every
# applet this busybox has is available without the recipe keeping a list.
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/

say() {
    echo "guest: $*"
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The initramfs holds only /dev/console; devtmpfs brings the rest.
mount -t devtmpfs devtmpfs /dev

# --- the kernel command line ----------------------------------------------

run=shell
busy=10
idle=0
name=
# No globbing while splitting the command line into words.
set -f
for word in $(cat /proc/cmdline); do
    case "$word" in
    guest.run=*) run=${word#guest.run=} ;;
    guest.busy=*) busy=${word#guest.busy=} ;;
    guest.idle=*) idle=${word#guest.idle=} ;;
    guest.name=*) name=${word#guest.name=} ;;
    esac
done
set +f
if [ -n "$name" ]; then
    hostname "$name"
fi

# --- helpers --------------------------------------------------------------

# The number of CPUs in a sysfs CPU list such as `0-3,6`.
cpu_list_count() {
    count=0
    saved_ifs=$IFS
    IFS=,
    for range in $1; do
        case "$range" in
        *-*) count=$((count + ${range#*-} - ${range%-*} + 1)) ;;
        ?*) count=$((count + 1)) ;;
        esac
    done
    IFS=$saved_ifs
    echo "$count"
}

online_cpus() {
    cpu_list_count "$(cat /sys/devices/system/cpu/online)"
}

# A CPU-bound loop that never ends by itself.
spin() {
    while :; do :; done
}

read -r uptime _ </proc/uptime
say "up: Linux $(uname -r) ($(uname -v)), $(online_cpus) CPUs, after $uptime s"

# Modules, dependencies first: the recipe writes the order it resolved.
loaded=0
failed_modules=
while read -r module; do
    if insmod "/lib/modules/$module"; then
        loaded=$((loaded + 1))
    else
        failed_modules="$failed_modules $module"
    fi
done </lib/modules/load-order
say "loaded $loaded modules${failed_modules:+; could not load:$failed_modules}"

# --- modes ----------------------------------------------------------------

# What the guest sees, then (after `guest.idle` seconds of sleep, if asked)
# a busy workload: on every CPU two busy shell loops and one counter-check
# (which yields often, so it moves between vCPUs), all for `guest.busy`
# seconds. PASS if every counter-check saw its counter only go forward and
# nothing else went wrong.
run_check() {
    problems=
    problem() {
        problems="${problems:+$problems; }$*"
    }
    [ -z "$failed_modules" ] || problem "modules not loaded:$failed_modules"

    cpus=$(online_cpus)
    present=$(cpu_list_count "$(cat /sys/devices/system/cpu/present)")
    say "cpus=$cpus"
    say "memtotal_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
    [ "$cpus" = "$present" ] || problem "only $cpus of $present CPUs online"

    case "$busy" in
    '' | *[!0-9]* | 0)
        problem "guest.busy=$busy is not a positive number of seconds"
        busy=10
        ;;
    esac
    case "$idle" in
    '' | *[!0-9]*)
        problem "guest.idle=$idle is not a number of seconds"
        idle=0
        ;;
    esac
    if [ "$idle" -gt 0 ]; then
        say "idle for $idle s"
        sleep "$idle"
    fi
    say "busy workload: $((2 * cpus)) shell loops and $cpus counter-checks for $busy s"
    spinners=
    i=0
    while [ "$i" -lt $((2 * cpus)) ]; do
        spin &
        spinners="$spinners $!"
        i=$((i + 1))
    done
    checkers=
    i=0
    while [ "$i" -lt "$cpus" ]; do
        counter-check "$busy" >"/tmp/counter-check.$i" 2>&1 &
        checkers="$checkers $!"
        i=$((i + 1))
    done
    statuses=
    for pid in $checkers; do
        wait "$pid"
        statuses="$statuses $?"
    done
    # shellcheck disable=SC2086 # a list of PIDs
    kill $spinners
    wait
    say "busy workload done"

    i=0
    for status in $statuses; do
        cat "/tmp/counter-check.$i"
        grep -q '^counter-check: .* reads in ' "/tmp/counter-check.$i" ||
            problem "counter-check $i printed no result"
        [ "$status" = 0 ] || problem "counter-check $i exited with status $status"
        i=$((i + 1))
    done

    if [ -z "$problems" ]; then
        say "check PASS"
    else
        say "check FAIL $problems"
    fi
}

# An interactive shell on the console; the guest powers off when it exits.
# cttyhack opens the real console device (ttyAMA0) as the controlling
# terminal of a new session, so job control and Ctrl-C work.
run_shell() {
    say "shell on the console; exit it (or Ctrl-D) to power off"
    PS1='\h:\w\$ ' setsid cttyhack sh
}

case "$run" in
check) run_check ;;
shell) run_shell ;;
*) say "FAIL unknown guest.run=$run (modes: check, shell)" ;;
esac

say "powering off"
sync
poweroff -f
# PID 1 must not exit (the kernel would panic); wait for the power to go.
while :; do sleep 1; done
