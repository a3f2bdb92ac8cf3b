// The native training path: the wasm backend with its heaviest kernels - convolutions forward and
// both gradients, matrix products - computed by oneDNN (native/dnnl-kernels.cc) on the wasm heap
// in place, multi-threaded. Everything else (elementwise ops, pooling, softmax, the optimizer)
// stays on wasm and our SIMD kernels. A case the addon does not cover (NCHW, other fused
// activations, a geometry oneDNN refuses) goes to the wasm kernel that was registered before.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from '../native-addon.js';
import { asHeapBackend } from './heap.js';
import { NATIVE_OP_KERNEL_NAMES, nativeOpKernels, nativeOpRunCount } from './native-ops.js';

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };
type KernelFunc = (args: KernelArgs) => TensorInfo;

/** Kernels the native path replaces on the wasm backend. */
const NATIVE_CONV_KERNEL_NAMES = [tf.Conv2D, tf.FusedConv2D, tf.Conv2DBackpropInput, tf.Conv2DBackpropFilter, tf.BatchMatMul, tf._FusedMatMul] as const;
export const NATIVE_KERNEL_NAMES = [...NATIVE_CONV_KERNEL_NAMES, ...NATIVE_OP_KERNEL_NAMES] as const;

/** [n, h, w, c, kh, kw, o, oh, ow, sh, sw, dh, dw, padTop, padLeft, padBottom, padRight], as the addon reads it. */
export function nativeGeometry(info: tf.backend_util.Conv2DInfo): Int32Array {
  const { batchSize, inHeight, inWidth, inChannels, filterHeight, filterWidth, outChannels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  // oneDNN wants the padding that makes (in + pads - span) / stride + 1 == out exactly; tfjs's
  // bottom/right may include rows no output reads (or be short of them), so derive them.
  const bottom = (outHeight - 1) * strideHeight + (filterHeight - 1) * dilationHeight + 1 - inHeight - padInfo.top;
  const right = (outWidth - 1) * strideWidth + (filterWidth - 1) * dilationWidth + 1 - inWidth - padInfo.left;
  return Int32Array.from([
    batchSize,
    inHeight,
    inWidth,
    inChannels,
    filterHeight,
    filterWidth,
    outChannels,
    outHeight,
    outWidth,
    strideHeight,
    strideWidth,
    dilationHeight,
    dilationWidth,
    padInfo.top,
    padInfo.left,
    bottom,
    right,
  ]);
}

function convInfo(xShape: number[], filterShape: number[], attrs: tf.Conv2DAttrs): tf.backend_util.Conv2DInfo | undefined {
  if (attrs.dataFormat === 'NCHW') return undefined;
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

const f32 = (heap: ReturnType<typeof asHeapBackend>, t: TensorInfo): Float32Array => heap.typedArrayFromHeap(t) as Float32Array;
const allFloat = (...ts: Array<TensorInfo | undefined>): boolean => ts.every((t) => t === undefined || t.dtype === 'float32');

let nativeRuns = 0;

/** How many kernel calls the addon has computed in this process (tests check the native route was taken). */
export function nativeRunCount(): number {
  return nativeRuns + nativeOpRunCount();
}

/** Geometries oneDNN refused once (by kernel and shape): they go straight to the fallback. */
const refused = new Set<string>();

/**
 * Runs `body` on a fresh output; if the addon throws (a geometry it does not implement), frees the
 * output, remembers the case and returns the fallback's result instead.
 */
function attempt(args: KernelArgs, key: string, outShape: number[], body: (out: TensorInfo) => void, fallback: KernelFunc): TensorInfo {
  if (refused.has(key)) return fallback(args);
  const heap = asHeapBackend(args.backend);
  const out = heap.makeOutput(outShape, 'float32');
  try {
    body(out);
    nativeRuns++;
    return out;
  } catch {
    heap.disposeData(out.dataId);
    refused.add(key);
    return fallback(args);
  }
}

function conv2dKernel(addon: NativeAddon, fallback: KernelFunc, fused: boolean): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    const filter = args.inputs.filter as TensorInfo;
    const bias = (args.inputs.bias as TensorInfo | null | undefined) ?? undefined;
    const attrs = args.attrs as unknown as tf.FusedConv2DAttrs;
    const activation = fused ? (attrs.activation ?? 'linear') : 'linear';
    const info = convInfo(x.shape, filter.shape, attrs);
    const covered =
      info !== undefined &&
      allFloat(x, filter, bias) &&
      (activation === 'linear' || activation === 'relu') &&
      args.inputs.preluActivationWeights == null &&
      (bias === undefined || (bias.shape.length <= 1 && tf.util.sizeFromShape(bias.shape) === info.outChannels));
    if (!covered) return fallback(args);
    const g = nativeGeometry(info);
    const key = `conv:${g.join(',')}:${bias !== undefined}:${activation}`;
    return attempt(
      args,
      key,
      info.outShape,
      (y) => {
        const heap = asHeapBackend(args.backend);
        addon.conv2d(g, f32(heap, x), f32(heap, filter), bias ? f32(heap, bias) : null, f32(heap, y), activation === 'relu');
      },
      fallback,
    );
  };
}

function conv2dBackpropInputKernel(addon: NativeAddon, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const dy = args.inputs.dy as TensorInfo;
    const filter = args.inputs.filter as TensorInfo;
    const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const info = convInfo(attrs.inputShape, filter.shape, { ...attrs, dilations: 1 } as tf.Conv2DAttrs);
    if (info === undefined || !allFloat(dy, filter)) return fallback(args);
    const g = nativeGeometry(info);
    return attempt(
      args,
      `dx:${g.join(',')}`,
      info.inShape,
      (dx) => {
        const heap = asHeapBackend(args.backend);
        addon.conv2dBackpropInput(g, f32(heap, dy), f32(heap, filter), f32(heap, dx));
      },
      fallback,
    );
  };
}

