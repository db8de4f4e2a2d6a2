import { M1prepError } from '../errors.js';

/**
 * The source tree or manifest cannot become an image (special file, bad name, image too small).
 * Exit code 1 like other bad input; the message names the path and the reason.
 */
export class ImageInputError extends M1prepError {
  override readonly exitCode = 1;
}
