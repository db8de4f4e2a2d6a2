/* A read-only APFS reader, enough to find a path from the root directory of the first volume and
 * read the file's extents, as XNU's APFS mounts a ramdisk root. Structures and constants from
 * Apple's "Apple File System Reference" (names kept). Every object read is checked (magic, type,
 * Fletcher-64 checksum) and every walk is bounded. */
#include "guest.h"

#define NX_MAGIC 0x4253584e   /* 'NXSB' */
#define APFS_MAGIC 0x42535041 /* 'APSB' */
#define OBJECT_TYPE_MASK 0xffff
#define OBJECT_TYPE_NX_SUPERBLOCK 0x1
#define OBJECT_TYPE_BTREE 0x2
#define OBJECT_TYPE_BTREE_NODE 0x3
#define OBJECT_TYPE_OMAP 0xb
#define OBJECT_TYPE_FS 0xd
#define BTNODE_ROOT 0x1
#define BTNODE_LEAF 0x2
#define BTNODE_FIXED_KV_SIZE 0x4
#define APFS_TYPE_INODE 3
#define APFS_TYPE_FILE_EXTENT 8
#define APFS_TYPE_DIR_REC 9
#define ROOT_DIR_INO_NUM 2
#define INO_EXT_TYPE_DSTREAM 8
#define APFS_INCOMPAT_CASE_INSENSITIVE 0x1
#define APFS_INCOMPAT_NORMALIZATION_INSENSITIVE 0x8
#define J_FILE_EXTENT_LEN_MASK 0x00ffffffffffffffull
#define MAX_DEPTH 8
#define MAX_NODES 100000

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

struct apfs {
	const uint8_t *img;
	uint64_t size;
	uint32_t bs;
	uint64_t xid;
	uint64_t vol_omap_tree;
	bool hashed_names, case_insensitive;
	int nodes_visited;
};

static uint64_t fletcher64(const uint8_t *b, uint32_t len) {
	uint64_t sum1 = 0, sum2 = 0;
	for (uint32_t i = 8; i + 4 <= len; i += 4) {
		sum1 = (sum1 + rd32(b + i)) % 0xffffffffull;
		sum2 = (sum2 + sum1) % 0xffffffffull;
	}
	uint64_t lo = 0xffffffffull - ((sum1 + sum2) % 0xffffffffull);
	uint64_t hi = 0xffffffffull - ((sum1 + lo) % 0xffffffffull);
	return hi << 32 | lo;
}

/* Block n, checked: inside the image, the expected object type, a valid checksum. */
static const uint8_t *object(struct apfs *a, uint64_t n, uint32_t type) {
	if (n == 0 || n >= a->size / a->bs) panic("APFS: block %llu is outside the %llu-byte image", n, a->size);
	const uint8_t *b = a->img + n * a->bs;
	if ((rd32(b + 0x18) & OBJECT_TYPE_MASK) != type) panic("APFS: block %llu is object type 0x%x, expected 0x%x", n, rd32(b + 0x18) & OBJECT_TYPE_MASK, type);
	if (fletcher64(b, a->bs) != rd64(b)) panic("APFS: bad Fletcher-64 checksum on block %llu", n);
	return b;
}

struct node {
	const uint8_t *b;
	uint16_t flags, level;
	uint32_t nkeys;
	const uint8_t *toc, *keys, *vals_end;
};

static void parse_node(struct apfs *a, const uint8_t *b, struct node *n) {
	n->b = b;
	n->flags = rd16(b + 0x20);
	n->level = rd16(b + 0x22);
	n->nkeys = rd32(b + 0x24);
	const uint8_t *data = b + 0x38;
	n->toc = data + rd16(b + 0x28);
	n->keys = n->toc + rd16(b + 0x2a);
	n->vals_end = b + a->bs - ((n->flags & BTNODE_ROOT) ? 0x28 : 0);
	if (n->keys > n->vals_end || n->nkeys > a->bs / 4) panic("APFS: malformed B-tree node");
}

