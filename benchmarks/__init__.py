"""Benchmarks (``python -m benchmarks.bench_<name>``): each prints its figures beside a
baseline measured in the same run.

TensorFlow's C++ start-up log (CUDA factory and probing lines, oneDNN and TensorRT
notices) and the Google client libraries' Python-version notice would bury those
figures; they are silenced here at the level ``keyclass``'s own terminal uses
(``pipeline/terminal.py``). Python exceptions still print, and an explicitly set
``TF_CPP_MIN_LOG_LEVEL`` wins (0 shows everything).
"""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
