"""Chat formats: how a question (and an answer) become the model's prompt text.

`internvl2_5` is the format HiMTok was trained with: an `<|im_start|>role\\n ... <|im_end|>\\n` turn per message,
a system turn first (InternVL's Chinese system message by default), and `<|im_start|>assistant\\n` to start the
answer. The same format is available as a Jinja chat template for Hugging Face tokenizers (`chat_template_jinja`),
where the system message can be replaced by a first message with role `system`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INTERNVL2_5_SYSTEM_MESSAGE = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
IMAGE_PLACEHOLDER = "<image>"
IMAGE_START = "<img>"
IMAGE_END = "</img>"
IMAGE_CONTEXT = "<IMG_CONTEXT>"


@dataclass(frozen=True)
class ChatFormat:
    """A chat format of the "MPT" kind: system turn, then role prefix + message + separator per turn."""

    name: str
    system_message: str
    system_prefix: str
    user_prefix: str
    assistant_prefix: str
    separator: str

    @property
    def end_of_turn(self) -> str:
        """The token that ends a turn (what generation stops at)."""
        return self.separator.strip()


CHAT_FORMATS = {
    "internvl2_5": ChatFormat(
        name="internvl2_5",
        system_message=INTERNVL2_5_SYSTEM_MESSAGE,
        system_prefix="<|im_start|>system\n",
        user_prefix="<|im_start|>user\n",
        assistant_prefix="<|im_start|>assistant\n",
        separator="<|im_end|>\n",
    ),
}


def get_chat_format(name: str) -> ChatFormat:
    if name not in CHAT_FORMATS:
        raise ValueError(f"unknown chat format {name!r}; known: {sorted(CHAT_FORMATS)}")
    return CHAT_FORMATS[name]


def format_chat(
    question: str,
    answer: str | None = None,
    *,
    chat_format: str = "internvl2_5",
    system_message: str | None = None,
) -> str:
    """The prompt for one question; with `answer`, the whole exchange closed by the end-of-turn separator.

    Without an answer the text ends with the assistant prefix, ready for generation.
    """
    if not isinstance(question, str):
        raise ValueError(f"question must be a string, got {type(question).__name__}")
    fmt = get_chat_format(chat_format)
    system = fmt.system_message if system_message is None else system_message
    text = fmt.system_prefix + system + fmt.separator + fmt.user_prefix + question + fmt.separator
    text += fmt.assistant_prefix
    if answer is not None:
        text += answer + fmt.separator
    return text


def format_conversation(
    turns: Sequence[Mapping[str, str]],
    *,
    chat_format: str = "internvl2_5",
    system_message: str | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    """A whole training conversation as text, and the character ranges a trainer supervises.

    `turns` alternate `{"from": "human"|"gpt", "value": ...}` (the official data layout), human first. Each gpt
    value and the end-of-turn separator after it are supervised (the standard InternVL preprocessing); the
    ranges are `(start, end)` character offsets into the text, to be matched with a fast tokenizer's offsets.
    """
    fmt = get_chat_format(chat_format)
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    system = fmt.system_message if system_message is None else system_message
    text = fmt.system_prefix + system + fmt.separator
    supervised: list[tuple[int, int]] = []
    for index, turn in enumerate(turns):
        role, value = turn.get("from"), turn.get("value")
        expected = "human" if index % 2 == 0 else "gpt"
        if role != expected:
            raise ValueError(f"turn {index} is from {role!r}; turns must alternate human, gpt, human, ...")
        if not isinstance(value, str):
            raise ValueError(f"turn {index} has no text value")
        if role == "human":
            text += fmt.user_prefix + value + fmt.separator
        else:
            text += fmt.assistant_prefix
            start = len(text)
            text += value + fmt.separator
            supervised.append((start, len(text)))
    return text, supervised


def expand_image_placeholder(prompt: str, tokens_per_image: int) -> str:
    """Replace the first `<image>` with `<img>` + `<IMG_CONTEXT>` x `tokens_per_image` + `</img>`."""
    if tokens_per_image < 0:
        raise ValueError(f"tokens_per_image must be >= 0, got {tokens_per_image}")
    if IMAGE_PLACEHOLDER not in prompt:
        raise ValueError(f"the prompt holds no {IMAGE_PLACEHOLDER} placeholder")
    return prompt.replace(IMAGE_PLACEHOLDER, IMAGE_START + IMAGE_CONTEXT * tokens_per_image + IMAGE_END, 1)


def with_image_placeholder(question: str) -> str:
    """`<image>\\n` + question unless the question already places the image (the official rule)."""
    return question if IMAGE_PLACEHOLDER in question else IMAGE_PLACEHOLDER + "\n" + question


def chat_template_jinja(chat_format: str = "internvl2_5") -> str:
    """A Jinja chat template for Hugging Face tokenizers that renders exactly like `format_chat`.

    Message content is a string or a list of parts (`{"type": "image"}` -> `<image>\\n`, `{"type": "text",
    "text": ...}`). A leading `system` message replaces the default system message.
    """
    fmt = get_chat_format(chat_format)

    def literal(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"

    return (
        "{%- set system = " + literal(fmt.system_message) + " -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] -%}{%- set messages = messages[1:] -%}"
        "{%- endif -%}"
        "{{- " + literal(fmt.system_prefix) + " + system + " + literal(fmt.separator) + " -}}"
        "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{- " + literal(IMAGE_PLACEHOLDER + "\n") + " -}}"
        "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- " + literal(fmt.separator) + " -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + literal(fmt.assistant_prefix) + " -}}{%- endif -%}"
    )
