"""The official InternVL/HiMTok slow tokenizer files as a transformers `PreTrainedTokenizerFast`, same ids.

The official release ships an InternLM2 *slow* tokenizer (`tokenizer.model`, a sentencepiece BPE, plus
`tokenizer_config.json` and the remote-code class that reads them). `build_fast_tokenizer` rebuilds it with the
`tokenizers` library only: no remote code, and no `sentencepiece` import (the model file is read with protobuf).

What the slow tokenizer does, and how the fast one reproduces it:

* it first splits the text on its added tokens (leftmost, longest match), then calls `sp_model.encode` on
  every chunk in between. The added tokens become `tokenizers` added tokens at their original ids, and the
  normaliser runs per chunk, so sentencepiece's dummy prefix and whitespace clean-up apply per chunk too;
* sentencepiece's user-defined symbols (InternLM2's `<|im_start|>`, `<|im_end|>`, ...) that the config does
  not list as added tokens stay whole inside a chunk: they are plain (non-special) added tokens, except with
  a dummy prefix, where the pre-tokenizer isolates them after the chunk was normalised;
* sentencepiece BPE merges the adjacent pair whose concatenation is the best scored piece. The merge list
  holds every split of every normal piece into two normal pieces, ranked by that piece's score, which is the
  same rule; byte fallback, unknown-piece fusion and every normaliser setting of the model file (dummy
  prefix, extra whitespace removal, whitespace escaping, precompiled character map) are honoured;
* BOS is prepended (`add_bos_token`, default true) and EOS appended with `add_eos_token`; a pair is
  `BOS A B`, as in the slow tokenizer.

`official_decode` reproduces the slow `decode(ids, skip_special_tokens=False)` string, with its spaces
around added tokens; `tokenizer.decode` stays the natural fast decode (it differs from sentencepiece only on
invalid UTF-8 byte runs and on leading lone-space pieces).

Known differences, none of which the InternLM2/InternVL files trigger: only BPE models are accepted; equal
scores of *different* pieces are ordered by id (sentencepiece takes the leftmost pair); `UNUSED` pieces are
never merged into. With a dummy prefix *and* user symbols outside the added tokens, a text part between two
such symbols (or after one, up to the chunk's end) that spells a whole vocabulary entry that sentencepiece
would not produce from text, such as the byte piece `<0x41>`, maps to that entry.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

from himtok_lmm_adapter.official.config import OfficialFormatError

MODEL_FILE = "tokenizer.model"
CONFIG_FILE = "tokenizer_config.json"
ADDED_TOKENS_FILE = "added_tokens.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
FAST_FILE = "tokenizer.json"

SPACE_SYMBOL = "\u2581"  # sentencepiece's visible space, "▁"

# sentencepiece ModelProto.SentencePiece.Type
PIECE_NORMAL = 1
PIECE_UNKNOWN = 2
PIECE_CONTROL = 3
PIECE_USER_DEFINED = 4
PIECE_UNUSED = 5
PIECE_BYTE = 6

# sentencepiece TrainerSpec.ModelType
MODEL_UNIGRAM = 1
MODEL_BPE = 2
MODEL_WORD = 3
MODEL_CHAR = 4
_MODEL_TYPE_NAMES = {MODEL_UNIGRAM: "UNIGRAM", MODEL_BPE: "BPE", MODEL_WORD: "WORD", MODEL_CHAR: "CHAR"}

# The named special tokens of a transformers 4.x tokenizer, in its `all_special_tokens` order.
_NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# InternLM2Tokenizer's defaults.
_DEFAULT_SPECIALS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>"}

# Stored in the tokenizer's init kwargs (so in tokenizer_config.json), for `official_decode`: the
# sentencepiece user symbols that are added tokens of the fast tokenizer only (the slow tokenizer leaves them
# to sentencepiece), and whether sentencepiece's decode drops every leading space piece (whitespace clean-up).
OFFICIAL_KEY = "official_slow_tokenizer"


@dataclass(frozen=True)
class SentencePieceModel:
    """What a sentencepiece `.model` file says about its vocabulary and its normaliser."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]
    model_type: int
    byte_fallback: bool
    unk_id: int
    bos_id: int
    eos_id: int
    pad_id: int
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool
    precompiled_charsmap: bytes
    normalizer_name: str = ""
    treat_whitespace_as_suffix: bool = False

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def model_type_name(self) -> str:
        return _MODEL_TYPE_NAMES.get(self.model_type, str(self.model_type))

    @property
    def user_defined_symbols(self) -> tuple[str, ...]:
        """The pieces sentencepiece keeps whole wherever they appear in the text (`USER_DEFINED`)."""
        return tuple(p for p, t in zip(self.pieces, self.types, strict=True) if t == PIECE_USER_DEFINED)

    def piece_ids(self) -> dict[str, int]:
        return {piece: i for i, piece in enumerate(self.pieces)}


