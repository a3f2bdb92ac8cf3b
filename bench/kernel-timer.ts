// Wraps every kernel registered for a backend with a timer (wall and process CPU time), so one
// training step can be broken down per kernel. CPU time is the steadier figure on a shared machine.
import * as tf from '@tensorflow/tfjs';

export interface KernelTime {
  name: string;
  calls: number;
  wallMs: number;
  cpuMs: number;
}

export class KernelTimer {
  private readonly times = new Map<string, KernelTime>();
  private readonly originals: tf.KernelConfig[] = [];

  constructor(private readonly backendName: string) {}

  install(): void {
    for (const config of tf.getKernelsForBackend(this.backendName)) {
      this.originals.push(config);
      const record = this.record(config.kernelName);
      const inner = config.kernelFunc;
      tf.unregisterKernel(config.kernelName, this.backendName);
      tf.registerKernel({
        ...config,
        kernelFunc: (args) => {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const out = inner(args);
          const c = process.cpuUsage(c0);
          record.wallMs += performance.now() - t0;
          record.cpuMs += (c.user + c.system) / 1000;
          record.calls++;
          return out;
        },
      });
    }
  }

  uninstall(): void {
    for (const config of this.originals) {
      tf.unregisterKernel(config.kernelName, this.backendName);
      tf.registerKernel(config);
    }
    this.originals.length = 0;
  }

  reset(): void {
    for (const t of this.times.values()) Object.assign(t, { calls: 0, wallMs: 0, cpuMs: 0 });
  }

  /** Kernels that ran, slowest (by CPU time) first. */
  report(): KernelTime[] {
    return [...this.times.values()].filter((t) => t.calls > 0).sort((a, b) => b.cpuMs - a.cpuMs);
  }

  private record(name: string): KernelTime {
    let t = this.times.get(name);
    if (t === undefined) {
      t = { name, calls: 0, wallMs: 0, cpuMs: 0 };
      this.times.set(name, t);
    }
    return t;
  }
}
