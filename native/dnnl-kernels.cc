// Training kernels for tfjs's wasm backend, computed by oneDNN on the memory the backend already
// uses: every tensor argument is a Float32Array view of the wasm heap (or any Float32Array), read
// and written in place. Plain Node-API (node_api.h from the Node headers): no npm dependency, and
// one binary works across Node versions.
//
// Layouts are tfjs's: activations NHWC, filters HWIO ([kh, kw, in, out]). The activations stay
// NHWC (reordering them would cost more than it saves); filters are reordered to whatever layout
// oneDNN's JIT kernels want (they are small), and filter gradients back to HWIO.
//
// oneDNN runs its kernels on its OpenMP threads (OMP_NUM_THREADS, default: all cores).
#include <node_api.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

struct JsError {
  std::string message;
};

dnnl::engine &cpuEngine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream &cpuStream() {
  static dnnl::stream s(cpuEngine());
  return s;
}

// Convolution geometry, as the TS side passes it (an Int32Array of 17).
struct Geometry {
  int64_t n, h, w, c, kh, kw, o, oh, ow, sh, sw, dh, dw, padT, padL, padB, padR;
  std::string key() const {
    std::string k;
    for (int64_t v : {n, h, w, c, kh, kw, o, oh, ow, sh, sw, dh, dw, padT, padL, padB, padR}) k += std::to_string(v) + ",";
    return k;
  }
  memory::desc src() const { return memory::desc({n, c, h, w}, dt::f32, tag::nhwc); }
  memory::desc dst() const { return memory::desc({n, o, oh, ow}, dt::f32, tag::nhwc); }
  memory::desc userWeights() const { return memory::desc({o, c, kh, kw}, dt::f32, tag::hwio); }
  memory::desc anyWeights() const { return memory::desc({o, c, kh, kw}, dt::f32, tag::any); }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }
  memory::dims padLow() const { return {padT, padL}; }
  memory::dims padHigh() const { return {padB, padR}; }
};

dnnl::convolution_forward::primitive_desc forwardPd(const Geometry &g, bool bias, bool relu) {
  dnnl::primitive_attr attr;
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  auto alg = dnnl::algorithm::convolution_direct;
  if (bias) {
    memory::desc b({g.o}, dt::f32, tag::a);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, alg, g.src(), g.anyWeights(), b, g.dst(), g.strides(),
                                      g.dilates(), g.padLow(), g.padHigh());
    return dnnl::convolution_forward::primitive_desc(d, attr, cpuEngine());
  }
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, alg, g.src(), g.anyWeights(), g.dst(), g.strides(), g.dilates(),
                                    g.padLow(), g.padHigh());
  return dnnl::convolution_forward::primitive_desc(d, attr, cpuEngine());
}

// A primitive plus the filter in the layout it wants (reordered from / to HWIO when that differs).
struct ConvPlan {
  dnnl::primitive prim;
  memory::desc weights;  // the primitive's filter (or filter gradient) layout
  bool reorderWeights = false;
  dnnl::reorder weightsReorder;
  std::unique_ptr<memory> weightsScratch;  // the filter in the primitive's layout
  std::string impl;
};

std::map<std::string, std::unique_ptr<ConvPlan>> plans;

ConvPlan &plan(const std::string &key, const Geometry &g, bool toUser, const std::function<std::pair<dnnl::primitive, dnnl::primitive_desc>()> &make,
               const std::function<memory::desc(const dnnl::primitive_desc &)> &weightsOf) {
  auto it = plans.find(key);
  if (it != plans.end()) return *it->second;
  auto p = std::make_unique<ConvPlan>();
  auto [prim, pd] = make();
  p->prim = prim;
  p->weights = weightsOf(pd);
  p->impl = pd.impl_info_str();
  memory::desc user = g.userWeights();
  if (p->weights != user) {
    p->reorderWeights = true;
    p->weightsScratch = std::make_unique<memory>(p->weights, cpuEngine());
    memory userMem(user, cpuEngine(), nullptr);
    p->weightsReorder = toUser ? dnnl::reorder(*p->weightsScratch, userMem) : dnnl::reorder(userMem, *p->weightsScratch);
  }
  return *plans.emplace(key, std::move(p)).first->second;
}

