"""The official InternLM2 slow tokenizer files, rebuilt as a fast tokenizer: same ids, same slow decode.

The golden cases come from the official slow tokenizer (transformers 4.46.3); the property tests compare the
fast tokenizer with `sentencepiece` itself, chunk by chunk between the added tokens, as the slow code calls it.
"""

from __future__ import annotations

import json
import re
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
from himtok_lmm_adapter.official.tokenizer import (
    SentencePieceModel,
    build_fast_tokenizer,
    clean_up_tokenization,
    official_decode,
    read_sentencepiece,
)
from hypothesis import given
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerFast

pytestmark = pytest.mark.shared

VOCAB = 1635
USER_SYMBOLS = {"<|im_start|>": 3, "<|im_end|>": 4, "<|action_start|>": 5}


@pytest.fixture(scope="module")
def golden_lmm(shared_dir: Path) -> Path:
    """The official-tiny-lmm golden set (official HiMTok code, transformers 4.46.3)."""
    path = shared_dir / "reference" / "golden" / "official-tiny-lmm"
    if not (path / "official-checkpoint" / "tokenizer.model").is_file():
        pytest.skip(f"golden tokenizer files not found under {path}")
    return path


@pytest.fixture(scope="module")
def checkpoint(golden_lmm: Path) -> Path:
    return golden_lmm / "official-checkpoint"


@pytest.fixture(scope="module")
def cases(golden_lmm: Path) -> dict[str, list[Any]]:
    return json.loads((golden_lmm / "tokenizer_cases.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(checkpoint: Path) -> PreTrainedTokenizerFast:
    return build_fast_tokenizer(checkpoint)


@pytest.fixture(scope="module")
def added_tokens(checkpoint: Path) -> dict[str, int]:
    """content -> id of every added token of the slow tokenizer (tokenizer_config.json)."""
    config = json.loads((checkpoint / "tokenizer_config.json").read_text(encoding="utf-8"))
    return {entry["content"]: int(i) for i, entry in config["added_tokens_decoder"].items()}


def _variant(checkpoint: Path, target: Path, **normalizer: bool) -> Path:
    """A copy of the checkpoint's tokenizer files whose model has other normaliser settings."""
    from transformers.utils import sentencepiece_model_pb2_new

    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer_config.json", "added_tokens.json", "special_tokens_map.json"):
        shutil.copyfile(checkpoint / name, target / name)
    proto = sentencepiece_model_pb2_new.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString((checkpoint / "tokenizer.model").read_bytes())
    for key, value in normalizer.items():
        setattr(proto.normalizer_spec, key, value)
    (target / "tokenizer.model").write_bytes(proto.SerializeToString())
    return target


# ---------------------------------------------------------------------------------------------------------
# golden: the official slow tokenizer's ids and decodes
# ---------------------------------------------------------------------------------------------------------


def test_golden_ids_and_official_decodes(
    tokenizer: PreTrainedTokenizerFast, cases: dict[str, list[Any]]
) -> None:
    for text, ids, decoded in zip(cases["texts"], cases["ids"], cases["decoded"], strict=True):
        assert tokenizer(text)["input_ids"] == ids, text
        assert official_decode(tokenizer, ids) == decoded, text


def test_natural_decode_stays_plain(tokenizer: PreTrainedTokenizerFast, cases: dict[str, list[Any]]) -> None:
    text, ids = cases["texts"][0], cases["ids"][0]
    assert tokenizer.decode(ids) == "<s>" + text
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Segment the dog on the left."


def test_read_sentencepiece_reads_the_normaliser(checkpoint: Path) -> None:
    model = read_sentencepiece(checkpoint / "tokenizer.model")
    assert isinstance(model, SentencePieceModel)
    assert len(model) == 600 and model.model_type_name == "BPE" and model.byte_fallback
    assert (model.unk_id, model.bos_id, model.eos_id, model.pad_id) == (0, 1, 2, -1)
    assert not model.add_dummy_prefix and not model.remove_extra_whitespaces and model.escape_whitespaces
    assert model.precompiled_charsmap == b""
    assert model.user_defined_symbols == tuple(USER_SYMBOLS)


# ---------------------------------------------------------------------------------------------------------
# vocabulary, specials, round trip
# ---------------------------------------------------------------------------------------------------------


def test_added_tokens_keep_their_ids(
    tokenizer: PreTrainedTokenizerFast, checkpoint: Path, added_tokens: dict[str, int]
) -> None:
    assert len(tokenizer) == VOCAB
    for content, index in added_tokens.items():
        assert tokenizer.convert_tokens_to_ids(content) == index, content
        assert tokenizer.convert_ids_to_tokens(index) == content
    legacy = json.loads((checkpoint / "added_tokens.json").read_text(encoding="utf-8"))
    assert all(tokenizer.convert_tokens_to_ids(c) == i for c, i in legacy.items())
    assert {s: tokenizer.convert_tokens_to_ids(s) for s in USER_SYMBOLS} == USER_SYMBOLS
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<s>",
        "</s>",
        "</s>",
        "<unk>",
    )
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)
    assert tokenizer.padding_side == "left" and tokenizer.clean_up_tokenization_spaces is False


