"""Software side of the EGRU co-design flow: models, training, evaluation, export.

This package file must stay free of heavy imports (no torch): ``sw.golden`` and the hardware
side import parts of ``sw`` on machines without torch.
"""
