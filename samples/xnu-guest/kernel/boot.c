/* Early boot, as XNU's start.s + arm_vm_init do it: with the MMU off, find the collection we were
 * loaded from, apply its chained fixups, read the ADT for the devices we need, build 16 KiB-granule
 * page tables (identity map for devices and RAM in TTBR0, the collection at its link-time virtual
 * addresses in TTBR1) and hand over to arm_init at the virtual address. */
#include "guest.h"
#include "macho.h"

/* Read by start.S (offsets fixed there): everything a CPU needs to turn its MMU on. */
struct boot_tables {
	uint64_t mair, tcr, ttbr0, ttbr1, sctlr, voff, ncpus;
	uint64_t mpidr[MAX_CPUS];
	uint64_t stack_top[MAX_CPUS];
} boot_tables;

struct machine machine;
uint64_t kc_header_va, kc_base_va, kc_fixup_count;
static uint64_t kc_pa, free_pa, free_end;

extern const struct mach_header_64 _mh_execute_header;

#define CPU_STACK_SIZE 0x8000ull
#define TCR_T0SZ(n) ((uint64_t)(n))
#define TCR_T1SZ(n) ((uint64_t)(n) << 16)
#define TCR_TG0_16K (2ull << 14)
#define TCR_TG1_16K (1ull << 30)
#define TCR_WBWA_INNER_SHARED ((1ull << 8) | (1ull << 10) | (3ull << 12) | (1ull << 24) | (1ull << 26) | (3ull << 28))
#define TCR_IPS_40BIT (2ull << 32)
#define VA_BITS 47
#define MAIR_DEVICE 0 /* Device-nGnRnE */
#define MAIR_NORMAL 1 /* Normal, write-back */
#define PTE_VALID 1ull
#define PTE_TABLE 3ull
#define PTE_PAGE 3ull
#define PTE_BLOCK 1ull
#define PTE_AF (1ull << 10)
#define PTE_SH_INNER (3ull << 8)
#define PTE_AP_RO (1ull << 7)
#define PTE_PXN (1ull << 53)
#define PTE_UXN (1ull << 54)
#define L2_BLOCK (1ull << 25) /* 32 MiB with a 16 KiB granule */
#define ENTRIES 2048
#define SCTLR_RES1 0x30d00800ull
#define SCTLR_M 1ull
#define SCTLR_C (1ull << 2)
#define SCTLR_SA (1ull << 3)
#define SCTLR_I (1ull << 12)

static uint64_t *alloc_table(void) {
	if (free_pa + PAGE_SIZE > free_end) panic("vm: out of bootstrap memory for page tables");
	uint64_t *t = (uint64_t *)free_pa;
	free_pa += PAGE_SIZE;
	memset(t, 0, PAGE_SIZE);
	return t;
}

static uint64_t *next_level(uint64_t *table, unsigned idx) {
	if (!(table[idx] & PTE_VALID)) table[idx] = (uint64_t)alloc_table() | PTE_TABLE;
	return (uint64_t *)(table[idx] & 0x0000fffffffff000ull & ~(PAGE_SIZE - 1));
}

/* Identity map [pa, pa+size) with 32 MiB blocks (TTBR0: below 2^47). */
static void map_identity(uint64_t *l1, uint64_t pa, uint64_t size, uint64_t attrs) {
	for (uint64_t a = pa & ~(L2_BLOCK - 1); a < pa + size; a += L2_BLOCK) {
		uint64_t *l2 = next_level(l1, (a >> 36) & (ENTRIES - 1));
		l2[(a >> 25) & (ENTRIES - 1)] = a | PTE_BLOCK | PTE_AF | attrs;
	}
}

/* Map the virtual range [va, va+size) to pa with 16 KiB pages (TTBR1). */
static void map_pages(uint64_t *l1, uint64_t va, uint64_t pa, uint64_t size, uint64_t attrs) {
	for (uint64_t off = 0; off < size; off += PAGE_SIZE) {
		uint64_t v = va + off;
		uint64_t *l2 = next_level(l1, (v >> 36) & (ENTRIES - 1));
		uint64_t *l3 = next_level(l2, (v >> 25) & (ENTRIES - 1));
		l3[(v >> 14) & (ENTRIES - 1)] = (pa + off) | PTE_PAGE | PTE_AF | PTE_SH_INNER | (MAIR_NORMAL << 2) | attrs;
	}
}

