"""Networks the notebooks are *given*: each docstring names the notebook that uses it. What a student
must write is never here."""
from .classifier import DigitClassifier, load_digit_classifier
from .judge import AttributeJudge, load_attribute_judge
from .llama import load_smollm2, smollm2_tokenizer, tiny_llama
from .minilm import embed_sentences, load_minilm, minilm_tokenizer
from .unet import TimeUNet, load_time_unet
from .vae import LatentVAE, load_latent_vae

__all__ = ["AttributeJudge", "DigitClassifier", "LatentVAE", "TimeUNet", "embed_sentences", "load_attribute_judge",
           "load_digit_classifier", "load_latent_vae", "load_minilm", "load_smollm2", "load_time_unet",
           "minilm_tokenizer", "smollm2_tokenizer", "tiny_llama"]