std::string lastImpl;

void convForward(const Geometry &g, float *x, float *w, float *bias, float *y, bool relu) {
  std::string key = "f" + g.key() + (bias ? "b" : "") + (relu ? "r" : "");
  ConvPlan &p = plan(
      key, g, false,
      [&] {
        auto pd = forwardPd(g, bias != nullptr, relu);
        return std::make_pair(dnnl::primitive(dnnl::convolution_forward(pd)), dnnl::primitive_desc(pd));
      },
      [](const dnnl::primitive_desc &pd) { return pd.weights_desc(); });
  auto &s = cpuStream();
  memory wUser(g.userWeights(), cpuEngine(), w);
  memory wMem = wUser;
  if (p.reorderWeights) {
    p.weightsReorder.execute(s, wUser, *p.weightsScratch);
    wMem = *p.weightsScratch;
  }
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(g.src(), cpuEngine(), x)},
                                       {DNNL_ARG_WEIGHTS, wMem},
                                       {DNNL_ARG_DST, memory(g.dst(), cpuEngine(), y)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(memory::desc({g.o}, dt::f32, tag::a), cpuEngine(), bias));
  p.prim.execute(s, args);
  s.wait();
  lastImpl = p.impl;
}

void convBackwardData(const Geometry &g, float *dy, float *w, float *dx) {
  ConvPlan &p = plan(
      "d" + g.key(), g, false,
      [&] {
        auto fwd = forwardPd(g, false, false);
        dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, g.src(), g.anyWeights(), g.dst(), g.strides(),
                                                g.dilates(), g.padLow(), g.padHigh());
        dnnl::convolution_backward_data::primitive_desc pd(d, cpuEngine(), fwd);
        return std::make_pair(dnnl::primitive(dnnl::convolution_backward_data(pd)), dnnl::primitive_desc(pd));
      },
      [](const dnnl::primitive_desc &pd) { return pd.weights_desc(); });
  auto &s = cpuStream();
  memory wUser(g.userWeights(), cpuEngine(), w);
  memory wMem = wUser;
  if (p.reorderWeights) {
    p.weightsReorder.execute(s, wUser, *p.weightsScratch);
    wMem = *p.weightsScratch;
  }
  p.prim.execute(s, {{DNNL_ARG_DIFF_DST, memory(g.dst(), cpuEngine(), dy)},
                     {DNNL_ARG_WEIGHTS, wMem},
                     {DNNL_ARG_DIFF_SRC, memory(g.src(), cpuEngine(), dx)}});
  s.wait();
  lastImpl = p.impl;
}

void convBackwardWeights(const Geometry &g, float *x, float *dy, float *dw) {
  ConvPlan &p = plan(
      "w" + g.key(), g, true,
      [&] {
        auto fwd = forwardPd(g, false, false);
        dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, g.src(), g.anyWeights(), g.dst(), g.strides(),
                                                   g.dilates(), g.padLow(), g.padHigh());
        dnnl::convolution_backward_weights::primitive_desc pd(d, cpuEngine(), fwd);
        return std::make_pair(dnnl::primitive(dnnl::convolution_backward_weights(pd)), dnnl::primitive_desc(pd));
      },
      [](const dnnl::primitive_desc &pd) { return pd.diff_weights_desc(); });
  auto &s = cpuStream();
  memory dwUser(g.userWeights(), cpuEngine(), dw);
  memory dwMem = p.reorderWeights ? *p.weightsScratch : dwUser;
  p.prim.execute(s, {{DNNL_ARG_SRC, memory(g.src(), cpuEngine(), x)},
                     {DNNL_ARG_DIFF_DST, memory(g.dst(), cpuEngine(), dy)},
                     {DNNL_ARG_DIFF_WEIGHTS, dwMem}});
  if (p.reorderWeights) p.weightsReorder.execute(s, *p.weightsScratch, dwUser);
  s.wait();
  lastImpl = p.impl;
}


// ---- Memory-bound ops between the convolutions (OpenMP; oneDNN's threads are OpenMP's too) ----
//
// Each is one pass over its operands. Below kParallelMin elements the thread wake-up costs more
// than it saves, so small tensors run on the calling thread. Results do not depend on the thread
// count: elementwise ops are per element, sums combine fixed chunks in a fixed order.
// The threshold is high because on a loaded machine waking a sleeping (passive) OpenMP thread
// can take milliseconds: measured 5.7 ms for a 65K-element Add at load 12 on 2 cores.

