"""Deterministic generator of whole, consistent iMednet studies.

Small entities (studies, sites, subjects, intervals, forms, variables, users) are plain dicts.
Records, visits, revisions, queries and codings are *lazy*: compact numpy arrays hold their
structure and each row (with its `recordData`) is rendered on demand from (seed, study, index,
version), so a million records cost tens of MB and start in about a second.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np

DAY = 86_400
EPOCH_2023 = 1_672_531_200  # 2023-01-01 00:00:00 UTC: generated data starts here
CLOCK_START = 1_748_736_000  # 2025-06-01 00:00:00 UTC: after all generated data; only moves forward

_STUDY_KEYS = [
    ("CARDIO-01", "Heart Failure Outcomes Trial"),
    ("ONCO-02", "Solid Tumour Dose Escalation"),
    ("NEURO-03", "Migraine Prevention Study"),
    ("DERM-04", "Plaque Psoriasis Biologic Trial"),
    ("RESP-05", "Severe Asthma Exacerbation Study"),
    ("ENDO-06", "Type 2 Diabetes Add-on Therapy"),
    ("RENAL-07", "Chronic Kidney Disease Progression"),
    ("HEME-08", "Iron Deficiency Anaemia Study"),
]
_SITE_NAMES = [
    "Rochester General", "Chicago Hope", "Boston Memorial", "Mayo Research Unit", "Seattle Grace",
    "St. Mary's Hospital", "Lyon Sud", "Charité Berlin", "Karolinska", "Hôpital Necker",
    "Toronto General", "Royal Melbourne", "Osaka University", "Minneapolis Clinic", "Denver Health",
]
_USERS = [
    ("jsmith", "John", "Smith", "CRC"), ("mgarcia", "Maria", "Garcia", "Monitor"),
    ("lchen", "Li", "Chen", "Investigator"), ("apatel", "Anika", "Patel", "Data Manager"),
    ("okeefe", "Owen", "O'Keefe", "CRC"), ("bmuller", "Birgit", "Müller", "Monitor"),
    ("tnguyen", "Tam", "Nguyen", "Medical Coder"), ("rjones", "Rhys", "Jones", "Investigator"),
]
# verbatim AE term -> MedDRA preferred term (so codings look like real coding work)
AE_TERMS = {
    "headache": "Headache", "Head ache": "Headache", "nausea": "Nausea", "feeling sick": "Nausea",
    "Bronchitis": "Bronchitis", "rash on arm": "Rash", "dizzy": "Dizziness",
    "fatigue": "Fatigue", "tiredness": "Fatigue", "high blood pressure": "Hypertension",
    "back pain": "Back pain", "cough": "Cough", "insomnia": "Insomnia", "diarrhoea": "Diarrhoea",
    "angina": "Angina pectoris",
}
_WORDS = [
    "patient", "reports", "mild", "intermittent", "symptoms", "since", "last", "visit", "no",
    "change", "in", "medication", "follow", "up", "scheduled", "source", "verified", "per",
    "protocol", "dose", "adjusted", "normal", "range",
]
_REASONS = ["Data entry error", "Source data verification", "Late data entry", "Query response"]


@dataclass(frozen=True)
class VarDef:
    """One question of a form: `name` is the recordData key."""

    name: str
    vtype: str
    label: str
    choices: tuple[str, ...] = ()
    lo: float = 0.0
    hi: float = 100.0
    dec: int = 0
    huge: bool = False  # hostile: sometimes a 100 kB value
    since: int = 0
    """Epoch the question was added: records last saved before it do not answer it."""


@dataclass(frozen=True)
class FormDef:
    key: str
    name: str
    variables: tuple[VarDef, ...]
    log: bool = False  # child log lines (embeddedLog)


@dataclass(frozen=True)
class Slot:
    """One record every subject has: form index, interval index (-1 = none), parent slot, unvnum."""

    form: int
    interval: int
    parent: int = -1
    unv: int = 0


def _n(name: str, label: str, lo: float, hi: float, dec: int = 0) -> VarDef:
    return VarDef(name, "NUMBER", label, lo=lo, hi=hi, dec=dec)


_YN = ("Yes", "No")
_FORMS: list[FormDef] = [
    FormDef("IC", "Informed Consent", (
        VarDef("icdt", "DATE", "Date informed consent signed"),
        VarDef("icyn", "RADIO", "Consent obtained?", _YN),
        VarDef("icver", "TEXT", "Consent version", ("v1.0", "v2.0", "v2.1")),
    )),
    FormDef("DM", "Demographics", (
        VarDef("brthdt", "DATE", "Date of birth"),
        VarDef("sex", "RADIO", "Sex", ("Male", "Female")),
        VarDef("race", "DROPDOWN", "Race",
               ("White", "Black or African American", "Asian", "Other")),
        VarDef("ethnic", "DROPDOWN", "Ethnicity", ("Hispanic or Latino", "Not Hispanic or Latino")),
        _n("age", "Age (years)", 18, 85),
        VarDef("dmcom", "MEMO", "Demographics comment"),
    )),
    FormDef("MH", "Medical History", (
        VarDef("mhterm", "TEXT", "Medical history term", ("Asthma", "Hypertension", "Diabetes")),
        VarDef("mhstdt", "DATE", "Start date"),
        VarDef("mhongo", "CHECKBOX", "Ongoing"),
        VarDef("mhcat", "DROPDOWN", "Category", ("Cardiac", "Respiratory", "Metabolic")),
    )),
    FormDef("VS", "Vital Signs", (
        VarDef("vsdt", "DATE", "Date of measurement"),
        _n("sysbp", "Systolic blood pressure (mmHg)", 90, 180),
        _n("diabp", "Diastolic blood pressure (mmHg)", 50, 110),
        _n("pulse", "Pulse (beats/min)", 45, 120),
        _n("temp", "Temperature (C)", 35.5, 39.5, 1),
        _n("weight", "Weight (kg)", 45, 130, 1),
        VarDef("vspos", "RADIO", "Position", ("Sitting", "Standing", "Supine")),
        VarDef("vsnd", "CHECKBOX", "Not done"),
    )),
    FormDef("LB", "Laboratory", (
        VarDef("lbdtc", "DATETIME", "Sample collected"),
        _n("hgb", "Haemoglobin (g/dL)", 9, 17, 1),
        _n("wbc", "White blood cells (10^9/L)", 3, 12, 1),
        _n("plt", "Platelets (10^9/L)", 120, 450),
        _n("alt", "ALT (U/L)", 5, 80),
        _n("creat", "Creatinine (mg/dL)", 0.5, 1.8, 2),
        VarDef("lbfast", "CHECKBOX", "Fasting"),
        VarDef("lbcom", "MEMO", "Lab comment"),
    )),
    FormDef("EG", "ECG", (
        VarDef("egdtc", "DATETIME", "ECG date/time"),
        _n("hr", "Heart rate (bpm)", 45, 120),
        _n("qtcf", "QTcF (ms)", 360, 480),
        VarDef("egres", "RADIO", "Result", ("Normal", "Abnormal NCS", "Abnormal CS")),
    )),
    FormDef("PE", "Physical Examination", (
        VarDef("pedt", "DATE", "Examination date"),
        VarDef("peres", "RADIO", "Result", ("Normal", "Abnormal")),
        VarDef("pedesc", "MEMO", "Findings"),
    )),
    FormDef("EX", "Study Drug Exposure", (
        VarDef("exdt", "DATE", "Dose date"),
        _n("exdose", "Dose (mg)", 10, 200),
        VarDef("exroute", "DROPDOWN", "Route", ("Oral", "Intravenous", "Subcutaneous")),
        VarDef("excomp", "CHECKBOX", "Dose complete"),
    )),
    FormDef("AE", "Adverse Events", (
        VarDef("aeyn", "RADIO", "Any adverse events?", _YN),
    )),
    FormDef("AELOG", "Adverse Event Log", (
        VarDef("aeterm", "TEXT", "Adverse event term", tuple(AE_TERMS)),
        VarDef("aestdt", "DATE", "Start date"),
        VarDef("aesev", "DROPDOWN", "Severity", ("Mild", "Moderate", "Severe")),
        VarDef("aeser", "RADIO", "Serious?", _YN),
        VarDef("aerel", "DROPDOWN", "Relationship", ("Not related", "Possibly", "Related")),
        VarDef("aeongo", "CHECKBOX", "Ongoing"),
    ), log=True),
    FormDef("CM", "Concomitant Medications", (
        VarDef("cmyn", "RADIO", "Any concomitant medications?", _YN),
    )),
    FormDef("CMLOG", "Concomitant Medication Log", (
        VarDef("cmtrt", "TEXT", "Medication", ("Paracetamol", "Ibuprofen", "Metformin", "Aspirin")),
        _n("cmdose", "Dose", 1, 1000),
        VarDef("cmdosu", "DROPDOWN", "Dose unit", ("mg", "g", "mL")),
        VarDef("cmstdt", "DATE", "Start date"),
        VarDef("cmongo", "CHECKBOX", "Ongoing"),
    ), log=True),
]
_HOSTILE_FORMS: list[FormDef] = [
    FormDef("ODD FORM$1", "Odd \"Names\" Form", (
        VarDef("patient weight", "NUMBER", "Weight with a space", lo=40, hi=120, dec=1),
        VarDef("cost$usd", "NUMBER", "Dollar sign", lo=0, hi=999, dec=2),
        VarDef("lab.value", "TEXT", "Dotted name", ("a", "b")),
        VarDef('say "hi"', "TEXT", "Double quotes", ('he said "hi"', "it's")),
        VarDef("it's", "TEXT", "Single quote", ("O'Brien", "d'Arc")),
        VarDef("select", "TEXT", "SQL keyword select", ("x",)),
        VarDef("from", "TEXT", "SQL keyword from", ("y",)),
        VarDef("order", "NUMBER", "SQL keyword order", lo=1, hi=9),
        VarDef("température", "NUMBER", "Unicode accent", lo=35, hi=40, dec=1),
        VarDef("体重", "NUMBER", "Unicode CJK", lo=40, hi=120),
        VarDef("dateCreated", "DATE", "Clashes with the housekeeping key"),
        VarDef("notes", "MEMO", "Huge values", huge=True),
    )),
    FormDef("EMPTY", "Defined But Never Filled", (VarDef("unused", "TEXT", "Never answered"),)),
    FormDef("NOVARS", "Form Without Variables", ()),
]
# (name, planned day, window days, scheduled form keys)
_INTERVALS = [
    ("Screening", -14, 7, ("IC", "DM", "MH", "VS", "LB", "EG", "PE")),
    ("Baseline", 0, 0, ("VS", "LB", "EG", "PE", "EX")),
    ("Week 2", 14, 3, ("VS", "LB", "EX")),
    ("Week 4", 28, 3, ("VS", "LB", "EX")),
    ("Week 8", 56, 5, ("VS", "LB", "EX")),
    ("Week 12", 84, 5, ("VS", "LB", "EX")),
    ("Week 24", 168, 7, ("VS", "LB", "EX")),
    ("End of Study", 196, 7, ("VS", "LB", "EG", "PE")),
]
LOG_LINES = 7  # AE and CM log lines per subject
UNSCHEDULED_VS = 3


def study_keys(n: int) -> list[tuple[str, str]]:
    """The first `n` study keys and names (deterministic)."""
    out = _STUDY_KEYS[:n]
    out += [(f"STUDY-{i + 1:02d}", f"Generated Study {i + 1}") for i in range(len(out), n)]
    return out


def ts(epoch: int) -> str:
    """Epoch seconds -> the API's `YYYY-MM-DD HH:MM:SS` (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(epoch)))


