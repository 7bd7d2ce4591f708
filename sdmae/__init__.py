"""sdmae: self-distilled masked auto-encoders for video anomaly detection.

A re-implementation of Ristea et al., "Self-Distilled Masked Auto-Encoders are
Efficient Video Anomaly Detectors" (CVPR 2024).

Pipeline (one module per stage)::

    sdmae.data      decode videos, read dataset layouts, dev data, training samples
    sdmae.kernels   prepare (frames -> 9-channel inputs, motion weights), score
    sdmae.model     masked AE: encoder, teacher decoder, student head
    sdmae.train     two-stage training (teacher, then self-distilled student)
    sdmae.checkpoint  the checkpoint format: save, safe load, the model it holds
    sdmae.target    the reconstruction target (frame t + anomaly map): training and scoring
    sdmae.detector  score videos with a trained run (prepare, forward, score a batch)
    sdmae.streams   frame windows and live streams (StreamScorer)
    sdmae.postprocess, sdmae.metrics, sdmae.report

Shape glossary used in every docstring:
    N batch, T time (frames), C channels, H/W height/width (h/w at model size),
    p patch size, L tokens per frame (= (h/p) * (w/p)), D embedding dim.
"""

__version__ = "0.2.0"
