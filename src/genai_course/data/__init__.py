"""Dataset loaders of the course. Each returns tensors with documented shapes and dtypes and checks
its cached file against the manifest's sha256 (see data/README.md for the data card)."""
from . import captions
from .captions import captioned_digits
from .chat import load_chat, load_humaneval
from .codetasks import code_tasks
from .mnist import load_mnist, load_mnist32
from .sentiment import load_sentiment
from .shakespeare import load_shakespeare, shakespeare_splits
from .sources import DataError, data_dir
from .toy import two_moons

__all__ = ["captioned_digits", "captions", "code_tasks", "load_chat", "load_humaneval", "load_mnist", "load_mnist32", "load_sentiment", "load_shakespeare", "shakespeare_splits", "DataError", "data_dir", "two_moons"]