constexpr int64_t kParallelMin = 1 << 19;

enum Unary { kRelu = 0, kStep = 1, kFloor = 2 };
enum Binary { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

// The range in 64 fixed chunks over the threads (one chunk below kParallelMin); each chunk's loop
// is a plain one over restrict pointers, which GCC vectorises (with -fno-trapping-math: selects).
template <typename Body>
void chunked(int64_t n, Body body) {
  const int64_t chunks = n >= kParallelMin ? 64 : 1;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) body(n * c / chunks, n * (c + 1) / chunks);
}

template <typename F>
void unaryLoop(const float *__restrict x, float *__restrict y, int64_t n, F f) {
  chunked(n, [=](int64_t lo, int64_t hi) {  // by value: f's captures stay in registers
    for (int64_t i = lo; i < hi; i++) y[i] = f(x[i]);
  });
}

// A plain function (not a lambda through unaryLoop), which GCC vectorises: random signs in a
// branchy loop cost 10x (measured 30 vs 3 ms for 4M elements).
void stepRange(const float *__restrict x, float *__restrict y, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i], s = v > 0.f ? 1.f : alpha;
    y[i] = v == v ? s : v;
  }
}

void unary(int op, const float *x, float *y, int64_t n, float alpha) {
  switch (op) {
    case kRelu:  // tfjs: x < 0 ? 0 : x (NaN stays NaN)
      unaryLoop(x, y, n, [](float v) { return v < 0.f ? 0.f : v; });
      break;
    case kStep:  // tfjs: NaN -> NaN, x > 0 -> 1, else alpha
      chunked(n, [=](int64_t lo, int64_t hi) { stepRange(x + lo, y + lo, hi - lo, alpha); });
      break;
    case kFloor:
      // std::floor is a libm call without SSE4.1; this vectorises. |v| >= 2^23 is already whole
      // (and NaN passes through); v * 0 keeps the sign of a zero result (floor(-0) is -0).
      unaryLoop(x, y, n, [](float v) {
        const bool small = std::fabs(v) < 8388608.f;
        float t = static_cast<float>(static_cast<int32_t>(small ? v : 0.f));
        t = t > v ? t - 1.f : t;
        const float r = small ? t : v;
        return r == 0.f ? v * 0.f : r;
      });
      break;
    default:
      throw JsError{"dnnl-kernels: unknown unary op"};
  }
}

// out[r * period + j] = f(a[...], b[...]) where the operand with period < n (a scalar, or the
// trailing dims of the other: a bias) repeats every `period` elements.
template <typename F>
void binaryLoop(const float *__restrict a, const float *__restrict b, float *__restrict out, int64_t n, int64_t aPeriod, int64_t bPeriod, F f) {
  if (aPeriod == n && bPeriod == n) {
    chunked(n, [=](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) out[i] = f(a[i], b[i]);
    });
  } else if (bPeriod == 1) {
    const float s = b[0];
    chunked(n, [=](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) out[i] = f(a[i], s);
    });
  } else if (aPeriod == 1) {
    const float s = a[0];
    chunked(n, [=](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) out[i] = f(s, b[i]);
    });
  } else {
    const bool aRepeats = aPeriod < n;
    const int64_t p = aRepeats ? aPeriod : bPeriod, rows = n / p;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t r = 0; r < rows; r++) {
      const float *__restrict ar = aRepeats ? a : a + r * p;
      const float *__restrict br = aRepeats ? b + r * p : b;
      float *__restrict o = out + r * p;
      for (int64_t j = 0; j < p; j++) o[j] = f(ar[j], br[j]);
    }
  }
}

void binary(int op, const float *a, const float *b, float *out, int64_t n, int64_t aPeriod, int64_t bPeriod) {
  switch (op) {
    case kAdd:
      return binaryLoop(a, b, out, n, aPeriod, bPeriod, [](float x, float y) { return x + y; });
    case kSub:
      return binaryLoop(a, b, out, n, aPeriod, bPeriod, [](float x, float y) { return x - y; });
    case kMul:
      return binaryLoop(a, b, out, n, aPeriod, bPeriod, [](float x, float y) { return x * y; });
    case kDiv:
      return binaryLoop(a, b, out, n, aPeriod, bPeriod, [](float x, float y) { return x / y; });
    default:
      throw JsError{"dnnl-kernels: unknown binary op"};
  }
}

