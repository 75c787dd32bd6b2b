#!/usr/bin/python3
# Exporter matrix fixture: one seeded torchvision model exported in every shape exporters write.
"""usage: make_matrix.py OUT_DIR MODEL        (MODEL: resnet18 | mobilenet_v2)

One set of seeded torchvision weights (BatchNorm statistics randomised, as make_variants.py
does) exported at a non-square 64 x 96 (H x W) input, so that a height/width or channel/spatial
mix-up cannot go unnoticed, in the shapes users have:

family "plain" (all the same function; plain.onnx is the reference):
  plain          torch.onnx.export, NCHW [N, 3, 64, 96], GlobalAveragePool -> Flatten -> Gemm
  nhwc_input     a permute in front: input [N, 64, 96, 3] (detected as NHWC)
  channels_last  onnx.helper: the explained layers go channels-last and back (Transpose out,
                 Transpose in), as tf2onnx and Keras leave activations
  keras_opt      onnx.helper, tf2onnx after its optimiser: NHWC input 'input_1:0' + Transpose,
                 NCHW inside, the last map Transposed to NHWC, ReduceMean over axes 1, 2,
                 MatMul + Add + Softmax ('model/predictions/Softmax:0'), every name ':0'
  reshaped       keras_opt with the last map viewed as tokens and back (Reshape, Reshape): the
                 graph does not decide that layer's layout; the config's layer_layout does
  keras_raw      onnx.helper, tf2onnx before its optimiser / Keras: every activation NHWC,
                 each Conv / MaxPool between Transposes, elementwise ops on NHWC values,
                 ReduceMean(1, 2) head, MatMul + Add + Softmax, ':0' names
  softmax        nn.Sequential(model, nn.Softmax(1))
  sigmoid        nn.Sequential(model, nn.Sigmoid())
  free_hw        dynamic_axes on H and W (fixed by --size at load)
  avgpool_head   GlobalAveragePool written as AveragePool(kernel = the whole map)
  matmul_head    Gemm written as MatMul + Add
  colon_names    every name as tf2onnx writes it: 'input_1:0', 'model/...:0', 'Identity:0'
family "qdq" (QDQ quantisation as ONNX Runtime's quantiser writes it):
  plain_dq       the plain graph with int8-rounded weights as float initializers (reference)
  qdq            the same weights stored int8 (per output channel) behind DequantizeLinear,
                 and a QuantizeLinear -> DequantizeLinear pair on every Conv's input; camd
                 dequantises the weights at load and passes activation pairs through
family "pad_same" (TF "SAME" padding in front of every strided conv, timm's pad_same):
  pad_same_static  the pads computed in Python at export: constant Pad nodes (the reference)
  pad_same         the pads computed in the graph from the input's shape (Shape -> Gather ->
                   Div/Ceil/Sub/Clip -> Cast -> Concat -> ... -> Pad)
  pad_same_free    the same with free H and W (dynamic_axes)
family "gmp" (global max pooling head):
  gmp            GlobalMaxPool head (the reference; PyTorch: adaptive_max_pool2d)
  gmp_pool       MaxPool(kernel = the whole map) head

plus image.png (96 x 64 RGB, the model input exactly) and matrix.json: per family the
reference file, PyTorch's float64 logits of the reference function, and per variant the names
of the two explained layers ('deep': the last map before global pooling, 'cheap': an early map
with few channels for the methods that run one forward per channel) and how to load it.
Cached: nothing is rewritten when matrix.json exists with this script's hash.
"""
import copy
import hashlib
import json
import math
import os
import re
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

H, W = 64, 96
OPSET = 13


def script_hash(model):
    h = hashlib.sha256(open(os.path.abspath(__file__), "rb").read())
    h.update(("torch " + torch.__version__ + " torchvision " + torchvision.__version__ + " onnx " +
              onnx.__version__ + " " + model).encode())
    return h.hexdigest()


def build(name):
    """Seeded random weights, BatchNorm conditioned so the maps mean something: its statistics
    are measured on seeded noise images (activations neither die nor saturate ReLU6 through
    the depth of the network, so every layer's channels move the scores well above float32
    rounding), then its affine parameters are randomised (so BN is no identity)."""
    torch.manual_seed(1234)
    model = getattr(torchvision.models, name)(weights=None)
    gen = torch.Generator().manual_seed(1235)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(8, 3, H, W, generator=gen))
    for m in bns:
        c = m.num_features
        with torch.no_grad():
            m.weight.copy_(torch.empty(c).uniform_(0.75, 1.25, generator=gen))
            m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    if name == "mobilenet_v2":  # torchvision's N(0, 0.01) classifier: logits of a useful size
        with torch.no_grad():
            model.classifier[1].weight.normal_(0.0, 1.0 / math.sqrt(1280), generator=gen)
    return model.eval()