function conv2dBackpropFilterKernel(addon: NativeAddon, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    const dy = args.inputs.dy as TensorInfo;
    const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    const info = convInfo(x.shape, attrs.filterShape, { ...attrs, dilations: 1 } as tf.Conv2DAttrs);
    if (info === undefined || !allFloat(x, dy)) return fallback(args);
    const g = nativeGeometry(info);
    return attempt(
      args,
      `dw:${g.join(',')}`,
      attrs.filterShape,
      (dw) => {
        const heap = asHeapBackend(args.backend);
        addon.conv2dBackpropFilter(g, f32(heap, x), f32(heap, dy), f32(heap, dw));
      },
      fallback,
    );
  };
}

interface MatMulShape {
  batch: number;
  m: number;
  n: number;
  k: number;
  aOne: boolean;
  bOne: boolean;
  outShape: number[];
}

/** The product's dimensions when its batch dims broadcast the way the addon handles (equal, or one side 1). */
function matMulShape(a: TensorInfo, b: TensorInfo, tA: boolean, tB: boolean): MatMulShape | undefined {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return undefined;
  const m = tA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = tA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = tB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = tB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) return undefined;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const batch = tf.util.sizeFromShape(outer);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return undefined;
  return { batch, m, n, k, aOne: batchA === 1, bOne: batchB === 1, outShape: [...outer, m, n] };
}

function matMulKernel(addon: NativeAddon, fallback: KernelFunc, fused: boolean): KernelFunc {
  return (args) => {
    const a = args.inputs.a as TensorInfo;
    const b = args.inputs.b as TensorInfo;
    const bias = (args.inputs.bias as TensorInfo | null | undefined) ?? undefined;
    const attrs = args.attrs as unknown as tf._FusedMatMulAttrs;
    const activation = fused ? (attrs.activation ?? 'linear') : 'linear';
    const s = matMulShape(a, b, attrs.transposeA, attrs.transposeB);
    const covered =
      s !== undefined &&
      allFloat(a, b, bias) &&
      (activation === 'linear' || activation === 'relu') &&
      args.inputs.preluActivationWeights == null &&
      (bias === undefined || (bias.shape.length <= 1 && tf.util.sizeFromShape(bias.shape) === s.n));
    if (!covered) return fallback(args);
    const key = `mm:${a.shape}:${b.shape}:${attrs.transposeA}:${attrs.transposeB}`;
    return attempt(
      args,
      key,
      s.outShape,
      (c) => {
        const heap = asHeapBackend(args.backend);
        const biasData = bias ? f32(heap, bias) : null;
        addon.matMul(
          f32(heap, a),
          f32(heap, b),
          f32(heap, c),
          s.batch,
          s.m,
          s.n,
          s.k,
          attrs.transposeA,
          attrs.transposeB,
          s.aOne,
          s.bOne,
          biasData,
          activation === 'relu',
        );
      },
      fallback,
    );
  };
}

/** Native kernel configs for the wasm backend; `previous(name)` is the kernel each falls back to. */
export function nativeKernelConfigs(addon: NativeAddon, previous: (name: string) => KernelFunc): tf.KernelConfig[] {
  const funcs: Record<(typeof NATIVE_KERNEL_NAMES)[number], KernelFunc> = {
    ...nativeOpKernels(addon, previous),
    [tf.Conv2D]: conv2dKernel(addon, previous(tf.Conv2D), false),
    [tf.FusedConv2D]: conv2dKernel(addon, previous(tf.FusedConv2D), true),
    [tf.Conv2DBackpropInput]: conv2dBackpropInputKernel(addon, previous(tf.Conv2DBackpropInput)),
    [tf.Conv2DBackpropFilter]: conv2dBackpropFilterKernel(addon, previous(tf.Conv2DBackpropFilter)),
    [tf.BatchMatMul]: matMulKernel(addon, previous(tf.BatchMatMul), false),
    [tf._FusedMatMul]: matMulKernel(addon, previous(tf._FusedMatMul), true),
  };
  return NATIVE_KERNEL_NAMES.map((name) => ({ kernelName: name, backendName: 'wasm', kernelFunc: funcs[name] as tf.KernelFunc }));
}

const replaced = new Map<string, tf.KernelConfig>();

/** Puts the native kernels in place of the wasm ones (after registerWasmTrainingKernels). Idempotent. */
export function installNativeKernels(addon: NativeAddon): string[] {
  if (replaced.size > 0) return [...replaced.keys()];
  const before = new Map(NATIVE_KERNEL_NAMES.map((name) => [name as string, tf.getKernel(name, 'wasm')]));
  const previous = (name: string): KernelFunc => {
    const config = before.get(name);
    if (config === undefined) throw new Error(`wasm backend has no '${name}' kernel to fall back to`);
    return config.kernelFunc as KernelFunc;
  };
  for (const config of nativeKernelConfigs(addon, previous)) {
    const old = before.get(config.kernelName);
    if (old === undefined) continue;
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel({ ...config, setupFunc: old.setupFunc });
    replaced.set(config.kernelName, old);
  }
  return [...replaced.keys()];
}

/** Restores the wasm kernels the native ones replaced (a process switching back to plain wasm). */
export function uninstallNativeKernels(): void {
  for (const [name, config] of replaced) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  }
  replaced.clear();
}