// out[j] = sum over r of x[r * cols + j] (a bias gradient: [B,H,W,C] summed to [C]), in double
// precision like the wasm kernel. Rows go in kSumChunks fixed chunks, combined in order.
void sumRows(const float *x, int64_t rows, int64_t cols, float *out) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(64, rows * cols / 4096));
  std::vector<double> partial(chunks * cols, 0.0);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t c = 0; c < chunks; c++) {
    double *acc = partial.data() + c * cols;
    for (int64_t r = rows * c / chunks, end = rows * (c + 1) / chunks; r < end; r++) {
      const float *row = x + r * cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) acc[j] += row[j];
    }
  }
  for (int64_t j = 0; j < cols; j++) {
    double s = 0;
    for (int64_t c = 0; c < chunks; c++) s += partial[c * cols + j];
    out[j] = static_cast<float>(s);
  }
}

// Max pooling geometry, NHWC, as the TS side passes it (an Int32Array of 12).
struct Pool {
  int64_t n, h, w, c, fh, fw, oh, ow, sh, sw, padT, padL;
};

// The tfjs cpu backend's rule: the max of the window's pixels by `>` from -Infinity, so NaN never
// wins and the first maximum in row-major window order is the one the gradient goes to.
void maxPool(const Pool &p, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (p.n * p.h * p.w * p.c >= kParallelMin)
  for (int64_t row = 0; row < p.n * p.oh; row++) {
    const int64_t b = row / p.oh, oh = row % p.oh;
    const int64_t r0 = oh * p.sh - p.padT, rMin = std::max<int64_t>(0, r0), rMax = std::min(p.h, r0 + p.fh);
    const float *xb = x + b * p.h * p.w * p.c;
    for (int64_t ow = 0; ow < p.ow; ow++) {
      float *o = y + (row * p.ow + ow) * p.c;
      for (int64_t ch = 0; ch < p.c; ch++) o[ch] = -INFINITY;
      const int64_t c0 = ow * p.sw - p.padL, cMin = std::max<int64_t>(0, c0), cMax = std::min(p.w, c0 + p.fw);
      for (int64_t r = rMin; r < rMax; r++)
        for (int64_t col = cMin; col < cMax; col++) {
          const float *px = xb + (r * p.w + col) * p.c;
#pragma omp simd
          for (int64_t ch = 0; ch < p.c; ch++) o[ch] = px[ch] > o[ch] ? px[ch] : o[ch];
        }
    }
  }
}

// Each window's dy goes to its first maximum (row-major window order): the max first (vectorised
// over channels), then the first pixel equal to it takes the gradient. A window of NaNs (or of
// -Infinity) has no maximum under `>` and passes no gradient, as on the cpu backend.
void maxPoolGrad(const Pool &p, const float *x, const float *dy, float *dx) {
  const int64_t image = p.h * p.w * p.c;
#pragma omp parallel if (p.n * image >= kParallelMin)
  {
    std::vector<float> best(p.c), left(p.c);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < p.n; b++) {
      const float *xb = x + b * image;
      float *dxb = dx + b * image;
      std::memset(dxb, 0, image * sizeof(float));
      for (int64_t oh = 0; oh < p.oh; oh++) {
        const int64_t r0 = oh * p.sh - p.padT, rMin = std::max<int64_t>(0, r0), rMax = std::min(p.h, r0 + p.fh);
        for (int64_t ow = 0; ow < p.ow; ow++) {
          const float *g = dy + ((b * p.oh + oh) * p.ow + ow) * p.c;
          const int64_t c0 = ow * p.sw - p.padL, cMin = std::max<int64_t>(0, c0), cMax = std::min(p.w, c0 + p.fw);
          float *__restrict m = best.data();
          float *__restrict rest = left.data();
          for (int64_t ch = 0; ch < p.c; ch++) m[ch] = -INFINITY;
          for (int64_t r = rMin; r < rMax; r++)
            for (int64_t col = cMin; col < cMax; col++) {
              const float *px = xb + (r * p.w + col) * p.c;
#pragma omp simd
              for (int64_t ch = 0; ch < p.c; ch++) m[ch] = px[ch] > m[ch] ? px[ch] : m[ch];
            }
          // rest: the gradient not yet given (0 once the first maximum took it, or with no maximum).
#pragma omp simd
          for (int64_t ch = 0; ch < p.c; ch++) rest[ch] = m[ch] > -INFINITY ? g[ch] : 0.f;
          for (int64_t r = rMin; r < rMax; r++)
            for (int64_t col = cMin; col < cMax; col++) {
              const float *__restrict px = xb + (r * p.w + col) * p.c;
              float *__restrict d = dxb + (r * p.w + col) * p.c;
              for (int64_t ch = 0; ch < p.c; ch++) {
                const float give = rest[ch];
                const bool hit = px[ch] == m[ch];
                d[ch] += hit ? give : 0.f;
                rest[ch] = hit ? 0.f : give;
              }
            }
        }
      }
    }
  }
}

