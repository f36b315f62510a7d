#!/usr/bin/env python3
"""Synthetic clinical corpus with character-level PHI labels.

Every note is built from hand-written templates (admission notes, discharge
summaries, radiology reports, lab reports, referral letters, patient-portal
messages) filled with Faker values.  Each identifier is inserted through
``Note.fmt``/``Note.phi`` which records its span, so labels are exact by
construction and verified again before writing (``text[start:end] == value``).

Output (JSONL, one note per line):
    {"id": "note-000001", "kind": "discharge_summary",
     "text": "...", "spans": [{"start": 10, "end": 20, "type": "PERSON"}, ...]}
Offsets are Python string indices, i.e. Unicode code points (some notes carry
non-ASCII text and emoji on purpose, so byte or UTF-16 offsets would be wrong).

Labelling conventions (see README.md):
  * PERSON: the name only; titles (Dr., Mr., Mrs., Ms.), credentials (MD, RN)
    and a possessive 's stay outside the span.
  * LOCATION: street address (incl. apartment/suite), city, county.  The state
    is not PHI under Safe Harbor and is left unlabelled.  Hospital names
    without a place name are left unlabelled.
  * DATE_TIME: any date element other than a year alone (a time written
    together with the date is inside the span).  Years alone, durations,
    clock times on their own and ratios such as 132/84 or 5/5 are unlabelled.
  * AGE_OVER_89: the number only ("92" in "92-year-old"); ages <= 89 are
    unlabelled.
  * Identifiers (MRN, member id, account, license, plate, VIN, serial ...):
    the value only; the cue ("MRN:", "Fax") stays outside.

Determinism: note i depends only on (--seed, i), so the first 300 notes of a
2,000-note corpus equal a 300-note corpus made with the same seed.  Faker's
output can change between Faker releases, so requirements.txt pins it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import string
import sys
from collections import Counter
from string import Formatter

from faker import Faker

ENTITY_TYPES = [
    "PERSON", "LOCATION", "ZIP_CODE", "DATE_TIME", "AGE_OVER_89", "PHONE_NUMBER",
    "FAX_NUMBER", "EMAIL_ADDRESS", "US_SSN", "MEDICAL_RECORD_NUMBER",
    "HEALTH_PLAN_NUMBER", "ACCOUNT_NUMBER", "MEDICAL_LICENSE", "US_DRIVER_LICENSE",
    "VEHICLE_ID", "DEVICE_ID", "URL", "IP_ADDRESS",
]

NOTE_KINDS = [
    "admission_note", "discharge_summary", "radiology_report", "lab_report",
    "referral_letter", "portal_message",
]


# --------------------------------------------------------------------------
# Note builder
# --------------------------------------------------------------------------
class Note:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.spans: list[dict] = []
        self.values: list[str] = []

    def t(self, s: str) -> "Note":
        self.parts.append(s)
        self.pos += len(s)
        return self

    def phi(self, value: str, typ: str) -> "Note":
        assert typ in ENTITY_TYPES, typ
        assert value and value == value.strip(), repr(value)
        self.spans.append({"start": self.pos, "end": self.pos + len(value), "type": typ})
        self.values.append(value)
        return self.t(value)

    def fmt(self, template: str, **kw) -> "Note":
        """Append ``template``; ``{name}`` is replaced by kw[name], which is either
        plain text (str) or PHI ((value, TYPE) tuple, or a Piece)."""
        for literal, field, _spec, _conv in Formatter().parse(template):
            if literal:
                self.t(literal)
            if field is None:
                continue
            v = kw[field]
            self.add(v)
        return self

    def add(self, v) -> "Note":
        if isinstance(v, tuple):
            self.phi(v[0], v[1])
        elif isinstance(v, Piece):
            for p in v.items:
                self.add(p)
        else:
            self.t(str(v))
        return self

    def line(self, template: str = "", **kw) -> "Note":
        self.fmt(template, **kw)
        return self.t("\n")

    def build(self) -> tuple[str, list[dict]]:
        text = "".join(self.parts)
        for s, v in zip(self.spans, self.values):
            assert text[s["start"]:s["end"]] == v, (s, v, text[s["start"]:s["end"]])
        return text, self.spans


class Piece:
    """A sequence of plain strings and (value, TYPE) tuples, usable as one field."""

    def __init__(self, *items) -> None:
        self.items = list(items)


# --------------------------------------------------------------------------
# Non-PHI clinical vocabulary (lots of capitalised words and eponyms)
# --------------------------------------------------------------------------
CONDITIONS = [
    "Hypertension", "Type 2 Diabetes Mellitus", "Hyperlipidemia", "Coronary Artery Disease",
    "Congestive Heart Failure", "Atrial Fibrillation", "Chronic Obstructive Pulmonary Disease",
    "Parkinson's disease", "Alzheimer's dementia", "Crohn's disease", "Hodgkin lymphoma",
    "Graves' disease", "Hashimoto thyroiditis", "Addison's disease", "Cushing syndrome",
    "Bell's palsy", "Guillain-Barré syndrome", "Sjögren's syndrome", "Barrett's esophagus",
    "Raynaud's phenomenon", "Ménière's disease", "Wilson's disease", "Huntington's disease",
    "Down syndrome", "Marfan syndrome", "Kaposi sarcoma", "Ewing sarcoma", "Burkitt lymphoma",
    "Chronic Kidney Disease stage 3b", "Obstructive Sleep Apnea", "Gastroesophageal Reflux Disease",
    "Major Depressive Disorder", "Generalized Anxiety Disorder", "Osteoarthritis", "Gout",
    "Hypothyroidism", "Benign Prostatic Hyperplasia", "Peripheral Artery Disease",
    "Multiple Sclerosis", "Lyme disease", "Paget's disease of bone", "Tourette syndrome",
    "Asperger syndrome", "Dupuytren contracture", "Osgood-Schlatter disease", "Hirschsprung disease",
]
MEDS = [
    ("Metformin", "1000 mg PO BID"), ("Lisinopril", "20 mg PO daily"), ("Atorvastatin", "40 mg PO nightly"),
    ("Eliquis (apixaban)", "5 mg PO BID"), ("Xarelto", "20 mg PO daily with dinner"),
    ("Furosemide (Lasix)", "40 mg PO daily"), ("Warfarin (Coumadin)", "5 mg PO daily, goal INR 2-3"),
    ("Levetiracetam (Keppra)", "500 mg PO BID"), ("Ondansetron (Zofran)", "4 mg IV q6h PRN nausea"),
    ("Acetaminophen (Tylenol)", "650 mg PO q6h PRN pain"), ("Hydrocodone-acetaminophen (Norco)", "5/325 mg q4h PRN"),
    ("Levothyroxine (Synthroid)", "88 mcg PO daily"), ("Adalimumab (Humira)", "40 mg SC every other week"),
    ("Semaglutide (Ozempic)", "0.5 mg SC weekly"), ("Empagliflozin (Jardiance)", "10 mg PO daily"),
    ("Sacubitril-valsartan (Entresto)", "24/26 mg PO BID"), ("Clopidogrel (Plavix)", "75 mg PO daily"),
    ("Sertraline (Zoloft)", "50 mg PO daily"), ("Quetiapine (Seroquel)", "25 mg PO nightly"),
    ("Lorazepam (Ativan)", "0.5 mg PO q8h PRN anxiety"), ("Amoxicillin-clavulanate (Augmentin)", "875 mg PO BID x 7 days"),
    ("Piperacillin-tazobactam (Zosyn)", "4.5 g IV q8h"), ("Vancomycin", "1250 mg IV q12h, trough goal 15-20"),
    ("Ceftriaxone", "1 g IV daily"), ("Prednisone", "40 mg PO daily, taper by 10 mg every 3 days"),
    ("Carbidopa-levodopa (Sinemet)", "25/100 mg PO TID"), ("Donepezil (Aricept)", "10 mg PO nightly"),
    ("Insulin glargine (Lantus)", "22 units SC nightly"), ("Insulin lispro (Humalog)", "sliding scale AC/HS"),
    ("Tamsulosin (Flomax)", "0.4 mg PO daily"), ("Allopurinol", "300 mg PO daily"),
    ("Pantoprazole (Protonix)", "40 mg PO daily"), ("Albuterol HFA", "2 puffs q4h PRN wheeze"),
    ("Tiotropium (Spiriva)", "18 mcg inhaled daily"), ("Metoprolol succinate (Toprol XL)", "50 mg PO daily"),
    ("Amlodipine (Norvasc)", "10 mg PO daily"), ("Gabapentin (Neurontin)", "300 mg PO TID"),
    ("Vitamin B12", "1000 µg IM monthly"), ("Haloperidol (Haldol)", "0.5 mg IV q6h PRN agitation"),
]
ALLERGIES = ["Penicillin (hives)", "Sulfa drugs (rash)", "Codeine (nausea)", "NKDA", "Latex",
             "Iodinated contrast (anaphylaxis)", "Shellfish", "Morphine (pruritus)"]
DEPARTMENTS = ["Emergency Department", "Intensive Care Unit", "Cardiology", "Gastroenterology",
               "Physical Therapy", "Occupational Therapy", "Social Work", "Case Management",
               "Internal Medicine", "Neurology", "Nephrology", "Infectious Disease", "Palliative Care",
               "Cardiac Catheterization Lab", "Post-Anesthesia Care Unit", "Wound Care Clinic"]
HOSPITALS = ["St. Mary's Medical Center", "Mercy General Hospital", "Sacred Heart Hospital",
             "University Medical Center", "Good Samaritan Hospital", "Holy Cross Hospital",
             "Children's Hospital", "Veterans Affairs Medical Center", "Memorial Regional Hospital",
             "Providence Health Center"]
CLINIC_NAMES = ["Heart & Vascular Institute", "Comprehensive Diabetes Center", "Movement Disorders Clinic",
                "Memory Care Clinic", "Digestive Health Associates", "Pulmonary & Sleep Medicine",
                "Renal Associates", "Family Medicine Associates", "Orthopedic Specialists"]
EXAM_SIGNS = [
    "Babinski sign absent bilaterally", "Murphy's sign negative", "no tenderness at McBurney's point",
    "Kernig and Brudzinski signs negative", "Romberg negative", "Tinel's sign positive at the left wrist",
    "Phalen's test positive", "Lachman test negative", "no Homans' sign", "Trendelenburg gait noted",
    "Cheyne-Stokes respirations observed overnight", "Kussmaul breathing absent",
    "Glasgow Coma Scale 15", "Mallampati class II", "cogwheel rigidity in the right upper extremity",
    "resting tremor consistent with Parkinson's disease", "grade 2/6 systolic ejection murmur at the RUSB",
    "strength 5/5 in all extremities", "2+ pitting edema to the mid-shin", "JVP at 9 cm H2O",
]
PROCEDURES = ["Whipple procedure", "Nissen fundoplication", "Roux-en-Y gastric bypass", "Hartmann procedure",
              "Epley maneuver", "Swan-Ganz catheter placement", "Foley catheter placement",
              "Hickman line placement", "Billroth II gastrectomy", "Bankart repair", "Mohs surgery",
              "Kasai procedure", "Ross procedure", "Fontan revision", "Heller myotomy"]
SCORES = ["CHA2DS2-VASc score of 4", "HAS-BLED score of 2", "Child-Pugh class B", "MELD-Na 17",
          "Wells score 1.5", "Gleason 3+4=7", "Breslow depth 1.2 mm", "Braden scale 14",
          "Morse Fall Scale 55", "Apgar scores 8 and 9", "Bishop score 6", "NIHSS 4", "CURB-65 of 2"]
COMPLAINTS = [
    ("chest pain", "substernal chest pressure radiating to the left arm, worse with exertion, relieved by rest"),
    ("shortness of breath", "progressive dyspnea on exertion, orthopnea requiring three pillows and a 4 kg weight gain"),
    ("fall", "a mechanical fall at home without loss of consciousness; unable to bear weight on the right leg"),
    ("abdominal pain", "epigastric pain radiating to the back with nausea and two episodes of non-bloody emesis"),
    ("confusion", "two days of waxing and waning confusion, decreased oral intake and dysuria"),
    ("fever", "fevers to 39.2 °C, productive cough with yellow sputum and pleuritic chest pain"),
    ("syncope", "a witnessed syncopal episode while standing in line, with rapid return to baseline"),
    ("weakness", "acute onset left facial droop and left arm weakness noted at breakfast"),
    ("hyperglycemia", "polyuria, polydipsia and glucometer readings above 400 mg/dL"),
    ("GI bleed", "melena for three days and lightheadedness on standing"),
]
LABS = [
    ("WBC", lambda r: f"{r.uniform(3.5, 18):.1f}", "K/uL", "4.0-11.0"),
    ("Hemoglobin", lambda r: f"{r.uniform(7.5, 16):.1f}", "g/dL", "12.0-16.0"),
    ("Platelets", lambda r: f"{r.randint(90, 420)}", "K/uL", "150-400"),
    ("Sodium", lambda r: f"{r.randint(128, 146)}", "mmol/L", "135-145"),
    ("Potassium", lambda r: f"{r.uniform(3.1, 5.8):.1f}", "mmol/L", "3.5-5.1"),
    ("Creatinine", lambda r: f"{r.uniform(0.6, 3.4):.2f}", "mg/dL", "0.60-1.20"),
    ("BUN", lambda r: f"{r.randint(8, 60)}", "mg/dL", "7-20"),
    ("Glucose", lambda r: f"{r.randint(70, 420)}", "mg/dL", "70-99"),
    ("Hemoglobin A1c", lambda r: f"{r.uniform(5.2, 11.5):.1f}", "%", "<5.7"),
    ("Troponin I", lambda r: f"{r.uniform(0.0, 2.5):.2f}", "ng/mL", "<0.04"),
    ("BNP", lambda r: f"{r.randint(20, 2400)}", "pg/mL", "<100"),
    ("INR", lambda r: f"{r.uniform(0.9, 3.8):.1f}", "", "0.9-1.1"),
    ("TSH", lambda r: f"{r.uniform(0.1, 9.0):.2f}", "mIU/L", "0.45-4.50"),
    ("Lactate", lambda r: f"{r.uniform(0.5, 5.0):.1f}", "mmol/L", "0.5-2.0"),
    ("ALT", lambda r: f"{r.randint(8, 240)}", "U/L", "7-56"),
    ("Lipase", lambda r: f"{r.randint(10, 900)}", "U/L", "13-60"),
    ("Vitamin D, 25-OH", lambda r: f"{r.randint(8, 60)}", "ng/mL", "30-100"),
]
RAD_EXAMS = [
    ("CT HEAD WITHOUT CONTRAST", "No acute intracranial hemorrhage, mass effect or midline shift. Chronic small vessel ischemic changes.",
     "No acute intracranial abnormality."),
    ("CHEST X-RAY, PA AND LATERAL", "Mild cardiomegaly. Small bilateral pleural effusions with bibasilar atelectasis. No pneumothorax.",
     "Findings consistent with mild pulmonary edema."),
    ("CT ABDOMEN AND PELVIS WITH IV CONTRAST", "Peripancreatic fat stranding without drainable collection. Gallbladder contains layering stones.",
     "Acute interstitial pancreatitis; cholelithiasis."),
    ("MRI BRAIN WITH AND WITHOUT GADOLINIUM", "Restricted diffusion in the right MCA territory involving the insular cortex.",
     "Acute right MCA territory infarct."),
    ("ECHOCARDIOGRAM (TTE)", "LVEF 35-40% with global hypokinesis. Moderate mitral regurgitation. RVSP 42 mmHg.",
     "Reduced systolic function; moderate MR."),
    ("DEXA SCAN", "Lumbar spine T-score -2.7. Left femoral neck T-score -2.1.", "Osteoporosis."),
    ("RIGHT HIP X-RAY, 2 VIEWS", "Displaced subcapital femoral neck fracture. Diffuse osteopenia.",
     "Displaced right femoral neck fracture (Garden IV)."),
    ("CT ANGIOGRAM CHEST (PE PROTOCOL)", "Filling defects in the right lower lobe segmental arteries. RV/LV ratio 0.9.",
     "Acute right lower lobe pulmonary emboli without right heart strain."),
]
DEVICES = [
    ("pacemaker", "Medtronic Azure XT DR MRI SureScan, model W1DR01"),
    ("implantable cardioverter-defibrillator", "Boston Scientific Resonate EL ICD, model D433"),
    ("insulin pump", "Tandem t:slim X2 with Control-IQ"),
    ("continuous glucose monitor", "Dexcom G7 sensor"),
    ("CPAP machine", "ResMed AirSense 11 AutoSet"),
    ("deep brain stimulator", "Abbott Infinity DBS system"),
    ("cochlear implant", "Cochlear Nucleus 8 processor"),
    ("spinal cord stimulator", "Nevro Senza HFX iQ"),
    ("left ventricular assist device", "HeartMate 3 LVAD"),
]
TIMES = ["0800", "14:30", "2 PM", "08:15", "noon", "1600", "7:45 AM", "23:10"]
STATES = ["MA", "NY", "CA", "TX", "FL", "IL", "OH", "PA", "WA", "GA", "NC", "MI", "AZ", "CO", "MN"]
COUNTY_NAMES = ["Suffolk", "Middlesex", "Cook", "Kings", "Maricopa", "Harris", "Orange", "King", "Travis",
                "Hennepin", "Cuyahoga", "Franklin", "Jefferson", "Washington", "Montgomery", "Essex",
                "Worcester", "Hamilton", "Allegheny", "Wayne", "Fulton", "Mecklenburg", "Pinellas"]
RELATIONS = [("wife", "F"), ("husband", "M"), ("daughter", "F"), ("son", "M"), ("sister", "F"),
             ("brother", "M"), ("niece", "F"), ("grandson", "M"), ("partner", None)]
EMOJI = ["🙏🏼", "👍🏽", "😊", "❤️", "🙂", "👩‍⚕️"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


# --------------------------------------------------------------------------
# PHI value generators
# --------------------------------------------------------------------------
def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


DATE_STYLES = ["mdY", "mdy_short", "d_Mon_Y", "Month_dth_Y", "Month_d_Y", "iso", "md", "d-Mon-Y",
               "Mon_d_Y", "m-d-Y", "Month_Y", "d_Month_Y", "mdY_nopad", "mdY_time", "iso_time",
               "Mon._d_Y", "Month_dth"]


def fmt_date(d: dt.date, style: str, rng: random.Random) -> str:
    mon = MONTHS[d.month - 1]
    if style == "mdY":
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == "mdy_short":
        return f"{d.month}/{d.day}/{d.year % 100:02d}"
    if style == "d_Mon_Y":
        return f"{d.day} {mon[:3]} {d.year}"
    if style == "Month_dth_Y":
        return f"{mon} {ordinal(d.day)}, {d.year}"
    if style == "Month_d_Y":
        return f"{mon} {d.day}, {d.year}"
    if style == "iso":
        return d.isoformat()
    if style == "md":
        return f"{d.month}/{d.day}"
    if style == "d-Mon-Y":
        return f"{d.day:02d}-{mon[:3]}-{d.year}"
    if style == "Mon_d_Y":
        return f"{mon[:3]} {d.day}, {d.year}"
    if style == "m-d-Y":
        return f"{d.month:02d}-{d.day:02d}-{d.year}"
    if style == "Month_Y":
        return f"{mon} {d.year}"
    if style == "d_Month_Y":
        return f"{d.day} {mon} {d.year}"
    if style == "mdY_nopad":
        return f"{d.month}/{d.day}/{d.year}"
    if style == "mdY_time":
        return f"{d.month:02d}/{d.day:02d}/{d.year} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    if style == "iso_time":
        return f"{d.isoformat()} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    if style == "Mon._d_Y":
        short = mon[:3] + ("." if mon != "May" else "")
        return f"{short} {d.day}, {d.year}"
    if style == "Month_dth":
        return f"{mon} {ordinal(d.day)}"
    raise ValueError(style)


# Area codes in service (random NPAs are often unassigned, and validators built on
# libphonenumber rightly reject those, which would make the corpus unrealistic).
AREA_CODES = """201 202 203 205 206 207 208 210 212 214 215 216 225 240 251 253 256 281 301 303 305 307 308 312
313 314 315 316 318 334 337 346 347 360 401 402 404 405 406 407 410 412 413 414 415 425 443 469 470 479 480 501
502 503 504 505 508 509 512 516 518 520 540 541 561 571 585 601 602 603 605 607 608 612 615 617 623 630 631 646
651 678 701 702 703 704 708 713 716 718 719 727 732 757 763 770 773 775 781 785 786 801 802 803 804 808 813 816
832 843 847 860 864 904 907 908 913 917 918 919 928 952 954 970 972 973 978""".split()


def nanp(rng: random.Random) -> tuple[str, str, str]:
    area = rng.choice(AREA_CODES)
    while True:
        exch = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        if exch[1:] != "11" and exch != "555":
            break
    return area, exch, f"{rng.randint(0, 9999):04d}"


def phone(rng: random.Random) -> str:
    a, e, n = nanp(rng)
    return rng.choice([
        f"({a}) {e}-{n}", f"{a}-{e}-{n}", f"{a}.{e}.{n}", f"{a}{e}{n}", f"+1 {a} {e} {n}",
        f"1-{a}-{e}-{n}", f"({a}){e}-{n}", f"+1 ({a}) {e}-{n}", f"{a} {e} {n}", f"{a}-{e}-{n}",
    ])


def ssn(rng: random.Random) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    g, s = rng.randint(1, 99), rng.randint(1, 9999)
    return rng.choice([f"{area:03d}-{g:02d}-{s:04d}"] * 3 + [f"{area:03d} {g:02d} {s:04d}", f"{area:03d}{g:02d}{s:04d}"])


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def letters(rng: random.Random, n: int, alphabet: str = string.ascii_uppercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def mrn(rng: random.Random) -> str:
    return rng.choice([
        digits(rng, 7), digits(rng, 8), "00" + digits(rng, 7), "E" + digits(rng, 7),
        f"MR-{digits(rng, 8)}", f"{digits(rng, 3)}-{digits(rng, 2)}-{digits(rng, 2)}", digits(rng, 10),
    ])


def mbi(rng: random.Random) -> str:
    a = "ACDEFGHJKMNPQRTUVWXY"
    an = a + string.digits
    s = (str(rng.randint(1, 9)) + rng.choice(a) + rng.choice(an) + str(rng.randint(0, 9)) + "-"
         + rng.choice(a) + rng.choice(an) + str(rng.randint(0, 9)) + "-" + rng.choice(a) + rng.choice(a)
         + str(rng.randint(0, 9)) + str(rng.randint(0, 9)))
    return s if rng.random() < 0.5 else s.replace("-", "")


def health_plan(rng: random.Random) -> tuple[str, str]:
    """(cue, value)"""
    return rng.choice([
        ("Member ID: ", letters(rng, 3) + digits(rng, 9)),
        ("Member ID #", "W" + digits(rng, 9)),
        ("Subscriber ID: ", letters(rng, 2) + digits(rng, 8) + "-01"),
        ("Policy number: ", f"{digits(rng, 3)}-{digits(rng, 4)}-{digits(rng, 4)}"),
        ("Policy #: ", letters(rng, 1) + digits(rng, 10)),
        ("Medicare Beneficiary Identifier (MBI): ", mbi(rng)),
        ("Medicaid ID: ", letters(rng, 2) + digits(rng, 5) + letters(rng, 1)),
        ("Health plan member number ", digits(rng, 11)),
    ])


def account(rng: random.Random) -> tuple[str, str]:
    return rng.choice([
        ("Account #: ", digits(rng, 10)),
        ("Acct No. ", f"{digits(rng, 3)}-{digits(rng, 3)}-{digits(rng, 4)}"),
        ("Hospital account number: ", digits(rng, 9)),
        ("Billing account: ", "A-" + digits(rng, 8)),
        ("Patient account ", "PA" + digits(rng, 8)),
        ("Guarantor account # ", digits(rng, 8)),
    ])


def dea(rng: random.Random, last_name: str) -> str:
    first = rng.choice("ABFGMPRX")
    second = last_name[0].upper() if last_name[:1].isalpha() else "X"
    d = [rng.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return first + second + "".join(map(str, d)) + str(check)


def medical_license(rng: random.Random, last_name: str) -> tuple[str, str]:
    return rng.choice([
        ("Medical License #: ", "MD" + digits(rng, 6)),
        ("License No. ", rng.choice("AGC") + digits(rng, 5)),
        ("State medical license ", digits(rng, 6)),
        ("Lic# ", f"{letters(rng, 2)}-{digits(rng, 7)}"),
        ("DEA# ", dea(rng, last_name)),
        ("DEA number ", dea(rng, last_name)),
        ("NY license ", digits(rng, 6)),
    ])


def drivers_license(rng: random.Random) -> tuple[str, str]:
    """(state, number)"""
    return rng.choice([
        ("CA", letters(rng, 1) + digits(rng, 7)),
        ("NY", digits(rng, 9)),
        ("MA", "S" + digits(rng, 8)),
        ("FL", f"{letters(rng, 1)}{digits(rng, 3)}-{digits(rng, 3)}-{digits(rng, 2)}-{digits(rng, 3)}-{digits(rng, 1)}"),
        ("TX", digits(rng, 8)),
        ("IL", f"{letters(rng, 1)}{digits(rng, 3)}-{digits(rng, 4)}-{digits(rng, 4)}"),
        ("PA", digits(rng, 8)),
        ("OH", letters(rng, 2) + digits(rng, 6)),
    ])


VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
VIN_VALUES = {**{str(i): i for i in range(10)},
              **dict(zip("ABCDEFGH", range(1, 9))), **dict(zip("JKLMN", range(1, 6))), "P": 7, "R": 9,
              **dict(zip("STUVWXYZ", range(2, 10)))}
VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def vin(rng: random.Random) -> str:
    v = [rng.choice(VIN_CHARS) for _ in range(17)]
    v[9] = rng.choice("LMNPRST")  # model year 2020-2026-ish
    total = sum(VIN_VALUES[c] * w for c, w in zip(v, VIN_WEIGHTS))
    v[8] = "X" if total % 11 == 10 else str(total % 11)
    return "".join(v)


def plate(rng: random.Random) -> str:
    return rng.choice([
        f"{rng.randint(1, 9)}{letters(rng, 3)}{digits(rng, 3)}", f"{letters(rng, 3)}-{digits(rng, 4)}",
        f"{digits(rng, 3)} {letters(rng, 3)}", f"{letters(rng, 3)} {digits(rng, 4)}",
        f"{digits(rng, 1)}{letters(rng, 2)}{digits(rng, 1)}{letters(rng, 2)}",
    ])


def device_serial(rng: random.Random) -> str:
    return rng.choice([
        letters(rng, 3) + digits(rng, 6) + letters(rng, 1), digits(rng, 9), "SN" + digits(rng, 8),
        f"{digits(rng, 4)}-{digits(rng, 4)}-{digits(rng, 3)}", letters(rng, 2) + digits(rng, 7),
        digits(rng, 11), f"{letters(rng, 1)}{digits(rng, 2)}{letters(rng, 1)}{digits(rng, 6)}",
    ])


def plain_name(fake: Faker, sex: str | None = None) -> str:
    """First and last name only (Faker's name() may add prefixes such as 'Dr.' or suffixes such as 'MD')."""
    first = fake.first_name_female() if sex == "F" else fake.first_name_male() if sex == "M" else fake.first_name()
    return f"{first} {fake.last_name()}"


class Person:
    def __init__(self, fake: Faker, rng: random.Random, sex: str | None = None) -> None:
        self.sex = sex or rng.choice("MF")
        self.first = fake.first_name_male() if self.sex == "M" else fake.first_name_female()
        self.last = fake.last_name()
        if rng.random() < 0.05:
            self.last = f"{self.last}-{fake.last_name()}"
        self.middle = rng.choice(string.ascii_uppercase)

    def full(self, rng: random.Random) -> str:
        r = rng.random()
        if r < 0.6:
            return f"{self.first} {self.last}"
        if r < 0.85:
            return f"{self.first} {self.middle}. {self.last}"
        return f"{self.first} {self.middle} {self.last}"

    def last_first(self) -> str:
        return f"{self.last}, {self.first}"


class Ctx:
    """Identity of one patient and the people and places around them."""

    def __init__(self, fake: Faker, rng: random.Random) -> None:
        self.fake, self.rng = fake, rng
        self.pt = Person(fake, rng)
        self.sex = self.pt.sex
        self.he = "he" if self.sex == "M" else "she"
        self.He = self.he.capitalize()
        self.his = "his" if self.sex == "M" else "her"
        self.His = self.his.capitalize()
        self.mr = "Mr." if self.sex == "M" else rng.choice(["Mrs.", "Ms."])
        self.age = rng.randint(90, 104) if rng.random() < 0.14 else rng.randint(19, 89)
        self.visit = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randint(0, 3600))
        self.dob = self.visit - dt.timedelta(days=365 * self.age + rng.randint(1, 360))
        self.street = fake.street_address()
        self.city = fake.city()
        self.state = rng.choice(STATES)
        self.zip = fake.zipcode_plus4() if rng.random() < 0.2 else fake.zipcode()
        self.county = f"{rng.choice(COUNTY_NAMES)} County"
        self.phone = phone(rng)
        self.cell = phone(rng)
        self.email = (f"{self.pt.first.lower()}.{self.pt.last.lower().replace('-', '')}{rng.randint(1, 99)}"
                      f"@{fake.free_email_domain()}") if rng.random() < 0.6 else fake.email()
        self.ssn = ssn(rng)
        self.mrn = mrn(rng)
        self.docs = [Person(fake, rng) for _ in range(4)]
        rel, rsex = rng.choice(RELATIONS)
        self.rel = rel
        self.relative = Person(fake, rng, rsex)
        if rel in ("wife", "husband", "daughter", "son", "grandson") and rng.random() < 0.7 and rel != "daughter":
            self.relative.last = self.pt.last
        self.hospital = rng.choice(HOSPITALS)
        self.domain = rng.choice(["mercyhealth.org", "stmarysmc.org", "umc-health.org", "goodsam.org",
                                  "providencehc.org", "holycross-hospital.org", "memorialregional.org"])

    # convenience
    def d(self, date: dt.date | None = None, style: str | None = None):
        date = date or self.visit
        style = style or self.rng.choice(DATE_STYLES)
        return (fmt_date(date, style, self.rng), "DATE_TIME")

    def near(self, lo: int = -30, hi: int = 30) -> dt.date:
        return self.visit + dt.timedelta(days=self.rng.randint(lo, hi))

    def age_piece(self) -> Piece:
        """'92-year-old' with only the number labelled when >= 90."""
        a = str(self.age)
        form = self.rng.choice(["{a}-year-old", "{a} year old", "{a} yo", "{a} y/o", "{a}-yr-old", "{a}yo"])
        before, after = form.split("{a}")
        return Piece(before, (a, "AGE_OVER_89") if self.age >= 90 else a, after)

    def age_phrase(self) -> Piece:
        a = str(self.age)
        form = self.rng.choice(["age {a}", "aged {a}", "Age: {a}", "{a} years of age", "{a} years old"])
        before, after = form.split("{a}")
        return Piece(before, (a, "AGE_OVER_89") if self.age >= 90 else a, after)

    def doc_ref(self, i: int = 0) -> Piece:
        """A clinician reference with a title or credential outside the span."""
        doc = self.docs[i]
        r = self.rng.random()
        if r < 0.45:
            return Piece("Dr. ", (doc.full(self.rng) if self.rng.random() < 0.6 else doc.last, "PERSON"))
        if r < 0.7:
            return Piece((doc.full(self.rng), "PERSON"), self.rng.choice([", MD", ", M.D.", ", DO", " MD", ", MD, PhD"]))
        if r < 0.8:
            return Piece((f"{doc.first} {doc.last}", "PERSON"), self.rng.choice([", NP", ", PA-C", ", RN", ", FNP-BC"]))
        if r < 0.9:
            return Piece("Dr ", (doc.last, "PERSON"))
        return Piece("Dr. ", (f"{doc.first[0]}. {doc.last}", "PERSON"))

    def pt_ref(self) -> Piece:
        r = self.rng.random()
        if r < 0.4:
            return Piece(self.mr + " ", (self.pt.last, "PERSON"))
        if r < 0.7:
            return Piece((self.pt.full(self.rng), "PERSON"))
        if r < 0.85:
            return Piece((self.pt.first, "PERSON"))
        return Piece("the patient")

    def city_state_zip(self) -> Piece:
        return Piece((self.city, "LOCATION"), f", {self.state} ", (self.zip, "ZIP_CODE"))

    def address_lines(self, n: Note) -> None:
        n.line("{street}", street=(self.street, "LOCATION"))
        n.line("{csz}", csz=self.city_state_zip())

    def phone_piece(self, number: str | None = None) -> Piece:
        num = number or self.phone
        if self.rng.random() < 0.1:
            return Piece((num, "PHONE_NUMBER"), f" ext. {self.rng.randint(100, 9999)}")
        return Piece((num, "PHONE_NUMBER"))

    def fax_piece(self) -> Piece:
        cue = self.rng.choice(["Fax: ", "Fax ", "FAX: ", "fax ", "Fax #: ", "Fax number: ", "F: "])
        if cue == "F: ":
            cue = "Fax: "
        return Piece(cue, (phone(self.rng), "FAX_NUMBER"))


