"""The integration scenario: tickets seeded into a real RT, and the rows the pipeline must derive.

Expected rows are computed here from what the scenario itself did (who wrote what, in which
order, which addresses it gave), never from the code under test. Only the exact instants come
from RT, and from an independent source: REST 2, which answers UTC with a `Z`. Each instant is
asserted to fall inside the clock window the scenario recorded around the action that caused
it, so a wrong time zone (RT runs in America/New_York here) cannot slip through.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from tests.integration.rt5 import RT_NAME, RTRest

UTC_FORMAT = "%Y-%m-%d %H:%M:%S"

# Staff from the datafile (members of Staff: they see outgoing mail) and from REST `user/new`.
STAFF_FROM_DATAFILE = ("jdoe", "msmith")
KWONG = "kwong"  # privileged, created through REST, replies on a ticket
AUDITOR = "auditor"  # privileged reader outside Staff: no ShowOutgoingEmail

ALICE = "alice@client.example"
BOB = "bob@client.example"
CAROL = "carol@client.example"
DAVE = "dave@client.example"
OLGA = "olga@client.example"
BOSS = "boss@client.example"
AUDIT_BCC = "audit-trail@client.example"
MANY_REQUESTORS = (
    "anastasia.papadopoulou@long-client-domain.example",
    "bartholomew.okonkwo-richardson@long-client-domain.example",
    "chandrasekhar.venkataraman@long-client-domain.example",
    "eve@client.example",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Window:
    """UTC clock readings just before and just after one seeding request."""

    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        # RT stores whole seconds, truncated: compare against the window's start second
        return self.start.replace(microsecond=0) <= instant <= self.end


@dataclass(frozen=True)
class Event:
    kind: str  # create | correspond | comment | resolve | edit
    actor: str  # RT user name; a client's is their address
    window: Window


@dataclass
class SeededTicket:
    key: str
    covers: str
    queue: str
    subject: str
    requestors: tuple[str, ...]
    id: int = 0
    owner: str = "Nobody"
    # BCC of the first outgoing mail, known from what the scenario did (see each ticket)
    dispatcher: str = ""
    resolved: bool = False
    sends_mail: bool = True
    events: list[Event] = field(default_factory=list)

    @property
    def mails(self) -> list[Event]:
        return [event for event in self.events if event.kind in ("create", "correspond")]


@dataclass
class Scenario:
    url: str
    password: str
    tickets: dict[str, SeededTicket] = field(default_factory=dict)

    def listed(self) -> list[SeededTicket]:
        """The tickets a `Status='resolved'` search must list, in id order."""
        return sorted((t for t in self.tickets.values() if t.resolved), key=lambda t: t.id)


def is_client(sender: str) -> bool:
    return "@" in sender


class Seeder:
    """Runs the scenario's actions, each inside a recorded clock window."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.password = password
        self.scenario = Scenario(url=url, password=password)
        self._clients: dict[str, RTRest] = {}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def rest(self, user: str) -> RTRest:
        if user not in self._clients:
            self._clients[user] = RTRest(self.url, user, self.password)
        return self._clients[user]

    def _timed(self, ticket: SeededTicket, kind: str, actor: str, action: Any) -> Any:
        start = utc_now()
        result = action()
        ticket.events.append(Event(kind, actor, Window(start, utc_now())))
        return result

    # accounts

    def create_user(self, name: str, real_name: str, email_address: str) -> None:
        self.rest("root").write(
            "user/new",
            {
                "id": "user/new",
                "Name": name,
                "RealName": real_name,
                "EmailAddress": email_address,
                "Privileged": "1",
                "Password": self.password,
            },
            r"# User (\d+) created\.",
        )

    # tickets

    def new_ticket(
        self,
        key: str,
        covers: str,
        *,
        by: str,
        queue: str,
        subject: str,
        text: str,
        requestors: tuple[str, ...] = (),
        admin_cc: str = "",
    ) -> SeededTicket:
        """Staff create a ticket through REST 1.0 `ticket/new`."""
        ticket = SeededTicket(key, covers, queue, subject, requestors)
        fields = {"id": "ticket/new", "Queue": queue, "Subject": subject}
        if requestors:
            fields["Requestor"] = ", ".join(requestors)
        if admin_cc:
            fields["AdminCc"] = admin_cc
        fields["Text"] = text
        created = self._timed(
            ticket,
            "create",
            by,
            lambda: self.rest(by).write("ticket/new", fields, r"# Ticket (\d+) created\."),
        )
        ticket.id = int(created)
        self.scenario.tickets[key] = ticket
        return ticket

    def mail_new_ticket(
        self, key: str, covers: str, *, sender: str, name: str, queue: str, subject: str, text: str
    ) -> SeededTicket:
        """A client mails the queue; RT creates the ticket (and the client's user)."""
        ticket = SeededTicket(key, covers, queue, subject, (sender,))
        message = _mail(sender, name, queue, subject, text)
        self._timed(
            ticket, "create", sender, lambda: self.rest("root").mail_gateway(queue, message)
        )
        # the gateway answers only `ok` (ticket numbers only in DevelMode): seeding is serial,
        # so the newest ticket is this one
        ticket.id = self.rest("root").newest_ticket_id()
        self.scenario.tickets[key] = ticket
        return ticket

    def mail_reply(self, ticket: SeededTicket, *, sender: str, name: str, text: str) -> None:
        """A client answers by mail; the subject tag routes it to the ticket."""
        subject = f"Re: [{RT_NAME} #{ticket.id}] {ticket.subject}"
        message = _mail(sender, name, ticket.queue, subject, text)
        self._timed(
            ticket,
            "correspond",
            sender,
            lambda: self.rest("root").mail_gateway(ticket.queue, message),
        )

    def reply(self, ticket: SeededTicket, *, by: str, text: str, bcc: str = "") -> None:
        self._comment_form(ticket, "correspond", by, text, bcc, r"# Correspondence added")

    def comment(self, ticket: SeededTicket, *, by: str, text: str) -> None:
        self._comment_form(ticket, "comment", by, text, "", r"# Comments added")

    def _comment_form(
        self, ticket: SeededTicket, action: str, by: str, text: str, bcc: str, expect: str
    ) -> None:
        fields = {"id": str(ticket.id), "Action": action}
        if bcc:
            fields["Bcc"] = bcc
        fields["Text"] = text
        self._timed(
            ticket,
            action,
            by,
            lambda: self.rest(by).write(f"ticket/{ticket.id}/comment", fields, expect),
        )

    def edit(self, ticket: SeededTicket, *, by: str, **fields: str) -> None:
        kind = "resolve" if fields.get("Status") == "resolved" else "edit"
        self._timed(
            ticket,
            kind,
            by,
            lambda: self.rest(by).write(
                f"ticket/{ticket.id}/edit", fields, rf"# Ticket {ticket.id} updated\."
            ),
        )
        if "Owner" in fields:
            ticket.owner = fields["Owner"]
        if "Status" in fields:
            ticket.resolved = fields["Status"] == "resolved"