// ---- Node-API glue ----

void check(napi_env env, napi_status status, const char *what) {
  if (status != napi_ok) throw JsError{std::string("dnnl-kernels: ") + what};
}

std::vector<napi_value> argsOf(napi_env env, napi_callback_info info, size_t expected) {
  std::vector<napi_value> argv(expected);
  size_t argc = expected;
  check(env, napi_get_cb_info(env, info, &argc, argv.data(), nullptr, nullptr), "reading arguments");
  if (argc != expected) throw JsError{"dnnl-kernels: expected " + std::to_string(expected) + " arguments"};
  return argv;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  check(env, napi_typeof(env, v, &t), "typeof");
  return t == napi_null || t == napi_undefined;
}

// The data of a Float32Array (or null/undefined -> nullptr), with its length in elements.
float *floats(napi_env env, napi_value v, size_t *length = nullptr, bool optional = false) {
  if (optional && isNullish(env, v)) return nullptr;
  napi_typedarray_type type;
  size_t len;
  void *data;
  check(env, napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr), "expected a Float32Array");
  if (type != napi_float32_array) throw JsError{"dnnl-kernels: expected a Float32Array"};
  if (length) *length = len;
  return static_cast<float *>(data);
}

int64_t integer(napi_env env, napi_value v) {
  int64_t out;
  check(env, napi_get_value_int64(env, v, &out), "expected an integer");
  return out;
}

bool boolean(napi_env env, napi_value v) {
  bool out;
  check(env, napi_get_value_bool(env, v, &out), "expected a boolean");
  return out;
}

Geometry geometry(napi_env env, napi_value v) {
  napi_typedarray_type type;
  size_t len;
  void *data;
  check(env, napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr), "expected an Int32Array geometry");
  if (type != napi_int32_array || len != 17) throw JsError{"dnnl-kernels: geometry must be an Int32Array of 17"};
  const int32_t *a = static_cast<const int32_t *>(data);
  Geometry g{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16]};
  return g;
}

void needs(size_t have, int64_t want, const char *what) {
  if (static_cast<int64_t>(have) < want) throw JsError{std::string("dnnl-kernels: ") + what + " is too small for the geometry"};
}

// Runs body, turning our errors and oneDNN's into JS exceptions.
template <typename F>
napi_value guarded(napi_env env, F body) {
  try {
    return body();
  } catch (const JsError &e) {
    napi_throw_error(env, "ERR_DNNL", e.message.c_str());
  } catch (const dnnl::error &e) {
    napi_throw_error(env, "ERR_DNNL", (std::string("oneDNN: ") + e.what()).c_str());
  } catch (const std::exception &e) {
    napi_throw_error(env, "ERR_DNNL", e.what());
  }
  return nullptr;
}

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// conv2d(geometry, x, filter, bias | null, y, relu)
napi_value Conv2d(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 6);
    Geometry g = geometry(env, a[0]);
    size_t nx, nw, ny, nb = 0;
    float *x = floats(env, a[1], &nx), *w = floats(env, a[2], &nw), *b = floats(env, a[3], &nb, true), *y = floats(env, a[4], &ny);
    needs(nx, g.n * g.h * g.w * g.c, "x");
    needs(nw, g.kh * g.kw * g.c * g.o, "filter");
    needs(ny, g.n * g.oh * g.ow * g.o, "y");
    if (b) needs(nb, g.o, "bias");
    convForward(g, x, w, b, y, boolean(env, a[5]));
    return undefinedValue(env);
  });
}

