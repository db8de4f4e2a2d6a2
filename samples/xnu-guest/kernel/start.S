/* Entry points of the sample kernel: the boot CPU (XNU's contract: MMU off, EL1, x0 = physical
 * address of boot_args), the secondary CPUs (started through PMGR at their RVBAR, MMU off), the
 * exception vectors, and the MMU switch-on shared by both. */

#define BT_MAIR 0
#define BT_TCR 8
#define BT_TTBR0 16
#define BT_TTBR1 24
#define BT_SCTLR 32
#define BT_VOFF 40
#define BT_NCPUS 48
#define BT_MPIDR 56
#define BT_STACK 120

	.text
	.p2align 14
	.globl __start
__start:
	msr	daifset, #0xf
	mov	x20, x0				/* boot_args (physical) */
	/* The boot stack lives in the free memory iBoot leaves above topOfKernelData (as XNU's
	 * bootstrap stacks live above the kernel): 32 KiB past the 16 KiB-rounded top. */
	ldr	x1, [x20, #0x20]
	mov	x2, #0x3fff
	add	x1, x1, x2
	and	x1, x1, #~0x3fff
	add	x1, x1, #0x8000
	mov	sp, x1
	adr	x2, _exception_vectors		/* physical for now: panics before the MMU is on */
	msr	vbar_el1, x2
	isb
	mov	x0, x20
	bl	_arm_init_early			/* fixups, page tables; returns nothing */
	adrp	x9, _boot_tables@PAGE
	add	x9, x9, _boot_tables@PAGEOFF
	bl	_mmu_on
	ldr	x10, [x9, #BT_VOFF]
	adrp	x1, _arm_init@PAGE
	add	x1, x1, _arm_init@PAGEOFF
	add	x1, x1, x10			/* continue at the link-time (virtual) address */
	mov	x0, x20
	br	x1

	.globl _secondary_start
	.p2align 2
_secondary_start:
	msr	daifset, #0xf
	mrs	x0, mpidr_el1
	and	x0, x0, #0xffff			/* Aff1.Aff0, as the ADT cpu "reg" holds them */
	adrp	x9, _boot_tables@PAGE
	add	x9, x9, _boot_tables@PAGEOFF
	ldr	x2, [x9, #BT_NCPUS]
	mov	x3, #0
1:	cmp	x3, x2
	b.hs	9f
	add	x4, x9, #BT_MPIDR
	ldr	x5, [x4, x3, lsl #3]
	cmp	x5, x0
	b.eq	2f
	add	x3, x3, #1
	b	1b
2:	add	x4, x9, #BT_STACK
	ldr	x5, [x4, x3, lsl #3]
	mov	sp, x5
	mov	x19, x3
	bl	_mmu_on
	ldr	x10, [x9, #BT_VOFF]
	adrp	x1, _secondary_main@PAGE
	add	x1, x1, _secondary_main@PAGEOFF
	add	x1, x1, x10
	mov	x0, x19
	br	x1
9:	wfi					/* a CPU we did not plan for: park it */
	b	9b

/* x9 = &boot_tables (physical). Clobbers x1-x2. */
	.p2align 2
_mmu_on:
	ldr	x1, [x9, #BT_MAIR]
	msr	mair_el1, x1
	ldr	x1, [x9, #BT_TCR]
	msr	tcr_el1, x1
	ldr	x1, [x9, #BT_TTBR0]
	msr	ttbr0_el1, x1
	ldr	x1, [x9, #BT_TTBR1]
	msr	ttbr1_el1, x1
	isb
	tlbi	vmalle1
	dsb	ish
	isb
	ldr	x1, [x9, #BT_SCTLR]
	msr	sctlr_el1, x1
	isb
	ret

/* ---- exception vectors (VBAR_EL1): everything except IRQ/FIQ from the kernel is fatal */
.macro SAVE_AND_CALL handler
	sub	sp, sp, #272
	stp	x0, x1, [sp, #0]
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x29, x30, [sp, #160]
	mrs	x0, elr_el1
	mrs	x1, spsr_el1
	stp	x0, x1, [sp, #176]
	bl	\handler
	ldp	x0, x1, [sp, #176]
	msr	elr_el1, x0
	msr	spsr_el1, x1
	ldp	x0, x1, [sp, #0]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x29, x30, [sp, #160]
	add	sp, sp, #272
	eret
.endm

.macro FATAL
	mrs	x0, esr_el1
	mrs	x1, far_el1
	mrs	x2, elr_el1
	bl	_sync_exception
.endm

	.p2align 11
	.globl _exception_vectors
_exception_vectors:
	.p2align 7	/* current EL, SP0 */
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7	/* current EL, SPx: sync */
	FATAL
	.p2align 7	/* IRQ (AIC) */
	SAVE_AND_CALL _irq_handler
	.p2align 7	/* FIQ (timer, FastIPI) */
	SAVE_AND_CALL _fiq_handler
	.p2align 7	/* SError */
	FATAL
	.p2align 7	/* lower EL: we never run user code */
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
	.p2align 7
	FATAL
