"""Data: the procedural synthetic talking-head corpus (the embedded default), real clip
folders, video/audio I/O, and the motion probe (our lip-sync score).

Modules: render (SDF face renderer), speech (source-filter speech with visemes), synth
(corpus writer), dataset (Clip, load_corpus), real (real folders, inspect), video (I/O),
probe (mouth/blink/pose from pixels).
"""