def test_bos_eos_and_pairs_follow_the_slow_tokenizer(tokenizer: PreTrainedTokenizerFast) -> None:
    assert tokenizer("dog")["input_ids"][0] == 1
    assert tokenizer("dog", add_special_tokens=False)["input_ids"] == [306]
    # slow build_inputs_with_special_tokens: BOS + A + B, no second BOS
    assert tokenizer("dog", "dog")["input_ids"] == [1, 306, 306]
    batch = tokenizer(["dog", "the dog"], padding=True)["input_ids"]
    assert batch[0][0] == tokenizer.pad_token_id  # left padding


def test_save_and_reload_round_trip(
    tokenizer: PreTrainedTokenizerFast, cases: dict[str, list[Any]], checkpoint: Path, tmp_path: Path
) -> None:
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )
    built = build_fast_tokenizer(checkpoint, chat_template=template)
    assert built.chat_template == template
    built.save_pretrained(tmp_path / "saved")
    reloaded = PreTrainedTokenizerFast.from_pretrained(tmp_path / "saved")
    assert len(reloaded) == VOCAB and reloaded.padding_side == "left" and reloaded.chat_template == template
    from_json = build_fast_tokenizer(tmp_path / "saved")  # a source with tokenizer.json only
    for text, ids, decoded in zip(cases["texts"], cases["ids"], cases["decoded"], strict=True):
        assert reloaded(text)["input_ids"] == ids == from_json(text)["input_ids"], text
        assert official_decode(reloaded, ids) == decoded == official_decode(from_json, ids)
    assert reloaded("dog", "dog")["input_ids"] == tokenizer("dog", "dog")["input_ids"]


# ---------------------------------------------------------------------------------------------------------
# property: the fast ids are sentencepiece's, chunk by chunk between the added tokens
# ---------------------------------------------------------------------------------------------------------

SPECIALS = (
    "<s>",
    "</s>",
    "<unk>",
    "<|im_start|>",
    "<|im_end|>",
    "<|action_start|>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "<|mt_start|>",
    "<|mt_end|>",
    "<|mt_0|>",
    "<|mt_1|>",
    "<|mt_17|>",
    "<|mt_1023|>",
)
WORDS = (
    "the",
    " dog",
    "Segment",
    " segment",
    "InternVL",
    " spaces",
    "你是书生",
    "大语言模型",
    "ing",
    "▁",
    " n't",
)

segments = st.one_of(
    st.text(alphabet=string.ascii_letters + string.punctuation, max_size=8),
    st.text(alphabet=string.digits, min_size=1, max_size=5),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=4),
    st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), min_size=1, max_size=2),
    st.text(alphabet=" \t\n", min_size=1, max_size=5),
    st.sampled_from(WORDS),
    st.sampled_from(SPECIALS),
)
texts = st.lists(segments, max_size=12).map("".join)


@pytest.fixture(scope="module")
def sp_processor(checkpoint: Path) -> Any:
    spm = pytest.importorskip("sentencepiece")
    return spm.SentencePieceProcessor(model_file=str(checkpoint / "tokenizer.model"))


def _slow_ids(sp: Any, text: str, added: dict[str, int]) -> list[int]:
    """The slow tokenizer's ids: BOS, then each added token, or sentencepiece on the chunk between them."""
    pattern = "|".join(re.escape(t) for t in sorted(added, key=len, reverse=True))
    ids = [1]
    for part in re.split(f"({pattern})", text):
        ids += [added[part]] if part in added else sp.encode(part) if part else []
    return ids


@given(text=texts)
def test_fast_ids_equal_sentencepiece_per_chunk(
    tokenizer: PreTrainedTokenizerFast, sp_processor: Any, added_tokens: dict[str, int], text: str
) -> None:
    assert tokenizer(text)["input_ids"] == _slow_ids(sp_processor, text, added_tokens)


@given(text=texts)
def test_official_decode_of_plain_text_is_sentencepiece_decode(
    tokenizer: PreTrainedTokenizerFast, sp_processor: Any, added_tokens: dict[str, int], text: str
) -> None:
    for token in added_tokens:
        text = text.replace(token, "")
    ids = sp_processor.encode(text)
    # convert_tokens_to_string of ["<s>", *pieces]: a space, "<s>", the sentencepiece decode, then clean-up
    expected = clean_up_tokenization(" <s>" + sp_processor.decode(ids))
    assert official_decode(tokenizer, [1, *ids]) == expected


