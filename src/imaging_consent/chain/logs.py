"""Paged ``eth_getLogs``: event history of any size, from any provider.

Providers cap ``eth_getLogs`` by block range, by result count or by time. :func:`fetch_logs`
walks the range in pages (5,000 blocks by default) and halves the page whenever the node
answers "too many results", "range too large" or times out, down to one block. One query
can cover several events of one contract (their topic-0s are OR-ed), so a history of grants
and revocations costs one request per page, not one per event kind.

Reads happen at ``latest``: nothing here follows reorganisations (see
:mod:`imaging_consent.access_log.history`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import requests
from eth_abi.abi import encode as abi_encode
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractEvent
from web3.exceptions import Web3RPCError
from web3.types import EventData, FilterParams, RPCEndpoint

from imaging_consent.chain.session import ChainSession, redact_url
from imaging_consent.errors import ChainUnavailableError, LogQueryError

__all__ = ["DEFAULT_PAGE", "block_timestamps", "fetch_logs", "latest_block", "log_pages"]

logger = logging.getLogger(__name__)

#: Blocks per ``eth_getLogs`` request unless told otherwise.
DEFAULT_PAGE = 5_000

# Node answers meaning "ask for less" (Geth, Erigon, Anvil, Alchemy, Infura, QuickNode...).
_ASK_FOR_LESS = (
    "too many",
    "more than",
    "limit",
    "exceed",
    "range",
    "too large",
    "response size",
    "timeout",
    "timed out",
)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.HTTPError,
    ConnectionError,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (requests.Timeout, TimeoutError)
_UNREACHABLE: tuple[type[BaseException], ...] = _TRANSPORT_ERRORS + _TIMEOUTS
_SMALLER_PAGE: tuple[type[BaseException], ...] = (Web3RPCError, *_TIMEOUTS)


def _as_events(event: ContractEvent | type[ContractEvent] | Sequence[Any]) -> list[ContractEvent]:
    items = list(event) if isinstance(event, Sequence) else [event]
    if not items:
        raise ValueError("fetch_logs needs at least one event")
    events = [e() if isinstance(e, type) else e for e in items]
    if len({e.address for e in events}) != 1:
        raise ValueError("fetch_logs: all events must belong to one contract")
    return cast(list[ContractEvent], events)


def _topic_value(abi_type: str, value: Any) -> str:
    if abi_type == "address":
        value = Web3.to_checksum_address(value)
    elif abi_type.startswith("bytes") and isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    return "0x" + abi_encode([abi_type], [value]).hex()


def _topics(events: list[ContractEvent], filters: Mapping[str, Any]) -> list[Any]:
    topics: list[Any] = [[str(HexBytes(e.topic).to_0x_hex()) for e in events], None, None, None]
    for name, value in filters.items():
        places = set()
        for event in events:
            indexed = [i for i in event.abi["inputs"] if i.get("indexed")]
            match = [(n, i["type"]) for n, i in enumerate(indexed) if i["name"] == name]
            if not match:
                raise ValueError(f"event {event.event_name} has no indexed argument {name!r}")
            places.add(match[0])
        if len(places) != 1:
            raise ValueError(f"argument {name!r} is not at the same topic in every event")
        position, abi_type = places.pop()
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        topics[position + 1] = [_topic_value(abi_type, v) for v in values]
    while topics and topics[-1] is None:
        topics.pop()
    return topics


def _asks_for_less(exc: BaseException) -> bool:
    if isinstance(exc, _TIMEOUTS):
        return True
    text = str(exc).lower()
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, Mapping):
        error = exc.rpc_response.get("error")
        if isinstance(error, Mapping):
            text += " " + str(error.get("message", "")).lower()
    return any(marker in text for marker in _ASK_FOR_LESS)


def fetch_logs(
    session: ChainSession,
    event: ContractEvent | type[ContractEvent] | Sequence[Any],
    argument_filters: Mapping[str, Any] | None = None,
    from_block: int = 0,
    to_block: int | None = None,
    *,
    page: int = DEFAULT_PAGE,
) -> tuple[EventData, ...]:
    """Fetch and decode the logs of one or more events of one contract, page by page.

    Args:
        session: The chain to read.
        event: A bound contract event (``suite.consent.events.ConsentGranted``), or a list of
            events of the same contract, fetched together in one query per page.
        argument_filters: Indexed argument name to a value or a list of values (OR-ed), e.g.
            ``{"patient": address}``. The argument must sit at the same topic in every event.
        from_block: First block to scan (a manifest's ``block_number``).
        to_block: Last block to scan; by default the latest block when the call starts.
        page: Blocks per request at first. The page halves whenever the node asks for less.

    Returns:
        The decoded logs, oldest first (by block, then log index).

    Raises:
        ValueError: If the events or filters do not fit together, or ``page`` is below 1.
        LogQueryError: If the node refuses even a one-block page, or answers another error.
        ChainUnavailableError: If the node cannot be reached.
    """
    events = _as_events(event)
    topics = _topics(events, argument_filters or {})
    by_topic = {HexBytes(e.topic): e for e in events}
    found: list[EventData] = []
    for _start, _stop, logs in log_pages(
        session, [events[0].address], topics, from_block, to_block, page=page, raw=False
    ):
        for log in logs:
            decoder = by_topic.get(HexBytes(log["topics"][0]))
            if decoder is not None:
                found.append(decoder.process_log(log))
    found.sort(key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
    return tuple(found)


def latest_block(session: ChainSession) -> int:
    """The chain's latest block number.

    Raises:
        ChainUnavailableError: If the node cannot be reached.
    """
    try:
        return int(session.w3.eth.block_number)
    except _UNREACHABLE as exc:
        raise ChainUnavailableError(
            f"cannot reach {redact_url(session.rpc_url)}: {type(exc).__name__}"
        ) from exc


def log_pages(
    session: ChainSession,
    addresses: Sequence[str],
    topics: Sequence[Any] | None,
    from_block: int,
    to_block: int | None = None,
    *,
    page: int = DEFAULT_PAGE,
    raw: bool = True,
) -> Iterator[tuple[int, int, list[Any]]]:
    """``eth_getLogs`` over ``[from_block, to_block]``, one page at a time, oldest first.

    Yields ``(first, last, logs)`` for each page once it is fetched, so a caller can store a
    page and its cursor together. The page halves whenever the node asks for less, down to one
    block, and stays at the smaller size.

    Args:
        session: The chain to read.
        addresses: The contracts whose logs to read (OR-ed).
        topics: The ``topics`` filter, or None for every log of those contracts.
        from_block: First block.
        to_block: Last block; by default the latest block when the call starts.
        page: Blocks per request at first.
        raw: Return the node's JSON as is (hex strings; fast: no per-log formatting) rather
            than web3's formatted logs.

    Raises:
        ValueError: If ``page`` is below 1.
        LogQueryError: If the node refuses even a one-block page, or answers another error.
        ChainUnavailableError: If the node cannot be reached.
    """
    if page < 1:
        raise ValueError("page must be at least 1 block")
    w3 = session.w3
    shown = redact_url(session.rpc_url)
    end = latest_block(session) if to_block is None else to_block
    start, size = from_block, page
    while start <= end:
        stop = min(start + size - 1, end)
        params: dict[str, Any] = {
            "address": list(addresses),
            "fromBlock": hex(start),
            "toBlock": hex(stop),
        }
        if topics:
            params["topics"] = list(topics)
        try:
            if raw:
                logs = _raw_get_logs(w3, params)
            else:
                formatted = {**params, "fromBlock": start, "toBlock": stop}
                logs = list(w3.eth.get_logs(cast(FilterParams, formatted)))
        except requests.ConnectTimeout as exc:  # nobody there: asking for less will not help
            raise ChainUnavailableError(f"cannot reach {shown}: {type(exc).__name__}") from exc
        except _SMALLER_PAGE as exc:
            if not _asks_for_less(exc):
                raise LogQueryError(f"eth_getLogs failed on {shown}: {exc}") from exc
            if stop == start:
                raise LogQueryError(
                    f"eth_getLogs on {shown} fails even for the single block {start}: {exc}"
                ) from exc
            size = max(1, (stop - start + 1) // 2)
            logger.info("eth_getLogs asked for less; page is now %d blocks", size)
            continue
        except _TRANSPORT_ERRORS as exc:
            raise ChainUnavailableError(f"cannot reach {shown}: {type(exc).__name__}") from exc
        yield start, stop, logs
        start = stop + 1


def _raw_get_logs(w3: Web3, params: dict[str, Any]) -> list[Any]:
    response = w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
    if "error" in response:
        error = response["error"]
        message = error.get("message", "") if isinstance(error, Mapping) else str(error)
        raise Web3RPCError(str(message), rpc_response=response)
    return list(response["result"])


def block_timestamps(session: ChainSession, blocks: Iterable[int]) -> dict[int, int]:
    """The timestamp of each distinct block in ``blocks``, one ``eth_getBlockByNumber`` each.

    Raises:
        ChainUnavailableError: If the node cannot be reached.
    """
    stamps: dict[int, int] = {}
    try:
        for number in sorted(set(blocks)):
            stamps[number] = int(session.w3.eth.get_block(number)["timestamp"])
    except _UNREACHABLE as exc:
        raise ChainUnavailableError(
            f"cannot reach {redact_url(session.rpc_url)}: {type(exc).__name__}"
        ) from exc
    return stamps