def _model_proto() -> Any:
    from transformers.utils import sentencepiece_model_pb2_new

    return sentencepiece_model_pb2_new.ModelProto()  # type: ignore[attr-defined]


def read_sentencepiece(path: str | Path) -> SentencePieceModel:
    """Read a sentencepiece `.model` file with protobuf (no `sentencepiece` import).

    Raises `ValueError` (`OfficialFormatError`) when the file is missing or is not a sentencepiece model.
    Every model type is read; `build_fast_tokenizer` then accepts BPE models only.
    """
    path = Path(path)
    if not path.is_file():
        raise OfficialFormatError(f"{path}: sentencepiece model file not found")
    proto = _model_proto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf raises DecodeError (or RuntimeError with some backends)
        raise OfficialFormatError(f"{path} is not a sentencepiece model: {err}") from err
    if len(proto.pieces) == 0 or any(not p.piece for p in proto.pieces):
        raise OfficialFormatError(f"{path} is not a sentencepiece model: it has no (or empty) pieces")
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    return SentencePieceModel(
        pieces=tuple(p.piece for p in proto.pieces),
        scores=tuple(float(p.score) for p in proto.pieces),
        types=tuple(int(p.type) for p in proto.pieces),
        model_type=int(trainer.model_type),
        byte_fallback=bool(trainer.byte_fallback),
        unk_id=int(trainer.unk_id),
        bos_id=int(trainer.bos_id),
        eos_id=int(trainer.eos_id),
        pad_id=int(trainer.pad_id),
        add_dummy_prefix=bool(norm.add_dummy_prefix),
        remove_extra_whitespaces=bool(norm.remove_extra_whitespaces),
        escape_whitespaces=bool(norm.escape_whitespaces),
        precompiled_charsmap=bytes(norm.precompiled_charsmap),
        normalizer_name=str(norm.name),
        treat_whitespace_as_suffix=bool(trainer.treat_whitespace_as_suffix),
    )


# ----------------------------------------------------------------------------------------------------------
# The backend (`tokenizers`) pieces
# ----------------------------------------------------------------------------------------------------------


def _check_supported(model: SentencePieceModel, path: Path) -> None:
    if model.model_type != MODEL_BPE:
        raise OfficialFormatError(
            f"{path}: sentencepiece {model.model_type_name} models are not supported; only BPE models "
            "(the kind InternLM2 / InternVL tokenizers use) are"
        )
    if model.treat_whitespace_as_suffix:
        raise OfficialFormatError(f"{path}: treat_whitespace_as_suffix models are not supported")
    if not 0 <= model.unk_id < len(model):
        raise OfficialFormatError(f"{path}: the model has no unknown piece (unk_id {model.unk_id})")


