/* Starting the kexts of the collection, as OSKext does for a fileset kernel collection: each
 * LC_FILESET_ENTRY other than the kernel is a kext whose kmod_info is found through its `_kmod_info`
 * symbol; its start routine is called. Every pointer involved (the kmod_info's start routine, the
 * kext's references to the kernel) was put in place by the collection's chained fixups. */
#include "guest.h"
#include "macho.h"

extern uint64_t kc_header_va, kc_base_va;

#define MAX_SERVICES 8
static struct {
	const char *name;
	kpi_service_t fn;
} services[MAX_SERVICES];
static int nservices;
static kpi_file_verifier_t file_verifier;

void kpi_register_service(const char *name, kpi_service_t fn) {
	if (nservices == MAX_SERVICES) panic("kpi: too many services");
	services[nservices].name = name;
	services[nservices].fn = fn;
	nservices++;
}

void kpi_register_file_verifier(kpi_file_verifier_t fn) { file_verifier = fn; }

kpi_service_t kpi_find_service(const char *name) {
	for (int i = 0; i < nservices; i++)
		if (strcmp(services[i].name, name) == 0) return services[i].fn;
	return NULL;
}

kpi_file_verifier_t kpi_file_verifier(void) { return file_verifier; }

/* A collection file offset (LC_SYMTAB's symoff/stroff) as a kernel virtual address. */
static const void *kc_fileoff(uint64_t off, uint64_t len) {
	const struct mach_header_64 *kc = (const void *)kc_header_va;
	FOR_EACH_LC(kc, lc) {
		if (lc->cmd != LC_SEGMENT_64) continue;
		const struct segment_command_64 *seg = (const void *)lc;
		if (off >= seg->fileoff && off - seg->fileoff + len <= seg->filesize) return (const void *)(seg->vmaddr + (off - seg->fileoff));
	}
	return NULL;
}

static kmod_info_t *find_kmod_info(const struct mach_header_64 *mh, const char *id) {
	FOR_EACH_LC(mh, lc) {
		if (lc->cmd != LC_SYMTAB) continue;
		const struct symtab_command *st = (const void *)lc;
		const struct nlist_64 *syms = kc_fileoff(st->symoff, (uint64_t)st->nsyms * sizeof(struct nlist_64));
		const char *strs = kc_fileoff(st->stroff, st->strsize);
		if (!syms || !strs) panic("kext %s: its symbol table is not mapped", id);
		for (uint32_t i = 0; i < st->nsyms; i++) {
			if (syms[i].n_type & N_STAB || (syms[i].n_type & N_TYPE) != N_SECT || syms[i].n_strx >= st->strsize) continue;
			if (strcmp(strs + syms[i].n_strx, "_kmod_info") == 0) return (kmod_info_t *)syms[i].n_value;
		}
	}
	panic("kext %s: no _kmod_info symbol", id);
}

/* Calls the start routine of every kext; returns how many started. */
int kc_start_kexts(void) {
	const struct mach_header_64 *kc = (const void *)kc_header_va;
	int started = 0;
	FOR_EACH_LC(kc, lc) {
		if (lc->cmd != LC_FILESET_ENTRY) continue;
		const struct fileset_entry_command *fe = (const void *)lc;
		const char *id = (const char *)fe + fe->entry_id;
		if (strcmp(id, "com.apple.kernel") == 0) continue;
		const struct mach_header_64 *mh = (const void *)fe->vmaddr;
		if (mh->magic != MH_MAGIC_64) panic("kext %s: no Mach-O header at 0x%llx", id, fe->vmaddr);
		kmod_info_t *ki = find_kmod_info(mh, id);
		if (strncmp(ki->name, id, KMOD_MAX_NAME) != 0) panic("kext %s: kmod_info names %s", id, ki->name);
		if (!ki->start) panic("kext %s: kmod_info has no start routine", id);
		kern_return_t kr = ki->start(ki, NULL);
		if (kr != KERN_SUCCESS) panic("kext %s: start routine failed (0x%x)", id, kr);
		check("kext", "%s %s started (kmod_info 0x%llx, start 0x%llx)", id, ki->version, (uint64_t)ki, (uint64_t)ki->start);
		started++;
	}
	return started;
}
