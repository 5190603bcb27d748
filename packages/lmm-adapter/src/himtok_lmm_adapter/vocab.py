"""The mask-token vocabulary: `<|mt_start|>`, `<|mt_end|>` and `<|mt_0|>` ... `<|mt_{K-1}|>` inside an LMM.

`add_mask_vocabulary` adds the tokens to a Hugging Face tokenizer and grows the model's embeddings;
`MaskVocab` is the result: the ids read back from the tokenizer, with conversions between mask codes
(0..K-1, what the mask tokenizer speaks) and vocabulary ids (what the LMM speaks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from himtok_prompt_templates import mask_token, mask_vocabulary

if TYPE_CHECKING:
    from himtok_lmm_adapter.models.base import VLMAdapter


@dataclass(frozen=True)
class MaskVocab:
    """Ids of the mask tokens in one tokenizer. The K mask ids are contiguous: `first_mask_id + code`."""

    start_id: int
    end_id: int
    first_mask_id: int
    codebook_size: int = 1024

    def __post_init__(self) -> None:
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {self.codebook_size}")
        if self.start_id == self.end_id:
            raise ValueError(f"start and end tokens share the id {self.start_id}")
        for name, token_id in (("start", self.start_id), ("end", self.end_id)):
            if self.first_mask_id <= token_id < self.first_mask_id + self.codebook_size:
                raise ValueError(f"the {name} token id {token_id} falls inside the mask-token id range")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, codebook_size: int = 1024) -> MaskVocab:
        """Read the ids back from a tokenizer that already holds the mask vocabulary.

        Raises `ValueError` when a token is missing or the mask ids are not contiguous.
        """
        strings = mask_vocabulary(codebook_size)
        ids = _token_ids(tokenizer, strings)
        missing = [s for s, i in zip(strings, ids, strict=True) if i is None]
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise ValueError(f"the tokenizer lacks {len(missing)} mask-vocabulary tokens: {shown}")
        start_id, end_id, first = ids[0], ids[1], ids[2]
        assert start_id is not None and end_id is not None and first is not None
        expected = list(range(first, first + codebook_size))
        if ids[2:] != expected:
            bad = next(k for k, (got, want) in enumerate(zip(ids[2:], expected, strict=True)) if got != want)
            raise ValueError(
                f"mask-token ids are not contiguous: {mask_token(bad, codebook_size)} has id {ids[2 + bad]}, expected {first + bad}"
            )
        return cls(start_id=start_id, end_id=end_id, first_mask_id=first, codebook_size=codebook_size)

    @property
    def mask_slice(self) -> slice:
        """Columns of the logits that belong to the mask tokens: `logits[..., vocab.mask_slice]`."""
        return slice(self.first_mask_id, self.first_mask_id + self.codebook_size)

    @property
    def last_id(self) -> int:
        """The largest id of the whole mask vocabulary (start, end and mask tokens)."""
        return max(self.start_id, self.end_id, self.first_mask_id + self.codebook_size - 1)

    def is_mask_id(self, ids: torch.Tensor) -> torch.Tensor:
        """Bool tensor: which ids are mask tokens `<|mt_k|>` (not start/end)."""
        return (ids >= self.first_mask_id) & (ids < self.first_mask_id + self.codebook_size)

    def codes_to_ids(self, codes: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Mask codes in [0, K) to vocabulary ids. Out-of-range codes raise `ValueError`."""
        codes_t = torch.as_tensor(codes)
        if codes_t.is_floating_point() or codes_t.dtype == torch.bool:
            raise ValueError(f"mask codes must be integers, got dtype {codes_t.dtype}")
        if codes_t.numel() and (int(codes_t.min()) < 0 or int(codes_t.max()) >= self.codebook_size):
            raise ValueError(
                f"mask codes must lie in [0, {self.codebook_size}), got range "
                f"[{int(codes_t.min())}, {int(codes_t.max())}]"
            )
        return codes_t.long() + self.first_mask_id

    def ids_to_codes(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Vocabulary ids of mask tokens back to codes in [0, K). Any other id raises `ValueError`."""
        ids_t = torch.as_tensor(ids).long()
        not_mask = ~self.is_mask_id(ids_t)
        if bool(not_mask.any()):
            raise ValueError(f"ids are not mask tokens: {ids_t[not_mask].unique().tolist()[:8]}")
        return ids_t - self.first_mask_id

    def token_strings(self) -> list[str]:
        """The vocabulary as text, in id order of the official code: start, end, mt_0 .. mt_{K-1}."""
        return mask_vocabulary(self.codebook_size)


def _token_ids(tokenizer: Any, strings: Sequence[str]) -> list[int | None]:
    """Ids of `strings` that the tokenizer knows as whole tokens; None for the others."""
    vocab = tokenizer.get_vocab()
    return [vocab.get(s) for s in strings]


def add_mask_vocabulary(
    model: Any,
    tokenizer: Any,
    codebook_size: int = 1024,
    *,
    adapter: VLMAdapter | None = None,
    untie: bool = True,
) -> MaskVocab:
    """Add the mask vocabulary to `tokenizer` and grow `model`'s embeddings to match.

    The 2 + K tokens are added as special tokens in the official order (start, end, mt_0..mt_{K-1}), and their
    ids are read back from the tokenizer. Input and output embeddings are resized with transformers' mean
    resizing; the new output rows are then set to the mean of the old output rows, as the official code does.
    Tied embeddings are untied first (`untie=True`) so that the output rows can differ from the input rows.

    A second call finds the tokens present and changes nothing. A tokenizer that holds only part of the
    vocabulary raises `ValueError` (the ids could not be contiguous).
    """
    from himtok_lmm_adapter.models.base import adapter_for

    adapter = adapter if adapter is not None else adapter_for(model)
    strings = mask_vocabulary(codebook_size)
    present = [i is not None for i in _token_ids(tokenizer, strings)]
    if all(present):
        vocab = MaskVocab.from_tokenizer(tokenizer, codebook_size)
        rows = adapter.input_embeddings(model).weight.shape[0]
        if rows <= vocab.last_id:
            raise ValueError(
                f"the tokenizer holds the mask vocabulary but the model has only {rows} embedding rows "
                f"(needs > {vocab.last_id}); was the tokenizer saved with a different model?"
            )
        return vocab
    if any(present):
        raise ValueError(
            f"the tokenizer holds {sum(present)} of the {len(strings)} mask-vocabulary tokens; "
            "add all of them to a clean tokenizer or none"
        )

    if untie and adapter.embeddings_tied(model):
        adapter.untie_word_embeddings(model)
    old_rows = adapter.input_embeddings(model).weight.shape[0]
    added = tokenizer.add_tokens(strings, special_tokens=True)
    if added != len(strings):
        raise ValueError(f"the tokenizer added {added} of {len(strings)} mask-vocabulary tokens")
    vocab = MaskVocab.from_tokenizer(tokenizer, codebook_size)
    first_new = min(vocab.start_id, vocab.end_id, vocab.first_mask_id)
    # Rows the model already had for real tokens; a padded embedding matrix can have spare rows past them.
    n_old = min(old_rows, first_new)
    new_ids = torch.tensor([vocab.start_id, vocab.end_id, *range(vocab.first_mask_id, vocab.last_id + 1)])
    adapter.resize_vocabulary(model, max(old_rows, len(tokenizer)))
    with torch.no_grad():
        inputs = adapter.input_embeddings(model).weight
        outputs = adapter.output_embeddings(model).weight
        if n_old < old_rows:
            # Spare padding rows were never trained: give the new tokens that landed there the mean too.
            spare = new_ids[new_ids < old_rows]
            inputs[spare] = inputs[:n_old].float().mean(0).to(inputs.dtype)
        if not adapter.embeddings_tied(model):
            outputs[new_ids] = outputs[:n_old].float().mean(0).to(outputs.dtype)
    return vocab