# --------------------------------------------------------------------------
# Shared blocks
# --------------------------------------------------------------------------
def header_block(n: Note, c: Ctx, title: str) -> None:
    r = c.rng
    n.line(f"{c.hospital.upper()} - {title}")
    if r.random() < 0.5:
        n.line("Patient: {name}    {mrncue}{mrn}", name=(c.pt.last_first(), "PERSON"),
               mrncue=r.choice(["MRN: ", "MRN ", "MRN#: ", "Med Rec #: "]), mrn=(c.mrn, "MEDICAL_RECORD_NUMBER"))
    else:
        n.line("Name: {name}", name=(c.pt.full(r), "PERSON"))
        n.line("{mrncue}{mrn}", mrncue=r.choice(["Medical Record Number: ", "Medical record number ", "MRN: "]),
               mrn=(c.mrn, "MEDICAL_RECORD_NUMBER"))
    n.line("DOB: {dob}    Sex: {sex}    {age}", dob=c.d(c.dob, r.choice(["mdY", "mdY_nopad", "iso", "d-Mon-Y", "mdy_short"])),
           sex="Male" if c.sex == "M" else "Female", age=c.age_phrase())
    if r.random() < 0.5:
        cue, val = account(r)
        n.line("{cue}{val}", cue=cue, val=(val, "ACCOUNT_NUMBER"))


