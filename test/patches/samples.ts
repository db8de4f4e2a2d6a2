import path from 'node:path';
import { buildSample, type SampleBuild } from '../../src/samples/build.js';
import { loadFlavours, selectFlavours } from '../../src/samples/flavours.js';
import { repoRoot } from '../helpers/cli.js';
import { haveToolchain } from './llvm.js';

// The project's sample kernel collections, built from source (samples/xnu-guest) with the sample
// build driver into samples/build/<profile>/ (cached by a stamp over sources and tools).

export const canBuildSamples = haveToolchain;

const opts = () => ({ sampleRoot: path.join(repoRoot, 'samples'), outRoot: path.join(repoRoot, 'samples/build') });

export async function sample(profile: string): Promise<SampleBuild> {
  const [f] = selectFlavours(loadFlavours(path.join(repoRoot, 'samples/flavours.yaml')), [profile]);
  return buildSample(f!, opts());
}

export async function allSamples(): Promise<SampleBuild[]> {
  const out: SampleBuild[] = [];
  for (const f of loadFlavours(path.join(repoRoot, 'samples/flavours.yaml'))) out.push(await buildSample(f, opts()));
  return out;
}
