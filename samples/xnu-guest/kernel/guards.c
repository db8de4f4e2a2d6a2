/* Checks a real kernel makes that a virtual machine cannot pass. A port patches them (the shipped
 * profiles do, by string cross-reference and instruction pattern: see samples/GUARDS.md); left in
 * place, each one panics with a message that names it. Ordinary C, compiled like the rest. */
#include "guest.h"

/* The boards this kernel "supports", by the target-type iBoot leaves in the ADT root. */
static const char *const supported_boards[] = {"J274", "J293", "J313", "J456", "J457"};

/* A board check in the spirit of the platform expert's: a supported target-type, and the fused
 * chip identity (ECID) that iBoot copies into /chosen/unique-chip-id on real hardware. */
NOINLINE int platform_check_board(void) {
	adt_node_t root, chosen;
	uint32_t len = 0;
	const char *target = NULL;
	uint64_t ecid = 0;
	if (adt_lookup("/", &root)) target = adt_prop(&root, "target-type", &len);
	if (adt_lookup("/chosen", &chosen)) adt_prop_u64(&chosen, "unique-chip-id", &ecid);
	bool known = false;
	for (size_t i = 0; target && i < sizeof(supported_boards) / sizeof(supported_boards[0]); i++)
		if (strcmp(target, supported_boards[i]) == 0) known = true;
	if (!known || ecid == 0)
		panic("Unsupported platform: target-type %s, ECID 0x%llx: this kernel runs only on Apple silicon Macs", target ? target : "(none)", ecid);
	return 0;
}

/* The Secure Enclave's mailbox (an ASC-style mailbox in /arm-io/sep): the kernel waits for the SEP
 * to report that its firmware is up, as AppleSEPManager does early in boot. */
#define SEP_OUTBOX_MSG 0x8830
#define SEP_MSG_BOOTED 0x5345500000000001ull /* "SEP" | booted */
#define SEP_BOOT_TIMEOUT_MS 200

extern uint64_t now_ticks(void);

NOINLINE int sep_wait_for_boot(void) {
	adt_node_t sep;
	uint64_t pa = 0, size = 0;
	bool present = adt_lookup("/arm-io/sep", &sep) && adt_reg(&sep, 0, &pa, &size);
	uint64_t deadline = now_ticks() + machine.timer_hz / 1000 * SEP_BOOT_TIMEOUT_MS;
	while (present && now_ticks() < deadline) {
		uint64_t msg = *(volatile uint64_t *)(pa + SEP_OUTBOX_MSG);
		if (msg == SEP_MSG_BOOTED) return 0;
		wait_for_interrupt();
	}
	panic("SEP did not boot: no answer from the Secure Enclave mailbox after %u ms%s", SEP_BOOT_TIMEOUT_MS, present ? "" : " (no /arm-io/sep in the device tree)");
}