/* Entry i of a node: key and value pointers and lengths (fixed-size entries use the omap's sizes). */
static void entry(struct apfs *a, const struct node *n, uint32_t i, const uint8_t **k, uint32_t *kl, const uint8_t **v, uint32_t *vl) {
	if (n->flags & BTNODE_FIXED_KV_SIZE) {
		*k = n->keys + rd16(n->toc + 4 * i);
		*kl = 16;
		*v = n->vals_end - rd16(n->toc + 4 * i + 2);
		*vl = n->level ? 8 : 16;
	} else {
		*k = n->keys + rd16(n->toc + 8 * i);
		*kl = rd16(n->toc + 8 * i + 2);
		*v = n->vals_end - rd16(n->toc + 8 * i + 4);
		*vl = rd16(n->toc + 8 * i + 6);
	}
	if (*k < n->b || *k + *kl > n->b + a->bs || *v < n->b || *v + *vl > n->b + a->bs) panic("APFS: B-tree entry outside its node");
}

/* Object map lookup: the newest mapping of oid at or before xid. */
static uint64_t omap_lookup(struct apfs *a, uint64_t tree, uint64_t oid) {
	const uint8_t *b = object(a, tree, OBJECT_TYPE_BTREE);
	for (int depth = 0; depth < MAX_DEPTH; depth++) {
		struct node n;
		parse_node(a, b, &n);
		const uint8_t *best = NULL;
		for (uint32_t i = 0; i < n.nkeys; i++) {
			const uint8_t *k, *v;
			uint32_t kl, vl;
			entry(a, &n, i, &k, &kl, &v, &vl);
			uint64_t koid = rd64(k), kxid = rd64(k + 8);
			/* Keys sort by (oid, xid): in an index node follow the last key not above ours; in a
			 * leaf take the newest version of exactly our oid. */
			if (n.level ? (koid < oid || (koid == oid && kxid <= a->xid)) : (koid == oid && kxid <= a->xid)) best = v;
		}
		if (!best) break;
		if (!n.level) return rd64(best + 8); /* omap_val_t: flags, size, paddr */
		b = object(a, rd64(best), OBJECT_TYPE_BTREE_NODE);
	}
	panic("APFS: object %llu is not in the object map", oid);
}

typedef bool (*visit_fn)(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl, void *ctx);

/* Depth-first walk of the file-system tree (virtual node addresses, through the volume's omap). */
static bool walk(struct apfs *a, const uint8_t *b, int depth, visit_fn fn, void *ctx) {
	if (depth > MAX_DEPTH || ++a->nodes_visited > MAX_NODES) panic("APFS: file-system tree too deep or too large");
	struct node n;
	parse_node(a, b, &n);
	for (uint32_t i = 0; i < n.nkeys; i++) {
		const uint8_t *k, *v;
		uint32_t kl, vl;
		entry(a, &n, i, &k, &kl, &v, &vl);
		if (n.level) {
			uint64_t child = omap_lookup(a, a->vol_omap_tree, rd64(v));
			if (walk(a, object(a, child, OBJECT_TYPE_BTREE_NODE), depth + 1, fn, ctx)) return true;
		} else if (fn(k, kl, v, vl, ctx)) {
			return true;
		}
	}
	return false;
}

struct lookup {
	struct apfs *a;
	uint64_t parent;
	const char *name;
	size_t name_len;
	uint64_t found;
};

