"""The escrow's ABI: the one source for the C program, the Python package and the IDLs.

Everything on the wire is declared here once: types, accounts, instructions (with their
account tables), events and errors. ``decentral_chain.codegen`` turns these declarations
into ``programs/decentral_escrow/include/escrow_{abi,ix}.h`` and both IDL files; a test
asserts that the committed copies equal the generator's output, and another recomputes
every discriminator from Anchor's ``sha256("<namespace>:<name>")[:8]`` rule.

Account and event layouts are Borsh (packed, little endian). Fields are ordered so that
each one is naturally aligned after the 8-byte discriminator, which makes the Borsh
layout identical to the C struct layout; the generator refuses a misaligned field.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

PROGRAM_NAME = "decentral_escrow"
PROGRAM_VERSION = "0.1.0"
PROGRAM_ID = Pubkey.from_string("ESgirwbEFQVacaaC9t3n2iyPJDMMY4qtbRG2SoEjubJr")

SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EAFLF4Wn3sD6n4HUfTS7")
BPF_LOADER_UPGRADEABLE_ID = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")

SEED_CONFIG = b"config"
SEED_VAULT = b"vault"
SEED_CREDITS = b"credits"
SEED_JOB = b"job"

#: fee = cost * fee_bps // BPS_DENOMINATOR (floor: rounding favours the worker).
BPS_DENOMINATOR = 10_000
MAX_FEE_BPS = 10_000
#: refund_timeout must lie in [MIN_REFUND_TIMEOUT, MAX_REFUND_TIMEOUT] seconds.
MIN_REFUND_TIMEOUT = 1
MAX_REFUND_TIMEOUT = 30 * 24 * 3600

TOKEN_ACCOUNT_LEN = 165
MINT_LEN = 82


def discriminator(namespace: str, name: str) -> bytes:
    """Anchor's discriminator: ``sha256("<namespace>:<name>")[:8]``."""
    return hashlib.sha256(f"{namespace}:{name}".encode()).digest()[:8]


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class Type:
    """A fixed-size Borsh type: its IDL spellings, C spelling, size and alignment."""

    idl: Any  # legacy (anchorpy 0.21) spelling
    idl30: Any  # Anchor >= 0.30 spelling
    c: str
    size: int
    align: int
    fmt: str | None  # struct format for scalars; None for byte arrays and pubkeys

    def encode(self, value: Any) -> bytes:
        if self is PUBKEY:
            return bytes(value)
        if self.fmt is None:
            raw = bytes(value)
            if len(raw) != self.size:
                raise ValueError(f"expected {self.size} bytes, got {len(raw)}")
            return raw
        if self is BOOL:
            return b"\x01" if value else b"\x00"
        return struct.pack(self.fmt, value)

    def decode(self, data: bytes, offset: int) -> Any:
        raw = bytes(data[offset : offset + self.size])
        if len(raw) != self.size:
            raise ValueError("data too short")
        if self is PUBKEY:
            return Pubkey.from_bytes(raw)
        if self.fmt is None:
            return raw
        if self is BOOL:
            if raw[0] > 1:
                raise ValueError(f"invalid bool byte {raw[0]}")
            return raw[0] == 1
        return struct.unpack(self.fmt, raw)[0]


U8 = Type("u8", "u8", "uint8_t", 1, 1, "<B")
U16 = Type("u16", "u16", "uint16_t", 2, 2, "<H")
U32 = Type("u32", "u32", "uint32_t", 4, 4, "<I")
U64 = Type("u64", "u64", "uint64_t", 8, 8, "<Q")
I64 = Type("i64", "i64", "int64_t", 8, 8, "<q")
BOOL = Type("bool", "bool", "uint8_t", 1, 1, "<?")
PUBKEY = Type("publicKey", "pubkey", "SolPubkey", 32, 8, None)  # C: 8-aligned (u64 compares)


def byte_array(n: int) -> Type:
    return Type({"array": ["u8", n]}, {"array": ["u8", n]}, f"uint8_t[{n}]", n, 1, None)


JOB_ID = byte_array(16)
HASH = byte_array(32)


@dataclass(frozen=True, slots=True)
class Option:
    """Borsh ``Option<T>``: a 0/1 tag byte, then T when the tag is 1 (instruction args only)."""

    inner: Type

    @property
    def idl(self) -> Any:
        return {"option": self.inner.idl}

    @property
    def idl30(self) -> Any:
        return {"option": self.inner.idl30}

    def encode(self, value: Any) -> bytes:
        return b"\x00" if value is None else b"\x01" + self.inner.encode(value)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Type | Option
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Struct:
    """An account or event: an 8-byte discriminator followed by Borsh fields."""

    name: str
    namespace: str  # "account" or "event"
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def discriminator(self) -> bytes:
        return discriminator(self.namespace, self.name)

    @property
    def size(self) -> int:
        return 8 + sum(f.type.size for f in self.fields)  # type: ignore[union-attr]

    def offsets(self) -> dict[str, int]:
        out, off = {}, 8
        for f in self.fields:
            out[f.name] = off
            off += f.type.size  # type: ignore[union-attr]
        return out


# ------------------------------------------------------------------------ accounts

CONFIG = Struct(
    "Config",
    "account",
    (
        Field("admin", PUBKEY, "May update the configuration"),
        Field("pending_admin", PUBKEY, "Proposed next admin (all zeros: none)"),
        Field("gateway", PUBKEY, "Operator that locks, settles and refunds jobs"),
        Field("mint", PUBKEY, "The credit mint (classic SPL Token)"),
        Field("vault", PUBKEY, "Token account holding every deposited credit"),
        Field("treasury", PUBKEY, "Token account that receives settlement fees"),
        Field("refund_timeout", I64, "Seconds after lock when the client may refund itself"),
        Field("fee_bps", U16, "Fee in basis points of each settled cost"),
        Field("paused", BOOL, "Blocks deposit and lock_job; exits stay open"),
        Field("bump", U8),
        Field("vault_bump", U8),
        Field("reserved", byte_array(3)),
        Field("total_deposited", U64),
        Field("total_withdrawn", U64),
        Field("total_paid", U64, "Paid to workers (cost - fee)"),
        Field("total_fees", U64, "Paid to the treasury"),
        Field("jobs_settled", U64),
        Field("jobs_refunded", U64),
    ),
    'Singleton at PDA ["config"]',
)

CREDITS = Struct(
    "Credits",
    "account",
    (
        Field("owner", PUBKEY, "The client wallet these credits belong to"),
        Field("free", U64, "Credits available to lock or withdraw"),
        Field("locked", U64, "Credits locked in open jobs"),
        Field("total_deposited", U64),
        Field("total_spent", U64, "Settled costs, fees included"),
        Field("locks", U64, "Jobs ever locked from these credits: the last Job's lifecycle nonce"),
        Field("open_jobs", U32),
        Field("bump", U8),
        Field("reserved", byte_array(3)),
    ),
    'One per client at PDA ["credits", owner]',
)

JOB = Struct(
    "Job",
    "account",
    (
        Field("job_id", JOB_ID, "16-byte UUID chosen by the gateway"),
        Field("client", PUBKEY, "Owner of the Credits the amount was locked from"),
        Field("worker", PUBKEY, "The only wallet a settlement can pay"),
        Field("payer", PUBKEY, "Paid the rent; receives it back when the job closes"),
        Field("amount", U64, "Credits locked"),
        Field("created_at", I64, "Unix time of the lock"),
        Field("expires_at", I64, "Settlement deadline; from then on only a refund closes the Job"),
        Field(
            "nonce", U64, "Lifecycle nonce: the client's Credits.locks after this lock; (client, nonce) never repeats"
        ),
        Field("fee_bps", U16, "Fee rate in force at lock, used at settlement"),
        Field("bump", U8),
        Field("reserved", byte_array(5)),
    ),
    'One per open job at PDA ["job", job_id]; closed by settle_job or refund_job',
)

ACCOUNTS: tuple[Struct, ...] = (CONFIG, CREDITS, JOB)

# -------------------------------------------------------------------------- events

# Each event starts with a run of fields in the same order as in an account (noted per
# event), so the program copies that run in one sol_memcpy_.
EVENTS: tuple[Struct, ...] = (
    Struct(
        "CreditsDeposited",
        "event",
        (Field("owner", PUBKEY), Field("free", U64, "After the deposit"), Field("locked", U64), Field("amount", U64)),
        "owner..locked as in Credits",
    ),
    Struct(
        "CreditsWithdrawn",
        "event",
        (
            Field("owner", PUBKEY),
            Field("free", U64, "After the withdrawal"),
            Field("locked", U64),
            Field("amount", U64),
        ),
        "owner..locked as in Credits",
    ),
    Struct(
        "JobLocked",
        "event",
        (
            Field("job_id", JOB_ID),
            Field("client", PUBKEY),
            Field("worker", PUBKEY),
            Field("payer", PUBKEY),
            Field("amount", U64),
            Field("created_at", I64),
            Field("expires_at", I64),
            Field("nonce", U64, "Lifecycle nonce of this Job"),
            Field("fee_bps", U16, "Fee rate fixed for this job"),
        ),
        "job_id..fee_bps as in Job",
    ),
    Struct(
        "JobSettled",
        "event",
        (
            Field("job_id", JOB_ID),
            Field("client", PUBKEY),
            Field("worker", PUBKEY),
            Field("result_hash", HASH),
            Field("cost", U64),
            Field("fee", U64),
            Field("refunded", U64, "Locked amount minus cost, back to free credits"),
            Field("prompt_tokens", U32),
            Field("completion_tokens", U32),
            Field("nonce", U64, "Lifecycle nonce of the closed Job (as in its JobLocked)"),
        ),
        "job_id..worker as in Job",
    ),
    Struct(
        "JobRefunded",
        "event",
        (
            Field("job_id", JOB_ID),
            Field("client", PUBKEY),
            Field("worker", PUBKEY),
            Field("authority", PUBKEY, "Gateway, or the client after expires_at"),
            Field("amount", U64),
            Field("nonce", U64, "Lifecycle nonce of the closed Job (as in its JobLocked)"),
        ),
        "job_id..worker as in Job",
    ),
    Struct(
        "ConfigUpdated",
        "event",
        (
            Field("admin", PUBKEY),
            Field("pending_admin", PUBKEY),
            Field("gateway", PUBKEY),
            Field("mint", PUBKEY),
            Field("vault", PUBKEY),
            Field("treasury", PUBKEY),
            Field("refund_timeout", I64),
            Field("fee_bps", U16),
            Field("paused", BOOL),
        ),
        "admin..paused as in Config",
    ),
)

# -------------------------------------------------------------------- instructions


@dataclass(frozen=True, slots=True)
class AccountSpec:
    name: str
    writable: bool = False
    signer: bool = False
    doc: str = ""
    address: Pubkey | None = None  # fixed address (program ids)
    #: PDA seeds for the IDL: ("const", b"..."), ("account", name) or ("arg", name).
    pda: tuple[tuple[str, Any], ...] = ()
    #: What the account must be: a program account ("Config", "Credits", "Job": owner, exact
    #: size, discriminator) or a classic SPL Token "TokenAccount" / "Mint" (owner, size,
    #: initialized). The program checks it before any constraint reads the account's data.
    type: str | None = None
    #: Anchor-style constraints, checked in order after every type: "<a>.<f> == <b>.<g> @ Error",
    #: "!=" likewise, or "!<a>.<flag> @ Error". <f> is "key" (the address) or a Pubkey field of
    #: the account's type; <flag> a bool field.
    constraints: tuple[str, ...] = ()


#: Offsets of the SPL Token account fields constraints may name (the account is 165 bytes).
TOKEN_ACCOUNT_FIELDS: Mapping[str, int] = {"mint": 0, "owner": 32}


@dataclass(frozen=True, slots=True)
class InstructionSpec:
    name: str
    args: tuple[Field, ...]
    accounts: tuple[AccountSpec, ...]
    doc: str = ""

    @property
    def discriminator(self) -> bytes:
        return discriminator("global", self.name)

    @property
    def fixed_args_len(self) -> int | None:
        if any(isinstance(a.type, Option) for a in self.args):
            return None
        return sum(a.type.size for a in self.args)  # type: ignore[union-attr]


