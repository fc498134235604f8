"""Networks the notebooks are *given*: each docstring names the notebook that uses it. What a student
must write is never here."""
from .classifier import DigitClassifier, load_digit_classifier
from .llama import load_smollm2, smollm2_tokenizer, tiny_llama
from .unet import TimeUNet, load_time_unet

__all__ = ["DigitClassifier", "TimeUNet", "load_digit_classifier", "load_smollm2", "load_time_unet", "smollm2_tokenizer",
           "tiny_llama"]
