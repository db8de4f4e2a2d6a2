/* A read-only HFS+ reader (Apple TN1150): the volume header, the catalog B-tree's leaf chain, and a
 * file's data fork extents (the eight in the catalog record; the extents-overflow file is not read,
 * so a file fragmented beyond eight extents is refused). Big-endian throughout; bounded walks. */
#include "guest.h"

#define HFSPLUS_SIGNATURE 0x482b /* 'H+' */
#define HFSX_SIGNATURE 0x4858    /* 'HX' */
#define kHFSRootFolderID 2
#define kBTLeafNode (-1)
#define kHFSPlusFolderRecord 1
#define kHFSPlusFileRecord 2
#define MAX_LEAF_NODES 16384 /* bounds the leaf walk even if the chain loops */

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

struct hfs {
	const uint8_t *img;
	uint64_t size;
	uint32_t bs;
	bool case_sensitive;
	const uint8_t *catalog_fork; /* HFSPlusForkData in the volume header */
	uint32_t node_size;
};

/* Map a byte range of a fork (HFSPlusForkData: logicalSize, clumpSize, totalBlocks, 8 extents). */
static const uint8_t *fork_ptr(const struct hfs *h, const uint8_t *fork, uint64_t off, uint64_t len) {
	uint64_t base = 0;
	for (int i = 0; i < 8; i++) {
		const uint8_t *ext = fork + 16 + 8 * i;
		uint64_t start = be32(ext), count = be32(ext + 4);
		uint64_t bytes = count * h->bs;
		if (off >= base && off - base + len <= bytes) {
			uint64_t pos = start * h->bs + (off - base);
			if (pos + len > h->size) panic("HFS+: extent at block %llu is outside the image", start);
			return h->img + pos;
		}
		base += bytes;
	}
	return NULL;
}

static bool name_equal(const struct hfs *h, const uint8_t *uni, uint16_t len, const char *name, size_t name_len) {
	if (len != name_len) return false;
	for (uint16_t i = 0; i < len; i++) {
		uint16_t c = be16(uni + 2 * i);
		char want = name[i];
		if (!h->case_sensitive) {
			if (c >= 'A' && c <= 'Z') c = (uint16_t)(c - 'A' + 'a');
			if (want >= 'A' && want <= 'Z') want = (char)(want - 'A' + 'a');
		}
		if (c != (uint8_t)want) return false;
	}
	return true;
}

/* Catalog record for (parent, name): scans the leaf chain from the header's firstLeafNode. */
static const uint8_t *catalog_find(const struct hfs *h, uint32_t parent, const char *name, size_t name_len) {
	const uint8_t *hdr = fork_ptr(h, h->catalog_fork, 0, 512);
	if (!hdr) panic("HFS+: catalog header node is not mapped");
	uint32_t node = be32(hdr + 14 + 10), total = be32(hdr + 14 + 22);
	for (uint32_t visited = 0; node && visited < total && visited < MAX_LEAF_NODES; visited++) {
		const uint8_t *nd = fork_ptr(h, h->catalog_fork, (uint64_t)node * h->node_size, h->node_size);
		if (!nd) panic("HFS+: catalog node %u is not mapped", node);
		if ((int8_t)nd[8] != kBTLeafNode) panic("HFS+: catalog node %u is not a leaf", node);
		uint16_t nrec = be16(nd + 10);
		for (uint16_t r = 0; r < nrec && r < h->node_size / 2; r++) {
			uint16_t off = be16(nd + h->node_size - 2 * (r + 1));
			if (off + 8 > h->node_size) panic("HFS+: record offset outside node %u", node);
			const uint8_t *key = nd + off;
			uint16_t key_len = be16(key);
			if (off + 2 + key_len + 2 > h->node_size || key_len < 6) continue;
			uint32_t key_parent = be32(key + 2);
			uint16_t nlen = be16(key + 6);
			if (8 + 2 * nlen > 2 + key_len) continue;
			if (key_parent == parent && name_equal(h, key + 8, nlen, name, name_len)) return key + 2 + key_len;
		}
		node = be32(nd); /* fLink */
	}
	return NULL;
}

bool hfsplus_read_file(const uint8_t *img, uint64_t size, const char *path, uint8_t *buf, uint64_t cap, uint64_t *outlen) {
	if (size < 2048) return false;
	const uint8_t *vh = img + 1024;
	uint16_t sig = be16(vh);
	if (sig != HFSPLUS_SIGNATURE && sig != HFSX_SIGNATURE) return false;
	struct hfs h = {img, size, be32(vh + 0x28), sig == HFSX_SIGNATURE, vh + 0x110, 0};
	if (h.bs < 512 || (h.bs & (h.bs - 1))) panic("HFS+: block size %u", h.bs);
	const uint8_t *hdr = fork_ptr(&h, h.catalog_fork, 0, 512);
	if (!hdr) panic("HFS+: catalog file is empty");
	h.node_size = be16(hdr + 14 + 18);
	if (h.node_size < 512 || (h.node_size & (h.node_size - 1))) panic("HFS+: catalog node size %u", h.node_size);

	uint32_t cur = kHFSRootFolderID;
	const uint8_t *rec = NULL;
	while (*path) {
		while (*path == '/') path++;
		const char *end = path;
		while (*end && *end != '/') end++;
		if (end == path) break;
		rec = catalog_find(&h, cur, path, (size_t)(end - path));
		if (!rec) return false;
		int16_t type = (int16_t)be16(rec);
		if (type == kHFSPlusFolderRecord) cur = be32(rec + 8);
		else if (type == kHFSPlusFileRecord && !*end) break;
		else return false;
		path = end;
	}
	if (!rec || (int16_t)be16(rec) != kHFSPlusFileRecord) return false;
	const uint8_t *fork = rec + 0x58; /* dataFork */
	uint64_t len = be64(fork);
	if (len > cap) len = cap;
	for (uint64_t done = 0; done < len;) {
		uint64_t chunk = len - done < h.bs ? len - done : h.bs;
		const uint8_t *p = fork_ptr(&h, fork, done, chunk);
		if (!p) panic("HFS+: file data beyond the catalog record's eight extents");
		memcpy(buf + done, p, chunk);
		done += chunk;
	}
	*outlen = len;
	return true;
}