def meds_block(n: Note, c: Ctx, title: str = "MEDICATIONS:") -> None:
    n.line(title)
    for name, dose in c.rng.sample(MEDS, c.rng.randint(3, 8)):
        n.line(f"- {name} {dose}")


def pmh_block(n: Note, c: Ctx) -> None:
    n.line("PAST MEDICAL HISTORY:")
    for cond in c.rng.sample(CONDITIONS, c.rng.randint(2, 6)):
        extra = c.rng.choice(["", "", f", diagnosed in {c.visit.year - c.rng.randint(1, 25)}",
                              f" since {c.visit.year - c.rng.randint(1, 15)}", ", well controlled",
                              ", followed by " + c.rng.choice(DEPARTMENTS)])
        n.line(f"- {cond}{extra}")
    if c.rng.random() < 0.4:
        n.line(f"- s/p {c.rng.choice(PROCEDURES)} ({c.visit.year - c.rng.randint(1, 20)})")


def vitals_line(n: Note, c: Ctx) -> None:
    r = c.rng
    n.line(f"Vitals: T {r.uniform(36.1, 39.4):.1f} °C, HR {r.randint(52, 128)}, BP {r.randint(92, 182)}/{r.randint(48, 104)}, "
           f"RR {r.randint(12, 28)}, SpO2 {r.randint(86, 100)}% on {r.choice(['room air', '2 L NC', '4 L NC', 'BiPAP'])}, "
           f"pain {r.randint(0, 10)}/10")


