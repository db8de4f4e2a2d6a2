/* Console on the Samsung-style UART the ADT names, a small printf, the checklist and panic. */
#include "guest.h"

#define UTRSTAT 0x10
#define UTXH 0x20
#define UTRSTAT_TXBE (1u << 1)

static uint64_t uart_base;
static volatile uint32_t console_lock;
volatile int mmu_enabled; /* exclusives are only used once memory is Normal (MMU on) */

void uart_init(uint64_t base_pa) { uart_base = base_pa; }

void uart_putc(char c) {
	if (!uart_base) return;
	if (c == '\n') uart_putc('\r');
	for (int spin = 0; spin < 100000 && !(mmio_read32(uart_base + UTRSTAT) & UTRSTAT_TXBE); spin++)
		;
	mmio_write32(uart_base + UTXH, (uint8_t)c);
}

static void lock(void) {
	if (!mmu_enabled) return;
	while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE))
		;
}
static void unlock(void) {
	if (!mmu_enabled) return;
	__atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

struct sink {
	char *buf; /* NULL: the UART */
	size_t len, pos;
};

static void put(struct sink *s, char c) {
	if (!s->buf) {
		uart_putc(c);
		return;
	}
	if (s->pos + 1 < s->len) s->buf[s->pos] = c;
	s->pos++;
}

static void put_num(struct sink *s, uint64_t v, unsigned base, int width, char pad, bool neg, bool upper) {
	char tmp[24];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v && n < (int)sizeof(tmp));
	if (neg) {
		if (pad == '0') put(s, '-');
		width--;
	}
	for (int i = n; i < width; i++) put(s, pad);
	if (neg && pad != '0') put(s, '-');
	while (n) put(s, tmp[--n]);
}

static void format(struct sink *s, const char *fmt, va_list ap) {
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(s, *fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*fmt == '0') pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') longs++, fmt++;
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(s, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, width, pad, v < 0, false);
			break;
		}
		case 'u':
			put_num(s, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad, false, false);
			break;
		case 'x':
		case 'X':
			put_num(s, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad, false, *fmt == 'X');
			break;
		case 'p':
			put(s, '0'), put(s, 'x');
			put_num(s, (uint64_t)va_arg(ap, void *), 16, width, pad, false, false);
			break;
		case 'c':
			put(s, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str) str = "(null)";
			int n = (int)strlen(str);
			for (int i = n; i < width; i++) put(s, ' ');
			while (*str) put(s, *str++);
			break;
		}
		case '%':
			put(s, '%');
			break;
		default:
			put(s, '%'), put(s, *fmt);
			if (!*fmt) return;
		}
	}
}

void kvprintf(const char *fmt, va_list ap) {
	struct sink s = {0};
	lock();
	format(&s, fmt, ap);
	unlock();
}

void kprintf(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}

/* Exported to kexts as kpi_log: the same console. */
void kpi_log(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}

/* Format into buf (always NUL-terminated, truncated if needed); returns the untruncated length. */
static int format_buf(char *buf, size_t len, const char *fmt, va_list ap) {
	struct sink s = {buf, len, 0};
	format(&s, fmt, ap);
	if (len) buf[s.pos < len ? s.pos : len - 1] = 0;
	return (int)s.pos;
}

int ksnprintf(char *buf, size_t len, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	int n = format_buf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

/* One checklist line: "[ok] <item> <details>". */
void check(const char *item, const char *fmt, ...) {
	char detail[200];
	va_list ap;
	va_start(ap, fmt);
	format_buf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	kprintf("[ok] %s%s%s\n", item, detail[0] ? " " : "", detail);
}

static volatile int panicking;

/* XNU's format: panic(cpu N caller 0xADDR): message */
NORETURN NOINLINE void panic(const char *fmt, ...) {
	uint64_t caller = (uint64_t)__builtin_return_address(0);
	__asm__ volatile("msr daifset, #0xf");
	if (panicking++) {
		for (;;) __asm__ volatile("wfi");
	}
	char msg[240];
	va_list ap;
	va_start(ap, fmt);
	format_buf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	console_lock = 0; /* whoever held it will never release it now */
	kprintf("panic(cpu %d caller 0x%llx): %s\n", cpu_number(), caller, msg);
	kprintf("Debugger called: <panic>\n");
	for (;;) __asm__ volatile("wfi");
}

NORETURN void sync_exception(uint64_t esr, uint64_t far, uint64_t elr) {
	unsigned ec = (unsigned)(esr >> 26) & 0x3f;
	const char *kind = ec == 0x25 ? "data abort" : ec == 0x21 ? "instruction abort" : ec == 0x00 ? "undefined instruction" : ec == 0x22 ? "PC alignment fault" : ec == 0x26 ? "SP alignment fault" : "synchronous exception";
	panic("Kernel %s at pc 0x%llx, esr 0x%llx, far 0x%llx", kind, elr, esr, far);
}