// conv2dBackpropInput(geometry, dy, filter, dx)
napi_value Conv2dBackpropInput(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 4);
    Geometry g = geometry(env, a[0]);
    size_t ndy, nw, ndx;
    float *dy = floats(env, a[1], &ndy), *w = floats(env, a[2], &nw), *dx = floats(env, a[3], &ndx);
    needs(ndy, g.n * g.oh * g.ow * g.o, "dy");
    needs(nw, g.kh * g.kw * g.c * g.o, "filter");
    needs(ndx, g.n * g.h * g.w * g.c, "dx");
    convBackwardData(g, dy, w, dx);
    return undefinedValue(env);
  });
}

// conv2dBackpropFilter(geometry, x, dy, dw)
napi_value Conv2dBackpropFilter(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 4);
    Geometry g = geometry(env, a[0]);
    size_t nx, ndy, ndw;
    float *x = floats(env, a[1], &nx), *dy = floats(env, a[2], &ndy), *dw = floats(env, a[3], &ndw);
    needs(nx, g.n * g.h * g.w * g.c, "x");
    needs(ndy, g.n * g.oh * g.ow * g.o, "dy");
    needs(ndw, g.kh * g.kw * g.c * g.o, "dw");
    convBackwardWeights(g, x, dy, dw);
    return undefinedValue(env);
  });
}

// matMul(a, b, c, batch, m, n, k, transposeA, transposeB, aBroadcast, bBroadcast, bias | null, relu)
// c[i] = op(a[i]) x op(b[i]) (+ bias per column, then ReLU), row-major; a side with broadcast set
// has one matrix used for every i.
napi_value MatMul(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 13);
    size_t na, nb, nc, nbias = 0;
    float *A = floats(env, a[0], &na), *B = floats(env, a[1], &nb), *C = floats(env, a[2], &nc);
    int64_t batch = integer(env, a[3]), m = integer(env, a[4]), n = integer(env, a[5]), k = integer(env, a[6]);
    bool ta = boolean(env, a[7]), tb = boolean(env, a[8]), aOne = boolean(env, a[9]), bOne = boolean(env, a[10]);
    float *bias = floats(env, a[11], &nbias, true);
    bool relu = boolean(env, a[12]);
    needs(na, (aOne ? 1 : batch) * m * k, "a");
    needs(nb, (bOne ? 1 : batch) * k * n, "b");
    needs(nc, batch * m * n, "c");
    if (bias) needs(nbias, n, "bias");
    for (int64_t i = 0; i < batch; i++) {
      const float *Ai = A + (aOne ? 0 : i * m * k);
      const float *Bi = B + (bOne ? 0 : i * k * n);
      float *Ci = C + i * m * n;
      dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.f, Ai, ta ? m : k, Bi, tb ? k : n, 0.f, Ci, n);
      if (st != dnnl_success) throw JsError{"dnnl-kernels: dnnl_sgemm failed"};
      if (bias || relu) {
        for (int64_t r = 0; r < m; r++) {
          float *row = Ci + r * n;
          if (bias)
            for (int64_t j = 0; j < n; j++) row[j] += bias[j];
          if (relu)
            for (int64_t j = 0; j < n; j++) row[j] = row[j] > 0.f ? row[j] : 0.f;
        }
      }
    }
    return undefinedValue(env);
  });
}

Pool pool(napi_env env, napi_value v) {
  napi_typedarray_type type;
  size_t len;
  void *data;
  check(env, napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr), "expected an Int32Array pool geometry");
  if (type != napi_int32_array || len != 12) throw JsError{"dnnl-kernels: pool geometry must be an Int32Array of 12"};
  const int32_t *a = static_cast<const int32_t *>(data);
  for (size_t i = 0; i < 12; i++)
    if (a[i] < (i < 10 ? 1 : 0)) throw JsError{"dnnl-kernels: bad pool geometry"};
  return Pool{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]};
}

