// The guest assembler lives with the VMM bench, which uses it too.
export { assemble, asmTools, canAssemble } from '../../../bench/guest-asm.js';