static char fold(char c, bool ci) { return ci && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool find_drec(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl, void *ctx) {
	struct lookup *l = ctx;
	uint64_t hdr = rd64(k);
	if ((hdr >> 60) != APFS_TYPE_DIR_REC || (hdr & 0x0fffffffffffffffull) != l->parent || vl < 8) return false;
	const char *name;
	uint32_t len;
	if (l->a->hashed_names) {
		len = rd32(k + 8) & 0x3ff;
		name = (const char *)k + 12;
	} else {
		len = rd16(k + 8);
		name = (const char *)k + 10;
	}
	if (len == 0 || (const uint8_t *)name + len > k + kl) return false;
	if (len - 1 != l->name_len) return false; /* stored length counts the NUL */
	for (size_t i = 0; i < l->name_len; i++)
		if (fold(name[i], l->a->case_insensitive) != fold(l->name[i], l->a->case_insensitive)) return false;
	l->found = rd64(v);
	return true;
}

struct inode {
	uint64_t id, private_id, size;
	bool found;
};

static bool find_inode(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl, void *ctx) {
	struct inode *ino = ctx;
	(void)kl;
	uint64_t hdr = rd64(k);
	if ((hdr >> 60) != APFS_TYPE_INODE || (hdr & 0x0fffffffffffffffull) != ino->id || vl < 0x5c) return false;
	ino->private_id = rd64(v + 0x08);
	ino->size = 0;
	ino->found = true;
	if (vl < 0x60) return true;
	/* Extended fields: xf_blob_t { u16 count, u16 used, x_field_t[count] {u8 type, u8 flags, u16 size}, data } */
	uint16_t count = rd16(v + 0x5c);
	const uint8_t *fields = v + 0x60, *data = fields + 4 * count, *end = v + vl;
	for (uint16_t i = 0; i < count && fields + 4 * (i + 1) <= end; i++) {
		uint8_t type = fields[4 * i];
		uint16_t size = rd16(fields + 4 * i + 2);
		if (data + size > end) break;
		if (type == INO_EXT_TYPE_DSTREAM && size >= 8) ino->size = rd64(data);
		data += (size + 7) & ~7u;
	}
	return true;
}

struct extents {
	struct apfs *a;
	uint64_t private_id, size, cap;
	uint8_t *buf;
	uint64_t copied;
};

static bool copy_extent(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl, void *ctx) {
	struct extents *e = ctx;
	uint64_t hdr = rd64(k);
	if ((hdr >> 60) != APFS_TYPE_FILE_EXTENT || (hdr & 0x0fffffffffffffffull) != e->private_id || kl < 16 || vl < 16) return false;
	uint64_t logical = rd64(k + 8), len = rd64(v) & J_FILE_EXTENT_LEN_MASK, block = rd64(v + 8);
	uint64_t want = e->size < e->cap ? e->size : e->cap;
	if (logical >= want) return false;
	if (len > want - logical) len = want - logical;
	if (block * e->a->bs + len > e->a->size) panic("APFS: file extent at block %llu is outside the image", block);
	memcpy(e->buf + logical, e->a->img + block * e->a->bs, len);
	e->copied += len;
	return false;
}

/* A disk image with a GUID partition table (what macOS's disk tools make): the APFS container is
 * the partition of type 7C3457EF-0000-11AA-AA11-00306543ECAC. 512-byte sectors, as in disk images. */
static const uint8_t APFS_PART_GUID[16] = {0xef, 0x57, 0x34, 0x7c, 0x00, 0x00, 0xaa, 0x11, 0xaa, 0x11, 0x00, 0x30, 0x65, 0x43, 0xec, 0xac};

static bool gpt_apfs_partition(const uint8_t *img, uint64_t size, uint64_t *off, uint64_t *len) {
	if (size < 1024 || memcmp(img + 512, "EFI PART", 8) != 0) return false;
	uint64_t entries = rd64(img + 512 + 0x48) * 512;
	uint32_t count = rd32(img + 512 + 0x50), esize = rd32(img + 512 + 0x54);
	if (esize < 128 || esize > 4096 || count > 1024) return false;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t e = entries + (uint64_t)i * esize;
		if (e + 128 > size) return false;
		if (memcmp(img + e, APFS_PART_GUID, 16) != 0) continue;
		uint64_t first = rd64(img + e + 0x20) * 512, last = (rd64(img + e + 0x28) + 1) * 512;
		if (first >= last || last > size) return false;
		*off = first;
		*len = last - first;
		return true;
	}
	return false;
}

