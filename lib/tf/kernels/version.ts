// Kept apart from the kernels so that planning (cache keys) does not load TensorFlow.js.

/** Bump when a kernel's numerics change: it is part of the train stage's cache key. */
export const WASM_TRAINING_KERNELS_VERSION = '3';