def bpe_merges(model: SentencePieceModel) -> list[tuple[str, str]]:
    """Every (left, right) pair of normal pieces whose concatenation is a normal piece, best piece first.

    sentencepiece BPE repeatedly merges the adjacent pair whose concatenation is the best scored piece,
    whatever pair produced it, so ranking all splits of a piece by that piece's score is the same rule.
    """
    normal = {p for p, t in zip(model.pieces, model.types, strict=True) if t == PIECE_NORMAL}
    ranked: list[tuple[float, int, int, tuple[str, str]]] = []
    for index, (piece, score, kind) in enumerate(zip(model.pieces, model.scores, model.types, strict=True)):
        if kind != PIECE_NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, cut, (left, right)))
    ranked.sort(key=lambda item: item[:3])
    return [pair for *_, pair in ranked]


def _space(model: SentencePieceModel) -> str:
    return SPACE_SYMBOL if model.escape_whitespaces else " "


def _normalizer(model: SentencePieceModel) -> normalizers.Normalizer | None:
    """sentencepiece's normaliser, applied to one chunk between added tokens.

    With `remove_extra_whitespaces`, sentencepiece drops the leading spaces and collapses runs of spaces
    (only " " after the character map, not tabs, newlines or a literal "▁"), then, after escaping, drops
    every trailing space symbol, a literal "▁" and the dummy prefix included.
    """
    space = _space(model)
    steps: list[normalizers.Normalizer] = []
    if model.precompiled_charsmap:
        steps.append(normalizers.Precompiled(model.precompiled_charsmap))
    if model.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"\A +"), ""), normalizers.Replace(Regex(r" {2,}"), " ")]
    if model.add_dummy_prefix:  # Prepend leaves an empty chunk empty, as sentencepiece does
        steps.append(normalizers.Prepend(space))
    if model.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPACE_SYMBOL))
    if model.remove_extra_whitespaces:
        steps.append(normalizers.Replace(Regex(re.escape(space) + r"+\z"), ""))
    return normalizers.Sequence(steps) if steps else None


def _decoder(model: SentencePieceModel) -> decoders.Decoder:
    """sentencepiece's `decode` of a run of pieces (its leading space is dropped when it adds one)."""
    steps: list[decoders.Decoder] = [decoders.Replace(SPACE_SYMBOL, " ")]
    if model.byte_fallback:
        steps.append(decoders.ByteFallback())
    steps.append(decoders.Fuse())
    if model.add_dummy_prefix or model.remove_extra_whitespaces:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    return decoders.Sequence(steps)


def _symbol_pattern(symbols: Iterable[str], space: str) -> str:
    """A regex alternation of the symbols (as they read after normalisation), longest first."""
    ordered = sorted({s.replace(" ", space) for s in symbols}, key=lambda s: (-len(s), s))
    return "|".join(re.escape(s) for s in ordered)


def _backend(model: SentencePieceModel, free_symbols: Sequence[str]) -> tuple[Tokenizer, list[AddedToken]]:
    """The `tokenizers` BPE tokenizer of the model, and the added tokens its user symbols need.

    `free_symbols` are the user-defined symbols that are not added tokens of the slow tokenizer: sentencepiece
    keeps them whole inside a chunk, and the dummy prefix and whitespace clean-up still see the whole chunk.
    Without a dummy prefix they become added tokens matched on the raw text (exact), or on the normalised
    chunk when extra whitespace is removed (exact too: the symbols hold no spaces). With a dummy prefix no
    added token can be right (the prefix goes before a symbol that opens a chunk, and nowhere else), so they
    are isolated by the pre-tokenizer after normalisation and looked up whole (`ignore_merges`).
    """
    isolate = bool(free_symbols) and model.add_dummy_prefix
    backend = Tokenizer(
        BPE(
            vocab=model.piece_ids(),
            merges=bpe_merges(model),
            unk_token=model.pieces[model.unk_id],
            fuse_unk=True,
            byte_fallback=model.byte_fallback,
            ignore_merges=isolate,
        )
    )
    normalizer = _normalizer(model)
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.decoder = _decoder(model)
    if isolate:
        pattern = _symbol_pattern(free_symbols, _space(model))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        return backend, []
    normalized = model.remove_extra_whitespaces
    return backend, [AddedToken(s, normalized=normalized, special=False) for s in free_symbols]


