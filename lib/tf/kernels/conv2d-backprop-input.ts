// Conv2DBackpropInput for wasm: the stock kernel is a scalar loop; this is one XNNPACK convolution.
//
// dx[h] = sum_kh dy_up[h + pt - kh] * W[kh] (dy_up: dy with s-1 zeros after each row/col when the
// stride s > 1) is a stride-1 convolution of dy_up with the filter flipped in space and with its
// in/out channels swapped, padded by KH-1-pt on top.
import * as tf from '@tensorflow/tfjs';
import { cropForPads, inScope, type WasmScope } from './wasm-scope.js';

type TensorInfo = tf.TensorInfo;

/** dy [B,OH,OW,C] -> [B,OH*sh,OW*sw,C] with dy at rows i*sh, cols j*sw and zeros elsewhere. */
function upsampleWithZeros(s: WasmScope, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  if (sh === 1 && sw === 1) return dy;
  const [b, oh, ow, c] = dy.shape;
  const spread = s.reshape(dy, [b, oh, 1, ow, 1, c]);
  const padded = s.pad(spread, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return s.reshape(padded, [b, oh * sh, ow * sw, c]);
}

function conv2dBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const dy = args.inputs.dy as TensorInfo;
  const filter = args.inputs.filter as TensorInfo;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (attrs.dataFormat === 'NCHW') throw new Error('wasm Conv2DBackpropInput supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { inHeight, inWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const upHeight = dy.shape[1] * strideHeight;
  const upWidth = dy.shape[2] * strideWidth;
  const top = filterHeight - 1 - info.padInfo.top;
  const left = filterWidth - 1 - info.padInfo.left;
  const bottom = inHeight - upHeight - top + filterHeight - 1;
  const right = inWidth - upWidth - left + filterWidth - 1;

  return inScope(args.backend as tf.KernelBackend, (s) => {
    const flipped = s.transpose(s.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    const cropped = cropForPads(s, upsampleWithZeros(s, dy, strideHeight, strideWidth), [top, bottom, left, right]);
    const dx = s.conv2d(cropped.x, flipped, cropped.pads, [1, 1]);
    return dx;
  });
}

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropInput,
};
