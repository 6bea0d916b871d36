"""One shape for every aggregate, in the manner of pycider's `Decider`: a record of pure
functions that the store's one generic `load` / `record` and the service's one `run_command`
drive, whatever the aggregate.

A decider says how its state starts (`initial`), which events a command makes (`decide`),
how an event moves the state (`evolve`), when the state is final (`is_terminal`), which
stream holds an aggregate (`stream_id` of its `key`), and whether a transition frees a slot
(or may: a cap change) and so takes the admission gate (`frees_a_slot`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, get_args

C = TypeVar("C")
S = TypeVar("S")
E = TypeVar("E")


@dataclass(frozen=True, slots=True, eq=False)
class Decider(Generic[C, S, E]):
    """An aggregate's rules. `decide` raises `CommandRejected` for a command its state does
    not allow; an empty list means the command changes nothing (nothing is recorded)."""

    name: str
    initial: S
    decide: Callable[[C, S], list[E]]
    evolve: Callable[[S, E], S]
    event_types: frozenset[str]  # the `type` of every event it evolves
    key: Callable[[S], str]  # the aggregate's key held in its state (job id, email, ...)
    stream_id: Callable[[str], str]  # the stream that holds the aggregate of a key
    is_terminal: Callable[[S], bool] = lambda _: False
    frees_a_slot: Callable[[S, S, Sequence[E]], bool] = lambda *_: False  # (before, after, events)

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        out = self.initial if state is None else state
        for event in events:
            out = self.evolve(out, event)
        return out

    def changes(self, command: C, state: S) -> bool:
        """Whether `command` would record anything on `state` (it may still be refused)."""
        return bool(self.decide(command, state))


def tags(union: object) -> frozenset[str]:
    """The `type` tags of a union of msgspec event structs."""
    return frozenset(str(cls.__struct_config__.tag) for cls in get_args(union))