def labs_block(n: Note, c: Ctx, k: int = 5) -> None:
    parts = []
    for name, f, unit, _ref in c.rng.sample(LABS, k):
        parts.append(f"{name} {f(c.rng)}{(' ' + unit) if unit else ''}")
    n.line("Labs: " + ", ".join(parts) + ".")


def insurance_block(n: Note, c: Ctx) -> None:
    r = c.rng
    cue, val = health_plan(r)
    payer = r.choice(["Blue Cross Blue Shield", "Aetna", "UnitedHealthcare", "Medicare Part A/B", "Humana Gold Plus",
                      "Cigna", "MassHealth", "Kaiser Permanente", "Tricare"])
    n.line("Insurance: {payer}, {cue}{val}, Group {grp}", payer=payer, cue=cue, val=(val, "HEALTH_PLAN_NUMBER"),
           grp=f"{r.randint(10000, 99999)}")


def contact_block(n: Note, c: Ctx) -> None:
    r = c.rng
    rel = c.relative
    n.line("Emergency contact: {name} ({rel}), {ph}", name=(rel.full(r), "PERSON"), rel=c.rel,
           ph=Piece((phone(r), "PHONE_NUMBER")))
    if r.random() < 0.5:
        n.line("Home phone: {ph}; cell {cell}", ph=c.phone_piece(), cell=Piece((c.cell, "PHONE_NUMBER")))
    if r.random() < 0.4:
        n.line("Email on file: {e}", e=(c.email, "EMAIL_ADDRESS"))


