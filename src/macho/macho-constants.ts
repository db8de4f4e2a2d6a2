// Apple's Mach-O constants, names verbatim.
// Sources: mach-o/loader.h (header magics, filetypes, flags, load commands), mach/machine.h (CPU
// types), mach-o/fat.h (fat magics), mach-o/fixup-chains.h (chained fixups), mach-o/nlist.h.

// mach-o/loader.h
export const MH_MAGIC = 0xfeedface;
export const MH_CIGAM = 0xcefaedfe;
export const MH_MAGIC_64 = 0xfeedfacf;
export const MH_CIGAM_64 = 0xcffaedfe;
// mach-o/fat.h (stored big-endian)
export const FAT_MAGIC = 0xcafebabe;
export const FAT_MAGIC_64 = 0xcafebabf;

/** sizeof(struct mach_header_64), mach-o/loader.h */
export const MACH_HEADER_64_SIZE = 32;

// mach/machine.h
export const CPU_ARCH_ABI64 = 0x01000000;
export const CPU_TYPE_X86 = 7;
export const CPU_TYPE_X86_64 = CPU_TYPE_X86 | CPU_ARCH_ABI64;
export const CPU_TYPE_ARM = 12;
export const CPU_TYPE_ARM64 = CPU_TYPE_ARM | CPU_ARCH_ABI64;
export const CPU_SUBTYPE_MASK = 0xff000000;
export const CPU_SUBTYPE_ARM64_ALL = 0;
export const CPU_SUBTYPE_ARM64_V8 = 1;
export const CPU_SUBTYPE_ARM64E = 2;
/** arm64e binaries built for the stable pointer-auth ABI set this bit (mach/machine.h). */
export const CPU_SUBTYPE_PTRAUTH_ABI = 0x80000000;
export const CPU_SUBTYPE_LIB64 = 0x80000000;
export const CPU_SUBTYPE_X86_64_ALL = 3;
export const CPU_SUBTYPE_X86_64_H = 8;

// mach-o/loader.h filetypes
export const MH_OBJECT = 0x1;
export const MH_EXECUTE = 0x2;
export const MH_FVMLIB = 0x3;
export const MH_CORE = 0x4;
export const MH_PRELOAD = 0x5;
export const MH_DYLIB = 0x6;
export const MH_DYLINKER = 0x7;
export const MH_BUNDLE = 0x8;
export const MH_DYLIB_STUB = 0x9;
export const MH_DSYM = 0xa;
export const MH_KEXT_BUNDLE = 0xb;
export const MH_FILESET = 0xc;
export const MH_GPU_EXECUTE = 0xd;
export const MH_GPU_DYLIB = 0xe;

export const FILETYPE_NAMES: Record<number, string> = {
  [MH_OBJECT]: 'MH_OBJECT', [MH_EXECUTE]: 'MH_EXECUTE', [MH_FVMLIB]: 'MH_FVMLIB', [MH_CORE]: 'MH_CORE',
  [MH_PRELOAD]: 'MH_PRELOAD', [MH_DYLIB]: 'MH_DYLIB', [MH_DYLINKER]: 'MH_DYLINKER', [MH_BUNDLE]: 'MH_BUNDLE',
  [MH_DYLIB_STUB]: 'MH_DYLIB_STUB', [MH_DSYM]: 'MH_DSYM', [MH_KEXT_BUNDLE]: 'MH_KEXT_BUNDLE',
  [MH_FILESET]: 'MH_FILESET', [MH_GPU_EXECUTE]: 'MH_GPU_EXECUTE', [MH_GPU_DYLIB]: 'MH_GPU_DYLIB',
};

// mach-o/loader.h header flags
export const MH_NOUNDEFS = 0x1;
export const MH_DYLDLINK = 0x4;
export const MH_TWOLEVEL = 0x80;
export const MH_PIE = 0x200000;

