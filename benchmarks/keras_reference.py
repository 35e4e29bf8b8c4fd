"""The official deephar pose network rebuilt in tf.keras: the speed reference of `make bench`.

Runs ONLY in the separate TensorFlow venv (`make bench-keras-env` creates `.venv-keras`, TF 2.15,
Keras 2 API, channels-last); the project venv never imports it.

The replica follows SPEC.md layer by layer and keeps the official nesting and creation order
(`Stem`, `rBlockN`, `SepConvN`, `RegMapN`, `fReMapN`, frozen `sSAM`/`cSAM`/`Agg`), so an official
weight file loads into it by layer order. Proof that it IS the published network: its parameter
counts (K=8: 14,669,952 trainable / 14,847,936 total) and `--parity DIR`, which loads
`mpii_2d_k2.h5` into the K=2 replica and compares with `mpii_2d_k2.npz`.

    .venv-keras/bin/python -m benchmarks.keras_reference --batch 1 8 --json
    .venv-keras/bin/python -m benchmarks.keras_reference --serve   # timing server (make bench)

``--serve`` prints the report (counts, parity) as one JSON line, then answers each stdin line
``BATCH`` with one JSON line ``{"batch": B, "ms_per_image": t, "method": m}`` of ONE timed
call, so that `make bench` can interleave Keras and PyTorch repetitions (machine load then hits
both alike). The method (``predict_on_batch`` or ``tf.function``) is the faster of the two in a
short warm-up per batch size. A line ``train BATCH`` times one TRAINING step instead (forward,
loss, gradients, RMSprop update, one ``tf.function``; see ``train_step``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras = tf.keras
L = keras.layers

OFFICIAL_COUNTS = {8: (14_669_952, 14_847_936), 2: (4_422_912, 4_545_600)}  # K: (trainable, total)
PARITY_TOL = 1e-4
FROZEN = ("sSAM", "cSAM", "Agg")  # constant layers: soft-argmax grids, context sum


# ---- official building blocks (Conv without bias, BN without scale, 'same' padding) ----
def conv_bn_act(x, c: int, k: tuple[int, int], strides=(1, 1), act: bool = True):
    x = L.Conv2D(c, k, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization(scale=False)(x)
    return L.Activation("relu")(x) if act else x


def act_conv_bn(x, c: int, k: tuple[int, int], strides=(1, 1), name: str | None = None):
    x = L.Activation("relu")(x)
    conv_name = None if name is None else name + "_conv"
    x = L.Conv2D(c, k, strides=strides, padding="same", use_bias=False, name=conv_name)(x)
    return L.BatchNormalization(scale=False, name=name)(x)


def sep_act_conv_bn(x, c: int, k: int, name: str | None = None):
    x = L.Activation("relu")(x)
    conv_name = None if name is None else name + "_conv"
    x = L.SeparableConv2D(c, k, padding="same", use_bias=False, name=conv_name)(x)
    return L.BatchNormalization(scale=False, name=name)(x)


def act_conv(x, c: int):
    """RegMap: ReLU → Conv 1×1, no BN."""
    return L.Conv2D(c, (1, 1), padding="same", use_bias=False)(L.Activation("relu")(x))


def sepconv_residual(x, c_out: int, name: str, k: int = 3):
    """SR module: shortcut (identity | act_conv_bn 1×1) + ReLU→SepConv k×k→BN."""
    c_in = x.shape[-1]
    shortcut = x if c_in == c_out else act_conv_bn(x, c_out, (1, 1), name=name + "_shortcut")
    if c_out < c_in:
        x = act_conv_bn(x, c_out, (1, 1), name=name + "_reduce")
    return L.add([shortcut, sep_act_conv_bn(x, c_out, k, name=name)])


def stem(inp):
    """Entry flow: 256²×3 → 32²×576 (nested model `Stem`)."""
    xi = keras.Input(inp.shape[1:])
    x = conv_bn_act(xi, 32, (3, 3), strides=(2, 2))
    x = conv_bn_act(x, 32, (3, 3))
    x = conv_bn_act(x, 64, (3, 3))
    a = conv_bn_act(x, 96, (3, 3), strides=(2, 2))
    b = L.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
    x = L.concatenate([a, b])
    a = conv_bn_act(x, 64, (1, 1))
    a = conv_bn_act(a, 96, (3, 3), act=False)
    b = conv_bn_act(x, 64, (1, 1))
    b = conv_bn_act(b, 64, (5, 1))
    b = conv_bn_act(b, 64, (1, 5))
    b = conv_bn_act(b, 96, (3, 3), act=False)
    x = L.concatenate([a, b])
    a = act_conv_bn(x, 192, (3, 3), strides=(2, 2))
    b = L.MaxPooling2D((2, 2), strides=(2, 2))(x)
    x = L.concatenate([a, b])
    x = sepconv_residual(x, 576, name="sepconv1")
    return keras.Model(xi, x, name="Stem")(inp)


def reception_block(inp, name: str, k: int):
    """Three-resolution block (32², 16², 8²) on 576 channels (nested model `rBlockN`)."""
    size = inp.shape[-1]
    half = size // 2
    xi = keras.Input(inp.shape[1:])
    a = sepconv_residual(xi, size, "sepconv_l1", k)
    low1 = L.MaxPooling2D((2, 2))(xi)
    low1 = act_conv_bn(low1, half, (1, 1))
    low1 = sepconv_residual(low1, half, "sepconv_l2_1", k)
    b = sepconv_residual(low1, half, "sepconv_l2_2", k)
    c = L.MaxPooling2D((2, 2))(low1)
    for i in (1, 2, 3):
        c = sepconv_residual(c, half, f"sepconv_l3_{i}", k)
    c = L.UpSampling2D((2, 2))(c)
    b = sepconv_residual(L.add([b, c]), size, "sepconv_l2_3", k)
    b = L.UpSampling2D((2, 2))(b)
    return keras.Model(xi, L.add([a, b]), name=name)(inp)


def nested(inp, fn, name: str):
    """Wrap `fn` in a nested functional model called `name` (official SepConvN/RegMapN/fReMapN)."""
    xi = keras.Input(inp.shape[1:])
    return keras.Model(xi, fn(xi), name=name)(inp)


# ---- frozen heads: soft-argmax, joint probability, context aggregation ----
def channel_softmax_2d(x):
    """Spatial softmax per channel of (B, H, W, C), max-subtracted (official activation)."""
    e = tf.exp(x - tf.reduce_max(x, axis=(1, 2), keepdims=True))
    s = tf.clip_by_value(tf.reduce_sum(e, axis=(1, 2), keepdims=True), 1e-7, np.inf)
    return e / s


def linspace_grid(n: int, axis: int) -> np.ndarray:
    """(n, n) grid of linspace(0, 1, n) varying along columns (axis 0 = x) or rows (axis 1 = y)."""
    grid = np.tile(np.linspace(0.0, 1.0, n, dtype=np.float32), (n, 1))
    return grid if axis == 0 else grid.T


def lin_interpolation_2d(x, axis: int):
    """Expectation of a coordinate as a frozen valid SeparableConv2D (H×W depthwise, identity 1×1)."""
    rows, _, c = x.shape[1:]
    f = L.SeparableConv2D(c, (rows, rows), use_bias=False)
    y = f(x)
    depthwise = np.repeat(linspace_grid(rows, axis)[:, :, None, None], c, axis=2)
    f.set_weights([depthwise, np.eye(c, dtype=np.float32)[None, None]])
    f.trainable = False
    return L.Reshape((c, 1))(y)


def softargmax_2d(shape, name: str):
    inp = keras.Input(shape)
    x = L.Activation(channel_softmax_2d, name=name + "_softmax")(inp)
    x = L.concatenate([lin_interpolation_2d(x, 0), lin_interpolation_2d(x, 1)])
    model = keras.Model(inp, x, name=name)
    model.trainable = False
    return model


def joint_probability(shape, name: str):
    """sigmoid(max of each map's logits) → (B, C, 1)."""
    inp = keras.Input(shape)
    x = L.MaxPooling2D(shape[:2])(inp)
    x = L.Activation("sigmoid")(x)
    return keras.Model(inp, L.Reshape((shape[2], 1))(x), name=name)


def context_aggregation(num_joints: int, num_ctx: int, alpha: float, name: str = "Agg"):
    """y_j = α·ŷ_j + (1 − α)·Σ_c p_c ŷ_c / Σ_c p_c, the context sum a frozen 0/1 Dense."""
    inp = keras.Input((num_joints * num_ctx, 1))
    dense = L.Dense(num_joints, use_bias=False)
    x = L.Reshape((num_joints,))(dense(L.Reshape((num_joints * num_ctx,))(inp)))
    dense.set_weights([np.kron(np.eye(num_joints), np.ones((num_ctx, 1))).astype(np.float32)])
    ctx_sum = keras.Model(inp, L.Reshape((num_joints, 1))(x))
    ctx_sum.trainable = False

    ys = keras.Input((num_joints, 2))
    yc = keras.Input((num_joints * num_ctx, 2))
    pc = keras.Input((num_joints * num_ctx, 1))
    p_sum = ctx_sum(pc)

    def weighted_mean(axis: int):
        coord = L.Lambda(lambda t: t[:, :, axis : axis + 1])(yc)
        return L.Lambda(lambda t: t[0] / t[1])([ctx_sum(L.multiply([coord, pc])), p_sum])

    yc_mean = L.concatenate([weighted_mean(0), weighted_mean(1)])
    y = L.add([L.Lambda(lambda t: alpha * t)(ys), L.Lambda(lambda t: (1 - alpha) * t)(yc_mean)])
    model = keras.Model([ys, yc, pc], y, name=name)
    model.trainable = False
    return model


# ---- the whole network ----
def build_pose_model(
    num_blocks: int = 8,
    num_joints: int = 16,
    num_ctx: int = 2,
    ksize: int = 5,
    input_size: int = 256,
    alpha: float = 0.8,
    export_heatmaps: bool = False,
) -> keras.Model:
    """Official MPII 2D pose model; outputs per block: pose (B, J, 3) = x, y, visibility
    [+ joint heat-map logits (B, H, W, J) when `export_heatmaps`]."""
    num_maps = (1 + num_ctx) * num_joints
    inp = keras.Input((input_size, input_size, 3))
    x = stem(inp)
    rows = x.shape[1]
    sam_s = softargmax_2d((rows, rows, num_joints), "sSAM")
    prob_s = joint_probability((rows, rows, num_joints), "sjProb")
    sam_c = softargmax_2d((rows, rows, num_maps - num_joints), "cSAM")
    prob_c = joint_probability((rows, rows, num_maps - num_joints), "cjProb")
    agg = context_aggregation(num_joints, num_ctx, alpha)
    outputs = []
    for i in range(1, num_blocks + 1):
        width = x.shape[-1]
        x = reception_block(x, f"rBlock{i}", ksize)
        ident = x
        x = nested(x, lambda t, w=width: sep_act_conv_bn(t, w, ksize), f"SepConv{i}")
        h = nested(x, lambda t: act_conv(t, num_maps), f"RegMap{i}")
        hs = L.Lambda(lambda t: t[..., :num_joints])(h)
        hc = L.Lambda(lambda t: t[..., num_joints:])(h)
        pose = agg([sam_s(hs), sam_c(hc), prob_c(hc)])
        outputs.append(L.concatenate([pose, prob_s(hs)]))
        if export_heatmaps:
            outputs.append(hs)
        if i < num_blocks:
            h = nested(h, lambda t, w=width: act_conv_bn(t, w, (1, 1)), f"fReMap{i}")
            x = L.add([ident, x, h])
    return keras.Model(inp, outputs)


def param_counts(model: keras.Model) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, trainable + sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


# ---- proof and timing ----
def check_parity(parity_dir: str) -> dict:
    """Load `mpii_2d_k2.h5` into the K=2 replica (by layer order) and compare with the npz."""
    model = build_pose_model(num_blocks=2, export_heatmaps=True)
    constants = [model.get_layer(n).get_weights() for n in FROZEN]
    model.load_weights(os.path.join(parity_dir, "mpii_2d_k2.h5"))
    loaded = [model.get_layer(n).get_weights() for n in FROZEN]
    same_constants = all(
        np.array_equal(a, b) for ws, vs in zip(constants, loaded) for a, b in zip(ws, vs)
    )
    ref = np.load(os.path.join(parity_dir, "mpii_2d_k2.npz"))
    x = (ref["image"].astype(np.float32) / 255.0 - 0.5) * 2.0
    outs = model.predict_on_batch(x)
    errors = []
    for i, out in enumerate(outs):
        expected = ref[f"output_{i}"]
        if out.shape != expected.shape:
            raise ValueError(f"output_{i}: shape {out.shape} != reference {expected.shape}")
        scale = max(1.0, float(np.abs(expected).max()))
        errors.append(float(np.abs(out - expected).max()) / scale)
    counts = param_counts(model)
    return {
        "max_rel_error": max(errors),
        "per_output": errors,
        "params_k2": counts,
        "constants_match_file": same_constants,
        "ok": max(errors) <= PARITY_TOL and counts == OFFICIAL_COUNTS[2] and same_constants,
    }


def configure_threads(threads: int) -> None:
    """Same thread count as the PyTorch side: TF intra-op and inter-op pools both `threads`."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def time_model(model: keras.Model, batch: int, runs: int, warmup: int) -> dict:
    """Median wall time of `predict_on_batch` and of a `tf.function` call, in ms per image."""
    x = np.random.default_rng(0).uniform(-1, 1, (batch, *model.input_shape[1:])).astype(np.float32)
    graph_call = tf.function(lambda t: model(t, training=False))
    methods = {
        "predict_on_batch": lambda: model.predict_on_batch(x),
        "tf.function": lambda: [o.numpy() for o in graph_call(tf.constant(x))],
    }
    result = {"batch": batch, "runs": runs}
    for name, fn in methods.items():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        result[name] = 1000.0 * statistics.median(times) / batch
    result["ms_per_image"] = min(result[name] for name in methods)
    return result


def train_step(model: keras.Model, batch: int, lr: float = 1e-3):
    """One official training step on a fixed random batch of ``batch`` images, as a callable.

    The official optimiser (Keras RMSprop, rho 0.9, eps 1e-7) and loss on every block's output:
    elastic net (L1 + L2) on the joint coordinates and binary cross-entropy on the visibility.
    Forward (BatchNorm in training mode), loss, gradients and update run in ONE ``tf.function``;
    the loss is read back, as the PyTorch side's ``loss.backward()`` returns once it is done.
    """
    gen = np.random.default_rng(batch)
    x = tf.constant(gen.uniform(-1, 1, (batch, *model.input_shape[1:])).astype(np.float32))
    joints = model.outputs[0].shape[1]
    y = tf.constant(gen.uniform(0, 1, (batch, joints, 2)).astype(np.float32))
    v = tf.ones((batch, joints, 1))
    optimizer = keras.optimizers.RMSprop(learning_rate=lr)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = 0.0
            for out in model(x, training=True):
                d = out[..., :2] - y
                loss += (
                    tf.reduce_mean(tf.abs(d)) + tf.reduce_mean(tf.square(d)) + bce(v, out[..., 2:])
                )
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    return lambda: float(step())


def serve(model: keras.Model, warmup: int) -> None:
    """Answer stdin lines ``BATCH`` (inference) or ``train BATCH`` (one training step) with one
    timed call each (see the module docstring)."""
    graph_call = tf.function(lambda t: model(t, training=False))
    chosen: dict[int, tuple[str, object]] = {}
    steps: dict[int, object] = {}
    for line in iter(input_line, ""):
        if line.startswith("train"):
            batch = int(line.split()[1])
            if batch not in steps:
                steps[batch] = train_step(model, batch)
                for _ in range(warmup):  # the first call traces the graph
                    steps[batch]()
            t0 = time.perf_counter()
            steps[batch]()
            ms = 1000.0 * (time.perf_counter() - t0) / batch
            print(
                json.dumps({"batch": batch, "ms_per_image": ms, "method": "train step"}), flush=True
            )
            continue
        batch = int(line)
        if batch not in chosen:
            x = np.random.default_rng(0).uniform(-1, 1, (batch, *model.input_shape[1:]))
            x = x.astype(np.float32)
            methods = {
                "predict_on_batch": lambda x=x: model.predict_on_batch(x),
                "tf.function": lambda x=x: [o.numpy() for o in graph_call(tf.constant(x))],
            }
            best = {}
            for name, fn in methods.items():
                for _ in range(warmup):
                    t0 = time.perf_counter()
                    fn()
                    best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
            name = min(best, key=best.get)
            chosen[batch] = (name, methods[name])
        name, fn = chosen[batch]
        t0 = time.perf_counter()
        fn()
        ms = 1000.0 * (time.perf_counter() - t0) / batch
        print(json.dumps({"batch": batch, "ms_per_image": ms, "method": name}), flush=True)


def input_line() -> str:
    """One stripped stdin line, '' at the end of input."""
    try:
        return input().strip()
    except EOFError:
        return ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=8, help="K prediction blocks (official: 8)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--runs", type=int, default=10, help="timed runs per batch size (median)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="TF intra- and inter-op threads")
    ap.add_argument("--parity", metavar="DIR", help="check mpii_2d_k2.{h5,npz} from this folder")
    ap.add_argument("--no-timing", action="store_true", help="only counts (and --parity)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--serve", action="store_true", help="timing server on stdin (make bench)")
    args = ap.parse_args(argv)

    configure_threads(args.threads)
    report: dict = {
        "model": f"official deephar MPII 2D pose, K={args.blocks} (tf.keras replica)",
        "tensorflow": tf.__version__,
        "threads": args.threads,
        "cpu": cpu_model(),
    }
    model = build_pose_model(num_blocks=args.blocks)
    trainable, total = param_counts(model)
    expected = OFFICIAL_COUNTS.get(args.blocks)
    report["params"] = {"trainable": trainable, "total": total, "official": expected}
    report["params_match_official"] = None if expected is None else (trainable, total) == expected
    if args.parity:
        report["parity"] = check_parity(args.parity)
    if args.serve:
        print(json.dumps(report), flush=True)
        serve(model, args.warmup)
        return report
    if not args.no_timing:
        report["timings"] = [time_model(model, b, args.runs, args.warmup) for b in args.batch]
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