def identifiers_block(n: Note, c: Ctx) -> None:
    """Registration data: the rarer identifiers."""
    r = c.rng
    if r.random() < 0.45:
        n.line("SSN: {s}", s=(c.ssn, "US_SSN")) if r.random() < 0.6 else \
            n.line("Social Security Number {s} verified by Registration.", s=(c.ssn, "US_SSN"))
    if r.random() < 0.3:
        st, num = drivers_license(r)
        n.line(r.choice(["Photo ID: {st} driver's license {dl}.", "Driver's License #: {dl} ({st})",
                         "ID verified with {st} DL # {dl}."]), st=st, dl=(num, "US_DRIVER_LICENSE"))
    if r.random() < 0.2:
        n.line(r.choice(["Vehicle in visitor garage level 2, license plate {p} ({st}).",
                         "Security note: patient's car (plate {p}, {st}) was moved from the ambulance bay."]),
               p=(plate(r), "VEHICLE_ID"), st=c.state)
    if r.random() < 0.08:
        n.line("MVC report: vehicle VIN {v}, airbags deployed.", v=(vin(r), "VEHICLE_ID"))


def signature_block(n: Note, c: Ctx, i: int = 0) -> None:
    r = c.rng
    doc = c.docs[i]
    cred = r.choice(["MD", "M.D.", "DO", "MD, FACP", "MD, PhD"])
    n.line()
    n.line(r.choice(["Electronically signed by ", "Signed: ", "Attending: ", "Dictated by "]) + "{name}, " + cred,
           name=(doc.full(r), "PERSON"))
    if r.random() < 0.5:
        n.line("{when}", when=c.d(c.near(0, 2), r.choice(["mdY_time", "iso_time", "mdY", "Mon_d_Y"])))
    if r.random() < 0.35:
        cue, val = medical_license(r, doc.last)
        n.line("{cue}{val}", cue=cue, val=(val, "MEDICAL_LICENSE"))
    if r.random() < 0.3:
        n.line("Pager {p}", p=(phone(r), "PHONE_NUMBER"))