# ----------------------------------------------------------------------------------------------------------
# The official configuration: special and added tokens, as transformers 4.x reads them
# ----------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise OfficialFormatError(f"{path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OfficialFormatError(f"{path} is not valid JSON: {err}") from err


def _content(token: Any) -> str | None:
    """The text of a token given as a string or as a serialised `AddedToken` dict."""
    if token is None:
        return None
    if isinstance(token, dict):
        return str(token["content"])
    return str(token)


def _added_token(entry: Any, *, special: bool | None = None) -> AddedToken:
    if isinstance(entry, dict):
        return AddedToken(
            str(entry["content"]),
            single_word=bool(entry.get("single_word", False)),
            lstrip=bool(entry.get("lstrip", False)),
            rstrip=bool(entry.get("rstrip", False)),
            normalized=False,  # the slow tokenizer matches every added token on the raw text
            special=bool(entry.get("special", False)) if special is None else special,
        )
    return AddedToken(str(entry), normalized=False, special=bool(special))


@dataclass(frozen=True)
class OfficialTokens:
    """The special and added tokens of the official slow tokenizer, resolved like transformers 4.x does."""

    named: dict[str, str]  # bos_token ... mask_token -> content (only those set)
    additional: tuple[str, ...]  # additional_special_tokens, in order
    added: dict[int, AddedToken]  # id -> token, every added token of the slow tokenizer
    add_bos_token: bool
    add_eos_token: bool
    clean_up_tokenization_spaces: bool


def _official_tokens(
    source: Path, config: dict[str, Any], model: SentencePieceModel | None
) -> OfficialTokens:
    """Named/additional special tokens and the added tokens (id -> token) of the slow tokenizer."""
    named_raw: dict[str, Any] = {k: config.get(k, _DEFAULT_SPECIALS.get(k)) for k in _NAMED_SPECIALS}
    additional_raw = list(config.get("additional_special_tokens") or [])
    added: dict[int, AddedToken] = {}
    map_file, added_file = source / SPECIAL_TOKENS_MAP_FILE, source / ADDED_TOKENS_FILE
    if "added_tokens_decoder" in config:
        for key, entry in config["added_tokens_decoder"].items():
            added[int(key)] = _added_token(entry)
        if added_file.is_file():  # ignored by transformers here; it must at least agree
            listed = {str(t): i for i, t in added.items()}
            for content, index in _read_json(added_file).items():
                if listed.get(content) != index:
                    raise OfficialFormatError(
                        f"{added_file}: {content!r} has id {index}, but {CONFIG_FILE}'s added_tokens_decoder "
                        f"gives {listed.get(content)}"
                    )
    else:  # legacy layout: special_tokens_map.json overrides, added_tokens.json lists the added tokens
        if map_file.is_file():
            for key, value in _read_json(map_file).items():
                if key == "additional_special_tokens":
                    present = [_content(t) for t in additional_raw]
                    additional_raw += [t for t in value if _content(t) not in present]
                elif key in named_raw:
                    named_raw[key] = value
        specials = {_content(v) for v in named_raw.values() if v is not None}
        specials |= {_content(t) for t in additional_raw}
        if added_file.is_file():
            for content, index in _read_json(added_file).items():
                added[int(index)] = _added_token(content, special=content in specials)
    named = {k: c for k, v in named_raw.items() if (c := _content(v)) is not None}
    additional = tuple(dict.fromkeys(c for t in additional_raw if (c := _content(t)) is not None))
    # transformers 4.x then adds every special token that is not an added token yet (at its vocabulary id,
    # or at the next free id).
    if model is not None:
        piece_ids = model.piece_ids()
        known = {str(t) for t in added.values()}
        for content in [named[k] for k in _NAMED_SPECIALS if k in named] + list(additional):
            if content in known:
                continue
            index = piece_ids.get(content, len(model) + len([i for i in added if i >= len(model)]))
            added[index] = AddedToken(content, normalized=False, special=True)
            known.add(content)
    return OfficialTokens(
        named=named,
        additional=additional,
        added=dict(sorted(added.items())),
        add_bos_token=bool(config.get("add_bos_token", True)),
        add_eos_token=bool(config.get("add_eos_token", False)),
        clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
    )