static uint64_t seg_attrs(uint32_t prot) {
	uint64_t a = PTE_UXN;
	if (!(prot & VM_PROT_EXECUTE)) a |= PTE_PXN;
	if (!(prot & VM_PROT_WRITE)) a |= PTE_AP_RO;
	return a;
}

/* Every segment of a Mach-O header living in the collection, at its virtual address. */
static void map_segments(uint64_t *l1, const struct mach_header_64 *mh) {
	FOR_EACH_LC(mh, lc) {
		if (lc->cmd != LC_SEGMENT_64) continue;
		const struct segment_command_64 *seg = (const void *)lc;
		if (!seg->vmsize || seg->vmaddr < kc_base_va) continue;
		uint64_t start = seg->vmaddr & ~(PAGE_SIZE - 1);
		uint64_t end = ROUND_UP(seg->vmaddr + seg->vmsize, PAGE_SIZE);
		map_pages(l1, start, kc_pa + (start - kc_base_va), end - start, seg_attrs(seg->initprot));
	}
}

static void find_collection(const boot_args_t *args) {
	const struct mach_header_64 *kmh = &_mh_execute_header;
	const struct segment_command_64 *first = (const void *)(kmh + 1);
	if (kmh->magic != MH_MAGIC_64 || first->cmd != LC_SEGMENT_64) panic("KC: kernel Mach-O header not found");
	/* As XNU: the kernel's first segment's file offset is its distance from the collection's header. */
	const struct mach_header_64 *kc = (const void *)((uint64_t)kmh - first->fileoff);
	if (kc->magic != MH_MAGIC_64 || kc->filetype != MH_FILESET) panic("KC: no MH_FILESET header %llu bytes before the kernel", first->fileoff);
	kc_pa = (uint64_t)kc;
	uint64_t lowest = ~0ull;
	FOR_EACH_LC(kc, lc) {
		if (lc->cmd != LC_SEGMENT_64) continue;
		const struct segment_command_64 *seg = (const void *)lc;
		if (seg->vmsize && seg->vmaddr < lowest) lowest = seg->vmaddr;
		if (seg->fileoff == 0 && seg->filesize) kc_header_va = seg->vmaddr;
	}
	if (!kc_header_va) panic("KC: no segment maps the collection's header");
	kc_base_va = lowest;
	/* boot_args must describe the same placement the loader used. */
	if (kc_pa - args->physBase != kc_base_va - args->virtBase)
		panic("boot_args: virtBase 0x%llx / physBase 0x%llx disagree with the collection at 0x%llx (base 0x%llx)", args->virtBase, args->physBase, kc_pa, kc_base_va);
}

static void find_devices(void) {
	adt_node_t n;
	uint64_t size;
	/* The console: a Samsung-style UART ("uart-1,samsung"), as iBoot's "boot-console". */
	if (!adt_find("compatible", "uart-1,samsung", &n) || !adt_reg(&n, 0, &machine.uart_pa, &size)) panic("ADT: no Samsung-style UART");
	uart_init(machine.uart_pa);
	if (!adt_find("compatible", "aic,1", &n) || !adt_reg(&n, 0, &machine.aic_pa, &size)) panic("ADT: no AIC (compatible aic,1)");
	if (!adt_find("device_type", "pmgr", &n) || !adt_reg(&n, 0, &machine.pmgr_pa, &size)) panic("ADT: no PMGR");
	uint64_t tb_pa;
	if (!adt_find("device_type", "timer", &n) || !adt_reg(&n, 0, &tb_pa, &size)) panic("ADT: no timer (device_type timer)");
	machine.timer_hz = SYSREG_READ(cntfrq_el0);
	adt_node_t cpus, kids[MAX_CPUS];
	if (!adt_lookup("/cpus", &cpus)) panic("ADT: no /cpus");
	int count = adt_children(&cpus, kids, MAX_CPUS);
	for (int i = 0; i < count; i++) {
		uint32_t reg;
		uint32_t len;
		const char *type = adt_prop(&kids[i], "device_type", &len);
		if (!type || strcmp(type, "cpu") != 0) continue;
		if (!adt_prop_u32(&kids[i], "reg", &reg)) panic("ADT: %s has no reg", adt_name(&kids[i]));
		/* cpu-impl-reg is an absolute physical [base, size] (RVBAR at +0, per m1n1 and Asahi's notes). */
		const uint8_t *ir = adt_prop(&kids[i], "cpu-impl-reg", &len);
		if (!ir || len < 8) panic("ADT: %s has no cpu-impl-reg", adt_name(&kids[i]));
		struct cpu_desc *c = &machine.cpu[machine.ncpus++];
		memcpy(&c->impl_reg_pa, ir, 8);
		c->mpidr = reg & 0xffff;
		c->cluster = (reg >> 8) & 0xff;
		c->core = reg & 0xff;
	}
	if (!machine.ncpus) panic("ADT: no CPU nodes under /cpus");
}

