#!/usr/bin/python3
# Writes the tiny ONNX models (and numpy reference data) that tests/unit/test_onnx_load.c loads.
#
# Usage: /usr/bin/python3 make_models.py OUT_DIR
# Uses only the `onnx` helper API and numpy (no torch). Layout of OUT_DIR:
#   models/<name>.onnx            models (external.bin / link.bin beside them)
#   models/<name>.input.bin       float32 little-endian input, batch 2
#   models/<name>.output.bin      float32 reference output computed with numpy
#   outside.bin                   a file outside models/ that escaping paths point at
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
rng = np.random.default_rng(1234)


def save(model, path):
    onnx.save(model, path)


def write_f32(path, a):
    np.asarray(a, dtype="<f4").tofile(path)


def make(nodes, inputs, outputs, inits, name, opset=OPSET):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="camd-tests")
    return m


# ---- small CNN: Conv(3->4, 3x3, pad 1) -> Relu -> Dropout -> GAP -> Flatten -> Identity -> Gemm
def cnn_weights():
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5
    b = rng.standard_normal(4).astype(np.float32)
    fw = rng.standard_normal((5, 4)).astype(np.float32)
    fb = rng.standard_normal(5).astype(np.float32)
    return w, b, fw, fb


def cnn_model(w, b, fw, fb):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])
    inits = [numpy_helper.from_array(w, "conv.weight"), numpy_helper.from_array(b, "conv.bias"),
             numpy_helper.from_array(fw, "fc.weight"), numpy_helper.from_array(fb, "fc.bias")]
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("Dropout", ["relu_out"], ["drop_out"], name="drop"),
        helper.make_node("GlobalAveragePool", ["drop_out"], ["gap_out"], name="gap"),
        helper.make_node("Flatten", ["gap_out"], ["flat"], name="", axis=1),
        helper.make_node("Identity", ["flat"], ["flat_id"], name="ident"),
        helper.make_node("Gemm", ["flat_id", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         transB=1),
    ]
    return make(nodes, [x], [y], inits, "cnn")


