// APFS on-disk constants, from Apple's "Apple File System Reference" (names kept verbatim).

export const NX_MAGIC = 0x4253584e; // 'NXSB'
export const APFS_MAGIC = 0x42535041; // 'APSB'
export const BLOCK_SIZE = 4096;
export const NX_MINIMUM_CONTAINER_SIZE = 1048576;
export const NX_MAX_FILE_SYSTEMS = 100;
export const NX_EPH_MIN_BLOCK_COUNT = 8;
export const NX_MAX_FILE_SYSTEM_EPH_STRUCTS = 4;
export const NX_EPH_INFO_VERSION_1 = 1;
export const NX_INCOMPAT_VERSION2 = 2n;
export const OID_NX_SUPERBLOCK = 1n;
export const OID_RESERVED_COUNT = 1024n;

export const OBJ_VIRTUAL = 0x00000000;
export const OBJ_EPHEMERAL = 0x80000000;
export const OBJ_PHYSICAL = 0x40000000;
export const OBJ_STORAGETYPE_MASK = 0xc0000000;
export const OBJECT_TYPE_MASK = 0x0000ffff;
export const OBJECT_TYPE_NX_SUPERBLOCK = 0x01;
export const OBJECT_TYPE_BTREE = 0x02;
export const OBJECT_TYPE_BTREE_NODE = 0x03;
export const OBJECT_TYPE_SPACEMAN = 0x05;
export const OBJECT_TYPE_SPACEMAN_CAB = 0x06;
export const OBJECT_TYPE_SPACEMAN_CIB = 0x07;
export const OBJECT_TYPE_SPACEMAN_FREE_QUEUE = 0x09;
export const OBJECT_TYPE_OMAP = 0x0b;
export const OBJECT_TYPE_CHECKPOINT_MAP = 0x0c;
export const OBJECT_TYPE_FS = 0x0d;
export const OBJECT_TYPE_FSTREE = 0x0e;
export const OBJECT_TYPE_BLOCKREFTREE = 0x0f;
export const OBJECT_TYPE_SNAPMETATREE = 0x10;
export const OBJECT_TYPE_NX_REAPER = 0x11;

export const OMAP_MANUALLY_MANAGED = 1;
export const CHECKPOINT_MAP_LAST = 1;

export const BTNODE_ROOT = 0x1;
export const BTNODE_LEAF = 0x2;
export const BTNODE_FIXED_KV_SIZE = 0x4;
export const BTREE_PHYSICAL = 0x10;
export const BTREE_KV_NONALIGNED = 0x40;
export const BTREE_EPHEMERAL = 0x08;
export const BTREE_ALLOW_GHOSTS = 0x04;
export const BTOFF_INVALID = 0xffff;
export const BTREE_NODE_HEADER = 56;
export const BTREE_INFO_SIZE = 40;

// j_obj_types (the top 4 bits of a file-system record key's obj_id_and_type).
export const APFS_TYPE_EXTENT = 2n;
export const APFS_TYPE_INODE = 3n;
export const APFS_TYPE_XATTR = 4n;
export const APFS_TYPE_DSTREAM_ID = 6n;
export const APFS_TYPE_FILE_EXTENT = 8n;
export const APFS_TYPE_DIR_REC = 9n;
export const OBJ_ID_MASK = 0x0fffffffffffffffn;
export const OBJ_TYPE_SHIFT = 60n;

export const ROOT_DIR_PARENT = 1n;
export const ROOT_DIR_INO_NUM = 2n;
export const PRIV_DIR_INO_NUM = 3n;
export const MIN_USER_INO_NUM = 16n;
export const MIN_DOC_ID = 3;

export const INO_EXT_TYPE_NAME = 4;
export const INO_EXT_TYPE_DSTREAM = 8;
export const XF_DO_NOT_COPY = 0x02;
export const XF_SYSTEM_FIELD = 0x20;

export const XATTR_DATA_STREAM = 1;
export const XATTR_DATA_EMBEDDED = 2;
export const XATTR_FILE_SYSTEM_OWNED = 4;
export const XATTR_MAX_EMBEDDED_SIZE = 3804;
export const SYMLINK_EA_NAME = 'com.apple.fs.symlink';

export const KIND_NEW = 1n;
export const PEXT_KIND_SHIFT = 60n;
export const FILE_EXTENT_LEN_MASK = 0x00ffffffffffffffn;

export const APFS_FEATURE_HARDLINK_MAP_RECORDS = 2n;
export const APFS_INCOMPAT_CASE_INSENSITIVE = 1n;
export const APFS_INCOMPAT_NORMALIZATION_INSENSITIVE = 8n;
export const APFS_FS_UNENCRYPTED = 1n;
export const PROTECTION_CLASS_F = 6;

// Directory entry types (the DT_* values of <dirent.h>).
export const DT_DIR = 4;
export const DT_REG = 8;
export const DT_LNK = 10;

const VOLUME_ENUM_SHIFT = 6;
/** Volume roles by name, for --role (APFS Reference, "Volume Roles"). */
export const VOL_ROLES: Record<string, number> = {
  system: 0x0001, user: 0x0002, recovery: 0x0004, vm: 0x0008, preboot: 0x0010, installer: 0x0020,
  data: 1 << VOLUME_ENUM_SHIFT, baseband: 2 << VOLUME_ENUM_SHIFT, update: 3 << VOLUME_ENUM_SHIFT,
  xart: 4 << VOLUME_ENUM_SHIFT, hardware: 5 << VOLUME_ENUM_SHIFT, backup: 6 << VOLUME_ENUM_SHIFT,
  enterprise: 9 << VOLUME_ENUM_SHIFT, prelogin: 11 << VOLUME_ENUM_SHIFT,
};