static void build_page_tables(const boot_args_t *args) {
	uint64_t *l1_0 = alloc_table(), *l1_1 = alloc_table();
	/* Devices: every window /arm-io's "ranges" opens, plus the per-CPU implementation blocks. */
	adt_node_t armio;
	uint64_t bases[16], sizes[16];
	if (!adt_lookup("/arm-io", &armio)) panic("ADT: no /arm-io");
	int n = adt_ranges(&armio, bases, sizes, 16);
	for (int i = 0; i < n; i++) map_identity(l1_0, bases[i], sizes[i], MAIR_DEVICE << 2 | PTE_PXN | PTE_UXN);
	for (int i = 0; i < machine.ncpus; i++) map_identity(l1_0, machine.cpu[i].impl_reg_pa, 0x10000, MAIR_DEVICE << 2 | PTE_PXN | PTE_UXN);
	map_identity(l1_0, machine.uart_pa, 0x4000, MAIR_DEVICE << 2 | PTE_PXN | PTE_UXN);
	/* RAM from physBase: the kernel, the ADT, the ramdisk, boot_args and our own free memory. */
	map_identity(l1_0, args->physBase, args->memSize, MAIR_NORMAL << 2 | PTE_SH_INNER | PTE_UXN);
	/* The collection at its link-time addresses, segment by segment with its protections. */
	const struct mach_header_64 *kc = (const void *)kc_pa;
	map_segments(l1_1, kc);
	FOR_EACH_LC(kc, lc) {
		if (lc->cmd != LC_FILESET_ENTRY) continue;
		const struct fileset_entry_command *fe = (const void *)lc;
		map_segments(l1_1, (const void *)(kc_pa + (fe->vmaddr - kc_base_va)));
	}
	boot_tables.mair = 0x00ull | (0xffull << 8);
	boot_tables.tcr = TCR_T0SZ(64 - VA_BITS) | TCR_T1SZ(64 - VA_BITS) | TCR_TG0_16K | TCR_TG1_16K | TCR_WBWA_INNER_SHARED | TCR_IPS_40BIT;
	boot_tables.ttbr0 = (uint64_t)l1_0;
	boot_tables.ttbr1 = (uint64_t)l1_1;
	boot_tables.sctlr = SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I;
}

/* Called from start.S with the MMU off; args is physical. */
void arm_init_early(boot_args_t *args) {
	machine.args = args;
	machine.virt_to_phys = args->physBase - args->virtBase;
	boot_tables.voff = args->virtBase - args->physBase;
	/* The device tree and the console first (PC-relative code only), so that a bad collection
	 * panics on the UART instead of silently. */
	adt_init((const void *)(args->deviceTreeP + machine.virt_to_phys), args->deviceTreeLength);
	find_devices();
	find_collection(args);
	kc_fixup_count = kc_apply_fixups(kc_pa, kc_base_va);
	/* Free memory: above topOfKernelData. Stacks first (the boot CPU's is already in use), then
	 * page tables; everything must stay inside the RAM boot_args describes. */
	uint64_t top = ROUND_UP(args->topOfKernelData, PAGE_SIZE);
	free_end = args->physBase + args->memSize;
	boot_tables.ncpus = (uint64_t)machine.ncpus;
	for (int i = 0; i < machine.ncpus; i++) {
		boot_tables.mpidr[i] = machine.cpu[i].mpidr;
		boot_tables.stack_top[i] = top + CPU_STACK_SIZE * (uint64_t)(i + 1);
	}
	free_pa = top + CPU_STACK_SIZE * MAX_CPUS;
	build_page_tables(args);
}