def day(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(epoch)))


def role_date(epoch: int) -> list[int]:
    """Java LocalDateTime as Jackson writes it: [y, m, d, H, M, S, nanos]."""
    t = time.gmtime(int(epoch))
    return [t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0]


def _rng(*parts: int) -> random.Random:
    key = 0
    for p in parts:
        key = key * 1_000_003 + int(p) + 1
    return random.Random(key)


def gen_value(var: VarDef, rng: random.Random, base_epoch: int) -> str:
    """One answer as the API shows it (strings only; blanks and unparsable values included)."""
    r = rng.random()
    t = var.vtype
    if t == "NUMBER":
        if r < 0.03:
            return ""
        if r < 0.04:
            return "ND"
        v = var.lo + (var.hi - var.lo) * rng.random()
        return f"{v:.{var.dec}f}" if var.dec else str(int(v))
    if t == "DATE":
        return "" if r < 0.02 else day(base_epoch + rng.randrange(-3, 4) * DAY)
    if t == "DATETIME":
        return "" if r < 0.02 else ts(base_epoch + rng.randrange(0, DAY))
    if t == "CHECKBOX":
        return "true" if r < 0.3 else "false"
    if t == "MEMO":
        if var.huge and r < 0.2:
            return ("100kB value " + "x" * 99_988)[:100_000]
        if r < 0.4:
            return ""
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(3, 12)))
    if var.choices:  # TEXT with a vocabulary, RADIO, DROPDOWN
        return "" if r < 0.04 else rng.choice(var.choices)
    return "" if r < 0.04 else " ".join(rng.choice(_WORDS) for _ in range(2))


def catalogue(hostile: bool) -> tuple[list[FormDef], list[Slot]]:
    """Forms and the fixed per-subject record layout (about 50 records per subject)."""
    forms = list(_FORMS) + (list(_HOSTILE_FORMS) if hostile else [])
    fidx = {f.key: i for i, f in enumerate(forms)}
    slots: list[Slot] = []
    for k, (_, _, _, keys) in enumerate(_INTERVALS):
        slots += [Slot(fidx[key], k) for key in keys]
    slots += [Slot(fidx["VS"], -1, unv=u + 1) for u in range(UNSCHEDULED_VS)]
    for parent, child in (("AE", "AELOG"), ("CM", "CMLOG")):
        p = len(slots)
        slots.append(Slot(fidx[parent], -1))
        slots += [Slot(fidx[child], -1, parent=p) for _ in range(LOG_LINES)]
    if hostile:
        slots += [Slot(fidx["ODD FORM$1"], 0), Slot(fidx["NOVARS"], 0)]
    return forms, slots


@dataclass
class StudyData:
    """One generated study: dict lists for small entities, numpy arrays for records."""

    seed: int
    no: int
    key: str
    name: str
    n_subjects: int
    hostile: bool
    forms: list[FormDef] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    studies_row: dict = field(default_factory=dict)
    sites: list[dict] = field(default_factory=list)
    subjects: list[dict] = field(default_factory=list)
    intervals: list[dict] = field(default_factory=list)
    form_rows: list[dict] = field(default_factory=list)
    variables: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    # id offsets keep ids unique across studies and ascending with the index
    @property
    def rec_off(self) -> int:
        return (self.no + 1) * 100_000_000

    @property
    def visit_off(self) -> int:
        return (self.no + 1) * 10_000_000

    def form_id(self, f: int) -> int:
        return (self.no + 1) * 1000 + f + 1

    def interval_id(self, k: int) -> int:
        return (self.no + 1) * 100 + k + 1


