// Areas that add doctor checks import them here (one line each).
import '../vmm/doctor.js';
export {};
