"""The drill harness: real rulewatch processes on private services, and what the database says.

A drill starts `rulewatch web`, `worker`, `scheduler` and `beat` (each in its own process
group, its own RULEWATCH_HOME and log) against a database and a broker, adds a handful of
http rules against a real HTTP target once the stack is up, takes something away and gives
it back (``outage``), then counts from the verifications table.

What the counts mean. A rule with ``interval_s`` is due at ``anchor + k * interval_s``, its
anchor being its first due time (``next_due_at`` when it was made); a run that records late
moves the rule to the next slot after it on the same grid (``domain.schedule.next_due``).

- **expected**: the slots due between the rule's anchor and ``GRACE_S`` before the drill
  ends, except those *excused* by an outage: a slot due from the moment the service went
  away (``down``) until the stack recovered (``up`` + recovery_s, below). Those are skipped,
  not replayed: the first tick after the return runs the rule once, for its oldest unrun
  due time, and moves it to its next slot after now.
- **recorded**: expected slots with a scheduled verification of that due time.
- **overtaken**: a slot outside the outages that the run of an earlier slot of the rule
  ended after (within ``OVERTAKE_MARGIN_S``): recording that late run moved the rule past
  it, as the product does with a due time it is already late for. Counted, not expected.
- **lost** = expected - recorded: a due time outside every outage with no verification
  that no late run passed over.
- **duplicated**: a (rule, due time) recorded more than once (anywhere in the drill).
- **replayed**: runs of a due time that was already past when the rule's previous run
  started (a missed slot run after a later one: the product skips those).
- **recovery_s**: per outage, the longest time from the service's return (``up``) until a
  rule's first run started after it was recorded (``started_at + duration``), over the rules.

A drill asserts lost == 0, duplicated == 0, replayed == 0 and recovery_s within its figure,
and records its figures (``Drill.report``): a line printed in the terminal summary, and a
JSON file in the test's tmp dir (also appended to ``$RULEWATCH_DRILL_FIGURES`` when set), so
the table in docs/reliability.md comes from a real run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import make_engine, make_session_factory, transaction
from rulewatch.models import MonitorGap, Rule, Verification, utcnow
from rulewatch.services.rules import create_rule
from tests.integration.processes import free_port, spawn, wait_for
from tests.smtp_server import Inbox
from tests.targets import Target, http_rule

INTERVAL_S = 2
TICK_S = 1
GRACE_S = 5  # slots due this close to the end may still be running: not counted
# a run moves its rule's next due time when its result is flushed and committed, within
# about 0.5 s of the check's end (runner's flush period) on a loaded machine: a slot due
# before that moment is passed over (`overtaken`), not lost
OVERTAKE_MARGIN_S = 1.0
READY = {  # what a process's log says once it serves
    "worker": re.compile(r"\] \S+ ready\.$", re.M),
    "scheduler": re.compile(r"\] \S+ ready\.$", re.M),
    "beat": re.compile(r"beat: Starting\.\.\.", re.M),
}
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")
SECRET_KEY = "drill-secret-key-drill-secret-key-drill-secret-key"
ALERT = {"emails": ["oncall@example.com"], "failure_threshold": 2, "success_threshold": 2}


@dataclass
class Outage:
    """A service taken away at ``down`` and given back at ``up``."""

    what: str
    down: datetime
    up: datetime | None = None

    @property
    def seconds(self) -> float:
        """How long it was away."""
        assert self.up is not None, f"{self.what} never came back"
        return (self.up - self.down).total_seconds()


@dataclass
class Figures:
    """What a drill measured (see the module docstring for what each count means)."""

    drill: str
    rules: int
    interval_s: int
    seconds: float
    expected: int = 0
    recorded: int = 0
    lost: int = 0
    duplicated: int = 0
    replayed: int = 0
    skipped: int = 0  # excused slots (inside outages) that were not run
    overtaken: int = 0  # slots a late run of the slot before was recorded after: passed over
    outage_s: list[float] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    emails_expected: int | None = None
    emails_sent: int | None = None
    lost_slots: list[str] = field(default_factory=list)  # the first few, to read a failure

    def summary(self) -> str:
        """One line for the terminal."""
        emails = "" if self.emails_expected is None else (
            f", emails expected {self.emails_expected} sent {self.emails_sent}"
        )  # fmt: skip
        outages = ", ".join(f"{s:.1f}" for s in self.outage_s) or "none"
        recovery = ", ".join(f"{s:.1f}" for s in self.recovery_s) or "-"
        return (
            f"drill {self.drill}: {self.rules} rules every {self.interval_s} s for"
            f" {self.seconds:.0f} s; verifications expected {self.expected}, recorded"
            f" {self.recorded}, lost {self.lost}, duplicated {self.duplicated}, replayed"
            f" {self.replayed}, skipped in outages {self.skipped}, overtaken"
            f" {self.overtaken}; outage {outages} s,"
            f" recovery {recovery} s{emails}"
        )


@dataclass
class Drill:
    """A rulewatch stack of real processes on the given database and broker."""

    name: str
    folder: Path
    database_url: str
    broker_url: str
    result_backend: str
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    anchors: dict[int, datetime] = field(default_factory=dict)
    interval_s: int = INTERVAL_S
    began: datetime | None = None
    web_port: int = 0
    _factory: sessionmaker[Session] | None = None
    _starts: Counter[str] = field(default_factory=Counter)

    def env(self, role: str) -> dict[str, str]:
        """The environment of one process: its own home, the shared services."""
        return {
            "RULEWATCH_HOME": str(self.folder / f"home-{role}"),
            "RULEWATCH_DATABASE_URL": self.database_url,
            "RULEWATCH_BROKER_URL": self.broker_url,
            "RULEWATCH_RESULT_BACKEND": self.result_backend,
            "RULEWATCH_TICK_S": str(TICK_S),
            "RULEWATCH_SECRET_KEY": SECRET_KEY,
            **self.extra_env,
        }

    @property
    def factory(self) -> sessionmaker[Session]:
        """Sessions on the drill's database (made on first use)."""
        if self._factory is None:
            self._factory = make_session_factory(make_engine(self.database_url))
        return self._factory

    # processes

    def start(self, role: str, *args: str) -> None:
        """Start ``rulewatch ARGS`` as ``role`` (a name such as worker, beat2), logging to
        ``role.N.log``; ``args`` default to the role's kind (the name without digits)."""
        kind = role.rstrip("0123456789")
        if kind == "web" and not args:
            self.web_port = self.web_port or free_port()
            args = ("web", "--port", str(self.web_port), "--workers", "1")
        elif kind == "worker" and not args:
            args = ("worker", "-Q", "checks,interactive,reports,alerts", "-c", "2")
        self._starts[role] += 1
        log = self.folder / f"{role}.{self._starts[role]}.log"
        self.logs[role] = log
        self.processes[role] = spawn(list(args or (kind,)), self.env(role), log)

    def ready(self, role: str, timeout: float = 60) -> datetime:
        """Wait until ``role`` serves; when it did, by its own log (or the first answer of
        the web's /healthz)."""
        deadline = time.monotonic() + timeout
        process, log = self.processes[role], self.logs[role]
        kind = role.rstrip("0123456789")
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if kind == "web":
                if self.healthz() is not None:
                    return utcnow()
            else:
                found = READY[kind].search(log.read_text(errors="replace"))
                if found:
                    return _line_time(log.read_text(errors="replace"), found.start())
            time.sleep(0.05)
        tail = log.read_text(errors="replace")[-4000:]
        state = f"exited with {process.returncode}" if process.poll() is not None else "running"
        raise AssertionError(f"{role} did not become ready within {timeout} s ({state})\n{tail}")

    def start_stack(self, *roles: str) -> None:
        """Start these roles (web, scheduler, worker, beat by default) and wait for each."""
        roles = roles or ("web", "scheduler", "worker", "beat")
        for role in roles:
            self.start(role)
        for role in roles:
            self.ready(role)

    def kill(self, role: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``role``'s whole process group (a worker's pool included) and reap it."""
        process = self.processes[role]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(30)

    def signal(self, role: str, sig: int) -> None:
        """Send ``sig`` (SIGSTOP, SIGCONT ...) to ``role``'s whole process group."""
        os.killpg(self.processes[role].pid, sig)

    def alive(self) -> dict[str, int | None]:
        """Each role's exit code, None while it runs."""
        return {role: p.poll() for role, p in self.processes.items()}

    def stop_all(self) -> None:
        """SIGTERM every process; SIGKILL what lingers."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._factory is not None:
            bind = self._factory.kw["bind"]
            bind.dispose()

    def healthz(self) -> int | None:
        """The status web's /healthz answers with (None: no answer)."""
        try:
            url = f"http://127.0.0.1:{self.web_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def log_text(self, role: str) -> str:
        """Everything ``role``'s logs say, over all its starts."""
        texts = [p.read_text(errors="replace") for p in sorted(self.folder.glob(f"{role}.*.log"))]
        return "\n".join(texts)

    def alerts_to(self, smtp_port: int) -> None:
        """Send alert emails to the SMTP server on ``smtp_port``, a tick's group waiting
        1 s (call before starting the processes)."""
        self.extra_env.update({"RULEWATCH_SMTP_HOST": "127.0.0.1",
                               "RULEWATCH_SMTP_PORT": str(smtp_port),
                               "RULEWATCH_ALERT_GROUP_WAIT_S": "1"})  # fmt: skip

    # rules

    def add_rules(self, url: str, count: int, interval_s: int = INTERVAL_S,
                  **extra: Any) -> list[int]:  # fmt: skip
        """``count`` http rules against ``url`` every ``interval_s``; their anchors noted."""
        self.interval_s = interval_s
        ids = []
        with transaction(self.factory) as session:
            for i in range(count):
                spec = http_rule(url, name=f"drill {len(self.anchors) + i}", interval_s=interval_s,
                                 **extra)  # fmt: skip
                spec["target"]["timeout_s"] = 2
                rule = create_rule(session, spec, utcnow())
                ids.append(rule.id)
        with self.factory() as session:
            rows = session.execute(select(Rule.id, Rule.next_due_at).where(Rule.id.in_(ids)))
            self.anchors.update({rid: _utc(due) for rid, due in rows})
        self.began = self.began or utcnow()
        return ids

    def set_due_now(self) -> None:
        """Make every rule due now (tests that want no spread)."""
        now = utcnow()
        with transaction(self.factory) as session:
            session.execute(update(Rule).values(next_due_at=now))
        self.anchors = dict.fromkeys(self.anchors, now)

    # outages

    def down(self, what: str) -> Outage:
        """Note that ``what`` goes away now (call just before taking it away)."""
        outage = Outage(what, utcnow())
        self.outages.append(outage)
        return outage

    def up(self, outage: Outage, at: datetime | None = None) -> None:
        """Note that the service is back (now, or at ``at``)."""
        outage.up = at or utcnow()

    def outage_with_alerts(
        self, inbox: Inbox, what: str, take_away: Callable[[], object],
        give_back: Callable[[], object], *, rules: int, before_s: float, down_s: float,
        verified_within_s: float, after_s: float, once_verified: Callable[[], object] | None = None,
    ) -> tuple[Outage, datetime, Figures]:  # fmt: skip
        """The broker and database drills, on the started stack: ``rules`` alerting rules, one
        failing (its alert awaited), ``before_s`` of runs; ``what`` taken away for ``down_s``
        and given back; every rule run again within ``verified_within_s``, ``once_verified``
        called, ``after_s`` more of runs. The outage, when the rules had run again, the figures."""
        with Target() as target, Target() as broken:
            broken.status = 500  # one rule fails: one alert before the outage, none after
            self.add_rules(target.url, rules - 1, alert=ALERT)
            self.add_rules(broken.url, 1, alert=ALERT)
            wait_for(lambda: inbox.messages, 30, "the failing rule's alert", self.logs["worker"])
            time.sleep(before_s)  # the drill's length before the outage: rules run meanwhile
            outage = self.down(what)
            take_away()
            time.sleep(down_s)  # the outage's length
            give_back()
            self.up(outage)
            recovered = self.wait_verified_after(outage.up or outage.down, verified_within_s)
            if once_verified is not None:
                once_verified()
            time.sleep(after_s)
            figures = self.figures()
        figures.emails_expected, figures.emails_sent = 1, len(inbox.messages)
        return outage, recovered, figures

    def wait_verified_after(self, moment: datetime, timeout: float) -> datetime:
        """Wait until every rule has a run started after ``moment`` recorded; when the last
        of them was recorded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            firsts = self._first_runs_after(moment)
            if len(firsts) == len(self.anchors):
                return max(firsts.values())
            time.sleep(0.2)
        missing = sorted(set(self.anchors) - set(self._first_runs_after(moment)))
        logs = "\n".join(f"--- {r}\n{self.log_text(r)[-2500:]}" for r in self.processes)
        raise AssertionError(f"rules {missing} not verified within {timeout} s of {moment}\n{logs}")

    def _first_runs_after(self, moment: datetime) -> dict[int, datetime]:
        firsts: dict[int, datetime] = {}
        for rule_id, _, started, recorded in self.runs():
            if started >= moment and (rule_id not in firsts or recorded < firsts[rule_id]):
                firsts[rule_id] = recorded
        return firsts

    def runs(self) -> list[tuple[int, datetime, datetime, datetime]]:
        """(rule, due time, start, recorded) of every scheduled verification of the rules."""
        columns = (Verification.rule_id, Verification.scheduled_for, Verification.started_at,
                   Verification.duration_ms)  # fmt: skip
        query = select(*columns).where(Verification.trigger == "schedule",
                                       Verification.rule_id.in_(list(self.anchors)))  # fmt: skip
        with self.factory() as session:
            rows = session.execute(query).all()
        return [(rid, _utc(due), _utc(started), _utc(started) + timedelta(milliseconds=ms))
                for rid, due, started, ms in rows if due is not None]  # fmt: skip

    def gaps(self) -> dict[int, list[tuple[datetime, datetime]]]:
        """The monitor gaps recorded per rule: (due time not verified, start of its run)."""
        query = select(MonitorGap.rule_id, MonitorGap.started_at, MonitorGap.ended_at)
        found: dict[int, list[tuple[datetime, datetime]]] = {}
        with self.factory() as session:
            for rid, start, stop in session.execute(query):
                found.setdefault(rid, []).append((_utc(start), _utc(stop)))
        return found

    # figures

    def figures(self, end: datetime | None = None) -> Figures:
        """Count expected, recorded, lost, duplicated and replayed runs up to ``end``; the
        runs themselves are written to runs.json in the drill's folder, to read a failure."""
        end = end or utcnow()
        assert self.began is not None, "no rules were added"
        runs = self.runs()
        self._keep(runs)
        figures = Figures(self.name, len(self.anchors), self.interval_s,
                          round((end - self.began).total_seconds(), 1))  # fmt: skip
        due_times = Counter((rid, due) for rid, due, _, _ in runs)
        figures.duplicated = sum(n - 1 for n in due_times.values() if n > 1)
        figures.replayed = _replayed(runs)
        excused = []
        for outage in self.outages:
            assert outage.up is not None
            figures.outage_s.append(round(outage.seconds, 1))
            firsts = self._first_runs_after(outage.up)
            recovered = datetime.max.replace(tzinfo=UTC)
            if len(firsts) == len(self.anchors):
                recovered = max(firsts.values())
                figures.recovery_s.append(round((recovered - outage.up).total_seconds(), 2))
            excused.append((outage.down, recovered))
        last_counted = end - timedelta(seconds=GRACE_S)
        step = timedelta(seconds=self.interval_s)
        ends = _run_ends(runs)
        for rid, anchor in self.anchors.items():
            slot = anchor
            while slot <= last_counted:
                if any(start <= slot < stop for start, stop in excused):
                    figures.skipped += (rid, slot) not in due_times
                elif (rid, slot) not in due_times and _overtaken(ends.get(rid, []), slot):
                    figures.overtaken += 1
                else:
                    figures.expected += 1
                    if (rid, slot) in due_times:
                        figures.recorded += 1
                    elif len(figures.lost_slots) < 10:
                        figures.lost_slots.append(f"rule {rid} due {slot.isoformat()}")
                slot += step
        figures.lost = figures.expected - figures.recorded
        return figures

    def _keep(self, runs: list[tuple[int, datetime, datetime, datetime]]) -> None:
        rows = [
            {"rule": rid, "due": due.isoformat(), "started": started.isoformat(),
             "recorded": recorded.isoformat()}
            for rid, due, started, recorded in sorted(runs)
        ]  # fmt: skip
        outages = [{"what": o.what, "down": o.down.isoformat(),
                    "up": o.up.isoformat() if o.up else None} for o in self.outages]  # fmt: skip
        anchors = {str(rid): anchor.isoformat() for rid, anchor in self.anchors.items()}
        data = {"anchors": anchors, "outages": outages, "runs": rows}
        (self.folder / "runs.json").write_text(json.dumps(data, indent=1))

    def report(self, figures: Figures, record_property: Any) -> None:
        """Keep the figures: a JSON file in the drill's folder (and appended to
        $RULEWATCH_DRILL_FIGURES), a property the terminal summary prints."""
        data = asdict(figures)
        (self.folder / "figures.json").write_text(json.dumps(data, indent=2))
        collected = os.environ.get("RULEWATCH_DRILL_FIGURES")
        if collected:
            with open(collected, "a") as file:
                file.write(json.dumps(data) + "\n")
        record_property("drill", figures.summary())
        print(figures.summary())


