"""genai_course: what the course's notebooks share and no student must write.

Import it one way everywhere::

    import genai_course as gc
    images, labels = gc.data.load_mnist("train")
"""
from . import checkpoint, data, llm, masks, metrics, models, plotting, runtime, training
from .checkpoint import load_checkpoint, save_checkpoint
from .runtime import get_device, model_device, pick, quick_mode, report_metrics, seed_everything

__version__ = "0.1.0"
__all__ = ["checkpoint", "data", "llm", "masks", "metrics", "models", "plotting", "runtime", "training", "load_checkpoint", "save_checkpoint",
           "get_device", "model_device", "pick", "quick_mode", "report_metrics", "seed_everything"]
