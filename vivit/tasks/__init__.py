"""The tasks, short functions over the rooms: `train`, `evaluate` and `predict` of a composed config (each in its
module, with the `main` that the entry points, console scripts and `python -m vivit.tasks.<task>` call through
vivit.tasks.command), and `build`, which turns a config into a run's objects.

May import: every room.
"""
