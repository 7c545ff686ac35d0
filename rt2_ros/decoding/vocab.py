"""
The text each token id adds when appended to a generation, for any transformers tokenizer.

Token strings as stored differ by tokenizer family (SentencePiece writes a space as "▁",
byte-level BPE as "Ġ", WordPiece marks continuations with "##"), and decoding a single token drops
a leading space in some families. Decoding the pair (anchor, token) and removing the anchor's own
text gives the characters the token really contributes mid-sequence, whatever the family.
Special tokens, ids the tokenizer does not know and tokens that are only part of a UTF-8
character (byte-fallback pieces) get None: constraints never allow them as text.
"""
from typing import Any, List, Optional, Sequence

_ANCHOR_CANDIDATES = ('a', 'x', 'A', 'the', '0')


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False,
                            clean_up_tokenization_spaces=False)


def _anchor_id(tokenizer: Any) -> int:
    """Find a plain token whose decoded text is stable when something follows it."""
    unk = getattr(tokenizer, 'unk_token_id', None)
    special = set(getattr(tokenizer, 'all_special_ids', []) or [])
    for text in _ANCHOR_CANDIDATES:
        ids = tokenizer.encode(text, add_special_tokens=False)
        ids = [i for i in ids if i not in special]
        if len(ids) == 1 and ids[0] != unk and _decode(tokenizer, ids).strip() == text:
            return ids[0]
    raise ValueError('cannot find a plain anchor token in this tokenizer')


def token_texts(tokenizer: Any, size: Optional[int] = None) -> List[Optional[str]]:
    """
    Text contributed by each id 0..size-1 (size defaults to len(tokenizer)), None if unusable.

    size may exceed the tokenizer (models pad their embedding matrix); the extra ids get None.
    """
    known = len(tokenizer)
    total = known if size is None else int(size)
    special = set(getattr(tokenizer, 'all_special_ids', []) or [])
    anchor = _anchor_id(tokenizer)
    base = _decode(tokenizer, [anchor])
    count = min(known, total)
    pairs = [[anchor, i] for i in range(count)]
    decoded = tokenizer.batch_decode(pairs, skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)
    texts: List[Optional[str]] = []
    for token_id, text in enumerate(decoded):
        if token_id in special or not text.startswith(base):
            texts.append(None)
            continue
        piece = text[len(base):]
        texts.append(piece if piece and '\ufffd' not in piece else None)
    texts.extend([None] * (total - count))
    return texts