def _add_official_tokens(backend: Tokenizer, model: SentencePieceModel, tokens: OfficialTokens) -> None:
    """Add the slow tokenizer's added tokens in id order; ids past the vocabulary must be contiguous."""
    next_free = len(model)
    for index, token in tokens.added.items():
        if index < len(model) and model.pieces[index] != token.content:
            raise OfficialFormatError(
                f"added token {token.content!r} has id {index}, where {MODEL_FILE} has {model.pieces[index]!r}"
            )
        if index >= len(model):
            if index != next_free:
                raise OfficialFormatError(
                    f"added token {token.content!r} has id {index}: the ids after the vocabulary of "
                    f"{len(model)} pieces must be contiguous (next free id is {next_free})"
                )
            next_free += 1
    backend.add_tokens(
        list(tokens.added.values())
    )  # in id order: new ones get len(model), len(model) + 1, ...


def _special_kwargs(tokens: OfficialTokens, config: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(tokens.named)
    kwargs["extra_special_tokens"] = list(tokens.additional)
    kwargs["clean_up_tokenization_spaces"] = tokens.clean_up_tokenization_spaces
    kwargs["padding_side"] = "left"
    if "model_max_length" in config:
        kwargs["model_max_length"] = config["model_max_length"]
    return kwargs


def _official_meta(model: SentencePieceModel, symbol_tokens: Sequence[AddedToken]) -> dict[str, Any]:
    return {
        "user_symbols": [t.content for t in symbol_tokens],
        "remove_extra_whitespaces": model.remove_extra_whitespaces,
    }


def _verify_ids(tokenizer: PreTrainedTokenizerFast, expected: dict[int, AddedToken]) -> None:
    for index, token in expected.items():
        got = tokenizer.convert_tokens_to_ids(token.content)
        if got != index:
            raise OfficialFormatError(
                f"added token {token.content!r} got id {got}, but the files give {index}"
            )


def build_fast_tokenizer(
    source_dir: str | Path, *, chat_template: str | None = None
) -> PreTrainedTokenizerFast:
    """The official slow tokenizer of `source_dir` as a `PreTrainedTokenizerFast` giving the same ids.

    Reads `tokenizer.model` + `tokenizer_config.json` (+ `added_tokens.json` / `special_tokens_map.json`
    where transformers 4.x reads them). A source that ships only `tokenizer.json` is loaded as it is, with
    the config's special tokens. Every added token keeps its id (checked), BOS/EOS follow `add_bos_token` /
    `add_eos_token` (default true / false), padding is on the left, and `chat_template` is stored when given.
    Raises `ValueError` (`OfficialFormatError`) naming the file that is missing or malformed.
    """
    source = Path(source_dir)
    config = _read_json(source / CONFIG_FILE)
    model_path = source / MODEL_FILE
    if not model_path.is_file():
        if (source / FAST_FILE).is_file():
            return _load_fast_json(source, config, chat_template)
        raise OfficialFormatError(f"{model_path} not found (and no {FAST_FILE} either)")
    model = read_sentencepiece(model_path)
    _check_supported(model, model_path)
    tokens = _official_tokens(source, config, model)
    listed = {t.content for t in tokens.added.values()}
    free_symbols = [s for s in model.user_defined_symbols if s not in listed]
    backend, symbol_tokens = _backend(model, free_symbols)
    _add_official_tokens(backend, model, tokens)
    backend.add_tokens(symbol_tokens)
    bos, eos = tokens.named.get("bos_token"), tokens.named.get("eos_token")
    if tokens.add_bos_token and (bos is None or backend.token_to_id(bos) != model.bos_id):
        raise OfficialFormatError(
            f"{CONFIG_FILE}: bos_token {bos!r} is not piece {model.bos_id} of {MODEL_FILE}"
        )
    if tokens.add_eos_token and (eos is None or backend.token_to_id(eos) != model.eos_id):
        raise OfficialFormatError(
            f"{CONFIG_FILE}: eos_token {eos!r} is not piece {model.eos_id} of {MODEL_FILE}"
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        add_bos_token=tokens.add_bos_token,
        add_eos_token=tokens.add_eos_token,
        chat_template=chat_template,
        **{OFFICIAL_KEY: _official_meta(model, symbol_tokens)},
        **_special_kwargs(tokens, config),
    )
    tokenizer.backend_tokenizer.post_processor = _slow_template(
        backend, bos if tokens.add_bos_token else None, eos if tokens.add_eos_token else None
    )
    _verify_ids(tokenizer, tokens.added)
    return tokenizer


def _slow_template(backend: Tokenizer, bos: str | None, eos: str | None) -> processors.TemplateProcessing:
    """[BOS] A [B] [EOS], like the slow `build_inputs_with_special_tokens` (no second BOS before B).

    transformers 5 writes `<s> A <s> B` for pairs when it builds the template itself (after a change of
    `add_bos_token`), so this one is set on the backend, where `save_pretrained` keeps it.
    """
    single, pair, specials = [], [], []
    if bos is not None:
        single.append(f"{bos}:0")
        pair.append(f"{bos}:0")
        specials.append((bos, backend.token_to_id(bos)))
    single.append("$A:0")
    pair += ["$A:0", "$B:1"]
    if eos is not None:
        single.append(f"{eos}:0")
        pair.append(f"{eos}:1")
        if eos != bos:
            specials.append((eos, backend.token_to_id(eos)))
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def _load_fast_json(
    source: Path, config: dict[str, Any], chat_template: str | None
) -> PreTrainedTokenizerFast:
    """A source already in the fast format: load `tokenizer.json` and apply the config's special tokens."""
    tokens = _official_tokens(source, config, None)
    kwargs = _special_kwargs(tokens, config)
    for key in ("add_bos_token", "add_eos_token"):  # else keep the post-processor of tokenizer.json
        if key in config:
            kwargs[key] = bool(config[key])
    if OFFICIAL_KEY in config:  # written by `save_pretrained` of a tokenizer built here
        kwargs[OFFICIAL_KEY] = config[OFFICIAL_KEY]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(source / FAST_FILE), chat_template=chat_template, **kwargs
    )
    _verify_ids(tokenizer, tokens.added)
    return tokenizer