def _mail(sender: str, name: str, queue: str, subject: str, text: str) -> bytes:
    message = EmailMessage()
    message["From"] = email.utils.formataddr((name, sender))
    message["To"] = f"{queue.lower()}@rt-displayr.test"
    message["Subject"] = subject  # non-ASCII goes out RFC 2047 encoded, as real mail does
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain="client.example")
    message.set_content(text)  # UTF-8, encoded as the policy chooses
    return message.as_bytes()


def seed(url: str, password: str) -> Scenario:
    """Create the accounts and tickets; the table in the report lists what each ticket covers."""
    seeder = Seeder(url, password)
    try:
        return _seed(seeder)
    finally:
        seeder.close()


def _seed(s: Seeder) -> Scenario:
    s.create_user(KWONG, "Kim Wong", "kwong@staff.rt-displayr.test")
    s.create_user(AUDITOR, "Audrey Auditor", "auditor@staff.rt-displayr.test")

    # 1: by mail; interleaved staff/client mail; comments; a one-time Bcc on a reply. Dispatcher
    # empty: the first outgoing mail is the autoreply to the requestor, which has no BCC.
    t = s.mail_new_ticket(
        "mail-thread",
        "created by mail; staff/client replies interleaved; comments excluded; one-time Bcc "
        "on a later reply; requestor → Dispatcher empty",
        sender=ALICE,
        name="Alice Client",
        queue="General",
        subject="Printer on fire",
        text="Help, the printer on floor 3 is on fire.",
    )
    s.reply(t, by="jdoe", text="Please step away from the printer.")
    s.mail_reply(t, sender=ALICE, name="Alice Client", text="Done. Now what?")
    s.comment(t, by="msmith", text="Internal: facilities informed.")
    s.reply(t, by="msmith", text="Facilities are on their way.", bcc=AUDIT_BCC)
    s.mail_reply(t, sender=ALICE, name="Alice Client", text="They arrived, thanks.")
    s.comment(t, by="jdoe", text="Internal: invoice facilities.")
    s.reply(t, by="jdoe", text="Closing this one.")
    s.edit(t, by="jdoe", Owner="jdoe")
    s.edit(t, by="jdoe", Status="resolved")

    # 2: staff create in the second queue: the Create counts as a staff mail, not a response.
    t = s.new_ticket(
        "staff-created",
        "created by staff through REST in queue Support; client reply by mail",
        by="jdoe",
        queue="Support",
        subject="Your account migration",
        text="We will migrate your account on Monday.",
        requestors=(BOB,),
    )
    s.reply(t, by="msmith", text="Migration window confirmed for 10:00.")
    s.mail_reply(t, sender=BOB, name="Bob Client", text="Thanks, works for me.")
    s.edit(t, by="msmith", Owner="msmith", Status="resolved")

    # 3: nobody on the staff ever writes; non-ASCII subject and body arrive RFC 2047/UTF-8.
    t = s.mail_new_ticket(
        "no-staff-reply",
        "created by mail; no staff reply (empty response times); non-ASCII subject/body by mail",
        sender=CAROL,
        name="Carole Cliënt",
        queue="General",
        subject="Ärger mit der Rechnung – ça ne marche pas ✓",
        text="Grüße aus Köln! Die Rechnung Nr. 42 stimmt nicht. 日本語も。",
    )
    s.mail_reply(t, sender=CAROL, name="Carole Cliënt", text="Hat sich erledigt, danke.")
    s.edit(t, by="root", Status="resolved")

    # 4: no requestor, no watcher: RT sends nothing at all, so there is no EmailRecord.
    t = s.new_ticket(
        "no-outgoing-mail",
        "no requestors/watchers: no outgoing mail at all (no EmailRecord); staff reply unsent",
        by="msmith",
        queue="Support",
        subject="Internal: rotate backup tapes",
        text="Tapes for week 49.",
    )
    t.sends_mail = False
    s.comment(t, by="jdoe", text="Done for the Monday set.")
    s.reply(t, by="msmith", text="Logged the rotation.")
    s.edit(t, by="msmith", Status="resolved")

    # 5: an AdminCc and no requestor: no autoreply goes first, so the first outgoing mail is the
    # AdminCc notification, which RT addresses by BCC (stored as `BCC:`).
    t = s.new_ticket(
        "admincc-bcc",
        "AdminCc, no requestor: first outgoing mail carries BCC → Dispatcher = that address",
        by="root",
        queue="General",
        subject="Quarterly access review",
        text="Please review the access list.",
        admin_cc=BOSS,
    )
    t.dispatcher = BOSS
    s.reply(t, by="jdoe", text="Review done, two accounts removed.")
    s.edit(t, by="root", Owner="jdoe", Status="resolved")

    # 6: four long requestors (RT wraps the list past 70 characters), created by a REST-made
    # staff account, non-ASCII subject and body through REST.
    t = s.new_ticket(
        "many-requestors",
        "4 requestors wrapping past 70 chars; non-ASCII via REST; staff user made by user/new",
        by=KWONG,
        queue="Support",
        subject="Café menu — naïve question ✓ (日本語)",
        text="Bonjour à tous, voilà le menu: crème brûlée, smørrebrød.",
        requestors=MANY_REQUESTORS,
    )
    s.mail_reply(t, sender=MANY_REQUESTORS[1], name="Bartholomew", text="Is the smørrebrød vegan?")
    s.reply(t, by=KWONG, text="Oui, végétalien.")
    s.mail_reply(t, sender=MANY_REQUESTORS[3], name="Eve", text="Merci !")
    s.edit(t, by=KWONG, Owner=KWONG, Status="resolved")

    # 7: resolved, reopened by the client's mail, answered and resolved again.
    t = s.mail_new_ticket(
        "reopened",
        "resolved, reopened by a client mail, resolved again (ResolvedTimeUTC = the last)",
        sender=DAVE,
        name="Dave Client",
        queue="General",
        subject="VPN drops every hour",
        text="My VPN disconnects every 60 minutes.",
    )
    s.reply(t, by="jdoe", text="Fixed the session timeout.")
    s.edit(t, by="jdoe", Status="resolved")
    s.mail_reply(t, sender=DAVE, name="Dave Client", text="It happened again just now.")
    s.reply(t, by="msmith", text="Second fix deployed.")
    s.edit(t, by="msmith", Owner="msmith", Status="resolved")

    # 8: still open: a resolved search must not list it.
    t = s.mail_new_ticket(
        "still-open",
        "open ticket: must not appear",
        sender=OLGA,
        name="Olga Client",
        queue="General",
        subject="Need a new monitor",
        text="Mine flickers.",
    )
    s.reply(t, by="jdoe", text="Ordered one.")

    # 9: an ordinary ticket that one test hides (moves to Vault) mid-run.
    t = s.new_ticket(
        "victim",
        "hidden from the reading account between search and fetch (test moves it to Vault)",
        by="msmith",
        queue="General",
        subject="Password reset",
        text="Your password was reset as requested.",
        requestors=(BOB,),
    )
    s.mail_reply(t, sender=BOB, name="Bob Client", text="Got it.")
    s.edit(t, by="msmith", Status="resolved")
    return s.scenario


