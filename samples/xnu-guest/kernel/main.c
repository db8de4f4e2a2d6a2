/* arm_init: the boot CPU's path once the MMU is on, printing one checklist line per milestone and
 * the final marker. The order follows XNU's: console, platform expert, interrupts and timers, the
 * secondary CPUs, the SEP, kexts, then the root file system. */
#include "guest.h"

#ifndef DARWIN_VERSION
#error "DARWIN_VERSION must be defined by the build (for example 21.4.0)"
#endif
#define MARKER_PATH "/etc/m1prep-marker"
#define MARKER_MAGIC "m1prep-marker"

/* The version string tools (and the patch engine) look for, shaped like XNU's. */
const char version[] = "Darwin Kernel Version " DARWIN_VERSION ": m1prep sample guest; root:m1prep-sample/RELEASE_ARM64_T8103";

extern char exception_vectors[];
extern volatile int mmu_enabled;
extern uint64_t kc_fixup_count, kc_base_va;
extern uint64_t now_ticks(void);
extern int fastipi_roundtrip(void);
extern kpi_service_t kpi_find_service(const char *name);
extern kpi_file_verifier_t kpi_file_verifier(void);

const char *kpi_darwin_version(void) { return DARWIN_VERSION; }

static uint8_t file_buf[4096];

static void check_boot_args(const boot_args_t *a) {
	/* The layout is chosen at build time from the Darwin version, as in XNU's headers. A loader that
	 * writes the other layout leaves memSizeActual (the last field) zero or wrong. */
	if (a->Version != 2) panic("boot_args: Version %u, expected 2", a->Version);
	if (a->memSizeActual == 0 || a->memSizeActual < a->memSize)
		panic("boot_args: memSizeActual 0x%llx with memSize 0x%llx: written in another layout than BOOT_LINE_LENGTH %u", a->memSizeActual, a->memSize, BOOT_LINE_LENGTH);
	char cmd[80];
	size_t n = strlen(a->CommandLine);
	if (n >= BOOT_LINE_LENGTH) panic("boot_args: command line is not terminated");
	ksnprintf(cmd, sizeof(cmd), "%s", a->CommandLine);
	check("boot-args", "rev %u, %u-byte command line \"%s\", memSize 0x%llx, memSizeActual 0x%llx", a->Revision, BOOT_LINE_LENGTH, cmd, a->memSize, a->memSizeActual);
}

NORETURN void arm_init(boot_args_t *args);

/* A boot-arg "name=value" from the command line (PE_parse_boot_argn's job in XNU). */
static bool boot_arg(const char *cmdline, const char *name, char *out, size_t cap) {
	size_t n = strlen(name);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ') p++;
		const char *end = p;
		while (*end && *end != ' ') end++;
		if ((size_t)(end - p) > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			size_t len = (size_t)(end - p) - n - 1;
			if (len >= cap) len = cap - 1;
			memcpy(out, p + n + 1, len);
			out[len] = 0;
			return true;
		}
		p = end;
	}
	return false;
}

/* The file read from the root: /etc/m1prep-marker, or the boot-arg "marker=<path>". */
static char marker_path[128] = MARKER_PATH;
static bool marker_from_boot_args;

static const char *mount_root_and_read(uint64_t *len) {
	uint64_t pa, size;
	if (!adt_memory_map("RAMDisk", &pa, &size)) panic("ramdisk: no RAMDisk entry in /chosen/memory-map");
	const uint8_t *img = (const uint8_t *)pa; /* identity-mapped RAM */
	const char *fs;
	if (apfs_read_file(img, size, marker_path, file_buf, sizeof(file_buf) - 1, len)) fs = "apfs";
	else if (hfsplus_read_file(img, size, marker_path, file_buf, sizeof(file_buf) - 1, len)) fs = "hfsplus";
	else panic("ramdisk: cannot mount the %llu-byte ramdisk at 0x%llx or find %s on it", size, pa, marker_path);
	file_buf[*len] = 0;
	if (!marker_from_boot_args && strncmp((const char *)file_buf, MARKER_MAGIC, strlen(MARKER_MAGIC)) != 0) panic("ramdisk: %s does not start with \"%s\"", marker_path, MARKER_MAGIC);
	return fs;
}

static boot_args_t *boot_args;
static const char *root_fs;

