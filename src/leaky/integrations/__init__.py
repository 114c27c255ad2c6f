"""The Monitor where people train: a Lightning callback (and, next, Hugging Face's Trainer).

Each integration is an optional extra, imported only from its own module:
``leaky.integrations.lightning`` needs ``pip install 'leaky[lightning]'``.
"""
