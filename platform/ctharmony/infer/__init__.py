"""Archive conversion: Ray Data predictors (harmonizer, segmenter) and the resumable conversion pipeline.

Example::

    from ctharmony.infer import convert_archive
    convert_archive("catalog.parquet", "models:/ctharmony-harmonizer@champion",
                    "models:/ctharmony-liver-unet@champion", "converted/")
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConvertOptions", "HarmonizerPredictor", "SegmenterPredictor", "convert_archive"]


def __getattr__(name: str) -> Any:  # lazy: importing ctharmony.infer must not import torch or Ray
    if name in ("HarmonizerPredictor", "SegmenterPredictor"):
        from ctharmony.infer import predictors

        return getattr(predictors, name)
    if name in ("ConvertOptions", "convert_archive"):
        from ctharmony.infer import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ctharmony.infer' has no attribute {name!r}")
