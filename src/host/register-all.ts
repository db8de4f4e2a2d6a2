// Areas that add doctor checks import them here (one line each).
import '../vmm/doctor.js';
import '../vmm/net/doctor.js';
import '../cli/commands/dtree-checks.js';
import '../patches/doctor.js';
import '../vmm/cpu/kvm/doctor.js';
export {};