static void step_boot_args(void) {
	check_boot_args(boot_args);
	check("fixups", "%llu chained fixups applied (DYLD_CHAINED_PTR_64_KERNEL_CACHE, base 0x%llx)", kc_fixup_count, kc_base_va);
	check("adt", "uart 0x%llx, aic 0x%llx, pmgr 0x%llx, timer %llu Hz, %d cpus", machine.uart_pa, machine.aic_pa, machine.pmgr_pa, machine.timer_hz, machine.ncpus);
	check("mmu", "16K pages, running at 0x%llx (virtBase 0x%llx)", (uint64_t)&arm_init, boot_args->virtBase);
}

static void step_platform(void) {
	platform_check_board();
	check("platform", "board check passed");
}

static void step_interrupts(void) {
	aic_init();
	if (!aic_sw_irq_selftest()) panic("AIC: the software-generated interrupt did not arrive");
	check("aic", "%u irqs, WHOAMI ok, software IRQ %u delivered", machine.aic_irqs, machine.aic_irqs - 1);
	uint64_t t0 = now_ticks();
	timer_start(10);
	uint64_t deadline = t0 + machine.timer_hz * 5;
	while (timer_ticks() < 10 && now_ticks() < deadline) wait_for_interrupt();
	if (timer_ticks() < 10) panic("timer: %u of 10 FIQ ticks in 5 s", timer_ticks());
	check("timer-fiq", "10 ticks of 1 ms (CNTP, FIQ)");
}

static void step_cpus(void) {
	int up = smp_start_secondaries();
	check("smp", "%d/%d", up, machine.ncpus);
	int peers = fastipi_roundtrip();
	check("fastipi", "%s", peers == machine.ncpus - 1 && peers ? "round trip with every secondary CPU" : "self IPI");
}

static void step_sep(void) {
	sep_wait_for_boot();
	check("sep", "Secure Enclave ready");
}

static void step_kexts(void) {
	int kexts = kc_start_kexts();
	kpi_service_t svc = kpi_find_service("com.m1prep.sample.a");
	if (kexts < 2 || !svc) panic("kext: %d kexts started, service of com.m1prep.sample.a %s", kexts, svc ? "present" : "missing");
	uint32_t answer = svc(0x1234);
	if (answer != (0x1234u ^ 0x4d31u) + 1) panic("kext: com.m1prep.sample.a answered 0x%x", answer);
	check("kext-call", "com.m1prep.sample.a service answered 0x%x", answer);
}

static void step_root(void) {
	uint64_t len;
	marker_from_boot_args = boot_arg(boot_args->CommandLine, "marker", marker_path, sizeof(marker_path));
	root_fs = mount_root_and_read(&len);
	kpi_file_verifier_t verify = kpi_file_verifier();
	if (!verify) panic("kext: com.m1prep.sample.b registered no file verifier");
	if (verify(marker_path, file_buf, len) != 0) panic("AMFI: %s was rejected", marker_path);
	char first[64];
	size_t i = 0;
	for (; i < len && i < sizeof(first) - 1 && file_buf[i] != '\n'; i++) first[i] = (char)file_buf[i];
	first[i] = 0;
	check("ramdisk", "%s %s (%llu bytes: \"%s\", verified by com.m1prep.sample.b)", root_fs, marker_path, len, first);
}

/* The boot sequence as data, like XNU's STARTUP() entries: a table of named steps whose function
 * pointers, like every pointer in the collection, only hold their addresses once the chained fixups
 * have been applied. */
struct startup_step {
	const char *name;
	void (*fn)(void);
};
static const struct startup_step startup_steps[] = {
	{"boot-args", step_boot_args}, {"platform", step_platform}, {"interrupts", step_interrupts},
	{"cpus", step_cpus},           {"sep", step_sep},           {"kexts", step_kexts},
	{"root", step_root},
};
const char *volatile startup_current;

NORETURN void arm_init(boot_args_t *args) {
	SYSREG_WRITE(tpidr_el1, 0);
	SYSREG_WRITE(vbar_el1, (uint64_t)exception_vectors);
	__asm__ volatile("isb");
	mmu_enabled = 1;
	boot_args = args;
	kprintf("%s\n", version);
	const struct startup_step *volatile steps = startup_steps;
	for (size_t i = 0; i < sizeof(startup_steps) / sizeof(startup_steps[0]); i++) {
		startup_current = steps[i].name;
		steps[i].fn();
	}
	kprintf("M1PREP-SAMPLE-BOOT-OK darwin=%s cpus=%d fs=%s\n", DARWIN_VERSION, machine.ncpus, root_fs);
	for (;;) wait_for_interrupt();
}
