"""Requests in, outcomes out: load, phrase, generate in batches, decode, judge, with every stage timed.

The engine does what `HiMTokModel.segment` does (batched greedy generation with left padding, then
`build_segmentations`), split in two so that the stages can be timed and the same generation can be decoded at
every prefix length for `--all-lengths`. A batch that fails as a whole is retried one request at a time, so one
bad request costs only its own line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from himtok_lmm_adapter import HiMTokModel, Segmentation, decode_spans, generated_spans
from himtok_lmm_adapter.decode import Mode
from himtok_lmm_adapter.segmentation import build_segmentations
from PIL import Image

from himtok_apps.infer.ground_truth import answer_mask, read_ground_truth, score
from himtok_apps.infer.prompts import MAY_ANSWER_NO, TEXT_ANSWER, build_question
from himtok_apps.infer.refine import Refiner, refine_segmentation
from himtok_apps.infer.requests import Request
from himtok_apps.infer.timing import Clock, StageTimes, TimingHooks


@dataclass(frozen=True)
class DecodeOptions:
    """How answers are generated and masks decoded (what `results.jsonl` depends on, with the model)."""

    num_tokens: int = 32
    all_lengths: bool = False
    mode: Mode = "soft"
    threshold: float = 0.5
    max_new_tokens: int = 128
    answer_prefix: str = ""


@dataclass
class Prepared:
    """A request with its image loaded and its question phrased: ready for the model."""

    request: Request
    image: Image.Image
    question: str
    times: StageTimes = field(default_factory=StageTimes)
    gt: np.ndarray | None = None  # bool [H, W]: the request's ground truth


@dataclass
class Outcome:
    """What happened to one request. `error` is None when the answer is what the task asks for."""

    request: Request
    image: Image.Image | None = None
    question: str | None = None
    segmentation: Segmentation | None = None
    lengths: list[torch.Tensor] | None = None  # the first mask, binary at image size, from 1..L tokens
    exists: bool | None = None  # gres / openvocab: the yes/no the answer opens with
    refined: list[dict[str, Any]] | None = None  # per mask, what the refiner said (with --refine)
    ground_truth: dict[str, Any] | None = None  # the answer scored against the request's gt
    error: str | None = None
    times: StageTimes = field(default_factory=StageTimes)
    batch_size: int = 1


def load_image(path: str) -> Image.Image:
    """An RGB image, fully read (the file is closed); `ValueError` naming the file when it cannot be read."""
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


def read_mask(path: str) -> np.ndarray:
    """A mask PNG (any mode, as 8-bit gray, thresholded at 128) -> bool [H, W]."""
    try:
        with Image.open(path) as opened:
            gray = np.asarray(opened.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read mask {path}: {err}") from None
    return gray >= 128


class Engine:
    """Runs prepared requests through a `HiMTokModel` in batches; see the module docstring."""

    def __init__(
        self,
        model: HiMTokModel,
        options: DecodeOptions,
        refiner: Refiner | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        length = model.settings.num_mask_tokens
        if not 1 <= options.num_tokens <= length:
            raise ValueError(f"--num-tokens must lie in 1..{length} for this model, got {options.num_tokens}")
        self.model = model
        self.options = options
        self.refiner = refiner
        self.clock = clock or Clock(model.device)
        self.hooks = TimingHooks(model, self.clock)

    # ------------------------------------------------------------------ one request
    def encode_mask(self, path: str) -> list[int]:
        codes = self.model.mask_tokenizer.encode(torch.from_numpy(read_mask(path)))
        return [int(c) for c in codes[0].tolist()]

    def prepare(self, request: Request) -> Prepared | Outcome:
        """Load the image and phrase the question; an `Outcome` with the error when either fails."""
        times = StageTimes()
        start = self.clock()
        try:
            if request.error is not None:
                raise ValueError(request.error)
            assert request.image is not None
            image = load_image(request.image)
            question = build_question(request, image.width, image.height, self.encode_mask)
            gt = read_ground_truth(request.gt, (image.height, image.width)) if request.gt else None
        except ValueError as err:
            times.add("load", self.clock() - start)
            return Outcome(request, error=str(err), times=times)
        times.add("load", self.clock() - start)
        return Prepared(request, image, question, times, gt)

    def judge(self, request: Request, segmentation: Segmentation) -> tuple[str | None, bool | None]:
        """(error, exists): a "No" to an existence question and a text answer to mask2text are answers."""
        exists = segmentation.parsed.answer if request.task in MAY_ANSWER_NO else None
        if request.task in TEXT_ANSWER:
            cut = "the answer was cut off by max_new_tokens"
            return (None if segmentation.finished else cut), None
        if exists is False and not segmentation.masks:
            return None, exists
        return segmentation.error, exists

    # ------------------------------------------------------------------ batches
    def run(self, items: Sequence[Prepared]) -> list[Outcome]:
        """Outcomes in the order of `items`; a failing batch is retried one by one."""
        if not items:
            return []
        try:
            return self._run_batch(items)
        except (RuntimeError, ValueError) as err:
            if len(items) == 1:
                outcome = Outcome(
                    items[0].request,
                    image=items[0].image,
                    question=items[0].question,
                    error=f"{type(err).__name__}: {err}",
                    times=items[0].times,
                )
                return [outcome]
            return [outcome for item in items for outcome in self.run([item])]

    def _run_batch(self, items: Sequence[Prepared]) -> list[Outcome]:
        model, options, clock = self.model, self.options, self.clock
        batch = StageTimes()
        self.hooks.reset()
        with self.hooks:
            start = clock()
            output, _, prompt_length = model.generate(
                [item.image for item in items],
                [item.question for item in items],
                max_new_tokens=options.max_new_tokens,
                answer_prefix=options.answer_prefix,
            )
            elapsed = clock() - start
        batch.add("preprocess", self.hooks.preprocess)
        batch.add("vision", self.hooks.vision)
        batch.add("generate", max(0.0, elapsed - self.hooks.preprocess - self.hooks.vision))
        start = clock()
        sizes = [(item.image.height, item.image.width) for item in items]
        segmentations = build_segmentations(
            output,
            prompt_length,
            sizes,
            tokenizer=model.tokenizer,
            vocab=model.vocab,
            mask_tokenizer=model.mask_tokenizer,
            end_of_turn_id=model.end_of_turn_id,
            length=model.settings.num_mask_tokens,
            num_tokens=options.num_tokens,
            mode=options.mode,
            threshold=options.threshold,
            answer_prefix=options.answer_prefix,
        )
        lengths = self._all_lengths(output, sizes) if options.all_lengths else [None] * len(items)
        batch.add("decode", clock() - start)
        outcomes = []
        share = 1.0 / len(items)
        for item, segmentation, strip in zip(items, segmentations, lengths, strict=True):
            times = StageTimes()
            times.merge(item.times)
            times.merge(batch, share)
            refined = None
            size = (item.image.height, item.image.width)
            unrefined = answer_mask(segmentation, size) if item.gt is not None else None
            if self.refiner is not None and segmentation.masks:
                with times.measure("refine", clock):
                    refined = refine_segmentation(self.refiner, item.image, segmentation, options.threshold)
            ground_truth = None
            if item.gt is not None and unrefined is not None:
                ground_truth = {"unrefined": score(unrefined, item.gt)}
                if self.refiner is not None:  # an answer without a mask has nothing to refine: the same score
                    ground_truth["refined"] = score(answer_mask(segmentation, size), item.gt)
            error, exists = self.judge(item.request, segmentation)
            outcomes.append(
                Outcome(
                    item.request,
                    image=item.image,
                    question=item.question,
                    segmentation=segmentation,
                    lengths=strip,
                    exists=exists,
                    refined=refined,
                    ground_truth=ground_truth,
                    error=error,
                    times=times,
                    batch_size=len(items),
                )
            )
        return outcomes

    def _all_lengths(self, output: Any, sizes: Sequence[tuple[int, int]]) -> list[list[torch.Tensor] | None]:
        """Per sample: its first mask decoded from its first 1, 2, ..., L tokens (binary, image size)."""
        model, options = self.model, self.options
        length = model.settings.num_mask_tokens
        found = generated_spans(output, model.vocab, length)
        strips: list[list[torch.Tensor] | None] = []
        for sample, size in enumerate(sizes):
            rows = [i for i, span in enumerate(found.spans) if span.sample == sample]
            if not rows:
                strips.append(None)
                continue
            probs, codes = found.probs[rows[:1]], found.codes[rows[:1]]
            strips.append(
                [
                    decode_spans(probs, codes, model.mask_tokenizer, options.mode, n, size)[0].float().cpu()
                    > options.threshold
                    for n in range(1, length + 1)
                ]
            )
        return strips
