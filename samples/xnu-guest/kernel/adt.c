/* Reading the Apple device tree iBoot (here: m1prep's loader) hands over. Layout from XNU's
 * pexpert/pexpert/device_tree.h: a node is u32 nProperties, u32 nChildren, its properties, then its
 * children; a property is char name[32], u32 length (bit 31: placeholder), value padded to 4. Every
 * walk is bounded by the tree's length, a node count and a depth limit. */
#include "guest.h"

#define PROP_NAME_LEN 32
#define MAX_ENTRIES 4096

static const uint8_t *adt_base, *adt_end;

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

void adt_init(const void *base, uint32_t len) {
	adt_base = base;
	adt_end = adt_base + len;
	if (len < 8) panic("ADT: device tree of %u bytes is too small", len);
}

static bool in_tree(const uint8_t *p, uint64_t n) { return p >= adt_base && p <= adt_end && (uint64_t)(adt_end - p) >= n; }

/* First byte after the properties of the node at p (NULL if malformed). */
static const uint8_t *skip_props(const uint8_t *p) {
	if (!in_tree(p, 8)) return NULL;
	uint32_t nprops = rd32(p);
	if (nprops > MAX_ENTRIES) return NULL;
	p += 8;
	for (uint32_t i = 0; i < nprops; i++) {
		if (!in_tree(p, PROP_NAME_LEN + 4)) return NULL;
		uint32_t len = rd32(p + PROP_NAME_LEN) & 0x7fffffff;
		p += PROP_NAME_LEN + 4;
		if (!in_tree(p, len)) return NULL;
		p += (len + 3) & ~3u;
	}
	return p;
}

/* First byte after the whole subtree at p. */
static const uint8_t *skip_node(const uint8_t *p, int depth) {
	if (depth > ADT_MAX_DEPTH || !in_tree(p, 8)) return NULL;
	uint32_t nchildren = rd32(p + 4);
	if (nchildren > MAX_ENTRIES) return NULL;
	p = skip_props(p);
	for (uint32_t i = 0; p && i < nchildren; i++) p = skip_node(p, depth + 1);
	return p;
}

const void *adt_prop(const adt_node_t *n, const char *name, uint32_t *len) {
	const uint8_t *p = n->p;
	if (!in_tree(p, 8)) return NULL;
	uint32_t nprops = rd32(p);
	p += 8;
	for (uint32_t i = 0; i < nprops && i < MAX_ENTRIES; i++) {
		if (!in_tree(p, PROP_NAME_LEN + 4)) return NULL;
		uint32_t l = rd32(p + PROP_NAME_LEN) & 0x7fffffff;
		const uint8_t *v = p + PROP_NAME_LEN + 4;
		if (!in_tree(v, l)) return NULL;
		if (strncmp((const char *)p, name, PROP_NAME_LEN) == 0) {
			if (len) *len = l;
			return v;
		}
		p = v + ((l + 3) & ~3u);
	}
	return NULL;
}

bool adt_prop_u32(const adt_node_t *n, const char *name, uint32_t *out) {
	uint32_t len;
	const uint8_t *v = adt_prop(n, name, &len);
	if (!v || len < 4) return false;
	*out = rd32(v);
	return true;
}

bool adt_prop_u64(const adt_node_t *n, const char *name, uint64_t *out) {
	uint32_t len;
	const uint8_t *v = adt_prop(n, name, &len);
	if (!v || len < 8) return false;
	*out = rd64(v);
	return true;
}

const char *adt_name(const adt_node_t *n) {
	uint32_t len;
	const char *v = adt_prop(n, "name", &len);
	return v && len ? v : "";
}

/* A string-list property (NUL-separated, like "compatible") contains value. */
bool adt_prop_has_string(const adt_node_t *n, const char *prop, const char *value) {
	uint32_t len;
	const char *v = adt_prop(n, prop, &len);
	if (!v) return false;
	size_t want = strlen(value);
	for (uint32_t i = 0; i < len;) {
		uint32_t j = i;
		while (j < len && v[j]) j++;
		if (j - i == want && memcmp(v + i, value, want) == 0) return true;
		i = j + 1;
	}
	return false;
}

/* Iterate over children without arrays: the kernel stack is small and the tree can be wide. */
static bool first_child(const adt_node_t *n, adt_node_t *c, uint32_t *left) {
	if (!in_tree(n->p, 8) || n->depth + 1 >= ADT_MAX_DEPTH) return false;
	*left = rd32(n->p + 4);
	if (*left == 0 || *left > MAX_ENTRIES) return false;
	*c = *n;
	c->anc[n->depth] = n->p;
	c->depth = n->depth + 1;
	c->p = skip_props(n->p);
	return c->p != NULL;
}

static bool next_sibling(adt_node_t *c, uint32_t *left) {
	if (--*left == 0) return false;
	c->p = skip_node(c->p, c->depth);
	return c->p != NULL;
}

int adt_children(const adt_node_t *n, adt_node_t *out, int max) {
	adt_node_t c;
	uint32_t left;
	int count = 0;
	if (!first_child(n, &c, &left)) return 0;
	do out[count++] = c;
	while (count < max && next_sibling(&c, &left));
	return count;
}

static adt_node_t root(void) {
	adt_node_t r;
	memset(&r, 0, sizeof(r));
	r.p = adt_base;
	return r;
}