_CONFIG_SEEDS = (("const", SEED_CONFIG),)
_VAULT_SEEDS = (("const", SEED_VAULT),)
_CREDITS_SEEDS = (("const", SEED_CREDITS), ("account", "owner"))
_TOKEN = AccountSpec("token_program", doc="Classic SPL Token program", address=TOKEN_PROGRAM_ID)
_SYSTEM = AccountSpec("system_program", doc="System program", address=SYSTEM_PROGRAM_ID)
_CONFIG = AccountSpec("config", True, doc="Config PDA", pda=_CONFIG_SEEDS, type="Config")
_CONFIG_OPEN = AccountSpec(
    "config", True, doc="Config PDA", pda=_CONFIG_SEEDS, type="Config", constraints=("!config.paused @ ProgramPaused",)
)
_VAULT = AccountSpec(
    "vault", True, doc="Vault PDA", pda=_VAULT_SEEDS, constraints=("vault.key == config.vault @ VaultMismatch",)
)
_ADMIN = AccountSpec("admin", False, True, "Config admin", constraints=("admin.key == config.admin @ NotAdmin",))
#: A Job's Config, the Job, its client's Credits and the payer of its rent (settle, refund).
_JOB_ACCOUNTS = (
    AccountSpec("job", True, doc="Job PDA (closed)", type="Job"),
    AccountSpec(
        "credits",
        True,
        doc="Credits PDA of the job's client",
        type="Credits",
        constraints=("credits.owner == job.client @ CreditsMismatch",),
    ),
)
_PAYER = AccountSpec(
    "payer", True, doc="job.payer; receives the Job rent", constraints=("payer.key == job.payer @ PayerMismatch",)
)

