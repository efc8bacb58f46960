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
#                      powers off when it exits; with guest.ip, eth0 is
#                      addressed and up first
#   guest.busy=<s>     how long check's busy workload runs (default 10)
#   guest.idle=<s>     how long check idles (sleeps, its vCPUs halted)
#                      before the busy workload (default 0)
#   guest.name=<name>  the hostname (and so the shell prompt)
#
# The virtio modes (a disk is /dev/vda, a network port eth0):
#
#   guest.run=disk-write   write guest.disk-mib MiB of random data at the
#                      start of /dev/vda, read it back past the page cache and
#                      print `guest: disk sha256=<hex> bytes=<n>`
#   guest.run=disk-read    print the disk's size (`guest: disk sectors=<n>`)
#                      and the same sha256 line for its first guest.disk-mib
#                      MiB; on a read-only disk, check a write is refused
#                      (`guest: disk write refused`)
#   guest.run=disk-timed   write guest.disk-mib MiB of random data with a
#                      flush, in the background, and wait at most
#                      guest.disk-wait seconds (default 15) for it: print
#                      `guest: disk write finished` or `guest: disk no answer
#                      after <s> s` (a device whose backend died never answers)
#   guest.run=net-server   address eth0 with guest.ip, ping guest.peer, take
#                      one TCP connection on port 5000 and print what came:
#                      `guest: net received <n> bytes in <s> s (...)` and
#                      `guest: net sha256=<hex> bytes=<n>`
#   guest.run=net-client   the same, but send guest.net-mib MiB of random data
#                      to guest.peer: `guest: net sent <n> bytes in <s> s
#                      (<MiB/s> MiB/s)` and the sha256 line of what was sent
#   guest.run=net-watch    address eth0, then wait for a line on the console
#                      (at most guest.watch seconds) and print eth0's counters:
#                      `guest: net rx_packets=<n> rx_bytes=<n> tx_packets=<n>`
#   guest.run=disk-pci     the same disk as a passthrough virtio-blk PCI
#                      function: print which (`guest: pci-disk on <function>
#                      ...`), then guest.disk-passes times read its first
#                      guest.disk-mib MiB past the page cache (the same every
#                      pass) and write guest.disk-mib MiB of random data right
#                      after them, read back; print `guest: pci-disk read
#                      sha256=<hex> bytes=<n> at=0` (first pass), `guest:
#                      pci-disk wrote sha256=<hex> bytes=<n> at=<offset>` (last
#                      pass), the INTx count, then `guest: pci-disk PASS`
#   guest.disk-mib=<n>     MiB the disk modes write or read (default 1)
#   guest.disk-passes=<n>  passes of disk-pci (default 1)
#   guest.disk-stop=enter  disk-pci goes on with more passes after those
#                      until a line is typed on the console
#   guest.net-mib=<n>      MiB net-client sends (default 16)
#   guest.ip=<addr/len>    eth0's IPv4 address, e.g. 10.0.0.1/24
#   guest.peer=<addr>      the other VM's address
#   guest.watch=<s>        how long net-watch waits for its line (default 300)
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
disk_mib=1
disk_passes=1
disk_stop=
disk_wait=15
net_mib=16
ip=
peer=
watch=300
# No globbing while splitting the command line into words.
set -f
for word in $(cat /proc/cmdline); do
    case "$word" in
    guest.run=*) run=${word#guest.run=} ;;
    guest.busy=*) busy=${word#guest.busy=} ;;
    guest.idle=*) idle=${word#guest.idle=} ;;
    guest.name=*) name=${word#guest.name=} ;;
    guest.disk-mib=*) disk_mib=${word#guest.disk-mib=} ;;
    guest.disk-passes=*) disk_passes=${word#guest.disk-passes=} ;;
    guest.disk-stop=*) disk_stop=${word#guest.disk-stop=} ;;
    guest.disk-wait=*) disk_wait=${word#guest.disk-wait=} ;;
    guest.net-mib=*) net_mib=${word#guest.net-mib=} ;;
    guest.ip=*) ip=${word#guest.ip=} ;;
    guest.peer=*) peer=${word#guest.peer=} ;;
    guest.watch=*) watch=${word#guest.watch=} ;;
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

# Whether $1 is a positive decimal number.
positive() {
    case "$1" in
    '' | *[!0-9]* | 0*) return 1 ;;
    esac
}

# Seconds since boot, with hundredths: a clock for timing transfers.
now() {
    read -r seconds _ </proc/uptime
    echo "$seconds"
}

# `<s> s (<MiB/s> MiB/s)` for $3 bytes moved between uptimes $1 and $2.
rate() {
    awk -v start="$1" -v end="$2" -v bytes="$3" 'BEGIN {
        s = end - start
        if (s < 0.01) s = 0.01
        printf "%.2f s (%.2f MiB/s)", s, bytes / 1048576 / s
    }'
}

