"""Reference tasks and the `Task` protocol that long decomposed runs are built on."""

from .base import StepAnswer, Task

__all__ = ["StepAnswer", "Task"]
