"""Shared helpers for the Model Compression Lab notebooks: models, data, training, timing, plots."""

from lab_utils.attention import MultiHeadSelfAttention
from lab_utils.bench import (
    count_parameters,
    measure_latency,
    peak_forward_memory,
    serialized_size,
)
from lab_utils.data import digits_loaders, digits_splits, digits_transfer_pool, full_batch
from lab_utils.digits_model import Block, DigitsTransformer, Internals
from lab_utils.original_models import DistilledStudent, ToyTransformer
from lab_utils.plots import use_course_style
from lab_utils.teacher import load_teacher
from lab_utils.train import accuracy, set_seed, train

__all__ = [
    "Block",
    "DigitsTransformer",
    "DistilledStudent",
    "Internals",
    "MultiHeadSelfAttention",
    "ToyTransformer",
    "accuracy",
    "count_parameters",
    "digits_loaders",
    "digits_splits",
    "digits_transfer_pool",
    "full_batch",
    "load_teacher",
    "measure_latency",
    "peak_forward_memory",
    "serialized_size",
    "set_seed",
    "train",
    "use_course_style",
]