# The SHA-256 of file $1, in hex.
sha256() {
    sha256sum "$1" | cut -d' ' -f1
}

# Waits up to $2 seconds for path $1 to exist (a device the virtio modules
# bring up asynchronously); false if it never does.
wait_for() {
    tries=$(($2 * 10))
    while [ ! -e "$1" ]; do
        [ "$tries" -gt 0 ] || return 1
        tries=$((tries - 1))
        usleep 100000
    done
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

# --- the virtio disk ------------------------------------------------------

# Why the last dd failed: its `dd: ...` line, else its last line.
dd_error() {
    grep -m 1 '^dd: ' /tmp/dd.err || tail -n 1 /tmp/dd.err
}

# Reads $1 MiB of /dev/vda, from MiB $3 (default 0), into file $2, past the
# page cache: with O_DIRECT, or if the kernel refuses that, after dropping
# the caches.
read_disk() {
    if ! dd if=/dev/vda of="$2" bs=1M count="$1" skip="${3:-0}" iflag=direct 2>/tmp/dd.err; then
        say "disk: O_DIRECT read refused ($(dd_error)); dropping caches instead"
        sync
        echo 3 >/proc/sys/vm/drop_caches
        dd if=/dev/vda of="$2" bs=1M count="$1" skip="${3:-0}" 2>/tmp/dd.err || return 1
    fi
}

# Waits for /dev/vda and prints its size; false (having said why) if there
# is none or it is smaller than guest.disk-mib.
disk_ready() {
    if ! positive "$disk_mib"; then
        say "disk FAIL guest.disk-mib=$disk_mib is not a positive number of MiB"
        return 1
    fi
    if ! wait_for /sys/block/vda 30 || ! wait_for /dev/vda 5; then
        say "disk FAIL no /dev/vda after 30 s"
        return 1
    fi
    sectors=$(cat /sys/block/vda/size)
    say "disk sectors=$sectors"
    if [ "$sectors" -lt $((disk_mib * 2048)) ]; then
        say "disk FAIL /dev/vda has $sectors sectors, fewer than guest.disk-mib=$disk_mib MiB"
        return 1
    fi
}

# Writes random data to the start of the disk, reads it back past the page
# cache and prints the SHA-256 of what came back (which must be what went).
run_disk_write() {
    disk_ready || return
    bytes=$((disk_mib * 1048576))
    dd if=/dev/urandom of=/tmp/disk.out bs=1M count="$disk_mib" 2>/dev/null
    written=$(sha256 /tmp/disk.out)
    if ! dd if=/tmp/disk.out of=/dev/vda bs=1M oflag=direct conv=fsync 2>/tmp/dd.err; then
        say "disk FAIL writing /dev/vda: $(dd_error)"
        return
    fi
    sync
    if ! read_disk "$disk_mib" /tmp/disk.in; then
        say "disk FAIL reading /dev/vda back: $(dd_error)"
        return
    fi
    read_back=$(sha256 /tmp/disk.in)
    say "disk sha256=$read_back bytes=$(wc -c </tmp/disk.in)"
    if [ "$read_back" = "$written" ]; then
        say "disk write PASS"
    else
        say "disk FAIL read back sha256 $read_back, but wrote $written"
    fi
}

# Prints the SHA-256 of the start of the disk; on a read-only disk, also
# tries to write and expects the kernel (told by the device) to refuse.
run_disk_read() {
    disk_ready || return
    ro=$(cat /sys/block/vda/ro)
    say "disk ro=$ro"
    if ! read_disk "$disk_mib" /tmp/disk.in; then
        say "disk FAIL reading /dev/vda: $(dd_error)"
        return
    fi
    say "disk sha256=$(sha256 /tmp/disk.in) bytes=$(wc -c </tmp/disk.in)"
    if [ "$ro" = 1 ]; then
        if dd if=/dev/urandom of=/dev/vda bs=4096 count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
            say "disk FAIL a write to the read-only disk succeeded"
        else
            say "disk write refused: $(dd_error)"
        fi
    fi
    say "disk read PASS"
}

# Writes with a flush in the background and waits a bounded time: a device
# that stopped answering leaves the writer blocked in the kernel for good,
# which only a time limit here can tell.
run_disk_timed() {
    disk_ready || return
    rm -f /tmp/disk.done
    (
        if dd if=/dev/urandom of=/dev/vda bs=1M count="$disk_mib" oflag=direct conv=fsync 2>/tmp/dd.err; then
            echo ok >/tmp/disk.done
        else
            dd_error >/tmp/disk.done
        fi
    ) &
    waited=0
    while [ ! -e /tmp/disk.done ] && [ "$waited" -lt "$disk_wait" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if [ -e /tmp/disk.done ]; then
        say "disk write finished: $(cat /tmp/disk.done)"
    else
        say "disk no answer after $waited s"
    fi
}

# The PCI function /dev/vda is on (such as 0000:00:08.0); nothing if it is
# not on PCI.
vda_pci_function() {
    path=$(readlink -f /sys/block/vda/device) || return
    # .../pci0000:00/0000:00:08.0/virtio0
    function=${path%/virtio*}
    function=${function##*/}
    case "$function" in
    ????:??:??.?) echo "$function" ;;
    esac
}

# Interrupts Linux IRQ $1 has taken, summed over the CPUs.
irq_count() {
    awk -v irq="$1:" '$1 == irq {
        n = 0
        for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i
        print n
    }' /proc/interrupts
}

# The passthrough disk: reads the host's data at its start, writes random
# data after it, guest.disk-passes times (and with guest.disk-stop=enter,
# on until a line is typed); every read of the start must give what the
# first did, every write must read back.
run_disk_pci() {
    disk_ready || return
    function=$(vda_pci_function)
    if [ -z "$function" ]; then
        say "pci-disk FAIL /dev/vda is not on PCI ($(readlink -f /sys/block/vda/device))"
        return
    fi
    if ! positive "$disk_passes"; then
        say "pci-disk FAIL guest.disk-passes=$disk_passes is not a positive number"
        return
    fi
    if [ "$sectors" -lt $((2 * disk_mib * 2048)) ]; then
        say "pci-disk FAIL /dev/vda has $sectors sectors, fewer than twice guest.disk-mib=$disk_mib MiB"
        return
    fi
    dev=/sys/bus/pci/devices/$function
    irq=$(cat "$dev/irq")
    say "pci-disk on $function ($(cat "$dev/vendor"):$(cat "$dev/device"), driver $(basename "$(readlink -f "$dev/driver")"), irq $irq)"
    bytes=$((disk_mib * 1048576))
    more=
    case "$disk_stop" in
    '') ;;
    enter)
        more=", then more until Enter is pressed"
        # A background job's stdin is /dev/null: the console goes by fd 3.
        rm -f /tmp/pci.stop
        exec 3<&0
        (
            read -r _ <&3
            : >/tmp/pci.stop
        ) &
        exec 3<&-
        ;;
    *)
        say "pci-disk FAIL guest.disk-stop=$disk_stop is not enter"
        return
        ;;
    esac
    say "pci-disk io start: $disk_passes pass(es) of $disk_mib MiB read and $disk_mib MiB written$more"
    pass=1
    first=
    while [ "$pass" -le "$disk_passes" ] || { [ -n "$more" ] && [ ! -e /tmp/pci.stop ]; }; do
        if ! read_disk "$disk_mib" /tmp/pci.in; then
            say "pci-disk FAIL pass $pass: reading /dev/vda: $(dd_error)"
            return
        fi
        read_sum=$(sha256 /tmp/pci.in)
        if [ -z "$first" ]; then
            first=$read_sum
            say "pci-disk read sha256=$read_sum bytes=$(wc -c </tmp/pci.in) at=0"
        elif [ "$read_sum" != "$first" ]; then
            say "pci-disk FAIL pass $pass read sha256 $read_sum, pass 1 read $first"
            return
        fi
        dd if=/dev/urandom of=/tmp/pci.out bs=1M count="$disk_mib" 2>/dev/null
        written=$(sha256 /tmp/pci.out)
        if ! dd if=/tmp/pci.out of=/dev/vda bs=1M seek="$disk_mib" oflag=direct conv=fsync 2>/tmp/dd.err; then
            say "pci-disk FAIL pass $pass: writing /dev/vda: $(dd_error)"
            return
        fi
        if ! read_disk "$disk_mib" /tmp/pci.back "$disk_mib"; then
            say "pci-disk FAIL pass $pass: reading /dev/vda back: $(dd_error)"
            return
        fi
        read_back=$(sha256 /tmp/pci.back)
        if [ "$read_back" != "$written" ]; then
            say "pci-disk FAIL pass $pass read back sha256 $read_back, but wrote $written"
            return
        fi
        pass=$((pass + 1))
    done
    say "pci-disk wrote sha256=$written bytes=$bytes at=$bytes"
    say "pci-disk io done: $((pass - 1)) pass(es), $(irq_count "$irq") interrupt(s) on irq $irq"
    say "pci-disk PASS"
}