# ---- TF "SAME" padding (timm's pad_same, traced: the pads are computed from the shape) ----

def get_same_padding(x, k, s, d):
    if isinstance(x, torch.Tensor):
        return torch.clamp(((x / s).ceil() - 1) * s + (k - 1) * d + 1 - x, min=0)
    return max((math.ceil(x / s) - 1) * s + (k - 1) * d + 1 - x, 0)


class Conv2dSame(nn.Conv2d):
    """timm's Conv2dSame: pad_same in front, no padding in the conv. static: pads as Python ints
    (constant Pad nodes); otherwise computed from the traced size."""
    static = False

    def forward(self, x):
        ih, iw = x.size()[-2:]
        if self.static:
            ih, iw = int(ih), int(iw)
        ph = get_same_padding(ih, self.kernel_size[0], self.stride[0], self.dilation[0])
        pw = get_same_padding(iw, self.kernel_size[1], self.stride[1], self.dilation[1])
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


def same_padded(model, static):
    m = copy.deepcopy(model)
    for parent in list(m.modules()):
        for cname, c in list(parent.named_children()):
            if isinstance(c, nn.Conv2d) and c.stride != (1, 1):
                s = Conv2dSame(c.in_channels, c.out_channels, c.kernel_size, c.stride, 0,
                               c.dilation, c.groups, c.bias is not None)
                s.static = static
                s.load_state_dict(c.state_dict())
                setattr(parent, cname, s)
    return m.eval()


class NHWCInput(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.permute(0, 3, 1, 2))