# --------------------------------------------------------------------------
# Note templates
# --------------------------------------------------------------------------
def admission_note(c: Ctx) -> Note:
    n, r = Note(), c.rng
    header_block(n, c, "ADMISSION HISTORY AND PHYSICAL")
    n.line("Date of admission: {d}    Unit: {unit}", d=c.d(), unit=r.choice(DEPARTMENTS))
    n.line("Attending: {doc}   PCP: {pcp}", doc=c.doc_ref(0), pcp=c.doc_ref(1))
    n.line()
    cc, hpi = r.choice(COMPLAINTS)
    n.line(f"CHIEF COMPLAINT: {cc[0].upper() + cc[1:]}.")
    n.line()
    n.line("HISTORY OF PRESENT ILLNESS:")
    n.fmt("{pt} is a {age} {sex} with {c1} and {c2} who presents to the Emergency Department with {hpi}. ",
          pt=c.pt_ref() if r.random() < 0.7 else Piece((c.pt.full(r), "PERSON")), age=c.age_piece(),
          sex=r.choice(["man", "male"]) if c.sex == "M" else r.choice(["woman", "female"]),
          c1=r.choice(CONDITIONS), c2=r.choice(CONDITIONS), hpi=hpi)
    n.fmt("Symptoms began on {d} and worsened over {k} days. ", d=c.d(c.near(-10, -1)), k=r.randint(2, 6))
    n.fmt("{He} was last seen by {doc} in {dept} on {d2}, where {his} {med} was increased. ",
          He=c.He, doc=c.doc_ref(1), dept=r.choice(DEPARTMENTS), d2=c.d(c.near(-120, -20)), his=c.his,
          med=r.choice(MEDS)[0])
    n.line(f"Of note, {r.choice(SCORES)} on prior evaluation. Denies recent travel; last colonoscopy in {c.visit.year - r.randint(2, 9)}.")
    n.line()
    pmh_block(n, c)
    meds_block(n, c, "HOME MEDICATIONS:")
    n.line(f"ALLERGIES: {', '.join(r.sample(ALLERGIES, r.randint(1, 2)))}")
    n.line()
    n.line("SOCIAL HISTORY:")
    n.fmt("Lives with {his} {rel} {relname} at {street} in {city}, {st}", his=c.his, rel=c.rel,
          relname=(c.relative.first if r.random() < 0.5 else c.relative.full(r), "PERSON"),
          street=(c.street, "LOCATION"), city=(c.city, "LOCATION"), st=c.state)
    if r.random() < 0.4:
        n.fmt(" ({county})", county=(c.county, "LOCATION"))
    n.line(f". Former {r.choice(['machinist', 'teacher', 'nurse', 'truck driver', 'accountant', 'farmer'])}; "
           f"quit smoking in {c.visit.year - r.randint(3, 30)}, {r.randint(10, 60)} pack-years. "
           f"{r.choice(['No alcohol use.', 'Drinks 2 beers on weekends.', 'Uses a walker at home.'])}")
    contact_block(n, c)
    n.line()
    n.line("PHYSICAL EXAM:")
    vitals_line(n, c)
    n.line(f"General: {r.choice(['NAD', 'ill-appearing', 'frail elderly', 'pleasant, conversant'])}. "
           "{}; {}.".format(*(lambda a, b: (a[0].upper() + a[1:], b))(*r.sample(EXAM_SIGNS, 2))))
    labs_block(n, c, r.randint(4, 8))
    n.line()
    n.line("ASSESSMENT AND PLAN:")
    n.fmt("{age} with {c1}, admitted for {cc}. ", age=c.age_piece(), c1=r.choice(CONDITIONS), cc=cc)
    n.line(f"Consult {r.choice(DEPARTMENTS)}; start {r.choice(MEDS)[0]}. Telemetry. DVT prophylaxis with heparin SC. "
           f"Code status: {r.choice(['Full Code', 'DNR/DNI', 'DNR, OK to intubate'])}.")
    if r.random() < 0.5:
        n.line("Discussed plan with {who} by phone at {ph}.", who=Piece((c.relative.full(r), "PERSON"), f" ({c.rel})"),
               ph=Piece((phone(r), "PHONE_NUMBER")))
    n.line()
    insurance_block(n, c)
    identifiers_block(n, c)
    signature_block(n, c, 0)
    return n


def discharge_summary(c: Ctx) -> Note:
    n, r = Note(), c.rng
    header_block(n, c, "DISCHARGE SUMMARY")
    adm = c.visit
    dis = adm + dt.timedelta(days=r.randint(2, 12))
    n.line("Admission date: {a}    Discharge date: {b}", a=c.d(adm), b=c.d(dis))
    n.line("Discharging physician: {doc}", doc=c.doc_ref(0))
    n.line(f"Discharge diagnosis: {r.choice(CONDITIONS)}; secondary: {r.choice(CONDITIONS)}.")
    n.line()
    n.line("HOSPITAL COURSE:")
    n.fmt("{pt}, a {age} {sex} with {c1}, was admitted from the Emergency Department on {d} with {cc}. ",
          pt=c.pt_ref(), age=c.age_piece(), sex="man" if c.sex == "M" else "woman", c1=r.choice(CONDITIONS),
          d=c.d(adm, r.choice(["Month_d_Y", "md", "Month_dth", "mdY"])), cc=r.choice(COMPLAINTS)[0])
    n.fmt(f"{c.He} was treated with {r.choice(MEDS)[0]} and {r.choice(MEDS)[0]} and transferred to the "
          f"{r.choice(DEPARTMENTS)} on hospital day {r.randint(2, 4)}. ")
    n.fmt("{proc} was performed by {doc} on {d}. ", proc=r.choice(PROCEDURES), doc=c.doc_ref(2),
          d=c.d(adm + dt.timedelta(days=1)))
    n.line(f"Course complicated by {r.choice(['delirium', 'acute kidney injury', 'hypokalemia', 'C. difficile colitis', 'atrial fibrillation with RVR'])}, "
           f"which resolved. {(lambda x: x[0].upper() + x[1:])(r.choice(EXAM_SIGNS))} at discharge.")
    if r.random() < 0.55:
        dev, model = r.choice(DEVICES)
        n.line()
        n.fmt(f"DEVICE: {model} {dev}, {'implanted' if dev not in ('insulin pump', 'continuous glucose monitor', 'CPAP machine') else 'in use since'} ")
        n.fmt("{d}; {cue}{sn}. ", d=c.d(c.near(-2000, -30), r.choice(["mdY", "Month_Y", "iso"])),
              cue=r.choice(["serial number ", "serial # ", "SN: ", "S/N ", "device serial "]),
              sn=(device_serial(r), "DEVICE_ID"))
        n.line(f"Interrogation by the {r.choice(['Medtronic', 'Boston Scientific', 'Abbott'])} representative showed normal function, "
               f"battery {r.randint(4, 11)} years.")
    n.line()
    meds_block(n, c, "DISCHARGE MEDICATIONS:")
    n.line(f"Stop: {r.choice(MEDS)[0]}. Hold {r.choice(MEDS)[0]} until follow-up.")
    n.line()
    n.line("FOLLOW-UP:")
    n.line("- {doc}, {clinic}, on {d} at {tm}. Phone {ph}; {fax}.", doc=c.doc_ref(1), clinic=r.choice(CLINIC_NAMES),
           d=c.d(dis + dt.timedelta(days=r.randint(5, 30)), r.choice(["md", "Month_dth", "Mon_d_Y", "mdY"])),
           tm=r.choice(TIMES), ph=Piece((phone(r), "PHONE_NUMBER")), fax=c.fax_piece())
    n.line("  Address: {street}, {csz}", street=(c.fake.street_address(), "LOCATION"),
           csz=Piece((c.fake.city(), "LOCATION"), f", {c.state} ", (c.fake.zipcode(), "ZIP_CODE")))
    n.line(f"- Labs (BMP, CBC) in 1 week; repeat {r.choice(RAD_EXAMS)[0]} in 3 months.")
    n.line()
    n.line("DISPOSITION: {where}", where=r.choice([
        Piece("Home with services at ", (c.street, "LOCATION"), ", ", (c.city, "LOCATION")),
        Piece("Skilled nursing facility in ", (c.city, "LOCATION")),
        Piece("Home with ", (c.relative.first, "PERSON"), f" ({c.rel})"),
        Piece("Acute rehab, ", r.choice(HOSPITALS))]))
    contact_block(n, c)
    if r.random() < 0.5:
        n.line("Patient portal: {u}", u=(f"https://mychart.{c.domain}/MyChart/Visit/{r.randint(10**6, 10**7)}", "URL"))
    insurance_block(n, c) if r.random() < 0.5 else None
    identifiers_block(n, c)
    signature_block(n, c, 0)
    return n


