// m1prep's CPU-backend bench guest: the same arm64 Image runs on the KVM and the software backend
// and times, with the guest's own generic counter (CNTVCT_EL0 at CNTFRQ_EL0):
//   mmio  N loads of the UART's UTRSTAT register (each one an MMIO exit served by the VMM)
//   ipi   N FastIPIs to itself: MSR IPI_RR_LOCAL_EL1 -> the VMM raises the FIQ -> the FIQ vector
//         runs (the interrupt-injection round trip; the handler clears IPI_SR_EL1)
// and prints "KVMBENCH freq=F mmio_n=N mmio_ticks=T ipi_n=N ipi_ticks=T" (hex) on the s5l UART.

#define UART0_BASE 0x235200000      /* layouts/t8103-virt.yaml: uart0 */
#define UTXH 0x20
#define UTRSTAT 0x10
#define MMIO_N 2000
#define IPI_N 500

	.text
	.globl _start
_start:
	b	entry
	.long	0
	.quad	0
	.quad	image_end - _start
	.quad	0
	.quad	0, 0, 0
	.ascii	"ARM\x64"
	.long	0

entry:
	ldr	x19, =UART0_BASE
	adr	x0, vectors
	msr	vbar_el1, x0
	isb

	// MMIO exits.
	mov	x20, #MMIO_N
	isb
	mrs	x21, cntvct_el0
1:	ldr	w1, [x19, #UTRSTAT]
	subs	x20, x20, #1
	b.ne	1b
	isb
	mrs	x22, cntvct_el0
	sub	x23, x22, x21              // mmio ticks

	// FastIPI round trips, FIQs unmasked.
	msr	s3_5_c15_c1_1, xzr
	mrs	x3, mpidr_el1
	and	x3, x3, #0xff
	mov	x20, #IPI_N
	mov	x24, #0                    // ipi ticks
	msr	daifclr, #1
2:	mov	x12, #0
	isb
	mrs	x13, cntvct_el0
	msr	s3_5_c15_c0_0, x3
3:	cbz	x12, 3b
	sub	x14, x12, x13
	add	x24, x24, x14
	subs	x20, x20, #1
	b.ne	2b
	msr	daifset, #1

	adr	x0, msg_head
	bl	puts
	mrs	x0, cntfrq_el0
	bl	puthex
	adr	x0, msg_mmio_n
	bl	puts
	mov	x0, #MMIO_N
	bl	puthex
	adr	x0, msg_mmio_t
	bl	puts
	mov	x0, x23
	bl	puthex
	adr	x0, msg_ipi_n
	bl	puts
	mov	x0, #IPI_N
	bl	puthex
	adr	x0, msg_ipi_t
	bl	puts
	mov	x0, x24
	bl	puthex
	adr	x0, msg_done
	bl	puts
halt:
	wfi
	b	halt

// puts(x0): clobbers x0, w1.
puts:
	ldrb	w1, [x0], #1
	cbz	w1, 1f
	str	w1, [x19, #UTXH]
	b	puts
1:	ret

// puthex(x0): 16 hex digits; clobbers x0-x2, x4.
puthex:
	mov	x2, #60
1:	lsr	x4, x0, x2
	and	x4, x4, #0xf
	cmp	x4, #10
	add	x1, x4, #'0'
	add	x4, x4, #('a' - 10)
	csel	x1, x4, x1, hs
	str	w1, [x19, #UTXH]
	subs	x2, x2, #4
	b.pl	1b
	ret

// FIQ from EL1 with SP_EL1 (vector +0x300): stamp the counter, clear IPI_SR, return.
	.balign	2048
vectors:
	.skip	0x300
	mrs	x10, cntvct_el0
	mov	x11, #1
	msr	s3_5_c15_c1_1, x11
	isb
	mov	x12, x10
	eret

msg_head:	.asciz	"KVMBENCH freq="
msg_mmio_n:	.asciz	" mmio_n="
msg_mmio_t:	.asciz	" mmio_ticks="
msg_ipi_n:	.asciz	" ipi_n="
msg_ipi_t:	.asciz	" ipi_ticks="
msg_done:	.asciz	"\nKVMBENCH-DONE\n"
	.balign	8
	.ltorg
image_end:
