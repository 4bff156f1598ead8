"""One error hierarchy for the whole package.

    DecentralError
    ├── DecodeError            bytes that are not what they claim to be
    ├── RpcError               a JSON-RPC error answer (code, message, data)
    ├── RpcUnavailable         the endpoint could not be reached (after transport retries)
    ├── TransactionFailed      a transaction ran and failed (err, logs, signature)
    │   └── ProgramError       ... with a custom error of the escrow (code, name, message)
    └── ReceiptInvalid         a receipt failed verification (reason)

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


class ProgramError(TransactionFailed):
    """The escrow returned a custom error; ``error`` is its :class:`EscrowError`."""

    def __init__(self, code: int, instruction_index: int | None = None, logs: list[str] | None = None,
                 signature: str | None = None) -> None:
        self.code = code
        self.error = EscrowError(code) if code in _MESSAGES else None
        self.instruction_index = instruction_index
        name = self.error.name if self.error else f"Custom({code})"
        super().__init__(f"{name}: {error_message(code)}", logs, signature)
        self.args = (f"{name} ({code}): {error_message(code)}",)


class ReceiptInvalid(DecentralError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
