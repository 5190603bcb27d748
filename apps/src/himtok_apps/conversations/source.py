"""The interface every conversation source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from himtok_apps.conversations.sample import ConversationSample


class ConversationSource(ABC):
    """An indexed, deterministic collection of conversations: ``sample(i)`` is the same for the same ``i``.

    ``sample`` raises ``SampleError`` for a record that cannot be used (the mixture skips and counts it);
    ``item_key(i)`` names the record in skip reports without reading it.
    """

    name: str = "source"

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def item_key(self, index: int) -> str: ...

    @abstractmethod
    def sample(self, index: int) -> ConversationSample: ...
