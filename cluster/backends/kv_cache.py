"""An LRU of transformers KV caches keyed by the token ids they hold, for prefix reuse across calls.

Reasoning prompts grow step by step, and the judge, rewrite and continuation prompts of one step share
most of their tokens, so a new prompt is prefilled from the cached entry with the longest common token
prefix. Entries are never mutated while they are in the LRU:

- an entry that is a whole prefix of the new prompt is *taken out* and extended in place (no copy); the
  caller puts the longer cache back, and that covers every prompt the old entry served (a batch whose
  prompts share the entry copies it for all but its last prompt);
- an entry that shares only part of its tokens is *copied up to the shared length* (a slice of each
  layer's keys and values), so the entry stays intact for the prompts that still need it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(slots=True)
class _Entry:
    ids: torch.Tensor  # [seq] int64, the tokens whose keys/values the cache holds
    cache: Any         # transformers DynamicCache, seq_length == len(ids)


class PrefixCache:
    """Up to `capacity` KV caches, least recently used evicted first (capacity 0 disables reuse).

    Args:
        capacity: the most entries kept.
        new_cache: makes an empty cache for the model (e.g. `lambda: DynamicCache(config=cfg)`).
        min_reuse: shortest shared prefix worth reusing (shorter matches start from an empty cache).
    """

    def __init__(self, capacity: int, new_cache, *, min_reuse: int = 1) -> None:
        self._capacity = capacity
        self._new_cache = new_cache
        self._min_reuse = min_reuse
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, ids: Sequence[int], *, steal: bool = True) -> tuple[Any, int]:
        """A cache holding the longest cached prefix of `ids`, and that prefix's length.

        At most `len(ids) - 1` tokens are served from the cache, so the caller always feeds at least the
        last prompt token (its logits are needed). The returned cache belongs to the caller. With
        `steal=False` the entry is always copied, e.g. when more prompts of one batch share it.
        """
        want = torch.tensor(ids, dtype=torch.long)
        limit = len(ids) - 1
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            n = min(_common_prefix_len(entry.ids, want), limit)
            if n > best_len:
                best_key, best_len = key, n
        if best_key is None or best_len < self._min_reuse:
            return self._new_cache(), 0
        entry = self._entries[best_key]
        if steal and best_len == len(entry.ids):
            del self._entries[best_key]
            return entry.cache, best_len
        if not _croppable(entry.cache):
            return self._new_cache(), 0
        self._entries.move_to_end(best_key)
        return _copy_prefix(entry.cache, best_len, self._new_cache()), best_len

    def put(self, ids: Sequence[int], cache: Any) -> None:
        """Keep `cache`, which holds the keys/values of exactly `ids`; the caller must not touch it again."""
        if self._capacity == 0 or not ids:
            return
        assert cache.get_seq_length() == len(ids), (cache.get_seq_length(), len(ids))
        new = torch.tensor(ids, dtype=torch.long)
        for key, entry in list(self._entries.items()):  # drop entries the new one covers
            if len(entry.ids) <= len(new) and _common_prefix_len(entry.ids, new) == len(entry.ids):
                del self._entries[key]
        self._entries[self._next_key] = _Entry(new, cache)
        self._next_key += 1
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def _common_prefix_len(a: torch.Tensor, b: torch.Tensor) -> int:
    m = min(len(a), len(b))
    diff = (a[:m] != b[:m]).nonzero()
    return int(diff[0, 0]) if len(diff) else m


def _croppable(cache: Any) -> bool:
    return all(getattr(layer, "is_croppable", True) and not getattr(layer, "is_sliding", False)
               for layer in getattr(cache, "layers", ()))


def _copy_prefix(cache: Any, length: int, out: Any) -> Any:
    """Copy the first `length` positions of every layer of `cache` into the empty cache `out`."""
    for idx, layer in enumerate(cache.layers):
        keys = layer.keys[..., :length, :].clone()      # [batch, kv_heads, length, head_dim]
        values = layer.values[..., :length, :].clone()
        out.update(keys, values, idx)
    return out


def merge_left_padded(caches: Sequence[Any], out: Any) -> list[int]:
    """Stack single-sequence caches into the empty cache `out` as one batch, left-padded with zeros.

    Returns:
        The left padding of each row (the caller masks those positions out).
    """
    lengths = [c.get_seq_length() for c in caches]
    longest = max(lengths)
    pads = [longest - n for n in lengths]
    for idx in range(len(caches[0].layers)):
        keys = torch.cat([torch.nn.functional.pad(c.layers[idx].keys, (0, 0, pad, 0))  # [batch, kv, seq, dim]
                          for c, pad in zip(caches, pads, strict=True)])
        values = torch.cat([torch.nn.functional.pad(c.layers[idx].values, (0, 0, pad, 0))
                            for c, pad in zip(caches, pads, strict=True)])
        out.update(keys, values, idx)
    return pads


def extract_row(cache: Any, row: int, start: int, out: Any) -> Any:
    """Copy positions `start:` of batch row `row` of `cache` into the empty single-sequence cache `out`."""
    for idx, layer in enumerate(cache.layers):
        out.update(layer.keys[row:row + 1, :, start:].clone(), layer.values[row:row + 1, :, start:].clone(), idx)
    return out
