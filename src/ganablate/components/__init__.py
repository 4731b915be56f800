"""What a study varies or plugs in, each a registry with a guarded register_*: feeds (how reals and fakes reach D),
norms (D's normalization), losses, and architectures (dcgan built in; a user's package adds its own by entry point).
A new feed, norm or loss is one register_* call in its registry's file; catalog.py reads those calls torch-free, for
the stages that must not import torch."""