INSTRUCTIONS: tuple[InstructionSpec, ...] = (
    InstructionSpec(
        "initialize",
        (Field("fee_bps", U16), Field("refund_timeout", I64)),
        (
            AccountSpec("admin", True, True, "Program upgrade authority; pays rent; becomes admin"),
            AccountSpec("config", True, doc='Config PDA ["config"] (created)', pda=_CONFIG_SEEDS),
            AccountSpec("vault", True, doc='Vault PDA ["vault"] (created token account)', pda=_VAULT_SEEDS),
            AccountSpec("mint", doc="Credit mint (classic SPL Token)", type="Mint"),
            AccountSpec(
                "gateway",
                doc="Operator wallet (a key that can sign)",
                constraints=(
                    "gateway.key != system_program.key @ InvalidGateway",
                    "gateway.key != config.key @ InvalidGateway",
                    "gateway.key != vault.key @ InvalidGateway",
                ),
            ),
            AccountSpec(
                "treasury",
                doc="Fee token account of the mint",
                type="TokenAccount",
                constraints=(
                    "treasury.mint == mint.key @ MintMismatch",
                    "treasury.owner != config.key @ InvalidTreasury",
                ),
            ),
            AccountSpec("program", doc="This program's account"),
            AccountSpec("program_data", doc="This program's ProgramData account"),
            _TOKEN,
            _SYSTEM,
        ),
        "Create Config and the vault; only the program's upgrade authority may call it, once.",
    ),
    InstructionSpec(
        "deposit",
        (Field("amount", U64),),
        (
            AccountSpec("owner", True, True, "Client wallet; pays Credits rent on first use"),
            _CONFIG_OPEN,
            AccountSpec("credits", True, doc='Credits PDA ["credits", owner] (created if missing)', pda=_CREDITS_SEEDS),
            AccountSpec(
                "source",
                True,
                doc="Owner's token account of the mint",
                type="TokenAccount",
                constraints=(
                    "source.mint == config.mint @ MintMismatch",
                    "source.owner == owner.key @ TokenOwnerMismatch",
                ),
            ),
            _VAULT,
            _TOKEN,
            _SYSTEM,
        ),
        "Move tokens from the owner to the vault; credits.free += amount.",
    ),
    InstructionSpec(
        "withdraw",
        (Field("amount", U64),),
        (
            AccountSpec("owner", False, True, "Client wallet"),
            _CONFIG,
            AccountSpec(
                "credits",
                True,
                doc="Credits PDA of owner",
                pda=_CREDITS_SEEDS,
                type="Credits",
                constraints=("credits.owner == owner.key @ CreditsOwnerMismatch",),
            ),
            AccountSpec(
                "destination",
                True,
                doc="Owner's token account of the mint",
                type="TokenAccount",
                constraints=(
                    "destination.mint == config.mint @ MintMismatch",
                    "destination.owner == owner.key @ TokenOwnerMismatch",
                ),
            ),
            _VAULT,
            _TOKEN,
        ),
        "Move free credits back to the owner's token account.",
    ),
    InstructionSpec(
        "lock_job",
        (Field("job_id", JOB_ID), Field("amount", U64), Field("worker", PUBKEY)),
        (
            AccountSpec(
                "gateway",
                True,
                True,
                "Config gateway; pays Job rent",
                constraints=("gateway.key == config.gateway @ NotGateway",),
            ),
            AccountSpec(
                "config",
                doc="Config PDA",
                pda=_CONFIG_SEEDS,
                type="Config",
                constraints=("!config.paused @ ProgramPaused",),
            ),
            AccountSpec("credits", True, doc="Client's Credits PDA", type="Credits"),
            AccountSpec(
                "job", True, doc='Job PDA ["job", job_id] (created)', pda=(("const", SEED_JOB), ("arg", "job_id"))
            ),
            _SYSTEM,
        ),
        "Lock amount of the client's free credits for one job bound to worker.",
    ),
    InstructionSpec(
        "settle_job",
        (
            Field("cost", U64),
            Field("result_hash", HASH),
            Field("prompt_tokens", U32),
            Field("completion_tokens", U32),
            Field("nonce", U64, "The Job's lifecycle nonce: the worker consents to this lifecycle only"),
        ),
        (
            AccountSpec(
                "gateway", False, True, "Config gateway", constraints=("gateway.key == config.gateway @ NotGateway",)
            ),
            _CONFIG,
            *_JOB_ACCOUNTS,
            _VAULT,
            AccountSpec(
                "worker_token",
                True,
                doc="Token account of the mint owned by job.worker",
                type="TokenAccount",
                constraints=(
                    "worker_token.mint == config.mint @ MintMismatch",
                    "worker_token.owner == job.worker @ TokenOwnerMismatch",
                    "worker_token.key != treasury.key @ DuplicateAccount",
                ),
            ),
            AccountSpec(
                "treasury",
                True,
                doc="Config treasury",
                constraints=("treasury.key == config.treasury @ TreasuryMismatch",),
            ),
            _PAYER,
            _TOKEN,
            AccountSpec(
                "worker",
                False,
                True,
                "job.worker: co-signs this exact settlement (job, lifecycle, result hash, tokens, cost)",
                constraints=("worker.key == job.worker @ WorkerMismatch",),
            ),
        ),
        "Pay cost - fee to the worker and fee to the treasury; the rest returns to free. Only with the signature "
        "of the worker bound at lock.",
    ),
    InstructionSpec(
        "refund_job",
        (),
        (
            AccountSpec("authority", False, True, "Config gateway, or the client after expires_at"),
            _CONFIG,
            *_JOB_ACCOUNTS,
            _PAYER,
        ),
        "Return the locked amount to the client's free credits.",
    ),
    InstructionSpec(
        "update_config",
        (
            Field("fee_bps", Option(U16)),
            Field("refund_timeout", Option(I64)),
            Field("gateway", Option(PUBKEY)),
            Field("paused", Option(BOOL)),
        ),
        (_ADMIN, _CONFIG),
        "Change fee, refund timeout, gateway or the pause flag (each optional).",
    ),
    InstructionSpec(
        "set_treasury",
        (),
        (
            _ADMIN,
            _CONFIG,
            AccountSpec(
                "treasury",
                doc="New fee token account of the mint",
                type="TokenAccount",
                constraints=(
                    "treasury.mint == config.mint @ MintMismatch",
                    "treasury.key != config.vault @ InvalidTreasury",
                    "treasury.owner != config.key @ InvalidTreasury",
                ),
            ),
        ),
        "Point fees at another token account of the mint.",
    ),
    InstructionSpec(
        "propose_admin",
        (Field("new_admin", PUBKEY),),
        (_ADMIN, _CONFIG),
        "First step of the admin handover.",
    ),
    InstructionSpec(
        "accept_admin",
        (),
        (
            AccountSpec("new_admin", False, True, "Config pending_admin"),
            _CONFIG,
        ),
        "Second step of the admin handover, signed by the proposed admin.",
    ),
)