@given(ids=st.lists(st.integers(min_value=3, max_value=599), max_size=12))
def test_official_decode_of_any_pieces_is_sentencepiece_decode(
    tokenizer: PreTrainedTokenizerFast, sp_processor: Any, ids: list[int]
) -> None:
    """Any sequence of ordinary pieces, byte pieces that are no valid UTF-8 included."""
    assert official_decode(tokenizer, [1, *ids]) == clean_up_tokenization(" <s>" + sp_processor.decode(ids))


# ---------------------------------------------------------------------------------------------------------
# the other normaliser settings: dummy prefix, extra whitespace removal
# ---------------------------------------------------------------------------------------------------------

VARIANT_TEXTS = (
    "",
    " ",
    "   ",
    "Segment <ref>the dog on the left</ref>.",
    "<|im_start|>user\n<image>\nWhere is it?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|>",
    "a <|im_start|> b",
    "x<|im_start|>  y  ",
    "<s><|im_start|></s>",
    "  leading  spaces\tand  trailing  ",
    "▁▁the ▁ dog▁",
    "The mask appears at <|mt_start|><|mt_0|><|mt_17|><|mt_end|>.",
    "你是书生·万象，英文名是InternVL  digits 2025 🙂 é",
    "<box> [12, 340]</box>\n\n<quad> q </quad>",
)


@pytest.mark.parametrize(
    "normalizer",
    [
        {"add_dummy_prefix": True},
        {"remove_extra_whitespaces": True},
        {"add_dummy_prefix": True, "remove_extra_whitespaces": True},
    ],
    ids=["dummy-prefix", "remove-extra-whitespaces", "both"],
)
def test_other_normaliser_settings_match_sentencepiece(
    checkpoint: Path, added_tokens: dict[str, int], tmp_path: Path, normalizer: dict[str, bool]
) -> None:
    spm = pytest.importorskip("sentencepiece")
    source = _variant(checkpoint, tmp_path / "variant", **normalizer)
    model = read_sentencepiece(source / "tokenizer.model")
    assert all(getattr(model, key) == value for key, value in normalizer.items())
    sp = spm.SentencePieceProcessor(model_file=str(source / "tokenizer.model"))
    tok = build_fast_tokenizer(source)
    for text in VARIANT_TEXTS:
        assert tok(text)["input_ids"] == _slow_ids(sp, text, added_tokens), text
        plain = text
        for token in added_tokens:
            plain = plain.replace(token, "")
        ids = sp.encode(plain)
        assert official_decode(tok, [1, *ids]) == clean_up_tokenization(" <s>" + sp.decode(ids)), plain


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------


def test_missing_files_are_named(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"tokenizer_config\.json"):
        build_fast_tokenizer(tmp_path)
    shutil.copyfile(checkpoint / "tokenizer_config.json", tmp_path / "tokenizer_config.json")
    with pytest.raises(ValueError, match=r"tokenizer\.model"):
        build_fast_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        read_sentencepiece(tmp_path / "tokenizer.model")


@pytest.mark.parametrize("content", [b"", b"this is not a sentencepiece model\n", b"\xff\xfe\x00garbage"])
def test_a_file_that_is_not_a_sentencepiece_model(checkpoint: Path, tmp_path: Path, content: bytes) -> None:
    shutil.copyfile(checkpoint / "tokenizer_config.json", tmp_path / "tokenizer_config.json")
    (tmp_path / "tokenizer.model").write_bytes(content)
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        read_sentencepiece(tmp_path / "tokenizer.model")
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        build_fast_tokenizer(tmp_path)


def test_unigram_models_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    from transformers.utils import sentencepiece_model_pb2_new

    source = _variant(checkpoint, tmp_path)
    proto = sentencepiece_model_pb2_new.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString((source / "tokenizer.model").read_bytes())
    proto.trainer_spec.model_type = 1  # UNIGRAM
    (source / "tokenizer.model").write_bytes(proto.SerializeToString())
    assert read_sentencepiece(source / "tokenizer.model").model_type_name == "UNIGRAM"
    with pytest.raises(ValueError, match=r"UNIGRAM.*only BPE"):
        build_fast_tokenizer(source)


def test_an_added_token_that_cannot_keep_its_id_is_named(checkpoint: Path, tmp_path: Path) -> None:
    source = _variant(checkpoint, tmp_path)
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["added_tokens_decoder"]["1700"] = config["added_tokens_decoder"].pop("1634")
    (source / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (source / "added_tokens.json").unlink()
    with pytest.raises(ValueError, match=re.escape("<|mt_1023|>")):
        build_fast_tokenizer(source)
