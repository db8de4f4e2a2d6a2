#!/bin/busybox sh
# /init of the harness's L1 host (an arm64 Linux with KVM under qemu-system-aarch64). It runs
# m1prep inside L1 against the host's /dev/kvm and frames every run on the serial console:
#   KVMH-BEGIN <name>            ... m1prep's console and summary ...   KVMH-END <name> rc=<exit code> ms=<wall>
# With "kvm-arm.impdef_sysreg_exits=off" on the command line (the patched kernel then withholds
# KVM_CAP_ARM_IMPDEF_SYSREG_EXITS, as a stock kernel does) it runs the refusal case instead.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tmpfs tmpfs /tmp
/bin/busybox --install -s /bin
export PATH=/opt/node/bin:/bin HOME=/tmp M1PREP_CACHE=/tmp/cache NO_COLOR=1
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu
echo "KVMH-L1-UP kernel=$(uname -r) cpus=$(nproc) cmdline=$(cat /proc/cmdline)"
ms() { echo $(( $(cut -d' ' -f1 /proc/uptime | tr -d .) * 10 )); }
run() {
  name=$1; shift
  echo "KVMH-BEGIN $name"
  t0=$(ms)
  node /m1prep/bin/m1prep.js "$@" 2>&1
  rc=$?
  echo "KVMH-END $name rc=$rc ms=$(( $(ms) - t0 ))"
}
cd /m1prep
t0=$(ms)
node -e 'console.log("KVMH-NODE", process.version, process.arch)'
echo "KVMH-NODE-START ms=$(( $(ms) - t0 ))"
run doctor doctor
test_guest="--kernel /guests/kvm-test/guest.bin --dtb /guests/kvm-test/guest.dtb --expect KVMTEST-DONE --fail KVMTEST-FAIL --verify --timeout 120 --serial stdio"
linux() {
  backend=$1 cpus=$2 suffix=$3
  run "linux-$cpus-$backend$suffix" boot --backend "$backend" --kernel /guests/linux/Image --initrd /guests/linux/initramfs.cpio.gz \
    --dtb "/guests/linux/vm-$cpus.dtb" --append "earlycon console=ttySAC0" --cpus "$cpus" \
    --expect "M1PREP-INIT-OK cpus=$cpus" --verify --timeout 900 --serial stdio
}
case " $(cat /proc/cmdline) " in
  *" kvm-arm.impdef_sysreg_exits=off "*)
    run kvm-test-stock boot --backend kvm $test_guest
    ;;
  *)
    run kvm-test boot --backend kvm $test_guest
    # --gdb on KVM: breakpoint, memory, single step through KVM_SET_GUEST_DEBUG (gdb-probe.mjs).
    echo "KVMH-BEGIN gdb-kvm"; t0=$(ms)
    node /m1prep/gdb-probe.mjs /guests/kvm-test/guest.bin /guests/kvm-test/guest.dtb /tmp/gdb.sock 2>&1
    echo "KVMH-END gdb-kvm rc=$? ms=$(( $(ms) - t0 ))"
    # What users type: m1prep boot out/ --backend kvm, on the sample that m1prep patch prepared.
    run sample-1-kvm boot /guests/sample-12.3 --backend kvm --cpus 1 --verify --timeout 600 --serial stdio
    run sample-2-kvm boot /guests/sample-12.3 --backend kvm --cpus 2 --verify --timeout 600 --serial stdio
    linux kvm 1
    linux kvm 2
    # bench/kvm.bench.ts: MMIO exits and FastIPI round trips timed by the guest, and the Linux boot,
    # on KVM and (when the harness carries an arm64 Unicorn) on the software backend.
    bench="--kernel /guests/kvm-test/bench.bin --dtb /guests/kvm-test/guest.dtb --expect KVMBENCH-DONE --verify --timeout 300 --serial stdio"
    run bench-kvm boot --backend kvm $bench
    # The same with every exit handed to the main thread (the vCPU threads' hot path off).
    export M1PREP_KVM_HOT_EXITS=0
    run bench-kvm-forwarded boot --backend kvm $bench
    linux kvm 1 -forwarded
    unset M1PREP_KVM_HOT_EXITS
    if [ -e /lib/aarch64-linux-gnu/libunicorn.so.2 ]; then
      run bench-software boot --backend software $bench
      linux software 1
    fi
    ;;
esac
echo "KVMH-DONE"
poweroff -f
