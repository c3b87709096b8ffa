"""The floor every room stands on: atomic file writes, the project's one `torch.load`, one choice checker.

May import: nothing of the project (torch and the standard library only).
"""
