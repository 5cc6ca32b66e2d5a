"""Tickets, transactions, attachments and users of the RT simulator, and a deterministic generator.

The simulator stands in for a real RT 5.0.3 in the demo, the flow tests and benchmarks of up to
100,000 tickets, so the model is kept lean: a transaction stores only what its history entry
shows, and its mail text and attachments are derived on demand from (seed, transaction id). A
ticket built by hand (the replica of a real sample in the tests) may instead carry explicit
`content` and `attachments`, which always win over the derived ones.

Times are integers (seconds since the epoch, UTC); `rt_render` turns them into RT's two date
formats (local time in show/search, UTC in history).
"""

from __future__ import annotations

import hashlib
import random
import textwrap
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

RT_VERSION = "5.0.3+dfsg-3~deb12u7"
SYSTEM_USER = "RT_System"
NOBODY = "Nobody"
NO_CONTENT = "This transaction appears to have no content"
MAIL_DOMAIN = "example.com"

# Attachments per transaction type: a mail RT sends is multipart/alternative + text + html.
ATTACHMENTS_PER_TYPE = {
    "Create": 1,
    "Correspond": 1,
    "Comment": 1,
    "EmailRecord": 3,
    "CommentEmailRecord": 3,
}


@dataclass(slots=True)
class SimUser:
    """An RT user. Staff are privileged; requestors are auto-created with their address as Name."""

    id: int
    name: str
    email: str
    real_name: str = ""
    privileged: bool = False
    comments: str = ""

    def display(self) -> str:
        """How RT names a user in `Given to …` descriptions: `jdoe (John Doe)`."""
        return f"{self.name} ({self.real_name})" if self.real_name else self.name


@dataclass(slots=True)
class SimAttachment:
    """One MIME part RT stored; `headers` are the `Name: value` lines in RT's (arbitrary) order."""

    id: int
    transaction_id: int
    content_type: str
    content: str
    headers: tuple[str, ...] = ()
    subject: str = ""
    parent: int = 0
    message_id: str = ""
    filename: str = ""
    creator_id: int = 1
    created: int = 0


@dataclass(slots=True)
class SimTransaction:
    """One history entry.

    `kind` says what an EmailRecord is (autoreply, requestor copy, staff notification, resolved
    notice, comment notice, owner notice) so its text can be derived; `ref` is the transaction
    it quotes, `to`/`bcc` its recipients. `content`/`data`/`attachments` left as None are derived.
    """

    id: int
    type: str
    creator: str
    created: int
    field: str = ""
    old_value: str = ""
    new_value: str = ""
    description: str = ""
    data: str | None = None
    content: str | None = None
    kind: str = ""
    ref: int = 0
    to: str = ""
    bcc: str = ""
    via_mail: bool = False
    first_attachment: int = 0
    attachments: tuple[SimAttachment, ...] | None = None

    @property
    def attachment_count(self) -> int:
        if self.attachments is not None:
            return len(self.attachments)
        return ATTACHMENTS_PER_TYPE.get(self.type, 0) if self.first_attachment else 0


@dataclass(slots=True)
class SimTicket:
    id: int
    queue: str
    subject: str
    creator: str
    owner: str
    requestors: tuple[str, ...]
    status: str
    created: int
    cc: tuple[str, ...] = ()
    admin_cc: tuple[str, ...] = ()
    started: int | None = None
    resolved: int | None = None
    told: int | None = None
    last_updated: int = 0
    transactions: list[SimTransaction] = field(default_factory=list)
    deleted: bool = False
    hidden: bool = False