def _replayed(runs: list[tuple[int, datetime, datetime, datetime]]) -> int:
    """Runs of a due time that was already past when the rule's previous run started: after
    an outage the product runs a rule once, for its oldest unrun due time, and moves on to the
    next slot after now; a run of any other missed slot is a replay."""
    replays = 0
    by_rule: dict[int, list[tuple[datetime, datetime]]] = {}
    for rid, due, started, _ in runs:
        by_rule.setdefault(rid, []).append((due, started))
    for dues in by_rule.values():
        dues.sort()
        replays += sum(1 for (_, before), (due, _) in itertools.pairwise(dues) if due < before)
    return replays


def assert_sound(figures: Figures, recovery_within_s: float) -> None:
    """The drills' promise: nothing lost or twice, every outage recovered within the figure."""
    assert figures.expected > 0, figures
    assert figures.lost == 0, figures
    assert figures.duplicated == 0, figures
    assert figures.replayed == 0, figures
    assert len(figures.recovery_s) == len(figures.outage_s), figures
    assert all(s <= recovery_within_s for s in figures.recovery_s), figures


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _line_time(text: str, offset: int) -> datetime:
    """The time a Celery log line (the one holding ``offset``) was written, in UTC."""
    line = text[text.rfind("\n", 0, offset) + 1 :]
    found = LOG_TIME.match(line)
    if not found:
        return utcnow()
    local = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return local.astimezone(UTC)  # Celery writes local time