def generate_study(seed: int, no: int, key: str, name: str, n_subjects: int,
                   hostile: bool) -> StudyData:
    """Build one study's small entities and its record arrays (vectorised, deterministic)."""
    st = StudyData(seed, no, key, name, n_subjects, hostile)
    st.forms, st.slots = catalogue(hostile)
    rng = np.random.default_rng([seed, no])
    created = EPOCH_2023 - 60 * DAY + no * DAY
    st.studies_row = {
        "sponsorKey": "SIMPHARMA", "studyKey": key, "studyId": 100 + no, "studyName": name,
        "studyDescription": f"{name} (simulated)", "studyType": "STUDY",
        "dateCreated": ts(created), "dateModified": ts(created + 30 * DAY),
    }
    n_sites = max(2, min(len(_SITE_NAMES), -(-n_subjects // 8)))
    for s in range(n_sites):
        st.sites.append({
            "studyKey": key, "siteId": (no + 1) * 1000 + s + 1, "siteName": _SITE_NAMES[s],
            "siteEnrollmentStatus": "Enrollment Closed" if s % 5 == 4 else "Enrollment Open",
            "dateCreated": ts(created + s * 3600), "dateModified": ts(created + 10 * DAY + s),
        })
    for k, (iname, dday, win, fkeys) in enumerate(_INTERVALS):
        st.intervals.append({
            "studyKey": key, "intervalId": st.interval_id(k), "intervalName": iname,
            "intervalDescription": f"{iname} visit", "intervalSequence": k + 1,
            "intervalGroupId": (no + 1) * 10 + (0 if k < 2 else 1),
            "intervalGroupName": "Pre-treatment" if k < 2 else "Treatment",
            "timeline": "Start Date End Date", "definedUsingInterval": "Baseline",
            "windowCalculationForm": "Visit Information", "windowCalculationDate": "VISDT",
            "actualDateForm": "Visit Information", "actualDate": "VISDT",
            "dueDateWillBeIn": dday, "negativeSlack": win, "positiveSlack": win,
            "eproGracePeriod": 0,
            "forms": [{"formId": st.form_id(f), "formKey": fd.key, "formName": fd.name}
                      for f, fd in enumerate(st.forms) if fd.key in fkeys],
            "disabled": False, "dateCreated": ts(created), "dateModified": ts(created + DAY),
        })
    var_id = (no + 1) * 10_000
    for f, fd in enumerate(st.forms):
        st.form_rows.append({
            "studyKey": key, "formId": st.form_id(f), "formKey": fd.key, "formName": fd.name,
            "formType": "Subject", "revision": 1 + f % 3, "embeddedLog": fd.log,
            "enforceOwnership": False, "userAgreement": False, "subjectRecordReport": not fd.log,
            "unscheduledVisit": fd.key == "VS", "otherForms": False, "eproForm": False,
            "allowCopy": True, "disabled": False,
            "dateCreated": ts(created + f * 60), "dateModified": ts(created + 2 * DAY + f),
        })
        for q, vd in enumerate(fd.variables):
            var_id += 1
            st.variables.append({
                "studyKey": key, "variableId": var_id, "variableType": vd.vtype,
                "variableName": vd.name, "sequence": q + 1, "revision": 1, "disabled": False,
                "dateCreated": ts(created + f * 60), "dateModified": ts(created + 2 * DAY + f),
                "formId": st.form_id(f), "variableOid": f"{fd.key}.{vd.name}".upper(),
                "deleted": False, "formKey": fd.key, "formName": fd.name, "label": vd.label,
                "blinded": False,
            })
    for u, (login, first, last, role) in enumerate(_USERS):
        rc = created + u * DAY
        st.users.append({
            "userId": _uuid(seed, no, 1, u), "login": login, "firstName": first,
            "lastName": last, "email": f"{login}@sim.example", "userActiveInStudy": u != 7,
            "roles": [{"dateCreated": role_date(rc), "dateModified": role_date(rc + DAY),
                       "roleId": _uuid(seed, no, 2, u), "communityId": 100 + no, "name": role,
                       "description": f"{role} role", "level": 1 + u % 3, "type": "STUDY",
                       "inactive": False}],
        })
    st.users.sort(key=lambda u: u["login"])  # the endpoint's default sort
    _generate_subjects(st, rng, n_sites)
    _generate_record_arrays(st, rng)
    return st


def _uuid(*parts: int) -> str:
    import uuid

    return str(uuid.UUID(int=_rng(*parts).getrandbits(128), version=4))


def _generate_subjects(st: StudyData, rng: np.random.Generator, n_sites: int) -> None:
    n = st.n_subjects
    enroll = EPOCH_2023 + rng.integers(0, 500 * DAY, n)
    deleted = rng.random(n) < 0.04
    per_site = [0] * n_sites
    for s in range(n):
        site = st.sites[s % n_sites]
        per_site[s % n_sites] += 1
        sid = (st.no + 1) * 1_000_000 + s + 1
        e = int(enroll[s])
        st.subjects.append({
            "studyKey": st.key, "subjectId": sid, "subjectOid": f"SUBJ-{sid}",
            "subjectKey": f"{101 + s % n_sites}-{per_site[s % n_sites]:03d}",
            "subjectStatus": ("Screened", "Enrolled", "Completed")[s % 3 if s % 7 else 0],
            "siteId": site["siteId"], "siteName": site["siteName"], "deleted": bool(deleted[s]),
            "enrollmentStartDate": ts(e), "dateCreated": ts(e - DAY),
            "dateModified": ts(e + 200 * DAY + s % 3600),
            "keywords": [] if s % 9 else [{
                "keywordName": "Screen Failure Review", "keywordKey": "SFR",
                "keywordId": 88, "dateAdded": ts(e + DAY)}],
        })
    st.arrays["enroll"] = enroll
    st.arrays["subj_deleted"] = deleted


def _generate_record_arrays(st: StudyData, rng: np.random.Generator) -> None:
    """Structural arrays for every record: one row per (subject, slot)."""
    n_s, n_t, n_i = st.n_subjects, len(st.slots), len(_INTERVALS)
    n = n_s * n_t
    slot_form = np.array([s.form for s in st.slots], dtype=np.int16)
    slot_int = np.array([s.interval for s in st.slots], dtype=np.int16)
    slot_par = np.array([s.parent for s in st.slots], dtype=np.int64)
    slot_unv = np.array([s.unv for s in st.slots], dtype=np.int16)
    days = np.array([d for _, d, _, _ in _INTERVALS], dtype=np.int64)
    subj = np.repeat(np.arange(n_s, dtype=np.int32), n_t)
    slot = np.tile(np.arange(n_t, dtype=np.int64), n_s)
    interval = slot_int[slot]
    scheduled = interval >= 0
    enroll = st.arrays["enroll"][subj]
    visit = np.where(scheduled, st.visit_off + subj.astype(np.int64) * n_i + interval + 1, 0)
    parent = np.where(slot_par[slot] >= 0, st.rec_off + subj.astype(np.int64) * n_t
                      + slot_par[slot] + 1, 0)
    when = np.where(scheduled, enroll + days[np.maximum(interval, 0)] * DAY,
                    enroll + rng.integers(0, 200 * DAY, n))
    created = when + rng.integers(3600, 10 * 3600, n)
    rev = (1 + (rng.random(n) < 0.3) + (rng.random(n) < 0.1)).astype(np.int16)
    modified = created + np.where(rev > 1, rng.integers(3600, 60 * DAY, n), 0)
    deleted = (rng.random(n) < 0.02) | st.arrays["subj_deleted"][subj]
    st.arrays.update(
        subj=subj, form=slot_form[slot], interval=interval, visit=visit, parent=parent,
        unv=slot_unv[slot], created=created, modified=modified, base_rev=rev.copy(), rev=rev,
        # the generated history's last save: base revisions are dated from it, and an audit
        # trail entry never changes when the record is saved again
        base_modified=modified.copy(),
        deleted=deleted, purged=np.zeros(n, dtype=bool),
        complete=rng.random(n) < 0.8,
    )


def record_data(st: StudyData, b: int, overrides: dict | None = None) -> dict[str, str]:
    """recordData of base index `b`: housekeeping keys, then the form's answers (version-seeded)."""
    a = st.arrays
    fd = st.forms[int(a["form"][b])]
    rng = _rng(st.seed, st.no, b, int(a["rev"][b]))
    unv = int(a["unv"][b])
    data = {"dateCreated": ts(a["created"][b]), "dateModified": ts(a["modified"][b]),
            "unvnum": str(unv) if unv else ""}
    base = int(a["created"][b])
    for vd in fd.variables:
        if vd.since > a["modified"][b]:
            continue  # added to the form after this record was last saved
        data[vd.name] = gen_value(vd, rng, base)
    if overrides:
        data.update(overrides)
    return data


def record_meta(st: StudyData, b: int) -> dict:
    """A record without recordData (cheap; used for filtering and as the row's head)."""
    a = st.arrays
    s = int(a["subj"][b])
    f = int(a["form"][b])
    k = int(a["interval"][b])
    subj = st.subjects[s]
    rid = st.rec_off + b + 1
    return {
        "studyKey": st.key, "intervalId": st.interval_id(k) if k >= 0 else 0,
        "formId": st.form_id(f), "formKey": st.forms[f].key, "siteId": subj["siteId"],
        "recordId": rid, "recordOid": f"REC-{rid}", "recordType": "SUBJECT",
        "recordStatus": "Record Complete" if a["complete"][b] else "Record Incomplete",
        "deleted": bool(a["deleted"][b]), "dateCreated": ts(a["created"][b]),
        "dateModified": ts(a["modified"][b]), "subjectId": subj["subjectId"],
        "subjectOid": subj["subjectOid"], "subjectKey": subj["subjectKey"],
        "visitId": int(a["visit"][b]), "parentRecordId": int(a["parent"][b]), "keywords": [],
    }


def visit_row(st: StudyData, v: int) -> dict:
    s, k = divmod(v, len(_INTERVALS))
    subj = st.subjects[s]
    iname, dday, win, _ = _INTERVALS[k]
    due = int(st.arrays["enroll"][s]) + dday * DAY
    actual = due + ((s * 7 + k) % (2 * win + 1) - win) * DAY if win else due
    return {
        "visitId": st.visit_off + v + 1, "studyKey": st.key, "intervalId": st.interval_id(k),
        "intervalName": iname, "subjectId": subj["subjectId"], "subjectKey": subj["subjectKey"],
        "startDate": day(due - win * DAY), "endDate": day(due + win * DAY), "dueDate": day(due),
        "visitDate": day(actual), "visitDateForm": "Visit Information",
        "visitDateQuestion": "VISDT", "deleted": bool(st.arrays["subj_deleted"][s]),
        "dateCreated": ts(int(st.arrays["enroll"][s])), "dateModified": ts(actual + 3600),
    }


def visit_modified(st: StudyData, n_subjects: int) -> np.ndarray:
    """`visit_row`'s dateModified of the first `n_subjects`' visits (epoch seconds), vectorised:
    filtering visits by dateModified must not render every visit (a real API has an index)."""
    s = np.repeat(np.arange(n_subjects, dtype=np.int64), len(_INTERVALS))
    k = np.tile(np.arange(len(_INTERVALS)), n_subjects)
    dday = np.array([iv[1] for iv in _INTERVALS], dtype=np.int64)[k]
    win = np.array([iv[2] for iv in _INTERVALS], dtype=np.int64)[k]
    due = st.arrays["enroll"][:n_subjects].astype(np.int64)[s] + dday * DAY
    shift = np.where(win > 0, ((s * 7 + k) % (2 * win + 1) - win) * DAY, 0)
    return due + shift + 3600


def base_revision_row(st: StudyData, j: int, b: int, k: int) -> dict:
    """Revision `k` (1-based) of base record `b`, the `j`-th base revision of the study."""
    a = st.arrays
    total = int(a["base_rev"][b])
    c, m = int(a["created"][b]), int(a["base_modified"][b])
    when = c if total == 1 else c + (m - c) * (k - 1) // (total - 1)
    return revision_row(st, (st.no + 1) * 100_000_000 + j + 1, b, k, when,
                        _USERS[(b + k) % len(_USERS)][0], "" if k == 1 else _REASONS[b % 4])


def revision_row(st: StudyData, rev_id: int, b: int, k: int, when: int, user: str,
                 reason: str) -> dict:
    subj = st.subjects[int(st.arrays["subj"][b])]
    ki = int(st.arrays["interval"][b])
    rid = st.rec_off + b + 1
    return {
        "studyKey": st.key, "recordRevisionId": rev_id, "recordId": rid,
        "recordOid": f"REC-{rid}", "recordRevision": k, "dataRevision": k,
        "recordStatus": "Record Complete" if st.arrays["complete"][b] else "Record Incomplete",
        "subjectId": subj["subjectId"], "subjectOid": subj["subjectOid"],
        "subjectKey": subj["subjectKey"], "siteId": subj["siteId"],
        "formKey": st.forms[int(st.arrays["form"][b])].key,
        "intervalId": st.interval_id(ki) if ki >= 0 else 0,
        "role": "CRC", "user": user, "reasonForChange": reason, "deleted": False,
        "dateCreated": ts(when),
    }


QUERY_STRIDE = 25


def query_row(st: StudyData, j: int) -> dict:
    """Query `j` sits on base record j*QUERY_STRIDE + a small offset."""
    rng = _rng(st.seed, st.no, 7, j)
    b = j * QUERY_STRIDE + rng.randrange(QUERY_STRIDE)
    a = st.arrays
    fd = st.forms[int(a["form"][b])]
    subj = st.subjects[int(a["subj"][b])]
    opened = int(a["created"][b]) + rng.randrange(1, 20) * DAY
    comments = []
    n_c = rng.randrange(1, 4)
    for c in range(n_c):
        closed = c == n_c - 1 and rng.random() < 0.6
        comments.append({
            "sequence": c + 1,
            "annotationStatus": "Query Closed" if closed else "Monitor Query Open",
            "user": _USERS[(j + c) % len(_USERS)][0],
            "comment": "Please verify against source" if c == 0 else "Value confirmed",
            "closed": closed, "date": ts(opened + c * DAY),
        })
    return {
        "studyKey": st.key, "subjectId": subj["subjectId"], "subjectOid": subj["subjectOid"],
        "annotationType": ("subject", "record", "question")[j % 3],
        "annotationId": (st.no + 1) * 10_000_000 + j + 1, "type": None,
        "description": "Value out of expected range", "recordId": st.rec_off + b + 1,
        "variable": fd.variables[j % len(fd.variables)].name if fd.variables else "",
        "subjectKey": subj["subjectKey"], "dateCreated": ts(opened),
        "dateModified": ts(opened + (n_c - 1) * DAY), "queryComments": comments,
    }


def coding_slots(st: StudyData) -> list[int]:
    """Slot indices of the AE log lines (each one is coded)."""
    return [i for i, s in enumerate(st.slots) if st.forms[s.form].key == "AELOG"]


def coding_row(st: StudyData, j: int, data: dict[str, str]) -> dict:
    """Coding `j` of the AE log record whose recordData is `data`."""
    slots = coding_slots(st)
    s, q = divmod(j, len(slots))
    b = s * len(st.slots) + slots[q]
    subj = st.subjects[s]
    f = int(st.arrays["form"][b])
    verbatim = data.get("aeterm", "")
    code = AE_TERMS.get(verbatim, "")
    return {
        "studyKey": st.key, "siteName": subj["siteName"], "siteId": subj["siteId"],
        "subjectId": subj["subjectId"], "subjectKey": subj["subjectKey"],
        "formId": st.form_id(f), "formName": st.forms[f].name, "formKey": st.forms[f].key,
        "revision": int(st.arrays["rev"][b]), "recordId": st.rec_off + b + 1,
        "variable": "aeterm", "value": verbatim, "codingId": (st.no + 1) * 10_000_000 + j + 1,
        "code": code, "codedBy": "tnguyen" if code else "", "reason": "" if code else "Uncodable",
        "dictionaryName": "MedDRA", "dictionaryVersion": "26.0",
        "dateCoded": ts(int(st.arrays["created"][b]) + 2 * DAY),
    }


N_INTERVALS = len(_INTERVALS)
