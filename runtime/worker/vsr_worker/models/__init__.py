"""Super-resolution models behind one interface.

``load_model(name, scale, device)`` returns a ``torch.nn.Module`` that takes float RGB NCHW
in [0, 1] and returns the image upscaled by exactly ``scale``. ``available()`` lists names.
``name`` may also be the path of a ``.pth`` file. See docs/models.md.
"""

from vsr_worker.models.registry import MODELS, ModelInfo, available, convert_all, load_model, model_info

__all__ = ["MODELS", "ModelInfo", "available", "convert_all", "load_model", "model_info"]
