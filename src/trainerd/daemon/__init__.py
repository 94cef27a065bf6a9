"""The daemon: decides what to train and when, never how (the engine trains in a child process).

Modules stay importable on their own and never import torch/transformers/peft, so the daemon,
`trainerd status` and the monitor start fast. This package deliberately imports nothing eagerly.
"""
