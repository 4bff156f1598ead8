"""One error hierarchy for the whole package: every exception it raises is a DecentralError.

    DecentralError
    ├── DecodeError               bytes that are not what they claim to be (accounts, events,
    │   │                         instructions, receipts, RPC answers)
    │   ├── LogsTruncated         the runtime cut a transaction's log
    │   └── ElfFormatError        not an ELF64 object the linker understands
    ├── RpcError                  a JSON-RPC error answer (code, message, data), also what the
    │                             localnet answers with
    ├── RpcUnavailable            the endpoint could not be reached (after transport retries)
    ├── ConfirmationTimeout       the deadline passed before the commitment was reached
    ├── BlockhashExpired          the blockhash expired before the transaction landed
    ├── TransactionFailed         a transaction ran and failed (err, logs, signature)
    │   └── ProgramError          ... with a custom error of the escrow (code, name, message)
    ├── BuildError                the compiler failed (its diagnostics)
    ├── LinkError                 an object cannot become an sBPF program (names the culprit)
    ├── MissingExtra              a command needs an optional extra that is not installed
    ├── ModelError                the model file could not be fetched, checked or read
    ├── WorkerError               a worker could not load its model or run a call
    │   ├── WorkerUnavailable     ... failed before its first token (retried elsewhere)
    │   ├── WorkerLost            ... failed mid-stream
    │   └── UsageDisputed         ... reported more tokens than the gateway counted
    ├── ConsentRefused            a worker will not sign a settlement it did not produce
    ├── NoWorkerFree              every worker busy and the queue full (retry_after)
    └── GatewayError              an HTTP error of the gateway, in OpenAI's envelope
                                  (decentral_chain.gateway.errors: status, type, code)

On-chain custom codes map by number to :class:`EscrowError`, mirrored from the ABI.
"""

from __future__ import annotations

from enum import IntEnum

from decentral_chain.abi import ERROR_BASE, ERRORS


class DecentralError(Exception):
    """Root of every error raised by decentral_chain."""


class DecodeError(DecentralError):
    """Data does not decode as the expected account, event or instruction."""


class RpcError(DecentralError):
    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class RpcUnavailable(DecentralError):
    """The RPC endpoint could not be reached (after the transport retries)."""


class LogsTruncated(DecodeError):
    """The runtime truncated the log: events after the cut are missing."""


class ElfFormatError(DecodeError, ValueError):
    """The bytes are not an ELF64 little-endian object the linker understands."""


class ConfirmationTimeout(DecentralError):
    """The deadline passed before the transaction reached the requested commitment."""

    def __init__(self, signature: object, timeout: float) -> None:
        super().__init__(f"{signature} not confirmed within {timeout:g} s")
        self.signature = signature


class BlockhashExpired(DecentralError):
    """The transaction's blockhash expired before it landed; it can never land now."""


class BuildError(DecentralError):
    """The compiler failed; the message carries its diagnostics."""


class LinkError(DecentralError):
    """The object cannot become a valid sBPF v0 program; the message names the culprit."""


class MissingExtra(DecentralError):
    """A command needs an optional extra of the package that is not installed."""

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(f"{what} needs the [{extra}] extra: pip install 'decentral-chain[{extra}]'")
        self.extra = extra


class ModelError(DecentralError):
    """The model could not be fetched, or its checksum is wrong."""


class WorkerError(DecentralError):
    """A worker could not load its model or run a call."""


class WorkerUnavailable(WorkerError):
    """A worker failed before its first token (unreachable, refused, crashed): nothing was
    produced, so the job is refunded and the request may go to another worker."""


class WorkerLost(WorkerError):
    """A worker failed after its first token (it died mid-stream)."""


class UsageDisputed(WorkerError):
    """A worker reported more tokens than the gateway counts itself."""


class ConsentRefused(DecentralError):
    """A worker will not sign a settlement: it is not what the worker produced."""


class NoWorkerFree(DecentralError):
    """Every worker is busy and the wait queue is full."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"no worker free; retry after {retry_after:g} s")
        self.retry_after = retry_after


class TransactionFailed(DecentralError):
    """A transaction was processed and failed."""

    def __init__(self, err: object, logs: list[str] | None = None, signature: str | None = None) -> None:
        super().__init__(f"transaction failed: {err}")
        self.err = err
        self.logs = list(logs or [])
        self.signature = signature


EscrowError = IntEnum("EscrowError", {name: ERROR_BASE + i for i, (name, _) in enumerate(ERRORS)})
EscrowError.__doc__ = "Custom error codes of the escrow program (6000 up), as in the IDL."
EscrowError.__module__ = __name__

_MESSAGES = {ERROR_BASE + i: msg for i, (_, msg) in enumerate(ERRORS)}


def error_message(code: int) -> str:
    return _MESSAGES.get(code, "unknown error")


def transaction_error(err: object, logs: list[str] | None = None, signature: str | None = None) -> TransactionFailed:
    """A transaction error as an RPC spells it (``"BlockhashNotFound"``,
    ``{"InstructionError": [0, {"Custom": 6022}]}``): a ProgramError for the escrow's custom
    codes, a TransactionFailed carrying that value otherwise."""
    if isinstance(err, dict) and isinstance(err.get("InstructionError"), list) and len(err["InstructionError"]) == 2:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and isinstance(inner.get("Custom"), int):
            return ProgramError(inner["Custom"], index, logs, signature)
    return TransactionFailed(err, logs, signature)


class ProgramError(TransactionFailed):
    """The escrow returned a custom error; ``error`` is its :class:`EscrowError`."""

    def __init__(
        self,
        code: int,
        instruction_index: int | None = None,
        logs: list[str] | None = None,
        signature: str | None = None,
    ) -> None:
        self.code = code
        self.error = EscrowError(code) if code in _MESSAGES else None
        self.instruction_index = instruction_index
        name = self.error.name if self.error else f"Custom({code})"
        super().__init__(f"{name}: {error_message(code)}", logs, signature)
        self.args = (f"{name} ({code}): {error_message(code)}",)
