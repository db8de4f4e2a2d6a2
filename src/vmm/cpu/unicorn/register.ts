import { registerBackend } from '../registry.js';
import { SoftwareBackend } from './backend.js';

registerBackend('software', (o) => new SoftwareBackend({ sysregFilter: o.sysregFilter, sliceInstructions: o.sliceInstructions }));