// unary(op, x, y, alpha): y = op(x) elementwise over min(len) elements (0 relu, 1 step, 2 floor)
napi_value UnaryOp(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 4);
    size_t nx, ny;
    float *x = floats(env, a[1], &nx), *y = floats(env, a[2], &ny);
    double alpha;
    check(env, napi_get_value_double(env, a[3], &alpha), "expected a number");
    if (nx != ny) throw JsError{"dnnl-kernels: unary operands differ in size"};
    unary(static_cast<int>(integer(env, a[0])), x, y, static_cast<int64_t>(nx), static_cast<float>(alpha));
    return undefinedValue(env);
  });
}

// binary(op, a, b, out): out = a op b (0 add, 1 sub, 2 mul, 3 div); a side shorter than out repeats
// (its length divides out's: a scalar, or the other side's trailing dims)
napi_value BinaryOp(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 4);
    size_t na, nb, no;
    float *A = floats(env, a[1], &na), *B = floats(env, a[2], &nb), *O = floats(env, a[3], &no);
    const int64_t n = no, pa = na, pb = nb;
    if (pa == 0 || pb == 0 || (pa != n && pb != n) || n % pa != 0 || n % pb != 0)
      throw JsError{"dnnl-kernels: binary operands do not repeat evenly over the output"};
    binary(static_cast<int>(integer(env, a[0])), A, B, O, n, pa, pb);
    return undefinedValue(env);
  });
}

// sumRows(x, rows, cols, out): out[j] = sum_r x[r][j]
napi_value SumRows(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 4);
    size_t nx, no;
    float *x = floats(env, a[0], &nx), *out = floats(env, a[3], &no);
    int64_t rows = integer(env, a[1]), cols = integer(env, a[2]);
    if (rows < 1 || cols < 1) throw JsError{"dnnl-kernels: bad sum shape"};
    needs(nx, rows * cols, "x");
    needs(no, cols, "out");
    sumRows(x, rows, cols, out);
    return undefinedValue(env);
  });
}

// maxPool(geometry, x, y)
napi_value MaxPool(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 3);
    Pool p = pool(env, a[0]);
    size_t nx, ny;
    float *x = floats(env, a[1], &nx), *y = floats(env, a[2], &ny);
    needs(nx, p.n * p.h * p.w * p.c, "x");
    needs(ny, p.n * p.oh * p.ow * p.c, "y");
    maxPool(p, x, y);
    return undefinedValue(env);
  });
}

// maxPoolGrad(geometry, x, dy, dx)
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = argsOf(env, info, 4);
    Pool p = pool(env, a[0]);
    size_t nx, ndy, ndx;
    float *x = floats(env, a[1], &nx), *dy = floats(env, a[2], &ndy), *dx = floats(env, a[3], &ndx);
    needs(nx, p.n * p.h * p.w * p.c, "x");
    needs(ndy, p.n * p.oh * p.ow * p.c, "dy");
    needs(ndx, p.n * p.h * p.w * p.c, "dx");
    maxPoolGrad(p, x, dy, dx);
    return undefinedValue(env);
  });
}

// info(): { version, threads, lastImpl } (lastImpl: oneDNN's name for the last conv primitive run)
napi_value Info(napi_env env, napi_callback_info) {
  return guarded(env, [&] {
    const dnnl_version_t *v = dnnl_version();
    napi_value obj, version, impl, threads;
    check(env, napi_create_object(env, &obj), "object");
    std::string ver = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    check(env, napi_create_string_utf8(env, ver.c_str(), ver.size(), &version), "string");
    check(env, napi_create_string_utf8(env, lastImpl.c_str(), lastImpl.size(), &impl), "string");
    check(env, napi_create_int32(env, omp_get_max_threads(), &threads), "int");
    napi_set_named_property(env, obj, "version", version);
    napi_set_named_property(env, obj, "lastImpl", impl);
    napi_set_named_property(env, obj, "threads", threads);
    return obj;
  });
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2dBackpropInput, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2dBackpropFilter, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matMul", nullptr, MatMul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"unary", nullptr, UnaryOp, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"binary", nullptr, BinaryOp, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumRows", nullptr, SumRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPool", nullptr, MaxPool, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
