"""Folds a model's constants once, at install time, and puts its weights beside it in a file of
their own that ONNX Runtime maps into memory instead of reading.

Why: Moonshine's weights are int8 in the model and reach its MatMuls through DequantizeLinear
nodes. Folded at every load, each recognition worker held its own fp32 copy (~270 MB). Folded
here, they are plain fp32 initializers in `<model>.weights`, each large one at a page-aligned
offset, which ONNX Runtime maps (read-only, shared) and computes from in place: every worker of
the process, and every process on the machine, shares the one copy in the page cache.

Only the basic optimizations run here (constant folding and other rewrites that hold on any
CPU); the server's load applies the rest.

    python fold-weights.py in.onnx out.onnx     # writes out.onnx and out.weights
"""

import os
import sys

import onnxruntime as ort


def main(src, dst):
    weights = os.path.splitext(os.path.basename(dst))[0] + ".weights"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = dst
    # Relative to the saved model; ONNX Runtime aligns tensors of 1 MB and more to a page.
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", weights)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "4096")
    ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
