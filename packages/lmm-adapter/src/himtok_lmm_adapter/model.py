"""`HiMTokModel`: one object that segments images by writing mask tokens.

It holds a transformers-native multimodal model (`.lmm`, an `InternVLForConditionalGeneration`), its fast
tokenizer (`.tokenizer`), the mask de-tokenizer (`.mask_tokenizer`, a `MaskTokenizer`), the mask vocabulary
(`.vocab`) and the HiMTok settings (chat format, tiling). A directory written by `save_pretrained` (or by the
official-checkpoint converter) holds the transformers files, `mask_tokenizer/` and `himtok.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from himtok_mask_tokenizer import MaskTokenizer
from himtok_prompt_templates import (
    expand_image_placeholder,
    format_chat,
    get_chat_format,
    with_image_placeholder,
)
from transformers import AutoModelForImageTextToText, PreTrainedTokenizerFast

from himtok_lmm_adapter.decode import Mode
from himtok_lmm_adapter.generation import MaskTokenLogitsProcessor
from himtok_lmm_adapter.images import preprocess_images
from himtok_lmm_adapter.segmentation import Segmentation, build_segmentations
from himtok_lmm_adapter.settings import SETTINGS_NAME, HiMTokSettings
from himtok_lmm_adapter.vocab import MaskVocab

DEFAULT_MAX_NEW_TOKENS = 128  # the official evaluation's budget: an answer, a mask span and a box fit


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None`/`"auto"`: CUDA when available, else CPU; otherwise the named device (checked to exist)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    return resolved


class HiMTokModel:
    """A multimodal LLM that writes masks as tokens, with its tokenizer and mask de-tokenizer."""

    def __init__(
        self,
        lmm: Any,
        tokenizer: Any,
        mask_tokenizer: MaskTokenizer,
        settings: HiMTokSettings | None = None,
    ) -> None:
        self.lmm = lmm
        self.tokenizer = tokenizer
        self.mask_tokenizer = mask_tokenizer
        self.settings = settings or HiMTokSettings()
        self.vocab = MaskVocab.from_tokenizer(tokenizer, self.settings.codebook_size)
        rows = lmm.get_input_embeddings().weight.shape[0]
        if rows <= self.vocab.last_id:
            raise ValueError(
                f"the model has {rows} embedding rows but the mask vocabulary reaches id {self.vocab.last_id}"
            )
        if mask_tokenizer.config.codebook_size != self.vocab.codebook_size:
            raise ValueError(
                f"the mask tokenizer has {mask_tokenizer.config.codebook_size} codes, the vocabulary "
                f"{self.vocab.codebook_size}"
            )
        self.chat_format = get_chat_format(self.settings.chat_format)
        self.end_of_turn_id = int(tokenizer.convert_tokens_to_ids(self.chat_format.end_of_turn))
        self.image_token = "<IMG_CONTEXT>"
        self.tokens_per_tile = int(lmm.config.image_seq_length)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_parts(
        cls,
        lmm: Any,
        tokenizer: Any,
        mask_tokenizer: MaskTokenizer,
        settings: HiMTokSettings | None = None,
    ) -> HiMTokModel:
        """Assemble a model built or trained here (the tokenizer must already hold the mask vocabulary)."""
        return cls(lmm, tokenizer, mask_tokenizer, settings)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
    ) -> HiMTokModel:
        """Load a `HiMTokModel` directory (strict: missing or unexpected weights raise `ValueError`).

        `dtype` defaults to the dtype the weights were saved in; `device` to CPU (`"auto"` picks CUDA when
        available). Nothing is downloaded and no code from the directory runs.
        """
        directory = Path(directory)
        if not (directory / SETTINGS_NAME).is_file():
            raise ValueError(f"{directory} is not a HiMTokModel directory (no {SETTINGS_NAME})")
        settings = HiMTokSettings.load(directory)
        target = resolve_device(device) if device is not None else torch.device("cpu")
        loaded: Any = AutoModelForImageTextToText.from_pretrained(
            directory,
            dtype=dtype if dtype is not None else "auto",
            local_files_only=True,
            trust_remote_code=False,
            output_loading_info=True,
        )
        lmm, info = loaded
        problems = {
            k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")
        }
        if problems:
            raise ValueError(f"{directory} does not load strictly: {problems}")
        lmm = lmm.to(target).eval()
        tokenizer = PreTrainedTokenizerFast.from_pretrained(directory, local_files_only=True)
        mask_tokenizer = MaskTokenizer.from_pretrained(directory / settings.mask_tokenizer_dir)
        mask_tokenizer = mask_tokenizer.to(device=target, dtype=lmm.dtype).eval()
        return cls(lmm, tokenizer, mask_tokenizer, settings)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.lmm.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.mask_tokenizer.save_pretrained(directory / self.settings.mask_tokenizer_dir)
        self.settings.save(directory)
        return directory

    @property
    def device(self) -> torch.device:
        return next(self.lmm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.lmm.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> HiMTokModel:
        target = resolve_device(device) if device is not None else self.device
        self.lmm.to(device=target, dtype=dtype)
        self.mask_tokenizer.to(device=target, dtype=dtype or self.dtype)
        return self

    def eval(self) -> HiMTokModel:
        self.lmm.eval()
        self.mask_tokenizer.eval()
        return self

    # ------------------------------------------------------------------ inputs
    def preprocess_images(self, images: Sequence[Any] | Any) -> tuple[torch.Tensor, list[int]]:
        """`(pixel_values [N, 3, S, S], tiles per image)` with the official dynamic tiling of the settings."""
        items = list(images) if isinstance(images, list | tuple) else [images]
        return preprocess_images(items, self.settings.tiling)

    def build_prompt(self, question: str, num_tiles: int, answer_prefix: str = "") -> str:
        """The chat prompt with `<image>` expanded to `<img>` + image tokens for `num_tiles` tiles + `</img>`.

        `answer_prefix` is appended after the assistant prefix: the answer starts with it (e.g. `<|mt_start|>`
        makes the model write a mask at once)."""
        if not isinstance(question, str):
            raise ValueError(f"question must be a string, got {type(question).__name__}")
        text = format_chat(
            with_image_placeholder(question),
            chat_format=self.settings.chat_format,
            system_message=self.settings.system_message,
        )
        return expand_image_placeholder(text, self.tokens_per_tile * num_tiles) + answer_prefix

    # ------------------------------------------------------------------ segmentation
    @torch.no_grad()
    def generate(
        self,
        images: Sequence[Any] | Any,
        prompts: Sequence[str] | str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        constrain: bool = True,
        answer_prefix: str = "",
        **generate_kwargs: Any,
    ) -> tuple[Any, list[int], int]:
        """Greedy batched generation (left padding); returns the `generate` output, tiles per image and the
        prompt length. `constrain=True` forces well-formed mask spans (`MaskTokenLogitsProcessor`)."""
        image_list = list(images) if isinstance(images, list | tuple) else [images]
        prompt_list = [prompts] * len(image_list) if isinstance(prompts, str) else list(prompts)
        if len(prompt_list) != len(image_list):
            raise ValueError(f"{len(image_list)} images but {len(prompt_list)} prompts")
        if not image_list:
            raise ValueError("no images given")
        pixel_values, num_tiles = self.preprocess_images(image_list)
        for question in prompt_list:
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f"prompts must be non-empty strings, got {question!r}")
        texts = [self.build_prompt(q, n, answer_prefix) for q, n in zip(prompt_list, num_tiles, strict=True)]
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(texts, return_tensors="pt", padding=True)
        processors = list(generate_kwargs.pop("logits_processor", []))
        if constrain:
            processors.append(MaskTokenLogitsProcessor(self.vocab, length=self.settings.num_mask_tokens))
        generate_kwargs.setdefault("do_sample", False)
        output = self.lmm.generate(
            input_ids=batch["input_ids"].to(self.device),
            attention_mask=batch["attention_mask"].to(self.device),
            pixel_values=pixel_values.to(self.device, self.dtype),
            max_new_tokens=max_new_tokens,
            eos_token_id=self.end_of_turn_id,
            pad_token_id=self.tokenizer.pad_token_id,
            logits_processor=processors,
            output_logits=True,
            return_dict_in_generate=True,
            **generate_kwargs,
        )
        return output, num_tiles, batch["input_ids"].shape[1]

    def segment(
        self,
        images: Sequence[Any] | Any,
        prompts: Sequence[str] | str,
        *,
        num_mask_tokens: int = 32,
        mode: Mode = "soft",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        threshold: float = 0.5,
        constrain: bool = True,
        answer_prefix: str = "",
        **generate_kwargs: Any,
    ) -> list[Segmentation]:
        """Segment each image with its prompt; one `Segmentation` per image, in order.

        `num_mask_tokens` (1..32) decodes each mask from its first tokens (coarse to fine). `mode="soft"` (the
        official path) decodes the expected code embedding of the token distributions, `"hard"` the written
        codes. Masks come back at each image's own size. An answer without a well-formed mask is reported in
        `Segmentation.error`, never raised. `answer_prefix` starts every answer with that text
        (`"<|mt_start|>"` asks for a mask at once); it is part of `Segmentation.answer`.
        """
        image_list = list(images) if isinstance(images, list | tuple) else [images]
        output, _, prompt_length = self.generate(
            image_list,
            prompts,
            max_new_tokens=max_new_tokens,
            constrain=constrain,
            answer_prefix=answer_prefix,
            **generate_kwargs,
        )
        sizes = [_image_hw(image) for image in image_list]
        return build_segmentations(
            output,
            prompt_length,
            sizes,
            tokenizer=self.tokenizer,
            vocab=self.vocab,
            mask_tokenizer=self.mask_tokenizer,
            end_of_turn_id=self.end_of_turn_id,
            length=self.settings.num_mask_tokens,
            num_tokens=num_mask_tokens,
            mode=mode,
            threshold=threshold,
            answer_prefix=answer_prefix,
        )


def _image_hw(image: Any) -> tuple[int, int]:
    from himtok_lmm_adapter.images import as_rgb_image

    width, height = as_rgb_image(image).size
    return height, width
