/* Interrupts and CPUs: the AIC (IRQs), the timer and FastIPIs (FIQs), and waking the secondary CPUs
 * through PMGR the way XNU does on t8103 (RVBAR in cpu-impl-reg, then the PMGR CPU start block). */
#include "guest.h"

/* AIC v1 registers (Linux drivers/irqchip/irq-apple-aic.c, m1n1 aic.h). */
#define AIC_INFO 0x0004
#define AIC_WHOAMI 0x2000
#define AIC_EVENT 0x2004
#define AIC_TARGET_CPU(n) (0x3000 + 4 * (n))
#define AIC_SW_SET(n) (0x4000 + 4 * ((n) / 32))
#define AIC_SW_CLR(n) (0x4080 + 4 * ((n) / 32))
#define AIC_MASK_SET(n) (0x4100 + 4 * ((n) / 32))
#define AIC_MASK_CLR(n) (0x4180 + 4 * ((n) / 32))
#define AIC_EVENT_TYPE_HW 1
/* PMGR CPU start block on t8103 (offset into PMGR's first reg; Asahi's "SMP spin-up" notes). */
#define PMGR_CPU_START_T8103 0x54000
#define CNTP_CTL_ENABLE 1u
#define CNTP_CTL_IMASK 2u
#define CNTP_CTL_ISTATUS 4u
#define IPI_SR_PENDING 1u

extern void secondary_start(void);
extern char exception_vectors[];

static volatile uint32_t ticks, tick_target, tick_period;
static volatile uint32_t sw_irqs, sw_irq_number;
static volatile uint32_t ipis[MAX_CPUS];
/* IPI_SR holds one pending bit, so IPIs sent close together merge: like XNU's cpu_signal(), the
 * reason travels in memory (a per-CPU signal word) and the IPI only says "look at it". */
#define SIGNAL_PING 1u
static volatile uint32_t signals[MAX_CPUS];
static volatile uint32_t pongs; /* bit i: CPU i answered */
static volatile uint32_t cpus_up;
static volatile uint32_t whoami_bad;

int cpu_number(void) { return (int)SYSREG_READ(tpidr_el1); }

uint64_t now_ticks(void) {
	__asm__ volatile("isb");
	return SYSREG_READ(cntpct_el0);
}

static uint64_t ms_to_ticks(uint32_t ms) { return machine.timer_hz / 1000 * ms; }

void wait_for_interrupt(void) { __asm__ volatile("wfi"); }

static void aic_per_cpu_init(int cpu) {
	uint32_t who = mmio_read32(machine.aic_pa + AIC_WHOAMI);
	if (who != (uint32_t)cpu) whoami_bad = who + 1;
}

void aic_init(void) {
	machine.aic_irqs = mmio_read32(machine.aic_pa + AIC_INFO) & 0xffff;
	if (!machine.aic_irqs) panic("AIC: INFO reports no interrupts");
	for (uint32_t i = 0; i < machine.aic_irqs; i += 32) {
		mmio_write32(machine.aic_pa + AIC_MASK_SET(i), ~0u);
		mmio_write32(machine.aic_pa + AIC_SW_CLR(i), ~0u);
	}
	aic_per_cpu_init(0);
	if (whoami_bad) panic("AIC: WHOAMI says cpu %u on cpu 0", whoami_bad - 1);
}

/* A software-generated interrupt to ourselves through the AIC: exercises TARGET_CPU, SW_SET,
 * MASK_CLR and the EVENT register on the IRQ path. */
bool aic_sw_irq_selftest(void) {
	uint32_t irq = machine.aic_irqs - 1; /* the last line: no device of the t8103 uses it */
	sw_irq_number = irq;
	mmio_write32(machine.aic_pa + AIC_TARGET_CPU(irq), 1u << cpu_number());
	mmio_write32(machine.aic_pa + AIC_MASK_CLR(irq), 1u << (irq % 32));
	mmio_write32(machine.aic_pa + AIC_SW_SET(irq), 1u << (irq % 32));
	__asm__ volatile("msr daifclr, #2");
	uint64_t deadline = now_ticks() + ms_to_ticks(2000);
	while (!sw_irqs && now_ticks() < deadline) wait_for_interrupt();
	__asm__ volatile("msr daifset, #2");
	mmio_write32(machine.aic_pa + AIC_MASK_SET(irq), 1u << (irq % 32));
	return sw_irqs == 1;
}

void irq_handler(void) {
	for (int guard = 0; guard < 64; guard++) {
		uint32_t ev = mmio_read32(machine.aic_pa + AIC_EVENT);
		uint32_t type = (ev >> 16) & 0xff, num = ev & 0xffff;
		if (!ev) return;
		if (type == AIC_EVENT_TYPE_HW && num == sw_irq_number) {
			mmio_write32(machine.aic_pa + AIC_SW_CLR(num), 1u << (num % 32));
			sw_irqs++;
		}
		/* EVENT masked the line: unmask it, as XNU's AppleInterruptController does on EOI. */
		if (type == AIC_EVENT_TYPE_HW) mmio_write32(machine.aic_pa + AIC_MASK_CLR(num), 1u << (num % 32));
	}
}