INSTRUCTIONS_BY_NAME: Mapping[str, InstructionSpec] = {ix.name: ix for ix in INSTRUCTIONS}

# -------------------------------------------------------------------------- errors

ERROR_BASE = 6000

#: (name, message) in code order from ERROR_BASE. Append only: codes are wire format.
ERRORS: tuple[tuple[str, str], ...] = (
    ("InstructionMissing", "Instruction data is shorter than a discriminator"),
    ("UnknownInstruction", "Unknown instruction discriminator"),
    ("InvalidInstructionData", "Instruction arguments do not match the expected layout"),
    ("NotEnoughAccounts", "Fewer accounts than the instruction requires"),
    ("MissingSigner", "A required signer did not sign"),
    ("AccountNotWritable", "An account that must be writable is read-only"),
    ("AccountOwnedByWrongProgram", "Account is not owned by the expected program"),
    ("AccountDiscriminatorMismatch", "Account discriminator does not match the expected type"),
    ("InvalidAccountSize", "Account data length does not match the expected type"),
    ("AccountAlreadyInitialized", "Account is already initialized"),
    ("InvalidPda", "Account is not the expected canonical PDA"),
    ("InvalidTokenProgram", "Account is not the classic SPL Token program"),
    ("InvalidSystemProgram", "Account is not the system program"),
    ("InvalidProgramAccount", "Program account is not this upgradeable program"),
    ("InvalidProgramData", "ProgramData account does not belong to this program"),
    ("NotUpgradeAuthority", "Signer is not the program's upgrade authority"),
    ("NotAdmin", "Signer is not the config admin"),
    ("NotPendingAdmin", "Signer is not the proposed admin"),
    ("NotGateway", "Signer is not the config gateway"),
    ("NotJobParty", "Signer is neither the gateway nor the job's client"),
    ("ProgramPaused", "The program is paused"),
    ("ZeroAmount", "Amount must be greater than zero"),
    ("InsufficientCredits", "Not enough free credits"),
    ("CostExceedsLocked", "Cost exceeds the amount locked for the job"),
    ("ArithmeticOverflow", "Arithmetic overflow"),
    ("InvalidFeeBps", "Fee exceeds 10,000 basis points"),
    ("InvalidRefundTimeout", "Refund timeout is outside the allowed range"),
    ("InvalidMint", "Mint is not an initialized classic SPL Token mint"),
    ("InvalidTokenAccount", "Not an initialized, unfrozen classic SPL Token account"),
    ("MintMismatch", "Token account mint is not the config mint"),
    ("TokenOwnerMismatch", "Token account is not owned by the expected wallet"),
    ("VaultMismatch", "Vault is not the config vault"),
    ("TreasuryMismatch", "Treasury is not the config treasury"),
    ("CreditsOwnerMismatch", "Credits account does not belong to the signer"),
    ("CreditsMismatch", "Credits account does not belong to the job's client"),
    ("PayerMismatch", "Payer is not the account that paid the job's rent"),
    ("JobAlreadyExists", "A job with this id is already open"),
    ("JobNotExpired", "The job has not expired: only the gateway may refund it"),
    ("InvalidWorker", "Worker must be a wallet, not the config or vault"),
    ("InvalidJobId", "Job id must not be all zeros"),
    ("DuplicateAccount", "One account was passed for two roles"),
    ("InvalidTreasury", "Treasury must not be the vault or a config token account"),
    ("NoPendingAdmin", "No admin handover is pending"),
    ("JobExpired", "The job expired: it can only be refunded now"),
    ("InvalidGateway", "Gateway must be a signing key: not zero, the config or the vault"),
    ("WorkerMismatch", "The co-signing worker is not the job's worker"),
    ("LifecycleMismatch", "The settlement names another lifecycle of this job"),
)

ERROR_CODES: Mapping[str, int] = {name: ERROR_BASE + i for i, (name, _) in enumerate(ERRORS)}
