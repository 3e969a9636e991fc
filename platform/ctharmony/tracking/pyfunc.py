"""The MLflow ``pyfunc`` face of a logged :class:`HUModel` (numpy HU slices in, HU/probability out).

Example::

    import mlflow, numpy as np
    mlflow.pyfunc.load_model("models:/ctharmony-harmonizer/1").predict(np.zeros((1, 1, 64, 64), "f4"))
"""

from __future__ import annotations

from typing import Any

import mlflow.models
import mlflow.pyfunc
import numpy as np


class HUModelPyfunc(mlflow.pyfunc.PythonModel):
    """Rebuilds the model from its ``hu_model`` artifact (spec + state dict) and runs it on CPU."""

    def load_context(self, context: Any) -> None:
        from ctharmony.models.io import ARTIFACT_KEY, load_saved  # the folder format: models owns it

        self.model = load_saved(context.artifacts[ARTIFACT_KEY])

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        """HU slices (B, 1, H, W) in, the model's output out; ``np.ndarray`` hints: MLflow skips its schema check."""
        import torch

        array = np.asarray(model_input, dtype=np.float32)
        with torch.no_grad():
            return self.model(torch.from_numpy(array)).numpy()


# models-from-code: MLflow runs this file when the model is loaded (no cloudpickle of our classes)
mlflow.models.set_model(HUModelPyfunc())
