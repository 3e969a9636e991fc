"""Training: paired patches from the catalog, losses, the GAN step, Ray Train DDP loops, launch.

Entry points: :func:`ctharmony.train.launch.build_trainer` / :func:`ctharmony.train.launch.train`
(the harmonizer) and :func:`ctharmony.train.segmenter.train_segmenter` (the reference liver U-Net).
"""
