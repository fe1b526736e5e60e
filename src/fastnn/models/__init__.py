"""fastnn.models: whole models built from fastnn.nn.

GPT (gpt.py): nanoGPT's decoder-only transformer, with a KV-cache generate().
"""
from fastnn.models.gpt import GPT

__all__ = ["GPT"]
