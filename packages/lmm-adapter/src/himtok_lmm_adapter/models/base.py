"""What the mask-token glue needs from a Hugging Face vision-language model, and the generic answer.

Everything in this package talks to the model through a `VLMAdapter`. `HFVLMAdapter` answers through the
standard `PreTrainedModel` API (`get_input_embeddings`, `get_output_embeddings`, `resize_token_embeddings`,
`config.get_text_config()`), which every image-text-to-text model of transformers 5.x implements. A model
whose layout differs subclasses it and overrides the few methods that differ, then registers itself with
`register_adapter(model_type, adapter)`.
"""

from __future__ import annotations

from typing import Any, Protocol, cast, runtime_checkable

from torch import nn


@runtime_checkable
class VLMAdapter(Protocol):
    """The model-specific operations used by the vocabulary, generation and training glue."""

    def input_embeddings(self, model: Any) -> nn.Embedding: ...

    def output_embeddings(self, model: Any) -> nn.Linear: ...

    def embeddings_tied(self, model: Any) -> bool: ...

    def untie_word_embeddings(self, model: Any) -> None: ...

    def resize_vocabulary(self, model: Any, new_size: int) -> None: ...


class HFVLMAdapter:
    """The generic adapter: works for any transformers model with an untied or tied LM head."""

    model_type: str = "*"

    def input_embeddings(self, model: Any) -> nn.Embedding:
        return model.get_input_embeddings()

    def output_embeddings(self, model: Any) -> nn.Linear:
        head = model.get_output_embeddings()
        if head is None:
            raise ValueError(f"{type(model).__name__} has no output embeddings (LM head)")
        return cast(nn.Linear, head)

    def embeddings_tied(self, model: Any) -> bool:
        return self.input_embeddings(model).weight is self.output_embeddings(model).weight

    def untie_word_embeddings(self, model: Any) -> None:
        """Give the LM head its own copy of the weights and record it in every config level."""
        head = self.output_embeddings(model)
        if self.embeddings_tied(model):
            head.weight = nn.Parameter(head.weight.detach().clone(), requires_grad=head.weight.requires_grad)
        for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
            config.tie_word_embeddings = False
        # transformers caches the tying plan; an emptied plan keeps a later tie_weights() from re-tying.
        if hasattr(model, "all_tied_weights_keys"):
            model.all_tied_weights_keys = {}

    def resize_vocabulary(self, model: Any, new_size: int) -> None:
        """Resize input and output embeddings to `new_size` rows with transformers' mean resizing."""
        model.resize_token_embeddings(new_size, mean_resizing=True)

    def vocab_size(self, model: Any) -> int:
        return int(model.config.get_text_config().vocab_size)


_REGISTRY: dict[str, VLMAdapter] = {}


def register_adapter(model_type: str, adapter: VLMAdapter) -> None:
    """Use `adapter` for models whose `config.model_type` is `model_type`."""
    if not isinstance(adapter, VLMAdapter):
        raise ValueError(f"{type(adapter).__name__} does not implement the VLMAdapter protocol")
    _REGISTRY[model_type] = adapter


def adapter_for(model: Any) -> VLMAdapter:
    """The registered adapter for `model`'s type, or the generic `HFVLMAdapter`."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in _REGISTRY:
        return _REGISTRY[model_type]
    if not isinstance(model, nn.Module) or not hasattr(model, "get_input_embeddings"):
        raise ValueError(f"expected a transformers model, got {type(model).__name__}")
    return HFVLMAdapter()
