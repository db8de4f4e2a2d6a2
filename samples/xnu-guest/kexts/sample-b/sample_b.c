/* com.m1prep.sample.b: a stand-in for AMFI. It registers a file verifier with the kernel; the
 * verifier demands that a file's hash appear in a trust cache loaded by the boot loader
 * (/chosen/memory-map "TrustCache"). A ramdisk built by m1prep is in no trust cache, so a port
 * patches the check (samples/GUARDS.md, guard "kext-signature"). */
#include "kpi.h"

#define BUNDLE_ID "com.m1prep.sample.b"
#define NOINLINE __attribute__((noinline))

/* Trust cache (version 1 layout): u32 version, u8 uuid[16], u32 count, then count entries of
 * { u8 cdhash[20], u8 hash_type, u8 flags }. The sample hashes with FNV-1a 64 into the first
 * eight cdhash bytes: a stand-in for a real CDHash, enough to make the check a real comparison. */
struct trust_cache_entry {
	uint8_t cdhash[20];
	uint8_t hash_type, flags;
};

static uint64_t fnv1a64(const uint8_t *p, uint64_t n) {
	uint64_t h = 0xcbf29ce484222325ull;
	while (n--) h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

NOINLINE int amfi_check_trust_cache(const char *path, const uint8_t *data, uint64_t len) {
	uint64_t pa, size;
	if (!KPI(kpi_memory_map_lookup)("TrustCache", &pa, &size) || size < 24) {
		KPI(kpi_log)("AMFI: no trust cache loaded: %s has no valid code signature\n", path);
		return 1;
	}
	const uint8_t *tc = (const uint8_t *)pa;
	uint32_t count = tc[20] | tc[21] << 8 | tc[22] << 16 | (uint32_t)tc[23] << 24;
	uint64_t want = fnv1a64(data, len);
	const struct trust_cache_entry *e = (const void *)(tc + 24);
	for (uint32_t i = 0; i < count && 24 + (uint64_t)(i + 1) * sizeof(*e) <= size; i++) {
		uint64_t have = 0;
		for (int b = 7; b >= 0; b--) have = have << 8 | e[i].cdhash[b];
		if (have == want) return 0;
	}
	KPI(kpi_log)("AMFI: %s is not in the trust cache\n", path);
	return 1;
}

static int amfi_verify_file(const char *path, const uint8_t *data, uint64_t len) {
	if (amfi_check_trust_cache(path, data, len) != 0)
		KPI(panic)("AMFI: signature check failed for %s (kext " BUNDLE_ID ")", path);
	return 0;
}

static kern_return_t sample_b_start(kmod_info_t *ki, void *data) {
	(void)data;
	KPI(kpi_register_file_verifier)(amfi_verify_file);
	KPI(kpi_log)("%s: file verifier registered\n", ki->name);
	return KERN_SUCCESS;
}

kmod_info_t kmod_info = {
	.info_version = 1,
	.name = BUNDLE_ID,
	.version = "1.0.0",
	.start = sample_b_start,
	.stop = 0,
};
