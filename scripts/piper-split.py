"""Cuts a Piper (VITS) voice into its two halves, once, at install time, so that the server can
hand out a sentence's speech while it is still being made.

Why: a Piper model is one graph from phoneme ids to the whole waveform, so nothing of a
sentence can be heard before all of it is made (~220 ms for a five-word sentence on one core
here). Its last part, the vocoder (`dec`, HiFi-GAN), only convolves the acoustic frames the
first part makes: it can run on a few frames at a time, with some frames of context on each
side, and give the same samples. Cut at the vocoder's input, the first part (`front`: the
text encoder, the duration predictor and the flow) runs once per sentence, and the vocoder
runs on the first frames at once (the first audio comes after ~80 ms), then on the rest.

    python piper-split.py voice.onnx front.onnx decoder.onnx
"""

import sys

import onnx
import onnx.utils


def main(src, front, decoder):
    model = onnx.load(src, load_external_data=False)
    pre = [n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith("/dec/conv_pre")]
    if len(pre) != 1:
        sys.exit(f"{src}: no single vocoder input convolution (/dec/conv_pre) to cut at")
    frames = pre[0].input[0]
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    onnx.utils.extract_model(src, front, inputs, [frames])
    onnx.utils.extract_model(src, decoder, [frames], outputs)
    # The server finds the halves' tensors by these names.
    for path, old, new in ((front, frames, "frames"), (decoder, frames, "frames")):
        m = onnx.load(path)
        for node in m.graph.node:
            node.input[:] = [new if x == old else x for x in node.input]
            node.output[:] = [new if x == old else x for x in node.output]
        for v in list(m.graph.input) + list(m.graph.output):
            if v.name == old:
                v.name = new
        onnx.checker.check_model(m)
        onnx.save(m, path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