class GMP(nn.Module):
    """The model's features with a global max pooling head."""

    def __init__(self, model, name):
        super().__init__()
        self.model, self.name = model, name

    def forward(self, x):
        m = self.model
        if self.name == "resnet18":
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
            return m.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))
        x = m.features(x)
        return m.classifier(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


def export(module, path, nhwc=False, free=False):
    shape = (1, H, W, 3) if nhwc else (1, 3, H, W)
    axes = {0: "batch"}
    if free:
        axes.update({2: "height", 3: "width"})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(*shape), path, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": axes, "logits": {0: "batch"}})
    return onnx.load(path)


# ---- graph surgery helpers ----

def producers(g):
    return {o: n for n in g.node for o in n.output}


def consumers(g, name):
    return [n for n in g.node if name in n.input]


def find_layers(g, model):
    """deep: the map fed into the global pooling; cheap: resnet18 layer1's output (64 channels),
    mobilenet_v2 features.3's output (24 channels)."""
    deep = next(n.input[0] for n in g.node if n.op_type in ("GlobalAveragePool", "GlobalMaxPool"))
    # The residual Adds of the blocks (not the Adds of a pad_same shape computation).
    block = re.compile(r"/(layer\d+/layer\d+\.\d+|features/features\.\d+)/Add$")
    adds = [n for n in g.node if n.op_type == "Add" and block.search(n.name)]
    if model == "resnet18":
        cheap = next(n.output[0] for n in g.node
                     if n.op_type == "Relu" and n.input[0] == adds[1].output[0])
    else:
        cheap = adds[0].output[0]
    return deep, cheap


def shapes(model_proto):
    inf = onnx.shape_inference.infer_shapes(model_proto)
    out = {}
    for v in list(inf.graph.value_info) + list(inf.graph.input) + list(inf.graph.output):
        out[v.name] = [d.dim_value if d.HasField("dim_value") else None
                       for d in v.type.tensor_type.shape.dim]
    return out


def rebuild(g, nodes, inputs=None, outputs=None, inits=None, name=None):
    ng = helper.make_graph(nodes, name or g.name, inputs if inputs is not None else list(g.input),
                           outputs if outputs is not None else list(g.output),
                           inits if inits is not None else list(g.initializer))
    return helper.make_model(ng, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="camd-tests")


def rename_all(m, mapping):
    """Renames values (mapping: old -> new, missing names kept) in nodes, inputs, outputs,
    initializers."""
    g = m.graph
    f = lambda s: mapping.get(s, s) if s else s
    for n in g.node:
        n.input[:] = [f(s) for s in n.input]
        n.output[:] = [f(s) for s in n.output]
    for v in list(g.input) + list(g.output) + list(g.value_info):
        v.name = f(v.name)
    for t in g.initializer:
        t.name = f(t.name)
    return m


def tf_names(m, keep=(), input_name="input_1:0", output_name="Identity:0"):
    """Every value named as tf2onnx does: 'model/<scope>:0'; the graph input 'input_1:0', the
    output 'Identity:0' (or the given names); nodes named after their first output's scope."""
    g = m.graph
    names = set()
    for n in g.node:
        names.update(s for s in list(n.input) + list(n.output) if s)
    names.update(v.name for v in g.input)
    mapping = {}
    for s in names:
        if s in keep or s.endswith(":0"):
            continue
        base = s.strip("/").replace("::", "_").replace(".", "_")
        mapping[s] = "model/" + base + ":0"
    mapping[g.input[0].name] = input_name
    mapping[g.output[0].name] = output_name
    rename_all(m, mapping)
    for i, n in enumerate(g.node):
        n.name = "model/" + n.output[0].split(":")[0].split("/", 1)[-1] + f"_{i}"
    return m, mapping


def channels_last(plain, layers):
    """Each explained layer L goes channels-last and back: L -> Transpose -> L_nhwc -> Transpose
    -> L_nchw, which every former consumer of L now reads."""
    g = plain.graph
    nodes = []
    renamed = {}
    for n in g.node:
        n2 = copy.deepcopy(n)
        n2.input[:] = [renamed.get(s, s) for s in n.input]
        nodes.append(n2)
        for o in n.output:
            if o in layers:
                nodes.append(helper.make_node("Transpose", [o], [o + "_nhwc"], perm=[0, 2, 3, 1],
                                              name=o + "_to_nhwc"))
                nodes.append(helper.make_node("Transpose", [o + "_nhwc"], [o + "_nchw"],
                                              perm=[0, 3, 1, 2], name=o + "_to_nchw"))
                renamed[o] = o + "_nchw"
    return rebuild(g, nodes)


def pool_head(plain, op, deep_hw):
    """Global pooling written as a whole-map AveragePool / MaxPool (tfjs / Keras conversions)."""
    g = plain.graph
    nodes = []
    for n in g.node:
        if n.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
            kw = {} if op.startswith("Global") else {"kernel_shape": list(deep_hw)}
            n = helper.make_node(op, list(n.input), list(n.output), name=n.name, **kw)
        nodes.append(copy.deepcopy(n))
    return rebuild(g, nodes)


def matmul_head(plain):
    """Gemm(x, W, b, transB=1) -> MatMul(x, W^T) + Add(b)."""
    g = plain.graph
    inits = {t.name: t for t in g.initializer}
    nodes, new_inits = [], [t for t in g.initializer]
    for n in g.node:
        if n.op_type == "Gemm":
            w = numpy_helper.to_array(inits[n.input[1]])
            wt = numpy_helper.from_array(np.ascontiguousarray(w.T), n.input[1] + "_t")
            new_inits.append(wt)
            nodes.append(helper.make_node("MatMul", [n.input[0], wt.name], [n.output[0] + "_mm"],
                                          name=n.name + "_matmul"))
            nodes.append(helper.make_node("Add", [n.output[0] + "_mm", n.input[2]],
                                          [n.output[0]], name=n.name + "_bias"))
        else:
            nodes.append(copy.deepcopy(n))
    return rebuild(g, nodes, inits=new_inits)


def nhwc_input_value(name):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["unk__batch", H, W, 3])


def keras_head(g, nodes, inits, deep, deep_src, gemm, softmax=True):
    """tf2onnx's classifier head on a channels-last map: ReduceMean(1, 2) -> MatMul -> Add ->
    Softmax. deep_src: the NHWC value of the last map."""
    init = {t.name: t for t in g.initializer}
    w = numpy_helper.to_array(init[gemm.input[1]])
    k = numpy_helper.from_array(np.ascontiguousarray(w.T), "model/predictions/MatMul/ReadVariableOp:0")
    b = numpy_helper.from_array(numpy_helper.to_array(init[gemm.input[2]]),
                                "model/predictions/BiasAdd/ReadVariableOp:0")
    inits += [k, b]
    nodes.append(helper.make_node("ReduceMean", [deep_src], ["model/avg_pool/Mean:0"], axes=[1, 2],
                                  keepdims=0, name="model/avg_pool/Mean"))
    nodes.append(helper.make_node("MatMul", ["model/avg_pool/Mean:0", k.name],
                                  ["model/predictions/MatMul:0"], name="model/predictions/MatMul"))
    out = "model/predictions/BiasAdd:0"
    nodes.append(helper.make_node("Add", ["model/predictions/MatMul:0", b.name], [out],
                                  name="model/predictions/BiasAdd"))
    if softmax:
        nodes.append(helper.make_node("Softmax", [out], ["model/predictions/Softmax:0"], axis=-1,
                                      name="model/predictions/Softmax"))
        out = "model/predictions/Softmax:0"
    return out


