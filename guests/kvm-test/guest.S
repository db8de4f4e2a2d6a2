// m1prep's KVM test guest: a bare arm64 "Image" (Documentation/arm64/booting.rst header) that
// touches the Apple IMPLEMENTATION DEFINED registers every M1 guest uses and prints a marker for
// each check on the s5l UART of layouts/t8103-virt.yaml. On KVM these registers reach the VMM only
// with host-patch/kvm-impdef-sysreg-exits; without it each MRS/MSR below would be an UNDEF.
//   PMCR0_EL1        s3_1_c15_c0_0  written, read back (Linux reads it on every FIQ)
//   IPI_RR_LOCAL_EL1 s3_5_c15_c0_0  FastIPI to this CPU ...
//   IPI_SR_EL1       s3_5_c15_c1_1  ... seen pending, cleared by writing 1
//   HID4             s3_0_c15_c4_0  a chicken-bit register that stores what is written
// It also stores one character with a writeback addressing mode, which KVM cannot describe in a
// syndrome (an NISV exit the VMM emulates), and checks the base register moved.

#define UART0_BASE 0x235200000      /* layouts/t8103-virt.yaml: uart0 */
#define UTXH 0x20

	.text
	.globl _start
_start:
	b	entry                   // code0
	.long	0                       // code1
	.quad	0                       // text_offset
	.quad	image_end - _start      // image_size
	.quad	0                       // flags
	.quad	0, 0, 0                 // res2..res4
	.ascii	"ARM\x64"               // magic
	.long	0                       // res5

entry:
	ldr	x19, =UART0_BASE
	adr	x0, msg_start
	bl	puts

	// PMCR0: PMC FIQ mode (IMODE = 4, bits 10:8) and counters 0-1 enabled.
	ldr	x1, =0x403
	msr	s3_1_c15_c0_0, x1
	mrs	x2, s3_1_c15_c0_0
	cmp	x1, x2
	b.ne	fail
	adr	x0, msg_pmcr0
	bl	puts

	// FastIPI to self: target = this CPU's Aff0 in IPI_RR_LOCAL bits 7:0.
	msr	s3_5_c15_c1_1, xzr
	mrs	x3, mpidr_el1
	and	x3, x3, #0xff
	msr	s3_5_c15_c0_0, x3
	mrs	x4, s3_5_c15_c1_1
	tbz	x4, #0, fail
	mov	x5, #1
	msr	s3_5_c15_c1_1, x5
	mrs	x4, s3_5_c15_c1_1
	tbnz	x4, #0, fail
	adr	x0, msg_ipi
	bl	puts

	// HID4 stores what is written.
	ldr	x6, =0x123456789abc
	msr	s3_0_c15_c4_0, x6
	mrs	x7, s3_0_c15_c4_0
	cmp	x6, x7
	b.ne	fail
	adr	x0, msg_hid

	bl	puts
	// Pre-index store of '#' with writeback: x20 must end at UART0 + UTXH.
	mov	x20, x19
	mov	w1, #'#'
	str	w1, [x20, #UTXH]!
	sub	x21, x20, x19
	cmp	x21, #UTXH
	b.ne	fail
	adr	x0, msg_nisv
	bl	puts

	adr	x0, msg_done
	bl	puts
halt:
	wfi
	b	halt

fail:
	adr	x0, msg_fail
	bl	puts
	b	halt

// puts(x0): bytes up to NUL to UTXH; clobbers x0, w1.
puts:
	ldrb	w1, [x0], #1
	cbz	w1, 1f
	str	w1, [x19, #UTXH]
	b	puts
1:	ret

msg_start:	.asciz	"KVMTEST-START\n"
msg_pmcr0:	.asciz	"KVMTEST-PMCR0-OK\n"
msg_ipi:	.asciz	"KVMTEST-FASTIPI-OK\n"
msg_hid:	.asciz	"KVMTEST-HID4-OK\n"
msg_nisv:	.asciz	"\nKVMTEST-WRITEBACK-OK\n"
msg_done:	.asciz	"KVMTEST-DONE\n"
msg_fail:	.asciz	"KVMTEST-FAIL\n"
	.balign	8
	.ltorg
image_end:
