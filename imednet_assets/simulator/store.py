"""The simulator's state: generated studies behind a query interface, plus mutations and jobs.

Every table keeps its rows in the endpoint's default sort order, so an unfiltered, default-sorted
page is a slice (O(page size)). Filters and other sorts work on numpy columns, falling back to a
scan of rendered rows for attributes without a column.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from imednet_assets.simulator import filters as flt
from imednet_assets.simulator import generator as gen


@dataclass
class SimulatorConfig:
    seed: int = 7
    studies: int = 2
    subjects: int = 20
    hostile: bool = False
    latency_ms: float = 0.0
    rate_limit: float | None = None
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    api_key: str | None = None
    security_key: str | None = None
    max_page_size: int = 500
    oversize: Literal["clamp", "reject"] = "clamp"


class ApiError(Exception):
    """A 4xx answer: HTTP status, error code, and the offending request attribute."""

    def __init__(self, status: int, code: str, description: str, attribute: str | None = None,
                 value: str = "") -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description
        self.attribute, self.value = attribute, value


def _fields(spec: str) -> dict[str, str]:
    kinds = {"s": "str", "i": "int", "t": "ts", "d": "date", "b": "bool", "l": "list"}
    return {k: kinds[v] for k, v in (p.split(":") for p in spec.split())}


_SUBJ = "subjectId:i subjectOid:s subjectKey:s"
FIELDS: dict[str, dict[str, str]] = {
    "studies": _fields("sponsorKey:s studyKey:s studyId:i studyName:s studyDescription:s "
                       "studyType:s dateCreated:t dateModified:t"),
    "sites": _fields("studyKey:s siteId:i siteName:s siteEnrollmentStatus:s dateCreated:t "
                     "dateModified:t"),
    "subjects": _fields(f"studyKey:s {_SUBJ} subjectStatus:s siteId:i siteName:s deleted:b "
                        "enrollmentStartDate:t dateCreated:t dateModified:t keywords:l"),
    "intervals": _fields(
        "studyKey:s intervalId:i intervalName:s intervalDescription:s intervalSequence:i "
        "intervalGroupId:i intervalGroupName:s timeline:s definedUsingInterval:s "
        "windowCalculationForm:s windowCalculationDate:s actualDateForm:s actualDate:s "
        "dueDateWillBeIn:i negativeSlack:i positiveSlack:i eproGracePeriod:i forms:l "
        "disabled:b dateCreated:t dateModified:t"),
    "forms": _fields(
        "studyKey:s formId:i formKey:s formName:s formType:s revision:i embeddedLog:b "
        "enforceOwnership:b userAgreement:b subjectRecordReport:b unscheduledVisit:b "
        "otherForms:b eproForm:b allowCopy:b disabled:b dateCreated:t dateModified:t"),
    "variables": _fields(
        "studyKey:s variableId:i variableType:s variableName:s sequence:i revision:i "
        "disabled:b dateCreated:t dateModified:t formId:i variableOid:s deleted:b formKey:s "
        "formName:s label:s blinded:b"),
    "visits": _fields(
        "visitId:i studyKey:s intervalId:i intervalName:s subjectId:i subjectKey:s "
        "startDate:d endDate:d dueDate:d visitDate:d visitDateForm:s visitDateQuestion:s "
        "deleted:b dateCreated:t dateModified:t"),
    "records": _fields(
        f"studyKey:s intervalId:i formId:i formKey:s siteId:i recordId:i recordOid:s "
        f"recordType:s recordStatus:s deleted:b dateCreated:t dateModified:t {_SUBJ} "
        "visitId:i parentRecordId:i keywords:l"),
    "recordRevisions": _fields(
        f"studyKey:s recordRevisionId:i recordId:i recordOid:s recordRevision:i "
        f"dataRevision:i recordStatus:s {_SUBJ} siteId:i formKey:s intervalId:i role:s "
        "user:s reasonForChange:s deleted:b dateCreated:t"),
    "queries": _fields(
        "studyKey:s subjectId:i subjectOid:s annotationType:s annotationId:i type:s "
        "description:s recordId:i variable:s subjectKey:s dateCreated:t dateModified:t "
        "queryComments:l"),
    "codings": _fields(
        "studyKey:s siteName:s siteId:i subjectId:i subjectKey:s formId:i formName:s "
        "formKey:s revision:i recordId:i variable:s value:s codingId:i code:s codedBy:s "
        "reason:s dictionaryName:s dictionaryVersion:s dateCoded:t"),
    "users": _fields("userId:s login:s firstName:s lastName:s email:s "
                     "userActiveInStudy:b roles:l"),
}
DEFAULT_SORT = {
    "studies": "studyKey", "sites": "siteId", "subjects": "subjectId", "intervals": "intervalId",
    "forms": "formId", "variables": "variableId", "visits": "visitId", "records": "recordId",
    "recordRevisions": "recordRevisionId", "queries": "annotationId", "codings": "recordId",
    "users": "login",
}
# undocumented attributes the imednet SDK's RecordMapper sends (None = always true)
ALIASES: dict[str, dict[str, str | None]] = {
    "variables": {"variableNames": "variableName", "formIds": "formId"},
    "records": {"variableNames": None, "formIds": "formId"},
}


class Table:
    """`n` rows in default-sort order; `row(p)` renders one; `columns` give vectorised values."""

    def __init__(self, entity: str, n: int, row: Callable[[int], dict],
                 columns: dict[str, Callable[[], np.ndarray]] | None = None,
                 meta: Callable[[int], dict] | None = None) -> None:
        self.entity, self.n, self.row, self.columns = entity, n, row, columns or {}
        self.meta = meta or row  # a cheaper row without bulky parts, for scans

    def column(self, attr: str) -> np.ndarray:
        if attr in self.columns:
            return self.columns[attr]()
        return np.array([self.meta(p).get(attr) for p in range(self.n)] + [None],
                        dtype=object)[:-1]


def list_table(entity: str, rows: list[dict]) -> Table:
    return Table(entity, len(rows), rows.__getitem__)


class StudyState:
    """One study's generated data plus everything that happened to it since."""

    def __init__(self, st: gen.StudyData) -> None:
        self.st = st
        self.overrides: dict[int, dict[str, str]] = {}  # base index -> recordData values set
        self.extra_revisions: list[dict] = []
        self.extra_revisions_created: list[int] = []  # their dateCreated, epoch seconds
        self.n_base_subjects = len(st.subjects)
        self.n_base_records = len(st.arrays["subj"])
        self.base_rev_cum = np.cumsum(st.arrays["base_rev"].astype(np.int64))
        self.coding_slots = gen.coding_slots(st)
        self._live: np.ndarray | None = None
        self._queries_modified: np.ndarray | None = None
        self._base_revisions_created: np.ndarray | None = None

    @property
    def live(self) -> np.ndarray:
        """Base indices of records that exist (not purged), ascending = recordId order."""
        if self._live is None:
            self._live = np.flatnonzero(~self.st.arrays["purged"])
        return self._live

    def invalidate(self) -> None:
        self._live = None

    def queries_modified(self) -> np.ndarray:
        """Every query's dateModified (epoch seconds), rendered once: queries never change, and
        filtering them by dateModified must not render every query per request (a real API has
        an index for it)."""
        if self._queries_modified is None:
            n = self.n_base_records // gen.QUERY_STRIDE
            self._queries_modified = flt.normalise("ts", np.array(
                [gen.query_row(self.st, j)["dateModified"] for j in range(n)], dtype=object))
        return self._queries_modified

    def base_revisions_created(self) -> np.ndarray:
        """The generated revisions' dateCreated (epoch seconds), as base_revision_row dates them,
        vectorised and computed once: the generated audit trail never changes, and filtering it by
        dateCreated must not render every revision per request (a real API has an index for it)."""
        if self._base_revisions_created is None:
            a, cum = self.st.arrays, self.base_rev_cum
            n_rec = len(cum)
            n_base = int(cum[-1]) if n_rec else 0
            b = np.repeat(np.arange(n_rec), a["base_rev"][:n_rec])
            k = np.arange(n_base) - np.concatenate([[0], cum[:-1]])[b] + 1
            total, c = a["base_rev"][b].astype(np.int64), a["created"][b].astype(np.int64)
            m = a["base_modified"][b].astype(np.int64)
            self._base_revisions_created = np.where(
                total == 1, c, c + (m - c) * (k - 1) // np.maximum(total - 1, 1))
        return self._base_revisions_created

    def record_data(self, b: int) -> dict[str, str]:
        return gen.record_data(self.st, b, self.overrides.get(b))

    def record_row(self, b: int) -> dict:
        row = gen.record_meta(self.st, b)
        row["recordData"] = self.record_data(b)
        return row

    # --- tables -------------------------------------------------------------------------
    def records_table(self) -> Table:
        st, live = self.st, self.live
        a = st.arrays
        subj_col = lambda name: np.array([s[name] for s in st.subjects], dtype=object)  # noqa: E731
        form_keys = np.array([f.key for f in st.forms], dtype=object)
        cols = {
            "recordId": lambda: st.rec_off + live + 1,
            "formId": lambda: (st.no + 1) * 1000 + a["form"][live].astype(np.int64) + 1,
            "formKey": lambda: form_keys[a["form"][live]],
            "intervalId": lambda: np.where(a["interval"][live] >= 0, (st.no + 1) * 100
                                           + a["interval"][live].astype(np.int64) + 1, 0),
            "visitId": lambda: a["visit"][live],
            "parentRecordId": lambda: a["parent"][live],
            "deleted": lambda: a["deleted"][live],
            "recordStatus": lambda: np.where(a["complete"][live], "Record Complete",
                                             "Record Incomplete").astype(object),
            "dateCreated": lambda: a["created"][live],
            "dateModified": lambda: a["modified"][live],
            "subjectId": lambda: subj_col("subjectId")[a["subj"][live]],
            "subjectKey": lambda: subj_col("subjectKey")[a["subj"][live]],
            "siteId": lambda: subj_col("siteId")[a["subj"][live]],
        }
        return Table("records", len(live), lambda p: self.record_row(int(live[p])), cols,
                     meta=lambda p: gen.record_meta(st, int(live[p])))

    def revisions_table(self) -> Table:
        st, cum = self.st, self.base_rev_cum
        n_base = int(cum[-1]) if len(cum) else 0
        extra = self.extra_revisions

        def row(j: int) -> dict:
            if j >= n_base:
                return extra[j - n_base]
            b = int(np.searchsorted(cum, j, side="right"))
            start = int(cum[b - 1]) if b else 0
            return gen.base_revision_row(st, j, b, j - start + 1)

        def rec_ids() -> np.ndarray:
            base = np.repeat(st.rec_off + np.arange(len(cum), dtype=np.int64) + 1,
                             st.arrays["base_rev"][: len(cum)])
            return np.concatenate([base, np.array([r["recordId"] for r in extra], np.int64)])

        def created() -> np.ndarray:
            return np.concatenate([self.base_revisions_created(),
                                   np.array(self.extra_revisions_created, dtype=np.int64)])

        cols = {"recordId": rec_ids, "dateCreated": created,
                "recordRevisionId": lambda: (st.no + 1) * 100_000_000
                + np.arange(n_base + len(extra), dtype=np.int64) + 1}
        return Table("recordRevisions", n_base + len(extra), row, cols)

    def table(self, entity: str, include_inactive: bool = False) -> Table:
        st = self.st
        if entity == "records":
            return self.records_table()
        if entity == "recordRevisions":
            return self.revisions_table()
        if entity == "visits":
            return Table("visits", self.n_base_subjects * gen.N_INTERVALS,
                         lambda v: gen.visit_row(st, v),
                         {"dateModified": lambda: gen.visit_modified(st, self.n_base_subjects)})
        if entity == "queries":
            return Table("queries", self.n_base_records // gen.QUERY_STRIDE,
                         lambda j: gen.query_row(st, j),
                         {"dateModified": self.queries_modified})
        if entity == "codings":
            n_slots, n_t = len(self.coding_slots), len(st.slots)

            def coding(j: int) -> dict:
                s, q = divmod(j, n_slots)
                return gen.coding_row(st, j, self.record_data(s * n_t + self.coding_slots[q]))

            return Table("codings", self.n_base_subjects * n_slots, coding)
        if entity == "users":
            return list_table("users", [u for u in st.users
                                        if include_inactive or u["userActiveInStudy"]])
        rows = {"sites": st.sites, "subjects": st.subjects, "intervals": st.intervals,
                "forms": st.form_rows, "variables": st.variables}[entity]
        return list_table(entity, rows)


def build_store(config: SimulatorConfig) -> SimulatorStore:
    """Generate every study of `config` (deterministic for a seed)."""
    return SimulatorStore(config)


class SimulatorStore:
    """All studies: queried by the app, mutated by `/_sim/advance`, POST records or tests."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = gen.CLOCK_START
        self.studies: dict[str, StudyState] = {}
        for no, (key, name) in enumerate(gen.study_keys(config.studies)):
            self.studies[key] = StudyState(gen.generate_study(
                config.seed, no, key, name, config.subjects, config.hostile))
        self.jobs: dict[str, dict] = {}
        self._job_counter = 0
        self._rng = np.random.default_rng([config.seed, 99])

    # --- reading ------------------------------------------------------------------------
    def study(self, key: str) -> StudyState:
        try:
            return self.studies[key]
        except KeyError:
            raise ApiError(403, "9001", "Insufficient permission to retrieve data") from None

    def studies_table(self) -> Table:
        rows = sorted((s.st.studies_row for s in self.studies.values()),
                      key=lambda r: r["studyKey"])
        return list_table("studies", rows)

    def list_page(self, entity: str, study_key: str | None, *, filter: str | None = None,
                  record_data_filter: str | None = None, sort: Sequence[str] = (),
                  page: int = 0, size: int = 25, include_inactive: bool = False,
                  ) -> tuple[int, list[dict], list[dict]]:
        """(totalElements, rows of the page, sort echo) for one list request."""
        with self.lock:
            if study_key is None:
                table = self.studies_table()
            else:
                state = self.study(study_key)
                table = state.table(entity, include_inactive)
            sorts = _parse_sorts(entity, sort)
            default = sorts == [(DEFAULT_SORT[entity], False)]
            if not filter and not record_data_filter and default:
                total = table.n
                lo = min(page * size, total)
                return total, [table.row(p) for p in range(lo, min(lo + size, total))], \
                    _echo(sorts)
            positions = np.arange(table.n)
            if filter:
                mask = _eval(table, flt.parse(filter), study_key)
                positions = np.flatnonzero(mask)
            if record_data_filter and entity == "records":
                clauses = flt.parse(record_data_filter, attribute="recordDataFilter",
                                    regex_op=True)
                flt.check_regexes(clauses)
                live = state.live
                positions = np.array([p for p in positions if flt.match_data(
                    clauses, state.record_data(int(live[p])))], dtype=np.int64)
            if not default:
                positions = _sorted(table, positions, sorts)
            total = len(positions)
            chunk = positions[page * size: page * size + size]
            return total, [table.row(int(p)) for p in chunk], _echo(sorts)

    # --- mutations ----------------------------------------------------------------------
    def tick(self) -> int:
        """Move the simulator clock forward (never backward) and return it."""
        self.clock += 60
        return self.clock

    def _revise(self, state: StudyState, b: int, reason: str) -> None:
        a = state.st.arrays
        a["rev"][b] += 1
        a["modified"][b] = self.clock
        n_base = int(state.base_rev_cum[-1]) if len(state.base_rev_cum) else 0
        rev_id = (state.st.no + 1) * 100_000_000 + n_base + len(state.extra_revisions) + 1
        state.extra_revisions.append(gen.revision_row(
            state.st, rev_id, b, int(a["rev"][b]), self.clock, "simulator", reason))
        state.extra_revisions_created.append(self.clock)

    def _append_record(self, state: StudyState, s: int, form: int, interval: int,
                       parent: int, unv: int) -> int:
        a = state.st.arrays
        new = {"subj": s, "form": form, "interval": interval, "parent": parent, "unv": unv,
               "created": self.clock, "modified": self.clock, "base_modified": self.clock,
               "base_rev": 0, "rev": 0,
               "deleted": False, "purged": False, "complete": False,
               "visit": 0 if interval < 0 else state.st.visit_off
               + s * gen.N_INTERVALS + interval + 1}
        for k, v in new.items():
            a[k] = np.append(a[k], np.array([v], dtype=a[k].dtype))
        b = len(a["subj"]) - 1
        state.invalidate()
        self._revise(state, b, "Record created")
        return b

    def advance(self, study_key: str, modify: int = 0, add: int = 0, delete: int = 0,
                purge: int = 0, delete_subjects: int = 0, new_variables: int = 0,
                tick: bool = True) -> dict:
        """Change a study like users would; returns the affected record ids / subject keys.
        `tick=False` keeps the clock: the changes carry the same second as the previous ones
        (ties at a sync's watermark)."""
        with self.lock:
            state = self.study(study_key)
            st, a = state.st, state.st.arrays
            now = self.tick() if tick else self.clock
            out: dict[str, list] = {"modified": [], "added": [], "deleted": [], "purged": [],
                                    "deleted_subjects": [], "new_variables": []}
            for _ in range(new_variables):
                out["new_variables"].append(self._add_variable(state, now))

            def pick(candidates: np.ndarray, n: int) -> list[int]:
                n = min(n, len(candidates))
                return sorted(int(x) for x in self._rng.choice(candidates, n, replace=False))

            active = lambda: np.flatnonzero(~a["purged"] & ~a["deleted"])  # noqa: E731
            for b in pick(active(), modify):
                state.overrides.pop(b, None)  # new values come from the new version
                self._revise(state, b, "Data changed")
                out["modified"].append(st.rec_off + b + 1)
            vs = next(i for i, f in enumerate(st.forms) if f.key == "VS")
            for _ in range(add):
                s = int(self._rng.integers(state.n_base_subjects))
                unv = int(a["unv"][a["subj"] == s].max()) + 1
                b = self._append_record(state, s, vs, -1, 0, unv)
                out["added"].append(st.rec_off + b + 1)
            for b in pick(active(), delete):
                a["deleted"][b] = True
                self._revise(state, b, "Record deleted")
                out["deleted"].append(st.rec_off + b + 1)
            for b in pick(np.flatnonzero(~a["purged"]), purge):
                a["purged"][b] = True
                out["purged"].append(st.rec_off + b + 1)
            state.invalidate()
            alive = np.array([i for i, s in enumerate(st.subjects) if not s["deleted"]])
            for s in pick(alive, delete_subjects):
                st.subjects[s]["deleted"] = True
                st.subjects[s]["dateModified"] = gen.ts(now)
                out["deleted_subjects"].append(st.subjects[s]["subjectKey"])
            return out

    def _add_variable(self, state: StudyState, now: int) -> str:
        """A new NUMBER question on a form (a protocol amendment): records saved from now on
        answer it, older ones do not. Returns `<form key>.<variable name>`."""
        st = state.st
        f = int(self._rng.integers(len(st.forms)))
        fd = st.forms[f]
        name = f"amend{len(st.variables) + 1}"
        vd = gen.VarDef(name, "NUMBER", f"Amendment question {name}", lo=0, hi=10, since=now)
        st.forms[f] = gen.FormDef(fd.key, fd.name, (*fd.variables, vd), fd.log)
        last = max(v["variableId"] for v in st.variables)
        st.variables.append({
            "studyKey": st.key, "variableId": last + 1, "variableType": vd.vtype,
            "variableName": name, "sequence": len(fd.variables) + 1, "revision": 1,
            "disabled": False, "dateCreated": gen.ts(now), "dateModified": gen.ts(now),
            "formId": st.form_id(f), "variableOid": f"{fd.key}.{name}".upper(),
            "deleted": False, "formKey": fd.key, "formName": fd.name, "label": vd.label,
            "blinded": False,
        })
        return f"{fd.key}.{name}"

    def post_records(self, study_key: str, items: object) -> dict:
        """Apply a POST records body (create or update) and return the job ticket."""
        with self.lock:
            state = self.study(study_key)
            if not isinstance(items, list) or not items:
                raise ApiError(400, "1000", "Field raised validation errors", "body", "")
            plans = [self._plan(state, item) for item in items]  # validate all before changing
            self.tick()
            for b, new_subject, data in plans:
                if new_subject is not None:
                    b = self._register(state, *new_subject)
                elif isinstance(b, tuple):
                    b = self._append_record(state, *b)
                else:
                    self._revise(state, b, "Data changed")
                state.overrides.setdefault(b, {}).update(data)
            return self._new_job(study_key)

    def _plan(self, state: StudyState, item: object) -> tuple:
        st, a = state.st, state.st.arrays

        def bad(attr: str, value: object = "") -> ApiError:
            return ApiError(400, "1000", "Field raised validation errors", attr, str(value))

        if not isinstance(item, dict) or not isinstance(item.get("data", {}), dict):
            raise bad("data")
        forms = {f.key: i for i, f in enumerate(st.forms)}
        if "formKey" in item:
            form = forms.get(item["formKey"])
        else:
            form = next((i for i in range(len(st.forms)) if st.form_id(i) == item.get("formId")),
                        None)
        if form is None:
            raise bad("formKey", item.get("formKey", item.get("formId", "")))
        data = {k: _as_text(v) for k, v in item.get("data", {}).items()}
        if "recordId" in item or "recordOid" in item:
            rid = item.get("recordId") or str(item.get("recordOid", "")).removeprefix("REC-")
            try:
                b = int(rid) - st.rec_off - 1
            except ValueError:
                b = -1
            if not 0 <= b < len(a["subj"]) or a["purged"][b]:
                raise bad("recordId", rid)
            return b, None, data
        subj = _find_subject(st, item)
        if subj is None:
            if any(k in item for k in ("subjectKey", "subjectId", "subjectOid")):
                raise bad("subjectKey", item.get("subjectKey", item.get("subjectId", "")))
            site = next((x for x in st.sites if x["siteName"] == item.get("siteName")
                         or x["siteId"] == item.get("siteId")), None)
            if site is None:
                raise bad("siteName", item.get("siteName", ""))
            return None, (site, form), data
        interval = next((k for k, iv in enumerate(st.intervals)
                         if iv["intervalName"] == item.get("intervalName")
                         or iv["intervalId"] == item.get("intervalId")), -1)
        if interval >= 0:
            hit = np.flatnonzero((a["subj"] == subj) & (a["form"] == form)
                                 & (a["interval"] == interval) & ~a["purged"])
            if len(hit):
                return int(hit[0]), None, data
        return (subj, form, interval, 0, 0), None, data

    def _register(self, state: StudyState, site: dict, form: int) -> int:
        st = state.st
        s = len(st.subjects)
        sid = (st.no + 1) * 1_000_000 + s + 1
        st.subjects.append({
            "studyKey": st.key, "subjectId": sid, "subjectOid": f"SUBJ-{sid}",
            "subjectKey": f"{site['siteId'] % 1000 + 100}-N{s:03d}", "subjectStatus": "Screened",
            "siteId": site["siteId"], "siteName": site["siteName"], "deleted": False,
            "enrollmentStartDate": gen.ts(self.clock), "dateCreated": gen.ts(self.clock),
            "dateModified": gen.ts(self.clock), "keywords": []})
        for k, v in (("enroll", self.clock), ("subj_deleted", False)):
            st.arrays[k] = np.append(st.arrays[k], np.array([v], dtype=st.arrays[k].dtype))
        return self._append_record(state, s, form, -1, 0, 0)

    # --- jobs ---------------------------------------------------------------------------
    def _new_job(self, study_key: str) -> dict:
        self._job_counter += 1
        job = {"jobId": gen._uuid(self.config.seed, 5, self._job_counter),
               "batchId": gen._uuid(self.config.seed, 6, self._job_counter), "state": "created",
               "dateCreated": gen.ts(self.clock), "dateStarted": "", "dateFinished": ""}
        self.jobs[job["batchId"]] = {"study": study_key, "polls": 0, "job": job}
        return {k: job[k] for k in ("jobId", "batchId", "state")}

    def get_job(self, study_key: str, batch_id: str) -> dict:
        """First poll answers `processing`, later polls `completed`."""
        with self.lock:
            self.study(study_key)
            entry = self.jobs.get(batch_id)
            if entry is None or entry["study"] != study_key:
                raise ApiError(404, "1000", "Job not found", "batchId", batch_id)
            entry["polls"] += 1
            job = entry["job"]
            job["dateStarted"] = job["dateStarted"] or job["dateCreated"]
            if entry["polls"] == 1:
                job["state"] = "processing"
            else:
                job["state"] = "completed"
                job["dateFinished"] = job["dateFinished"] or job["dateCreated"]
            return dict(job)

    def list_jobs(self, study_key: str) -> list[dict]:
        with self.lock:
            self.study(study_key)
            return [dict(e["job"]) for e in self.jobs.values() if e["study"] == study_key]

    # --- stats --------------------------------------------------------------------------
    def stats(self) -> dict:
        """Per-study counts of every entity (what the API would list)."""
        with self.lock:
            out = {}
            for key, state in self.studies.items():
                st, a, live = state.st, state.st.arrays, state.live
                keys = [f.key for f in st.forms]
                by_form = np.bincount(a["form"][live], minlength=len(keys))
                del_form = np.bincount(a["form"][live][a["deleted"][live]], minlength=len(keys))
                out[key] = {
                    "sites": len(st.sites), "subjects": len(st.subjects),
                    "subjects_deleted": sum(s["deleted"] for s in st.subjects),
                    "intervals": len(st.intervals), "forms": len(st.forms),
                    "variables": len(st.variables),
                    "visits": state.n_base_subjects * gen.N_INTERVALS,
                    "records": int(len(live)), "records_deleted": int(a["deleted"][live].sum()),
                    "records_by_form": {k: int(n) for k, n in zip(keys, by_form, strict=True)},
                    "records_deleted_by_form": {k: int(n) for k, n in
                                                zip(keys, del_form, strict=True)},
                    "record_revisions": state.revisions_table().n,
                    "queries": state.n_base_records // gen.QUERY_STRIDE,
                    "codings": state.n_base_subjects * len(state.coding_slots),
                    "users": sum(u["userActiveInStudy"] for u in st.users),
                    "users_all": len(st.users),
                    "jobs": sum(e["study"] == key for e in self.jobs.values()),
                }
            return out


def _as_text(v: object) -> str:
    """POSTed JSON values -> the API's string convention."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _find_subject(st: gen.StudyData, item: dict) -> int | None:
    for field in ("subjectKey", "subjectId", "subjectOid"):
        if field in item:
            return next((i for i, s in enumerate(st.subjects) if s[field] == item[field]), None)
    return None


def _parse_sorts(entity: str, sort: Sequence[str]) -> list[tuple[str, bool]]:
    """`prop,dir` strings -> [(prop, descending)]; 400 on unknown property or direction."""
    out = []
    for raw in sort:
        prop, _, direction = raw.partition(",")
        prop, direction = prop.strip(), (direction.strip() or "asc").lower()
        kind = FIELDS[entity].get(prop)
        if kind in (None, "list") or direction not in ("asc", "desc"):
            raise ApiError(400, "1000", "Field raised validation errors", "sort", raw)
        out.append((prop, direction == "desc"))
    return out or [(DEFAULT_SORT[entity], False)]


def _echo(sorts: list[tuple[str, bool]]) -> list[dict]:
    return [{"property": p, "direction": "DESC" if d else "ASC"} for p, d in sorts]


def _eval(table: Table, clauses: flt.Clauses, study_key: str | None) -> np.ndarray:
    """Boolean mask of the rows matching an OR-of-ANDs filter."""
    fields = FIELDS[table.entity]
    aliases = ALIASES.get(table.entity, {})
    cache: dict[str, np.ndarray] = {}
    result = np.zeros(table.n, dtype=bool)
    for terms in clauses:
        mask = np.ones(table.n, dtype=bool)
        for t in terms:
            attr = aliases.get(t.attr, t.attr)
            if attr is None:
                continue
            if attr == "studyKey" and study_key is not None:
                mask &= flt.compare(np.array([study_key], dtype=object), t.op, t.value)[0]
                continue
            kind = fields.get(attr)
            if kind in (None, "list"):
                raise flt.FilterError(f"unknown attribute {t.attr!r}", value=t.attr)
            try:
                value = flt.coerce(kind, t.value)
            except ValueError:
                raise flt.FilterError(f"bad value for {t.attr}", value=t.value) from None
            if attr not in cache:
                cache[attr] = flt.normalise(kind, table.column(attr))
            mask &= flt.compare(cache[attr], t.op, value)
        result |= mask
    return result


def _sorted(table: Table, positions: np.ndarray, sorts: list[tuple[str, bool]]) -> np.ndarray:
    """Positions reordered by the requested sort keys (stable; ties keep default order)."""
    keys = []
    for prop, desc in reversed(sorts):
        kind = FIELDS[table.entity][prop]
        col = flt.normalise(kind, table.column(prop))[positions]
        if col.dtype == object:
            col = np.unique(col, return_inverse=True)[1]
        col = col.astype(float)
        keys.append(-col if desc else col)
    order = np.lexsort([np.arange(len(positions))] + keys)
    return positions[order]


def total_pages(total: int, size: int) -> int:
    return math.ceil(total / size) if total else 0
