"""Data for training: mini-batches over in-memory arrays (loader), and text corpora
that need no download (text: the Python standard library's own sources)."""
from fastnn.data.loader import DataLoader, RandomSampler, Sampler, SequentialSampler
from fastnn.data.text import TextCorpus, stdlib_corpus

__all__ = ["DataLoader", "Sampler", "SequentialSampler", "RandomSampler", "TextCorpus",
           "stdlib_corpus"]
