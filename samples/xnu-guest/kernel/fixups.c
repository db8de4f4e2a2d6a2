/* Applying the kernel collection's chained fixups, as XNU does before it turns the MMU on
 * (arm_slide_rebase_and_sign_image): every pointer in the collection is stored as a
 * DYLD_CHAINED_PTR_64_KERNEL_CACHE entry (target = offset from the collection's base) and becomes an
 * absolute virtual address here. Runs with the MMU off, at physical addresses: only PC-relative
 * code, no pointer loaded from data. */
#include "guest.h"
#include "macho.h"

/* Where a file offset of the collection sits in memory (physical), via the segment holding it. */
static uint64_t fileoff_to_pa(const struct mach_header_64 *kc, uint64_t kc_base_va, uint64_t off, uint64_t len) {
	FOR_EACH_LC(kc, lc) {
		if (lc->cmd != LC_SEGMENT_64) continue;
		const struct segment_command_64 *seg = (const void *)lc;
		if (off >= seg->fileoff && off - seg->fileoff + len <= seg->filesize)
			return (uint64_t)kc + (seg->vmaddr - kc_base_va) + (off - seg->fileoff);
	}
	return 0;
}

uint64_t kc_apply_fixups(uint64_t kc_header_pa, uint64_t kc_base_va) {
	const struct mach_header_64 *kc = (const void *)kc_header_pa;
	const struct linkedit_data_command *cf = NULL;
	FOR_EACH_LC(kc, lc) {
		if (lc->cmd == LC_DYLD_CHAINED_FIXUPS) cf = (const void *)lc;
	}
	if (!cf) panic("KC: the kernel collection has no LC_DYLD_CHAINED_FIXUPS");
	const uint8_t *blob = (const void *)fileoff_to_pa(kc, kc_base_va, cf->dataoff, cf->datasize);
	if (!blob) panic("KC: chained fixups at file offset 0x%x are outside every segment", cf->dataoff);
	const struct dyld_chained_fixups_header *h = (const void *)blob;
	if (h->fixups_version != 0 || h->starts_offset >= cf->datasize) panic("KC: bad chained fixups header");
	const struct dyld_chained_starts_in_image *img = (const void *)(blob + h->starts_offset);
	uint64_t count = 0;
	for (uint32_t s = 0; s < img->seg_count && s < 1024; s++) {
		if (!img->seg_info_offset[s]) continue;
		const struct dyld_chained_starts_in_segment *seg = (const void *)((const uint8_t *)img + img->seg_info_offset[s]);
		if (seg->pointer_format != DYLD_CHAINED_PTR_64_KERNEL_CACHE)
			panic("KC: segment %u uses pointer format %u, expected DYLD_CHAINED_PTR_64_KERNEL_CACHE", s, seg->pointer_format);
		for (uint32_t pg = 0; pg < seg->page_count; pg++) {
			uint16_t start = seg->page_start[pg];
			if (start == DYLD_CHAINED_PTR_START_NONE) continue;
			if (start & DYLD_CHAINED_PTR_START_MULTI) panic("KC: multi-start pages are not used by kernel collections");
			uint64_t off = seg->segment_offset + (uint64_t)pg * seg->page_size + start;
			/* Bounded: a chain never leaves its page. */
			for (uint32_t guard = 0; guard <= seg->page_size / 4; guard++) {
				volatile uint64_t *slot = (volatile uint64_t *)(kc_header_pa + off);
				uint64_t raw = *slot;
				uint64_t target = raw & 0x3fffffff;      /* target:30 */
				uint32_t level = (raw >> 30) & 3;         /* cacheLevel:2 */
				uint32_t next = (raw >> 51) & 0xfff;      /* next:12, in 4-byte strides */
				if (level != 0) panic("KC: fixup at +0x%llx refers to cache level %u (no auxiliary collection here)", off, level);
				*slot = kc_base_va + target;
				count++;
				if (!next) break;
				off += (uint64_t)next * 4;
			}
		}
	}
	return count;
}
