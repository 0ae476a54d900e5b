"""The authors' op orders (their integer encoding), importable without torch.

Config and architecture records need these names; keeping them free of torch keeps
``python -m enas_lightning --help`` and architecture tools fast.
"""

AUTHORS_MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
AUTHORS_MACRO_OPS = (
    "conv_3x3",
    "sep_conv_3x3",
    "conv_5x5",
    "sep_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)
