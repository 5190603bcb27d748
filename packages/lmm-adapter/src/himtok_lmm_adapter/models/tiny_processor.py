"""Image + text inputs for the tiny InternVL model, without torchvision.

transformers' `InternVLProcessor` needs torchvision (for its video processor) even for images, so the tiny
model gets this small stand-in with the same conventions: each `<IMG_CONTEXT>` in the text becomes
`<img>` + `image_seq_length` x `<IMG_CONTEXT>` + `</img>`, each image is one square tile, resized
bicubically and normalised with the ImageNet mean and std, as InternVL does. Images may be PIL images,
HxWx3 uint8 arrays or tensors; only numpy and torch are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
        """[N, 3, S, S] float tiles from RGB PIL images or HxWx3 uint8 arrays/tensors."""
        tiles = []
        for image in images:
            pixels = torch.as_tensor(np.asarray(image, dtype=np.float32)) / 255.0
            if pixels.dim() != 3 or pixels.shape[-1] != 3:
                raise ValueError(f"images must be RGB, HxWx3, got shape {tuple(pixels.shape)}")
            tile = F.interpolate(
                pixels.permute(2, 0, 1)[None],
                size=(self.image_size, self.image_size),
                mode="bicubic",
                antialias=True,
                align_corners=False,
            )
            tiles.append(tile[0].clamp(0, 1))
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
