/* The kernel programming interface the sample kexts link against. The kexts import these symbols;
 * the fileset builder resolves the imports to the kernel's addresses and records them in the
 * collection's chained fixups, which the kernel applies at boot (kernel/fixups.c). */
#ifndef M1PREP_KPI_H
#define M1PREP_KPI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* XNU's kmod_info_t (osfmk/mach/kmod.h), reduced to the fields the kernel uses: it is found through
 * the kext's `_kmod_info` symbol, and its start routine is what the kernel calls. */
#define KMOD_MAX_NAME 64
typedef int kern_return_t;
#define KERN_SUCCESS 0
#define KERN_FAILURE 5
struct kmod_info;
typedef kern_return_t kmod_start_func_t(struct kmod_info *ki, void *data);
typedef struct kmod_info {
	struct kmod_info *next;
	int32_t info_version;
	uint32_t id;
	char name[KMOD_MAX_NAME];
	char version[KMOD_MAX_NAME];
	int32_t reference_count;
	void *reference_list;
	uint64_t address;
	uint64_t size;
	uint64_t hdr_size;
	kmod_start_func_t *start;
	kmod_start_func_t *stop;
} kmod_info_t;

/* A file-verification hook (what AMFI registers with the VFS layer on a real system). */
typedef int (*kpi_file_verifier_t)(const char *path, const uint8_t *data, uint64_t len);
/* A service a kext publishes for the kernel to call back. */
typedef uint32_t (*kpi_service_t)(uint32_t arg);

void kpi_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kpi_register_service(const char *name, kpi_service_t fn);
void kpi_register_file_verifier(kpi_file_verifier_t fn);
bool kpi_memory_map_lookup(const char *name, uint64_t *pa, uint64_t *size);
const char *kpi_darwin_version(void);

/* Kexts call the kernel through their GOT (a non-lazy pointer the collection's fixups fill), the
 * way Apple's kexts do: there is no lazy binding in a kernel collection. */
static inline void *kpi_opaque(void *p) { __asm__("" : "+r"(p)); return p; }
#define KPI(fn) ((__typeof__(&fn))kpi_opaque((void *)&fn))
#endif