# expected rows


def _rest2_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _fmt(instant: datetime | None) -> str:
    return "" if instant is None else instant.strftime(UTC_FORMAT)


@dataclass(frozen=True)
class RTView:
    """What REST 2 (as root) says about one ticket, reduced to what the checks need."""

    mails: list[tuple[str, datetime]]  # Create/Correspond creator and time, in id order
    comments: int
    resolved_times: list[datetime]
    email_records: list[int]
    requestors: list[str]
    owner: str
    queue: str


def rt_view(rest: RTRest, ticket_id: int) -> RTView:
    history = rest.rest2_all(
        f"ticket/{ticket_id}/history", fields="Type,Created,Creator,Field,NewValue"
    )
    history.sort(key=lambda item: int(item["id"]))
    record = rest.rest2(f"ticket/{ticket_id}", fields="Requestor,Owner,Queue")
    queue = rest.rest2(f"queue/{record['Queue']['id']}")["Name"]
    return RTView(
        mails=[
            (item["Creator"]["id"], _rest2_time(item["Created"]))
            for item in history
            if item["Type"] in ("Create", "Correspond")
        ],
        comments=sum(item["Type"] == "Comment" for item in history),
        resolved_times=[
            _rest2_time(item["Created"])
            for item in history
            if item["Type"] == "Status" and item["NewValue"] == "resolved"
        ],
        email_records=[int(item["id"]) for item in history if item["Type"] == "EmailRecord"],
        requestors=[person["id"] for person in record.get("Requestor", [])],
        owner=record["Owner"]["id"],
        queue=queue,
    )


