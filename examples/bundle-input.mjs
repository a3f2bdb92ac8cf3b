// How an image becomes the model's input, as the model bundle (bundle.json) says and as
// `pipeline predict` and the training data did it. Shared by the browser and the Node example;
// `tf` is the caller's TensorFlow.js (stock @tensorflow/tfjs).
//
//   1. channels: input.channel_order RGB (alpha dropped, not composited), or L (luma, as PIL's
//      convert('L'): (19595 R + 38470 G + 7471 B + 32768) >> 16)
//   2. size: an image that is not input.size [H, W] is resized with input.resize, half-pixel
//      centres and no antialiasing (tf.image.resize*(…, alignCorners false, halfPixelCenters true)),
//      then rounded to whole 0..255 values
//   3. values: input = (pixel * scale - mean[c]) / std[c], per channel (bundle.normalization)
//   4. layout: a batch [N, H, W, C] of float32 (NHWC)

/**
 * One image as model input [1, H, W, C]. `rgb` is a tensor [height, width, 3] of 0..255 values
 * (tf.browser.fromPixels(image, 3) in a browser; decoded pixels in Node).
 */
export function bundleInput(tf, bundle, rgb) {
  const [h, w, c] = bundle.input.size;
  const { scale, mean, std } = bundle.normalization;
  return tf.tidy(() => {
    let x = rgb.toFloat();
    if (c === 1) {
      const [r, g, b] = tf.split(x, 3, 2);
      x = r.mul(19595).add(g.mul(38470)).add(b.mul(7471)).add(32768).div(65536).floor();
    }
    if (x.shape[0] !== h || x.shape[1] !== w) x = resize(tf, x, h, w, bundle.input.resize).add(0.5).floor().clipByValue(0, 255);
    return x.mul(scale).sub(tf.tensor1d(mean)).div(tf.tensor1d(std)).expandDims(0);
  });
}

function resize(tf, x, h, w, method) {
  if (method === 'nearest') return tf.image.resizeNearestNeighbor(x, [h, w], false, true);
  if (method === 'bilinear') return tf.image.resizeBilinear(x, [h, w], false, true);
  // area: each output pixel is the average of the source pixels its footprint covers (fractions
  // counted): out = Wy · image · Wxᵀ per channel. tfjs has no such resize.
  const wy = tf.tensor2d(areaWeights(x.shape[0], h), [h, x.shape[0]]);
  const wx = tf.tensor2d(areaWeights(x.shape[1], w), [w, x.shape[1]]);
  const rows = tf.einsum('ys,swc->ywc', wy, x);
  return tf.einsum('xs,ysc->yxc', wx, rows);
}

function areaWeights(src, dst) {
  const scale = src / dst;
  const m = new Float32Array(dst * src);
  for (let o = 0; o < dst; o++) {
    const a = o * scale;
    const b = Math.min((o + 1) * scale, src);
    for (let i = Math.floor(a); i < b; i++) m[o * src + i] = (Math.min(b, i + 1) - Math.max(a, i)) / scale;
  }
  return m;
}

/** The `k` most probable classes of one image's output [1, K]: [{ class, probability }], most probable first. */
export async function topClasses(tf, bundle, probs, k = 3) {
  const { values, indices } = tf.topk(probs.reshape([-1]), Math.min(k, bundle.classes.length));
  const [p, j] = await Promise.all([values.data(), indices.data()]);
  tf.dispose([values, indices]);
  return Array.from(j, (index, n) => ({ class: bundle.classes[index], probability: p[n] }));
}