STAFF = (
    ("root", "Enoch Root", "root@localhost"),
    ("jdoe", "John Doe", ""),
    ("msmith", "Mary Smith", ""),
    ("akhan", "Aisha Khan", ""),
    ("bnguyen", "Bao Nguyen", ""),
    ("cmuller", "Clara Müller", ""),
    ("pbrown", "Paula Brown", ""),
    ("tgarcia", "Tomás García", ""),
)
AGENTS = ("jdoe", "msmith", "akhan", "bnguyen", "cmuller")
DISPATCHERS = ("pbrown", "tgarcia")
FIRST = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
)
LAST = (
    "customer",
    "meyer",
    "okafor",
    "lindqvist",
    "tanaka",
    "silva",
    "novak",
    "oconnor",
    "dubois",
    "rossi",
    "kowalski",
    "haddad",
)
DOMAINS = ("example.com", "example.org", "example.net", "client.example")
LONG_DEPTS = (
    "procurement-department",
    "accounts-payable-team",
    "facilities-management",
    "research-and-development",
)
SUBJECTS = (
    "Printer on fire",
    "Cannot log in to VPN",
    "Invoice {n} is wrong",
    "Request for a second monitor",
    "Password reset for {n}",
    "Laptop will not boot",
    "Shared drive is full",
    "New starter account needed",
    "E-mail bounces from {n}",
    "Licence renewal for seat {n}",
    "Projector in room {n} flickers",
    "Slow Wi-Fi on floor {n}",
)
SUBJECTS_UTF8 = (
    "Café menu — naïve question ✓",
    "Überweisung {n} fehlt",
    "Ошибка входа {n}",
    "Réunion annulée — salle {n}",
    "料金について {n}",
)
CLIENT_LINES = (
    "It stopped working this morning.",
    "The error says access denied.",
    "Could you please have a look today?",
    "It is still burning. Please hurry!",
    "We tried restarting, no change.",
    "Screenshot attached in the next mail.",
    "This blocks the whole team.",
    "Thanks for the quick reply, it works now.",
)
STAFF_LINES = (
    "Please step away from the printer. We are on it.",
    "I have reset the account; try again.",
    "Fire brigade informed; replacement printer ordered.",
    "Could you send the exact error?",
    "Corrected invoice attached to your account.",
    "A technician will visit at 2 pm.",
    "Fixed on our side, please confirm.",
    "We have escalated this to the vendor.",
)
COMMENT_LINES = (
    "Internal: charge to facilities budget.",
    "Internal: waiting on vendor ticket.",
    "Internal: same issue as last week.",
    "Internal: needs approval from finance.",
)