# ----------------------------------------------------------------------------------------------------------
# The slow decode
# ----------------------------------------------------------------------------------------------------------


def clean_up_tokenization(text: str) -> str:
    """transformers 4.x `clean_up_tokenization` (spaces before punctuation and English contractions)."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


def _legacy_added_tokens(tokenizer: PreTrainedTokenizerFast, specials: set[str]) -> set[str]:
    """transformers 4.x `_decode`'s "legacy added tokens": joined to the text with spaces around them.

    They are the added tokens that are not special, plus the additional special tokens past the vocabulary.
    """
    added = tokenizer.get_added_vocab()  # content -> id
    fast_only = set(_meta(tokenizer).get("user_symbols") or [])
    extra = {str(t) for t in tokenizer.extra_special_tokens}
    past_vocab = {t for t in extra if added.get(t, -1) >= tokenizer.vocab_size}
    return (set(added) - fast_only - specials) | past_vocab


_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")
_GUARD = "x"  # a piece the decoder leaves alone: decoding after it keeps a leading space


def _is_byte_piece(piece: str) -> bool:
    return _BYTE_PIECE.fullmatch(piece) is not None


def _utf8_bytes_to_text(data: bytes) -> str:
    """sentencepiece's decoding of byte pieces: UTF-8, with one U+FFFD per byte that starts no character.

    (The `tokenizers` ByteFallback decoder turns the whole run into U+FFFDs as soon as one byte is invalid.)
    """
    out: list[str] = []
    i = 0
    while i < len(data):
        lead = data[i]
        size = 1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4
        try:
            out.append(data[i : i + size].decode("utf-8"))
            i += size
        except UnicodeDecodeError:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def _meta(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    return dict(tokenizer.init_kwargs.get(OFFICIAL_KEY) or {})


def _decode_run(tokenizer: PreTrainedTokenizerFast, pieces: list[str]) -> str:
    """sentencepiece's `decode` of a run of ordinary pieces, with the fast tokenizer's decoder.

    Byte pieces are decoded the sentencepiece way. With a dummy prefix the first piece of the run loses its
    leading space (the decoder's Strip); with whitespace clean-up the leading pieces that are a lone space
    vanish as well, until one gives text. A byte piece never loses its space.
    """
    decoder = tokenizer.backend_tokenizer.decoder
    if _meta(tokenizer).get("remove_extra_whitespaces"):
        pieces = list(itertools.dropwhile(lambda p: p == SPACE_SYMBOL, pieces))
    parts: list[str] = []
    for is_bytes, group in itertools.groupby(pieces, key=_is_byte_piece):
        run = list(group)
        if is_bytes:
            parts.append(_utf8_bytes_to_text(bytes(int(p[3:5], 16) for p in run)))
        elif decoder is None:
            parts.append("".join(run))
        elif not parts:
            parts.append(decoder.decode(run))
        else:
            parts.append(decoder.decode([_GUARD, *run])[len(_GUARD) :])
    return "".join(parts)


def _tokens_to_string(tokenizer: PreTrainedTokenizerFast, tokens: list[str], specials: set[str]) -> str:
    """InternLM2Tokenizer.convert_tokens_to_string: a space before each run of special tokens.

    (Its `_maybe_add_prefix_space` always adds a space, which the final `[1:]` removes again, and it always
    applies `clean_up_tokenization`, whatever `clean_up_tokenization_spaces` says.)
    """
    out, prev_is_special = "", False
    run: list[str] = []
    for token in tokens:
        if token in specials:
            if not prev_is_special:
                out += " "
            out += _decode_run(tokenizer, run) + token
            run, prev_is_special = [], True
        else:
            run.append(token)
            prev_is_special = False
    return clean_up_tokenization(out + _decode_run(tokenizer, run))


def official_decode(tokenizer: PreTrainedTokenizerFast, ids: Iterable[int]) -> str:
    """The official slow tokenizer's `decode(ids, skip_special_tokens=False)` (transformers 4.46), exactly.

    The slow decode cuts the tokens at its "legacy" added tokens (here the InternVL and mask tokens), turns
    each run in between into text (a space before special tokens such as `<s>`), and joins everything with
    single spaces: `" <s>Segment  <ref> the dog on the left </ref> ."`.
    """
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    specials = set(tokenizer.all_special_tokens)
    legacy = _legacy_added_tokens(tokenizer, specials)
    texts: list[str] = []
    run: list[str] = []
    for token in tokens:
        if token in legacy:
            if run:
                text = _tokens_to_string(tokenizer, run, specials)
                if text:
                    texts.append(text)
                run = []
            texts.append(token)
        else:
            run.append(token)
    if run:
        texts.append(_tokens_to_string(tokenizer, run, specials))
    text = " ".join(texts)
    return clean_up_tokenization(text) if tokenizer.clean_up_tokenization_spaces else text
