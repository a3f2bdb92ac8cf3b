// tfjs-layers runs every Conv2D layer as one fused op (conv + bias + activation) whose custom
// gradient computes the input gradient eagerly, even for the layer that reads the model's input,
// whose gradient nobody uses: on CIFAR-10 that is a whole extra convolution per step (~5% of a
// training step on wasm). Run that one layer as separate conv2d and bias ops instead: their
// registered gradients are lazy, so the tape never computes the input gradient.
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-layers' Conv2D that its call() reads (protected in its typings). */
interface ConvLayer {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  strides: number[];
  padding: 'valid' | 'same';
  dataFormat: string;
  dilationRate: number | number[];
  activation: { apply(x: tf.Tensor): tf.Tensor };
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/** Whether `layer` takes the model's own input (its gradient is never needed). */
function readsModelInput(model: tf.LayersModel, layer: tf.layers.Layer): boolean {
  try {
    return model.inputs.includes(layer.input as tf.SymbolicTensor);
  } catch {
    return false; // a layer used in several places has no single input
  }
}

/**
 * Makes the Conv2D layers that read the model's input skip their input gradient (same weights,
 * same output up to float rounding: the bias is added after the convolution instead of during).
 * Only this model instance changes; its serialised form does not.
 */
export function skipInputGradient(model: tf.LayersModel): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'Conv2D' || !readsModelInput(model, layer)) continue;
    const conv = layer as unknown as ConvLayer;
    const dilated = [conv.dilationRate].flat().some((d) => d !== 1);
    if (conv.dataFormat !== 'channelsLast' || dilated) continue;
    conv.call = (inputs) =>
      tf.tidy(() => {
        const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
        const y = tf.conv2d(x, conv.kernel.read() as tf.Tensor4D, conv.strides as [number, number], conv.padding);
        return conv.activation.apply(conv.bias === null ? y : tf.add(y, conv.bias.read()));
      });
  }
}
