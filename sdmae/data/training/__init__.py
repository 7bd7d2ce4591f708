"""What training reads: the training split decoded once, and the samples cut from it.

``samples``      TrainFrames (the training videos at model size) and TrainSamples
                 (inputs, targets and token weights of sample i)
``frame_cache``  the training split decoded once into a uint8 cache on disk
``anomalies``    moving foreign objects pasted into training clips (augmentation)

Scoring never imports these; the submodules load on use.
"""