QUIET_AFTER_S = 3.0
LOUD = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): (WARNING|ERROR|CRITICAL)/", re.M)


def assert_quiet_since(drill: Drill, recovered: datetime) -> None:
    """No warning or error written more than QUIET_AFTER_S after the recovery: nothing
    keeps complaining once the service is back."""
    since = recovered + timedelta(seconds=QUIET_AFTER_S)
    loud = []
    for role in drill.processes:
        text = drill.log_text(role)
        for found in LOUD.finditer(text):
            written = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
            if written > since:
                line = text[found.start() : text.find("\n", found.start())]
                loud.append(f"{role}: {line}")
    assert not loud, "\n".join(loud[:20])


def assert_recovered_with_one_alert(drill: Drill, figures: Figures, recovered: datetime,
                                    inbox: Inbox, recovery_within_s: float) -> None:  # fmt: skip
    """After an outage: every process up, the drills' promise kept, the failing rule's one
    alert the only email, and the logs quiet again."""
    assert drill.alive() == dict.fromkeys(drill.processes), drill.alive()
    assert_sound(figures, recovery_within_s)
    assert [m["Subject"][:8] for m in inbox.messages] == ["[FIRING]"], inbox.messages
    assert_quiet_since(drill, recovered)


def _run_ends(
    runs: list[tuple[int, datetime, datetime, datetime]],
) -> dict[int, list[tuple[datetime, datetime]]]:
    """Each rule's runs as (due time, check ended)."""
    ends: dict[int, list[tuple[datetime, datetime]]] = {}
    for rid, due, _, recorded in runs:
        ends.setdefault(rid, []).append((due, recorded))
    return ends


def _overtaken(ends: list[tuple[datetime, datetime]], slot: datetime) -> bool:
    """True when a run of an earlier due time ended after ``slot`` came due: recording it
    moved the rule past ``slot`` (the product skips a due time it is already late for)."""
    margin = timedelta(seconds=OVERTAKE_MARGIN_S)
    return any(due < slot <= ended + margin for due, ended in ends)