bool apfs_read_file(const uint8_t *img, uint64_t size, const char *path, uint8_t *buf, uint64_t cap, uint64_t *outlen) {
	uint64_t part_off, part_len;
	if (gpt_apfs_partition(img, size, &part_off, &part_len)) img += part_off, size = part_len;
	struct apfs a = {img, size, 0, 0, 0, false, false, 0};
	if (size < 4096 || rd32(img + 0x20) != NX_MAGIC) return false;
	a.bs = rd32(img + 0x24);
	if (a.bs < 4096 || a.bs > 65536 || (a.bs & (a.bs - 1))) panic("APFS: block size %u", a.bs);
	/* The newest valid container superblock in the checkpoint descriptor area (block 0 is a copy). */
	const uint8_t *nx = img;
	uint32_t desc_blocks = rd32(img + 0x68);
	uint64_t desc_base = rd64(img + 0x70);
	if (!(desc_blocks & 0x80000000u)) {
		for (uint32_t i = 0; i < desc_blocks && i < 4096; i++) {
			uint64_t n = desc_base + i;
			if (n >= size / a.bs) break;
			const uint8_t *b = img + n * a.bs;
			if (rd32(b + 0x20) == NX_MAGIC && (rd32(b + 0x18) & OBJECT_TYPE_MASK) == OBJECT_TYPE_NX_SUPERBLOCK && fletcher64(b, a.bs) == rd64(b) && rd64(b + 0x10) > rd64(nx + 0x10)) nx = b;
		}
	}
	if (fletcher64(nx, a.bs) != rd64(nx)) panic("APFS: bad checksum on the container superblock");
	a.xid = rd64(nx + 0x10);
	const uint8_t *omap = object(&a, rd64(nx + 0xa0), OBJECT_TYPE_OMAP);
	uint64_t vol_oid = rd64(nx + 0xb8); /* nx_fs_oid[0] */
	const uint8_t *vol = object(&a, omap_lookup(&a, rd64(omap + 0x30), vol_oid), OBJECT_TYPE_FS);
	if (rd32(vol + 0x20) != APFS_MAGIC) panic("APFS: volume superblock without APSB magic");
	uint64_t incompat = rd64(vol + 0x38);
	a.case_insensitive = incompat & APFS_INCOMPAT_CASE_INSENSITIVE;
	a.hashed_names = incompat & (APFS_INCOMPAT_CASE_INSENSITIVE | APFS_INCOMPAT_NORMALIZATION_INSENSITIVE);
	const uint8_t *vomap = object(&a, rd64(vol + 0x80), OBJECT_TYPE_OMAP);
	a.vol_omap_tree = rd64(vomap + 0x30);
	const uint8_t *root = object(&a, omap_lookup(&a, a.vol_omap_tree, rd64(vol + 0x88)), OBJECT_TYPE_BTREE);

	uint64_t cur = ROOT_DIR_INO_NUM;
	while (*path) {
		while (*path == '/') path++;
		const char *end = path;
		while (*end && *end != '/') end++;
		if (end == path) break;
		struct lookup l = {&a, cur, path, (size_t)(end - path), 0};
		if (!walk(&a, root, 0, find_drec, &l)) return false;
		cur = l.found;
		path = end;
	}
	struct inode ino = {cur, 0, 0, false};
	if (!walk(&a, root, 0, find_inode, &ino)) return false;
	struct extents e = {&a, ino.private_id, ino.size, cap, buf, 0};
	walk(&a, root, 0, copy_extent, &e);
	*outlen = ino.size < cap ? ino.size : cap;
	if (e.copied != *outlen) panic("APFS: read %llu of %llu bytes of the file", e.copied, *outlen);
	return true;
}
