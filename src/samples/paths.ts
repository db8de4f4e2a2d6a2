import path from 'node:path';

// Where the sample's sources live and where its builds go, whether m1prep runs from the checkout
// (tsx, tests) or from dist/ (the built CLI).

export function packageRoot(): string {
  let root = new URL('../../', import.meta.url);
  if (root.pathname.replace(/\/$/, '').endsWith('/dist')) root = new URL('../', root);
  return root.pathname.replace(/\/$/, '');
}

/** samples/ of the package: xnu-guest/, flavours.yaml, ramdisk/, devicetree/. */
export function sampleRoot(): string {
  return path.join(packageRoot(), 'samples');
}

/** Default output: samples/build (ignored by git), or $M1PREP_SAMPLE_DIR. */
export function defaultSampleOut(): string {
  return process.env.M1PREP_SAMPLE_DIR || path.join(sampleRoot(), 'build');
}

export const BASE_ADT_NAME = 't8103-sample.adt';
