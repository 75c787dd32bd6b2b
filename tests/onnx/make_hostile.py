#!/usr/bin/python3
"""Hostile ONNX files (made with Debian's python3-onnx helper) for tests/onnx/check_hostile.py.

Usage: /usr/bin/python3 tests/onnx/make_hostile.py OUT

Each file is small on disk; what it declares is not:
  overflow_dims.onnx     an initializer whose dimensions' product overflows 64 bits
  billions_declared.onnx an initializer declaring 10^10 float32 elements with no data
  huge_external.onnx     an initializer declaring 10^8 elements (400 MB) in a 4 KiB external file
  huge_activation.onnx   a Conv whose padding makes a 10^9-element output
  overflow_activation.onnx  a Conv padded by 2^61 (output dimensions overflow)
  huge_input.onnx        an image input declared 1x3x200000x200000
  big_initializer.onnx   a real 8 MiB initializer (refused under a 1 MiB max_model_bytes)
  deep_graph.onnx        a chain of 20000 Relu nodes (loads; bounded time and memory)
  nested_graphs.onnx     If-node subgraphs nested 100000 deep (the protobuf decoder recursion)
  cycle.onnx             two nodes that consume each other's outputs
Exits 77 when onnx is missing.
"""
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper
except ImportError as e:
    print(f"make_hostile: skipped, {e}", file=sys.stderr)
    sys.exit(77)


def model(nodes, inits=(), inp=None, out=None, opset=13):
    inp = inp or helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    out = out or helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "hostile", [inp], [out], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def save(m, out, name):
    with open(os.path.join(out, name), "wb") as f:
        f.write(m.SerializeToString())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    relu = helper.make_node("Relu", ["input"], ["output"])

    t = TensorProto()
    t.name, t.data_type = "w", TensorProto.FLOAT
    t.dims.extend([1 << 40, 1 << 30, 16])
    save(model([relu], [t]), out, "overflow_dims.onnx")

    t = TensorProto()
    t.name, t.data_type = "w", TensorProto.FLOAT
    t.dims.extend([100000, 100000])
    save(model([relu], [t]), out, "billions_declared.onnx")

    t = TensorProto()
    t.name, t.data_type = "w", TensorProto.FLOAT
    t.dims.extend([100, 1000000])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "huge_external.bin"), ("offset", "0"), ("length", str(4 * 10**8))):
        e = t.external_data.add()
        e.key, e.value = k, v
    with open(os.path.join(out, "huge_external.bin"), "wb") as f:
        f.write(b"\0" * 4096)
    save(model([relu], [t]), out, "huge_external.onnx")

    # A 1x1 convolution with 64 outputs whose padding makes them 64x4008x4008 (10^9 elements).
    w64 = helper.make_tensor("w", TensorProto.FLOAT, [64, 3, 1, 1], [1.0] * 192)
    conv = helper.make_node("Conv", ["input", "w"], ["output"], pads=[2000] * 4)
    save(model([conv], [w64]), out, "huge_activation.onnx")
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 1.0, 1.0])
    # Padding near 2^62: output dimensions whose product overflows.
    conv = helper.make_node("Conv", ["input", "w"], ["output"], pads=[1 << 61] * 4)
    save(model([conv], [w]), out, "overflow_activation.onnx")

    big_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 200000, 200000])
    save(model([relu], inp=big_in), out, "huge_input.onnx")

    w = helper.make_tensor("w", TensorProto.FLOAT, [2 << 20],
                           np.ones(2 << 20, dtype=np.float32).tobytes(), raw=True)
    add_w = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    save(model([helper.make_node("Add", ["input", "one"], ["output"])], [w, add_w]), out,
         "big_initializer.onnx")

    n = 20000
    nodes = [helper.make_node("Relu", ["input" if i == 0 else f"r{i - 1}"],
                              ["output" if i == n - 1 else f"r{i}"]) for i in range(n)]
    save(model(nodes), out, "deep_graph.onnx")

    # If nodes whose then-branch holds another If, 100000 levels deep: built bottom-up as bytes
    # (onnx's Python objects would recurse too deeply to serialise it).
    leaf = helper.make_graph([helper.make_node("Identity", ["input"], ["y"])], "leaf", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    g_bytes = leaf.SerializeToString()
    depth = 100000
    for _ in range(depth):
        # GraphProto { node (1): NodeProto { op_type (4): "If", attribute (5):
        #   AttributeProto { name (1): "then_branch", type (20): GRAPH, g (6): <g_bytes> } } }
        attr = (b"\x0a\x0bthen_branch" + b"\xa0\x01\x05" + b"\x32" + varint(len(g_bytes)) + g_bytes)
        node = b"\x22\x02If" + b"\x2a" + varint(len(attr)) + attr
        g_bytes = b"\x0a" + varint(len(node)) + node
    # The model's graph (ModelProto field 7) is the Relu graph with the nested If appended as
    # one more node (GraphProto field 1: repeated fields concatenate on the wire).
    top = model([relu])
    graph = top.graph.SerializeToString() + g_bytes
    head = onnx.ModelProto()
    head.ir_version = top.ir_version
    head.opset_import.extend(top.opset_import)
    raw = head.SerializeToString() + b"\x3a" + varint(len(graph)) + graph
    with open(os.path.join(out, "nested_graphs.onnx"), "wb") as f:
        f.write(raw)

    a = helper.make_node("Relu", ["b_out"], ["a_out"], name="a")
    b = helper.make_node("Relu", ["a_out"], ["b_out"], name="b")
    c = helper.make_node("Add", ["input", "a_out"], ["output"], name="c")
    save(model([a, b, c]), out, "cycle.onnx")
    print(f"hostile models written to {out}")


def varint(v):
    b = bytearray()
    while True:
        x = v & 0x7F
        v >>= 7
        if v:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


if __name__ == "__main__":
    main()
