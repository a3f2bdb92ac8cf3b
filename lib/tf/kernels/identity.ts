// Identity for wasm without a copy: the stock kernel copies the whole buffer, and a training
// step calls it ~70 times (gradients passed through). Tensor buffers are immutable, so the
// output can share the input's buffer with one more reference, as the cpu backend does.
import * as tf from '@tensorflow/tfjs';
import { stockKernel } from './stock.js';

type TensorInfo = tf.TensorInfo;

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  const backend = args.backend as Partial<RefCountingBackend>;
  if (x.dtype === 'string' || typeof backend.incRef !== 'function') return stockKernel(tf.Identity).kernelFunc(args) as TensorInfo;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export const identityConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: identity,
};