def first_outgoing_bcc(rest: RTRest, view: RTView) -> str:
    """The BCC header of the lowest-id attachment of the first EmailRecord, read through REST 2."""
    if not view.email_records:
        return ""
    attachments = rest.rest2_all(f"transaction/{view.email_records[0]}/attachments")
    first = min(int(item["id"]) for item in attachments)
    headers = rest.rest2(f"attachment/{first}")["Headers"]
    for line in headers.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "bcc":
            return value.strip()
    return ""


def expected_row(ticket: SeededTicket, view: RTView) -> dict[str, str]:
    """One row from the scenario's own record, with instants RT confirms inside their windows."""
    mails = ticket.mails
    actors = [event.actor for event in mails]
    if [creator for creator, _ in view.mails] != actors:
        raise AssertionError(f"ticket {ticket.id}: RT has mails by {view.mails}, seeded {actors}")
    for event, (_, instant) in zip(mails, view.mails, strict=True):
        if not event.window.contains(instant):
            raise AssertionError(f"ticket {ticket.id}: {event} happened at {instant}")
    if set(view.requestors) != set(ticket.requestors):
        raise AssertionError(f"ticket {ticket.id}: requestors {view.requestors}")
    resolves = [event for event in ticket.events if event.kind == "resolve"]
    resolved_at = view.resolved_times[-1] if view.resolved_times else None
    if ticket.resolved and (resolved_at is None or not resolves[-1].window.contains(resolved_at)):
        raise AssertionError(f"ticket {ticket.id}: resolved at {resolved_at}, {resolves[-1]}")
    staff_replies = [
        instant
        for event, (_, instant) in zip(mails, view.mails, strict=True)
        if event.kind == "correspond" and not is_client(event.actor)
    ]
    staff = [actor for actor in actors if not is_client(actor)]
    return {
        "TicketID": str(ticket.id),
        "RTQueue": ticket.queue,
        "Owner": ticket.owner,
        "EmailReceivedTimeUTC": _fmt(view.mails[0][1]),
        # RT's own order (REST 2 agrees with REST 1.0); the set was checked against the seed
        "Requestors": ", ".join(view.requestors),
        "ResolvedTimeUTC": _fmt(resolved_at),
        "NumClientEmails": str(len(actors) - len(staff)),
        "NumStaffEmails": str(len(staff)),
        "StaffEmailers": ",".join(staff),
        "FirstResponseTimeUTC": _fmt(staff_replies[0]) if staff_replies else "",
        "LastResponseTimeUTC": _fmt(staff_replies[-1]) if staff_replies else "",
        "Subject": ticket.subject,
        "EmailSenderChain": ",".join(actors),
        "Dispatcher": ticket.dispatcher,
    }


def expected_rows(
    scenario: Scenario, views: dict[int, RTView], *, sees_outgoing_mail: bool = True
) -> list[dict[str, str]]:
    """Rows for `Status='resolved'`, in ticket id order.

    An account without ShowOutgoingEmail does not see EmailRecord transactions at all, so it
    cannot know any dispatcher.
    """
    rows = [expected_row(ticket, views[ticket.id]) for ticket in scenario.listed()]
    if not sees_outgoing_mail:
        for row in rows:
            row["Dispatcher"] = ""
    return rows
