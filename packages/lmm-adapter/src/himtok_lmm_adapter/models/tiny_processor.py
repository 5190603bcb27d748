"""Image + text inputs for the tiny InternVL model, without torchvision.

transformers' `InternVLProcessor` needs torchvision (for its video processor) even for images, so the tiny
model gets this small stand-in with the same conventions: each `<IMG_CONTEXT>` in the text becomes
`<img>` + `image_seq_length` x `<IMG_CONTEXT>` + `</img>`, each image is one square tile, resized
bicubically and normalised with the ImageNet mean and std, as InternVL does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchEncoding

from himtok_lmm_adapter.models.tiny_tokenizer import IMAGE_CONTEXT, IMAGE_END, IMAGE_START

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TinyInternVLProcessor:
    """Callable like a transformers processor: `processor(text=[...], images=[...], return_tensors="pt")`."""

    def __init__(self, tokenizer: Any, image_size: int, image_seq_length: int) -> None:
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.image_seq_length = image_seq_length

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        """[N, 3, S, S] float tiles from PIL images or HxWx3 uint8 arrays."""
        tiles = []
        for image in images:
            pil = (
                image
                if isinstance(image, Image.Image)
                else Image.fromarray(np.asarray(image, dtype=np.uint8))
            )
            pil = pil.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
            tiles.append(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1))
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        return (torch.stack(tiles) - mean) / std

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | None = None,
        return_tensors: str = "pt",
        **tokenizer_kwargs: Any,
    ) -> BatchEncoding:
        texts = [text] if isinstance(text, str) else list(text)
        n_placeholders = sum(t.count(IMAGE_CONTEXT) for t in texts)
        n_images = 0 if images is None else len(images)
        if n_placeholders != n_images:
            raise ValueError(
                f"the text holds {n_placeholders} {IMAGE_CONTEXT} placeholders but {n_images} images"
            )
        expanded = IMAGE_START + IMAGE_CONTEXT * self.image_seq_length + IMAGE_END
        texts = [t.replace(IMAGE_CONTEXT, expanded) for t in texts]
        tokenizer_kwargs.setdefault("padding", True)
        encoding = self.tokenizer(texts, return_tensors=return_tensors, **tokenizer_kwargs)
        if images:
            encoding["pixel_values"] = self.pixel_values(images)
        return encoding