def keras_opt(plain, deep, cheap):
    """tf2onnx after its transpose optimiser: one Transpose after the NHWC input, NCHW inside,
    the last map Transposed to NHWC for the head."""
    g = plain.graph
    nodes = [helper.make_node("Transpose", ["input_1:0"], [g.input[0].name], perm=[0, 3, 1, 2],
                              name="model/input_transpose")]
    gemm = None
    for n in g.node:
        if n.op_type in ("GlobalAveragePool", "Flatten"):
            continue
        if n.op_type == "Gemm":
            gemm = n
            continue
        nodes.append(copy.deepcopy(n))
    nodes.append(helper.make_node("Transpose", [deep], [deep + "_nhwc"], perm=[0, 2, 3, 1],
                                  name="model/top_transpose"))
    inits = list(g.initializer)
    out = keras_head(g, nodes, inits, deep, deep + "_nhwc", gemm)
    m = rebuild(g, nodes, inputs=[nhwc_input_value("input_1:0")],
                outputs=[helper.make_tensor_value_info(out, TensorProto.FLOAT, ["unk__batch", 1000])],
                inits=inits)
    m, mapping = tf_names(m, input_name="input_1:0", output_name=out)
    return m, mapping.get(deep + "_nhwc", deep + "_nhwc"), mapping.get(cheap, cheap)


def reshaped(plain, deep, cheap, deep_shape):
    """keras_opt whose last map is viewed as tokens and back (a ViT-style Reshape pair): the
    graph cannot say which axis of the result holds the channels (layer_layout decides)."""
    m, d, c = keras_opt(plain, deep, cheap)
    g = m.graph
    ch, hh, ww = deep_shape[1], deep_shape[2], deep_shape[3]
    inits = list(g.initializer) + [
        numpy_helper.from_array(np.array([-1, hh * ww, ch], np.int64), "model/tokens/shape:0"),
        numpy_helper.from_array(np.array([-1, hh, ww, ch], np.int64), "model/map/shape:0")]
    nodes = []
    for n in g.node:
        n = copy.deepcopy(n)
        if n.op_type == "ReduceMean":
            nodes.append(helper.make_node("Reshape", [d, "model/tokens/shape:0"],
                                          ["model/tokens/Reshape:0"], name="model/tokens/Reshape"))
            nodes.append(helper.make_node("Reshape", ["model/tokens/Reshape:0", "model/map/shape:0"],
                                          ["model/map/Reshape:0"], name="model/map/Reshape"))
            n.input[0] = "model/map/Reshape:0"
        nodes.append(n)
    return rebuild(g, nodes, inits=inits), "model/map/Reshape:0", c


def keras_raw(plain, deep, cheap):
    """Keras / tf2onnx without the optimiser: every activation NHWC; Conv and MaxPool read an
    NCHW Transpose of their input and are Transposed back; elementwise ops (Relu, Clip, Add) run
    on the NHWC values; global pooling is ReduceMean over axes 1, 2."""
    g = plain.graph
    nodes = []
    gemm = None
    nhwc = {g.input[0].name: "input_1:0"}  # NCHW value -> its NHWC twin
    for n in g.node:
        if n.op_type in ("Conv", "MaxPool"):
            x = nhwc[n.input[0]]
            t_in, y = x.split(":")[0] + "_nchw_" + n.name.strip("/").replace("/", "_"), n.output[0]
            nodes.append(helper.make_node("Transpose", [x], [t_in], perm=[0, 3, 1, 2],
                                          name=t_in + "_transpose"))
            c = copy.deepcopy(n)
            c.input[0] = t_in
            c.output[0] = y + "_nchw"
            nodes.append(c)
            nodes.append(helper.make_node("Transpose", [y + "_nchw"], [y], perm=[0, 2, 3, 1],
                                          name=y + "_transpose"))
            nhwc[y] = y
        elif n.op_type in ("Relu", "Clip", "Add"):
            c = copy.deepcopy(n)
            c.input[:] = [nhwc.get(s, s) for s in n.input]
            nodes.append(c)
            nhwc[n.output[0]] = n.output[0]
        elif n.op_type in ("GlobalAveragePool", "Flatten"):
            continue
        elif n.op_type == "Gemm":
            gemm = n
        else:  # Identity / Constant on weights
            nodes.append(copy.deepcopy(n))
    inits = list(g.initializer)
    out = keras_head(g, nodes, inits, deep, nhwc[deep], gemm)
    m = rebuild(g, nodes, inputs=[nhwc_input_value("input_1:0")],
                outputs=[helper.make_tensor_value_info(out, TensorProto.FLOAT, ["unk__batch", 1000])],
                inits=inits)
    m, mapping = tf_names(m, input_name="input_1:0", output_name=out)
    return m, mapping.get(deep, deep), mapping.get(cheap, cheap)