# --- the virtio network ----------------------------------------------------

# Port 5000: where net-server listens.
NET_PORT=5000

# Waits for eth0, gives it guest.ip and brings it up; false (having said
# why) if it cannot.
net_ready() {
    case "$ip" in
    */*) ;;
    *)
        say "net FAIL guest.ip=$ip is not an address/prefix such as 10.0.0.1/24"
        return 1
        ;;
    esac
    if ! wait_for /sys/class/net/eth0 30; then
        say "net FAIL no eth0 after 30 s"
        return 1
    fi
    ip link set lo up
    if ! ip addr add "$ip" dev eth0 || ! ip link set eth0 up; then
        say "net FAIL could not configure eth0"
        return 1
    fi
    say "net eth0 mac=$(cat /sys/class/net/eth0/address) ip=$ip"
}

# Pings guest.peer until it answers (it may still be booting), at most
# 60 s, then three times for the record.
ping_peer() {
    tries=60
    until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            say "net FAIL $peer does not answer pings"
            return 1
        fi
    done
    summary=$(ping -c 3 "$peer" | grep -E 'transmitted|round-trip' | tr '\n' ' ')
    say "net ping $peer: ${summary% }"
}

# eth0's counters, from sysfs.
net_counters() {
    stats=/sys/class/net/eth0/statistics
    echo "rx_packets=$(cat $stats/rx_packets) rx_bytes=$(cat $stats/rx_bytes) tx_packets=$(cat $stats/tx_packets)"
}

# Takes one TCP connection on port 5000 and reports what arrived.
run_net_server() {
    net_ready || return
    # nc ends its half of the connection when its stdin ends; a FIFO opened
    # for reading and writing never ends, so only the sender's close does.
    mkfifo /tmp/hold
    timeout 600 nc -l -p "$NET_PORT" <>/tmp/hold >/tmp/net.in 2>/tmp/nc.err &
    listener=$!
    ping_peer
    # The clock starts with the first byte, or when nc finished.
    while [ ! -s /tmp/net.in ] && kill -0 "$listener" 2>/dev/null; do
        usleep 10000
    done
    start=$(now)
    wait "$listener"
    status=$?
    end=$(now)
    bytes=$(wc -c </tmp/net.in)
    [ "$status" = 0 ] || say "net FAIL nc exited with status $status: $(cat /tmp/nc.err)"
    say "net received $bytes bytes in $(rate "$start" "$end" "$bytes")"
    say "net sha256=$(sha256 /tmp/net.in) bytes=$bytes"
    say "net $(net_counters)"
}

# Sends guest.net-mib MiB of random data to guest.peer's port 5000.
run_net_client() {
    net_ready || return
    if ! positive "$net_mib"; then
        say "net FAIL guest.net-mib=$net_mib is not a positive number of MiB"
        return
    fi
    ping_peer || return
    dd if=/dev/urandom of=/tmp/net.out bs=1M count="$net_mib" 2>/dev/null
    bytes=$(wc -c </tmp/net.out)
    say "net sha256=$(sha256 /tmp/net.out) bytes=$bytes"
    # The server may not listen yet: a refused connection is tried again.
    tries=30
    while :; do
        start=$(now)
        nc "$peer" "$NET_PORT" </tmp/net.out 2>/tmp/nc.err && break
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            say "net FAIL could not send to $peer:$NET_PORT: $(cat /tmp/nc.err)"
            return
        fi
        sleep 1
    done
    end=$(now)
    say "net sent $bytes bytes in $(rate "$start" "$end" "$bytes")"
    say "net $(net_counters)"
}

# Brings eth0 up and waits for a console line (or guest.watch seconds),
# then prints what eth0 received meanwhile: on a network of its own, nothing.
run_net_watch() {
    net_ready || return
    say "net watching eth0 for $watch s; press Enter to stop"
    read -r -t "$watch" _ || true
    say "net $(net_counters)"
}

# An interactive shell on the console; the guest powers off when it exits.
# cttyhack opens the real console device (ttyAMA0) as the controlling
# terminal of a new session, so job control and Ctrl-C work.
run_shell() {
    # With guest.ip, the network port is ready to use (ping, nc).
    if [ -n "$ip" ]; then
        net_ready
    fi
    say "shell on the console; exit it (or Ctrl-D) to power off"
    PS1='\h:\w\$ ' setsid cttyhack sh
}

case "$run" in
check) run_check ;;
shell) run_shell ;;
disk-write) run_disk_write ;;
disk-read) run_disk_read ;;
disk-timed) run_disk_timed ;;
disk-pci) run_disk_pci ;;
net-server) run_net_server ;;
net-client) run_net_client ;;
net-watch) run_net_watch ;;
*) say "FAIL unknown guest.run=$run (modes: check, shell, disk-write, disk-read, disk-timed, disk-pci, net-server, net-client, net-watch)" ;;
esac

say "powering off"
sync
poweroff -f
# PID 1 must not exit (the kernel would panic); wait for the power to go.
while :; do sleep 1; done