def radiology_report(c: Ctx) -> Note:
    n, r = Note(), c.rng
    exam, findings, impression = r.choice(RAD_EXAMS)
    n.line(f"{c.hospital} Department of Radiology")
    if r.random() < 0.5:
        n.line("{street}, {csz}  Tel {ph}  {fax}", street=(c.fake.street_address(), "LOCATION"),
               csz=Piece((c.fake.city(), "LOCATION"), f", {c.state} ", (c.fake.zipcode(), "ZIP_CODE")),
               ph=Piece((phone(r), "PHONE_NUMBER")), fax=c.fax_piece())
    n.line()
    n.line("PATIENT: {name}   {mrncue}{mrn}   DOB: {dob}", name=(c.pt.last_first() if r.random() < 0.5 else c.pt.full(r), "PERSON"),
           mrncue=r.choice(["MRN: ", "MRN ", "MRN#"]), mrn=(c.mrn, "MEDICAL_RECORD_NUMBER"),
           dob=c.d(c.dob, r.choice(["mdY", "iso", "mdY_nopad"])))
    n.line("EXAM: {exam}    DATE OF SERVICE: {d}", exam=exam, d=c.d(c.visit, r.choice(["mdY_time", "mdY", "iso_time", "d-Mon-Y"])))
    n.line("ORDERING PROVIDER: {doc}", doc=c.doc_ref(1))
    n.line()
    n.fmt("CLINICAL HISTORY: {age} {sex} with {c1}, {cc}. ", age=c.age_piece(), sex="M" if c.sex == "M" else "F",
          c1=r.choice(CONDITIONS), cc=r.choice(COMPLAINTS)[0])
    n.line(f"{r.choice(SCORES)}.")
    n.line()
    n.line("TECHNIQUE: Standard protocol. " + r.choice([
        "DLP 812 mGy-cm.", "100 mL Omnipaque 350 IV.", "Axial T1, T2, FLAIR, DWI and post-contrast T1.", "Two views."]))
    n.fmt("COMPARISON: ")
    if r.random() < 0.7:
        n.line("{exam2} dated {d}.", exam2=r.choice(RAD_EXAMS)[0], d=c.d(c.near(-900, -10)))
    else:
        n.line("None.")
    n.line()
    n.line("FINDINGS:")
    n.line(findings)
    if r.random() < 0.4:
        dev, model = r.choice(DEVICES[:3] + DEVICES[5:])
        n.line("{Dev} ({model}, serial {sn}) in expected position.", Dev=dev.capitalize(), model=model,
               sn=(device_serial(r), "DEVICE_ID"))
    n.line(r.choice(["No suspicious osseous lesion.", "Degenerative changes of the thoracic spine.",
                     "Atherosclerotic calcification of the aorta.", "Visualized upper abdomen unremarkable."]))
    n.line()
    n.line("IMPRESSION:")
    n.line("1. " + impression)
    n.line("2. " + r.choice(["No acute fracture.", "Recommend follow-up CT in 12 months per Fleischner Society guidelines.",
                             "Clinical correlation recommended.", "Findings discussed with the ordering team."]))
    if r.random() < 0.6:
        n.line("Critical result communicated to {doc} by telephone at {tm} on {d}, read back confirmed.",
               doc=c.doc_ref(1), tm=r.choice(TIMES), d=c.d(c.visit, r.choice(["md", "mdY", "Month_d_Y"])))
    signature_block(n, c, 3)
    return n


def lab_report(c: Ctx) -> Note:
    n, r = Note(), c.rng
    n.line(f"{c.hospital.upper()} CLINICAL LABORATORY")
    n.line("CLIA #{clia}   Director: {dir}", clia=f"{r.randint(10, 99)}D{r.randint(10**6, 10**7 - 1)}",
           dir=Piece((c.docs[3].full(r), "PERSON"), ", MD"))
    n.line()
    n.line("Patient: {name}    Sex: {sex}    {age}", name=(c.pt.last_first(), "PERSON"), sex=c.sex, age=c.age_phrase())
    n.line("{mrncue}{mrn}    DOB: {dob}", mrncue=r.choice(["MRN: ", "Medical Record #: ", "MRN "]),
           mrn=(c.mrn, "MEDICAL_RECORD_NUMBER"), dob=c.d(c.dob, r.choice(["mdY", "mdY_nopad", "iso", "mdy_short"])))
    if r.random() < 0.5:
        cue, val = account(r)
        n.line("{cue}{val}", cue=cue, val=(val, "ACCOUNT_NUMBER"))
    n.line("Ordering physician: {doc}    Location: {dept}", doc=c.doc_ref(1), dept=r.choice(DEPARTMENTS))
    n.line("Collected: {d1}    Received: {d2}", d1=c.d(c.visit, r.choice(["mdY_time", "iso_time"])),
           d2=c.d(c.visit, r.choice(["mdY_time", "iso_time"])))
    n.line()
    n.line(f"{'TEST':<22}{'RESULT':>10}  {'UNITS':<8}{'REFERENCE':<14}FLAG")
    for name, f, unit, ref in r.sample(LABS, r.randint(6, 12)):
        val = f(r)
        flag = r.choice(["", "", "H", "L", ""])
        n.line(f"{name:<22}{val:>10}  {unit:<8}{ref:<14}{flag}")
    n.line()
    n.line(r.choice([
        "Comment: Hemolyzed specimen; potassium may be falsely elevated.",
        "Comment: eGFR calculated with the CKD-EPI 2021 equation (race-free).",
        "Comment: Troponin drawn 3 hours after first set; delta 0.4 ng/mL.",
        "Comment: Verified by repeat analysis."]))
    if r.random() < 0.5:
        n.line("Critical value called to {who}, RN at {tm} by {tech} (MLS).", who=(plain_name(c.fake), "PERSON"),
               tm=r.choice(TIMES), tech=(plain_name(c.fake), "PERSON"))
    if r.random() < 0.3:
        n.line("Prior result ({d}): {lab} {v}.", d=c.d(c.near(-365, -30), r.choice(["md", "mdY", "Mon_d_Y"])),
               lab=r.choice(LABS)[0], v=f"{r.uniform(1, 9):.1f}")
    n.line("Report questions: {ph}   {fax}", ph=Piece((phone(r), "PHONE_NUMBER")), fax=c.fax_piece())
    if r.random() < 0.3:
        insurance_block(n, c)
    return n


def referral_letter(c: Ctx) -> Note:
    n, r = Note(), c.rng
    sender, recip = c.docs[0], c.docs[1]
    n.line(r.choice(CLINIC_NAMES))
    n.line("{street}", street=(c.fake.street_address(), "LOCATION"))
    n.line("{csz}", csz=Piece((c.fake.city(), "LOCATION"), f", {c.state} ", (c.fake.zipcode(), "ZIP_CODE")))
    n.line("Phone: {ph}   {fax}", ph=Piece((phone(r), "PHONE_NUMBER")), fax=c.fax_piece())
    if r.random() < 0.4:
        n.line("{u}", u=(f"www.{c.domain}/clinics/{sender.last.lower().replace('-', '')}", "URL"))
    n.line()
    n.line("{d}", d=c.d(c.visit, r.choice(["Month_d_Y", "Month_dth_Y", "d_Month_Y", "mdY"])))
    n.line()
    n.line("{name}, MD", name=(recip.full(r), "PERSON"))
    n.line(r.choice(DEPARTMENTS))
    n.line(c.hospital)
    n.line()
    n.line("RE: {pt}   DOB: {dob}   {cue}{mrn}", pt=(c.pt.full(r), "PERSON"),
           dob=c.d(c.dob, r.choice(["mdY", "mdY_nopad", "Month_d_Y"])),
           cue=r.choice(["MRN: ", "MRN ", "Medical record number: "]), mrn=(c.mrn, "MEDICAL_RECORD_NUMBER"))
    n.line()
    n.line("Dear Dr. {last},", last=(recip.last, "PERSON"))
    n.line()
    n.fmt("Thank you for seeing {pt}, a {age} {sex} whom I follow for {c1} and {c2}. ", pt=c.pt_ref(), age=c.age_piece(),
          sex="gentleman" if c.sex == "M" else "lady", c1=r.choice(CONDITIONS), c2=r.choice(CONDITIONS))
    n.fmt(f"I am referring {c.pt.first if r.random() < 0.5 else 'the patient'} for evaluation of "
          f"{r.choice(['possible Parkinson disease', 'refractory Atrial Fibrillation', 'worsening CKD', 'suspected Celiac disease', 'a thyroid nodule (TI-RADS 4)'])}. ")
    n.fmt("Symptoms started around {d} and {he} was seen in the Emergency Department on {d2}. ", d=c.d(c.near(-200, -60), r.choice(["Month_Y", "md", "Month_dth"])),
          he=c.he, d2=c.d(c.near(-50, -5)))
    n.line(f"Most recent {r.choice(SCORES)}; {r.choice(EXAM_SIGNS)}.")
    n.line()
    n.line(f"Current medications include {', '.join(m[0] for m in r.sample(MEDS, 4))}. "
           f"Allergies: {r.choice(ALLERGIES)}.")
    n.line()
    n.fmt("{He} lives in {loc} with {his} {rel}, {relname}, who can be reached at {ph}",
          He=c.He, loc=r.choice([Piece((c.city, "LOCATION")), Piece((c.county, "LOCATION")),
                                 Piece((c.city, "LOCATION"), ", ", (c.county, "LOCATION"))]),
          his=c.his, rel=c.rel, relname=(c.relative.full(r), "PERSON"), ph=Piece((phone(r), "PHONE_NUMBER")))
    n.line(" or {e}.", e=(c.fake.email(), "EMAIL_ADDRESS"))
    n.fmt("Best number for {pt} is {ph}. ", pt=(c.pt.first, "PERSON"), ph=c.phone_piece())
    insurance_block(n, c)
    n.line()
    n.line("Please fax your consultation note to {fax} or send via Direct to {e}.",
           fax=(phone(r), "FAX_NUMBER"), e=(f"{sender.first[0].lower()}{sender.last.lower().replace('-', '')}@direct.{c.domain}", "EMAIL_ADDRESS"))
    n.line()
    n.line("Sincerely,")
    n.line()
    n.line("{name}, MD", name=(sender.full(r), "PERSON"))
    n.line(r.choice(["Internal Medicine", "Family Medicine", "Cardiology", "Endocrinology"]))
    if r.random() < 0.5:
        cue, val = medical_license(r, sender.last)
        n.line("{cue}{val}", cue=cue, val=(val, "MEDICAL_LICENSE"))
    n.line("cc: {doc}", doc=c.doc_ref(2))
    return n