def quantize(plain):
    """Conv / Gemm weights stored as int8 with a per-output-channel scale and
    DequantizeLinear in front of their use (ONNX Runtime's QDQ format for weights; activations
    stay float). Returns (qdq model, the float model with the same dequantised weights)."""
    g = plain.graph
    init = {t.name: t for t in g.initializer}
    wnames = {n.input[1]: n.op_type for n in g.node if n.op_type in ("Conv", "Gemm")
              and n.input[1] in init}
    qnodes, qinits, finits = [], [], []
    deq = {}
    for t in g.initializer:
        if t.name not in wnames:
            qinits.append(t)
            finits.append(t)
            continue
        w = numpy_helper.to_array(t).astype(np.float64)
        axis = 0  # output channels (Conv: dim 0; Gemm with transB=1: dim 0)
        flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
        shape = [-1] + [1] * (w.ndim - 1)
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        zp = np.zeros(w.shape[0], dtype=np.int8)
        qinits += [numpy_helper.from_array(q, t.name + "_quantized"),
                   numpy_helper.from_array(scale, t.name + "_scale"),
                   numpy_helper.from_array(zp, t.name + "_zero_point")]
        qnodes.append(helper.make_node("DequantizeLinear", [t.name + "_quantized", t.name + "_scale",
                                                            t.name + "_zero_point"], [t.name],
                                       axis=axis, name=t.name + "_DequantizeLinear"))
        deq[t.name] = (q.astype(np.float32) * scale.reshape(shape)).astype(np.float32)
        finits.append(numpy_helper.from_array(deq[t.name], t.name))
    # Activations: QuantizeLinear -> DequantizeLinear (uint8) in front of every Conv's input.
    qinits += [numpy_helper.from_array(np.array(0.05, dtype=np.float32), "act_scale"),
               numpy_helper.from_array(np.array(128, dtype=np.uint8), "act_zero_point")]
    nodes = list(qnodes)
    for k, n in enumerate(g.node):
        n = copy.deepcopy(n)
        if n.op_type == "Conv":
            x = n.input[0]
            nodes.append(helper.make_node("QuantizeLinear", [x, "act_scale", "act_zero_point"],
                                          [f"{x}_q{k}"], name=f"{x}_QuantizeLinear{k}"))
            nodes.append(helper.make_node("DequantizeLinear", [f"{x}_q{k}", "act_scale",
                                                               "act_zero_point"],
                                          [f"{x}_dq{k}"], name=f"{x}_DequantizeLinear{k}"))
            n.input[0] = f"{x}_dq{k}"
        nodes.append(n)
    return rebuild(g, nodes, inits=qinits), rebuild(g, [copy.deepcopy(n) for n in g.node],
                                                   inits=finits)


def torch_logits(module, x):
    with torch.no_grad():
        return copy.deepcopy(module).double()(x.double())[0].tolist()