export const HEADER_FLAG_NAMES: [number, string][] = [
  [0x1, 'MH_NOUNDEFS'], [0x2, 'MH_INCRLINK'], [0x4, 'MH_DYLDLINK'], [0x8, 'MH_BINDATLOAD'], [0x10, 'MH_PREBOUND'],
  [0x20, 'MH_SPLIT_SEGS'], [0x40, 'MH_LAZY_INIT'], [0x80, 'MH_TWOLEVEL'], [0x100, 'MH_FORCE_FLAT'], [0x200, 'MH_NOMULTIDEFS'],
  [0x400, 'MH_NOFIXPREBINDING'], [0x800, 'MH_PREBINDABLE'], [0x1000, 'MH_ALLMODSBOUND'], [0x2000, 'MH_SUBSECTIONS_VIA_SYMBOLS'],
  [0x4000, 'MH_CANONICAL'], [0x8000, 'MH_WEAK_DEFINES'], [0x10000, 'MH_BINDS_TO_WEAK'], [0x20000, 'MH_ALLOW_STACK_EXECUTION'],
  [0x40000, 'MH_ROOT_SAFE'], [0x80000, 'MH_SETUID_SAFE'], [0x100000, 'MH_NO_REEXPORTED_DYLIBS'], [0x200000, 'MH_PIE'],
  [0x400000, 'MH_DEAD_STRIPPABLE_DYLIB'], [0x800000, 'MH_HAS_TLV_DESCRIPTORS'], [0x1000000, 'MH_NO_HEAP_EXECUTION'],
  [0x2000000, 'MH_APP_EXTENSION_SAFE'], [0x4000000, 'MH_NLIST_OUTOFSYNC_WITH_DYLDINFO'], [0x8000000, 'MH_SIM_SUPPORT'],
  [0x80000000, 'MH_DYLIB_IN_CACHE'],
];

export function headerFlagNames(flags: number): string[] {
  const out = HEADER_FLAG_NAMES.filter(([bit]) => (flags & bit) >>> 0 === bit).map(([, n]) => n);
  const known = HEADER_FLAG_NAMES.reduce((a, [bit]) => (a | bit) >>> 0, 0);
  const rest = (flags & ~known) >>> 0;
  if (rest) out.push(`0x${rest.toString(16)}`);
  return out;
}

// mach-o/loader.h load commands
export const LC_REQ_DYLD = 0x80000000;
export const LC_SEGMENT = 0x1;
export const LC_SYMTAB = 0x2;
export const LC_SYMSEG = 0x3;
export const LC_THREAD = 0x4;
export const LC_UNIXTHREAD = 0x5;
export const LC_DYSYMTAB = 0xb;
export const LC_LOAD_DYLIB = 0xc;
export const LC_ID_DYLIB = 0xd;
export const LC_LOAD_DYLINKER = 0xe;
export const LC_ID_DYLINKER = 0xf;
export const LC_PREBOUND_DYLIB = 0x10;
export const LC_ROUTINES = 0x11;
export const LC_SUB_FRAMEWORK = 0x12;
export const LC_SUB_UMBRELLA = 0x13;
export const LC_SUB_CLIENT = 0x14;
export const LC_SUB_LIBRARY = 0x15;
export const LC_TWOLEVEL_HINTS = 0x16;
export const LC_PREBIND_CKSUM = 0x17;
export const LC_LOAD_WEAK_DYLIB = (0x18 | LC_REQ_DYLD) >>> 0;
export const LC_SEGMENT_64 = 0x19;
export const LC_ROUTINES_64 = 0x1a;
export const LC_UUID = 0x1b;
export const LC_RPATH = (0x1c | LC_REQ_DYLD) >>> 0;
export const LC_CODE_SIGNATURE = 0x1d;
export const LC_SEGMENT_SPLIT_INFO = 0x1e;
export const LC_REEXPORT_DYLIB = (0x1f | LC_REQ_DYLD) >>> 0;
export const LC_LAZY_LOAD_DYLIB = 0x20;
export const LC_ENCRYPTION_INFO = 0x21;
export const LC_DYLD_INFO = 0x22;
export const LC_DYLD_INFO_ONLY = (0x22 | LC_REQ_DYLD) >>> 0;
export const LC_LOAD_UPWARD_DYLIB = (0x23 | LC_REQ_DYLD) >>> 0;
export const LC_VERSION_MIN_MACOSX = 0x24;
export const LC_VERSION_MIN_IPHONEOS = 0x25;
export const LC_FUNCTION_STARTS = 0x26;
export const LC_DYLD_ENVIRONMENT = 0x27;
export const LC_MAIN = (0x28 | LC_REQ_DYLD) >>> 0;
export const LC_DATA_IN_CODE = 0x29;
export const LC_SOURCE_VERSION = 0x2a;
export const LC_DYLIB_CODE_SIGN_DRS = 0x2b;
export const LC_ENCRYPTION_INFO_64 = 0x2c;
export const LC_LINKER_OPTION = 0x2d;
export const LC_LINKER_OPTIMIZATION_HINT = 0x2e;
export const LC_VERSION_MIN_TVOS = 0x2f;
export const LC_VERSION_MIN_WATCHOS = 0x30;
export const LC_NOTE = 0x31;
export const LC_BUILD_VERSION = 0x32;
export const LC_DYLD_EXPORTS_TRIE = (0x33 | LC_REQ_DYLD) >>> 0;
export const LC_DYLD_CHAINED_FIXUPS = (0x34 | LC_REQ_DYLD) >>> 0;
export const LC_FILESET_ENTRY = (0x35 | LC_REQ_DYLD) >>> 0;
export const LC_ATOM_INFO = 0x36;