bool adt_lookup(const char *path, adt_node_t *out) {
	adt_node_t cur = root();
	while (*path == '/') path++;
	while (*path) {
		const char *end = path;
		while (*end && *end != '/') end++;
		size_t len = (size_t)(end - path);
		adt_node_t c;
		uint32_t left;
		bool found = false;
		if (first_child(&cur, &c, &left)) {
			do {
				const char *name = adt_name(&c);
				if (strlen(name) == len && memcmp(name, path, len) == 0) {
					found = true;
					break;
				}
			} while (next_sibling(&c, &left));
		}
		if (!found) return false;
		cur = c;
		path = end;
		while (*path == '/') path++;
	}
	*out = cur;
	return true;
}

static bool find_in(const adt_node_t *n, const char *prop, const char *value, adt_node_t *out, int *budget) {
	if (--*budget < 0) return false;
	if (adt_prop_has_string(n, prop, value)) {
		*out = *n;
		return true;
	}
	adt_node_t c;
	uint32_t left;
	if (!first_child(n, &c, &left)) return false;
	do
		if (find_in(&c, prop, value, out, budget)) return true;
	while (next_sibling(&c, &left));
	return false;
}

bool adt_find(const char *prop, const char *value, adt_node_t *out) {
	adt_node_t r = root();
	int budget = MAX_ENTRIES;
	return find_in(&r, prop, value, out, &budget);
}

static uint32_t cells(const adt_node_t *n, const char *name, uint32_t dflt) {
	uint32_t v;
	return adt_prop_u32(n, name, &v) && v <= 2 ? v : dflt;
}

static uint64_t rd_cells(const uint8_t *p, uint32_t ncells) { return ncells == 2 ? rd64(p) : ncells == 1 ? rd32(p) : 0; }

/* "reg" entry `index`, translated to a physical address through every ancestor's "ranges"
 * (device "reg" values are relative to /arm-io's ranges on Apple devices). */
bool adt_reg(const adt_node_t *n, int index, uint64_t *pa, uint64_t *size) {
	if (n->depth == 0) return false;
	adt_node_t parent = *n;
	parent.p = n->anc[n->depth - 1];
	parent.depth = n->depth - 1;
	uint32_t ac = cells(&parent, "#address-cells", 2), sc = cells(&parent, "#size-cells", 2);
	uint32_t len;
	const uint8_t *reg = adt_prop(n, "reg", &len);
	uint32_t stride = (ac + sc) * 4;
	if (!reg || stride == 0 || (uint64_t)(index + 1) * stride > len) return false;
	uint64_t addr = rd_cells(reg + index * stride, ac);
	*size = rd_cells(reg + index * stride + ac * 4, sc);
	/* Walk up: each ancestor with "ranges" maps its children's addresses to its parent's. */
	for (int d = n->depth - 1; d >= 1; d--) {
		adt_node_t a = *n, gp = *n;
		a.p = n->anc[d], a.depth = d;
		gp.p = n->anc[d - 1], gp.depth = d - 1;
		uint32_t rlen;
		const uint8_t *ranges = adt_prop(&a, "ranges", &rlen);
		if (!ranges) continue;
		uint32_t cac = cells(&a, "#address-cells", 2), csc = cells(&a, "#size-cells", 2), pac = cells(&gp, "#address-cells", 2);
		uint32_t rstride = (cac + pac + csc) * 4;
		bool hit = false;
		for (uint32_t off = 0; rstride && off + rstride <= rlen; off += rstride) {
			uint64_t child = rd_cells(ranges + off, cac), parent_addr = rd_cells(ranges + off + cac * 4, pac), sz = rd_cells(ranges + off + (cac + pac) * 4, csc);
			if (addr >= child && addr - child < sz) {
				addr = parent_addr + (addr - child);
				hit = true;
				break;
			}
		}
		if (!hit) return false;
	}
	*pa = addr;
	return true;
}

/* The parent-side windows of a node's "ranges" (used to map /arm-io as device memory). */
int adt_ranges(const adt_node_t *n, uint64_t *parent_base, uint64_t *size, int max) {
	adt_node_t gp = *n;
	if (n->depth > 0) gp.p = n->anc[n->depth - 1], gp.depth = n->depth - 1;
	uint32_t rlen;
	const uint8_t *ranges = adt_prop(n, "ranges", &rlen);
	if (!ranges) return 0;
	uint32_t cac = cells(n, "#address-cells", 2), csc = cells(n, "#size-cells", 2), pac = cells(&gp, "#address-cells", 2);
	uint32_t rstride = (cac + pac + csc) * 4;
	int count = 0;
	for (uint32_t off = 0; rstride && off + rstride <= rlen && count < max; off += rstride, count++) {
		parent_base[count] = rd_cells(ranges + off + cac * 4, pac);
		size[count] = rd_cells(ranges + off + (cac + pac) * 4, csc);
	}
	return count;
}

/* /chosen/memory-map: one property per boot object, value = { u64 paddr, u64 size }. */
bool adt_memory_map(const char *entry, uint64_t *pa, uint64_t *size) {
	adt_node_t mm;
	uint32_t len;
	if (!adt_lookup("/chosen/memory-map", &mm)) return false;
	const uint8_t *v = adt_prop(&mm, entry, &len);
	if (!v || len < 16) return false;
	*pa = rd64(v);
	*size = rd64(v + 8);
	return *size != 0;
}

bool kpi_memory_map_lookup(const char *name, uint64_t *pa, uint64_t *size) { return adt_memory_map(name, pa, size); }
