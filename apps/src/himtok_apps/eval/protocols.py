"""The two evaluation protocols: which samples exist, what the model is asked, how pixels and boxes count.

``standard`` (eval-protocols.md, "Spec for our evaluator"): one sample per referring sentence (id
``ref_id:sent_id``), one per ReasonSeg image (its first text, id = image stem), ignore pixels excluded.

``himtok-official`` (official-himtok.md §6): for referring segmentation, one sample per object (id ``ref_id``)
whose prompt merges every sentence ("Meet all the descriptions: 1. s1. 2. s2. "); ignore pixels counted as hits;
IoU with +1e-10; REC prompts repeat the sentence twice and boxes are read with the official regex and /999.

Both ask with the canonical phrasings of himtok-prompt-templates (index 0, the official HiMTok wording):
"Segment <ref>...</ref>.", the REC "First create the segmentation mask for <ref>...</ref>, then identify its
bounding box.", and for ReasonSeg "{question}\\nWhat is the object and mask in the image?" where a short query
becomes "What is {text}?".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from himtok_prompt_templates import build_conversation, placeholder_tokens

from himtok_apps.eval.metrics import OFFICIAL_EPSILON
from himtok_apps.eval.samples import Benchmark, Sample

TASKS = ("res", "rec")


@dataclass(frozen=True)
class Protocol:
    name: str
    merge_sentences: bool  # referring segmentation: one sample per object, all sentences in one prompt
    ignore_as_hit: bool
    epsilon: float
    official_boxes: bool

    def metadata(self, task: str) -> dict[str, Any]:
        """What the report records about how the numbers were computed."""
        meta: dict[str, Any] = {
            "protocol": "standard-v1" if self.name == "standard" else "himtok-official",
            "resolution": "original",
            "empty_union_iou": 1.0,
        }
        if self.name == "standard":
            meta.update(
                sample_unit="sentence (ReasonSeg: image, first text)",
                ignore_label="255 excluded",
                iou="I / U",
                query_field="sent",
            )
        else:
            meta.update(
                compat="himtok-official",
                sample_unit=(
                    "object, sentences merged" if task == "res" else "sentence, repeated twice in the prompt"
                )
                + " (ReasonSeg: image, first text)",
                ignore_label="255 counted as hit",
                iou="I / (U + 1e-10)",
                query_field="sent",
            )
        return meta


STANDARD = Protocol("standard", merge_sentences=False, ignore_as_hit=False, epsilon=0.0, official_boxes=False)
OFFICIAL = Protocol(
    "himtok-official", merge_sentences=True, ignore_as_hit=True, epsilon=OFFICIAL_EPSILON, official_boxes=True
)
PROTOCOLS = {p.name: p for p in (STANDARD, OFFICIAL)}


def build_samples(benchmark: Benchmark, protocol: Protocol, task: str = "res") -> list[Sample]:
    """The samples ``protocol`` scores on ``benchmark``, in file order. A ref without sentences gives none."""
    out: list[Sample] = []
    name, split = benchmark.name, benchmark.split
    for ref in benchmark.refs:
        if not ref.sentences:
            continue
        if name == "reasonseg":
            first = ref.sentences[0]
            out.append(Sample(str(ref.ref_id), name, split, ref, (first.sent,), (first.raw,)))
        elif task == "res" and protocol.merge_sentences:
            texts = tuple(s.sent for s in ref.sentences)
            out.append(Sample(str(ref.ref_id), name, split, ref, texts, tuple(s.raw for s in ref.sentences)))
        else:
            for sentence in ref.sentences:  # duplicate sentences are separate samples
                sample_id = f"{ref.ref_id}:{sentence.sent_id}"
                out.append(Sample(sample_id, name, split, ref, (sentence.sent,), (sentence.raw,)))
    return out


def merged_description(texts: tuple[str, ...]) -> str:
    """The official merge of an object's sentences into one referring text."""
    return "Meet all the descriptions: " + "".join(f"{i}. {t}. " for i, t in enumerate(texts, start=1))


def question(sample: Sample, protocol: Protocol, task: str = "res") -> str:
    """The user turn (without ``<image>``) for ``sample``; ``ValueError`` when its text holds reserved markup."""
    tokens = placeholder_tokens()
    if sample.benchmark == "reasonseg":
        text = sample.texts[0]
        asked = text if sample.subset == "long" else f"What is {text}?"
        fields: dict[str, Any] = {"question": asked, "answer": "the object", "tokens": tokens}
        return _instruction("reasoning", fields)
    if task == "rec":
        text = merged_description(sample.texts * 2) if protocol.official_boxes else sample.texts[0]
        fields = {"expression": text, "tokens": tokens, "box": (0, 0, 1, 1), "width": 1, "height": 1}
        return _instruction("segment_then_box", fields)
    text = merged_description(sample.texts) if protocol.merge_sentences else sample.texts[0]
    return _instruction("segment", {"expression": text, "tokens": tokens})


def _instruction(task: str, fields: dict[str, Any]) -> str:
    # The conversation's answer turn is built from placeholders and dropped: only the instruction is asked.
    return build_conversation(task, fields, style="official", image=False)[0]["value"]