export const LOAD_COMMAND_NAMES: Record<number, string> = {
  [LC_SEGMENT]: 'LC_SEGMENT', [LC_SYMTAB]: 'LC_SYMTAB', [LC_SYMSEG]: 'LC_SYMSEG', [LC_THREAD]: 'LC_THREAD',
  [LC_UNIXTHREAD]: 'LC_UNIXTHREAD', [LC_DYSYMTAB]: 'LC_DYSYMTAB', [LC_LOAD_DYLIB]: 'LC_LOAD_DYLIB',
  [LC_ID_DYLIB]: 'LC_ID_DYLIB', [LC_LOAD_DYLINKER]: 'LC_LOAD_DYLINKER', [LC_ID_DYLINKER]: 'LC_ID_DYLINKER',
  [LC_PREBOUND_DYLIB]: 'LC_PREBOUND_DYLIB', [LC_ROUTINES]: 'LC_ROUTINES', [LC_SUB_FRAMEWORK]: 'LC_SUB_FRAMEWORK',
  [LC_SUB_UMBRELLA]: 'LC_SUB_UMBRELLA', [LC_SUB_CLIENT]: 'LC_SUB_CLIENT', [LC_SUB_LIBRARY]: 'LC_SUB_LIBRARY',
  [LC_TWOLEVEL_HINTS]: 'LC_TWOLEVEL_HINTS', [LC_PREBIND_CKSUM]: 'LC_PREBIND_CKSUM',
  [LC_LOAD_WEAK_DYLIB]: 'LC_LOAD_WEAK_DYLIB', [LC_SEGMENT_64]: 'LC_SEGMENT_64', [LC_ROUTINES_64]: 'LC_ROUTINES_64',
  [LC_UUID]: 'LC_UUID', [LC_RPATH]: 'LC_RPATH', [LC_CODE_SIGNATURE]: 'LC_CODE_SIGNATURE',
  [LC_SEGMENT_SPLIT_INFO]: 'LC_SEGMENT_SPLIT_INFO', [LC_REEXPORT_DYLIB]: 'LC_REEXPORT_DYLIB',
  [LC_LAZY_LOAD_DYLIB]: 'LC_LAZY_LOAD_DYLIB', [LC_ENCRYPTION_INFO]: 'LC_ENCRYPTION_INFO',
  [LC_DYLD_INFO]: 'LC_DYLD_INFO', [LC_DYLD_INFO_ONLY]: 'LC_DYLD_INFO_ONLY', [LC_LOAD_UPWARD_DYLIB]: 'LC_LOAD_UPWARD_DYLIB',
  [LC_VERSION_MIN_MACOSX]: 'LC_VERSION_MIN_MACOSX', [LC_VERSION_MIN_IPHONEOS]: 'LC_VERSION_MIN_IPHONEOS',
  [LC_FUNCTION_STARTS]: 'LC_FUNCTION_STARTS', [LC_DYLD_ENVIRONMENT]: 'LC_DYLD_ENVIRONMENT', [LC_MAIN]: 'LC_MAIN',
  [LC_DATA_IN_CODE]: 'LC_DATA_IN_CODE', [LC_SOURCE_VERSION]: 'LC_SOURCE_VERSION',
  [LC_DYLIB_CODE_SIGN_DRS]: 'LC_DYLIB_CODE_SIGN_DRS', [LC_ENCRYPTION_INFO_64]: 'LC_ENCRYPTION_INFO_64',
  [LC_LINKER_OPTION]: 'LC_LINKER_OPTION', [LC_LINKER_OPTIMIZATION_HINT]: 'LC_LINKER_OPTIMIZATION_HINT',
  [LC_VERSION_MIN_TVOS]: 'LC_VERSION_MIN_TVOS', [LC_VERSION_MIN_WATCHOS]: 'LC_VERSION_MIN_WATCHOS',
  [LC_NOTE]: 'LC_NOTE', [LC_BUILD_VERSION]: 'LC_BUILD_VERSION', [LC_DYLD_EXPORTS_TRIE]: 'LC_DYLD_EXPORTS_TRIE',
  [LC_DYLD_CHAINED_FIXUPS]: 'LC_DYLD_CHAINED_FIXUPS', [LC_FILESET_ENTRY]: 'LC_FILESET_ENTRY',
  [LC_ATOM_INFO]: 'LC_ATOM_INFO',
};