def save(m, path):
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main():
    out, name = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    ref_path = os.path.join(out, "matrix.json")
    h = script_hash(name)
    if os.path.exists(ref_path) and json.load(open(ref_path)).get("script_hash") == h:
        print(f"exporter matrix {name}: cached")
        return
    p = lambda v: os.path.join(out, v + ".onnx")
    model = build(name)

    # The test image: chelsea, resized to the model input (W x H) with PIL; the tensor is
    # pixels / 255 (camd: --resize stretch --mean 0 --std 1 at this size: no resampling).
    src = Image.open("/usr/lib/python3/dist-packages/skimage/data/chelsea.png").convert("RGB")
    img = src.resize((W, H), Image.BILINEAR)
    img.save(os.path.join(out, "image.png"))
    x = torch.from_numpy(np.asarray(img, dtype=np.float64) / 255.0).permute(2, 0, 1)[None]

    variants = {}

    def add(v, deep, cheap, **kw):
        variants[v] = dict(deep=deep, cheap=cheap, **kw)

    # family "plain"
    plain = export(model, p("plain"))
    deep, cheap = find_layers(plain.graph, name)
    deep_hw = shapes(plain)[deep][2:]
    add("plain", deep, cheap, family="plain", layout="NCHW")
    m = export(NHWCInput(model), p("nhwc_input"), nhwc=True)
    add("nhwc_input", *find_layers(m.graph, name), family="plain", layout="NHWC")
    save(channels_last(plain, {deep, cheap}), p("channels_last"))
    add("channels_last", deep + "_nhwc", cheap + "_nhwc", family="plain", layout="NCHW",
        layer_layout="NHWC")
    m, d, c = keras_opt(plain, deep, cheap)
    save(m, p("keras_opt"))
    add("keras_opt", d, c, family="plain", layout="NHWC", graph_activation="softmax")
    m, d, c = reshaped(plain, deep, cheap, shapes(plain)[deep])
    save(m, p("reshaped"))
    add("reshaped", d, c, family="plain", layout="NHWC", graph_activation="softmax",
        layer_layout="NHWC", undecided=True)
    m, d, c = keras_raw(plain, deep, cheap)
    save(m, p("keras_raw"))
    add("keras_raw", d, c, family="plain", layout="NHWC", graph_activation="softmax")
    m = export(nn.Sequential(model, nn.Softmax(1)), p("softmax"))
    add("softmax", *find_layers(m.graph, name), family="plain", layout="NCHW",
        graph_activation="softmax")
    m = export(nn.Sequential(model, nn.Sigmoid()), p("sigmoid"))
    add("sigmoid", *find_layers(m.graph, name), family="plain", layout="NCHW",
        graph_activation="sigmoid")
    m = export(model, p("free_hw"), free=True)
    add("free_hw", *find_layers(m.graph, name), family="plain", layout="NCHW", free=True)
    save(pool_head(plain, "AveragePool", deep_hw), p("avgpool_head"))
    add("avgpool_head", deep, cheap, family="plain", layout="NCHW")
    save(matmul_head(plain), p("matmul_head"))
    add("matmul_head", deep, cheap, family="plain", layout="NCHW")
    m, mapping = tf_names(copy.deepcopy(plain))
    save(m, p("colon_names"))
    add("colon_names", mapping[deep], mapping[cheap], family="plain", layout="NCHW",
        input_name="input_1:0", output_name="Identity:0")

    # family "qdq": int8 weights dequantised at load vs the same weights as floats
    qdq, plain_dq = quantize(plain)
    save(plain_dq, p("plain_dq"))
    add("plain_dq", deep, cheap, family="qdq", layout="NCHW")
    save(qdq, p("qdq"))
    add("qdq", deep, cheap, family="qdq", layout="NCHW")

    # family "pad_same"
    static = same_padded(model, True)
    m = export(static, p("pad_same_static"))
    add("pad_same_static", *find_layers(m.graph, name), family="pad_same", layout="NCHW")
    m = export(same_padded(model, False), p("pad_same"))
    add("pad_same", *find_layers(m.graph, name), family="pad_same", layout="NCHW")
    m = export(same_padded(model, False), p("pad_same_free"), free=True)
    add("pad_same_free", *find_layers(m.graph, name), family="pad_same", layout="NCHW",
        free=True)

    # family "gmp"
    gmp = GMP(model, name).eval()
    save(pool_head(plain, "GlobalMaxPool", deep_hw), p("gmp"))
    add("gmp", deep, cheap, family="gmp", layout="NCHW")
    save(pool_head(plain, "MaxPool", deep_hw), p("gmp_pool"))
    add("gmp_pool", deep, cheap, family="gmp", layout="NCHW")

    families = {
        "plain": {"reference": "plain", "logits": torch_logits(model, x)},
        "qdq": {"reference": "plain_dq", "logits": None},
        "pad_same": {"reference": "pad_same_static", "logits": torch_logits(static, x)},
        "gmp": {"reference": "gmp", "logits": torch_logits(gmp, x)},
    }
    ref = {"script_hash": h, "model": name, "height": H, "width": W, "families": families,
           "variants": variants}
    json.dump(ref, open(ref_path + ".tmp", "w"), indent=1)
    os.replace(ref_path + ".tmp", ref_path)
    print(f"exporter matrix {name}: {len(variants)} files")


if __name__ == "__main__":
    main()