def conv2d_ref(x, w, b, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=np.float64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    out = np.zeros((n, o, h, wd), dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            patch = xp[:, :, i:i + kh, j:j + kw]  # n c kh kw
            out[:, :, i, j] = np.tensordot(patch, w.astype(np.float64), axes=([1, 2, 3], [1, 2, 3]))
    return out + b[None, :, None, None]


def cnn_ref(x, w, b, fw, fb):
    h = np.maximum(conv2d_ref(x, w, b, 1), 0)
    gap = h.mean(axis=(2, 3))
    return gap @ fw.T.astype(np.float64) + fb


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT_DIR")
    out = sys.argv[1]
    md = os.path.join(out, "models")
    os.makedirs(md, exist_ok=True)

    # basic CNN + reference
    w, b, fw, fb = cnn_weights()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    ref = cnn_ref(x, w, b, fw, fb)
    save(cnn_model(w, b, fw, fb), os.path.join(md, "cnn.onnx"))
    write_f32(os.path.join(md, "cnn.input.bin"), x)
    write_f32(os.path.join(md, "cnn.output.bin"), ref)

    # same CNN, weights in an external file (offsets/lengths written by onnx)
    from onnx.external_data_helper import convert_model_to_external_data
    m = cnn_model(w, b, fw, fb)
    if os.path.exists(os.path.join(md, "external.bin")):
        os.remove(os.path.join(md, "external.bin"))  # onnx appends to an existing file
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location="external.bin",
                                   size_threshold=0)
    onnx.save_model(m, os.path.join(md, "external.onnx"))
    write_f32(os.path.join(md, "external.input.bin"), x)
    write_f32(os.path.join(md, "external.output.bin"), ref)

    # hostile external-data variants: each rewrites the location/length of conv.weight
    with open(os.path.join(out, "outside.bin"), "wb") as f:
        f.write(np.zeros(4096, dtype=np.uint8).tobytes())
    link = os.path.join(md, "link.bin")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("..", "outside.bin"), link)
    variants = {
        "ext_absolute": {"location": os.path.abspath(os.path.join(out, "outside.bin"))},
        "ext_dotdot": {"location": "../outside.bin"},
        "ext_dotdot_inner": {"location": "sub/../../outside.bin"},
        "ext_symlink": {"location": "link.bin"},
        "ext_missing": {"location": "no_such_file.bin"},
        "ext_past_end": {"offset": "100000"},
        "ext_bad_length": {"length": "8"},
    }
    for name, kv in variants.items():
        mm = onnx.load(os.path.join(md, "external.onnx"), load_external_data=False)
        for t in mm.graph.initializer:
            if t.name != "conv.weight":
                continue
            for e in t.external_data:
                if e.key in kv:
                    e.value = kv[e.key]
            keys = {e.key for e in t.external_data}
            for k, v in kv.items():
                if k not in keys:
                    t.external_data.add(key=k, value=v)
        onnx.save_model(mm, os.path.join(md, name + ".onnx"))

    # shape sub-graph (torch's x.view(x.size(0), -1)): Shape -> Gather -> Unsqueeze -> Concat ->
    # Reshape, plus a Constant node
    cw = rng.standard_normal((2, 2, 1, 1)).astype(np.float32)
    gw = rng.standard_normal((3, 18)).astype(np.float32)
    xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3, 3])
    ys = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Shape", ["c"], ["shp"], name="shape"),
        helper.make_node("Constant", [], ["zero"], name="const0",
                         value=numpy_helper.from_array(np.array(0, dtype=np.int64))),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Constant", [], ["axes0"], name="const_axes", value_ints=[0]),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq"),
        helper.make_node("Constant", [], ["minus1"], name="const_m1", value_ints=[-1]),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="concat", axis=0),
        helper.make_node("Reshape", ["c", "newshape"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "gw"], ["y"], name="fc", transB=1),
    ]
    sm = make(nodes, [xs], [ys], [numpy_helper.from_array(cw, "cw"),
                                  numpy_helper.from_array(gw, "gw")], "shape_subgraph")
    save(sm, os.path.join(md, "shape_subgraph.onnx"))
    xsd = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    c = np.einsum("oi,nihw->nohw", cw[:, :, 0, 0].astype(np.float64), xsd)
    write_f32(os.path.join(md, "shape_subgraph.input.bin"), xsd)
    write_f32(os.path.join(md, "shape_subgraph.output.bin"), c.reshape(2, -1) @ gw.T)

    # folding: every evaluator op on constants feeds one Add with the real input
    xf = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])
    yf = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])
    i64 = lambda a: numpy_helper.from_array(np.array(a, dtype=np.int64))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),            # [1, 6]
        helper.make_node("Constant", [], ["one"], value=i64(1)),           # unnamed node
        helper.make_node("Gather", ["s", "one"], ["six"], name="g"),       # 6 (scalar)
        helper.make_node("Constant", [], ["zero"], name="c0", value_int=0),
        helper.make_node("Constant", [], ["step"], name="c1", value=i64(1)),
        helper.make_node("Range", ["zero", "six", "step"], ["r"], name="range"),  # [0..5]
        helper.make_node("Cast", ["r"], ["rf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["three"], name="c3", value=i64(3)),
        helper.make_node("Equal", ["r", "three"], ["is3"], name="eq"),
        helper.make_node("Constant", [], ["ten"], name="c10", value_float=10.0),
        helper.make_node("Where", ["is3", "ten", "rf"], ["w"], name="where"),   # [0,1,2,10,4,5]
        helper.make_node("Constant", [], ["ax"], name="cax", value_ints=[0]),
        helper.make_node("Unsqueeze", ["six", "ax"], ["six1"], name="unsq"),  # [6]
        helper.make_node("Concat", ["one1", "six1"], ["shape16"], name="cat", axis=0),
        helper.make_node("ConstantOfShape", ["shape16"], ["twos"], name="cos",
                         value=numpy_helper.from_array(np.array([2.0], dtype=np.float32))),
        helper.make_node("Mul", ["twos", "w"], ["m"], name="mul"),           # [[0,2,4,20,8,10]]
        helper.make_node("Squeeze", ["m", "ax"], ["sq"], name="squeeze"),    # [0,2,4,20,8,10]
        helper.make_node("Slice", ["rf", "starts", "ends", "ax", "steps"], ["sl"],
                         name="slice"),                                      # [1,3,5]
        helper.make_node("Concat", ["sl", "sl"], ["z"], name="cat2", axis=0),  # [1,3,5,1,3,5]
        helper.make_node("Div", ["six", "two"], ["three_b"], name="div"),     # 3
        helper.make_node("Sub", ["six", "three_b"], ["three_c"], name="sub"),  # 3
        helper.make_node("Reshape", ["z", "rs"], ["z2"], name="reshape"),    # [2,3]
        helper.make_node("Flatten", ["z2"], ["z3"], name="flatten", axis=0),  # [1,6]
        helper.make_node("Add", ["x", "sq"], ["a1"], name="add1"),
        helper.make_node("Add", ["a1", "z3"], ["y"], name="add2"),
    ]
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "one1"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "starts"),
             numpy_helper.from_array(np.array([2**63 - 1], dtype=np.int64), "ends"),
             numpy_helper.from_array(np.array([2], dtype=np.int64), "steps"),
             numpy_helper.from_array(np.array(2, dtype=np.int64), "two"),
             numpy_helper.from_array(np.array([2, -1], dtype=np.int64), "rs")]
    fm = make(nodes, [xf], [yf], inits, "fold")
    save(fm, os.path.join(md, "fold.onnx"))
    xfd = rng.standard_normal((2, 6)).astype(np.float32)
    write_f32(os.path.join(md, "fold.input.bin"), xfd)
    write_f32(os.path.join(md, "fold.output.bin"),
              xfd + np.array([0, 2, 4, 20, 8, 10]) + np.array([1, 3, 5, 1, 3, 5]))

    # Expand, Tile and Where on activations (run-time engine ops, not folded): reference numpy
    xr = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4])
    yr = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8])
    cond = rng.random((3, 8)) < 0.5
    nodes = [
        helper.make_node("Expand", ["x", "shape134"], ["e"], name="expand_act"),
        helper.make_node("Tile", ["e", "reps112"], ["t"], name="tile_act"),
        helper.make_node("Mul", ["t", "half"], ["th"], name="mul"),
        helper.make_node("Where", ["cond", "t", "th"], ["y"], name="where_act"),
    ]
    inits = [numpy_helper.from_array(np.array([1, 3, 4], dtype=np.int64), "shape134"),
             numpy_helper.from_array(np.array([1, 1, 2], dtype=np.int64), "reps112"),
             numpy_helper.from_array(np.array(-0.5, dtype=np.float32), "half"),
             numpy_helper.from_array(cond, "cond")]
    save(make(nodes, [xr], [yr], inits, "rtops"), os.path.join(md, "rtops.onnx"))
    xrd = rng.standard_normal((2, 1, 4)).astype(np.float32)
    tr = np.tile(np.broadcast_to(xrd.astype(np.float64), (2, 3, 4)), (1, 1, 2))
    write_f32(os.path.join(md, "rtops.input.bin"), xrd)
    write_f32(os.path.join(md, "rtops.output.bin"), np.where(cond[None], tr, -0.5 * tr))
    # d(sum(seed * y))/dx: Where passes seed (cond) or -0.5 seed, Tile and Expand sum it back
    seed = rng.standard_normal((2, 3, 8))
    gw = seed * np.where(cond[None], 1.0, -0.5)
    write_f32(os.path.join(md, "rtops.seed.bin"), seed)
    write_f32(os.path.join(md, "rtops.grad.bin"), gw.reshape(2, 3, 2, 4).sum(axis=(1, 2))[:, None])

    # unsupported operators: all must be listed in one message
    xu = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    yu = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="ok_relu"),
        helper.make_node("Foo", ["r"], ["f"], name="n1"),
        helper.make_node("Bar", ["f"], ["b1"], name="a"),
        helper.make_node("Bar", ["b1"], ["b2"], name="b"),
        helper.make_node("Einsum", ["b2", "b2"], ["e"], name="ein_elementwise",
                         equation="ab,ab->ab"),
        helper.make_node("Range", ["e", "e", "e"], ["g"], name="range_act"),
        helper.make_node("FusedThing", ["g"], ["y"], name="custom", domain="com.example"),
    ]
    um = helper.make_graph(nodes, "unsupported", [xu], [yu],
                           [numpy_helper.from_array(np.array([1, 1], dtype=np.int64), "idx")])
    um = helper.make_model(um, opset_imports=[helper.make_opsetid("", OPSET),
                                              helper.make_opsetid("com.example", 1)])
    save(um, os.path.join(md, "unsupported.onnx"))

    # an initializer also listed as a graph input (IR < 4 style) is a constant, not an input
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    wi = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [4])
    yi = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    bias = np.array([1.5, -2.0, 0.25, 3.0], dtype=np.float32)
    im = make([helper.make_node("Add", ["x", "bias"], ["y"], name="add")], [xi, wi], [yi],
              [numpy_helper.from_array(bias, "bias")], "init_input")
    save(im, os.path.join(md, "init_input.onnx"))
    xid = rng.standard_normal((2, 4)).astype(np.float32)
    write_f32(os.path.join(md, "init_input.input.bin"), xid)
    write_f32(os.path.join(md, "init_input.output.bin"), xid + bias)

    # typed fields and conversions: float16 / double / int32 initializers (no raw_data)
    xt = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    yt = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    h = np.array([0.5, -1.25, 65504.0], dtype=np.float16)
    t_h = TensorProto(name="h", data_type=TensorProto.FLOAT16, dims=[3])
    t_h.int32_data.extend(h.view(np.uint16).astype(np.int32).tolist())  # float16 bits, per spec
    t_d = helper.make_tensor("d", TensorProto.DOUBLE, [3], [0.1, 0.2, -0.3])
    t_i = helper.make_tensor("i32", TensorProto.INT32, [2], [3, 1])
    nodes = [helper.make_node("Add", ["x", "h"], ["a"], name="add_h"),
             helper.make_node("Add", ["a", "d"], ["a2"], name="add_d"),
             helper.make_node("Cast", ["i32"], ["i64"], name="cast", to=TensorProto.INT64),
             helper.make_node("Reshape", ["a2", "shp"], ["y"], name="reshape")]
    tm = make(nodes, [xt], [yt], [t_h, t_d, t_i, helper.make_tensor("shp", TensorProto.INT64, [2], [1, 3])],
              "typed")
    save(tm, os.path.join(md, "typed.onnx"))
    xtd = rng.standard_normal((2, 3)).astype(np.float32)
    write_f32(os.path.join(md, "typed.input.bin"), xtd)
    write_f32(os.path.join(md, "typed.output.bin"), xtd + h.astype(np.float32) +
              np.array([0.1, 0.2, -0.3], dtype=np.float32))

    # Cast-to-float on an activation is an alias; Dropout producing a graph output is an Identity
    xa = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])
    ya = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Cast", ["r"], ["c"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Dropout", ["c"], ["y"], name="drop")]
    save(make(nodes, [xa], [ya], [], "alias_out"), os.path.join(md, "alias_out.onnx"))
    xad = rng.standard_normal((2, 5)).astype(np.float32)
    write_f32(os.path.join(md, "alias_out.input.bin"), xad)
    write_f32(os.path.join(md, "alias_out.output.bin"), np.maximum(xad, 0))

    # symbolic spatial size: must be rejected with a message about fixed input size
    xd = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    yd = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    save(make([helper.make_node("Relu", ["x"], ["y"], name="relu")], [xd], [yd], [], "dynamic"),
         os.path.join(md, "dynamic.onnx"))

    # ---- shape arithmetic folded at load (issue 15) ----
    # fold_math: every loader-only arithmetic op on constants, each result added to the input
    xm = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])
    ym = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])
    f32 = lambda a, n: numpy_helper.from_array(np.array(a, dtype=np.float32), n)
    i64n = lambda a, n: numpy_helper.from_array(np.array(a, dtype=np.int64), n)
    vals = np.array([-2.5, -0.5, 0.5, 1.5, 2.5, 7.25], dtype=np.float32)
    ints = np.array([-7, -2, 0, 3, 8, 13], dtype=np.int64)
    terms = {  # name -> (nodes, numpy value of the float result [6])
        "ceil": ([helper.make_node("Ceil", ["vals"], ["t_ceil"], name="ceil")], np.ceil(vals)),
        "floor": ([helper.make_node("Floor", ["vals"], ["t_floor"], name="floor")],
                  np.floor(vals)),
        "round": ([helper.make_node("Round", ["vals"], ["t_round"], name="round")],
                  np.round(vals)),  # half to even, like ONNX
        "neg": ([helper.make_node("Neg", ["vals"], ["t_neg"], name="neg")], -vals),
        "abs": ([helper.make_node("Abs", ["vals"], ["t_abs"], name="abs")], np.abs(vals)),
        "sqrt": ([helper.make_node("Abs", ["vals"], ["abs2"], name="abs2"),
                  helper.make_node("Sqrt", ["abs2"], ["t_sqrt"], name="sqrt")],
                 np.sqrt(np.abs(vals))),
        "recip": ([helper.make_node("Reciprocal", ["vals"], ["t_recip"], name="recip")],
                  1.0 / vals),
        "sign": ([helper.make_node("Sign", ["vals"], ["t_sign"], name="sign")], np.sign(vals)),
        "max": ([helper.make_node("Max", ["vals", "zero_f", "vals_rev"], ["t_max"], name="max")],
                 np.maximum(np.maximum(vals, 0), vals[::-1])),
        "min": ([helper.make_node("Min", ["vals"], ["t_min"], name="min1")], vals),
        "pow": ([helper.make_node("Pow", ["vals", "two_f"], ["t_pow"], name="pow")], vals ** 2),
        "modf": ([helper.make_node("Mod", ["vals", "two_f"], ["t_modf"], name="modf", fmod=1)],
                 np.fmod(vals, 2.0)),
        "clipf": ([helper.make_node("Clip", ["vals", "m1_f", "two_f"], ["t_clipf"], name="clipf")],
                  np.clip(vals, -1.0, 2.0)),
        "tr": ([helper.make_node("Reshape", ["vals", "s23"], ["v23"], name="r23"),
                helper.make_node("Transpose", ["v23"], ["v32"], name="tr", perm=[1, 0]),
                helper.make_node("Flatten", ["v32"], ["t_tr"], name="fl_tr", axis=0)],
               vals.reshape(2, 3).T.reshape(-1)),
        # integers: results cast to float
        "imod": ([helper.make_node("Mod", ["ints", "three"], ["imod"], name="imod"),
                  helper.make_node("Cast", ["imod"], ["t_imod"], name="c_imod", to=1)],
                 np.mod(ints, 3)),  # Python sign (the divisor's)
        "ifmod": ([helper.make_node("Mod", ["ints", "three"], ["ifmod"], name="ifmod", fmod=1),
                   helper.make_node("Cast", ["ifmod"], ["t_ifmod"], name="c_ifmod", to=1)],
                  np.fmod(ints, 3)),
        "idiv": ([helper.make_node("Div", ["ints", "three"], ["idiv"], name="idiv"),
                  helper.make_node("Cast", ["idiv"], ["t_idiv"], name="c_idiv", to=1)],
                 np.trunc(ints / 3)),  # truncation toward zero
        "ipow": ([helper.make_node("Pow", ["ints", "two"], ["ipow"], name="ipow"),
                  helper.make_node("Cast", ["ipow"], ["t_ipow"], name="c_ipow", to=1)],
                 ints ** 2),
        "iclip": ([helper.make_node("Clip", ["ints", "zero", "three"], ["iclip"], name="iclip"),
                   helper.make_node("Cast", ["iclip"], ["t_iclip"], name="c_iclip", to=1)],
                  np.clip(ints, 0, 3)),
        "ineg": ([helper.make_node("Neg", ["ints"], ["ineg"], name="ineg"),
                  helper.make_node("Abs", ["ineg"], ["iabs"], name="iabs"),
                  helper.make_node("Cast", ["iabs"], ["t_iabs"], name="c_iabs", to=1)],
                 np.abs(ints)),
        "logic": ([helper.make_node("LessOrEqual", ["ints", "zero"], ["le"], name="le"),
                   helper.make_node("GreaterOrEqual", ["ints", "three"], ["ge"], name="ge"),
                   helper.make_node("Or", ["le", "ge"], ["or"], name="or"),
                   helper.make_node("Not", ["or"], ["not"], name="not"),
                   helper.make_node("Xor", ["not", "ge"], ["xor"], name="xor"),
                   helper.make_node("And", ["xor", "le"], ["and"], name="and"),
                   helper.make_node("Where", ["xor", "ints", "three"], ["w"], name="wh"),
                   helper.make_node("Cast", ["w"], ["t_logic"], name="c_logic", to=1)],
                  np.where(~((ints <= 0) | (ints >= 3)) ^ (ints >= 3), ints, 3)),
        "reduce": ([helper.make_node("Reshape", ["ints", "s23"], ["i23"], name="ri23"),
                    helper.make_node("ReduceSum", ["i23", "ax1"], ["rs"], name="rsum", keepdims=0),
                    helper.make_node("ReduceProd", ["i23"], ["rp"], name="rprod", axes=[0],
                                     keepdims=0),
                    helper.make_node("ReduceMax", ["i23"], ["rmx"], name="rmax", keepdims=0),
                    helper.make_node("ReduceMin", ["i23"], ["rmn"], name="rmin", axes=[1],
                                     keepdims=1),
                    helper.make_node("Flatten", ["rmn"], ["rmn1"], name="flmin", axis=0),
                    helper.make_node("Reshape", ["rmx", "one1"], ["rmx1"], name="rmx1"),
                    helper.make_node("Concat", ["rs", "rp", "rmx1"], ["cat6a"], name="cat6a",
                                     axis=0),
                    helper.make_node("Reshape", ["cat6a", "s16"], ["cat6b"], name="r6"),
                    helper.make_node("Reshape", ["rmn1", "s12"], ["rmn2"], name="rmn2"),
                    helper.make_node("Concat", ["cat6b", "rmn2"], ["cat8"], name="cat8", axis=1),
                    helper.make_node("Slice", ["cat8", "zero1", "six1", "one1"], ["sl6"],
                                     name="sl6"),
                    helper.make_node("Reshape", ["sl6", "s6"], ["sl6b"], name="sl6b"),
                    helper.make_node("Cast", ["sl6b"], ["t_reduce"], name="c_red", to=1)],
                   np.array([ints.reshape(2, 3).sum(1)[0], ints.reshape(2, 3).sum(1)[1],
                             ints.reshape(2, 3).prod(0)[0], ints.reshape(2, 3).prod(0)[1],
                             ints.reshape(2, 3).prod(0)[2], ints.max()])),
        "expand": ([helper.make_node("Expand", ["col2", "s23"], ["e23"], name="expand"),
                    helper.make_node("Tile", ["e23", "t12"], ["e26"], name="tile"),
                    helper.make_node("ReduceMean", ["e26"], ["em"], name="emean", axes=[0],
                                     keepdims=0),
                    helper.make_node("Identity", ["em"], ["t_expand"], name="eid")],
                   np.tile(np.broadcast_to(np.array([[1.0], [4.0]]), (2, 3)), (1, 2)).mean(0)),
    }
    nodes, acc = [], "x"
    for k, (ns, _) in enumerate(terms.values()):
        nodes += ns
        nodes.append(helper.make_node("Add", [acc, ns[-1].output[0]], [f"acc{k}"], name=f"acc{k}"))
        acc = f"acc{k}"
    nodes.append(helper.make_node("Identity", [acc], ["y"], name="out"))
    inits = [f32(vals, "vals"), f32(vals[::-1].copy(), "vals_rev"), f32(0.0, "zero_f"),
             f32(2.0, "two_f"), f32(-1.0, "m1_f"), i64n(ints, "ints"), i64n(3, "three"),
             i64n(2, "two"), i64n(0, "zero"), i64n([2, 3], "s23"), i64n([1], "ax1"),
             i64n([1], "one1"), i64n([1, 6], "s16"), i64n([1, 2], "s12"), i64n([0], "zero1"),
             i64n([6], "six1"), i64n([6], "s6"), i64n([1, 2], "t12"),
             f32([[1.0], [4.0]], "col2")]
    save(make(nodes, [xm], [ym], inits, "fold_math"), os.path.join(md, "fold_math.onnx"))
    xmd = rng.standard_normal((2, 6)).astype(np.float32)
    total = sum(np.asarray(v, np.float64) for _, v in terms.values())
    write_f32(os.path.join(md, "fold_math.input.bin"), xmd)
    write_f32(os.path.join(md, "fold_math.output.bin"), xmd + total)

    # scatternd: Swin's attention-mask construction, ScatterND on constants (element indices,
    # then a whole row), folded at load; y = x + the scattered tensor (numpy's reference).
    xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])
    ys = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3])
    nodes = [
        helper.make_node("ScatterND", ["zeros", "ie", "ue"], ["s1"], name="scatter_elems"),
        helper.make_node("ScatterND", ["s1", "ir", "ur"], ["s2"], name="scatter_row"),
        helper.make_node("Add", ["x", "s2"], ["y"], name="add"),
    ]
    inits = [numpy_helper.from_array(np.zeros((2, 3), np.float32), "zeros"),
             numpy_helper.from_array(np.array([[1, 2], [0, -3]], np.int64), "ie"),
             numpy_helper.from_array(np.array([5, 7], np.float32), "ue"),
             numpy_helper.from_array(np.array([[-1]], np.int64), "ir"),
             numpy_helper.from_array(np.array([[1, 2, 3]], np.float32), "ur")]
    save(make(nodes, [xs], [ys], inits, "scatternd"), os.path.join(md, "scatternd.onnx"))
    ref = np.zeros((2, 3), np.float32)
    ref[1, 2], ref[0, 0] = 5, 7
    ref[1, :] = [1, 2, 3]
    xsd = rng.standard_normal((2, 2, 3)).astype(np.float32)
    write_f32(os.path.join(md, "scatternd.input.bin"), xsd)
    write_f32(os.path.join(md, "scatternd.output.bin"), xsd + ref)

    # einsum: MaxViT's attention products, run as MatMul (B transposed for the first):
    # s = einsum("bhid,bhjd->bhij", x, x + c), y = einsum("bhij,bhjd->bhid", s, x) (numpy's).
    xe = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])
    ye = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3, 4])
    ce = rng.standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Add", ["x", "c"], ["k"], name="keys"),
        helper.make_node("Einsum", ["x", "k"], ["s"], name="scores",
                         equation="b h i d, b h j d -> b h i j"),
        helper.make_node("Einsum", ["s", "x"], ["y"], name="mix", equation="bhij,bhjd->bhid"),
    ]
    save(make(nodes, [xe], [ye], [numpy_helper.from_array(ce, "c")], "einsum"),
         os.path.join(md, "einsum.onnx"))
    xed = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    x64 = xed.astype(np.float64)
    s64 = np.einsum("bhid,bhjd->bhij", x64, x64 + ce)
    write_f32(os.path.join(md, "einsum.input.bin"), xed)
    write_f32(os.path.join(md, "einsum.output.bin"), np.einsum("bhij,bhjd->bhid", s64, x64))

    # pad_same: TF "SAME" padding computed from a free input size (timm's pad_same as traced by
    # torch.onnx): Shape -> Gather -> Cast -> Div -> Ceil -> ... -> Max -> Cast -> Concat -> Pad,
    # then a stride-2 conv with no padding of its own.
    k, st = 3, 2
    pw = rng.standard_normal((2, 2, k, k)).astype(np.float32)
    xp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])
    yp = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, "OH", "OW"])
    nodes = [helper.make_node("Shape", ["x"], ["shp"], name="shape")]
    pads = []
    for ax, nm in ((2, "h"), (3, "w")):
        nodes += [
            helper.make_node("Gather", ["shp", f"i{ax}"], [f"{nm}"], name=f"g_{nm}", axis=0),
            helper.make_node("Cast", [nm], [f"{nm}f"], name=f"cast_{nm}", to=1),
            helper.make_node("Div", [f"{nm}f", "s_f"], [f"{nm}d"], name=f"div_{nm}"),
            helper.make_node("Ceil", [f"{nm}d"], [f"{nm}c"], name=f"ceil_{nm}"),
            helper.make_node("Sub", [f"{nm}c", "one_f"], [f"{nm}c1"], name=f"sub_{nm}"),
            helper.make_node("Mul", [f"{nm}c1", "s_f"], [f"{nm}m"], name=f"mul_{nm}"),
            helper.make_node("Add", [f"{nm}m", "k_f"], [f"{nm}a"], name=f"add_{nm}"),
            helper.make_node("Sub", [f"{nm}a", f"{nm}f"], [f"{nm}p"], name=f"subx_{nm}"),
            helper.make_node("Max", [f"{nm}p", "zero_f"], [f"{nm}pm"], name=f"max_{nm}"),
            helper.make_node("Cast", [f"{nm}pm"], [f"{nm}pi"], name=f"casti_{nm}", to=7),
            helper.make_node("Div", [f"{nm}pi", "two"], [f"{nm}lo"], name=f"half_{nm}"),
            helper.make_node("Sub", [f"{nm}pi", f"{nm}lo"], [f"{nm}hi"], name=f"rest_{nm}"),
            helper.make_node("Unsqueeze", [f"{nm}lo", "ax0"], [f"{nm}lo1"], name=f"u1_{nm}"),
            helper.make_node("Unsqueeze", [f"{nm}hi", "ax0"], [f"{nm}hi1"], name=f"u2_{nm}"),
        ]
        pads.append((f"{nm}lo1", f"{nm}hi1"))
    (hlo, hhi), (wlo, whi) = pads
    nodes += [
        helper.make_node("Concat", ["z2", hlo, wlo, "z2", hhi, whi], ["pads"], name="cat",
                         axis=0),
        helper.make_node("Pad", ["x", "pads"], ["xpad"], name="pad", mode="constant"),
        helper.make_node("Conv", ["xpad", "pw"], ["y"], name="conv", kernel_shape=[k, k],
                         strides=[st, st]),
    ]
    inits = [i64n(2, "i2"), i64n(3, "i3"), f32(float(st), "s_f"), f32(1.0, "one_f"),
             f32(float(k), "k_f"), f32(0.0, "zero_f"), i64n(2, "two"), i64n([0], "ax0"),
             i64n([0, 0], "z2"), numpy_helper.from_array(pw, "pw")]
    save(make(nodes, [xp], [yp], inits, "pad_same"), os.path.join(md, "pad_same.onnx"))
    hh, ww = 7, 10  # loaded with input_height 7, input_width 10
    xpd = rng.standard_normal((2, 2, hh, ww)).astype(np.float32)

    def same(n):
        t = max((math.ceil(n / st) - 1) * st + k - n, 0)
        return t // 2, t - t // 2

    (pt, pb), (pl, pr) = same(hh), same(ww)
    xpp = np.pad(xpd.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((2, 2, (xpp.shape[2] - k) // st + 1, (xpp.shape[3] - k) // st + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = xpp[:, :, i * st:i * st + k, j * st:j * st + k]
            out[:, :, i, j] = np.tensordot(patch, pw.astype(np.float64), axes=([1, 2, 3], [1, 2, 3]))
    write_f32(os.path.join(md, "pad_same.input.bin"), xpd)
    write_f32(os.path.join(md, "pad_same.output.bin"), out)

    # channels-last image input: [N, 5, 7, 3] -> Transpose -> Conv -> Relu -> Transpose (NHWC)
    # -> ReduceMean(1, 2) -> MatMul; the layouts follow through the graph.
    cwn = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fwn = rng.standard_normal((4, 2)).astype(np.float32)
    xn = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 7, 3])
    yn = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    nodes = [helper.make_node("Transpose", ["x"], ["x_nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["x_nchw", "cw"], ["c"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Transpose", ["r"], ["r_nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Relu", ["r_nhwc"], ["r2"], name="relu2"),
             helper.make_node("Reshape", ["r2", "same4"], ["r3"], name="view"),
             helper.make_node("ReduceMean", ["r3"], ["m"], name="gap", axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "fw"], ["y"], name="fc")]
    save(make(nodes, [xn], [yn], [numpy_helper.from_array(cwn, "cw"),
                                  numpy_helper.from_array(fwn, "fw"),
                                  i64n([1, 5, 7, 4], "same4")], "nhwc"),
         os.path.join(md, "nhwc.onnx"))
    # channels-last with a free size: [N, H, W, 3] is NHWC by its trailing 3
    xnf = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "H", "W", 3])
    save(make([helper.make_node("Relu", ["x"], ["y"], name="relu")], [xnf], [xnf], [],
              "nhwc_free"), os.path.join(md, "nhwc_free.onnx"))
    # an input whose layout its shape cannot tell
    xa4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "a", "b", "c"])
    save(make([helper.make_node("Relu", ["x"], ["y"], name="relu")], [xa4], [xa4], [],
              "ambiguous"), os.path.join(md, "ambiguous.onnx"))

    # QDQ: int8 per-channel weights behind DequantizeLinear, a Q/DQ pair on the activation
    qw = rng.integers(-127, 128, size=(3, 2, 1, 1)).astype(np.int8)
    qs = np.array([0.02, 0.5, 0.125], dtype=np.float32)
    qz = np.array([0, 3, -2], dtype=np.int8)
    xq = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 2, 2])
    yq = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 2, 2])
    nodes = [helper.make_node("DequantizeLinear", ["qw", "qs", "qz"], ["w"], name="dq_w", axis=0),
             helper.make_node("QuantizeLinear", ["x", "as", "az"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "as", "az"], ["xdq"], name="dq_x"),
             helper.make_node("Conv", ["xdq", "w"], ["y"], name="conv", kernel_shape=[1, 1])]
    save(make(nodes, [xq], [yq], [numpy_helper.from_array(qw, "qw"),
                                  numpy_helper.from_array(qs, "qs"),
                                  numpy_helper.from_array(qz, "qz"),
                                  f32(0.1, "as"),
                                  numpy_helper.from_array(np.array(128, np.uint8), "az")],
              "qdq"), os.path.join(md, "qdq.onnx"))
    xqd = rng.standard_normal((2, 2, 2, 2)).astype(np.float32)
    wd = (qw.astype(np.float64) - qz.reshape(3, 1, 1, 1)) * qs.reshape(3, 1, 1, 1)
    write_f32(os.path.join(md, "qdq.input.bin"), xqd)
    write_f32(os.path.join(md, "qdq.output.bin"),
              np.einsum("oi,nihw->nohw", wd[:, :, 0, 0], xqd.astype(np.float64)))

    # folding errors: an integer division by zero in a shape computation
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Sub", ["s", "s"], ["zeros"], name="sub"),
             helper.make_node("Div", ["s", "zeros"], ["bad"], name="div_by_zero"),
             helper.make_node("Reshape", ["x", "bad"], ["y"], name="reshape")]
    save(make(nodes, [xi], [yi], [], "fold_div0"), os.path.join(md, "fold_div0.onnx"))

    # raw_data whose byte count does not match dims
    bad = numpy_helper.from_array(np.zeros(4, dtype=np.float32), "bias")
    bad.dims[0] = 5
    save(make([helper.make_node("Add", ["x", "bias"], ["y"], name="add")], [xi], [yi], [bad],
              "bad_raw"), os.path.join(md, "bad_raw.onnx"))


    # Pads that pad nothing are their input (PyTorch's AvgPool2d export: DenseNet's transitions):
    # zeros as an input (reflect mode), with axes (opset 18), as the graph output (an Identity),
    # as an attribute (Pad-2, opset 10); a Pad of ones stays a Pad.
    i64 = lambda a, n: numpy_helper.from_array(np.array(a, dtype=np.int64), n)
    xz = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 6])
    yz = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Pad", ["r", "z8"], ["p"], name="pad_zero", mode="reflect"),
             helper.make_node("Pad", ["p", "z2", "", "ax3"], ["pa"], name="pad_axes"),
             helper.make_node("AveragePool", ["pa"], ["a"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Pad", ["a", "ones", "cv"], ["q"], name="pad_ones"),
             helper.make_node("Pad", ["q", "z8"], ["y"], name="pad_out")]
    save(make(nodes, [xz], [yz], [i64([0] * 8, "z8"), i64([0, 0], "z2"), i64([3], "ax3"),
                                  i64([0, 0, 1, 1, 0, 0, 0, 0], "ones"), f32(0.5, "cv")],
              "pad_noop", opset=18), os.path.join(md, "pad_noop.onnx"))
    xzd = rng.standard_normal((2, 2, 4, 6)).astype(np.float32)
    rz = np.maximum(xzd.astype(np.float64), 0)
    az = rz.reshape(2, 2, 2, 2, 3, 2).mean(axis=(3, 5))
    write_f32(os.path.join(md, "pad_noop.input.bin"), xzd)
    write_f32(os.path.join(md, "pad_noop.output.bin"),
              np.pad(az, ((0, 0), (0, 0), (1, 0), (1, 0)), constant_values=0.5))
    x2 = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("Pad", ["x"], ["p"], name="pad_attr", pads=[0, 0, 0, 0]),
             helper.make_node("Relu", ["p"], ["y"], name="relu")]
    save(make(nodes, [x2], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [],
              "pad_noop_v2", opset=10), os.path.join(md, "pad_noop_v2.onnx"))
    x2d = rng.standard_normal((2, 3)).astype(np.float32)
    write_f32(os.path.join(md, "pad_noop_v2.input.bin"), x2d)
    write_f32(os.path.join(md, "pad_noop_v2.output.bin"), np.maximum(x2d, 0))

if __name__ == "__main__":
    main()