def _rng(*parts: object) -> random.Random:
    """A private RNG per (seed, ticket/transaction): rendering order never changes the output."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


class SimRT:
    """Everything the simulated RT knows. Mutations hold `lock`; so do the server's renders."""

    def __init__(
        self,
        *,
        seed: int = 1,
        timezone: str = "America/New_York",
        rtname: str = "rt",
        web_url: str = "http://127.0.0.1:8080",
        staff_login_emails: bool = False,
        staff_domain: str = "rt.example",
    ) -> None:
        self.seed = seed
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        self.rtname = rtname
        self.web_url = web_url
        self.staff_domain = staff_domain
        self.staff_login_emails = staff_login_emails
        self.lock = threading.RLock()
        self.tickets: dict[int, SimTicket] = {}
        self.users: dict[str, SimUser] = {}
        self.users_by_id: dict[int, SimUser] = {}
        self.next_transaction_id = 1
        self.next_attachment_id = 1
        self._next_user_id = 40
        self.correspond_address = f"rt@{rtname}.example"
        self._add_user(SimUser(1, SYSTEM_USER, "", "The RT System itself", privileged=True))
        self._add_user(SimUser(6, NOBODY, "", "Nobody in particular"))
        self.staff: dict[str, str] = {}  # short login -> RT Name (an address in e-mail mode)
        for index, (login, real, email) in enumerate(STAFF):
            address = email or f"{login}@{staff_domain}"
            name = address if staff_login_emails and login != "root" else login
            uid = 14 if login == "root" else 29 + 2 * index
            self._add_user(SimUser(uid, name, address, real, privileged=True))
            self.staff[login] = name

    # --- users -----------------------------------------------------------------------------

    def _add_user(self, user: SimUser) -> SimUser:
        self.users[user.name.lower()] = user
        self.users_by_id[user.id] = user
        return user

    def user(self, name_or_id: str) -> SimUser | None:
        if name_or_id.isdigit():
            return self.users_by_id.get(int(name_or_id))
        return self.users.get(name_or_id.lower())

    def client(self, address: str, real_name: str = "", via_mail: bool = True) -> SimUser:
        """The requestor's user, auto-created as RT does (address as Name, unprivileged)."""
        user = self.users.get(address.lower())
        if user is None:
            comment = (
                "Autocreated on ticket submission"
                if via_mail
                else "Autocreated when added as a watcher"
            )
            user = self._add_user(
                SimUser(self._next_user_id, address, address, real_name, comments=comment)
            )
            self._next_user_id += 2
        return user

    def is_staff(self, name: str) -> bool:
        user = self.user(name)
        return bool(user and user.privileged)

    def email_of(self, name: str) -> str:
        user = self.user(name)
        return user.email if user and user.email else name

    # --- building blocks ---------------------------------------------------------------------

    def new_transaction(
        self, ticket: SimTicket, type_: str, creator: str, created: int, *, gap: int = 0, **kw
    ) -> SimTransaction:
        """Append a transaction; ids are global and `gap` skips some (other tickets' activity)."""
        self.next_transaction_id += gap
        txn = SimTransaction(self.next_transaction_id, type_, creator, created, **kw)
        self.next_transaction_id += 1
        if not txn.description:
            txn.description = describe(self, txn)
        if txn.attachments is None and ATTACHMENTS_PER_TYPE.get(type_):
            txn.first_attachment = self.next_attachment_id
            self.next_attachment_id += ATTACHMENTS_PER_TYPE[type_]
        elif txn.attachments:
            self.next_attachment_id = max(self.next_attachment_id, txn.attachments[-1].id + 1)
        ticket.transactions.append(txn)
        ticket.last_updated = max(ticket.last_updated, created)
        return txn

    def _mail(
        self,
        ticket: SimTicket,
        kind: str,
        ref: SimTransaction,
        at: int,
        *,
        to: str = "",
        bcc: str = "",
        gap: int = 0,
    ) -> SimTransaction:
        type_ = "CommentEmailRecord" if kind == "comment" else "EmailRecord"
        return self.new_transaction(
            ticket, type_, SYSTEM_USER, at, kind=kind, ref=ref.id, to=to, bcc=bcc, gap=gap
        )

    def _status(self, ticket: SimTicket, new: str, by: str, at: int, gap: int = 0) -> None:
        old = ticket.status
        self.new_transaction(
            ticket, "Status", by, at, field="Status", old_value=old, new_value=new, gap=gap
        )
        ticket.status = new
        if new == "open" and ticket.started is None:
            ticket.started = at
        if new == "resolved":
            ticket.resolved = at

    def requestor_addresses(self, ticket: SimTicket) -> str:
        return ", ".join(ticket.requestors)

    # --- mutations (also reachable over HTTP through the control endpoint) --------------------

    def add_ticket(
        self,
        subject: str,
        requestors: Sequence[str],
        *,
        queue: str = "General",
        creator: str | None = None,
        text: str = "Please help.",
        at: datetime | int | None = None,
        autoreply: bool = True,
        ticket_id: int | None = None,
    ) -> int:
        """Create a ticket as RT does: the Create transaction and (by default) the autoreply."""
        with self.lock:
            tid = ticket_id or (max(self.tickets, default=0) + 1)
            when = _epoch(at) if at is not None else self._now_after(None)
            via_mail = creator is None or not self.is_staff(creator)
            creator = creator or requestors[0]
            for address in requestors:
                self.client(address, via_mail=via_mail)
            ticket = SimTicket(
                tid,
                queue,
                subject,
                creator,
                NOBODY,
                tuple(requestors),
                "new",
                when,
                last_updated=when,
            )
            self.tickets[tid] = ticket
            create = self.new_transaction(
                ticket,
                "Create",
                creator,
                when,
                via_mail=via_mail,
                content=text + "\n" if via_mail else text,
            )
            if autoreply:
                self._mail(ticket, "autoreply", create, when, to=self.requestor_addresses(ticket))
            return tid

    def add_correspondence(
        self,
        ticket_id: int,
        creator: str,
        text: str = "Any news?",
        at: datetime | int | None = None,
    ) -> SimTransaction:
        """A reply (staff or requestor) plus RT's mail; always bumps LastUpdated."""
        with self.lock:
            ticket = self._ticket(ticket_id)
            when = _epoch(at) if at is not None else self._now_after(ticket)
            staff = self.is_staff(creator)
            txn = self.new_transaction(
                ticket,
                "Correspond",
                creator,
                when,
                via_mail=not staff,
                content=text if staff else text + "\n",
            )
            if staff:
                self._mail(ticket, "requestor", txn, when, to=self.requestor_addresses(ticket))
                ticket.told = when
                if ticket.status == "new":
                    self._status(ticket, "open", SYSTEM_USER, when)
            else:
                owner = ticket.owner if ticket.owner != NOBODY else ""
                if owner:
                    self._mail(ticket, "notify", txn, when, to=self.email_of(owner))
                if ticket.status in ("resolved", "stalled"):
                    self._status(ticket, "open", SYSTEM_USER, when)
            ticket.last_updated = max(ticket.last_updated, when)
            return txn

    def set_status(
        self, ticket_id: int, status: str, by: str = "root", at: datetime | int | None = None
    ) -> None:
        with self.lock:
            ticket = self._ticket(ticket_id)
            when = _epoch(at) if at is not None else self._now_after(ticket)
            if status == ticket.status:
                return
            self._status(ticket, status, by, when)
            if status == "resolved":
                last = ticket.transactions[-1]
                self._mail(ticket, "resolved", last, when, to=self.requestor_addresses(ticket))

    def delete_ticket(self, ticket_id: int) -> None:
        with self.lock:
            self._ticket(ticket_id).deleted = True

    def hide_ticket(self, ticket_id: int, hidden: bool = True) -> None:
        with self.lock:
            self._ticket(ticket_id).hidden = hidden

    def _ticket(self, ticket_id: int) -> SimTicket:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            raise KeyError(f"no ticket {ticket_id}")
        return ticket

    def _now_after(self, ticket: SimTicket | None) -> int:
        """A time for a mutation: a minute after the latest activity, so LastUpdated always moves."""
        latest = (
            ticket.last_updated
            if ticket
            else max((t.last_updated for t in self.tickets.values()), default=1_700_000_000)
        )
        return latest + 60

    # --- derived content -----------------------------------------------------------------------

    def transaction_content(self, ticket: SimTicket, txn: SimTransaction) -> str:
        if txn.content is not None:
            return txn.content
        return derive_content(self, ticket, txn)

    def transaction_attachments(
        self, ticket: SimTicket, txn: SimTransaction
    ) -> tuple[SimAttachment, ...]:
        if txn.attachments is not None:
            return txn.attachments
        return derive_attachments(self, ticket, txn)

    def find_transaction(self, ticket: SimTicket, txn_id: int) -> SimTransaction | None:
        for txn in ticket.transactions:
            if txn.id == txn_id:
                return txn
        return None

    def find_attachment(self, ticket: SimTicket, attachment_id: int) -> SimAttachment | None:
        """The attachment with this id if it belongs to `ticket` (RT ids are global)."""
        for txn in ticket.transactions:
            if txn.attachments is not None:
                for attachment in txn.attachments:
                    if attachment.id == attachment_id:
                        return attachment
            elif txn.first_attachment and 0 <= attachment_id - txn.first_attachment < (
                txn.attachment_count
            ):
                return self.transaction_attachments(ticket, txn)[
                    attachment_id - txn.first_attachment
                ]
        return None


