"""lora_teach: the tested helper package behind the lora-teach notebooks.

Import the module you need, e.g. ``from lora_teach import linalg``. Importing the package
itself is cheap: it does not import torch.
"""

__version__ = "0.1.0"
