"""DocChat: private document chat that runs LLMs fast on ordinary CPUs.

The serving path (everything under this package) must never import torch,
transformers or optimum; tests/test_serving_imports.py enforces it.
"""

__version__ = "0.1.0"
