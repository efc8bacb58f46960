#!/bin/sh
# /init of the Linux guest's initramfs, run by busybox sh as PID 1.
#
# It sets up the basics, loads the virtio modules, then runs the one check
# that the kernel command line's `guest.run=<name>` names (default: shell)
# and powers off. Every line meant for the host starts with `linux-guest: `;
# a failure is a line starting with `linux-guest: FAIL`.
#
# To add a check, define a function `check_<name>` below; `guest.run=<name>`
# then runs it. Keep checks quick and print what they measured.
#
# See guest-images/linux/README.md; tools/src/linux.rs builds the initramfs.

# Applets are linked at boot rather than listed in the archive, so every
# applet this busybox has is available without the recipe keeping a list.
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin

say() {
    echo "linux-guest: $*"
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The initramfs holds only /dev/console; devtmpfs brings the rest.
mount -t devtmpfs devtmpfs /dev

cpu_count() {
    nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo
}

say "up, kernel $(uname -r), $(cpu_count) CPUs"

# Modules, dependencies first: the recipe writes the order it resolved.
loaded=0
while read -r module; do
    if insmod "/lib/modules/$module"; then
        loaded=$((loaded + 1))
    else
        say "FAIL insmod $module"
    fi
done </lib/modules/load-order
say "loaded $loaded modules"

# --- checks ---------------------------------------------------------------

# The number of CPUs Linux brought up.
check_cpus() {
    say "cpus=$(cpu_count)"
}

# An interactive shell on the console; the guest powers off when it exits.
# cttyhack opens the real console device, so job control and ^C work.
check_shell() {
    setsid cttyhack sh
}

# --- dispatch -------------------------------------------------------------

run=shell
for word in $(cat /proc/cmdline); do
    case "$word" in
    guest.run=*) run="${word#guest.run=}" ;;
    esac
done

case "$run" in
# Only names a function can have, so a typo cannot run something else.
'' | *[!a-z0-9_]*) say "FAIL unknown check '$run'" ;;
*)
    if [ "$(command -v "check_$run")" = "check_$run" ]; then
        "check_$run"
    else
        say "FAIL unknown check '$run'"
    fi
    ;;
esac

say done
sync
poweroff -f
# PID 1 must not exit (the kernel would panic); wait for the power to go.
while :; do sleep 1; done
