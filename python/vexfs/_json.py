# SPDX-License-Identifier: Apache-2.0
"""Payloads and filters: Python objects to the UTF-8 JSON bytes that
SET_PAYLOADS, FILTERED_SEARCH and SCROLL carry, and stored payloads back.

Everything the package can check itself is checked here, so a bad payload
or filter is a ValueError naming the argument (and the entry, and its id)
before any request is sent; what only the daemon knows (nesting depth, the
filter grammar) comes back as EINVAL from the request.
"""

from __future__ import annotations

import collections.abc
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _abi

Payload = Dict[str, Any]
# A Qdrant filter: a dict (encoded here) or its JSON text.
Filter = Union[Mapping[str, Any], str, bytes, bytearray, memoryview]


def _numpy_to_python(value: Any) -> Any:
    # Ids and values taken from numpy arrays are numpy scalars, which json
    # refuses; they are the commonest thing to end up in a has_id list.
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# One encoder for every call: json.dumps with arguments builds a new one
# each time, which is most of the cost of encoding a small payload.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=_numpy_to_python)


def encode(value: Any, what: str) -> bytes:
    """``value`` as compact UTF-8 JSON; ValueError naming ``what`` if it is
    not JSON (NaN and infinities are not: the daemon's parser refuses them)."""
    try:
        return _ENCODER.encode(value).encode()
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"{what}: not JSON-serialisable: {error}") from None


def encode_payload(payload: Any, what: str) -> bytes:
    """One payload (a dict) as the bytes SET_PAYLOADS stores."""
    if not isinstance(payload, dict):
        raise ValueError(f"{what}: expected a dict (a JSON object), "
                         f"got {type(payload).__name__}")
    data = encode(payload, what)
    if len(data) > _abi.PAYLOAD_BYTES_MAX:
        raise ValueError(f"{what}: {len(data)} bytes of JSON, over the maximum of "
                         f"{_abi.PAYLOAD_BYTES_MAX} (VEXFS_PAYLOAD_BYTES_MAX)")
    return data


def encode_payloads(payloads: Sequence[Optional[Payload]],
                    ids: np.ndarray) -> Tuple[bytes, np.ndarray]:
    """One payload (or None: no payload) per id, as SET_PAYLOADS takes them:
    the payloads concatenated and a uint32 length per id (0 for None)."""
    if isinstance(payloads, (dict, str, bytes)) or \
            not isinstance(payloads, collections.abc.Sequence):
        raise ValueError("payloads: expected a sequence of dicts (or None), one per id, "
                         f"got {type(payloads).__name__}")
    if len(payloads) != ids.size:
        raise ValueError(f"payloads: {len(payloads)} payloads for {ids.size} ids")
    parts: List[bytes] = []
    lengths = [0] * ids.size
    for place, payload in enumerate(payloads):
        if payload is None:
            continue
        # A batch may hold a million payloads: the checks of encode_payload
        # inline, and its message (naming the entry and its id) built only
        # when one fails.
        try:
            data = _ENCODER.encode(payload).encode() if type(payload) is dict else None
        except (TypeError, ValueError, RecursionError):
            data = None
        if data is None or len(data) > _abi.PAYLOAD_BYTES_MAX:
            data = encode_payload(payload, f"payloads[{place}] (id {ids[place]})")
        parts.append(data)
        lengths[place] = len(data)
    return b"".join(parts), np.array(lengths, dtype=np.uint32)


def encode_filter(filter: Optional[Filter]) -> Optional[bytes]:
    """A filter as the bytes FILTERED_SEARCH and SCROLL take; None for none."""
    if filter is None:
        return None
    if isinstance(filter, collections.abc.Mapping):
        data = encode(dict(filter), "filter")
    elif isinstance(filter, str):
        try:
            data = filter.encode()
        except UnicodeEncodeError as error:
            raise ValueError(f"filter: not UTF-8: {error}") from None
    elif isinstance(filter, (bytes, bytearray, memoryview)):
        data = bytes(filter)
    else:
        raise ValueError("filter: expected a dict, or JSON as str or bytes, "
                         f"got {type(filter).__name__}")
    if not 1 <= len(data) <= _abi.FILTER_BYTES_MAX:
        raise ValueError(f"filter: {len(data)} bytes of JSON, not in "
                         f"1..={_abi.FILTER_BYTES_MAX} (VEXFS_FILTER_BYTES_MAX)")
    return data


def decode_payload(data: Optional[bytes]) -> Optional[Payload]:
    """A stored payload (the daemon's compact JSON) as a dict; None stays None."""
    if data is None:
        return None
    return json.loads(data)
