"""A small byte-level BPE tokenizer trained on the fly, for tests and CPU demos (no download).

Byte-level BPE can encode any text, so prompts outside the built-in corpus still work; the corpus only
decides which words get merged into single tokens. It covers the segmentation prompt templates.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

IMAGE_START = "<img>"
IMAGE_END = "</img>"
IMAGE_CONTEXT = "<IMG_CONTEXT>"
VIDEO = "<video>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"
# The InternVL2.5 special tokens that the official code also lists (they exist before the mask tokens).
INTERNVL_SPECIALS = (
    PAD,
    IM_START,
    IM_END,
    IMAGE_START,
    IMAGE_END,
    IMAGE_CONTEXT,
    VIDEO,
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
)

# Chat layout of InternVL2.5 (`internvl2_5` template); an image becomes one <IMG_CONTEXT> that the
# processor expands to <img> + image_seq_length x <IMG_CONTEXT> + </img>.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<IMG_CONTEXT>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_PHRASES = [
    "",
    "You are a helpful assistant that segments objects in images.",
    "Segment the object. Please segment it. Segment <ref>the dog</ref>. Segment <ref>road</ref>.",
    "The mask appears at the position you asked for. Sure, the segmentation mask is here.",
    "What is the object and mask in the image? What is the red car? It is the car on the left.",
    "First create the segmentation mask for <ref>the man</ref>, then identify its bounding box.",
    "Meet all the descriptions: 1. the person on the right. 2. a woman holding an umbrella.",
    "Can you segment the cat in this picture? There is no such object in the image.",
    "Please output the segmentation mask of the region in <box>[12, 250, 480, 999]</box>.",
    "Please segment the object at the point [512, 300]. Describe the region in the mask.",
    "Is there a bus in the image? Yes, there is. No, there is not. The answer is yes. The answer is no.",
    "Use exactly eight mask tokens. Use as many mask tokens as needed. The object is a bird in the sky.",
    "person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop sign",
    "parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag",
    "tie suitcase frisbee skis snowboard sports ball kite baseball bat glove skateboard surfboard tennis racket",
    "bottle wine glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot pizza donut",
    "cake chair couch potted plant bed dining table toilet tv laptop mouse remote keyboard cell phone microwave",
    "oven toaster sink refrigerator book clock vase scissors teddy hair drier toothbrush tree sky building",
    "grass water wall floor ceiling window door road sidewalk sign pole fence mountain sea river sand snow",
    "left right top bottom middle center front back near far small large big little tall short white black",
    "red green blue yellow brown gray pink purple wooden metal glass plastic first second third last other",
    "0 1 2 3 4 5 6 7 8 9 10 12 16 25 32 50 64 100 128 250 256 300 448 500 512 750 999 1000 1024",
    "",
]


def build_tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of at most `vocab_size` entries on the built-in corpus (well under a second)."""
    if vocab_size < 256 + len(INTERNVL_SPECIALS):
        raise ValueError(f"vocab_size must hold the 256 bytes and the specials, got {vocab_size}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(INTERNVL_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([line for line in _PHRASES if line.strip()] * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=PAD,
        padding_side="left",
        start_image_token=IMAGE_START,
        end_image_token=IMAGE_END,
        context_image_token=IMAGE_CONTEXT,
        video_token=VIDEO,
        chat_template=CHAT_TEMPLATE,
    )
