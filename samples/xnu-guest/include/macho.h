/* The Mach-O structures the kernel reads from its own collection (EXTERNAL_HEADERS/mach-o/loader.h,
 * nlist.h and fixup-chains.h; names kept as Apple spells them). */
#ifndef M1PREP_MACHO_H
#define M1PREP_MACHO_H
#include <stdint.h>

#define MH_MAGIC_64 0xfeedfacfu
#define MH_FILESET 0xc
#define LC_SEGMENT_64 0x19
#define LC_SYMTAB 0x2
#define LC_DYLD_CHAINED_FIXUPS 0x80000034u
#define LC_FILESET_ENTRY 0x80000035u
#define VM_PROT_WRITE 0x2
#define VM_PROT_EXECUTE 0x4
#define N_TYPE 0x0e
#define N_SECT 0xe
#define N_STAB 0xe0
#define DYLD_CHAINED_PTR_64_KERNEL_CACHE 8
#define DYLD_CHAINED_PTR_START_NONE 0xffff
#define DYLD_CHAINED_PTR_START_MULTI 0x8000

struct mach_header_64 {
	uint32_t magic, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags, reserved;
};
struct load_command {
	uint32_t cmd, cmdsize;
};
struct segment_command_64 {
	uint32_t cmd, cmdsize;
	char segname[16];
	uint64_t vmaddr, vmsize, fileoff, filesize;
	uint32_t maxprot, initprot, nsects, flags;
};
struct fileset_entry_command {
	uint32_t cmd, cmdsize;
	uint64_t vmaddr, fileoff;
	uint32_t entry_id, reserved;
};
struct linkedit_data_command {
	uint32_t cmd, cmdsize, dataoff, datasize;
};
struct symtab_command {
	uint32_t cmd, cmdsize, symoff, nsyms, stroff, strsize;
};
struct nlist_64 {
	uint32_t n_strx;
	uint8_t n_type, n_sect;
	uint16_t n_desc;
	uint64_t n_value;
};
struct dyld_chained_fixups_header {
	uint32_t fixups_version, starts_offset, imports_offset, symbols_offset, imports_count, imports_format, symbols_format;
};
struct dyld_chained_starts_in_image {
	uint32_t seg_count;
	uint32_t seg_info_offset[];
};
struct dyld_chained_starts_in_segment {
	uint32_t size;
	uint16_t page_size, pointer_format;
	uint64_t segment_offset;
	uint32_t max_valid_pointer;
	uint16_t page_count;
	uint16_t page_start[];
};

/* Iterate over the load commands of a header (bounded by ncmds and sizeofcmds). */
#define FOR_EACH_LC(mh, lc)                                                                       \
	for (const struct load_command *lc = (const void *)((const uint8_t *)(mh) + sizeof(*(mh))), \
	                               *lc##_end = (const void *)((const uint8_t *)lc + (mh)->sizeofcmds); \
	     lc < lc##_end && lc->cmdsize >= 8; lc = (const void *)((const uint8_t *)lc + lc->cmdsize))
#endif