def portal_message(c: Ctx) -> Note:
    n, r = Note(), c.rng
    doc = c.docs[0]
    n.line("MyChart Message")
    n.line("From: {pt} <{e}>", pt=(c.pt.full(r), "PERSON"), e=(c.email, "EMAIL_ADDRESS"))
    n.line("To: {doc}", doc=Piece("Dr. ", (f"{doc.first} {doc.last}", "PERSON")) if r.random() < 0.5 else Piece((f"{doc.first} {doc.last}", "PERSON"), ", MD"))
    n.line("Sent: {d}", d=c.d(c.visit, r.choice(["mdY_time", "Mon_d_Y", "iso_time", "Month_d_Y"])))
    n.line("Subject: {s}", s=r.choice(["Question about my meds", "Refill request", "Test results?", "Appointment",
                                        "Feeling worse", "Insurance form"]))
    n.line()
    n.line(r.choice(["Hi Dr. {last},", "Hello Dr {last}!", "Dear Dr. {last}", "Hi {first},"]),
           last=(doc.last, "PERSON"), first=(doc.first, "PERSON"))
    n.line()
    e1 = r.choice(EMOJI) + " " if r.random() < 0.5 else ""
    n.fmt("This is {pt} (DOB {dob}). {emoji}", pt=(c.pt.first if r.random() < 0.5 else c.pt.full(r), "PERSON"),
          dob=c.d(c.dob, r.choice(["mdY", "mdY_nopad", "mdy_short", "Month_d_Y"])), emoji=e1)
    med = r.choice(MEDS)[0]
    n.fmt(f"Since I started the {med} I've been having {r.choice(['dizziness', 'stomach upset', 'trouble sleeping', 'leg cramps', 'a rash on my arms'])}. ")
    n.fmt("I saw Dr. {o} at urgent care on {d} and she said to check with you. ", o=(c.docs[2].last, "PERSON"),
          d=c.d(c.near(-14, -1), r.choice(["md", "Month_dth", "mdy_short", "d_Mon_Y"])))
    if c.age >= 90 and r.random() < 0.7:
        n.fmt("I'm {a} years young so I know I'm not as spry as I used to be! ", a=(str(c.age), "AGE_OVER_89"))
    n.fmt(f"My {c.rel} ")
    n.fmt("{rel} is going to drive me to the appointment on {d}. ", rel=(c.relative.first, "PERSON"),
          d=c.d(c.near(3, 20), r.choice(["md", "Month_dth", "Mon_d_Y"])))
    if r.random() < 0.6:
        n.fmt("Also my phone number changed, the new one is {ph}. ", ph=Piece((c.cell, "PHONE_NUMBER")))
    if r.random() < 0.35:
        n.fmt("We moved to {street}, {city}, {st} {z}. ", street=(c.fake.street_address(), "LOCATION"),
              city=(c.fake.city(), "LOCATION"), st=c.state, z=(c.fake.zipcode(), "ZIP_CODE"))
    if r.random() < 0.3:
        cue, val = health_plan(r)
        n.fmt("My new insurance card says {cue}{v}. ", cue=cue.lower().rstrip(": #") + " ", v=(val, "HEALTH_PLAN_NUMBER"))
    if r.random() < 0.25:
        n.fmt("My {dev} serial number is {sn} if the rep needs it. ", dev=r.choice(DEVICES)[0],
              sn=(device_serial(r), "DEVICE_ID"))
    if r.random() < 0.25:
        n.fmt("I wrote about it on my blog {u} ", u=(c.fake.url().rstrip("/") if r.random() < 0.5 else
                                                      f"https://www.caringbridge.org/visit/{c.pt.first.lower()}{c.pt.last.lower().replace('-', '')}", "URL"))
    n.line(r.choice(["Thank you so much! " + r.choice(EMOJI), "Thanks,", "Thank you", "Best, "]))
    n.line("{name}", name=(c.pt.first if r.random() < 0.6 else c.pt.full(r), "PERSON"))
    n.line()
    n.line("--- Reply ---")
    n.fmt("Hi {pt}, ", pt=(c.pt.first, "PERSON"))
    n.line(f"{r.choice(['Please hold', 'Please continue', 'Reduce'])} the {med} and keep the appointment. "
           f"We will check a {r.choice(LABS)[0]} and {r.choice(LABS)[0]}. If symptoms worsen go to the Emergency Department.")
    n.line("{doc}", doc=Piece((f"{doc.first} {doc.last}", "PERSON"), r.choice([", MD", ", NP"])) if r.random() < 0.6
           else Piece((plain_name(c.fake, "F"), "PERSON"), ", RN, for Dr. ", (doc.last, "PERSON")))
    n.line()
    n.line("[Audit] Message submitted from IP {ip} via {u} on {d}",
           ip=(c.fake.ipv4_public() if r.random() < 0.85 else c.fake.ipv6(), "IP_ADDRESS"),
           u=(f"https://mychart.{c.domain}/MyChart/Messaging/{r.randint(10**7, 10**8)}", "URL"),
           d=c.d(c.visit, r.choice(["iso_time", "mdY_time"])))
    return n


TEMPLATES = {
    "admission_note": admission_note,
    "discharge_summary": discharge_summary,
    "radiology_report": radiology_report,
    "lab_report": lab_report,
    "referral_letter": referral_letter,
    "portal_message": portal_message,
}


def make_note(seed: int, i: int, fake: Faker) -> dict:
    note_seed = seed * 1_000_003 + i
    rng = random.Random(note_seed)
    fake.seed_instance(note_seed)
    kind = NOTE_KINDS[rng.randrange(len(NOTE_KINDS))]
    c = Ctx(fake, rng)
    note = TEMPLATES[kind](c)
    text, spans = note.build()
    return {"id": f"note-{i:06d}", "kind": kind, "text": text, "spans": spans}


def verify(rec: dict) -> None:
    text = rec["text"]
    prev_end = -1
    for s in sorted(rec["spans"], key=lambda s: s["start"]):
        assert 0 <= s["start"] < s["end"] <= len(text), s
        assert s["start"] >= prev_end, f"overlapping gold spans in {rec['id']}: {s}"
        prev_end = s["end"]
        assert s["type"] in ENTITY_TYPES


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=2000, help="number of notes (default 2000)")
    ap.add_argument("--seed", type=int, default=20240314)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corpus.jsonl"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    fake = Faker("en_US")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    counts: Counter = Counter()
    kinds: Counter = Counter()
    nbytes = nchars = 0
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(args.notes):
            rec = make_note(args.seed, i, fake)
            verify(rec)
            counts.update(s["type"] for s in rec["spans"])
            kinds[rec["kind"]] += 1
            nchars += len(rec["text"])
            nbytes += len(rec["text"].encode("utf-8"))
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, args.out)
    if not args.quiet:
        print(f"wrote {args.notes} notes to {args.out}: {nchars} chars, {nbytes / 1e6:.2f} MB UTF-8, "
              f"{sum(counts.values())} PHI spans", file=sys.stderr)
        print("kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())), file=sys.stderr)
        for t in ENTITY_TYPES:
            print(f"  {t:<24}{counts.get(t, 0):>7}", file=sys.stderr)
        missing = [t for t in ENTITY_TYPES if not counts.get(t)]
        if missing and args.notes >= 200:
            print(f"warning: no spans of {missing}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
