"""The interface between the search loop and a reward."""

from __future__ import annotations

import abc
from typing import Callable, ClassVar


class Reward(abc.ABC):
    """What the search asks of a reward: a score for a child, and optional hooks.

    Subclasses implement ``__call__(actions, seed)``, which returns the child's reward (a float; by
    convention higher is better) and raises
    :class:`~keras_nasnet.search.rewards.ChildFailed` when the child's *architecture* fails (it
    then gets :data:`~keras_nasnet.search.workers.FAILED_REWARD`); any other exception is taken as
    an infrastructure failure and the child is run again.

    The hooks do nothing unless overridden:

    * :meth:`check`: called once before anything is written (load and check data);
    * :meth:`bind`: called once before the first child, in the process that runs the children, with
      the search folder (a stateful reward keeps its checkpoints there);
    * :meth:`close`: called when the search stops, however it stops (write a last checkpoint);
    * :meth:`take_setup_cost`: read after each child, so that the record of the child whose call
      also did one-off work (training a supernet) keeps that work's cost apart from the child's.

    A reward whose ``in_process`` is True keeps state between children (a trained supernet), so
    its children run in the search's own process, never in workers.
    """

    in_process: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, actions, seed: int = 0) -> float:
        """The reward of the child with decisions ``actions`` (``seed``: the child's seed)."""

    def check(self) -> None:
        """Checks settings and data before anything is written; raises with advice."""

    def bind(self, out_dir, progress: bool = False) -> None:
        """Uses the search folder ``out_dir`` (restore state from it); ``progress``: draw bars."""

    def close(self) -> None:
        """Called when the search stops."""

    def take_setup_cost(self) -> dict:
        """Fields for the record of the child just evaluated, about one-off work done inside its
        call: ``setup_cpu_seconds`` (CPU-seconds of that work in this call, which the record's
        ``cpu_seconds`` then leaves out) and any running totals (e.g. ``supernet_cpu_seconds``).
        Reading resets the per-call part. Default: none."""
        return {}


class FunctionReward(Reward):
    """A plain function ``fn(actions, seed) -> float`` as a :class:`Reward`."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, actions, seed: int = 0) -> float:
        return self.fn(actions, seed)


def as_reward(obj) -> Reward:
    """``obj`` if it is a :class:`Reward`; a callable wrapped in :class:`FunctionReward`."""
    if isinstance(obj, Reward):
        return obj
    if callable(obj):
        return FunctionReward(obj)
    raise TypeError(f"A reward must be a keras_nasnet.search.Reward or a function (actions, seed) -> "
                    f"float; got {type(obj).__name__}.")
