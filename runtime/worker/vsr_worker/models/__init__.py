"""Super-resolution models behind one interface.

``load_model(name, scale, device)`` returns a ``torch.nn.Module`` that takes float RGB NCHW
in [0, 1] and returns the image upscaled by exactly ``scale``. ``available()`` lists names.
"""

from vsr_worker.models.registry import MODELS, ModelInfo, available, load_model

__all__ = ["MODELS", "ModelInfo", "available", "load_model"]
