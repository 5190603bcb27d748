"""Training conversations for stages 2 and 3: image, turns with mask placeholders, and the masks behind them.

A ``ConversationSample`` holds ``image`` (PIL RGB), ``turns`` (``[{"from": "human"|"gpt", "value": str}]``, the
first human turn holding ``<image>``), ``masks`` (bool [H, W] at the image's size, one per placeholder in reading
order across all turns), ``source`` (the spec), ``key`` (a stable record id) and ``meta`` (task, expression(s),
absent, box, ...). A mask placeholder is exactly ``PLACEHOLDER`` = ``<|mt_start|>`` + 32 x ``<|mt_0|>`` +
``<|mt_end|>``; the trainer swaps the 32 placeholders of every mask for the codes the frozen mask encoder
computes from that mask. Samples that pass ``validate_sample`` always have as many masks as placeholders.

Sources, one per ``--data`` spec (``parse_conversation_spec``; ``KIND:PATH[,EXTRA][?options][:weight|*weight]``):

- ``official:META.json[,BASE_DIR]``: the official meta JSON and its JSONL (``OfficialSource``);
- ``refexp:FILE.jsonl[,ROOT]`` / ``?root=DIR``: referring expressions on COCO instances (``RefexpSource``);
- ``coco:instances.json[,IMAGES_DIR]``: generated conversations for every task family
  (``CocoConversationSource``; ``tasks=``, ``absent=``, ``min_area=``, ``variants=``);
- ``shapes:[options]``: procedural referring scenes, the CPU learning test (``ShapesSource``; ``seed=``,
  ``size=``, ``min_shapes=``, ``max_shapes=``, ``absent=``, ``tasks=``, ``exprs=``, ``colors=``, ``kinds=``, ...).

Every source has ``len()``, ``item_key(i)`` and a deterministic ``sample(i)`` that raises ``SampleError`` for a
record it cannot use. ``ConversationMixture(sources, weights, seed=, skips=)`` draws ``sample(n)`` (global
sample n) and ``batch(step, batch_size, rank, world_size)`` from ``(seed, n)``, skipping and counting bad
records in a ``SkipCounter`` (set ``skips.echo = tqdm.write`` to print the first few reasons).

API: ``build_conversation_source(spec, skips=None)``, ``build_conversation_mixture(specs, seed=, skips=)``,
``ConversationMixture``, ``ConversationSample``, ``ConversationSource``, ``ConversationSpec``,
``parse_conversation_spec``, ``validate_sample``, ``count_placeholders``, ``PLACEHOLDER``, ``SampleError``,
``held_out_shapes(n, spec="shapes:", seed=None)`` (evaluation samples from scenes training never sees),
``TASK_DEFAULTS``, ``FORM_DEFAULTS``, ``HELD_OUT_SEED``.
"""

from himtok_apps.conversations.build import build_conversation_mixture, build_conversation_source
from himtok_apps.conversations.coco import CocoConversationSource
from himtok_apps.conversations.mixture import ConversationMixture
from himtok_apps.conversations.official import OfficialSource
from himtok_apps.conversations.refexp import RefexpSource
from himtok_apps.conversations.sample import (
    PLACEHOLDER,
    ConversationSample,
    SampleError,
    count_placeholders,
    validate_sample,
)
from himtok_apps.conversations.shapes import ShapesSource, held_out_shapes
from himtok_apps.conversations.source import ConversationSource
from himtok_apps.conversations.spec import (
    CONVERSATION_KINDS,
    FORM_DEFAULTS,
    HELD_OUT_SEED,
    TASK_DEFAULTS,
    ConversationSpec,
    parse_conversation_spec,
)

__all__ = [
    "CONVERSATION_KINDS",
    "FORM_DEFAULTS",
    "HELD_OUT_SEED",
    "PLACEHOLDER",
    "TASK_DEFAULTS",
    "CocoConversationSource",
    "ConversationMixture",
    "ConversationSample",
    "ConversationSource",
    "ConversationSpec",
    "OfficialSource",
    "RefexpSource",
    "SampleError",
    "ShapesSource",
    "build_conversation_mixture",
    "build_conversation_source",
    "count_placeholders",
    "held_out_shapes",
    "parse_conversation_spec",
    "validate_sample",
]
