import { ImageInputError } from './input-error.js';

// Names as the source gives them are checked once, with the limit of the target format.

export function checkName(name: string, where: string): void {
  if (name === '' || name === '.' || name === '..') throw new ImageInputError(`${where}: invalid file name ${JSON.stringify(name)}`);
  if (name.includes('/') || name.includes('\0')) throw new ImageInputError(`${where}: file name ${JSON.stringify(name)} contains '/' or NUL`);
  if (/\p{Cs}/u.test(name)) throw new ImageInputError(`${where}: file name is not valid Unicode (lone surrogate)`);
}

export function tooLong(where: string, name: string, units: number, what: string): ImageInputError {
  return new ImageInputError(`${where}: file name ${JSON.stringify(name.slice(0, 40))}... is ${units} ${what}, more than the 255 the format allows`);
}