def _epoch(value: datetime | int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    return int(value)


def describe(sim: SimRT, txn: SimTransaction) -> str:
    """RT's one-line Description of a transaction, as the short history lists it."""
    match txn.type:
        case "Create":
            return f"Ticket created by {txn.creator}"
        case "Correspond":
            return f"Correspondence added by {txn.creator}"
        case "Comment":
            return f"Comments added by {txn.creator}"
        case "EmailRecord":
            return "Outgoing email recorded by RT_System"
        case "CommentEmailRecord":
            return "Outgoing email about a comment recorded by RT_System"
        case "Status":
            return f"Status changed from '{txn.old_value}' to '{txn.new_value}' by {txn.creator}"
        case "Set" if txn.field == "Owner":
            new = sim.user(txn.new_value)
            return f"Given to {new.display() if new else txn.new_value} by {txn.creator}"
        case "SetWatcher" if txn.field == "Owner":
            new = sim.user(txn.new_value)
            return f"Owner set to {new.display() if new else txn.new_value} by {txn.creator}"
    return f"{txn.type} by {txn.creator}"


# --- the deterministic generator --------------------------------------------------------------


def generate_tickets(
    n: int,
    *,
    seed: int = 1,
    start_id: int = 1,
    queues: Sequence[str] = ("General", "Support"),
    timezone: str = "America/New_York",
    start: datetime = datetime(2025, 1, 6, 13, 0, tzinfo=UTC),
    days: float = 365.0,
    rtname: str = "rt",
    staff_login_emails: bool = False,
    web_url: str = "http://127.0.0.1:8080",
) -> SimRT:
    """Build `n` realistic tickets, identical for the same arguments.

    Mix (roughly): 60% created by mail from a client, 40% by staff; 10% several requestors with
    long addresses (the Requestors line wraps); 5% non-ASCII subjects; 75% given to an owner;
    10% never answered by staff; 4% with no outgoing mail at all; 15% whose first staff mail is
    BCC'd to a dispatcher (a third of those without an autoreply, so that BCC'd mail is the
    ticket's first outgoing mail); 30% with an internal comment; 10% reopened by the client and
    resolved again; about 8% still open or new.
    """
    sim = SimRT(
        seed=seed,
        timezone=timezone,
        rtname=rtname,
        staff_login_emails=staff_login_emails,
        web_url=web_url,
    )
    base = int(start.timestamp())
    spacing = days * 86400 / max(n, 1)
    pool = max(20, n // 3)
    for offset in range(n):
        tid = start_id + offset
        rng = _rng("ticket", seed, tid)
        created = base + int(offset * spacing + rng.random() * spacing * 0.5)
        _generate_one(sim, rng, tid, created, queues, pool)
    return sim


def client_address(index: int) -> tuple[str, str]:
    """The index-th client's address and real name (no RNG: the same client across tickets)."""
    first = FIRST[index % len(FIRST)]
    last = LAST[(index // len(FIRST)) % len(LAST)]
    serial = index // (len(FIRST) * len(LAST))
    suffix = str(serial) if serial else ""
    domain = DOMAINS[index % len(DOMAINS)]
    return f"{first}.{last}{suffix}@{domain}", f"{first.title()} {last.title()}"


def _generate_one(
    sim: SimRT, rng: random.Random, tid: int, t: int, queues: Sequence[str], pool: int
) -> None:
    staff = sim.staff
    by_mail = rng.random() < 0.6
    several = rng.random() < 0.10
    utf8 = rng.random() < 0.05
    subject_pool = SUBJECTS_UTF8 if utf8 else SUBJECTS
    subject = rng.choice(subject_pool).format(n=rng.randint(10, 9999))
    queue = queues[rng.randrange(len(queues))]
    no_mail = rng.random() < 0.04
    dispatcher = rng.choice(DISPATCHERS) if rng.random() < 0.15 else ""
    autoreply = not no_mail and not (dispatcher and rng.random() < 0.33)
    no_staff_reply = rng.random() < 0.10
    give = rng.random() < 0.75
    comment = rng.random() < 0.30
    client_rounds = rng.choice((0, 1, 1, 2, 3))
    fate = rng.random()  # < 0.08 stays open/new, < 0.18 reopened and resolved again

    primary, real = client_address(rng.randrange(pool))
    requestors = [primary]
    if several:
        for _ in range(rng.randint(1, 3)):
            first, _real = client_address(rng.randrange(pool))
            dept = rng.choice(LONG_DEPTS)
            requestors.append(f"{first.split('@')[0]}.{dept}@{first.split('@')[1]}")
    agent = staff[rng.choice(AGENTS)]
    creator = primary if by_mail else staff[rng.choice(("root", *AGENTS))]
    for address in requestors:
        sim.client(address, real if address == primary else "", via_mail=by_mail)

    ticket = SimTicket(
        tid, queue, subject, creator, NOBODY, tuple(requestors), "new", t, last_updated=t
    )
    sim.tickets[tid] = ticket

    def gap() -> int:
        return rng.choice((0, 0, 0, 1, 2))

    to_requestors = ", ".join(requestors)
    create = sim.new_transaction(ticket, "Create", creator, t, via_mail=by_mail, gap=gap())
    if autoreply:
        sim._mail(ticket, "autoreply", create, t, to=to_requestors, gap=gap())
    if not no_mail and not by_mail and rng.random() < 0.5:
        sim._mail(ticket, "notify", create, t, bcc=f"boss@{MAIL_DOMAIN}", gap=gap())

    if give:
        t += rng.randint(60, 4 * 3600)
        giver = staff[dispatcher] if dispatcher else staff["root"]
        owner_user = sim.user(agent)
        assert owner_user is not None
        sim.new_transaction(
            ticket,
            "Set",
            giver,
            t,
            field="Owner",
            old_value="6",
            new_value=str(owner_user.id),
            gap=gap(),
        )
        if not no_mail:
            sim._mail(ticket, "owner", ticket.transactions[-1], t, to=owner_user.email, gap=gap())
        sim.new_transaction(
            ticket,
            "SetWatcher",
            giver,
            t,
            field="Owner",
            old_value="6",
            new_value=str(owner_user.id),
            gap=gap(),
        )
        ticket.owner = agent

    first_staff_mail = True

    def staff_reply(who: str) -> None:
        nonlocal t, first_staff_mail
        t += rng.randint(300, 2 * 86400)
        reply = sim.new_transaction(ticket, "Correspond", who, t, gap=gap())
        if not no_mail:
            bcc = sim.email_of(staff[dispatcher]) if dispatcher and first_staff_mail else ""
            sim._mail(ticket, "requestor", reply, t, to=to_requestors, bcc=bcc, gap=gap())
        first_staff_mail = False
        ticket.told = t
        if ticket.status == "new":
            sim._status(ticket, "open", SYSTEM_USER, t, gap=gap())

    def client_reply() -> None:
        nonlocal t
        t += rng.randint(600, 3 * 86400)
        reply = sim.new_transaction(ticket, "Correspond", primary, t, via_mail=True, gap=gap())
        if not no_mail and ticket.owner != NOBODY:
            sim._mail(ticket, "notify", reply, t, to=sim.email_of(ticket.owner), gap=gap())
        if ticket.status == "resolved":
            sim._status(ticket, "open", SYSTEM_USER, t, gap=gap())

    responder = agent if give else staff[rng.choice(AGENTS)]
    if not no_staff_reply:
        staff_reply(responder)
        for _ in range(client_rounds):
            client_reply()
            if rng.random() < 0.8:
                staff_reply(responder)
    elif client_rounds:
        client_reply()
    if comment:
        t += rng.randint(60, 86400)
        note = sim.new_transaction(ticket, "Comment", staff[rng.choice(AGENTS)], t, gap=gap())
        if not no_mail:
            sim._mail(
                ticket,
                "comment",
                note,
                t,
                bcc=sim.email_of(ticket.owner) if ticket.owner != NOBODY else "",
                gap=gap(),
            )

    def resolve() -> None:
        nonlocal t
        t += rng.randint(600, 86400)
        sim._status(ticket, "resolved", responder, t, gap=gap())
        if not no_mail:
            sim._mail(ticket, "resolved", ticket.transactions[-1], t, to=to_requestors, gap=gap())

    if fate < 0.08:
        return
    resolve()
    if fate < 0.18:
        client_reply()
        if not no_staff_reply:
            staff_reply(responder)
        resolve()


# --- derived text and attachments -------------------------------------------------------------


def _wrap(text: str) -> str:
    return "\n".join(textwrap.fill(p, 78) if p else "" for p in text.split("\n"))


def _body(sim: SimRT, ticket: SimTicket, txn: SimTransaction) -> str:
    rng = _rng("text", sim.seed, txn.id)
    if txn.type == "Comment":
        return rng.choice(COMMENT_LINES)
    if txn.type == "Create":
        line = rng.choice(CLIENT_LINES)
        return f"{line}\n{rng.choice(CLIENT_LINES)}" if rng.random() < 0.5 else line
    return rng.choice(STAFF_LINES if sim.is_staff(txn.creator) else CLIENT_LINES)


def derive_content(sim: SimRT, ticket: SimTicket, txn: SimTransaction) -> str:
    """The text/plain part RT shows as a transaction's Content (trailing newlines as RT keeps them)."""
    if txn.type in ("Create", "Correspond", "Comment"):
        text = _body(sim, ticket, txn)
        return text + "\n" if txn.via_mail else text
    if txn.type not in ("EmailRecord", "CommentEmailRecord"):
        return NO_CONTENT
    ref = sim.find_transaction(ticket, txn.ref)
    quoted = (sim.transaction_content(ticket, ref) if ref else "").rstrip("\n")
    url = f"{sim.web_url}/Ticket/Display.html?id={ticket.id}"
    tag = f"[{sim.rtname} #{ticket.id}]"
    match txn.kind:
        case "autoreply":
            head = _wrap(
                "Greetings,\n\nThis message has been automatically generated in response to the "
                f"creation of a trouble ticket regarding {ticket.subject}, a summary of which "
                "appears below.\n\nThere is no need to reply to this message right now. Your "
                f"ticket has been assigned an ID of {tag}.\n\nPlease include the string {tag} in "
                "the subject line of all future correspondence about this issue. To do so, you "
                "may reply to this message.\n\nThank you,"
            )
            return f"{head}\n\n{'-' * 78}\n\n{quoted}\n\n"
        case "requestor":
            return f"{quoted}\n\n"
        case "notify":
            return f"Ticket URL: {url}\n\n{quoted}\n\n"
        case "resolved":
            return (
                "According to our records, your request has been resolved. If you have any\n"
                "further questions or concerns, please respond to this message.\n\n"
            )
        case "comment":
            return (
                f"This is a comment about ticket {ticket.id} ({url}).\n"
                f"It is not sent to the Requestor(s):\n\n{quoted}\n\n"
            )
        case "owner":
            return (
                f"Request {ticket.id} ({url})\nwas acted upon by {ref.creator if ref else 'root'}."
                f"\n\n Transaction:  {ref.description if ref else ''}\n"
                f">>>  Queue:  {ticket.queue}\n>>  Subject:  {ticket.subject}\n\n\n"
                f"{NO_CONTENT}\n\n"
            )
    return f"{quoted}\n\n"


def _html(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<pre style="white-space: pre-wrap; font-family: monospace;">{escaped}</pre>\n'


def message_id(sim: SimRT, ticket: SimTicket, txn: SimTransaction) -> str:
    rng = _rng("msgid", sim.seed, txn.id)
    return (
        f"rt-{RT_VERSION}-{rng.randint(15000, 16000)}-{txn.created}-{rng.randint(1, 2000)}."
        f"{ticket.id}-{rng.randint(0, 12)}-0@{sim.rtname}.example"
    )


def transaction_data(sim: SimRT, ticket: SimTicket, txn: SimTransaction) -> str:
    """The Data field: the Message-ID of a recorded mail, a reply's subject, or nothing."""
    if txn.data is not None:
        return txn.data
    if txn.type in ("EmailRecord", "CommentEmailRecord"):
        return f"<{message_id(sim, ticket, txn)}>"
    if txn.type in ("Correspond", "Comment"):
        return (
            f"Re: [{sim.rtname} #{ticket.id}] {ticket.subject}\n" if txn.via_mail else "No Subject"
        )
    return ""


def _shuffled(rng: random.Random, headers: Iterable[str]) -> tuple[str, ...]:
    lines = list(headers)
    rng.shuffle(lines)
    return tuple(lines)


def _mail_date(sim: SimRT, at: int) -> str:
    return datetime.fromtimestamp(at, sim.tz).strftime("%a, %d %b %Y %H:%M:%S %z")


def derive_attachments(
    sim: SimRT, ticket: SimTicket, txn: SimTransaction
) -> tuple[SimAttachment, ...]:
    """The MIME parts RT would have stored for `txn`, built only when asked for."""
    count = txn.attachment_count
    if not count:
        return ()
    aid = txn.first_attachment
    content = sim.transaction_content(ticket, txn)
    creator = sim.user(txn.creator)
    creator_id = creator.id if creator else 1
    rng = _rng("headers", sim.seed, txn.id)
    length = f"Content-Length: {len(content.encode())}"
    if txn.type in ("Create", "Correspond", "Comment"):
        if txn.via_mail:
            mid = f"{txn.id}-{rng.randint(10**8, 10**9)}@{txn.creator.split('@')[-1]}"
            subject = (
                ticket.subject
                if txn.type == "Create"
                else transaction_data(sim, ticket, txn).rstrip("\n")
            )
            real = creator.real_name if creator and creator.real_name else txn.creator
            headers = (
                *_shuffled(
                    rng,
                    (
                        "MIME-Version: 1.0",
                        f"Message-ID: <{mid}>",
                        f'From: "{real}" <{txn.creator}>',
                        "X-RT-Incoming-Encryption: Not encrypted",
                        f"Subject: {subject}",
                        "X-RT-Original-Encoding: utf-8",
                        f"To: {sim.correspond_address}",
                        'content-type: text/plain; charset="utf-8"',
                        "X-RT-Interface: Email",
                    ),
                ),
                length,
            )
            return (
                SimAttachment(
                    aid,
                    txn.id,
                    "text/plain",
                    content,
                    headers,
                    subject,
                    0,
                    mid,
                    creator_id=creator_id,
                    created=txn.created,
                ),
            )
        subject = ticket.subject if txn.type == "Create" else ""
        headers = (
            *_shuffled(
                rng,
                (
                    "X-RT-Interface: REST",
                    "Content-Disposition: inline",
                    'Content-Type: text/plain; charset="utf-8"',
                    "Content-Transfer-Encoding: binary",
                    "MIME-Version: 1.0",
                    "X-Mailer: MIME-tools 5.510 (Entity 5.510)",
                    "X-RT-Original-Encoding: utf-8",
                )
                + (
                    (f"Subject: {subject}", f"From: {sim.email_of(txn.creator)}")
                    if subject
                    else ("RT-Send-CC:",)
                ),
            ),
            length,
        )
        return (
            SimAttachment(
                aid,
                txn.id,
                "text/plain",
                content,
                headers,
                subject,
                creator_id=creator_id,
                created=txn.created,
            ),
        )
    # an outgoing mail: multipart/alternative with a text and an html part
    mid = message_id(sim, ticket, txn)
    ref = sim.find_transaction(ticket, txn.ref)
    originator = sim.email_of(ref.creator) if ref else sim.correspond_address
    prefix = {"autoreply": "AutoReply: ", "resolved": "Resolved: ", "comment": "[Comment] "}
    subject = f"[{sim.rtname} #{ticket.id}] {prefix.get(txn.kind, '')}{ticket.subject}"
    sender = sim.user(ref.creator) if ref else None
    via = (
        sender.real_name
        if sender and sender.privileged and sender.real_name
        else (f"The {ticket.queue} queue")
    )
    top = [
        f"Message-ID: <{mid}>",
        f"X-RT-Originator: {originator}",
        f'From: "{via} via RT" <{sim.correspond_address}>',
        f"Reply-To: {sim.correspond_address}",
        f"References: <RT-Ticket-{ticket.id}@{sim.rtname}.example>",
        "Content-Transfer-Encoding: 8bit",
        f'Content-Type: multipart/alternative; boundary="----------={txn.created}-{txn.id}-1"',
        f"X-RT-Ticket: {sim.rtname} #{ticket.id}",
        "MIME-Version: 1.0",
        f"X-Managed-BY: RT {RT_VERSION} (http://www.bestpractical.com/rt/)",
        f"Subject: {subject}",
        "In-Reply-To:",
        f"X-RT-Loop-Prevention: {sim.rtname}",
        "Precedence: bulk",
        f"Date: {_mail_date(sim, txn.created)}",
    ]
    if txn.kind == "autoreply":
        top.append("Auto-Submitted: auto-replied")
    if txn.to:
        top.append(f"To: {txn.to}")
    if txn.bcc:
        top.append(f"BCC: {txn.bcc}")
    html = _html(content)
    cte = "7bit" if content.isascii() else "quoted-printable"
    part = (
        'Content-Type: text/{kind}; charset="utf-8"',
        f"Content-Transfer-Encoding: {cte}",
        "X-RT-Original-Encoding: utf-8",
    )
    return (
        SimAttachment(
            aid,
            txn.id,
            "multipart/alternative",
            "",
            (*_shuffled(rng, top), "Content-Length: 0"),
            subject,
            0,
            mid,
            created=txn.created,
        ),
        SimAttachment(
            aid + 1,
            txn.id,
            "text/plain",
            content,
            (*tuple(h.format(kind="plain") for h in part), length),
            parent=aid,
            created=txn.created,
        ),
        SimAttachment(
            aid + 2,
            txn.id,
            "text/html",
            html,
            (*tuple(h.format(kind="html") for h in part), f"Content-Length: {len(html.encode())}"),
            parent=aid,
            created=txn.created,
        ),
    )
