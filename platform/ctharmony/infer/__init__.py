"""Archive conversion: Ray Data predictors (harmonizer, segmenter) and the resumable conversion pipeline.

Example::

    from ctharmony.infer import convert_archive
    convert_archive("catalog.parquet", "models:/ctharmony-harmonizer@champion",
                    "models:/ctharmony-liver-unet@champion", "converted/")
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = [
    "ConvertOptions",
    "HarmonizerPredictor",
    "SegmenterPredictor",
    "convert_archive",
]

__getattr__ = lazy_exports(__name__, {
    "HarmonizerPredictor": "predictors", "SegmenterPredictor": "predictors",
    "ConvertOptions": "pipeline", "convert_archive": "pipeline",
})
