/* Shared declarations of the m1prep sample guest: a small arm64 kernel that follows XNU's boot
 * contract (see docs/sample.md). Freestanding C: no libc, no floating point. */
#ifndef M1PREP_GUEST_H
#define M1PREP_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT 14 /* 16 KiB translation granule, as XNU on M1 */
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define ROUND_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define MAX_CPUS 8
#define NOINLINE __attribute__((noinline))
#define NORETURN __attribute__((noreturn))

/* ---- boot_args (pexpert/pexpert/arm64/boot.h). BOOT_LINE_LENGTH is 608 up to Darwin 22 and 1024
 * from Darwin 23: the build defines it per flavour, exactly as XNU's header does per release. */
#ifndef BOOT_LINE_LENGTH
#error "BOOT_LINE_LENGTH must be defined by the build (608 or 1024)"
#endif
typedef struct boot_video {
	uint64_t v_baseAddr, v_display, v_rowBytes, v_width, v_height, v_depth;
} boot_video_t;
typedef struct boot_args {
	uint16_t Revision;
	uint16_t Version;
	uint32_t pad;
	uint64_t virtBase;
	uint64_t physBase;
	uint64_t memSize;
	uint64_t topOfKernelData;
	boot_video_t Video;
	uint32_t machineType;
	uint32_t pad2;
	uint64_t deviceTreeP; /* kernel virtual address */
	uint32_t deviceTreeLength;
	char CommandLine[BOOT_LINE_LENGTH];
	uint64_t bootFlags;
	uint64_t memSizeActual;
} boot_args_t;

/* ---- console and panic */
void uart_init(uint64_t base_pa);
void uart_putc(char c);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
NORETURN void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void check(const char *item, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- small libc */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* ---- Apple device tree (pexpert/pexpert/device_tree.h layout) */
#define ADT_MAX_DEPTH 12
/* A node and the chain of its ancestors (needed to translate "reg" through each "ranges"). */
typedef struct adt_node {
	const uint8_t *p;
	int depth;
	const uint8_t *anc[ADT_MAX_DEPTH];
} adt_node_t;
void adt_init(const void *base, uint32_t len);
bool adt_lookup(const char *path, adt_node_t *out);
/* Depth-first search for the first node whose `prop` (a string list) contains `value`. */
bool adt_find(const char *prop, const char *value, adt_node_t *out);
const void *adt_prop(const adt_node_t *n, const char *name, uint32_t *len);
bool adt_prop_u32(const adt_node_t *n, const char *name, uint32_t *out);
bool adt_prop_u64(const adt_node_t *n, const char *name, uint64_t *out);
bool adt_prop_has_string(const adt_node_t *n, const char *prop, const char *value);
const char *adt_name(const adt_node_t *n);
int adt_children(const adt_node_t *n, adt_node_t *out, int max);
bool adt_reg(const adt_node_t *n, int index, uint64_t *pa, uint64_t *size);
int adt_ranges(const adt_node_t *n, uint64_t *parent_base, uint64_t *size, int max);
bool adt_memory_map(const char *entry, uint64_t *pa, uint64_t *size);

/* ---- machine state discovered at boot */
struct cpu_desc {
	uint64_t mpidr;
	uint64_t impl_reg_pa;
	uint32_t cluster, core;
};
struct machine {
	boot_args_t *args;
	uint64_t uart_pa, aic_pa, pmgr_pa;
	uint32_t aic_irqs;
	uint64_t timer_hz;
	int ncpus;
	struct cpu_desc cpu[MAX_CPUS];
	uint64_t virt_to_phys; /* physBase - virtBase, as a two's-complement offset */
};
extern struct machine machine;

static inline uint64_t kvtophys(uint64_t va) { return va + machine.virt_to_phys; }

/* ---- per-CPU and interrupt plumbing */
int cpu_number(void);
void aic_init(void);
bool aic_sw_irq_selftest(void);
void timer_start(uint32_t hz);
uint32_t timer_ticks(void);
void fastipi_send(int target);
uint32_t fastipi_received(int cpu);
int smp_start_secondaries(void);
void irq_handler(void);
void fiq_handler(void);
NORETURN void sync_exception(uint64_t esr, uint64_t far, uint64_t elr);
void wait_for_interrupt(void);

/* ---- ramdisk and file systems (read-only, enough to mount a root like XNU's) */
struct fs_file {
	const uint8_t *data; /* points into a bounce buffer owned by the reader */
	uint64_t size;
};
const char *ramdisk_fs_name(const uint8_t *img, uint64_t size);
bool apfs_read_file(const uint8_t *img, uint64_t size, const char *path, uint8_t *buf, uint64_t cap, uint64_t *outlen);
bool hfsplus_read_file(const uint8_t *img, uint64_t size, const char *path, uint8_t *buf, uint64_t cap, uint64_t *outlen);

/* ---- the kernel collection (MH_FILESET) we were loaded from */
uint64_t kc_apply_fixups(uint64_t kc_header_pa, uint64_t kc_base_va);
int kc_start_kexts(void);

/* ---- guards a port to a virtual machine must neutralize (see samples/GUARDS.md) */
int platform_check_board(void);
int sep_wait_for_boot(void);

/* ---- kernel programming interface exported to the collection's kexts (see kpi.h) */
#include "kpi.h"

/* ---- system registers */
#define SYSREG_STR(name) #name
#define SYSREG_READ(name) ({ uint64_t _v; __asm__ volatile("mrs %0, " SYSREG_STR(name) : "=r"(_v)); _v; })
#define SYSREG_WRITE(name, v) __asm__ volatile("msr " SYSREG_STR(name) ", %0" ::"r"((uint64_t)(v)))
/* Apple IMPDEF registers (names as in m1n1's / Linux's headers). */
#define IPI_RR_LOCAL_EL1 s3_5_c15_c0_0
#define IPI_RR_GLOBAL_EL1 s3_5_c15_c0_1
#define IPI_SR_EL1 s3_5_c15_c1_1
#define IPI_CR_EL1 s3_5_c15_c3_1
#define PMCR0_EL1 s3_1_c15_c0_0

static inline uint32_t mmio_read32(uint64_t pa) { return *(volatile uint32_t *)pa; }
static inline void mmio_write32(uint64_t pa, uint32_t v) { *(volatile uint32_t *)pa = v; }
static inline void mmio_write64(uint64_t pa, uint64_t v) { *(volatile uint64_t *)pa = v; }

#endif