/** Load commands laid out as struct linkedit_data_command {cmd, cmdsize, dataoff, datasize} (loader.h). */
export const LINKEDIT_DATA_COMMANDS: ReadonlySet<number> = new Set([
  LC_CODE_SIGNATURE, LC_SEGMENT_SPLIT_INFO, LC_FUNCTION_STARTS, LC_DATA_IN_CODE, LC_DYLIB_CODE_SIGN_DRS,
  LC_LINKER_OPTIMIZATION_HINT, LC_DYLD_EXPORTS_TRIE, LC_DYLD_CHAINED_FIXUPS, LC_ATOM_INFO,
]);

// mach-o/loader.h section types (low byte of section flags)
export const SECTION_TYPE = 0x000000ff;
export const S_ZEROFILL = 0x1;
export const S_GB_ZEROFILL = 0xc;
export const S_THREAD_LOCAL_ZEROFILL = 0x12;

// mach-o/loader.h platforms for LC_BUILD_VERSION
export const PLATFORM_NAMES: Record<number, string> = {
  1: 'PLATFORM_MACOS', 2: 'PLATFORM_IOS', 3: 'PLATFORM_TVOS', 4: 'PLATFORM_WATCHOS', 5: 'PLATFORM_BRIDGEOS',
  6: 'PLATFORM_MACCATALYST', 7: 'PLATFORM_IOSSIMULATOR', 8: 'PLATFORM_TVOSSIMULATOR', 9: 'PLATFORM_WATCHOSSIMULATOR',
  10: 'PLATFORM_DRIVERKIT', 11: 'PLATFORM_VISIONOS', 12: 'PLATFORM_VISIONOSSIMULATOR',
};

// mach/arm/thread_status.h: flavors carried by LC_UNIXTHREAD
export const ARM_THREAD_STATE64 = 6;
// mach/i386/thread_status.h
export const x86_THREAD_STATE64 = 4;

export function cpuName(cputype: number, cpusubtype: number): string {
  const sub = cpusubtype & ~CPU_SUBTYPE_MASK;
  if (cputype === CPU_TYPE_ARM64) {
    if (sub === CPU_SUBTYPE_ARM64E) return (cpusubtype & CPU_SUBTYPE_PTRAUTH_ABI) ? 'arm64e (ptrauth ABI)' : 'arm64e';
    return sub === CPU_SUBTYPE_ARM64_V8 ? 'arm64v8' : 'arm64';
  }
  if (cputype === CPU_TYPE_X86_64) return sub === CPU_SUBTYPE_X86_64_H ? 'x86_64h' : 'x86_64';
  if (cputype === (CPU_TYPE_ARM64 & ~CPU_ARCH_ABI64 | 0x02000000)) return 'arm64_32';
  return `cpu ${cputype}/${sub}`;
}

/** The -arch name a user types for a slice: arm64, arm64e, x86_64. */
export function archName(cputype: number, cpusubtype: number): string {
  const sub = cpusubtype & ~CPU_SUBTYPE_MASK;
  if (cputype === CPU_TYPE_ARM64) return sub === CPU_SUBTYPE_ARM64E ? 'arm64e' : 'arm64';
  if (cputype === CPU_TYPE_X86_64) return sub === CPU_SUBTYPE_X86_64_H ? 'x86_64h' : 'x86_64';
  return `cpu${cputype}`;
}
