import path from 'node:path';
import { buildSample, type SampleBuild } from '../../src/samples/build.js';
import { loadFlavours, selectFlavours } from '../../src/samples/flavours.js';
import { repoRoot } from '../helpers/cli.js';
import { haveToolchain } from './llvm.js';

// The project's sample kernel collections, built from source (samples/xnu-guest) with the sample
// build driver into samples/build/<profile>/ (cached by a stamp over sources and tools).

export const canBuildSamples = haveToolchain;

export function sample(profile: string): SampleBuild {
  const [f] = selectFlavours(loadFlavours(path.join(repoRoot, 'samples/flavours.yaml')), [profile]);
  return buildSample(f!, { sampleRoot: path.join(repoRoot, 'samples'), outRoot: path.join(repoRoot, 'samples/build') });
}

export function allSamples(): SampleBuild[] {
  return loadFlavours(path.join(repoRoot, 'samples/flavours.yaml')).map((f) => buildSample(f, { sampleRoot: path.join(repoRoot, 'samples'), outRoot: path.join(repoRoot, 'samples/build') }));
}
