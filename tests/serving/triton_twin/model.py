"""Triton Python-backend twin of an onnxruntime_onnx model: runs the same model.onnx in onnxruntime.

The tritonserver of nvidia-pytriton has no onnxruntime backend; the conformance test gives each graph of the
repository `vaeops triton-repo` writes this model.py instead, in a venv (EXECUTION_ENV_PATH) with numpy<2.
"""

import os

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            results = self.session.run(None, feeds)
            tensors = [pb_utils.Tensor(name, value) for name, value in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
