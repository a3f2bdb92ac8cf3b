// Optimizers with Keras 2 update rules, written on the tfjs op API so they run on any backend.
//
// Why not tf.train.rmsprop: tfjs computes `lr·g / sqrt(ms + ε)` (ε inside the root, plus an
// always-on moment buffer), while Keras 2 RMSprop (the notebook's) computes `lr·g / (sqrt(ms) + ε)`
// with no momentum and not centered. With ε = 1e-7 the two differ while the mean square is small,
// i.e. exactly at the start of training. Keras' Adam and SGD-with-momentum rules are likewise
// reproduced here (Keras' SGD keeps a velocity of `−lr·g`, so changing lr mid-run behaves as in Keras).
//
// State is kept per trainable variable in the order `minimize` passes them, so a checkpoint can
// save it positionally and restore it into a freshly built model whose variable names differ.
import * as tf from '@tensorflow/tfjs';
import { KERAS_RMSPROP } from '../tf/kernels/keras-rmsprop-name.js';
import type { OptimizerSpec } from './optimizer-spec.js';

/** tfjs-core's NamedTensor (not re-exported by the @tensorflow/tfjs union package). */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** Whether the backend has the one-kernel RMSprop update (our wasm kernels register it). */
function fusedRmsprop(value: tf.Tensor, g: tf.Tensor): boolean {
  return value.dtype === 'float32' && g.dtype === 'float32' && tf.getKernel(KERAS_RMSPROP, tf.getBackend()) !== undefined;
}

/** Names of the per-variable slots each optimizer keeps (Keras' names). */
const SLOTS: Record<OptimizerSpec['type'], string[]> = { rmsprop: ['rms'], adam: ['m', 'v'], sgd: ['momentum'] };

export class KerasOptimizer extends tf.Optimizer {
  static get className(): string {
    return 'KerasOptimizer';
  }

  /** Learning rate for the next step; the schedule sets it before each batch. */
  learningRate: number;
  /** slots[k][i]: slot k of the i-th trainable variable. */
  private slots: tf.Variable[][];

  constructor(readonly spec: OptimizerSpec) {
    super();
    this.learningRate = spec.lr;
    this.slots = SLOTS[spec.type].map(() => []);
  }

  private slot(k: number, i: number, like: tf.Tensor): tf.Variable {
    const list = this.slots[k]!;
    if (!list[i]) list[i] = tf.tidy(() => tf.variable(tf.zerosLike(like), false));
    return list[i]!;
  }

  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const named: NamedTensor[] = Array.isArray(variableGradients)
      ? variableGradients
      : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name]! }));
    const spec = this.spec;
    const lr = this.learningRate;
    const t = this.iterations + 1; // `iterations_` is lazily initialised by the getter
    const decay = lr * (spec.weight_decay ?? 0);
    named.forEach(({ name, tensor: g }, i) => {
      const value = tf.engine().registeredVariables[name];
      if (!value || g == null) return;
      tf.tidy(() => {
        // Decoupled weight decay (AdamW / PyTorch's rule): shrink the weights first, outside the
        // gradient, so the adaptive denominators never see it. Kernels only (rank ≥ 2).
        if (decay > 0 && value.rank >= 2) value.assign(tf.mul(value, 1 - decay));
        switch (spec.type) {
          case 'rmsprop': {
            const a = this.slot(0, i, value);
            if (fusedRmsprop(value, g)) {
              // The same formula as one kernel (lib/tf/kernels/keras-rmsprop.ts), bit-identical.
              const [newA, newValue] = tf.engine().runKernel(KERAS_RMSPROP, { acc: a, value, g }, { lr, rho: spec.rho, epsilon: spec.epsilon }) as tf.Tensor[];
              a.assign(newA!);
              value.assign(newValue!);
              break;
            }
            const newA = tf.add(tf.mul(a, spec.rho), tf.mul(tf.square(g), 1 - spec.rho));
            a.assign(newA);
            value.assign(tf.sub(value, tf.div(tf.mul(g, lr), tf.add(tf.sqrt(newA), spec.epsilon))));
            break;
          }
          case 'adam': {
            const m = this.slot(0, i, value);
            const v = this.slot(1, i, value);
            const lrT = (lr * Math.sqrt(1 - spec.beta_2 ** t)) / (1 - spec.beta_1 ** t);
            const newM = tf.add(tf.mul(m, spec.beta_1), tf.mul(g, 1 - spec.beta_1));
            const newV = tf.add(tf.mul(v, spec.beta_2), tf.mul(tf.square(g), 1 - spec.beta_2));
            m.assign(newM);
            v.assign(newV);
            value.assign(tf.sub(value, tf.div(tf.mul(newM, lrT), tf.add(tf.sqrt(newV), spec.epsilon))));
            break;
          }
          case 'sgd': {
            if (spec.momentum === 0) {
              value.assign(tf.sub(value, tf.mul(g, lr)));
              break;
            }
            const vel = this.slot(0, i, value);
            const newVel = tf.sub(tf.mul(vel, spec.momentum), tf.mul(g, lr));
            vel.assign(newVel);
            const step = spec.nesterov ? tf.sub(tf.mul(newVel, spec.momentum), tf.mul(g, lr)) : newVel;
            value.assign(tf.add(value, step));
            break;
          }
        }
      });
    });
    this.incrementIterations();
  }

  override dispose(): void {
    for (const list of this.slots) tf.dispose(list.filter(Boolean));
    this.slots = this.slots.map(() => []);
  }

  /** Iteration count first, then every slot of every variable (positional names). */
  override async getWeights(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [await this.saveIterations()];
    SLOTS[this.spec.type].forEach((slotName, k) => {
      this.slots[k]!.forEach((v, i) => out.push({ name: `${i}/${slotName}`, tensor: v }));
    });
    return out;
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.dispose();
    const names = SLOTS[this.spec.type];
    for (const { name, tensor } of rest) {
      const m = /^(\d+)\/(\w+)$/.exec(name);
      const k = m ? names.indexOf(m[2]!) : -1;
      if (!m || k < 0) throw new Error(`optimizer state: unexpected slot '${name}' for ${this.spec.type}`);
      this.slots[k]![Number(m[1])] = tf.variable(tensor, false);
    }
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...this.spec };
  }
}

export function createOptimizer(spec: OptimizerSpec): KerasOptimizer {
  return new KerasOptimizer(spec);
}