void timer_start(uint32_t count) {
	tick_period = (uint32_t)(machine.timer_hz / 1000); /* 1 ms */
	tick_target = count;
	ticks = 0;
	SYSREG_WRITE(cntp_tval_el0, tick_period);
	SYSREG_WRITE(cntp_ctl_el0, CNTP_CTL_ENABLE);
	__asm__ volatile("isb\n\tmsr daifclr, #1"); /* Apple assembler syntax: ";" starts a comment */
}

uint32_t timer_ticks(void) { return ticks; }

/* FIQ: the generic timer and FastIPIs, as XNU's sleh_fiq checks them (IPI_SR, then the timer;
 * PMCR0 for performance-counter interrupts, which we never enable). */
void fiq_handler(void) {
	int cpu = cpu_number();
	if (SYSREG_READ(IPI_SR_EL1) & IPI_SR_PENDING) {
		SYSREG_WRITE(IPI_SR_EL1, IPI_SR_PENDING);
		__asm__ volatile("isb");
		ipis[cpu]++;
	}
	uint64_t ctl = SYSREG_READ(cntp_ctl_el0);
	if ((ctl & (CNTP_CTL_ENABLE | CNTP_CTL_ISTATUS | CNTP_CTL_IMASK)) == (CNTP_CTL_ENABLE | CNTP_CTL_ISTATUS)) {
		/* Keep ticking (slower once the self-test has its count), so that waits in WFI always
		 * wake up and can time out. */
		++ticks;
		SYSREG_WRITE(cntp_tval_el0, ticks < tick_target ? tick_period : tick_period * 10);
		__asm__ volatile("isb");
	}
	(void)SYSREG_READ(PMCR0_EL1);
}

/* FastIPI: same cluster through IPI_RR_LOCAL (core in [7:0]), other cluster through IPI_RR_GLOBAL
 * (cluster in [23:16]). */
void fastipi_send(int target) {
	const struct cpu_desc *t = &machine.cpu[target], *me = &machine.cpu[cpu_number()];
	if (t->cluster == me->cluster) SYSREG_WRITE(IPI_RR_LOCAL_EL1, t->core);
	else SYSREG_WRITE(IPI_RR_GLOBAL_EL1, (uint64_t)t->cluster << 16 | t->core);
	__asm__ volatile("isb");
}

uint32_t fastipi_received(int cpu) { return ipis[cpu]; }

/* Secondary CPUs arrive here from start.S with the MMU on, at the virtual address. */
NORETURN void secondary_main(uint64_t index) {
	int cpu = (int)index;
	SYSREG_WRITE(tpidr_el1, index);
	SYSREG_WRITE(vbar_el1, (uint64_t)exception_vectors);
	__asm__ volatile("isb");
	aic_per_cpu_init(cpu);
	__asm__ volatile("msr daifclr, #1");
	__atomic_fetch_add(&cpus_up, 1, __ATOMIC_SEQ_CST);
	/* Answer every ping from the boot CPU: record it in memory, then FastIPI it. */
	for (;;) {
		wait_for_interrupt();
		if (__atomic_exchange_n(&signals[cpu], 0, __ATOMIC_ACQ_REL) & SIGNAL_PING) {
			__atomic_fetch_or(&pongs, 1u << cpu, __ATOMIC_RELEASE);
			fastipi_send(0);
		}
	}
}

int smp_start_secondaries(void) {
	uint64_t start = machine.pmgr_pa + PMGR_CPU_START_T8103;
	uint64_t rvbar = kvtophys((uint64_t)secondary_start);
	cpus_up = 1;
	for (int i = 1; i < machine.ncpus; i++) {
		const struct cpu_desc *c = &machine.cpu[i];
		mmio_write64(c->impl_reg_pa, rvbar);
		mmio_write32(start + 0x4, mmio_read32(start + 0x4) | 1u << (4 * c->cluster + c->core));
		mmio_write32(start + 0x8 + 4 * c->cluster, mmio_read32(start + 0x8 + 4 * c->cluster) | 1u << c->core);
		uint64_t deadline = now_ticks() + ms_to_ticks(5000);
		while (cpus_up < (uint32_t)i + 1 && now_ticks() < deadline)
			;
		if (cpus_up < (uint32_t)i + 1) panic("SMP: cpu %d (cluster %u core %u) did not start through PMGR", i, c->cluster, c->core);
	}
	if (whoami_bad) panic("AIC: WHOAMI returned %u on a secondary CPU", whoami_bad - 1);
	return (int)cpus_up;
}

/* Every secondary CPU answers a ping with a FastIPI back to us; alone, we send one to ourselves. */
int fastipi_roundtrip(void) {
	int peers = machine.ncpus - 1;
	uint32_t before = ipis[0], want = 0;
	if (peers == 0) fastipi_send(0);
	for (int i = 1; i < machine.ncpus; i++) {
		want |= 1u << i;
		__atomic_fetch_or(&signals[i], SIGNAL_PING, __ATOMIC_RELEASE);
		fastipi_send(i);
	}
	uint64_t deadline = now_ticks() + ms_to_ticks(5000);
	while ((ipis[0] == before || (pongs & want) != want) && now_ticks() < deadline) wait_for_interrupt();
	if (ipis[0] == before) panic("FastIPI: no IPI reached cpu 0 (IPI_SR never pending)");
	if ((pongs & want) != want) panic("FastIPI: answers from cpus 0x%x of 0x%x", pongs & want, want);
	return peers ? peers : 1;
}
