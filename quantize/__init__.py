"""Quantization machinery (installed as edgeth.quantize): calibration capture, precision
plans, sensitivity search under an accuracy budget, FP16 safety audit."""
